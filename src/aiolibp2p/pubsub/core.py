"""The sans-I/O PubSub core shared by FloodSub and GossipSub (pubsub/README.md).

One object per node owns all pubsub state (STYLE §1, §8): peers and the protocol each speaks, who is
subscribed to what, the local subscriptions, the seen cache (pubsub/README.md §"Message Identification")
and the validation pipeline. It is driven by method calls that carry ``now`` (monotonic seconds) and it
never reads a clock, opens a stream or starts a task. Its output is

* frames: encoded ``RPC`` protobufs per peer (without the uvarint length prefix), in bounded per-peer
  queues (:attr:`PubSubConfig.max_outbound_rpcs_per_peer`; drops are counted), taken with
  :meth:`PubSubRouter.take_frames`;
* events (:meth:`PubSubRouter.take_events`): messages to validate, messages to deliver to local
  subscribers, peers joining/leaving topics, peers to connect to (PX).

Validation: the adapter runs the topic validators for each :class:`ValidateMessage` and reports the verdict
with :meth:`PubSubRouter.report_validation` (pubsub/README.md §"Topic Validation"; gossipsub-v1.1.md
§"Extended Validators"). Messages are marked seen once their signature has been checked (as go does), so a
forged copy cannot shadow the real one and a duplicate costs no signature check.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from google.protobuf.message import DecodeError as PbDecodeError

from ..crypto.keys import PrivateKey
from ..crypto.peer_id import PeerId
from ..exceptions import DecodeError, MessageTooLarge, ProtocolViolation
from ..wire.pb import pubsub_pb2 as pb
from ..wire.varint import encode_uvarint
from .caches import SeenCache
from .message import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MessageIdFn,
    MessageRejected,
    PubSubMessage,
    RejectReason,
    SignaturePolicy,
    ValidationResult,
    build_message,
    check_message,
    default_message_id,
    verify_signature,
)

FLOODSUB_PROTOCOL_ID: Final = "/floodsub/1.0.0"

_RPC_OVERHEAD: Final = 16
"""Bytes of RPC framing around one message (field tag + length varints), kept free when checking sizes."""
_PUBLISH_TAG: Final = b"\x12"
"""``RPC.publish`` (field 2, length-delimited): the key before each encoded message in a frame."""


@dataclass(frozen=True, slots=True)
class PubSubConfig:
    """Parameters of the common core (defaults are go-libp2p-pubsub's)."""

    signature_policy: SignaturePolicy = SignaturePolicy.STRICT_SIGN
    message_id_fn: MessageIdFn = default_message_id
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    """Largest RPC frame sent or accepted (go: 1 MiB); a published message must fit in one frame."""
    seen_ttl: float = 120.0
    """Seconds a message ID stays in the seen cache (go's TimeCacheDuration)."""
    max_pending_validations: int = 8192
    """Messages awaiting a validation verdict at once (go's validate throttle); more are dropped."""
    max_outbound_rpcs_per_peer: int = 128
    """Frames queued for one peer before new ones are dropped (go drops at 32; counted in stats)."""
    control_piggyback_limit: int = 1400
    """Largest frame in which an IDONTWANT rides with the message it is sent with, when nothing else is queued
    for the peer: about one TCP segment (Ethernet MSS less Noise and yamux overhead), which arrives whole
    either way. Otherwise the IDONTWANT leaves in a frame of its own, ahead of every frame queued for the peer
    (go sends it on its urgent queue), so the peer reads it without waiting for a message body or a backlog."""
    max_topics_per_peer: int = 5000
    """Topics one remote peer may be subscribed to; further subscriptions are ignored."""
    max_subscriptions_per_rpc: int = 5000
    """SubOpts processed from one RPC; the rest are ignored."""
    max_messages_per_rpc: int = 5000
    """Published messages processed from one RPC; the rest are ignored."""


# --- events --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValidateMessage:
    """Run the topic validators on ``message`` and call ``report_validation(msg_id, verdict, now)``."""

    msg_id: bytes
    message: PubSubMessage
    received_from: PeerId


@dataclass(frozen=True, slots=True)
class DeliverMessage:
    """A valid message for a locally subscribed topic (also our own publishes)."""

    msg_id: bytes
    message: PubSubMessage
    received_from: PeerId


@dataclass(frozen=True, slots=True)
class PeerJoinedTopic:
    peer: PeerId
    topic: str


@dataclass(frozen=True, slots=True)
class PeerLeftTopic:
    peer: PeerId
    topic: str


@dataclass(frozen=True, slots=True)
class ConnectToPeer:
    """Peer exchange (PRUNE PX) or a direct peer: the adapter should connect. ``signed_peer_record`` is
    a verified signed peer-record envelope (or None when the pruner sent none)."""

    peer: PeerId
    signed_peer_record: bytes | None = None


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """A received message was rejected or dropped before delivery (for tracing and metrics)."""

    peer: PeerId
    topic: str
    reason: RejectReason


PubSubEvent = (
    ValidateMessage | DeliverMessage | PeerJoinedTopic | PeerLeftTopic | ConnectToPeer | MessageDropped
)


@dataclass(slots=True)
class PubSubStats:
    """Counters (mutable, owned by the router)."""

    rpcs_received: int = 0
    rpcs_malformed: int = 0
    rpcs_graylisted: int = 0
    rpcs_sent: int = 0
    rpcs_dropped: int = 0
    messages_dropped_queue_full: int = 0
    messages_too_large: int = 0
    messages_rejected: int = 0
    messages_ignored: int = 0
    messages_duplicate: int = 0
    messages_delivered: int = 0
    validations_throttled: int = 0
    ihave_ignored: int = 0
    iwant_ignored: int = 0
    idontwant_ignored: int = 0
    forwards_cancelled: int = 0
    """Queued messages not sent because the peer, before its writer took them, said IDONTWANT for them (v1.2)
    or sent them to us itself (gossipsub)."""


def _idontwant_control(msg_ids: list[bytes]) -> bytes:
    """``RPC{control: ControlMessage{idontwant: [ControlIDontWant{messageIDs: msg_ids}]}}``, encoded."""
    idw = b"".join(b"\x0a" + encode_uvarint(len(m)) + m for m in msg_ids)  # messageIDs = 1
    ctl = b"\x2a" + encode_uvarint(len(idw)) + idw  # ControlMessage.idontwant = 5
    return b"\x1a" + encode_uvarint(len(ctl)) + ctl  # RPC.control = 3


# --- per-peer state ------------------------------------------------------------------------------------


class _Outgoing:
    """What one flush will send to a peer; turned into one or more RPC frames."""

    __slots__ = ("graft", "idontwant", "ihave", "iwant", "messages", "prune", "subs")

    def __init__(self) -> None:
        self.subs: list[tuple[str, bool]] = []
        self.messages: list[pb.Message] = []
        self.ihave: list[pb.ControlIHave] = []
        self.iwant: list[bytes] = []
        self.graft: list[str] = []
        self.prune: list[pb.ControlPrune] = []
        self.idontwant: list[bytes] = []

    def has_control(self) -> bool:
        return bool(self.ihave or self.iwant or self.graft or self.prune or self.idontwant)


class PeerState:
    """A connected pubsub peer: its negotiated protocol, its topics, its outbound frame queue."""

    __slots__ = ("frames", "ips", "outbound", "protocol", "queued", "topics", "urgent")

    def __init__(self, protocol: str, outbound: bool, ips: tuple[str, ...]) -> None:
        self.protocol = protocol
        self.outbound = outbound
        self.ips = ips
        self.topics: set[str] = set()
        self.frames: deque[bytes] = deque()
        self.urgent = 0  # the first ``urgent`` frames are IDONTWANTs queued ahead of the rest
        # the queued frames that carry one message and at most an IDONTWANT head, by id() of the message
        # (kept alive here, so the id cannot be reused): (message, frame, head), until the writer takes them
        self.queued: dict[int, tuple[pb.Message, bytes, bytes]] = {}


# --- the core ------------------------------------------------------------------------------------------


class PubSubRouter:
    """Common PubSub state machine; :class:`FloodSub` and :class:`GossipSub` add the routing policy."""

    protocols: tuple[str, ...] = ()

    def __init__(
        self,
        local_peer: PeerId,
        config: PubSubConfig,
        *,
        private_key: PrivateKey | None = None,
        rng: random.Random | None = None,
        initial_seqno: int | None = None,
    ) -> None:
        if config.signature_policy is SignaturePolicy.STRICT_SIGN:
            if private_key is None:
                raise ValueError("StrictSign needs the local private key")
            if private_key.public_key.peer_id != local_peer:
                raise ValueError("private key does not belong to the local peer")
        self.local_peer = local_peer
        self.config = config
        self._private_key = private_key
        self.rng = rng or random.Random()
        self._seqno = self.rng.getrandbits(63) if initial_seqno is None else initial_seqno
        self.peers: dict[PeerId, PeerState] = {}
        self.topics: dict[str, set[PeerId]] = {}
        self.subscriptions: set[str] = set()
        self.seen = SeenCache(config.seen_ttl)
        self.stats = PubSubStats()
        self._pending_validation: dict[bytes, tuple[PubSubMessage, PeerId]] = {}
        self._out: dict[PeerId, _Outgoing] = {}
        self._flushed: dict[PeerId, None] = {}
        self._events: list[PubSubEvent] = []
        self._local_bytes = local_peer.to_bytes()
        self.inline_validator: Callable[[PubSubMessage], ValidationResult | None] | None = None
        """Set by an adapter whose validators can often answer at once: called for each message that passed
        the signature checks; a verdict is applied on the spot, None means "ask with a ValidateMessage
        event" (an asynchronous validator), as when this is unset."""

    # --- output ---

    def take_events(self) -> list[PubSubEvent]:
        events, self._events = self._events, []
        return events

    def peers_with_frames(self) -> list[PeerId]:
        return [p for p, st in self.peers.items() if st.frames]

    def take_flushed_peers(self) -> list[PeerId]:
        """The peers that got new frames since the last call (in the order they got them); cheaper than
        :meth:`peers_with_frames` for an adapter that wakes a writer per peer after every call."""
        if not self._flushed:
            return []
        peers, self._flushed = list(self._flushed), {}
        return peers

    def take_frames(self, peer: PeerId, limit: int | None = None) -> list[bytes]:
        """Pop up to ``limit`` queued RPC frames for ``peer`` (unprefixed protobuf bytes)."""
        st = self.peers.get(peer)
        if st is None or not st.frames:
            return []
        frames = st.frames
        if limit is None or limit >= len(frames):
            out = list(frames)
            frames.clear()
            st.queued.clear()
            st.urgent = 0
        else:
            out = [frames.popleft() for _ in range(limit)]
            st.urgent = max(0, st.urgent - limit)
            if st.queued:
                left = {id(f) for f in frames}
                st.queued = {k: v for k, v in st.queued.items() if id(v[1]) in left}
        self.stats.rpcs_sent += len(out)
        return out

    def cancel_queued(self, st: PeerState, message: pb.Message) -> bool:
        """Take ``message`` out of the frames queued for the peer of ``st`` that its writer has not taken yet
        (only a frame that carries it alone; an IDONTWANT head before it stays). True if it was there."""
        entry = st.queued.get(id(message))
        if entry is None or entry[0] is not message:
            return False
        del st.queued[id(message)]
        _, frame, head = entry
        frames = st.frames
        for i in range(len(frames) - 1, -1, -1):
            if frames[i] is frame:
                if head:
                    frames[i] = head
                else:
                    del frames[i]
                self.stats.forwards_cancelled += 1
                return True
        return False

    def _outgoing(self, peer: PeerId) -> _Outgoing:
        out = self._out.get(peer)
        if out is None:
            out = self._out[peer] = _Outgoing()
        return out

    def _flush(self) -> None:
        """Encode what this call queued into frames, one RPC per peer where it fits."""
        if not self._out:
            return
        pending, self._out = self._out, {}
        encoded: dict[object, bytes] = {}
        for peer, out in pending.items():
            st = self.peers.get(peer)
            if st is not None:
                self._enqueue(peer, st, out, encoded)

    def _enqueue(self, peer: PeerId, st: PeerState, out: _Outgoing, encoded: dict[object, bytes]) -> None:
        """Queue ``out`` as frames for ``peer``. A message forwarded to many peers in one flush is serialized
        once: ``encoded`` maps ``id(message)`` to its ``publish`` field bytes (tag, length, message), and a
        frame is the subscriptions/control part followed by those fields (protobuf concatenation)."""
        config = self.config
        limit = config.max_message_size
        head = b""
        if not (out.subs or out.ihave or out.iwant or out.graft or out.prune):
            messages = out.messages
            if out.idontwant:
                # the usual control part while forwarding: only IDONTWANTs, the same for every mesh peer
                key = tuple(out.idontwant)
                head = encoded.get(key) or encoded.setdefault(key, _idontwant_control(out.idontwant))
            if len(messages) == 1:
                # the usual frame while forwarding, that head and one message: no list to split into frames
                msg = messages[0]
                field = encoded.get(id(msg))
                if field is None:
                    body = msg.SerializeToString()
                    field = encoded[id(msg)] = _PUBLISH_TAG + encode_uvarint(len(body)) + body
                if head and (st.frames or len(head) + len(field) > config.control_piggyback_limit):
                    self._queue_urgent(
                        peer, st, head
                    )  # ahead of the backlog, or of a body too large to share
                    head = b""
                if len(st.frames) < config.max_outbound_rpcs_per_peer and len(head) + len(field) <= limit:
                    frame = head + field if head else field
                    st.frames.append(frame)
                    st.queued[id(msg)] = (msg, frame, head)
                    self._flushed[peer] = None
                    return
            if head:  # no message, several, or one that cannot be queued: the IDONTWANT goes alone, ahead
                self._queue_urgent(peer, st, head)
                head = b""
        elif out.subs or out.has_control():
            rpc = pb.RPC()
            for topic, subscribe in out.subs:
                rpc.subscriptions.add(subscribe=subscribe, topicid=topic)
            if out.has_control():
                ctl = rpc.control
                ctl.ihave.extend(out.ihave)
                if out.iwant:
                    ctl.iwant.add().messageIDs.extend(out.iwant)
                for topic in out.graft:
                    ctl.graft.add(topicID=topic)
                ctl.prune.extend(out.prune)
                if out.idontwant:
                    ctl.idontwant.add().messageIDs.extend(out.idontwant)
            head = rpc.SerializeToString()
        frames: list[bytes] = []
        parts: list[bytes] = [head] if head else []
        size = len(head)
        for msg in out.messages:
            field = encoded.get(id(msg))
            if field is None:
                body = msg.SerializeToString()
                field = encoded[id(msg)] = _PUBLISH_TAG + encode_uvarint(len(body)) + body
            if len(field) > limit:
                self.stats.messages_too_large += 1
                continue
            if size + len(field) > limit:
                frames.append(b"".join(parts))
                parts = []
                size = 0
            parts.append(field)
            size += len(field)
        if size:
            frames.append(b"".join(parts))
        room = self.config.max_outbound_rpcs_per_peer - len(st.frames)
        for i, frame in enumerate(frames):
            if i < room:
                st.frames.append(frame)
                continue
            self.stats.rpcs_dropped += 1
            dropped = pb.RPC.FromString(frame)
            self.stats.messages_dropped_queue_full += len(dropped.publish)
            self._on_frame_dropped(peer, dropped)
        if frames and room > 0:
            self._flushed[peer] = None

    def _queue_urgent(self, peer: PeerId, st: PeerState, frame: bytes) -> None:
        """Queue a control frame (IDONTWANT) ahead of the frames already queued for ``peer``, after the urgent
        ones; dropped and counted when the queue is full, as any frame."""
        if len(st.frames) >= self.config.max_outbound_rpcs_per_peer:
            self.stats.rpcs_dropped += 1
            return
        st.frames.insert(st.urgent, frame)
        st.urgent += 1
        self._flushed[peer] = None

    def _on_frame_dropped(self, peer: PeerId, rpc: pb.RPC) -> None:
        """Hook: a frame did not fit in the peer's queue (GossipSub keeps its GRAFT/PRUNE for later)."""

    # --- peers ---

    def add_peer(
        self, peer: PeerId, protocol: str, now: float, *, outbound: bool = False, ips: Iterable[str] = ()
    ) -> None:
        """A pubsub stream to ``peer`` speaking ``protocol`` is open: send it our subscriptions (hello)."""
        if peer in self.peers or peer == self.local_peer:
            return
        self.peers[peer] = PeerState(protocol, outbound, tuple(ips))
        if self.subscriptions:
            self._outgoing(peer).subs.extend((t, True) for t in sorted(self.subscriptions))
        self._on_peer_added(peer, now)
        self._flush()

    def remove_peer(self, peer: PeerId, now: float) -> None:
        st = self.peers.pop(peer, None)
        if st is None:
            return
        self._out.pop(peer, None)
        for topic in st.topics:
            members = self.topics.get(topic)
            if members is not None:
                members.discard(peer)
                if not members:
                    del self.topics[topic]
            self._events.append(PeerLeftTopic(peer, topic))
        self._on_peer_removed(peer, st, now)
        self._flush()

    def resync_frame(self, peer: PeerId) -> bytes | None:
        """The frame to send first on a *replacement* outbound stream to ``peer`` (the previous one broke):
        our subscriptions again (the hello), plus what the routing policy must restate (GossipSub: GRAFTs
        for the topics where ``peer`` is in our mesh). Receivers ignore what they already know, so a
        restated hello is harmless; a lost one would hide our subscriptions from ``peer`` for good."""
        if peer not in self.peers:
            return None
        rpc = pb.RPC()
        for topic in sorted(self.subscriptions):
            rpc.subscriptions.add(subscribe=True, topicid=topic)
        self._resync_control(peer, rpc)
        return rpc.SerializeToString() if rpc.ByteSize() else None

    def _resync_control(self, peer: PeerId, rpc: pb.RPC) -> None:
        """Hook: add control messages to a resync frame."""

    def peer_protocol(self, peer: PeerId) -> str | None:
        st = self.peers.get(peer)
        return None if st is None else st.protocol

    def topic_peers(self, topic: str) -> set[PeerId]:
        return set(self.topics.get(topic, ()))

    # --- local subscriptions ---

    def subscribe(self, topic: str, now: float) -> None:
        if topic in self.subscriptions:
            return
        self.subscriptions.add(topic)
        for peer in self.peers:
            self._outgoing(peer).subs.append((topic, True))
        self._on_join(topic, now)
        self._flush()

    def unsubscribe(self, topic: str, now: float) -> None:
        if topic not in self.subscriptions:
            return
        self.subscriptions.discard(topic)
        for peer in self.peers:
            self._outgoing(peer).subs.append((topic, False))
        self._on_leave(topic, now)
        self._flush()

    # --- publishing ---

    def build_message(self, topic: str, data: bytes) -> tuple[bytes, PubSubMessage]:
        """Author (and sign) a message; raises MessageTooLarge. Does not publish it."""
        self._seqno = (self._seqno + 1) & ((1 << 64) - 1)
        msg = build_message(
            topic,
            bytes(data),
            policy=self.config.signature_policy,
            private_key=self._private_key,
            seqno=self._seqno,
        )
        if msg.ByteSize() + _RPC_OVERHEAD > self.config.max_message_size:
            raise MessageTooLarge(
                f"message of {len(data)} bytes does not fit in a {self.config.max_message_size}-byte RPC",
                protocol=self.protocols[0] if self.protocols else None,
            )
        source = self.local_peer if self.config.signature_policy is SignaturePolicy.STRICT_SIGN else None
        seqno = msg.seqno if msg.HasField("seqno") else None
        return self.config.message_id_fn(msg), PubSubMessage(topic, msg.data, source, seqno, msg)

    def publish_message(self, msg_id: bytes, message: PubSubMessage, now: float) -> bool:
        """Publish a message built by :meth:`build_message` (validated by the adapter). False if it was
        already seen (a duplicate publish)."""
        if not self.seen.add(msg_id, now):
            return False
        if message.topic in self.subscriptions:
            self._events.append(DeliverMessage(msg_id, message, self.local_peer))
        self._forward(msg_id, message, self.local_peer, now)
        self._flush()
        return True

    def publish(self, topic: str, data: bytes, now: float) -> bytes:
        """Build and publish without validation; returns the message ID."""
        msg_id, message = self.build_message(topic, data)
        self.publish_message(msg_id, message, now)
        return msg_id

    # --- input ---

    def handle_frame(self, peer: PeerId, data: bytes | bytearray | memoryview, now: float) -> None:
        """One RPC frame (without its length prefix) from ``peer``.

        Raises MessageTooLarge or DecodeError (typed ProtocolViolations naming the peer and protocol) for
        a frame that cannot be processed; the adapter then resets that inbound stream, as go does.
        """
        limit = self.config.max_message_size
        size = len(data)
        if size > limit:
            self.stats.rpcs_malformed += 1
            raise MessageTooLarge(
                f"RPC of {size} bytes exceeds {limit}",
                protocol=self.peer_protocol(peer),
                peer=peer,
            )
        rpc = pb.RPC()
        try:
            rpc.ParseFromString(data if type(data) is bytes else bytes(data))
        except PbDecodeError as exc:
            self.stats.rpcs_malformed += 1
            raise DecodeError(
                f"malformed pubsub RPC: {exc}", protocol=self.peer_protocol(peer), peer=peer
            ) from None
        # A message inside a frame is smaller than the frame: in a frame this small none can be too large.
        self._handle_rpc(peer, rpc, now, size + _RPC_OVERHEAD <= limit)

    def handle_rpc(self, peer: PeerId, rpc: pb.RPC, now: float) -> None:
        self._handle_rpc(peer, rpc, now, False)

    def _handle_rpc(self, peer: PeerId, rpc: pb.RPC, now: float, sized: bool) -> None:
        """``sized``: no message of ``rpc`` can exceed the size limit (its frame is small enough)."""
        if peer not in self.peers:
            raise ProtocolViolation("RPC from a peer that was not added", peer=peer)
        self.stats.rpcs_received += 1
        if not self._accept_from(peer):
            self.stats.rpcs_graylisted += 1
            return
        subs = rpc.subscriptions
        if subs:
            for i, sub in enumerate(subs):
                if i >= self.config.max_subscriptions_per_rpc:
                    break
                self._handle_subscription(peer, sub, now)
        publish = rpc.publish
        if publish:
            limit = self.config.max_messages_per_rpc
            for m in publish if len(publish) <= limit else publish[:limit]:
                self._handle_message(peer, m, now, sized)
        if rpc.HasField("control"):
            self._handle_control(peer, rpc.control, now)
        if self._out:
            self._flush()

    def _handle_subscription(self, peer: PeerId, sub: pb.RPC.SubOpts, now: float) -> None:
        topic = sub.topicid
        if not isinstance(topic, str) or not sub.HasField("topicid"):
            return
        st = self.peers[peer]
        if sub.subscribe:
            if topic in st.topics or len(st.topics) >= self.config.max_topics_per_peer:
                return
            st.topics.add(topic)
            self.topics.setdefault(topic, set()).add(peer)
            self._events.append(PeerJoinedTopic(peer, topic))
            self._on_peer_joined_topic(peer, topic, now)
        else:
            if topic not in st.topics:
                return
            st.topics.discard(topic)
            members = self.topics.get(topic)
            if members is not None:
                members.discard(peer)
                if not members:
                    del self.topics[topic]
            self._events.append(PeerLeftTopic(peer, topic))
            self._on_peer_left_topic(peer, topic, now)

    def _handle_message(self, peer: PeerId, m: pb.Message, now: float, sized: bool = False) -> None:
        topic = m.topic
        if topic not in self.subscriptions:
            return  # not ours to relay (go drops these too)
        config = self.config
        if not sized and m.ByteSize() + _RPC_OVERHEAD > config.max_message_size:
            self.stats.messages_too_large += 1
            self._reject(peer, None, topic, RejectReason.MESSAGE_TOO_LARGE, now)
            return
        policy = config.signature_policy
        author = getattr(m, "from")
        if policy is SignaturePolicy.STRICT_SIGN and author == self._local_bytes:
            self._reject(peer, None, topic, RejectReason.SELF_ORIGIN, now)
            return
        # The ID and the seen cache first (as go does): a duplicate, the common case in a mesh, costs no
        # parsing of its author and no signature check. Only verified messages enter the seen cache.
        id_fn = config.message_id_fn
        if id_fn is default_message_id:
            msg_id = author + m.seqno
        else:
            try:
                msg_id = id_fn(m)
            except Exception:  # a user-supplied ID function failing on hostile input
                self._reject(peer, None, topic, RejectReason.MALFORMED, now)
                return
        if self.seen.contains(msg_id):
            self.stats.messages_duplicate += 1
            self._on_duplicate(peer, msg_id, topic, now)
            return
        try:
            message = check_message(m, policy, verify=False)
        except MessageRejected as exc:
            self._reject(peer, None, topic, exc.reason, now)
            return
        if message.source == self.local_peer:
            self._reject(peer, None, topic, RejectReason.SELF_ORIGIN, now)
            return
        if policy is SignaturePolicy.STRICT_SIGN:
            assert message.source is not None
            try:
                verify_signature(m, message.source)
            except MessageRejected as exc:
                self._reject(peer, None, topic, exc.reason, now)
                return
        if len(self._pending_validation) >= self.config.max_pending_validations:
            self.stats.validations_throttled += 1
            self._events.append(MessageDropped(peer, topic, RejectReason.VALIDATION_THROTTLED))
            self._on_throttled(peer, msg_id, message, now)
            return
        self.seen.add(msg_id, now)
        self._on_validate(peer, msg_id, message, now)
        inline = self.inline_validator
        verdict = inline(message) if inline is not None else None
        if verdict is not None:
            # Decided on the spot: the IDONTWANTs of _on_validate and the forwarded message leave in the
            # same flush, so each peer gets one frame for them instead of two.
            self._apply_verdict(msg_id, message, peer, verdict, now)
            return
        self._pending_validation[msg_id] = (message, peer)
        self._events.append(ValidateMessage(msg_id, message, peer))

    def report_validation(self, msg_id: bytes, result: ValidationResult, now: float) -> None:
        """The verdict of the topic validators on a :class:`ValidateMessage`."""
        entry = self._pending_validation.pop(msg_id, None)
        if entry is None:
            return
        message, peer = entry
        self._apply_verdict(msg_id, message, peer, result, now)
        self._flush()

    def _apply_verdict(
        self, msg_id: bytes, message: PubSubMessage, peer: PeerId, result: ValidationResult, now: float
    ) -> None:
        if result is ValidationResult.ACCEPT:
            self.stats.messages_delivered += 1
            self._on_deliver(peer, msg_id, message, now)
            if message.topic in self.subscriptions:
                self._events.append(DeliverMessage(msg_id, message, peer))
            self._forward(msg_id, message, peer, now)
        elif result is ValidationResult.REJECT:
            self._reject(peer, msg_id, message.topic, RejectReason.VALIDATION_FAILED, now)
        else:
            self._reject(peer, msg_id, message.topic, RejectReason.VALIDATION_IGNORED, now)

    @property
    def pending_validations(self) -> int:
        return len(self._pending_validation)

    def _reject(
        self, peer: PeerId, msg_id: bytes | None, topic: str, reason: RejectReason, now: float
    ) -> None:
        if reason is RejectReason.VALIDATION_IGNORED:
            self.stats.messages_ignored += 1
        else:
            self.stats.messages_rejected += 1
        self._events.append(MessageDropped(peer, topic, reason))
        self._on_reject(peer, msg_id, topic, reason, now)

    # --- time ---

    def sweep(self, now: float) -> None:
        self.seen.sweep(now)

    # --- routing policy hooks (overridden) ---

    def _accept_from(self, peer: PeerId) -> bool:
        return True

    def _on_peer_added(self, peer: PeerId, now: float) -> None:
        pass

    def _on_peer_removed(self, peer: PeerId, st: PeerState, now: float) -> None:
        pass

    def _on_peer_joined_topic(self, peer: PeerId, topic: str, now: float) -> None:
        pass

    def _on_peer_left_topic(self, peer: PeerId, topic: str, now: float) -> None:
        pass

    def _on_join(self, topic: str, now: float) -> None:
        pass

    def _on_leave(self, topic: str, now: float) -> None:
        pass

    def _on_validate(self, peer: PeerId, msg_id: bytes, message: PubSubMessage, now: float) -> None:
        pass

    def _on_deliver(self, peer: PeerId, msg_id: bytes, message: PubSubMessage, now: float) -> None:
        pass

    def _on_duplicate(self, peer: PeerId, msg_id: bytes, topic: str, now: float) -> None:
        pass

    def _on_throttled(self, peer: PeerId, msg_id: bytes, message: PubSubMessage, now: float) -> None:
        pass

    def _on_reject(
        self, peer: PeerId, msg_id: bytes | None, topic: str, reason: RejectReason, now: float
    ) -> None:
        pass

    def _handle_control(self, peer: PeerId, ctl: pb.ControlMessage, now: float) -> None:
        pass

    def _forward(self, msg_id: bytes, message: PubSubMessage, received_from: PeerId, now: float) -> None:
        raise NotImplementedError


__all__ = [
    "FLOODSUB_PROTOCOL_ID",
    "ConnectToPeer",
    "DeliverMessage",
    "MessageDropped",
    "PeerJoinedTopic",
    "PeerLeftTopic",
    "PeerState",
    "PubSubConfig",
    "PubSubEvent",
    "PubSubRouter",
    "PubSubStats",
    "ValidateMessage",
]
