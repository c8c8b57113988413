"""GossipSub v1.1 / v1.2 router, sans-I/O (``/meshsub/1.0.0``, ``/meshsub/1.1.0``, ``/meshsub/1.2.0``).

Specs (https://github.com/libp2p/specs/tree/master/pubsub/gossipsub):

* gossipsub-v1.0.md — mesh and fanout (D, D_lo, D_hi), the heartbeat and its mesh maintenance,
  the message cache, IHAVE/IWANT gossip, GRAFT/PRUNE.
* gossipsub-v1.1.md — explicit (direct) peers, PRUNE backoff and peer exchange with signed peer records,
  flood publishing, adaptive gossip (gossip factor), D_out outbound quota, peer scoring and its thresholds
  (see :mod:`.score`), opportunistic grafting, spam protection (IHAVE/IWANT limits, gossip promises, GRAFT
  flooding during backoff).
* gossipsub-v1.2.md — IDONTWANT: sent at once to mesh peers on first receipt of a large message, honoured
  when forwarding; only to and from ``/meshsub/1.2.0`` peers.

Defaults are go-libp2p-pubsub's (``gossipsub.go``). The router is driven like the core (``now`` on every
call, frames and events out); :meth:`GossipSub.next_timer` says when :meth:`GossipSub.heartbeat` is due.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from ..crypto.keys import PrivateKey
from ..crypto.peer_id import PeerId
from ..crypto.peer_record import open_signed_peer_record
from ..exceptions import Libp2pError
from ..wire.pb import pubsub_pb2 as pb
from .caches import MessageCache
from .core import FLOODSUB_PROTOCOL_ID, ConnectToPeer, PeerState, PubSubConfig, PubSubRouter
from .message import PubSubMessage, RejectReason
from .score import DeliveryStatus, PeerScore, PeerScoreParams, PeerScoreThresholds

GOSSIPSUB_V10: Final = "/meshsub/1.0.0"
GOSSIPSUB_V11: Final = "/meshsub/1.1.0"
GOSSIPSUB_V12: Final = "/meshsub/1.2.0"
GOSSIPSUB_PROTOCOLS: Final = (GOSSIPSUB_V12, GOSSIPSUB_V11, GOSSIPSUB_V10, FLOODSUB_PROTOCOL_ID)
"""Advertised protocols, most preferred first (multistream picks the first the remote supports)."""

_MESHSUB: Final = frozenset({GOSSIPSUB_V10, GOSSIPSUB_V11, GOSSIPSUB_V12})
_V11_PLUS: Final = frozenset({GOSSIPSUB_V11, GOSSIPSUB_V12})
_IDONTWANT_FIELD: Final = pb.ControlMessage.DESCRIPTOR.fields_by_name["idontwant"]


@dataclass(frozen=True, slots=True)
class GossipSubConfig:
    """GossipSub parameters; the defaults are go-libp2p-pubsub's ``DefaultGossipSubParams``."""

    pubsub: PubSubConfig = field(default_factory=PubSubConfig)
    d: int = 6
    d_lo: int = 5
    d_hi: int = 12
    d_score: int = 4
    d_out: int = 2
    d_lazy: int = 6
    history_length: int = 5
    history_gossip: int = 3
    gossip_factor: float = 0.25
    gossip_retransmission: int = 3
    heartbeat_initial_delay: float = 0.1
    heartbeat_interval: float = 1.0
    fanout_ttl: float = 60.0
    prune_peers: int = 16
    prune_backoff: float = 60.0
    unsubscribe_backoff: float = 10.0
    backoff_slack: float = 1.0
    """Extra seconds we wait after a backoff expires before grafting (one heartbeat, per the spec)."""
    graft_flood_threshold: float = 10.0
    opportunistic_graft_ticks: int = 60
    opportunistic_graft_peers: int = 2
    direct_connect_ticks: int = 300
    max_ihave_length: int = 5000
    max_ihave_messages: int = 10
    max_idontwant_messages: int = 1000
    max_idontwant_length: int = 10
    idontwant_message_threshold: int = 1024
    idontwant_message_ttl: int = 3
    """Heartbeats a received IDONTWANT is remembered."""
    iwant_followup_time: float = 3.0
    flood_publish: bool = True
    do_px: bool = False
    """Send peer exchange in our PRUNEs (go's WithPeerExchange; off by default)."""
    direct_peers: frozenset[PeerId] = frozenset()
    score_params: PeerScoreParams | None = None
    """None disables scoring: every score is 0 and all thresholds are 0 (as in go)."""
    score_thresholds: PeerScoreThresholds = field(
        default_factory=lambda: PeerScoreThresholds(0.0, 0.0, 0.0, 0.0, 0.0)
    )
    protocols: tuple[str, ...] = GOSSIPSUB_PROTOCOLS

    def validate(self) -> None:
        if not (0 <= self.d_lo <= self.d <= self.d_hi):
            raise ValueError("need d_lo <= d <= d_hi")
        if not (0 <= self.d_out < self.d_lo and self.d_out <= self.d // 2):
            raise ValueError("need d_out < d_lo and d_out <= d / 2")
        if self.d_score > self.d:
            raise ValueError("need d_score <= d")
        if self.heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be > 0")
        if self.score_params is not None:
            self.score_params.validate()
            self.score_thresholds.validate()


class _Promises:
    """Gossip promises (gossipsub-v1.1.md §"Spam Protection"): a peer that advertised a message in IHAVE
    and was sent an IWANT must deliver it within ``iwant_followup_time``, or it earns a P7 penalty."""

    def __init__(self) -> None:
        self._by_msg: dict[bytes, dict[PeerId, float]] = {}

    def add(self, peer: PeerId, msg_ids: list[bytes], rng: random.Random, expire: float) -> None:
        if not msg_ids:
            return
        mid = rng.choice(msg_ids)  # one random ID per IWANT is enough to catch a liar
        peers = self._by_msg.setdefault(mid, {})
        peers.setdefault(peer, expire)

    def fulfil(self, msg_id: bytes) -> None:
        self._by_msg.pop(msg_id, None)

    def broken(self, now: float) -> dict[PeerId, int]:
        counts: dict[PeerId, int] = {}
        for mid in list(self._by_msg):
            peers = self._by_msg[mid]
            for peer, expire in list(peers.items()):
                if expire < now:
                    counts[peer] = counts.get(peer, 0) + 1
                    del peers[peer]
            if not peers:
                del self._by_msg[mid]
        return counts

    def __len__(self) -> int:
        return len(self._by_msg)


class GossipSub(PubSubRouter):
    """The GossipSub router."""

    def __init__(
        self,
        local_peer: PeerId,
        config: GossipSubConfig | None = None,
        *,
        private_key: PrivateKey | None = None,
        rng: random.Random | None = None,
        initial_seqno: int | None = None,
    ) -> None:
        config = config or GossipSubConfig()
        config.validate()
        super().__init__(
            local_peer, config.pubsub, private_key=private_key, rng=rng, initial_seqno=initial_seqno
        )
        self.gs = config
        self.protocols = config.protocols
        self.mesh: dict[str, set[PeerId]] = {}
        self.fanout: dict[str, set[PeerId]] = {}
        self.last_pub: dict[str, float] = {}
        self.backoff: dict[str, dict[PeerId, float]] = {}
        self.mcache = MessageCache(config.history_length, config.history_gossip)
        self.score = PeerScore(config.score_params) if config.score_params is not None else None
        self.thresholds = config.score_thresholds
        self.direct = config.direct_peers
        self.peer_records: dict[PeerId, bytes] = {}
        self._promises = _Promises()
        self._peer_have: dict[PeerId, int] = {}
        self._iasked: dict[PeerId, int] = {}
        self._peer_dontwant: dict[PeerId, int] = {}
        self._unwanted: dict[PeerId, dict[bytes, int]] = {}
        self._retry_control: dict[PeerId, tuple[set[str], dict[str, pb.ControlPrune]]] = {}
        self._floodsub_peers: set[PeerId] = set()
        """Peers speaking FloodSub (forwarding checks them per message; usually none)."""
        self._heartbeat_ticks = 0
        self._next_heartbeat: float | None = None

    # --- time ---

    def start(self, now: float) -> None:
        """Arm the heartbeat (first one after ``heartbeat_initial_delay``)."""
        if self._next_heartbeat is None:
            self._next_heartbeat = now + self.gs.heartbeat_initial_delay
            if self.score is not None:
                self.score.tick(now)

    def next_timer(self) -> float | None:
        return self._next_heartbeat

    def handle_timer(self, now: float) -> None:
        """Run the heartbeat if it is due (call at :meth:`next_timer`)."""
        if self._next_heartbeat is None:
            self.start(now)
            return
        if now >= self._next_heartbeat:
            self._next_heartbeat = max(self._next_heartbeat + self.gs.heartbeat_interval, now)
            self.heartbeat(now)

    # --- helpers ---

    def peer_score(self, peer: PeerId) -> float:
        return 0.0 if self.score is None else self.score.score(peer)

    def set_app_score(self, peer: PeerId, value: float) -> None:
        """P5, the application-specific score of ``peer``."""
        if self.score is not None:
            self.score.set_app_score(peer, value)

    def set_peer_record(self, peer: PeerId, signed_record: bytes) -> None:
        """The signed peer record of a connected peer (from identify), sent in PX."""
        if peer in self.peers:
            self.peer_records[peer] = signed_record

    def _is_gossipsub(self, peer: PeerId) -> bool:
        st = self.peers.get(peer)
        return st is not None and st.protocol in _MESHSUB

    def _supports_px(self, peer: PeerId) -> bool:
        st = self.peers.get(peer)
        return st is not None and st.protocol in _V11_PLUS

    def _supports_idontwant(self, peer: PeerId) -> bool:
        st = self.peers.get(peer)
        return st is not None and st.protocol == GOSSIPSUB_V12

    def _in_backoff(self, topic: str, peer: PeerId, now: float) -> bool:
        expire = self.backoff.get(topic, {}).get(peer)
        return expire is not None and now < expire + self.gs.backoff_slack

    def _add_backoff(self, peer: PeerId, topic: str, duration: float, now: float) -> None:
        entries = self.backoff.setdefault(topic, {})
        expire = now + duration
        if entries.get(peer, 0.0) < expire:
            entries[peer] = expire

    def _candidates(self, topic: str, count: int, accept: Iterable[PeerId] | None = None) -> list[PeerId]:
        pool = [
            p for p in (accept if accept is not None else self.topics.get(topic, ())) if self._is_gossipsub(p)
        ]
        self.rng.shuffle(pool)
        return pool[:count] if count >= 0 else pool

    def _accept_from(self, peer: PeerId) -> bool:
        if self.score is None:
            return self.thresholds.graylist_threshold <= 0.0  # (every peer scores 0; called per RPC)
        if peer in self.direct:
            return True
        return self.score.score(peer) >= self.thresholds.graylist_threshold

    # --- peers ---

    def _on_peer_added(self, peer: PeerId, now: float) -> None:
        if self.peers[peer].protocol == FLOODSUB_PROTOCOL_ID:
            self._floodsub_peers.add(peer)
        if self.score is not None:
            self.score.add_peer(peer, now, self.peers[peer].ips)

    def _on_peer_removed(self, peer: PeerId, st: PeerState, now: float) -> None:
        for peers in self.mesh.values():
            peers.discard(peer)
        for peers in self.fanout.values():
            peers.discard(peer)
        self.peer_records.pop(peer, None)
        self._peer_have.pop(peer, None)
        self._iasked.pop(peer, None)
        self._peer_dontwant.pop(peer, None)
        self._unwanted.pop(peer, None)
        self._retry_control.pop(peer, None)
        self._floodsub_peers.discard(peer)
        if self.score is not None:
            self.score.remove_peer(peer, now)

    def _resync_control(self, peer: PeerId, rpc: pb.RPC) -> None:
        for topic in sorted(t for t, mesh in self.mesh.items() if peer in mesh):
            rpc.control.graft.add(topicID=topic)

    def _on_peer_joined_topic(self, peer: PeerId, topic: str, now: float) -> None:
        # Graft at once when our mesh is short, instead of waiting for the heartbeat (as rust does), so a
        # freshly joined topic carries messages as soon as peers announce themselves.
        mesh = self.mesh.get(topic)
        if (
            mesh is not None
            and len(mesh) < self.gs.d_lo
            and peer not in mesh
            and peer not in self.direct
            and self._is_gossipsub(peer)
            and not self._in_backoff(topic, peer, now)
            and self.peer_score(peer) >= 0
        ):
            mesh.add(peer)
            self._graft(peer, topic, now)

    def _on_peer_left_topic(self, peer: PeerId, topic: str, now: float) -> None:
        mesh = self.mesh.get(topic)
        if mesh is not None and peer in mesh:
            mesh.discard(peer)
            if self.score is not None:
                self.score.prune(peer, topic)
        fanout = self.fanout.get(topic)
        if fanout is not None:
            fanout.discard(peer)

    # --- join / leave (gossipsub-v1.0.md §"Topic Membership") ---

    def _on_join(self, topic: str, now: float) -> None:
        if topic in self.mesh:
            return
        mesh: set[PeerId] = set()
        fanout = self.fanout.pop(topic, None)
        self.last_pub.pop(topic, None)
        if fanout:
            mesh.update(
                p
                for p in fanout
                if p not in self.direct and self.peer_score(p) >= 0 and not self._in_backoff(topic, p, now)
            )
        if len(mesh) < self.gs.d:
            more = [
                p
                for p in self.topics.get(topic, ())
                if p not in mesh
                and p not in self.direct
                and self._is_gossipsub(p)
                and not self._in_backoff(topic, p, now)
                and self.peer_score(p) >= 0
            ]
            self.rng.shuffle(more)
            mesh.update(more[: self.gs.d - len(mesh)])
        self.mesh[topic] = mesh
        for peer in mesh:
            self._graft(peer, topic, now)

    def _on_leave(self, topic: str, now: float) -> None:
        mesh = self.mesh.pop(topic, None)
        if not mesh:
            return
        for peer in mesh:
            if self.score is not None:
                self.score.prune(peer, topic)
            self._send_prune(peer, topic, now, px=self.gs.do_px, unsubscribe=True)
            self._add_backoff(peer, topic, self.gs.unsubscribe_backoff, now)

    def _graft(self, peer: PeerId, topic: str, now: float) -> None:
        if self.score is not None:
            self.score.graft(peer, topic, now)
        self._outgoing(peer).graft.append(topic)

    def _make_prune(self, peer: PeerId, topic: str, *, px: bool, unsubscribe: bool) -> pb.ControlPrune:
        prune = pb.ControlPrune(topicID=topic)
        if not self._supports_px(peer):
            return prune  # v1.0 peers know neither backoff nor PX
        prune.backoff = int(self.gs.unsubscribe_backoff if unsubscribe else self.gs.prune_backoff)
        if px:
            pool = [
                p
                for p in self.topics.get(topic, ())
                if p != peer and self._is_gossipsub(p) and self.peer_score(p) >= 0
            ]
            self.rng.shuffle(pool)
            for p in pool[: self.gs.prune_peers]:
                info = prune.peers.add(peerID=p.to_bytes())
                record = self.peer_records.get(p)
                if record is not None:
                    info.signedPeerRecord = record
        return prune

    def _send_prune(
        self, peer: PeerId, topic: str, now: float, *, px: bool, unsubscribe: bool = False
    ) -> None:
        self._outgoing(peer).prune.append(self._make_prune(peer, topic, px=px, unsubscribe=unsubscribe))

    # --- publishing and forwarding (gossipsub-v1.0.md §"Message Processing", v1.1 §"Flood Publishing") ---

    def _forward(self, msg_id: bytes, message: PubSubMessage, received_from: PeerId, now: float) -> None:
        self.mcache.put(msg_id, message)
        topic = message.topic
        topic_peers = self.topics.get(topic, ())
        to_send: set[PeerId] = set()
        if not topic_peers:
            return
        publish_threshold = self.thresholds.publish_threshold
        if self.gs.flood_publish and received_from == self.local_peer:
            to_send.update(
                p for p in topic_peers if p in self.direct or self.peer_score(p) >= publish_threshold
            )
        else:
            if self.direct:
                to_send.update(p for p in topic_peers if p in self.direct)
            if self._floodsub_peers:
                for p in topic_peers:
                    if p in self._floodsub_peers and self.peer_score(p) >= publish_threshold:
                        to_send.add(p)
            mesh = self.mesh.get(topic)
            if mesh is not None:
                to_send.update(mesh)
            else:
                fanout = self.fanout.get(topic)
                if not fanout:
                    fanout = set(
                        self._candidates(
                            topic,
                            self.gs.d,
                            [
                                p
                                for p in topic_peers
                                if p not in self.direct and self.peer_score(p) >= publish_threshold
                            ],
                        )
                    )
                    self.fanout[topic] = fanout
                self.last_pub[topic] = now
                to_send.update(fanout)
        to_send.discard(received_from)
        if message.source is not None:
            to_send.discard(message.source)
        all_unwanted = self._unwanted
        pbm = message.pb
        for peer in to_send:
            unwanted = all_unwanted.get(peer)
            if unwanted is not None and msg_id in unwanted:
                continue  # the peer sent IDONTWANT for it (v1.2)
            self._outgoing(peer).messages.append(pbm)

    # --- score tracing of messages ---

    def _on_validate(self, peer: PeerId, msg_id: bytes, message: PubSubMessage, now: float) -> None:
        self._promises.fulfil(msg_id)
        if self.score is not None:
            self.score.validate_message(msg_id, now)
        # v1.2: tell mesh peers at once that we have a large message, so they skip sending it to us.
        if len(message.data) >= self.gs.idontwant_message_threshold:
            mesh = self.mesh.get(message.topic)
            if mesh:
                peers = self.peers
                source = message.source
                for p in mesh:
                    if p != peer and p != source:
                        st = peers.get(p)
                        if st is not None and st.protocol == GOSSIPSUB_V12:  # (_supports_idontwant)
                            self._outgoing(p).idontwant.append(msg_id)

    def _on_deliver(self, peer: PeerId, msg_id: bytes, message: PubSubMessage, now: float) -> None:
        if self.score is not None:
            self.score.deliver_message(msg_id, message.topic, peer, now)

    def _on_duplicate(self, peer: PeerId, msg_id: bytes, topic: str, now: float) -> None:
        if self.score is not None:
            self.score.duplicate_message(msg_id, topic, peer, now)
        self._take_back_forward(peer, msg_id)  # the peer has it (it sent it to us)

    def _take_back_forward(self, peer: PeerId, msg_id: bytes) -> None:
        """The peer has ``msg_id``: our forward of it still queued for the peer need not go."""
        st = self.peers.get(peer)
        if st is not None and st.queued:
            m = self.mcache.get(msg_id)
            if m is not None:
                self.cancel_queued(st, m.pb)

    def _on_throttled(self, peer: PeerId, msg_id: bytes, message: PubSubMessage, now: float) -> None:
        if self.score is not None:
            self.score.reject_message(msg_id, message.topic, peer, DeliveryStatus.THROTTLED, now)

    def _on_reject(
        self, peer: PeerId, msg_id: bytes | None, topic: str, reason: RejectReason, now: float
    ) -> None:
        if msg_id is not None:
            # (a message rejected before it had a trusted ID, e.g. a bad signature, fulfils no promise)
            self._promises.fulfil(msg_id)
        if self.score is None:
            return
        if msg_id is None:
            if reason.penalised or reason is RejectReason.MESSAGE_TOO_LARGE:
                self.score.reject_message(None, topic, peer, DeliveryStatus.INVALID, now)
            return
        status = (
            DeliveryStatus.IGNORED if reason is RejectReason.VALIDATION_IGNORED else DeliveryStatus.INVALID
        )
        self.score.reject_message(msg_id, topic, peer, status, now)

    # --- control messages (gossipsub-v1.0.md §"Control Messages", v1.1 §"Spam Protection") ---

    def _handle_control(self, peer: PeerId, ctl: pb.ControlMessage, now: float) -> None:
        present = ctl.ListFields()  # (one call instead of reading the five lists, ~0.2 us each)
        if len(present) == 1 and present[0][0] is _IDONTWANT_FIELD:
            self._handle_idontwant(peer, ctl.idontwant)  # the usual control part of a forwarded message
            return
        iwant = self._handle_ihave(peer, ctl.ihave, now) if ctl.ihave else []
        if ctl.iwant:
            self._handle_iwant(peer, ctl.iwant)
        prunes = self._handle_graft(peer, ctl.graft, now) if ctl.graft else []
        if ctl.prune:
            self._handle_prune(peer, ctl.prune, now)
        if ctl.idontwant:
            self._handle_idontwant(peer, ctl.idontwant)
        out = self._outgoing(peer) if (iwant or prunes) else None
        if out is not None:
            out.iwant.extend(iwant)
            out.prune.extend(prunes)

    def _handle_ihave(self, peer: PeerId, ihaves: Iterable[pb.ControlIHave], now: float) -> list[bytes]:
        if self.peer_score(peer) < self.thresholds.gossip_threshold:
            self.stats.ihave_ignored += 1
            return []
        have = self._peer_have.get(peer, 0) + 1
        self._peer_have[peer] = have
        if have > self.gs.max_ihave_messages:
            self.stats.ihave_ignored += 1
            return []
        asked = self._iasked.get(peer, 0)
        if asked >= self.gs.max_ihave_length:
            self.stats.ihave_ignored += 1
            return []
        wanted: dict[bytes, None] = {}
        budget = self.gs.max_ihave_length
        for ihave in ihaves:
            topic = ihave.topicID
            if not isinstance(topic, str) or topic not in self.mesh:
                continue
            for mid in ihave.messageIDs:
                if mid not in self.seen and mid not in wanted:
                    wanted[mid] = None
                    if len(wanted) >= budget:
                        break
        if not wanted:
            return []
        ids = list(wanted)
        room = self.gs.max_ihave_length - asked
        if len(ids) > room:
            self.rng.shuffle(ids)
            ids = ids[:room]
        self._iasked[peer] = asked + len(ids)
        self._promises.add(peer, ids, self.rng, now + self.gs.iwant_followup_time)
        return ids

    def _handle_iwant(self, peer: PeerId, iwants: Iterable[pb.ControlIWant]) -> None:
        if self.peer_score(peer) < self.thresholds.gossip_threshold:
            self.stats.iwant_ignored += 1
            return
        out: dict[bytes, pb.Message] = {}
        asked: set[bytes] = set()
        for iwant in iwants:
            for mid in iwant.messageIDs:
                if mid in asked:
                    continue
                asked.add(mid)
                got = self.mcache.get_for_peer(mid, peer)
                if got is None:
                    continue
                msg, count = got
                if count > self.gs.gossip_retransmission:
                    self.stats.iwant_ignored += 1  # asked too often: no more retransmissions
                    continue
                out[mid] = msg.pb
        if out:
            unwanted = self._unwanted.get(peer)
            self._outgoing(peer).messages.extend(
                m for mid, m in out.items() if unwanted is None or mid not in unwanted
            )

    def _handle_graft(
        self, peer: PeerId, grafts: Iterable[pb.ControlGraft], now: float
    ) -> list[pb.ControlPrune]:
        prune_topics: list[str] = []
        do_px = self.gs.do_px
        score = self.peer_score(peer)
        for graft in grafts:
            topic = graft.topicID
            if not isinstance(topic, str):
                continue
            mesh = self.mesh.get(topic)
            if mesh is None:
                do_px = False  # unknown topic: ignore, and do not leak our peers
                continue
            if peer in mesh:
                continue
            if peer in self.direct:
                prune_topics.append(topic)  # grafting onto an explicit peering is a protocol error
                continue
            expire = self.backoff.get(topic, {}).get(peer)
            if expire is not None and now < expire:
                # GRAFT during backoff: penalise (twice if within the flood threshold of the PRUNE) and
                # answer with a PRUNE that restarts the backoff.
                if self.score is not None:
                    self.score.add_penalty(peer, 1)
                    flood_cutoff = expire + self.gs.graft_flood_threshold - self.gs.prune_backoff
                    if now < flood_cutoff:
                        self.score.add_penalty(peer, 1)
                do_px = False
                self._add_backoff(peer, topic, self.gs.prune_backoff, now)
                prune_topics.append(topic)
                continue
            if score < 0:
                do_px = False
                self._add_backoff(peer, topic, self.gs.prune_backoff, now)
                prune_topics.append(topic)
                continue
            st = self.peers[peer]
            if len(mesh) >= self.gs.d_hi and not st.outbound:
                self._add_backoff(peer, topic, self.gs.prune_backoff, now)
                prune_topics.append(topic)
                continue
            mesh.add(peer)
            if self.score is not None:
                self.score.graft(peer, topic, now)
        return [self._make_prune(peer, t, px=do_px, unsubscribe=False) for t in prune_topics]

    def _handle_prune(self, peer: PeerId, prunes: Iterable[pb.ControlPrune], now: float) -> None:
        score = self.peer_score(peer)
        for prune in prunes:
            topic = prune.topicID
            if not isinstance(topic, str):
                continue
            mesh = self.mesh.get(topic)
            if mesh is None:
                continue
            if peer in mesh:
                mesh.discard(peer)
                if self.score is not None:
                    self.score.prune(peer, topic)
            backoff = float(prune.backoff) if prune.backoff > 0 else self.gs.prune_backoff
            self._add_backoff(peer, topic, min(backoff, 24 * 3600.0), now)
            if prune.peers and score >= self.thresholds.accept_px_threshold:
                self._px_connect(list(prune.peers))

    def _px_connect(self, infos: list[pb.PeerInfo]) -> None:
        if len(infos) > self.gs.prune_peers:
            self.rng.shuffle(infos)
            infos = infos[: self.gs.prune_peers]
        for info in infos:
            try:
                pid = PeerId.from_bytes(info.peerID)
            except Libp2pError:
                continue
            if pid == self.local_peer or pid in self.peers:
                continue
            record: bytes | None = None
            if info.HasField("signedPeerRecord"):
                try:
                    rec, _ = open_signed_peer_record(info.signedPeerRecord)
                except Libp2pError:
                    continue  # an invalid record: ignore this peer
                if rec.peer_id != pid:
                    continue
                record = info.signedPeerRecord
            self._events.append(ConnectToPeer(pid, record))

    def _handle_idontwant(self, peer: PeerId, idontwants: Iterable[pb.ControlIDontWant]) -> None:
        count = self._peer_dontwant.get(peer, 0)
        if count >= self.gs.max_idontwant_messages:
            self.stats.idontwant_ignored += 1
            return
        self._peer_dontwant[peer] = count + 1
        unwanted = self._unwanted.get(peer)
        if unwanted is None:
            unwanted = self._unwanted[peer] = {}
        total = 0
        max_length = self.gs.max_idontwant_length
        ttl = self.gs.idontwant_message_ttl
        for idw in idontwants:
            for mid in idw.messageIDs:
                if total >= max_length:
                    return
                total += 1
                unwanted[mid] = ttl
                self._take_back_forward(peer, mid)

    def _on_frame_dropped(self, peer: PeerId, rpc: pb.RPC) -> None:
        # Keep GRAFT/PRUNE (they change mesh state on both sides) for the next flush that has room.
        if not rpc.HasField("control") or not (rpc.control.graft or rpc.control.prune):
            return
        grafts, prunes = self._retry_control.setdefault(peer, (set(), {}))
        grafts.update(g.topicID for g in rpc.control.graft)
        for p in rpc.control.prune:
            prunes[p.topicID] = p

    # --- heartbeat (gossipsub-v1.0.md §"Heartbeat", v1.1 §"Opportunistic Grafting") ---

    def heartbeat(self, now: float) -> None:
        self._heartbeat_ticks += 1
        ticks = self._heartbeat_ticks
        gs = self.gs
        self._peer_have.clear()
        self._iasked.clear()
        self._peer_dontwant.clear()
        for peer, unwanted in list(self._unwanted.items()):
            for mid in list(unwanted):
                ttl = unwanted[mid] - 1
                if ttl <= 0:
                    del unwanted[mid]
                else:
                    unwanted[mid] = ttl
            if not unwanted:
                del self._unwanted[peer]
        if self.score is not None:
            self.score.tick(now)
            for peer, count in self._promises.broken(now).items():
                self.score.add_penalty(peer, count)
        else:
            self._promises.broken(now)
        if ticks % 15 == 0:
            for topic in list(self.backoff):
                entries = self.backoff[topic]
                for peer in [p for p, exp in entries.items() if exp + 2 * gs.heartbeat_interval < now]:
                    del entries[peer]
                if not entries:
                    del self.backoff[topic]
        if self.direct and ticks % gs.direct_connect_ticks == 0:
            for peer in sorted(self.direct - self.peers.keys()):
                self._events.append(ConnectToPeer(peer))

        scores: dict[PeerId, float] = {}

        def score(p: PeerId) -> float:
            s = scores.get(p)
            if s is None:
                s = scores[p] = self.peer_score(p)
            return s

        to_graft: dict[PeerId, list[str]] = {}
        to_prune: dict[PeerId, list[str]] = {}
        no_px: set[PeerId] = set()

        def graft(p: PeerId, topic: str, mesh: set[PeerId]) -> None:
            mesh.add(p)
            if self.score is not None:
                self.score.graft(p, topic, now)
            to_graft.setdefault(p, []).append(topic)

        def prune(p: PeerId, topic: str, mesh: set[PeerId]) -> None:
            mesh.discard(p)
            if self.score is not None:
                self.score.prune(p, topic)
            self._add_backoff(p, topic, gs.prune_backoff, now)
            to_prune.setdefault(p, []).append(topic)

        def eligible(p: PeerId, topic: str, mesh: set[PeerId]) -> bool:
            return (
                p not in mesh
                and p not in self.direct
                and self._is_gossipsub(p)
                and not self._in_backoff(topic, p, now)
                and score(p) >= 0
            )

        for topic, mesh in self.mesh.items():
            for p in [p for p in mesh if score(p) < 0]:
                prune(p, topic, mesh)
                no_px.add(p)
            topic_peers = self.topics.get(topic, set())
            if len(mesh) < gs.d_lo:
                pool = [p for p in topic_peers if eligible(p, topic, mesh)]
                self.rng.shuffle(pool)
                for p in pool[: gs.d - len(mesh)]:
                    graft(p, topic, mesh)
            if len(mesh) > gs.d_hi:
                peers = list(mesh)
                self.rng.shuffle(peers)
                peers.sort(key=score, reverse=True)
                rest = peers[gs.d_score :]
                self.rng.shuffle(rest)
                peers = peers[: gs.d_score] + rest
                outbound = sum(1 for p in peers[: gs.d] if self.peers[p].outbound)
                if outbound < gs.d_out:
                    # Keep D_out outbound peers: bubble the outbound peers already kept to the front, then
                    # enough outbound peers from beyond D (go's rotation).
                    have = outbound
                    for i in range(1, gs.d):
                        if have <= 0:
                            break
                        if self.peers[peers[i]].outbound:
                            peers.insert(0, peers.pop(i))
                            have -= 1
                    need = gs.d_out - outbound
                    for i in range(gs.d, len(peers)):
                        if need <= 0:
                            break
                        if self.peers[peers[i]].outbound:
                            peers.insert(0, peers.pop(i))
                            need -= 1
                for p in peers[gs.d :]:
                    prune(p, topic, mesh)
            if len(mesh) >= gs.d_lo:
                outbound = sum(1 for p in mesh if self.peers[p].outbound)
                if outbound < gs.d_out:
                    pool = [p for p in topic_peers if eligible(p, topic, mesh) and self.peers[p].outbound]
                    self.rng.shuffle(pool)
                    for p in pool[: gs.d_out - outbound]:
                        graft(p, topic, mesh)
            if ticks % gs.opportunistic_graft_ticks == 0 and len(mesh) > 1:
                median = statistics.median(score(p) for p in mesh)
                if median < self.thresholds.opportunistic_graft_threshold:
                    pool = [p for p in topic_peers if eligible(p, topic, mesh) and score(p) > median]
                    self.rng.shuffle(pool)
                    for p in pool[: gs.opportunistic_graft_peers]:
                        graft(p, topic, mesh)
            self._emit_gossip(topic, mesh, score)

        for topic in [t for t, last in self.last_pub.items() if last + gs.fanout_ttl < now]:
            del self.last_pub[topic]
            self.fanout.pop(topic, None)
        for topic, fanout in self.fanout.items():
            topic_peers = self.topics.get(topic, set())
            for p in [
                p for p in fanout if p not in topic_peers or score(p) < self.thresholds.publish_threshold
            ]:
                fanout.discard(p)
            if len(fanout) < gs.d:
                pool = [
                    p
                    for p in topic_peers
                    if p not in fanout
                    and p not in self.direct
                    and self._is_gossipsub(p)
                    and score(p) >= self.thresholds.publish_threshold
                ]
                self.rng.shuffle(pool)
                fanout.update(pool[: gs.d - len(fanout)])
            self._emit_gossip(topic, fanout, score)

        for p, topics in to_graft.items():
            self._outgoing(p).graft.extend(topics)
        for p, topics in to_prune.items():
            px = gs.do_px and p not in no_px
            self._outgoing(p).prune.extend(self._make_prune(p, t, px=px, unsubscribe=False) for t in topics)
        for p, (grafts, prunes) in self._retry_control.items():
            out = self._outgoing(p)
            out.graft.extend(t for t in grafts if t in self.mesh and p in self.mesh[t])
            out.prune.extend(prunes.values())
        self._retry_control.clear()
        self.mcache.shift()
        self.sweep(now)
        self._flush()

    def _emit_gossip(self, topic: str, exclude: set[PeerId], score: Callable[[PeerId], float]) -> None:
        mids = self.mcache.gossip_ids(topic)
        if not mids:
            return
        gs = self.gs
        if len(mids) > gs.max_ihave_length:
            self.rng.shuffle(mids)
            mids = mids[: gs.max_ihave_length]
        pool = [
            p
            for p in self.topics.get(topic, ())
            if p not in exclude
            and p not in self.direct
            and self._is_gossipsub(p)
            and score(p) >= self.thresholds.gossip_threshold
        ]
        target = max(gs.d_lazy, int(gs.gossip_factor * len(pool)))
        self.rng.shuffle(pool)
        for p in pool[:target]:
            self._outgoing(p).ihave.append(pb.ControlIHave(topicID=topic, messageIDs=mids))
