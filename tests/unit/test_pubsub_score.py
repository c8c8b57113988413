"""Peer scoring: each of P1–P7, the topic cap, decay to zero, retention, and parameter validation."""

from __future__ import annotations

import pytest
from test_pubsub_harness import Net

from aiolibp2p.crypto.keys import Ed25519PrivateKey
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.pubsub.gossipsub import GossipSubConfig
from aiolibp2p.pubsub.message import ValidationResult
from aiolibp2p.pubsub.score import (
    DeliveryStatus,
    PeerScore,
    PeerScoreParams,
    PeerScoreThresholds,
    TopicScoreParams,
    score_parameter_decay,
)

P = [Ed25519PrivateKey.from_seed(bytes([i]) * 32).public_key.peer_id for i in range(1, 6)]
T0 = 100.0


def scorer(topic: TopicScoreParams | None = None, **kw: object) -> PeerScore:
    params = PeerScoreParams(topics={"t": topic or TopicScoreParams()}, **kw)  # type: ignore[arg-type]
    ps = PeerScore(params)
    ps.tick(T0)
    return ps


def test_p1_time_in_mesh_capped() -> None:
    ps = scorer(TopicScoreParams(time_in_mesh_weight=0.5, time_in_mesh_quantum=1.0, time_in_mesh_cap=10.0))
    ps.add_peer(P[0], T0)
    ps.graft(P[0], "t", T0)
    ps.tick(T0 + 4)
    assert ps.score(P[0]) == pytest.approx(0.5 * 4)
    ps.tick(T0 + 100)
    assert ps.score(P[0]) == pytest.approx(0.5 * 10)
    ps.prune(P[0], "t")
    assert ps.score(P[0]) == 0


def test_p2_first_deliveries_capped_and_decay() -> None:
    ps = scorer(
        TopicScoreParams(
            first_message_deliveries_weight=1.0,
            first_message_deliveries_cap=3,
            first_message_deliveries_decay=0.5,
        )
    )
    ps.add_peer(P[0], T0)
    for i in range(5):
        ps.validate_message(b"m%d" % i, T0)
        ps.deliver_message(b"m%d" % i, "t", P[0], T0)
    assert ps.score(P[0]) == 3
    ps.tick(T0 + 1)
    assert ps.score(P[0]) == 1.5
    ps.tick(T0 + 9)  # 1.5 / 2^8 < decay_to_zero 0.01: snapped to 0
    assert ps.score(P[0]) == 0


def mesh_delivery_params(**kw: float) -> TopicScoreParams:
    base: dict[str, float] = dict(
        mesh_message_deliveries_weight=-1.0,
        mesh_message_deliveries_threshold=4.0,
        mesh_message_deliveries_cap=10.0,
        mesh_message_deliveries_activation=2.0,
        mesh_message_deliveries_window=0.05,
        mesh_message_deliveries_decay=0.9,
        mesh_failure_penalty_weight=-2.0,
        mesh_failure_penalty_decay=0.5,
    )
    base.update(kw)
    return TopicScoreParams(**base)


def test_p3_mesh_delivery_deficit_after_activation() -> None:
    ps = scorer(mesh_delivery_params())
    ps.add_peer(P[0], T0)
    ps.add_peer(P[1], T0)
    ps.graft(P[0], "t", T0)
    ps.graft(P[1], "t", T0)
    ps.tick(T0 + 1)
    assert ps.score(P[0]) == 0  # not active yet
    # P1 delivers one message first; P0 forwards the duplicate inside the window, then another too late
    ps.validate_message(b"a", T0 + 1)
    ps.deliver_message(b"a", "t", P[1], T0 + 1)
    ps.duplicate_message(b"a", "t", P[0], T0 + 1.01)
    ps.validate_message(b"b", T0 + 1)
    ps.deliver_message(b"b", "t", P[1], T0 + 1)
    ps.duplicate_message(b"b", "t", P[0], T0 + 1.5)  # outside the 50 ms window: not counted
    ps.tick(T0 + 3)  # active now; counters decayed twice: 0.81 for P0, 1.62 for P1
    assert ps.score(P[0]) == pytest.approx(-((4 - 0.81) ** 2))
    assert ps.score(P[1]) == pytest.approx(-((4 - 1.62) ** 2))


def test_p3_duplicates_during_validation_count() -> None:
    ps = scorer(mesh_delivery_params())
    for p in P[:2]:
        ps.add_peer(p, T0)
        ps.graft(p, "t", T0)
    ps.validate_message(b"a", T0)
    ps.duplicate_message(b"a", "t", P[1], T0 + 5)  # arrives while still validating
    ps.deliver_message(b"a", "t", P[0], T0 + 10)
    ps.tick(T0 + 10.5)
    assert ps.score(P[1]) == ps.score(P[0])  # both got a mesh delivery


def test_p3b_mesh_failure_penalty_on_prune_and_retention() -> None:
    ps = scorer(mesh_delivery_params())
    ps.add_peer(P[0], T0)
    ps.graft(P[0], "t", T0)
    ps.tick(T0 + 3)
    ps.prune(P[0], "t")
    assert ps.score(P[0]) == pytest.approx(-2.0 * 16)  # deficit 4, squared, weight -2
    ps.tick(T0 + 4)
    assert ps.score(P[0]) == pytest.approx(-2.0 * 8)
    # a disconnected peer with a negative score keeps it (retain_score) ...
    ps.remove_peer(P[0], T0 + 4)
    ps.add_peer(P[0], T0 + 5)
    assert ps.score(P[0]) == pytest.approx(-2.0 * 8)


def test_p4_invalid_messages_squared_and_forwarders_penalised() -> None:
    ps = scorer(
        TopicScoreParams(invalid_message_deliveries_weight=-1.0, invalid_message_deliveries_decay=0.5)
    )
    for p in P[:3]:
        ps.add_peer(p, T0)
    ps.validate_message(b"x", T0)
    ps.duplicate_message(b"x", "t", P[1], T0)  # forwarded it too while it was being validated
    ps.reject_message(b"x", "t", P[0], DeliveryStatus.INVALID, T0)
    ps.duplicate_message(b"x", "t", P[2], T0)  # and after the verdict
    ps.reject_message(None, "t", P[0], DeliveryStatus.INVALID, T0)  # a bad signature: sender only
    assert ps.score(P[0]) == -4.0
    assert ps.score(P[1]) == -1.0 and ps.score(P[2]) == -1.0
    # an ignored message costs nothing
    ps.validate_message(b"y", T0)
    ps.reject_message(b"y", "t", P[3 - 2], DeliveryStatus.IGNORED, T0)
    assert ps.score(P[1]) == -1.0
    ps.tick(T0 + 1)
    assert ps.score(P[0]) == -1.0  # 2 -> 1 invalid, squared


def test_topic_cap_and_topic_weight() -> None:
    params = PeerScoreParams(
        topics={
            "t": TopicScoreParams(
                topic_weight=2.0, first_message_deliveries_weight=1.0, first_message_deliveries_cap=100
            )
        },
        topic_score_cap=5.0,
    )
    ps = PeerScore(params)
    ps.add_peer(P[0], T0)
    ps.deliver_message(b"a", "t", P[0], T0)
    assert ps.score(P[0]) == 2.0
    for i in range(10):
        ps.deliver_message(b"%d" % i, "t", P[0], T0)
    assert ps.score(P[0]) == 5.0
    ps.deliver_message(b"o", "other", P[0], T0)  # unscored topic
    assert ps.score(P[0]) == 5.0


def test_p5_app_score() -> None:
    ps = scorer(app_specific_weight=2.0)
    ps.add_peer(P[0], T0)
    ps.set_app_score(P[0], -3.0)
    assert ps.score(P[0]) == -6.0


def test_p6_ip_colocation() -> None:
    ps = scorer(
        ip_colocation_factor_weight=-1.0,
        ip_colocation_factor_threshold=2,
        ip_colocation_factor_whitelist=frozenset({"10.0.0.1"}),
    )
    for p in P[:4]:
        ps.add_peer(p, T0, ("1.2.3.4",))
    ps.add_peer(P[4], T0, ("10.0.0.1",))
    assert ps.score(P[0]) == -4.0  # 4 peers on one IP, threshold 2: surplus 2, squared
    assert ps.score(P[4]) == 0.0
    ps.remove_peer(P[3], T0)  # score 0 -> retained, IP still counted until it expires
    assert ps.score(P[0]) == -4.0
    ps.tick(T0 + 3601)
    assert ps.score(P[0]) == -1.0


def test_p7_behaviour_penalty_threshold_and_decay() -> None:
    ps = scorer(behaviour_penalty_weight=-1.0, behaviour_penalty_threshold=1.0, behaviour_penalty_decay=0.5)
    ps.add_peer(P[0], T0)
    ps.add_penalty(P[0], 1)
    assert ps.score(P[0]) == 0
    ps.add_penalty(P[0], 2)
    assert ps.score(P[0]) == -4.0
    ps.tick(T0 + 1)
    assert ps.score(P[0]) == pytest.approx(-0.25)


def test_positive_score_forgotten_on_disconnect() -> None:
    ps = scorer(app_specific_weight=1.0)
    ps.add_peer(P[0], T0)
    ps.set_app_score(P[0], 5.0)
    ps.remove_peer(P[0], T0)
    ps.add_peer(P[0], T0)
    assert ps.score(P[0]) == 0


def test_parameter_validation() -> None:
    with pytest.raises(ValueError):
        TopicScoreParams(mesh_message_deliveries_weight=1.0).validate()
    with pytest.raises(ValueError):
        PeerScoreParams(behaviour_penalty_weight=1.0).validate()
    with pytest.raises(ValueError):
        PeerScoreThresholds(gossip_threshold=-10, publish_threshold=-5).validate()
    with pytest.raises(ValueError):
        GossipSubConfig(d_lo=7).validate()
    assert score_parameter_decay(10.0) == pytest.approx(0.01 ** (1 / 10))


def test_router_p4_from_validator_rejection_and_delivery_p2() -> None:
    topic = TopicScoreParams(
        first_message_deliveries_weight=1.0,
        first_message_deliveries_cap=10,
        invalid_message_deliveries_weight=-10.0,
        invalid_message_deliveries_decay=0.5,
    )
    config = GossipSubConfig(
        score_params=PeerScoreParams(topics={"t": topic}), score_thresholds=PeerScoreThresholds()
    )
    net = Net()
    a, b = net.add_gossipsub(), net.add_gossipsub(config)
    net.connect(a, b)
    net.subscribe_all("t")
    b.validator = lambda m: ValidationResult.REJECT if m.data == b"bad" else ValidationResult.ACCEPT
    a.router.publish("t", b"good", net.now)
    net.pump()
    assert b.gs.peer_score(a.peer_id) == 1.0
    a.router.publish("t", b"bad", net.now)
    net.pump()
    assert b.gs.peer_score(a.peer_id) == 1.0 - 10.0


def test_peer_ids_are_distinct() -> None:
    assert len(set(P)) == len(P) and all(isinstance(p, PeerId) for p in P)
