"""The interfaces of the house, in one place (go-libp2p ``core/`` is the model).

Implementations live beside them (``transports/``, ``security/``, ``muxers/``, ``network/``); a newcomer
reads this file first.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .pipe import Pipe, PipeReader

if TYPE_CHECKING:
    from ..crypto.keys import PrivateKey, PublicKey
    from ..crypto.peer_id import PeerId
    from ..multiaddr import Multiaddr


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


# --- streams and muxed connections ---------------------------------------------------------------------


@runtime_checkable
class MuxedStream(Protocol):
    """One bidirectional stream of a multiplexed connection."""

    @property
    def stream_id(self) -> int: ...

    @property
    def direction(self) -> Direction: ...

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` bytes; b"" once the remote closed its write side. Raises StreamReset."""

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; raises ``asyncio.IncompleteReadError`` at EOF, StreamReset on reset."""

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send, waiting for flow-control credit. Raises StreamClosed/StreamReset/ConnectionClosed."""

    async def close_write(self) -> None:
        """Half-close: send FIN. Reading stays possible."""

    async def close(self) -> None:
        """Close both directions gracefully (FIN, then stop reading)."""

    async def reset(self, code: int = 0) -> None:
        """Abort both directions at once; the remote sees StreamReset (with ``code`` where carried)."""

    def is_closed(self) -> bool: ...


StreamCallback = Callable[[MuxedStream], None]
"""Called (synchronously, on the loop) with each new inbound stream."""


@runtime_checkable
class MuxedConnection(Protocol):
    """A secured, multiplexed connection (yamux/mplex session, or a QUIC/WebRTC connection)."""

    def set_inbound_stream_handler(self, callback: StreamCallback) -> None:
        """Inbound streams are passed to ``callback``; streams that arrived before are passed at once."""

    def set_close_callback(self, callback: Callable[[BaseException | None], None]) -> None:
        """``callback`` runs exactly once when the connection ends, for whatever reason."""

    async def open_stream(self) -> MuxedStream: ...

    async def close(self, code: int = 0) -> None:
        """Graceful close (yamux GoAway with ``code``); the remote sees it at once."""

    def abort(self, exc: BaseException | None = None) -> None:
        """Tear down at once."""

    def is_closed(self) -> bool: ...

    @property
    def num_streams(self) -> int: ...


# --- security ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecureSession:
    """The outcome of a security handshake."""

    pipe: Pipe  # the secured pipe (plaintext in and out); its receiver must be set by the next layer
    reader: PipeReader  # a reader already attached to ``pipe``, holding any early bytes
    local_peer: PeerId
    remote_peer: PeerId
    remote_public_key: PublicKey
    security_protocol: str
    early_muxer: str | None = None  # chosen by inlined muxer negotiation (Noise extensions / TLS ALPN)


class SecurityTransport(Protocol):
    """A connection security protocol (``/noise``, ``/tls/1.0.0``, ``/plaintext/2.0.0``)."""

    protocol_id: str

    async def secure_outbound(
        self, reader: PipeReader, remote_peer: PeerId | None, muxers: Sequence[str]
    ) -> SecureSession:
        """Run the handshake as initiator over ``reader.pipe``. ``remote_peer`` (when known) must match."""

    async def secure_inbound(self, reader: PipeReader, muxers: Sequence[str]) -> SecureSession: ...


class MuxerFactory(Protocol):
    """A stream multiplexer (``/yamux/1.0.0``, ``/mplex/6.7.0``)."""

    protocol_id: str

    def create(self, reader: PipeReader, *, is_initiator: bool) -> MuxedConnection:
        """Start a session over ``reader.pipe`` (taking over with ``reader.hand_over``)."""


# --- transports ----------------------------------------------------------------------------------------


class Listener(Protocol):
    @property
    def listen_addrs(self) -> list[Multiaddr]: ...

    async def close(self) -> None: ...


RawConnectionHandler = Callable[[Pipe], Awaitable[None]]


class Transport(Protocol):
    """Moves bytes: dials and listens for raw (unsecured) pipes.

    Transports that arrive secure and multiplexed (QUIC, WebRTC) implement ``CapableTransport`` instead.
    """

    name: str

    def can_dial(self, addr: Multiaddr) -> bool: ...

    def can_listen(self, addr: Multiaddr) -> bool: ...

    async def dial(self, addr: Multiaddr) -> Pipe: ...

    async def listen(self, addr: Multiaddr, handler: RawConnectionHandler) -> Listener: ...


@dataclass(frozen=True, slots=True)
class LocalIdentity:
    private_key: PrivateKey
    peer_id: PeerId
