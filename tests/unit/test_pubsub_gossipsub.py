"""GossipSub engine: mesh, delivery, dedup, GRAFT/PRUNE/backoff, gossip repair, IDONTWANT, spam limits, PX."""

from __future__ import annotations

import dataclasses

from test_pubsub_harness import Net

from aiolibp2p.crypto.peer_record import make_signed_peer_record
from aiolibp2p.pubsub.core import ConnectToPeer, PubSubConfig
from aiolibp2p.pubsub.gossipsub import GOSSIPSUB_V10, GOSSIPSUB_V11, GossipSubConfig
from aiolibp2p.pubsub.message import ValidationResult
from aiolibp2p.pubsub.score import PeerScoreParams, PeerScoreThresholds, TopicScoreParams
from aiolibp2p.wire.pb import pubsub_pb2 as pb

SCORED = GossipSubConfig(
    score_params=PeerScoreParams(
        topics={"t": TopicScoreParams()}, behaviour_penalty_weight=-1.0, behaviour_penalty_decay=0.9
    ),
    score_thresholds=PeerScoreThresholds(),
)


def mesh_net(n: int, config: GossipSubConfig | None = None, seed: int = 1, degree: int | None = None) -> Net:
    net = Net(seed)
    for _ in range(n):
        net.add_gossipsub(config)
    if degree is None:
        net.connect_all()
    else:
        net.connect_random(degree)
    net.subscribe_all("t")
    net.advance(3.0)
    return net


def test_mesh_forms_within_bounds_and_everyone_receives() -> None:
    net = mesh_net(20)
    cfg = GossipSubConfig()
    # Early subscribers are grafted by everyone and prune down to D in the first heartbeat; a peer that
    # is pruned by several at once may sit below D_lo until the 60 s backoffs expire (as in go).
    assert all(1 <= len(n.gs.mesh["t"]) <= cfg.d_hi for n in net.nodes)
    net.advance(62.0, step=1.0)
    for node in net.nodes:
        mesh = node.gs.mesh["t"]
        assert cfg.d_lo <= len(mesh) <= cfg.d_hi
        for p in mesh:  # mesh links are symmetric once the GRAFT/PRUNEs settled
            assert node.peer_id in net.by_id[p].gs.mesh["t"]
    for i in range(5):
        net.nodes[i].router.publish("t", f"m{i}".encode(), net.now)
        net.pump()
    for node in net.nodes:
        assert sorted(node.data("t")) == [f"m{i}".encode() for i in range(5)]


def test_sparse_network_delivery_without_flood_publish() -> None:
    config = GossipSubConfig(flood_publish=False)
    net = mesh_net(30, config, seed=3, degree=4)
    net.nodes[0].router.publish("t", b"sparse", net.now)
    net.pump()
    assert all(node.data("t") == [b"sparse"] for node in net.nodes)
    # without flood publishing the publisher sends to its mesh only
    first_hop = [rpc for rpc in net.sent(src=net.nodes[0]) if rpc.publish]
    assert len(first_hop) == len(net.nodes[0].gs.mesh["t"])


def test_dedup_via_seen_cache() -> None:
    net = mesh_net(8)
    net.nodes[0].router.publish("t", b"once", net.now)
    net.pump()
    for node in net.nodes:
        assert node.data("t") == [b"once"]
    assert sum(n.router.stats.messages_duplicate for n in net.nodes) > 0
    # replaying the same message is a duplicate everywhere
    rpc = next(r for r in net.sent(src=net.nodes[0]) if r.publish)
    victim = net.nodes[1]
    victim.router.handle_frame(net.nodes[0].peer_id, rpc.SerializeToString(), net.now)
    net.pump()
    assert victim.data("t") == [b"once"]
    # after the seen TTL (120 s) and the mcache windows the ID is forgotten
    net.advance(121.0, step=1.0)
    assert len(victim.router.seen) == 0


def test_fanout_publish_without_joining() -> None:
    net = Net()
    pub = net.add_gossipsub(GossipSubConfig(flood_publish=False))
    subs = [net.add_gossipsub() for _ in range(8)]
    net.connect_all()
    net.subscribe_all("t", subs)
    net.advance(2.0)
    pub.router.publish("t", b"fan", net.now)
    net.pump()
    assert "t" not in pub.gs.mesh
    assert len(pub.gs.fanout["t"]) == 6
    assert all(s.data("t") == [b"fan"] for s in subs)
    net.advance(61.0, step=1.0)
    assert "t" not in pub.gs.fanout  # fanout TTL


def test_eager_graft_when_mesh_is_short() -> None:
    net = Net()
    a, b = net.add_gossipsub(), net.add_gossipsub()
    net.connect(a, b)
    a.router.subscribe("t", net.now)
    net.pump()
    assert a.gs.mesh["t"] == set()
    b.router.subscribe("t", net.now)  # b's announcement makes a graft it at once, before any heartbeat
    net.pump()
    assert a.gs.mesh["t"] == {b.peer_id} and b.gs.mesh["t"] == {a.peer_id}
    assert any(g.topicID == "t" for rpc in net.sent(src=a, dst=b) for g in rpc.control.graft)


def test_join_after_fanout_reuses_fanout_peers() -> None:
    net = Net()
    pub = net.add_gossipsub(GossipSubConfig(flood_publish=False))
    subs = [net.add_gossipsub() for _ in range(8)]
    net.connect_all()
    net.subscribe_all("t", subs)
    net.advance(2.0)
    pub.router.publish("t", b"x", net.now)
    fanout = set(pub.gs.fanout["t"])
    pub.router.subscribe("t", net.now)
    net.pump()
    assert pub.gs.mesh["t"] == fanout
    assert all(pub.peer_id in net.by_id[p].gs.mesh["t"] for p in fanout)


def test_unsubscribe_prunes_with_unsubscribe_backoff() -> None:
    net = mesh_net(4)
    a = net.nodes[0]
    peers = set(a.gs.mesh["t"])
    a.router.unsubscribe("t", net.now)
    net.pump()
    prunes = [p for rpc in net.sent(src=a) for p in rpc.control.prune]
    assert {pr.backoff for pr in prunes} == {10}
    for p in peers:
        node = net.by_id[p]
        assert a.peer_id not in node.gs.mesh["t"]
        assert node.gs.backoff["t"][a.peer_id] == net.now + 10


def test_graft_prune_backoff_and_rejoin() -> None:
    net = Net()
    a, b = net.add_gossipsub(), net.add_gossipsub()
    net.connect(a, b)
    net.subscribe_all("t")
    net.advance(1.0)
    assert b.peer_id in a.gs.mesh["t"]
    # b prunes a (as in an oversubscribed mesh): both keep a 60 s backoff
    b.gs.mesh["t"].discard(a.peer_id)
    b.gs._send_prune(a.peer_id, "t", net.now, px=False)
    b.gs._add_backoff(a.peer_id, "t", 60.0, net.now)
    b.gs._flush()
    net.pump()
    assert b.peer_id not in a.gs.mesh["t"]
    assert a.gs.backoff["t"][b.peer_id] == net.now + 60
    net.advance(30.0)
    assert b.peer_id not in a.gs.mesh["t"]  # still backing off: no re-GRAFT
    net.advance(32.0)  # backoff (60 s) plus a heartbeat of slack
    assert b.peer_id in a.gs.mesh["t"] and a.peer_id in b.gs.mesh["t"]


def test_graft_flood_during_backoff_is_penalised() -> None:
    net = Net()
    a, b = net.add_gossipsub(SCORED), net.add_gossipsub(SCORED)
    net.connect(a, b)
    net.subscribe_all("t")
    net.advance(1.0)
    a.gs.mesh["t"].discard(b.peer_id)
    a.gs._add_backoff(b.peer_id, "t", 60.0, net.now)
    # b keeps grafting although it is backing off
    graft = pb.RPC(control=pb.ControlMessage(graft=[pb.ControlGraft(topicID="t")])).SerializeToString()
    a.router.handle_frame(b.peer_id, graft, net.now)
    net.pump()
    assert b.peer_id not in a.gs.mesh["t"]
    prunes = [p for rpc in net.sent(src=a, dst=b) for p in rpc.control.prune]
    assert prunes and prunes[-1].backoff == 60
    # within the flood threshold (10 s after the PRUNE): two penalties -> P7 = 2^2 * -1
    assert a.gs.peer_score(b.peer_id) == -4.0
    net.now += 20
    a.router.handle_frame(b.peer_id, graft, net.now)
    assert a.gs.peer_score(b.peer_id) == -9.0  # one more (outside the flood window)
    assert a.gs.backoff["t"][b.peer_id] == net.now + 60  # the backoff was extended


def test_graft_for_unknown_topic_ignored_and_direct_peer_pruned() -> None:
    net = Net()
    a, b = net.add_gossipsub(), net.add_gossipsub()
    net.connect(a, b)
    net.subscribe_all("t", [a])
    graft = pb.RPC(control=pb.ControlMessage(graft=[pb.ControlGraft(topicID="nope")])).SerializeToString()
    a.router.handle_frame(b.peer_id, graft, net.now)
    net.pump()
    assert not any(rpc.control.prune for rpc in net.sent(src=a))
    c = net.add_gossipsub(GossipSubConfig(direct_peers=frozenset({b.peer_id})))
    net.connect(c, b)
    net.subscribe_all("t", [c])
    c.router.handle_frame(
        b.peer_id,
        pb.RPC(control=pb.ControlMessage(graft=[pb.ControlGraft(topicID="t")])).SerializeToString(),
        net.now,
    )
    net.pump()
    assert b.peer_id not in c.gs.mesh["t"]
    assert any(rpc.control.prune for rpc in net.sent(src=c, dst=b))


def test_direct_peers_always_get_messages_but_never_mesh() -> None:
    net = Net()
    a = net.add_gossipsub()
    b = net.add_gossipsub()
    a_cfg = GossipSubConfig(direct_peers=frozenset({b.peer_id}))
    c = net.add_gossipsub(a_cfg)
    net.connect(c, a)
    net.connect(c, b)
    net.subscribe_all("t")
    net.advance(2.0)
    assert b.peer_id not in c.gs.mesh["t"]
    c.router.publish("t", b"d", net.now)
    net.pump()
    assert b.data("t") == [b"d"]


def test_ihave_iwant_repairs_a_missed_message() -> None:
    net = Net()
    a = net.add_gossipsub(GossipSubConfig(flood_publish=False))
    b, c = net.add_gossipsub(), net.add_gossipsub()
    net.connect(a, b)
    net.connect(a, c)
    net.subscribe_all("t")
    net.advance(2.0)
    # take c out of a's mesh (and keep it out), so the publish skips it
    a.gs.mesh["t"].discard(c.peer_id)
    c.gs.mesh["t"].discard(a.peer_id)
    a.gs.backoff.setdefault("t", {})[c.peer_id] = net.now + 1000
    c.gs.backoff.setdefault("t", {})[a.peer_id] = net.now + 1000
    a.router.publish("t", b"late", net.now)
    net.pump()
    assert c.data("t") == []
    net.advance(1.0)  # a's heartbeat gossips IHAVE to c, c asks IWANT, a answers
    assert c.data("t") == [b"late"]
    assert any(rpc.control.ihave for rpc in net.sent(src=a, dst=c))
    assert any(rpc.control.iwant for rpc in net.sent(src=c, dst=a))


def test_iwant_flood_bounded_by_retransmission_limit() -> None:
    net = Net()
    a, b = net.add_gossipsub(), net.add_gossipsub()
    net.connect(a, b)
    net.subscribe_all("t")
    msg_id = a.router.publish("t", b"x", net.now)
    net.pump()
    before = len([r for r in net.sent(src=a, dst=b) if r.publish])
    iwant = pb.RPC(control=pb.ControlMessage(iwant=[pb.ControlIWant(messageIDs=[msg_id] * 50)]))
    for _ in range(10):
        a.router.handle_frame(b.peer_id, iwant.SerializeToString(), net.now)
    net.pump()
    served = sum(len(r.publish) for r in net.sent(src=a, dst=b)) - before
    assert served == 3  # GossipRetransmission
    assert a.router.stats.iwant_ignored == 7  # (duplicate IDs within one IWANT count once)


def test_ihave_limits_and_broken_promises_penalised() -> None:
    net = Net()
    a, b = net.add_gossipsub(SCORED), net.add_gossipsub(SCORED)
    net.connect(a, b)
    net.subscribe_all("t")
    ids = [bytes([i % 256, i // 256]) * 10 for i in range(6000)]
    ihave = pb.RPC(control=pb.ControlMessage(ihave=[pb.ControlIHave(topicID="t", messageIDs=ids)]))
    for _ in range(12):
        a.router.handle_frame(b.peer_id, ihave.SerializeToString(), net.now)
    net.pump()
    asked = [mid for rpc in net.sent(src=a, dst=b) for w in rpc.control.iwant for mid in w.messageIDs]
    assert len(asked) == 5000  # MaxIHaveLength per heartbeat
    assert a.router.stats.ihave_ignored == 11
    # b never delivers: after the follow-up time the broken promise costs a P7 penalty
    net.advance(4.0)
    assert a.gs.peer_score(b.peer_id) < 0


def test_idontwant_sent_for_large_messages_and_honoured() -> None:
    net = mesh_net(6)
    src = net.nodes[0]
    src.router.publish("t", bytes(2000), net.now)
    net.pump()
    idw = [(s, d) for s, d, rpc in net.log if rpc.control.idontwant]
    assert idw  # receivers told their mesh peers at once
    # small messages get none
    net.log.clear()
    src.router.publish("t", b"small", net.now)
    net.pump()
    assert not any(rpc.control.idontwant for _, _, rpc in net.log)
    # an IDONTWANT received suppresses forwarding of that message to the peer
    a, b = net.nodes[1], net.nodes[2]
    if b.peer_id not in a.gs.mesh["t"]:
        a.gs.mesh["t"].add(b.peer_id)
    msg_id, message = src.router.build_message("t", b"y" * 10)
    b_idw = pb.RPC(control=pb.ControlMessage(idontwant=[pb.ControlIDontWant(messageIDs=[msg_id])]))
    a.router.handle_frame(b.peer_id, b_idw.SerializeToString(), net.now)
    net.log.clear()
    a.router.handle_frame(src.peer_id, pb.RPC(publish=[message.pb]).SerializeToString(), net.now)
    net.pump()
    assert not any(rpc.publish for s, d, rpc in net.log if s == a.peer_id and d == b.peer_id)


def test_idontwant_takes_back_a_queued_forward() -> None:
    """An IDONTWANT for a message still queued for the peer (its writer has not taken the frame) removes the
    message from the queue, keeping the IDONTWANT head we queued for it; a frame already taken is gone; the
    peer sending us the message itself does the same."""
    net = mesh_net(6)
    src, a, b = net.nodes[0], net.nodes[1], net.nodes[2]
    a.gs.mesh["t"].add(b.peer_id)
    msg_id, message = src.router.build_message("t", bytes(2000))
    a.router.handle_frame(src.peer_id, pb.RPC(publish=[message.pb]).SerializeToString(), net.now)
    net._drain_events(a)  # validated (accepted): forwarded to a's mesh
    queued = [pb.RPC.FromString(f) for f in a.router.peers[b.peer_id].frames]
    assert any(r.publish for r in queued)  # the forward waits for b's writer
    b_idw = pb.RPC(control=pb.ControlMessage(idontwant=[pb.ControlIDontWant(messageIDs=[msg_id])]))
    a.router.handle_frame(b.peer_id, b_idw.SerializeToString(), net.now)
    left = [pb.RPC.FromString(f) for f in a.router.take_frames(b.peer_id)]
    assert not any(r.publish for r in left)
    assert any(msg_id in i.messageIDs for r in left for i in r.control.idontwant)  # our IDONTWANT still goes
    assert a.router.stats.forwards_cancelled == 1
    # once taken by the writer, a frame is no longer cancellable
    c = net.nodes[3]
    a.gs.mesh["t"].add(c.peer_id)
    msg2, message2 = src.router.build_message("t", bytes(2000))
    a.router.handle_frame(src.peer_id, pb.RPC(publish=[message2.pb]).SerializeToString(), net.now)
    net._drain_events(a)
    taken = [pb.RPC.FromString(f) for f in a.router.take_frames(c.peer_id)]
    assert any(r.publish for r in taken)
    c_idw = pb.RPC(control=pb.ControlMessage(idontwant=[pb.ControlIDontWant(messageIDs=[msg2])]))
    a.router.handle_frame(c.peer_id, c_idw.SerializeToString(), net.now)
    assert a.router.stats.forwards_cancelled == 1
    assert not a.router.peers[c.peer_id].queued
    # the peer sending us the message itself (a duplicate) takes back our queued forward of it too
    d = net.nodes[4]
    a.gs.mesh["t"].add(d.peer_id)
    a.router.take_frames(d.peer_id)  # (what earlier forwards queued for d)
    _, message3 = src.router.build_message("t", bytes(2000))
    frame3 = pb.RPC(publish=[message3.pb]).SerializeToString()
    a.router.handle_frame(src.peer_id, frame3, net.now)
    net._drain_events(a)
    assert any(pb.RPC.FromString(f).publish for f in a.router.peers[d.peer_id].frames)
    a.router.handle_frame(d.peer_id, frame3, net.now)
    assert not any(pb.RPC.FromString(f).publish for f in a.router.take_frames(d.peer_id))
    assert a.router.stats.forwards_cancelled == 2


def test_idontwant_leaves_ahead_of_large_messages_and_queued_frames() -> None:
    """An IDONTWANT rides in the forward's frame only when that frame fits in about one TCP segment and nothing
    else is queued for the peer; otherwise it leaves in a frame of its own ahead of every queued frame (go's
    urgent queue), so the peer reads it without waiting for a message body or a backlog."""
    net = mesh_net(6)
    src, a, b = net.nodes[0], net.nodes[1], net.nodes[2]
    a.gs.mesh["t"].add(b.peer_id)
    a.router.take_frames(b.peer_id)
    a.router.inline_validator = lambda _m: ValidationResult.ACCEPT  # as the service's with no async validator
    limit = a.router.config.control_piggyback_limit

    def receive(size: int) -> bytes:
        msg_id, message = src.router.build_message("t", bytes(size))
        a.router.handle_frame(src.peer_id, pb.RPC(publish=[message.pb]).SerializeToString(), net.now)
        net._drain_events(a)
        return msg_id

    def kinds(frames: list[bytes]) -> list[tuple[str, list[bytes]]]:
        out = []
        for f in frames:
            rpc = pb.RPC.FromString(f)
            ids = [i for c in rpc.control.idontwant for i in c.messageIDs]
            out.append(("idw+msg" if rpc.publish and ids else "msg" if rpc.publish else "idw", ids))
        return out

    # at the IDONTWANT threshold with nothing queued: one frame, within the limit
    id1 = receive(1024)
    frames = a.router.take_frames(b.peer_id)
    assert kinds(frames) == [("idw+msg", [id1])] and len(frames[0]) <= limit
    # a larger message: its IDONTWANT first, alone
    id2 = receive(limit)
    assert kinds(list(a.router.peers[b.peer_id].frames)) == [("idw", [id2]), ("msg", [])]
    # frames still queued (the writer is behind): the next IDONTWANT goes ahead of them, after the first
    id3 = receive(1024)
    assert kinds(a.router.take_frames(b.peer_id)) == [
        ("idw", [id2]),
        ("idw", [id3]),
        ("msg", []),
        ("msg", []),
    ]
    assert a.router.peers[b.peer_id].urgent == 0
    # an IDONTWANT still queued ahead does not hide a later take-back of its message's forward
    id4 = receive(limit)
    b_idw = pb.RPC(control=pb.ControlMessage(idontwant=[pb.ControlIDontWant(messageIDs=[id4])]))
    a.router.handle_frame(b.peer_id, b_idw.SerializeToString(), net.now)
    assert kinds(a.router.take_frames(b.peer_id)) == [("idw", [id4])]


def test_idontwant_only_to_v12_peers() -> None:
    net = Net()
    old = net.add_gossipsub(GossipSubConfig(protocols=(GOSSIPSUB_V11, GOSSIPSUB_V10)))
    v12 = [net.add_gossipsub() for _ in range(3)]
    net.connect_all()
    net.subscribe_all("t")
    net.advance(2.0)
    net.log.clear()
    v12[0].router.publish("t", bytes(4000), net.now)
    net.pump()
    pairs = [(net.by_id[s], net.by_id[d]) for s, d, rpc in net.log if rpc.control.idontwant]
    assert pairs and all(d is not old for _, d in pairs)
    assert not any(rpc.control.idontwant for rpc in net.sent(src=old))


def test_idontwant_flood_bounded() -> None:
    net = Net()
    a, b = net.add_gossipsub(), net.add_gossipsub()
    net.connect(a, b)
    rpc = pb.RPC(
        control=pb.ControlMessage(idontwant=[pb.ControlIDontWant(messageIDs=[bytes([i]) for i in range(50)])])
    )
    for _ in range(1100):
        a.router.handle_frame(b.peer_id, rpc.SerializeToString(), net.now)
    assert len(a.gs._unwanted[b.peer_id]) == 10  # MaxIDontWantLength per message
    assert a.router.stats.idontwant_ignored == 100  # MaxIDontWantMessages per heartbeat
    net.advance(3.5)
    assert b.peer_id not in a.gs._unwanted  # expired after 3 heartbeats


def test_mesh_prunes_above_d_hi_keeping_outbound_quota() -> None:
    net = Net(seed=5)
    hub = net.add_gossipsub()
    others = [net.add_gossipsub() for _ in range(16)]
    for i, o in enumerate(others):
        if i < 2:
            net.connect(hub, o)  # hub dialed: outbound
        else:
            net.connect(o, hub)
    net.subscribe_all("t", others)
    hub.router.subscribe("t", net.now)
    for o in others:  # everyone grafts the hub
        hub.router.handle_frame(
            o.peer_id,
            pb.RPC(control=pb.ControlMessage(graft=[pb.ControlGraft(topicID="t")])).SerializeToString(),
            net.now,
        )
    net.pump()
    net.advance(1.0)
    mesh = hub.gs.mesh["t"]
    assert len(mesh) <= 12
    net.advance(2.0)
    assert 5 <= len(hub.gs.mesh["t"]) <= 12
    assert sum(1 for p in hub.gs.mesh["t"] if hub.router.peers[p].outbound) >= 2


def test_px_on_prune_leads_to_connect_events() -> None:
    config = dataclasses.replace(
        SCORED,
        do_px=True,
        score_thresholds=PeerScoreThresholds(accept_px_threshold=0.0),
    )
    net = Net()
    a = net.add_gossipsub(config)
    b = net.add_gossipsub(config)
    c = net.add_gossipsub(config)
    net.connect(a, b)
    net.connect(a, c)
    net.subscribe_all("t")
    net.advance(1.0)
    a.gs.set_peer_record(c.peer_id, make_signed_peer_record(c.key, [b"\x04\x7f\x00\x00\x01\x06\x10\x00"]))
    # a prunes b with PX: b learns about c (signed record verified)
    a.gs.mesh["t"].discard(b.peer_id)
    a.gs._send_prune(b.peer_id, "t", net.now, px=True)
    a.gs._flush()
    net.disconnect(b, c) if (b.peer_id, c.peer_id) in net.links else None
    b.events.clear()
    net.pump()
    connects = [e for e in b.events if isinstance(e, ConnectToPeer)]
    assert [e.peer for e in connects] == [c.peer_id]
    assert connects[0].signed_peer_record is not None


def test_px_ignored_below_accept_threshold_and_bad_records() -> None:
    net = Net()
    a, b = net.add_gossipsub(SCORED), net.add_gossipsub(SCORED)
    other = net._key()
    net.connect(a, b)
    net.subscribe_all("t")
    prune = pb.ControlPrune(topicID="t", backoff=60)
    prune.peers.add(peerID=other.public_key.peer_id.to_bytes())
    rpc = pb.RPC(control=pb.ControlMessage(prune=[prune])).SerializeToString()
    a.router.handle_frame(b.peer_id, rpc, net.now)
    # default accept_px_threshold is 10 and b's score is 0
    assert not any(isinstance(e, ConnectToPeer) for e in a.router.take_events())
    # with the threshold met, a record signed by somebody else is refused
    loose = dataclasses.replace(SCORED, score_thresholds=PeerScoreThresholds(accept_px_threshold=0.0))
    c, d = net.add_gossipsub(loose), net.add_gossipsub(loose)
    net.connect(c, d)
    net.subscribe_all("t", [c, d])
    prune.peers[0].signedPeerRecord = make_signed_peer_record(net._key(), [])
    c.router.handle_frame(
        d.peer_id, pb.RPC(control=pb.ControlMessage(prune=[prune])).SerializeToString(), net.now
    )
    assert not any(isinstance(e, ConnectToPeer) for e in c.router.take_events())


def test_prune_to_v10_peer_has_no_backoff_or_px() -> None:
    net = Net()
    a = net.add_gossipsub(dataclasses.replace(GossipSubConfig(), do_px=True))
    old = net.add_gossipsub(GossipSubConfig(protocols=(GOSSIPSUB_V10,)))
    net.connect(a, old)
    net.subscribe_all("t")
    prune = a.gs._make_prune(old.peer_id, "t", px=True, unsubscribe=False)
    assert not prune.HasField("backoff") and not prune.peers


def test_graylisted_peer_rpcs_dropped() -> None:
    net = Net()
    a, b = net.add_gossipsub(SCORED), net.add_gossipsub(SCORED)
    net.connect(a, b)
    net.subscribe_all("t")
    assert a.gs.score is not None
    a.gs.score.add_penalty(b.peer_id, 10)  # P7 = -100 < graylist -80
    b.router.publish("t", b"spam", net.now)
    net.pump()
    assert a.data("t") == []
    assert a.router.stats.rpcs_graylisted >= 1


def test_negative_score_peer_pruned_from_mesh() -> None:
    net = mesh_net(4, SCORED)
    a = net.nodes[0]
    bad = next(iter(a.gs.mesh["t"]))
    assert a.gs.score is not None
    a.gs.score.add_penalty(bad, 2)
    net.advance(1.0)
    assert bad not in a.gs.mesh["t"]
    prunes = [p for rpc in net.sent(src=a, dst=net.by_id[bad]) for p in rpc.control.prune]
    assert prunes and not prunes[-1].peers  # no PX to a peer pruned for its score


def test_opportunistic_graft() -> None:
    params = PeerScoreParams(topics={"t": TopicScoreParams()}, app_specific_weight=1.0)
    config = GossipSubConfig(
        d=2,
        d_lo=1,
        d_hi=3,
        d_score=1,
        d_out=0,
        opportunistic_graft_ticks=5,
        score_params=params,
        score_thresholds=PeerScoreThresholds(opportunistic_graft_threshold=5.0),
    )
    net = Net()
    hub = net.add_gossipsub(config)
    peers = [net.add_gossipsub() for _ in range(6)]
    for p in peers:
        net.connect(hub, p)
        # passive peers: they never graft the hub themselves (no heartbeat, no eager graft)
        p.gs._next_heartbeat = float("inf")
        p.gs._on_peer_joined_topic = lambda *args: None  # type: ignore[method-assign]
    net.subscribe_all("t", peers)
    hub.router.subscribe("t", net.now)
    net.advance(1.0)
    assert len(hub.gs.mesh["t"]) == 2
    outside = [p for p in peers if p.peer_id not in hub.gs.mesh["t"]]
    for p in outside[:3]:
        hub.gs.set_app_score(p.peer_id, 100.0)
    net.advance(5.0)
    grafted = {p.peer_id for p in outside[:3]} & hub.gs.mesh["t"]
    assert len(grafted) >= 2


def test_outbound_queue_bounded_and_drops_counted() -> None:
    config = GossipSubConfig(pubsub=PubSubConfig(max_outbound_rpcs_per_peer=4))
    net = Net()
    a, b = net.add_gossipsub(config), net.add_gossipsub()
    net.connect(a, b)
    net.subscribe_all("t")
    for i in range(10):
        a.router.publish("t", b"%d" % i, net.now)  # nobody drains a's queue meanwhile
    assert len(a.router.peers[b.peer_id].frames) == 4
    assert a.router.stats.messages_dropped_queue_full == 6
    net.pump()
    assert len(b.data("t")) == 4


def test_validation_pipeline_reject_ignore_and_pending() -> None:
    net = mesh_net(3, SCORED)
    a, b, c = net.nodes
    b.validator = lambda m: (
        ValidationResult.REJECT
        if m.data == b"bad"
        else (ValidationResult.IGNORE if m.data == b"meh" else ValidationResult.ACCEPT)
    )
    c.validator = lambda m: None  # asynchronous: keep pending
    a.router.publish("t", b"bad", net.now)
    a.router.publish("t", b"meh", net.now)
    net.pump()
    assert b.data("t") == [] and c.data("t") == []
    assert b.router.stats.messages_rejected == 1 and b.router.stats.messages_ignored == 1
    assert b.gs.peer_score(a.peer_id) == 0  # P4 weight is 0 in SCORED; counted though
    assert c.router.pending_validations == 2
    for ev in c.pending:
        c.router.report_validation(ev.msg_id, ValidationResult.ACCEPT, net.now)
    net.pump()
    assert sorted(c.data("t")) == [b"bad", b"meh"]


def test_idontwant_control_encoding_matches_protobuf() -> None:
    """The hand-encoded IDONTWANT-only control part the router shares between peers is the protobuf's."""
    from aiolibp2p.pubsub.core import _idontwant_control

    for ids in ([b"x" * 40], [b"a" * 46, b"b" * 300, b""]):
        rpc = pb.RPC()
        rpc.control.idontwant.add().messageIDs.extend(ids)
        assert _idontwant_control(ids) == rpc.SerializeToString()
