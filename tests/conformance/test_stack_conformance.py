"""The conformance suite every stack passes (go-libp2p ``p2p/test/transport/transport_test.go`` is the model).

Parametrised over :data:`stack_factories.STACKS` (memory and TCP, each with noise/plaintext × yamux/mplex).
What a stack's wire format cannot carry (a reset code over yamux, a close code over mplex, flow control and
keep-alive over mplex) is skipped with the reason; everything else is asserted.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from stack_factories import ECHO, HostSpec, StackFactory, connected_pair, stack_params, wait_for

import aiolibp2p
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.exceptions import (
    ConnectionClosed,
    DeadlineExceeded,
    DialError,
    Libp2pError,
    PeerIdMismatch,
    StreamReset,
)
from aiolibp2p.network import events as ev

ALL = stack_params()
KiB = 1024
MiB = 1024 * 1024


async def _read_to_eof(s: aiolibp2p.Stream, limit: int) -> bytes:
    buf = bytearray()
    while chunk := await s.read(256 * KiB):
        buf += chunk
        assert len(buf) <= limit
    return bytes(buf)


@pytest.mark.parametrize("stack", ALL)
async def test_ping(stack: StackFactory) -> None:
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, peer):
        assert 0 < await cli.ping(peer) < 2
        assert 0 < await srv.ping(cli.peer_id) < 2


@pytest.mark.parametrize("stack", ALL)
async def test_big_ping(stack: StackFactory) -> None:
    """64 writes of 64 KiB echoed byte-exact; after our half-close the echo ends with EOF."""
    async with asyncio.timeout(20), connected_pair(stack) as (_, cli, peer):
        blocks = [os.urandom(64 * KiB) for _ in range(64)]
        s = await cli.new_stream(peer, [ECHO])

        async def send() -> None:
            for b in blocks:
                await s.write(b)
            await s.close_write()

        sender = asyncio.ensure_future(send())
        try:
            got = await _read_to_eof(s, 64 * 64 * KiB)
        finally:
            await sender
        assert got == b"".join(blocks)
        assert await s.read() == b""
        await s.close()


@pytest.mark.parametrize("stack", ALL)
async def test_lots_of_data_many_streams(stack: StackFactory) -> None:
    """500 streams, 8 at a time, 64 KiB each way (62.5 MiB in all), each ending in EOF."""
    n, parallel, size = 500, 8, 64 * KiB
    async with asyncio.timeout(40), connected_pair(stack) as (_, cli, peer):
        sem = asyncio.Semaphore(parallel)
        total = 0

        async def one() -> None:
            nonlocal total
            payload = os.urandom(size)
            async with sem:
                s = await cli.new_stream(peer, [ECHO])
                await s.write(payload)
                await s.close_write()
                assert await _read_to_eof(s, size) == payload
                await s.close()
                total += 2 * size

        await asyncio.gather(*(one() for _ in range(n)))
        assert total == n * 2 * size > 20 * MiB
        assert len(cli.connections(peer)) == 1


@pytest.mark.parametrize("stack", ALL)
async def test_many_concurrent_streams(stack: StackFactory) -> None:
    """128 streams open at once, each echoing "hello" with a half-close; close() raises nothing."""
    async with asyncio.timeout(15), connected_pair(stack) as (_, cli, peer):
        streams = await asyncio.gather(*(cli.new_stream(peer, [ECHO]) for _ in range(128)))
        assert cli.connections(peer)[0].num_streams >= 128

        async def one(s: aiolibp2p.Stream) -> None:
            await s.write(b"hello")
            await s.close_write()
            assert await _read_to_eof(s, 5) == b"hello"
            await s.close()

        await asyncio.gather(*(one(s) for s in streams))


@pytest.mark.parametrize("stack", ALL)
async def test_more_streams_than_the_limit(stack: StackFactory) -> None:
    """1,024 stream attempts, 64 at a time, against an inbound limit of 16 streams per connection: the excess
    is refused cleanly (a reset, never a hang or a timeout) — or, on QUIC, waits for stream credit —, refused
    workers retry after 50 ms, all 1,024 finish, and the one connection survives."""
    attempts, workers, limit = 1024, 64, 16
    async with (
        asyncio.timeout(40),
        connected_pair(stack, server=HostSpec(max_inbound_streams=limit)) as (srv, cli, peer),
    ):
        in_handler = 0
        peak = 0

        async def slow_echo(s: aiolibp2p.Stream) -> None:
            nonlocal in_handler, peak
            in_handler += 1
            peak = max(peak, in_handler)
            try:
                await asyncio.sleep(0.005)  # hold the stream, so that the limit is reached
                await s.write(await _read_to_eof(s, 5))
                await s.close()
            finally:
                in_handler -= 1

        srv.set_stream_handler("/slow-echo/1.0.0", slow_echo)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(attempts):
            queue.put_nowait(i)
        done: set[int] = set()
        refusals: list[BaseException] = []

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                while True:
                    t0 = time.monotonic()
                    try:
                        s = await cli.new_stream(peer, ["/slow-echo/1.0.0"], timeout=5)
                        await s.write(b"hello")
                        await s.close_write()
                        assert await _read_to_eof(s, 5) == b"hello"
                        await s.close()
                    except (StreamReset, ConnectionClosed) as e:
                        # refused: must be prompt, and not a connection loss
                        assert not isinstance(e, ConnectionClosed), e
                        assert time.monotonic() - t0 < 3
                        refusals.append(e)
                        await asyncio.sleep(0.05)
                        continue
                    done.add(i)
                    break

        await asyncio.gather(*(worker() for _ in range(workers)))
        assert len(done) == attempts
        if stack.refuses_excess_streams:
            assert refusals, "the limit never refused a stream"
        else:  # QUIC: MAX_STREAMS credit makes the excess wait for a slot instead of being refused
            assert not refusals, refusals[:3]
        assert peak <= limit
        (conn,) = cli.connections(peer)
        assert not conn.is_closed()
        assert await cli.ping(peer) > 0


@pytest.mark.parametrize("stack", ALL)
async def test_listener_stream_reset(stack: StackFactory) -> None:
    """The handler resets: the dialer sees StreamReset (remote) from new_stream or on read, then on write."""
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, peer):
        reset_done = asyncio.Event()

        async def resetter(s: aiolibp2p.Stream) -> None:
            await s.reset()
            reset_done.set()

        srv.set_stream_handler("/reset/1.0.0", resetter)
        try:
            s = await cli.new_stream(peer, ["/reset/1.0.0"])
        except StreamReset as e:
            assert e.remote
            return
        await reset_done.wait()
        with pytest.raises(StreamReset) as ei:
            await s.read(timeout=2)
        assert ei.value.remote
        with pytest.raises(StreamReset):
            await s.write(b"x")
        assert len(cli.connections(peer)) == 1


@pytest.mark.parametrize("stack", ALL)
async def test_dialer_stream_reset(stack: StackFactory) -> None:
    """The dialer resets after the handler accepted: the handler sees StreamReset (remote) on read and
    write; the dialer's own stream raises StreamReset (local)."""
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, peer):
        accepted = asyncio.Event()
        outcome: asyncio.Future[tuple[BaseException | None, BaseException | None]] = (
            asyncio.get_running_loop().create_future()
        )

        async def reader(s: aiolibp2p.Stream) -> None:
            accepted.set()
            read_err = write_err = None
            try:
                while await s.read():
                    pass
            except Libp2pError as e:
                read_err = e
            try:
                await s.write(b"x")
            except Libp2pError as e:
                write_err = e
            outcome.set_result((read_err, write_err))

        srv.set_stream_handler("/reader/1.0.0", reader)
        s = await cli.new_stream(peer, ["/reader/1.0.0"])
        await s.write(b"some bytes")
        await accepted.wait()
        await s.reset()
        read_err, write_err = await outcome
        assert isinstance(read_err, StreamReset) and read_err.remote, read_err
        assert isinstance(write_err, StreamReset), write_err
        with pytest.raises(StreamReset) as ei:
            await s.read()
        assert not ei.value.remote
        with pytest.raises(StreamReset):
            await s.write(b"x")


@pytest.mark.parametrize("stack", ALL)
async def test_stream_read_deadline(stack: StackFactory) -> None:
    """read(timeout=0.1) raises DeadlineExceeded (a TimeoutError) promptly; the stream stays usable."""
    async with asyncio.timeout(10), connected_pair(stack) as (_, cli, peer):
        s = await cli.new_stream(peer, [ECHO])
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded) as ei:
            await s.read(timeout=0.1)
        assert 0.09 <= time.monotonic() - t0 < 1.0
        assert isinstance(ei.value, TimeoutError) and ei.value.what == "stream read"
        with pytest.raises(DeadlineExceeded):
            await s.readexactly(6, timeout=0.05)
        await s.write(b"foobar")
        await s.close_write()
        assert await _read_to_eof(s, 6) == b"foobar"


@pytest.mark.parametrize("stack", ALL)
async def test_stream_write_deadline(stack: StackFactory) -> None:
    """go's TestReadWriteDeadlines: a 10 MiB write to a handler that never reads ends within 1 s of its
    10 ms deadline. With flow control that is DeadlineExceeded; mplex, which has none, instead resets the
    stream once the reader is ``max_stream_buffer`` behind (its design), so the writer gets StreamReset."""
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, peer):
        hold = asyncio.Event()

        async def stall(s: aiolibp2p.Stream) -> None:
            await hold.wait()

        srv.set_stream_handler("/stall/1.0.0", stall)
        s = await cli.new_stream(peer, ["/stall/1.0.0"])
        data = bytes(10 * MiB)
        t0 = time.monotonic()
        if stack.stream_flow_control:
            with pytest.raises(DeadlineExceeded):
                await s.write(data, timeout=0.01)
        else:
            with pytest.raises((DeadlineExceeded, StreamReset)):
                await s.write(data, timeout=0.01)
                await s.read(timeout=1.0)  # the reset arrives
        assert time.monotonic() - t0 < 1.0
        hold.set()
        assert len(cli.connections(peer)) == 1


@pytest.mark.parametrize("stack", ALL)
async def test_remote_peer_id_from_security_handshake(stack: StackFactory) -> None:
    """Dialing with a wrong peer ID fails with PeerIdMismatch carrying the real ID; a redial with that ID
    succeeds, and both sides know each other's ID and key from the handshake."""
    async with asyncio.timeout(10), stack.new_host() as srv, stack.new_host(HostSpec(listen=False)) as cli:
        wrong = PeerId.from_public_key(generate_key_pair().public_key)
        base = srv.listen_addrs[0]
        with pytest.raises(DialError) as ei:
            await cli.connect(base.with_peer_id(str(wrong)))
        mismatches = [e for e in ei.value.errors.values() if isinstance(e, PeerIdMismatch)]
        assert mismatches, ei.value.errors
        assert mismatches[0].expected == wrong and mismatches[0].actual == srv.peer_id
        assert cli.connections() == []
        learned = mismatches[0].actual
        assert isinstance(learned, PeerId)
        assert await cli.connect(base.with_peer_id(str(learned))) == srv.peer_id
        (conn,) = cli.connections(srv.peer_id)
        assert PeerId.from_public_key(conn.remote_public_key) == srv.peer_id
        await wait_for(lambda: len(srv.connections(cli.peer_id)) == 1, 2)
        assert srv.connections(cli.peer_id)[0].remote_peer == cli.peer_id


# -- closing while a write is blocked -------------------------------------------------------------------------


async def _blocked_writer(
    srv: aiolibp2p.Host, cli: aiolibp2p.Host, peer: PeerId
) -> tuple[asyncio.Task[None], list[int]]:
    """A stream from ``cli`` to a handler that never reads, and a writer task blocked on its full window."""
    hold = asyncio.Event()

    async def sink(s: aiolibp2p.Stream) -> None:
        await hold.wait()

    srv.set_stream_handler("/sink/1.0.0", sink)
    s = await cli.new_stream(peer, ["/sink/1.0.0"])
    written = [0]
    chunk = bytes(64 * KiB)

    async def write() -> None:
        while written[0] < 256 * MiB:
            await s.write(chunk)
            written[0] += len(chunk)

    task = asyncio.ensure_future(write())
    last = -1
    while written[0] != last:  # blocked: no progress for 100 ms
        last = written[0]
        await asyncio.sleep(0.1)
        assert not task.done(), task
    return task, written


async def _writer_fails_promptly(task: asyncio.Task[None], t0: float) -> BaseException:
    async with asyncio.timeout(1.0):
        with pytest.raises((ConnectionClosed, StreamReset)) as ei:
            await task
    assert time.monotonic() - t0 < 1.0
    return ei.value


def _needs_flow_control(stack: StackFactory) -> None:
    if not stack.stream_flow_control:
        pytest.skip(
            f"{stack.muxer} has no flow control: a writer never blocks on a non-reading peer (the peer "
            "resets the stream past max_stream_buffer; see test_stream_write_deadline)"
        )


@pytest.mark.parametrize("closer", ["writer-side", "reader-side"])
@pytest.mark.parametrize("stack", ALL)
async def test_close_connection_while_write_blocked(stack: StackFactory, closer: str) -> None:
    _needs_flow_control(stack)
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, peer):
        task, written = await _blocked_writer(srv, cli, peer)
        assert written[0] < 256 * MiB
        conn = (cli.connections(peer) if closer == "writer-side" else srv.connections(cli.peer_id))[0]
        t0 = time.monotonic()
        await conn.close()
        await _writer_fails_promptly(task, t0)
        await wait_for(lambda: not cli.connections() and not srv.connections(), 1.0)


@pytest.mark.parametrize("dropped", ["writer-side", "reader-side"])
@pytest.mark.parametrize("stack", ALL)
async def test_connection_dropped_while_write_blocked(stack: StackFactory, dropped: str) -> None:
    """The secured pipe under the muxer is aborted (a dropped connection, TCP RST) while the writer waits."""
    _needs_flow_control(stack)
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, peer):
        task, _ = await _blocked_writer(srv, cli, peer)
        conn = (cli.connections(peer) if dropped == "writer-side" else srv.connections(cli.peer_id))[0]
        pipe = getattr(conn.muxed, "_pipe", None)
        if pipe is None:
            pytest.skip(f"{stack.name}: no pipe under the muxer to abort")
        t0 = time.monotonic()
        pipe.abort()
        await _writer_fails_promptly(task, t0)
        await wait_for(lambda: not cli.connections() and not srv.connections(), 1.0)


@pytest.mark.parametrize("closer", ["dialer", "listener"])
@pytest.mark.parametrize("stack", ALL)
async def test_connection_closed_when_remote_closes(stack: StackFactory, closer: str) -> None:
    """One side closes its connection: the other sees ConnectionClosed (with a remote cause) and
    PeerDisconnected within 1 s; each side gets exactly one closed event."""
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, _):
        seen: dict[str, list[ev.Event]] = {"dialer": [], "listener": []}
        types = (ev.ConnectionClosed, ev.PeerDisconnected)
        cli.on(types, seen["dialer"].append)
        srv.on(types, seen["listener"].append)
        host = cli if closer == "dialer" else srv
        other = "listener" if closer == "dialer" else "dialer"
        t0 = time.monotonic()
        for c in host.connections():
            await c.close()
        await wait_for(lambda: any(isinstance(e, ev.PeerDisconnected) for e in seen[other]), 1.0)
        assert time.monotonic() - t0 < 1.0
        await wait_for(lambda: any(isinstance(e, ev.PeerDisconnected) for e in seen[closer]), 1.0)
        for side in ("dialer", "listener"):
            closed = [e for e in seen[side] if isinstance(e, ev.ConnectionClosed)]
            assert len(closed) == 1, seen[side]
            if side == closer:
                assert closed[0].cause == "local-close"
            else:
                assert closed[0].cause in ("remote-closed", "remote-goaway"), closed[0].cause
            assert closed[0].remaining == 0
        assert cli.connections() == [] and srv.connections() == []


# -- error codes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resetter", ["dialer", "listener"])
@pytest.mark.parametrize("stack", ALL)
async def test_stream_reset_error_code(stack: StackFactory, resetter: str) -> None:
    """reset(42): the resetting side's read and write raise StreamReset(code=42, remote=False); the other
    side's raise StreamReset(remote=True), with code 42 where the stack carries stream codes."""
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, peer):
        streams: asyncio.Queue[aiolibp2p.Stream] = asyncio.Queue()
        hold = asyncio.Event()

        async def park(s: aiolibp2p.Stream) -> None:
            streams.put_nowait(s)
            await hold.wait()

        srv.set_stream_handler("/park/1.0.0", park)
        dialer_s = await cli.new_stream(peer, ["/park/1.0.0"])
        await dialer_s.write(b"hi")  # the handler runs once the negotiation is confirmed
        listener_s = await streams.get()
        mine, theirs = (dialer_s, listener_s) if resetter == "dialer" else (listener_s, dialer_s)
        await mine.reset(42)
        for op in (mine.read, lambda: mine.write(b"x")):
            with pytest.raises(StreamReset) as ei:
                await op()
            assert not ei.value.remote and ei.value.code == 42, (ei.value, ei.value.code)
        with pytest.raises(StreamReset) as ei:
            while await theirs.read(timeout=2):
                pass
        assert ei.value.remote
        read_code = ei.value.code
        with pytest.raises(StreamReset) as ei:
            await theirs.write(b"x")
        assert ei.value.remote
        hold.set()
        if not stack.carries_stream_reset_code:
            pytest.skip(f"{stack.muxer} carries no stream error code (the remote saw code {read_code})")
        assert read_code == 42 and ei.value.code == 42


@pytest.mark.parametrize("closer", ["dialer", "listener"])
@pytest.mark.parametrize("stack", ALL)
async def test_connection_close_error_code(stack: StackFactory, closer: str) -> None:
    """conn.close(42) with a stream open: the closing side's stream raises ConnectionClosed(code=42); the
    other side's stream raises ConnectionClosed, with code 42 where the stack carries connection codes
    (yamux GoAway does, mplex has no GoAway)."""
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, peer):
        streams: asyncio.Queue[aiolibp2p.Stream] = asyncio.Queue()
        hold = asyncio.Event()

        async def park(s: aiolibp2p.Stream) -> None:
            streams.put_nowait(s)
            await hold.wait()

        srv.set_stream_handler("/park/1.0.0", park)
        dialer_s = await cli.new_stream(peer, ["/park/1.0.0"])
        await dialer_s.write(b"hi")
        listener_s = await streams.get()
        mine, theirs = (dialer_s, listener_s) if closer == "dialer" else (listener_s, dialer_s)
        remote_events: list[ev.ConnectionClosed] = []
        (srv if closer == "dialer" else cli).on(ev.ConnectionClosed, remote_events.append)
        await mine.conn.close(42)
        for op in (mine.read, lambda: mine.write(b"x")):
            with pytest.raises(ConnectionClosed) as ei:
                await op()
            assert ei.value.code == 42, (ei.value, ei.value.code)
        with pytest.raises(ConnectionClosed) as ei:
            while await theirs.read(timeout=2):
                pass
        codes = [ei.value.code]
        with pytest.raises(ConnectionClosed) as ei:
            await theirs.write(b"x")
        codes.append(ei.value.code)
        with pytest.raises(ConnectionClosed) as ei:
            await theirs.conn.open_stream([ECHO], timeout=2)
        await wait_for(lambda: remote_events, 1.0)
        hold.set()
        if not stack.carries_conn_close_code:
            pytest.skip(f"{stack.muxer} carries no connection error code (the remote saw {codes})")
        assert codes == [42, 42]
        # yamux reports the GoAway that carried the code; QUIC its CONNECTION_CLOSE
        assert remote_events[0].cause in ("remote-goaway", "remote-closed")
