"""PipeReader and memory pipes: buffering, hand-over at a protocol switch, close and abort, backpressure."""

from __future__ import annotations

import asyncio

import pytest

from aiolibp2p.core.pipe import PipeReader
from aiolibp2p.exceptions import ConnectionClosed, MessageTooLarge, VarintError
from aiolibp2p.transports.memory.pipe import memory_pipe_pair


class Collector:
    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.lost: list[BaseException | None] = []

    def pipe_data_received(self, data: bytes) -> None:
        self.data += data

    def pipe_eof_received(self) -> None:
        self.eof = True

    def pipe_connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


async def test_reader_reads_and_hands_over_leftover() -> None:
    async with asyncio.timeout(5):
        a, b = memory_pipe_pair()
        r = PipeReader(b)
        a.write(b"\x05hello" + b"trailing")
        assert await r.read_length_prefixed(16) == b"hello"
        await asyncio.sleep(0)
        c = Collector()
        r.hand_over(c)
        await asyncio.sleep(0.01)
        assert bytes(c.data) == b"trailing"
        a.close()
        await asyncio.sleep(0.01)
        assert c.eof and c.lost == [None]


async def test_reader_limits() -> None:
    async with asyncio.timeout(5):
        a, b = memory_pipe_pair()
        r = PipeReader(b, max_buffer=1024)
        a.write(b"\x80\x10")
        with pytest.raises(MessageTooLarge):
            await r.read_length_prefixed(1000)
        a.write(b"\x80\x00")
        with pytest.raises(VarintError):
            await r.read_uvarint()


async def test_reader_sees_close_mid_read() -> None:
    async with asyncio.timeout(5):
        a, b = memory_pipe_pair()
        r = PipeReader(b)
        a.write(b"ab")
        a.close()
        with pytest.raises(ConnectionClosed):
            await r.readexactly(3)


async def test_abort_is_seen_as_reset() -> None:
    async with asyncio.timeout(5):
        a, b = memory_pipe_pair()
        c = Collector()
        b.set_receiver(c)
        a.write(b"lost")
        a.abort()
        await asyncio.sleep(0.01)
        assert len(c.lost) == 1 and isinstance(c.lost[0], ConnectionResetError)
        with pytest.raises(ConnectionClosed):
            a.write(b"x")


async def test_backpressure() -> None:
    async with asyncio.timeout(5):
        a, b = memory_pipe_pair(high_water=1000)
        c = Collector()
        b.set_receiver(c)
        b.pause_reading()
        a.write(b"x" * 5000)
        drain = asyncio.ensure_future(a.drain())
        await asyncio.sleep(0.02)
        assert not drain.done()
        b.resume_reading()
        await drain
        assert len(c.data) == 5000


async def test_tcp_pipe_keeps_buffered_chunks_across_a_layer_switch() -> None:
    from aiolibp2p.transports.tcp.transport import TcpPipe

    class Switcher(Collector):
        def __init__(self, pipe: TcpPipe, nxt: Collector) -> None:
            super().__init__()
            self.pipe, self.nxt = pipe, nxt

        def pipe_data_received(self, data: bytes) -> None:
            super().pipe_data_received(data)
            self.pipe.set_receiver(self.nxt)  # switch after the first chunk

    pipe = TcpPipe()
    for chunk in (b"one", b"two", b"three"):
        pipe.data_received(chunk)  # no receiver yet: buffered
    nxt = Collector()
    first = Switcher(pipe, nxt)
    pipe.set_receiver(first)
    assert bytes(first.data) == b"one"
    assert bytes(nxt.data) == b"twothree"
