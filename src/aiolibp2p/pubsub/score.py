"""Gossipsub v1.1 peer scoring (gossipsub-v1.1.md §"Peer Scoring", §"Score Thresholds").

score(p) = TopicCap(Σ_t w_t·(w1·P1 + w2·P2 + w3·P3 + w3b·P3b + w4·P4)) + w5·P5 + w6·P6 + w7·P7

* P1 time in mesh (capped), P2 first message deliveries (capped, decaying), P3 mesh message delivery
  deficit squared (after the activation window), P3b mesh failure penalty (the deficit squared, kept after
  a prune), P4 invalid messages squared, P5 application score, P6 IP colocation surplus squared, P7
  behaviour penalty excess squared.
* Counters decay every ``decay_interval`` and snap to 0 below ``decay_to_zero``; the score of a
  disconnected peer is kept for ``retain_score`` seconds if it is not positive (go's anti-churn rule).

The state is a plain object owned by the router (STYLE §8): every method takes ``now``.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..crypto.peer_id import PeerId


@dataclass(frozen=True, slots=True)
class TopicScoreParams:
    """Per-topic score parameters (go's TopicScoreParams). Weights of penalties must be negative."""

    topic_weight: float = 1.0
    # P1
    time_in_mesh_weight: float = 0.0
    time_in_mesh_quantum: float = 1.0
    time_in_mesh_cap: float = 0.0
    # P2
    first_message_deliveries_weight: float = 0.0
    first_message_deliveries_decay: float = 0.5
    first_message_deliveries_cap: float = 0.0
    # P3
    mesh_message_deliveries_weight: float = 0.0
    mesh_message_deliveries_decay: float = 0.5
    mesh_message_deliveries_cap: float = 0.0
    mesh_message_deliveries_threshold: float = 0.0
    mesh_message_deliveries_window: float = 0.010
    mesh_message_deliveries_activation: float = 1.0
    # P3b
    mesh_failure_penalty_weight: float = 0.0
    mesh_failure_penalty_decay: float = 0.5
    # P4
    invalid_message_deliveries_weight: float = 0.0
    invalid_message_deliveries_decay: float = 0.5

    def validate(self) -> None:
        _check(self.topic_weight >= 0, "topic_weight must be >= 0")
        _check(self.time_in_mesh_weight >= 0, "time_in_mesh_weight must be >= 0")
        _check(self.time_in_mesh_quantum > 0, "time_in_mesh_quantum must be > 0")
        _check(self.time_in_mesh_cap >= 0, "time_in_mesh_cap must be >= 0")
        _check(self.first_message_deliveries_weight >= 0, "first_message_deliveries_weight must be >= 0")
        _check(self.mesh_message_deliveries_weight <= 0, "mesh_message_deliveries_weight must be <= 0")
        _check(self.mesh_message_deliveries_activation >= 1, "activation must be >= 1 s")
        _check(self.mesh_failure_penalty_weight <= 0, "mesh_failure_penalty_weight must be <= 0")
        _check(self.invalid_message_deliveries_weight <= 0, "invalid_message_deliveries_weight must be <= 0")
        for name in (
            "first_message_deliveries_decay",
            "mesh_message_deliveries_decay",
            "mesh_failure_penalty_decay",
            "invalid_message_deliveries_decay",
        ):
            value = getattr(self, name)
            _check(0 < value < 1, f"{name} must be in (0, 1)")


@dataclass(frozen=True, slots=True)
class PeerScoreParams:
    """Peer score parameters (go's PeerScoreParams). Topics not in ``topics`` do not count."""

    topics: Mapping[str, TopicScoreParams] = field(default_factory=dict)
    topic_score_cap: float = 0.0  # 0: no cap
    app_specific_weight: float = 0.0
    ip_colocation_factor_weight: float = 0.0
    ip_colocation_factor_threshold: int = 1
    ip_colocation_factor_whitelist: frozenset[str] = frozenset()
    behaviour_penalty_weight: float = 0.0
    behaviour_penalty_threshold: float = 0.0
    behaviour_penalty_decay: float = 0.99
    decay_interval: float = 1.0
    decay_to_zero: float = 0.01
    retain_score: float = 3600.0
    seen_msg_ttl: float = 120.0

    def validate(self) -> None:
        _check(self.topic_score_cap >= 0, "topic_score_cap must be >= 0")
        _check(self.ip_colocation_factor_weight <= 0, "ip_colocation_factor_weight must be <= 0")
        _check(self.ip_colocation_factor_threshold >= 1, "ip_colocation_factor_threshold must be >= 1")
        _check(self.behaviour_penalty_weight <= 0, "behaviour_penalty_weight must be <= 0")
        _check(self.behaviour_penalty_threshold >= 0, "behaviour_penalty_threshold must be >= 0")
        _check(0 < self.behaviour_penalty_decay < 1, "behaviour_penalty_decay must be in (0, 1)")
        _check(self.decay_interval >= 0.001, "decay_interval must be >= 1 ms")
        _check(0 < self.decay_to_zero < 1, "decay_to_zero must be in (0, 1)")
        for params in self.topics.values():
            params.validate()


@dataclass(frozen=True, slots=True)
class PeerScoreThresholds:
    """Score thresholds (gossipsub-v1.1.md §"Score Thresholds"); ``graylist < publish <= gossip < 0``."""

    gossip_threshold: float = -10.0
    publish_threshold: float = -50.0
    graylist_threshold: float = -80.0
    accept_px_threshold: float = 10.0
    opportunistic_graft_threshold: float = 20.0

    def validate(self) -> None:
        _check(self.gossip_threshold <= 0, "gossip_threshold must be <= 0")
        _check(
            self.publish_threshold <= self.gossip_threshold, "publish_threshold must be <= gossip_threshold"
        )
        _check(self.graylist_threshold < self.publish_threshold, "graylist_threshold must be < publish")
        _check(self.accept_px_threshold >= 0, "accept_px_threshold must be >= 0")
        _check(self.opportunistic_graft_threshold >= 0, "opportunistic_graft_threshold must be >= 0")


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"invalid score parameter: {what}")


def score_parameter_decay(
    decay_time: float, decay_interval: float = 1.0, decay_to_zero: float = 0.01
) -> float:
    """The per-interval factor that takes a counter of 1 to ``decay_to_zero`` in ``decay_time`` seconds."""
    ticks = decay_time / decay_interval
    return math.pow(decay_to_zero, 1.0 / ticks)


class _TopicStats:
    __slots__ = (
        "first_message_deliveries",
        "graft_time",
        "in_mesh",
        "invalid_message_deliveries",
        "mesh_failure_penalty",
        "mesh_message_deliveries",
        "mesh_message_deliveries_active",
        "mesh_time",
    )

    def __init__(self) -> None:
        self.in_mesh = False
        self.graft_time = 0.0
        self.mesh_time = 0.0
        self.first_message_deliveries = 0.0
        self.mesh_message_deliveries = 0.0
        self.mesh_message_deliveries_active = False
        self.mesh_failure_penalty = 0.0
        self.invalid_message_deliveries = 0.0


class _PeerStats:
    __slots__ = ("app_score", "behaviour_penalty", "connected", "expire", "ips", "topics")

    def __init__(self) -> None:
        self.connected = True
        self.expire = 0.0
        self.topics: dict[str, _TopicStats] = {}
        self.ips: tuple[str, ...] = ()
        self.behaviour_penalty = 0.0
        self.app_score = 0.0


class DeliveryStatus(enum.Enum):
    UNKNOWN = 0  # being validated
    VALID = 1
    INVALID = 2
    IGNORED = 3
    THROTTLED = 4


class _DeliveryRecord:
    __slots__ = ("expire", "peers", "status", "validated")

    def __init__(self, expire: float) -> None:
        self.status = DeliveryStatus.UNKNOWN
        self.validated = -1.0
        self.peers: set[PeerId] = set()
        self.expire = expire


class PeerScore:
    """Scores of the peers of one router; fed by the router's trace calls."""

    def __init__(self, params: PeerScoreParams) -> None:
        params.validate()
        self.params = params
        self._peers: dict[PeerId, _PeerStats] = {}
        self._peer_ips: dict[str, set[PeerId]] = {}
        self._deliveries: OrderedDict[bytes, _DeliveryRecord] = OrderedDict()
        self._next_decay: float | None = None

    # --- peers ---

    def add_peer(self, peer: PeerId, now: float, ips: tuple[str, ...] = ()) -> None:
        stats = self._peers.get(peer)
        if stats is None:
            stats = self._peers[peer] = _PeerStats()
        stats.connected = True
        stats.expire = 0.0
        self._set_ips(peer, stats, ips)

    def _set_ips(self, peer: PeerId, stats: _PeerStats, ips: tuple[str, ...]) -> None:
        for ip in stats.ips:
            members = self._peer_ips.get(ip)
            if members is not None:
                members.discard(peer)
                if not members:
                    del self._peer_ips[ip]
        stats.ips = ips
        for ip in ips:
            self._peer_ips.setdefault(ip, set()).add(peer)

    def remove_peer(self, peer: PeerId, now: float) -> None:
        stats = self._peers.get(peer)
        if stats is None:
            return
        if self.score(peer) > 0:
            self._set_ips(peer, stats, ())
            del self._peers[peer]
            return
        # Retain a non-positive score so that reconnecting does not wash it (gossipsub-v1.1 §"Score
        # Retention"); first deliveries are forgotten and mesh deficits become mesh failure penalties.
        for topic, ts in stats.topics.items():
            ts.first_message_deliveries = 0.0
            self._apply_mesh_failure(topic, ts)
            ts.in_mesh = False
            ts.mesh_message_deliveries_active = False
        stats.connected = False
        stats.expire = now + self.params.retain_score

    def set_app_score(self, peer: PeerId, value: float) -> None:
        stats = self._peers.get(peer)
        if stats is not None:
            stats.app_score = value

    def _topic_stats(self, peer: PeerId, topic: str) -> _TopicStats | None:
        if topic not in self.params.topics:
            return None
        stats = self._peers.get(peer)
        if stats is None:
            return None
        ts = stats.topics.get(topic)
        if ts is None:
            ts = stats.topics[topic] = _TopicStats()
        return ts

    def _apply_mesh_failure(self, topic: str, ts: _TopicStats) -> None:
        tp = self.params.topics.get(topic)
        if tp is None:
            return
        threshold = tp.mesh_message_deliveries_threshold
        if ts.in_mesh and ts.mesh_message_deliveries_active and ts.mesh_message_deliveries < threshold:
            deficit = threshold - ts.mesh_message_deliveries
            ts.mesh_failure_penalty += deficit * deficit

    # --- mesh membership ---

    def graft(self, peer: PeerId, topic: str, now: float) -> None:
        ts = self._topic_stats(peer, topic)
        if ts is None:
            return
        ts.in_mesh = True
        ts.graft_time = now
        ts.mesh_time = 0.0
        ts.mesh_message_deliveries_active = False

    def prune(self, peer: PeerId, topic: str) -> None:
        ts = self._topic_stats(peer, topic)
        if ts is None:
            return
        self._apply_mesh_failure(topic, ts)
        # P3 applies to mesh members only; out of the mesh the deficit lives on as P3b (as rust does; go
        # keeps P3 active until the next graft and so counts the deficit twice).
        ts.in_mesh = False
        ts.mesh_message_deliveries_active = False

    # --- penalties ---

    def add_penalty(self, peer: PeerId, count: float) -> None:
        stats = self._peers.get(peer)
        if stats is not None:
            stats.behaviour_penalty += count

    # --- message deliveries (gossipsub-v1.1 §"Topic Parameter Calculation") ---

    def _record(self, msg_id: bytes, now: float) -> _DeliveryRecord:
        rec = self._deliveries.get(msg_id)
        if rec is None:
            rec = self._deliveries[msg_id] = _DeliveryRecord(now + self.params.seen_msg_ttl)
        return rec

    def validate_message(self, msg_id: bytes, now: float) -> None:
        """A new message entered validation."""
        self._record(msg_id, now)

    def deliver_message(self, msg_id: bytes, topic: str, source: PeerId, now: float) -> None:
        """A message was accepted: a first delivery for ``source``, a (late) duplicate for the others."""
        rec = self._record(msg_id, now)
        self._mark_first_delivery(source, topic)
        rec.status = DeliveryStatus.VALID
        rec.validated = now
        for peer in rec.peers:
            if peer != source:
                self._mark_duplicate_delivery(peer, topic, now, -1.0)
        rec.peers.clear()

    def reject_message(
        self, msg_id: bytes | None, topic: str, source: PeerId, status: DeliveryStatus, now: float
    ) -> None:
        """A message failed validation; INVALID penalises the source and every peer that forwarded it."""
        if msg_id is None:
            # Signature / policy failures: no record (the ID is not trustworthy), penalise the sender only.
            self._mark_invalid_delivery(source, topic)
            return
        rec = self._record(msg_id, now)
        if rec.status is not DeliveryStatus.UNKNOWN:
            return
        rec.status = status
        if status is DeliveryStatus.INVALID:
            self._mark_invalid_delivery(source, topic)
            for peer in rec.peers:
                self._mark_invalid_delivery(peer, topic)
        rec.peers.clear()

    def duplicate_message(self, msg_id: bytes, topic: str, peer: PeerId, now: float) -> None:
        rec = self._record(msg_id, now)
        if peer in rec.peers:
            return
        if rec.status is DeliveryStatus.UNKNOWN:
            rec.peers.add(peer)  # judged when validation completes
        elif rec.status is DeliveryStatus.VALID:
            rec.peers.add(peer)
            self._mark_duplicate_delivery(peer, topic, now, rec.validated)
        elif rec.status is DeliveryStatus.INVALID:
            self._mark_invalid_delivery(peer, topic)

    def _mark_first_delivery(self, peer: PeerId, topic: str) -> None:
        ts = self._topic_stats(peer, topic)
        if ts is None:
            return
        tp = self.params.topics[topic]
        ts.first_message_deliveries = min(ts.first_message_deliveries + 1, tp.first_message_deliveries_cap)
        if ts.in_mesh:
            ts.mesh_message_deliveries = min(ts.mesh_message_deliveries + 1, tp.mesh_message_deliveries_cap)

    def _mark_duplicate_delivery(self, peer: PeerId, topic: str, now: float, validated: float) -> None:
        ts = self._topic_stats(peer, topic)
        if ts is None or not ts.in_mesh:
            return
        tp = self.params.topics[topic]
        if validated >= 0 and now > validated + tp.mesh_message_deliveries_window:
            return  # too late to count as a mesh delivery
        ts.mesh_message_deliveries = min(ts.mesh_message_deliveries + 1, tp.mesh_message_deliveries_cap)

    def _mark_invalid_delivery(self, peer: PeerId, topic: str) -> None:
        ts = self._topic_stats(peer, topic)
        if ts is not None:
            ts.invalid_message_deliveries += 1

    # --- time ---

    def tick(self, now: float) -> None:
        """Decay counters for every ``decay_interval`` elapsed and expire retained scores and records."""
        if self._next_decay is None:
            self._next_decay = now + self.params.decay_interval
        while now >= self._next_decay:
            self._next_decay += self.params.decay_interval
            self._decay(now)
        deliveries = self._deliveries
        while deliveries:
            msg_id, rec = next(iter(deliveries.items()))
            if rec.expire > now:
                break
            del deliveries[msg_id]

    def _decay(self, now: float) -> None:
        p = self.params
        zero = p.decay_to_zero
        for peer, stats in list(self._peers.items()):
            if not stats.connected:
                if now >= stats.expire:
                    self._set_ips(peer, stats, ())
                    del self._peers[peer]
                continue
            for topic, ts in stats.topics.items():
                tp = p.topics.get(topic)
                if tp is None:
                    continue
                ts.first_message_deliveries = _decayed(
                    ts.first_message_deliveries, tp.first_message_deliveries_decay, zero
                )
                ts.mesh_message_deliveries = _decayed(
                    ts.mesh_message_deliveries, tp.mesh_message_deliveries_decay, zero
                )
                ts.mesh_failure_penalty = _decayed(
                    ts.mesh_failure_penalty, tp.mesh_failure_penalty_decay, zero
                )
                ts.invalid_message_deliveries = _decayed(
                    ts.invalid_message_deliveries, tp.invalid_message_deliveries_decay, zero
                )
                if ts.in_mesh:
                    ts.mesh_time = now - ts.graft_time
                    if ts.mesh_time > tp.mesh_message_deliveries_activation:
                        ts.mesh_message_deliveries_active = True
            stats.behaviour_penalty = _decayed(stats.behaviour_penalty, p.behaviour_penalty_decay, zero)

    # --- the score ---

    def score(self, peer: PeerId) -> float:
        stats = self._peers.get(peer)
        if stats is None:
            return 0.0
        p = self.params
        score = 0.0
        for topic, ts in stats.topics.items():
            tp = p.topics.get(topic)
            if tp is None:
                continue
            t = 0.0
            if ts.in_mesh:
                p1 = min(ts.mesh_time / tp.time_in_mesh_quantum, tp.time_in_mesh_cap)
                t += p1 * tp.time_in_mesh_weight
            t += ts.first_message_deliveries * tp.first_message_deliveries_weight
            if (
                ts.mesh_message_deliveries_active
                and ts.mesh_message_deliveries < tp.mesh_message_deliveries_threshold
            ):
                deficit = tp.mesh_message_deliveries_threshold - ts.mesh_message_deliveries
                t += deficit * deficit * tp.mesh_message_deliveries_weight
            t += ts.mesh_failure_penalty * tp.mesh_failure_penalty_weight
            t += (
                ts.invalid_message_deliveries
                * ts.invalid_message_deliveries
                * tp.invalid_message_deliveries_weight
            )
            score += t * tp.topic_weight
        if p.topic_score_cap > 0 and score > p.topic_score_cap:
            score = p.topic_score_cap
        score += stats.app_score * p.app_specific_weight
        for ip in stats.ips:
            if ip in p.ip_colocation_factor_whitelist:
                continue
            count = len(self._peer_ips.get(ip, ()))
            if count > p.ip_colocation_factor_threshold:
                surplus = count - p.ip_colocation_factor_threshold
                score += surplus * surplus * p.ip_colocation_factor_weight
        if stats.behaviour_penalty > p.behaviour_penalty_threshold:
            excess = stats.behaviour_penalty - p.behaviour_penalty_threshold
            score += excess * excess * p.behaviour_penalty_weight
        return score


def _decayed(value: float, decay: float, zero: float) -> float:
    value *= decay
    return 0.0 if value < zero else value
