"""multistream-select asyncio helpers over memory pipes (PipeReader, sync write) and yamux streams (async
write), including lazy negotiation, timeouts and early EOF."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from aiolibp2p.core.interfaces import MuxedStream
from aiolibp2p.core.pipe import PipeReader
from aiolibp2p.exceptions import (
    ConnectionClosed,
    DeadlineExceeded,
    MessageTooLarge,
    NegotiationError,
    ProtocolNotSupported,
    StreamReset,
)
from aiolibp2p.multistream import (
    MAX_NA_ATTEMPTS,
    LazyNegotiatedStream,
    LazySelectReader,
    handle_protocol,
    select_protocol,
    select_protocol_lazy,
)
from aiolibp2p.multistream.engine import encode_message
from aiolibp2p.muxers.yamux import YamuxConfig, YamuxMuxer, YamuxSession
from aiolibp2p.transports.memory.pipe import memory_pipe_pair

HEADER = encode_message("/multistream/1.0.0")
T = 5.0  # bound on every wait


async def readers() -> tuple[PipeReader, PipeReader]:
    a, b = memory_pipe_pair()
    return PipeReader(a), PipeReader(b)


# --- over PipeReader (sync write) ----------------------------------------------------------------------


async def test_select_and_handle_over_pipe_reader() -> None:
    d, lst = await readers()
    async with asyncio.timeout(T):
        chosen, accepted = await asyncio.gather(
            select_protocol(d, ["/noise", "/plaintext/2.0.0"]),
            handle_protocol(lst, {"/plaintext/2.0.0": object()}),
        )
    assert chosen == accepted == "/plaintext/2.0.0"


async def test_handle_with_predicate() -> None:
    d, lst = await readers()
    async with asyncio.timeout(T):
        chosen, accepted = await asyncio.gather(
            select_protocol(d, ["/a/1", "/b/2"]),
            handle_protocol(lst, lambda p: p.startswith("/b/")),
        )
    assert chosen == accepted == "/b/2"


async def test_no_common_protocol() -> None:
    d, lst = await readers()
    async with asyncio.timeout(T):
        listen = asyncio.create_task(handle_protocol(lst, ["/x"]))
        with pytest.raises(ProtocolNotSupported) as ei:
            await select_protocol(d, ["/a", "/b"])
        assert ei.value.protocols == ["/a", "/b"]
        d.pipe.close()
        with pytest.raises(ConnectionClosed):
            await listen


async def test_trailing_bytes_stay_in_both_readers() -> None:
    """Both sides pipeline application bytes right behind their last negotiation message."""
    d, lst = await readers()
    d.write(HEADER + encode_message("/p") + b"dialer-data")
    async with asyncio.timeout(T):
        assert await handle_protocol(lst, ["/p"]) == "/p"
        lst.write(b"listener-data")
        assert await lst.readexactly(len(b"dialer-data")) == b"dialer-data"
        assert await d.readexactly(len(HEADER + encode_message("/p"))) == HEADER + encode_message("/p")
        assert await d.readexactly(len(b"listener-data")) == b"listener-data"


async def test_dialer_leaves_listener_bytes_after_echo() -> None:
    d, lst = await readers()
    lst.write(HEADER + encode_message("/p") + b"early-answer")
    async with asyncio.timeout(T):
        assert await select_protocol(d, ["/p"]) == "/p"
        assert await d.readexactly(12) == b"early-answer"
        assert d.buffered == 0


async def test_dialer_sends_header_and_proposal_in_one_write() -> None:
    a, b = memory_pipe_pair()
    d = PipeReader(a)
    writes: list[bytes] = []
    orig = a.write

    def spy(data: bytes | bytearray | memoryview) -> None:
        writes.append(bytes(data))
        orig(data)

    a.write = spy  # type: ignore[method-assign]
    task = asyncio.create_task(select_protocol(d, ["/p"]))
    async with asyncio.timeout(T):
        lst = PipeReader(b)
        assert await handle_protocol(lst, ["/p"]) == "/p"
        await task
    assert writes == [HEADER + encode_message("/p")]


async def test_listener_sends_header_before_reading() -> None:
    d, lst = await readers()
    task = asyncio.create_task(handle_protocol(lst, ["/p"]))
    async with asyncio.timeout(T):
        assert await d.readexactly(len(HEADER)) == HEADER  # the dialer has sent nothing yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_listener_na_limit() -> None:
    d, lst = await readers()
    d.write(HEADER + b"".join(encode_message(f"/x/{i}") for i in range(MAX_NA_ATTEMPTS + 1)))
    async with asyncio.timeout(T):
        with pytest.raises(NegotiationError):
            await handle_protocol(lst, ["/p"])


async def test_bad_header() -> None:
    d, lst = await readers()
    d.write(encode_message("/multistream/0.9") + encode_message("/p"))
    async with asyncio.timeout(T):
        with pytest.raises(NegotiationError):
            await handle_protocol(lst, ["/p"])


async def test_oversize_message() -> None:
    d, lst = await readers()
    lst.write(HEADER + b"\x81\x08" + b"x" * 1025)
    async with asyncio.timeout(T):
        with pytest.raises(MessageTooLarge):
            await select_protocol(d, ["/p"])


async def test_timeout_raises_deadline_exceeded() -> None:
    d, _lst = await readers()
    async with asyncio.timeout(T):
        with pytest.raises(DeadlineExceeded) as ei:
            await select_protocol(d, ["/p"], timeout=0.05)
    assert ei.value.what == "multistream negotiation"


async def test_outer_timeout_is_not_reported_as_ours() -> None:
    d, _lst = await readers()
    with pytest.raises(TimeoutError) as ei:
        async with asyncio.timeout(0.05):
            await select_protocol(d, ["/p"], timeout=10)
    assert not isinstance(ei.value, DeadlineExceeded)


async def test_eof_midway() -> None:
    d, lst = await readers()
    lst.write(HEADER + b"\x05/p")  # echo cut short, then close
    lst.pipe.close()
    async with asyncio.timeout(T):
        with pytest.raises(ConnectionClosed):
            await select_protocol(d, ["/p"])


# --- over yamux streams (async write) ------------------------------------------------------------------

FAST = YamuxConfig(keepalive_interval=0, rtt_measure_interval=0)


@pytest.fixture
async def sessions() -> AsyncIterator[tuple[YamuxSession, asyncio.Queue[MuxedStream]]]:
    a, b = memory_pipe_pair()
    client = YamuxMuxer(FAST).create(PipeReader(a), is_initiator=True)
    server = YamuxMuxer(FAST).create(PipeReader(b), is_initiator=False)
    inbound: asyncio.Queue[MuxedStream] = asyncio.Queue()
    server.set_inbound_stream_handler(inbound.put_nowait)
    yield client, inbound
    client.abort()
    server.abort()


async def test_select_and_handle_over_muxed_streams(
    sessions: tuple[YamuxSession, asyncio.Queue[MuxedStream]],
) -> None:
    client, inbound = sessions
    async with asyncio.timeout(T):
        out = await client.open_stream()
        sel = asyncio.create_task(select_protocol(out, ["/echo/0", "/echo/1"]))
        ins = await inbound.get()
        assert await handle_protocol(ins, {"/echo/1"}) == "/echo/1"
        assert await sel == "/echo/1"
        await out.write(b"ping")
        assert await ins.readexactly(4) == b"ping"


async def test_eof_on_muxed_stream_is_negotiation_error(
    sessions: tuple[YamuxSession, asyncio.Queue[MuxedStream]],
) -> None:
    client, inbound = sessions
    async with asyncio.timeout(T):
        out = await client.open_stream()
        await out.write(HEADER)
        await out.close_write()
        ins = await inbound.get()
        with pytest.raises(NegotiationError):
            await handle_protocol(ins, {"/p"})


async def test_lazy_select_coalesces_with_first_write(
    sessions: tuple[YamuxSession, asyncio.Queue[MuxedStream]],
) -> None:
    client, inbound = sessions
    async with asyncio.timeout(T):
        out = await client.open_stream()
        lazy = LazyNegotiatedStream(out, "/echo/1.0.0")
        await lazy.write(b"request")  # header, proposal and data leave together
        ins = await inbound.get()
        assert await handle_protocol(ins, {"/echo/1.0.0"}) == "/echo/1.0.0"
        assert await ins.readexactly(7) == b"request"
        await ins.write(b"response")
        assert not lazy.negotiated
        assert await lazy.readexactly(8) == b"response"
        assert lazy.negotiated
        assert lazy.protocol == "/echo/1.0.0"
        assert isinstance(lazy, MuxedStream)


async def test_lazy_select_then_read_first(
    sessions: tuple[YamuxSession, asyncio.Queue[MuxedStream]],
) -> None:
    client, inbound = sessions
    async with asyncio.timeout(T):
        out = await client.open_stream()
        lazy = await select_protocol_lazy(out, "/greeting")  # sent at once, nothing written yet by us
        ins = await inbound.get()
        assert await handle_protocol(ins, ["/greeting"]) == "/greeting"
        await ins.write(b"hello")
        await ins.close_write()
        assert await lazy.read() == b"hello"
        assert await lazy.read() == b""


async def test_lazy_close_write_flushes_handshake(
    sessions: tuple[YamuxSession, asyncio.Queue[MuxedStream]],
) -> None:
    client, inbound = sessions
    async with asyncio.timeout(T):
        out = await client.open_stream()
        lazy = LazyNegotiatedStream(out, "/sink")
        closing = asyncio.ensure_future(lazy.close_write())  # flushes the proposal, then awaits the answer
        ins = await inbound.get()
        assert await handle_protocol(ins, ["/sink"]) == "/sink"
        await closing
        assert lazy.negotiated  # the FIN left only after the listener's answer
        assert await ins.read() == b""


async def test_lazy_na_raises_protocol_not_supported(
    sessions: tuple[YamuxSession, asyncio.Queue[MuxedStream]],
) -> None:
    client, inbound = sessions
    async with asyncio.timeout(T):
        out = await client.open_stream()
        lazy = LazyNegotiatedStream(out, "/unknown")
        await lazy.write(encode_message("/also-unknown"))  # application bytes look like a proposal
        ins = await inbound.get()
        listen = asyncio.create_task(handle_protocol(ins, ["/other"]))
        with pytest.raises(ProtocolNotSupported) as ei:
            await lazy.read()
        assert ei.value.protocols == ["/unknown"]
        await lazy.reset()
        with pytest.raises(StreamReset):  # "/also-unknown" got na too, then the reset ended the wait
            await listen


async def test_lazy_eof_before_echo(
    sessions: tuple[YamuxSession, asyncio.Queue[MuxedStream]],
) -> None:
    client, inbound = sessions
    async with asyncio.timeout(T):
        out = await client.open_stream()
        lazy = await select_protocol_lazy(out, "/p")
        ins = await inbound.get()
        await ins.write(HEADER)
        await ins.close_write()
        with pytest.raises(NegotiationError):
            await lazy.readexactly(1)


async def test_listener_answers_buffered_proposal_with_header_in_one_write() -> None:
    """When the dialer's header and proposal have already arrived, the listener's header and answer leave in
    one write (one packet, one wake-up of the dialer), and bytes after the proposal stay unread."""
    d, lst = await readers()
    writes: list[bytes] = []
    real_write = lst.pipe.write

    def spy(data: bytes | bytearray | memoryview) -> None:
        writes.append(bytes(data))
        real_write(data)

    lst.pipe.write = spy  # type: ignore[method-assign]
    d.write(HEADER + encode_message("/x/1") + b"after")
    async with asyncio.timeout(T):
        while lst.buffered < len(HEADER) + len(encode_message("/x/1")) + 5:
            await asyncio.sleep(0.001)
        assert await handle_protocol(lst, {"/x/1"}) == "/x/1"
        assert writes == [HEADER + encode_message("/x/1")]
        assert await lst.readexactly(5) == b"after"
        assert await d.readexactly(len(writes[0])) == writes[0]


async def test_listener_writes_header_at_once_when_nothing_is_buffered() -> None:
    """With nothing buffered the listener's header goes out before it waits (a dialer may wait for it)."""
    d, lst = await readers()
    async with asyncio.timeout(T):
        task = asyncio.ensure_future(handle_protocol(lst, {"/x/1"}))
        assert await d.readexactly(len(HEADER)) == HEADER
        d.write(HEADER + encode_message("/x/1"))
        assert await task == "/x/1"
        assert await d.readexactly(len(encode_message("/x/1"))) == encode_message("/x/1")


async def test_lazy_select_reader_sends_proposal_and_first_message_together() -> None:
    """Multistream "V1Lazy" on a raw pipe: the dialer's header, proposal and first protocol message leave
    before any answer; the listener negotiates and finds the message buffered; the dialer's first read
    checks the echo and then returns the protocol's answer."""
    a, b = memory_pipe_pair()
    dialer = LazySelectReader(a, "/noise")
    dialer.write(b"\x00\x02m1")  # the security handshake's first message, not waiting
    listener = PipeReader(b)
    async with asyncio.timeout(T):
        assert await handle_protocol(listener, ["/noise", "/tls/1.0.0"]) == "/noise"
        assert await listener.readexactly(4) == b"\x00\x02m1"
        listener.write(b"m2")
        assert not dialer.confirmed
        assert await dialer.readexactly(2) == b"m2"
        assert dialer.confirmed


async def test_lazy_select_reader_refused_raises_protocol_not_supported() -> None:
    a, b = memory_pipe_pair()
    dialer = LazySelectReader(a, "/noise")
    listener = PipeReader(b)
    async with asyncio.timeout(T):
        task = asyncio.ensure_future(handle_protocol(listener, ["/tls/1.0.0"]))
        with pytest.raises(ProtocolNotSupported):
            await dialer.readexactly(1)
        b.abort()
        with pytest.raises((NegotiationError, ConnectionClosed)):
            await task


class CountingReader(PipeReader):
    """A PipeReader that records the size of every readexactly."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.reads: list[int] = []

    async def readexactly(self, n: int) -> bytes:
        self.reads.append(n)
        return await super().readexactly(n)


async def test_a_buffered_message_is_read_whole_and_nothing_past_it() -> None:
    """With a message's one-byte length prefix already buffered, the helpers read the message in one go
    (one read per message, not prefix then body), and leave the bytes after the last one unread."""
    a, b = memory_pipe_pair()
    d, lst = PipeReader(a), CountingReader(b)
    sent = HEADER + encode_message("/nope") + encode_message("/p") + b"\x05dialer-data"
    d.write(sent)
    async with asyncio.timeout(T):
        while lst.buffered < len(sent):  # the memory pipe delivers on a later loop turn
            await asyncio.sleep(0.001)
        assert await handle_protocol(lst, ["/p"]) == "/p"
        assert lst.reads == [len(HEADER), len(encode_message("/nope")), len(encode_message("/p"))]
        assert await lst.readexactly(12) == b"\x05dialer-data"
        # a length prefix of two bytes (a 201-byte message) is still read byte by byte, then the body
        d2, lst2 = PipeReader((pair := memory_pipe_pair())[0]), CountingReader(pair[1])
        sent2 = HEADER + encode_message("/" + "x" * 199) + encode_message("/p")
        d2.write(sent2)
        while lst2.buffered < len(sent2):
            await asyncio.sleep(0.001)
        assert await handle_protocol(lst2, ["/p"]) == "/p"
        assert lst2.reads[:1] == [len(HEADER)] and lst2.reads[1:4] == [1, 1, 201]
        # the lazy dialer's check of the answer reads whole messages too
        lazy_a, lazy_b = memory_pipe_pair()
        dialer = LazySelectReader(lazy_a, "/p")
        PipeReader(lazy_b).write(HEADER + encode_message("/p") + b"data")
        assert await dialer.readexactly(4) == b"data"
        assert dialer.confirmed
