"""Identify (``/ipfs/id/1.0.0``) and identify push (``/ipfs/id/push/1.0.0``).

Spec: https://github.com/libp2p/specs/blob/master/identify/README.md, plus the deployed behaviour noted in
LIBP2P-NOTES §3.8: ``signedPeerRecord`` (field 8); messages are uvarint-framed; a responder may split its answer
over several messages, so the reader reads until EOF and merges up to ``MAX_MESSAGES``; a push is a partial
update. Identify runs on every new connection, a moment after it opens (``DIALER_DEFER_TURNS``,
``LISTENER_DEFER``: the connection's first request goes first); its result feeds the peer store and marks the
connection identified (the swarm prefers identified connections for new streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError as PbDecodeError

from ...core.interfaces import Direction
from ...crypto.keys import unmarshal_public_key
from ...crypto.peer_id import PeerId
from ...crypto.peer_record import make_signed_peer_record, open_signed_peer_record
from ...exceptions import DecodeError, Libp2pError, MessageTooLarge, ProtocolViolation
from ...multiaddr import Multiaddr
from ...network import events as ev
from ...network.connection import Connection, Stream
from ...wire.pb import identify_pb2
from ...wire.varint import encode_uvarint, length_prefixed, try_decode_length_prefixed

if TYPE_CHECKING:
    from ...host.host import Host

log = logging.getLogger(__name__)

PROTOCOL_ID = "/ipfs/id/1.0.0"
PUSH_PROTOCOL_ID = "/ipfs/id/push/1.0.0"
PROTOCOL_VERSION = "ipfs/0.1.0"
MAX_MESSAGE_SIZE = 8 * 1024
"""Largest identify message accepted (go accepts 8 KiB)."""
MAX_MESSAGES = 10
"""Messages merged from one identify stream (go reads up to 10)."""
SPLIT_THRESHOLD = 2 * 1024
"""Above this size the response is sent as two messages, the signed record apart (as go does)."""
IDENTIFY_TIMEOUT = 10.0
"""Seconds for a whole identify exchange on a connection."""
PUSH_DEBOUNCE = 0.05
DIALER_DEFER_TURNS = 3
"""Event-loop turns a dialer's identify waits before opening its stream. A dial is made for the caller's own
first stream (a ping, a request): the dial's result reaches the caller two or three turns after the connection
opened, so with this head start that stream's proposal leaves first and the listener answers it first. Identify
follows at once, usually in the same datagram or segment. Measured on loopback: dial + first ping -9 % on TCP
and -7 % on QUIC (``bench/results/quic_dial.md``)."""
LISTENER_DEFER = 0.001
"""Seconds a listener's identify waits before opening its stream. The dialer's first request arrives just after
the handshake completes here (on QUIC its Finished leaves alone, ahead of its streams): without the wait, our
identify's stream open and its datagram or segment go out first and the request waits behind them. Identify
results on the listener come this much later. Measured on loopback: dial + first ping -9 % on TCP, -1 to -12 %
on QUIC."""
_OBSERVED_ADDR_TAG = bytes([4 << 3 | 2])  # field 4 (observedAddr), wire type 2 (length-delimited)


@dataclass(slots=True)
class IdentifyInfo:
    peer: PeerId
    protocol_version: str = ""
    agent_version: str = ""
    protocols: list[str] = field(default_factory=list)
    listen_addrs: list[Multiaddr] = field(default_factory=list)
    observed_addr: Multiaddr | None = None
    signed_peer_record: bytes | None = None
    signed_record_valid: bool = False


def decode_messages(data: bytes) -> identify_pb2.Identify:
    """Merge the uvarint-framed identify messages in ``data`` (at most MAX_MESSAGES)."""
    msg = identify_pb2.Identify()
    pos = 0
    count = 0
    while pos < len(data):
        got = try_decode_length_prefixed(data, MAX_MESSAGE_SIZE, pos)
        if got is None:
            raise DecodeError("truncated identify message", protocol=PROTOCOL_ID)
        body, pos = got
        count += 1
        if count > MAX_MESSAGES:
            raise ProtocolViolation(f"more than {MAX_MESSAGES} identify messages", protocol=PROTOCOL_ID)
        part = identify_pb2.Identify()
        try:
            part.ParseFromString(body)
        except PbDecodeError as e:
            raise DecodeError(f"malformed identify message: {e}", protocol=PROTOCOL_ID) from None
        msg.MergeFrom(part)
    return msg


class IdentifyService:
    def __init__(
        self,
        host: Host,
        *,
        agent_version: str,
        protocol_version: str = PROTOCOL_VERSION,
        timeout: float = IDENTIFY_TIMEOUT,
        listener_defer: float = LISTENER_DEFER,
    ) -> None:
        self.host = host
        self.listener_defer = listener_defer
        self.agent_version = agent_version
        self.protocol_version = protocol_version
        self.timeout = timeout
        self._running: dict[int, asyncio.Task[IdentifyInfo | None]] = {}
        self._results: dict[int, IdentifyInfo] = {}
        self._push_handle: asyncio.TimerHandle | None = None
        self._record_cache: tuple[tuple[bytes, ...], bytes] | None = None
        self._response_cache: tuple[tuple[object, ...], bytes, bytes, bytes] | None = None

    def start(self) -> None:
        self.host.set_stream_handler(PROTOCOL_ID, self._handle_identify)
        self.host.set_stream_handler(PUSH_PROTOCOL_ID, self._handle_push)
        self.host.bus.on(ev.ConnectionOpened, self._on_connection_opened, service=True)
        self.host.bus.on(ev.ConnectionClosed, self._on_connection_closed, service=True)

    # -- our side of the message -------------------------------------------------------------------------------------
    def _signed_record(self) -> bytes:
        addrs = tuple(a.to_bytes() for a in self.host.advertised_addrs())
        if self._record_cache is None or self._record_cache[0] != addrs:
            self._record_cache = (addrs, make_signed_peer_record(self.host.private_key, list(addrs)))
        return self._record_cache[1]

    def build_message(self, conn: Connection | None) -> identify_pb2.Identify:
        m = identify_pb2.Identify()
        m.protocolVersion = self.protocol_version
        m.agentVersion = self.agent_version
        m.publicKey = self.host.private_key.public_key.to_protobuf()
        m.listenAddrs.extend(a.to_bytes() for a in self.host.advertised_addrs())
        if conn is not None and conn.remote_addr is not None:
            m.observedAddr = conn.remote_addr.to_bytes()
        m.protocols.extend(self.host.swarm.protocols)
        m.signedPeerRecord = self._signed_record()
        return m

    def _encode_response(self, m: identify_pb2.Identify) -> bytes:
        full = m.SerializeToString()
        if len(full) <= SPLIT_THRESHOLD:
            return length_prefixed(full)
        record = m.signedPeerRecord
        m.ClearField("signedPeerRecord")
        first = m.SerializeToString()
        second = identify_pb2.Identify(signedPeerRecord=record).SerializeToString()
        return length_prefixed(first) + length_prefixed(second)

    def response_bytes(self, conn: Connection | None) -> bytes:
        """The framed identify response for ``conn``: what ``_encode_response(build_message(conn))`` gives,
        except that ``observedAddr`` comes last (protobuf fields may come in any order). Everything but the
        observed address is the same on every connection, so it is serialized once per change of our
        addresses, protocols or versions, and the observed address appended as its own field."""
        key = (
            tuple(self.host.advertised_addrs()),
            tuple(self.host.swarm.protocols),
            self.protocol_version,
            self.agent_version,
        )
        cache = self._response_cache
        if cache is None or cache[0] != key:
            m = self.build_message(None)
            full = m.SerializeToString()
            record = m.signedPeerRecord
            m.ClearField("signedPeerRecord")
            without_record = m.SerializeToString()
            record_msg = identify_pb2.Identify(signedPeerRecord=record).SerializeToString()
            cache = self._response_cache = (key, full, without_record, record_msg)
        _, full, without_record, record_msg = cache
        observed = b""
        if conn is not None and conn.remote_addr is not None:
            raw = conn.remote_addr.to_bytes()
            observed = _OBSERVED_ADDR_TAG + encode_uvarint(len(raw)) + raw
        if len(full) + len(observed) <= SPLIT_THRESHOLD:
            return length_prefixed(full + observed)
        return length_prefixed(without_record + observed) + length_prefixed(record_msg)

    async def _handle_identify(self, stream: Stream) -> None:
        data = self.response_bytes(stream.conn)
        try:
            await stream.write(data, timeout=self.timeout)
            await stream.close()
        except Libp2pError as e:
            log.debug("identify response to %s failed: %r", stream.remote_peer, e)
            await stream.reset()

    # -- their side ----------------------------------------------------------------------------------------------------
    def _on_connection_opened(self, event: ev.ConnectionOpened) -> None:
        self._start(event.conn)

    def _start(self, conn: Connection) -> asyncio.Task[IdentifyInfo | None]:
        task = asyncio.ensure_future(self._identify_conn(conn))
        self._running[conn.id] = task
        task.add_done_callback(
            lambda t: self._running.pop(conn.id, None) if self._running.get(conn.id) is t else None
        )
        self.host._track(task)
        return task

    def _on_connection_closed(self, event: ev.ConnectionClosed) -> None:
        self._results.pop(event.conn.id, None)
        t = self._running.pop(event.conn.id, None)
        if t is not None:
            t.cancel()

    async def identify(self, conn: Connection) -> IdentifyInfo | None:
        """The identify result for ``conn``, waiting (bounded) for the exchange under way."""
        if conn.id in self._results:
            return self._results[conn.id]
        t = self._running.get(conn.id) or self._start(conn)
        return await asyncio.shield(t)

    async def _identify_conn(self, conn: Connection) -> IdentifyInfo | None:
        if conn.direction is Direction.OUTBOUND:
            for _ in range(DIALER_DEFER_TURNS):
                await asyncio.sleep(0)
                if conn.is_closed():
                    return None
        elif self.listener_defer > 0:
            await asyncio.sleep(self.listener_defer)
            if conn.is_closed():
                return None
        for attempt in range(2):
            try:
                stream = await conn.open_stream([PROTOCOL_ID], timeout=self.timeout)
                data = await stream.read_all(MAX_MESSAGE_SIZE * MAX_MESSAGES + 64, timeout=self.timeout)
                # On a fresh connection the answer tends to arrive with the first application data (the
                # reply to the first stream the user opened): let the tasks woken with it run first, the
                # bookkeeping below is nobody's round trip.
                await asyncio.sleep(0)
                await stream.close()
                msg = decode_messages(data)
                info = self._consume(conn.remote_peer, conn, msg, push=False)
            except (Libp2pError, OSError, EOFError, asyncio.IncompleteReadError) as e:
                if conn.is_closed():
                    return None
                log.debug(
                    "identify of %s on conn %d failed (attempt %d): %r",
                    conn.remote_peer,
                    conn.id,
                    attempt + 1,
                    e,
                )
                # js resets a second concurrent identify stream; retry once a little later.
                await asyncio.sleep(0.2)
                continue
            if not conn.is_closed():  # else its closed event has passed: nobody would remove the result
                self._results[conn.id] = info
            conn.identified.set()
            self.host.bus.emit(
                ev.PeerIdentified(conn.remote_peer, conn, tuple(info.protocols), info.agent_version)
            )
            return info
        if not conn.is_closed():
            self.host.bus.emit(ev.IdentifyFailed(conn.remote_peer, conn))
        return None

    def _consume(
        self, peer: PeerId, conn: Connection | None, msg: identify_pb2.Identify, *, push: bool
    ) -> IdentifyInfo:
        ps = self.host.peerstore
        info = IdentifyInfo(peer)
        if msg.HasField("publicKey") and (
            conn is None or msg.publicKey != conn.remote_public_key.to_protobuf()
        ):  # the handshake authenticated this connection's key (and the swarm stored it): nothing to check
            try:
                pk = unmarshal_public_key(msg.publicKey)
            except Libp2pError as e:
                raise ProtocolViolation(f"bad public key in identify: {e}", protocol=PROTOCOL_ID) from None
            if not peer.matches_public_key(pk):
                raise ProtocolViolation("identify public key does not match the peer", protocol=PROTOCOL_ID)
            ps.add_public_key(peer, pk)
        if msg.HasField("protocolVersion"):
            info.protocol_version = msg.protocolVersion
            ps.put(peer, "ProtocolVersion", msg.protocolVersion)
        if msg.HasField("agentVersion"):
            info.agent_version = msg.agentVersion
            ps.put(peer, "AgentVersion", msg.agentVersion)
        if msg.protocols or not push:
            info.protocols = list(msg.protocols)
            added, removed = ps.set_protocols(peer, msg.protocols)
            if (added or removed) and push:
                self.host.bus.emit(ev.PeerProtocolsUpdated(peer, added, removed))
        for raw in msg.listenAddrs:
            with contextlib.suppress(Libp2pError):
                info.listen_addrs.append(Multiaddr.from_bytes(raw))
        if msg.HasField("signedPeerRecord"):
            info.signed_peer_record = msg.signedPeerRecord
            try:
                # A peer sends the same record on every connection: the one the peer store holds for it (and
                # forgets with it) was verified already.
                stored = ps.stored_record(peer, msg.signedPeerRecord)
                if stored is not None:
                    addrs = stored[1]
                else:
                    record, _env = open_signed_peer_record(msg.signedPeerRecord)
                    if record.peer_id != peer:
                        raise ProtocolViolation(
                            "signed peer record is for another peer", protocol=PROTOCOL_ID
                        )
                    addrs = tuple(Multiaddr.from_bytes(a) for a in record.addrs)
                    ps.consume_peer_record(peer, record.seq, msg.signedPeerRecord, addrs)
                info.signed_record_valid = True
                info.listen_addrs = list(addrs)
            except Libp2pError as e:
                log.debug("ignoring invalid signed peer record from %s: %r", peer, e)
        if info.listen_addrs:
            ps.add_addrs(peer, info.listen_addrs)
        if msg.HasField("observedAddr"):
            with contextlib.suppress(Libp2pError):
                # reported to the caller only: with no AutoNAT to confirm it (and, on TCP, our ephemeral port
                # as a rule) it is never advertised; an observed-address manager would belong with AutoNAT
                info.observed_addr = Multiaddr.from_bytes(msg.observedAddr, cache=False)
        return info

    # -- push ------------------------------------------------------------------------------------------------------------
    async def _handle_push(self, stream: Stream) -> None:
        try:
            data = await stream.read_all(MAX_MESSAGE_SIZE * MAX_MESSAGES + 64, timeout=self.timeout)
            msg = decode_messages(data)
            self._consume(stream.remote_peer, stream.conn, msg, push=True)
            await stream.close()
        except (Libp2pError, MessageTooLarge) as e:
            log.debug("bad identify push from %s: %r", stream.remote_peer, e)
            await stream.reset()

    def schedule_push(self) -> None:
        """Push our identify to every connected peer soon (debounced): our protocols or addresses changed."""
        if self._push_handle is not None:
            return
        loop = asyncio.get_running_loop()
        self._push_handle = loop.call_later(PUSH_DEBOUNCE, self._push_now)

    def _push_now(self) -> None:
        self._push_handle = None
        if self.host.is_closed:
            return
        for peer in self.host.swarm.connected_peers():
            if PUSH_PROTOCOL_ID in self.host.peerstore.get_protocols(peer):
                self.host._track(asyncio.ensure_future(self._push_to(peer)))

    async def _push_to(self, peer: PeerId) -> None:
        try:
            # Push only over existing connections (as go does): a peer that just went away is not redialed.
            s = await self.host.swarm.new_stream(
                peer, [PUSH_PROTOCOL_ID], timeout=self.timeout, allow_dial=False
            )
            conn = s.conn
            await s.write(self.response_bytes(conn), timeout=self.timeout)
            await s.close()
        except Libp2pError as e:
            log.debug("identify push to %s failed: %r", peer, e)

    def close(self) -> None:
        if self._push_handle is not None:
            self._push_handle.cancel()
            self._push_handle = None
