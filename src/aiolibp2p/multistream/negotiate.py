"""asyncio helpers that run the multistream-select 1.0 engines over a stream.

Spec: https://github.com/multiformats/multistream-select and libp2p/specs ``connections/README.md``
§"Protocol Negotiation".

The stream is anything with ``async readexactly(n)`` and a ``write(data)`` that is either plain (returns
None, like :class:`~aiolibp2p.core.pipe.PipeReader`) or a coroutine (like a
:class:`~aiolibp2p.core.interfaces.MuxedStream`). Reads follow :meth:`MultistreamDialer.read_hint`: the length
prefix byte by byte, then the rest of the message, so nothing beyond the final negotiated message is ever
consumed and the next protocol finds its bytes in the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Protocol

from ..core.interfaces import Direction, MuxedStream
from ..core.pipe import Pipe, PipeReader
from ..exceptions import DeadlineExceeded, Libp2pError, NegotiationError, ProtocolNotSupported
from .engine import MultistreamDialer, MultistreamListener, _Engine

__all__ = [
    "LazyNegotiatedStream",
    "LazySelectReader",
    "NegotiationStream",
    "handle_protocol",
    "select_protocol",
    "select_protocol_lazy",
]


class NegotiationStream(Protocol):
    """What the helpers need from a stream: exact reads, and a write that may or may not be awaitable."""

    async def readexactly(self, n: int, /) -> bytes: ...

    def write(self, data: bytes, /) -> Awaitable[None] | None: ...


async def _write(io: NegotiationStream, data: bytes) -> None:
    if data:
        result = io.write(data)
        if result is not None:
            await result


@contextlib.asynccontextmanager
async def _deadline(timeout: float | None) -> AsyncIterator[None]:
    """``asyncio.timeout`` that reports its own expiry as DeadlineExceeded (an outer deadline still
    cancels as usual)."""
    if timeout is None:
        yield
        return
    cm = asyncio.timeout(timeout)
    try:
        async with cm:
            yield
    except TimeoutError:
        if cm.expired():
            raise DeadlineExceeded("multistream negotiation", timeout) from None
        raise


def _buffered(io: NegotiationStream) -> int:
    n = getattr(io, "buffered", 0)
    return n if isinstance(n, int) else 0


def _read_size(io: object, engine: _Engine) -> int:
    """``engine.read_hint()``, widened to the whole message when its one-byte length prefix is already
    buffered in ``io`` (a stream with ``peek_byte``): one read and one feed per message instead of two, and
    still never a byte past the message."""
    hint = engine.read_hint()
    if hint == 1 and engine.at_message_start:
        peek = getattr(io, "peek_byte", None)
        if peek is not None:
            first = peek()
            if isinstance(first, int) and 0 <= first < 0x80:
                return 1 + first
    return hint


async def _run(io: NegotiationStream, engine: _Engine) -> str:
    """Exchange messages until the engine has agreed on a protocol.

    Output is held back while the next message is already buffered, and written just before a read that
    would wait (or at the end): a listener whose dialer's header and proposal have arrived answers with its
    header and the answer in one write. Nothing waits on held-back output, so this cannot deadlock.
    """
    out = engine.bytes_to_send()
    while engine.protocol is None:
        hint = _read_size(io, engine)
        if out and _buffered(io) < hint:
            await _write(io, out)
            out = b""
        try:
            data = await io.readexactly(hint)
        except asyncio.IncompleteReadError:
            raise NegotiationError("stream ended during multistream negotiation") from None
        engine.feed(data)
        out += engine.bytes_to_send()
    await _write(io, out)
    return engine.protocol


async def select_protocol(
    io: NegotiationStream, protocols: Sequence[str], *, timeout: float | None = None
) -> str:
    """Dialer: propose ``protocols`` in order and return the one the listener accepted.

    The header and the first proposal go out in one write. Raises ProtocolNotSupported when every proposal
    was answered ``na``, NegotiationError / MessageTooLarge on a bad answer or early EOF (ConnectionClosed
    from a PipeReader), DeadlineExceeded after ``timeout`` seconds.
    """
    engine = MultistreamDialer(protocols)
    async with _deadline(timeout):
        return await _run(io, engine)


async def handle_protocol(
    io: NegotiationStream,
    supported: Callable[[str], bool] | Collection[str],
    *,
    timeout: float | None = None,
) -> str:
    """Listener: answer the dialer's proposals and return the accepted protocol.

    ``supported`` is a predicate or a collection of protocol IDs (e.g. a dict of handlers). The header is
    sent at once; unsupported proposals get ``na`` (at most MAX_NA_ATTEMPTS, then NegotiationError). Bytes
    the dialer sent after its accepted proposal stay unread in ``io``.
    """
    predicate = supported if callable(supported) else supported.__contains__
    engine = MultistreamListener(predicate)
    async with _deadline(timeout):
        return await _run(io, engine)


# --- lazy (0-RTT) negotiation --------------------------------------------------------------------------


LAZY_CONFIRM_TIMEOUT = 10.0
"""Seconds a lazily negotiated stream waits for the listener's answer before sending its FIN."""

_resets: set[asyncio.Future[None]] = set()  # resets of refused lazy streams, referenced until done


class LazyNegotiatedStream:
    """A muxed stream on which ``protocol`` was proposed without waiting for the answer (0-RTT).

    Use it when the remote is known to support ``protocol`` (e.g. from the peerstore). The header and the
    proposal are sent before (and together with) the first write; the first read first consumes and checks
    the listener's header and echo, raising ProtocolNotSupported if it answered ``na``. Everything else is
    forwarded to the wrapped stream, so this is itself a :class:`MuxedStream`.

    With ``verify_in_background`` the answer is also checked without a read: a task started by the first
    write (or ``close_write``) reads the header and echo as soon as they arrive, and resets the stream if the
    listener refused, so a write-only protocol learns of the refusal too (its next write fails).
    """

    __slots__ = (
        "_background",
        "_engine",
        "_sent",
        "_verified",
        "_verifying",
        "protocol",
        "stream",
    )

    def __init__(self, stream: MuxedStream, protocol: str, *, verify_in_background: bool = False) -> None:
        self.stream = stream
        self.protocol = protocol
        self._engine = MultistreamDialer([protocol])
        self._sent = False
        self._verified = False
        self._verifying: asyncio.Task[None] | None = None
        self._background = verify_in_background

    # -- the handshake ----------------------------------------------------------------------------------
    async def flush_handshake(self) -> None:
        """Send the header and proposal now, if not sent yet."""
        if not self._sent:
            self._sent = True
            await self.stream.write(self._engine.bytes_to_send())
            self._after_send()

    def _after_send(self) -> None:
        if self._background and self._verifying is None and not self._verified:
            self._start_verifying()

    def _start_verifying(self) -> asyncio.Task[None]:
        task = self._verifying = asyncio.ensure_future(self._read_answer())
        task.add_done_callback(self._verify_done)
        return task

    def _verify_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here, whether or not a reader awaits it
        if self._background and isinstance(exc, (ProtocolNotSupported, NegotiationError)):
            reset = asyncio.ensure_future(self.stream.reset())
            _resets.add(reset)
            reset.add_done_callback(_resets.discard)

    async def _read_answer(self) -> None:
        if not self._sent:
            self._sent = True
            await self.stream.write(self._engine.bytes_to_send())
        engine = self._engine
        while engine.protocol is None:
            try:
                data = await self.stream.readexactly(_read_size(self.stream, engine))
            except asyncio.IncompleteReadError:
                raise NegotiationError(f"stream ended before {self.protocol} was confirmed") from None
            try:
                engine.feed(data)
            except ProtocolNotSupported:
                raise ProtocolNotSupported([self.protocol]) from None
        self._verified = True

    async def verify(self) -> None:
        """Read and check the listener's header and echo (done by the first read)."""
        if self._verified:
            return
        task = self._verifying
        if task is None:
            task = self._start_verifying()
        # shielded: a read cancelled by its caller must not abandon the half-read answer
        await asyncio.shield(task)

    @property
    def negotiated(self) -> bool:
        """True once the listener's echo has been read and checked."""
        return self._verified

    # -- MuxedStream ------------------------------------------------------------------------------------
    @property
    def stream_id(self) -> int:
        return self.stream.stream_id

    @property
    def direction(self) -> Direction:
        return self.stream.direction

    async def read(self, max_bytes: int = 65536) -> bytes:
        if not self._verified:
            await self.verify()
        return await self.stream.read(max_bytes)

    async def readexactly(self, n: int) -> bytes:
        if not self._verified:
            await self.verify()
        return await self.stream.readexactly(n)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._sent:
            self._sent = True
            await self.stream.write(self._engine.bytes_to_send())
            self._after_send()
        await self.stream.write(data)

    async def _confirm_before_fin(self) -> None:
        """Wait (bounded) for the listener's answer before our FIN: some listeners (js-libp2p 3.x) drop the
        data that arrived with the proposal when the FIN comes before their handler reads it."""
        if not self._sent or self._verified:
            return
        try:
            async with asyncio.timeout(LAZY_CONFIRM_TIMEOUT):
                await self.verify()
        except TimeoutError:
            await self.stream.reset()
            raise DeadlineExceeded("multistream negotiation", LAZY_CONFIRM_TIMEOUT) from None

    async def close_write(self) -> None:
        await self.flush_handshake()
        await self._confirm_before_fin()
        await self.stream.close_write()

    async def close(self) -> None:
        with contextlib.suppress(Libp2pError, asyncio.IncompleteReadError):
            await self._confirm_before_fin()  # a refused or broken stream is closed all the same
        await self.stream.close()

    async def reset(self, code: int = 0) -> None:
        await self.stream.reset(code)

    def is_closed(self) -> bool:
        return self.stream.is_closed()


async def select_protocol_lazy(stream: MuxedStream, protocol: str) -> LazyNegotiatedStream:
    """Lazy dialer: send the header and ``protocol`` and return at once, without waiting for the echo.

    The echo is checked by the first read of the returned stream. To coalesce the handshake with the
    first application write instead, construct :class:`LazyNegotiatedStream` directly.
    """
    lazy = LazyNegotiatedStream(stream, protocol)
    await lazy.flush_handshake()
    return lazy


class LazySelectReader(PipeReader):
    """A :class:`PipeReader` for a raw connection on which the dialer proposed ``protocol`` without waiting
    (multistream "V1Lazy", as rust-libp2p dials with a single security protocol): the header and proposal are
    written at once, the protocol's own first message can follow in the same packet, and the first read
    consumes and checks the listener's header and echo (ProtocolNotSupported on ``na``)."""

    __slots__ = ("_pending_engine",)

    def __init__(self, pipe: Pipe, protocol: str) -> None:
        super().__init__(pipe)
        engine = MultistreamDialer([protocol])
        self._pending_engine: MultistreamDialer | None = engine
        self.write(engine.bytes_to_send())

    async def _confirm(self) -> None:
        engine = self._pending_engine
        assert engine is not None
        while engine.protocol is None:
            engine.feed(await super().readexactly(_read_size(self, engine)))
        self._pending_engine = None

    async def readexactly(self, n: int) -> bytes:
        if self._pending_engine is not None:
            await self._confirm()
        return await super().readexactly(n)

    async def read_some(self, max_bytes: int = 65536) -> bytes:
        if self._pending_engine is not None:
            await self._confirm()
        return await super().read_some(max_bytes)

    @property
    def confirmed(self) -> bool:
        """True once the listener's echo has been read and checked."""
        return self._pending_engine is None
