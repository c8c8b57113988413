"""A stream held by a protocol handler when its remote ends it: what reads and writes give, exactly, and one
StreamClosed event per stream on each side, after its StreamOpened. On TCP/yamux, TCP/mplex, QUIC and WebRTC-direct."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from stack_factories import StackFactory, connected_pair, stack_params, wait_for

import aiolibp2p
from aiolibp2p.exceptions import ConnectionClosed, Libp2pError, StreamClosed, StreamReset
from aiolibp2p.network import events as ev

STACKS = stack_params(lambda s: s.name in ("tcp-noise-yamux", "tcp-noise-mplex", "quic", "webrtc-direct"))
HELD = "/held/1.0.0"


def _record(h: aiolibp2p.Host) -> list[ev.Event]:
    seen: list[ev.Event] = []
    h.on((ev.StreamOpened, ev.StreamClosed), seen.append)
    return seen


def _exactly_once(seen: list[ev.Event], protocol: str, n: int) -> None:
    """``n`` streams of ``protocol`` each opened once and closed once, each close after its open."""
    opened = [e for e in seen if isinstance(e, ev.StreamOpened) and e.protocol == protocol]
    closed = [e for e in seen if isinstance(e, ev.StreamClosed) and e.protocol == protocol]
    assert len(opened) == n and len(closed) == n, seen
    assert all(c == 1 for c in Counter(id(e.stream) for e in closed).values())
    assert seen.index(opened[0]) < seen.index(closed[0])


@pytest.mark.parametrize("stack", STACKS)
async def test_remote_close_gives_eof_exactly(stack: StackFactory) -> None:
    """The dialer writes, then closes: the handler reads the bytes, then EOF every time (readexactly raises
    IncompleteReadError); its write after its own close raises StreamClosed; one closed event each side."""
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, peer):
        outcome: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()

        async def held(s: aiolibp2p.Stream) -> None:
            got: list[object] = [await s.readexactly(3)]
            got += [await s.read(), await s.read()]
            try:
                await s.readexactly(1)
            except asyncio.IncompleteReadError as e:
                got.append(("incomplete", e.partial))
            try:  # the remote closed both its directions: a write is dropped or refused, never hangs
                await s.write(b"late", timeout=1)
            except (StreamReset, StreamClosed):
                pass
            await s.close()
            with pytest.raises(StreamClosed):
                await s.write(b"after close")
            outcome.set_result(got)

        srv.set_stream_handler(HELD, held)
        srv_seen, cli_seen = _record(srv), _record(cli)
        s = await cli.new_stream(peer, [HELD])
        await s.write(b"abc")
        await s.close()
        assert await outcome == [b"abc", b"", b"", ("incomplete", b"")]
        await wait_for(
            lambda: any(isinstance(e, ev.StreamClosed) and e.protocol == HELD for e in srv_seen), 2
        )
        await asyncio.sleep(0.1)  # nothing more comes
        _exactly_once(srv_seen, HELD, 1)
        _exactly_once(cli_seen, HELD, 1)


@pytest.mark.parametrize("stack", STACKS)
async def test_remote_reset_gives_stream_reset_exactly(stack: StackFactory) -> None:
    """The dialer resets: every read and write of the handler raises StreamReset(remote); closing or resetting
    it afterwards is quiet; one closed event each side."""
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, peer):
        accepted = asyncio.Event()
        outcome: asyncio.Future[list[BaseException]] = asyncio.get_running_loop().create_future()

        async def held(s: aiolibp2p.Stream) -> None:
            accepted.set()
            errors: list[BaseException] = []
            for op in (
                s.read,
                s.read,
                lambda: s.readexactly(4),
                lambda: s.write(b"x"),
                lambda: s.write(b"y"),
            ):
                try:
                    while await op():  # type: ignore[operator]
                        pass
                    errors.append(AssertionError("no error"))
                except Libp2pError as e:
                    errors.append(e)
            await s.close()
            await s.reset()
            outcome.set_result(errors)

        srv.set_stream_handler(HELD, held)
        srv_seen, cli_seen = _record(srv), _record(cli)
        s = await cli.new_stream(peer, [HELD])
        await s.write(b"hi")
        await accepted.wait()
        await s.reset()
        errors = await outcome
        assert all(isinstance(e, StreamReset) and e.remote for e in errors), errors
        await wait_for(
            lambda: any(isinstance(e, ev.StreamClosed) and e.protocol == HELD for e in srv_seen), 2
        )
        await asyncio.sleep(0.1)
        _exactly_once(srv_seen, HELD, 1)
        _exactly_once(cli_seen, HELD, 1)
        assert len(cli.connections(peer)) == 1  # a stream reset, not the connection


@pytest.mark.parametrize("closer", ["dialer", "listener"])
@pytest.mark.parametrize("stack", STACKS)
async def test_connection_close_reaches_every_held_stream(stack: StackFactory, closer: str) -> None:
    """Five handlers block in read when the connection closes (from either side): each read and then write
    raises ConnectionClosed; each stream gets exactly one closed event on each side; one ConnectionClosed."""
    n = 5
    async with asyncio.timeout(10), connected_pair(stack) as (srv, cli, peer):
        started = 0
        results: list[tuple[BaseException | None, BaseException | None]] = []

        async def held(s: aiolibp2p.Stream) -> None:
            nonlocal started
            await s.readexactly(2)
            started += 1  # now blocked in read below
            read_err = write_err = None
            try:
                await s.read()
            except Libp2pError as e:
                read_err = e
            try:
                await s.write(b"x")
            except Libp2pError as e:
                write_err = e
            results.append((read_err, write_err))

        srv.set_stream_handler(HELD, held)
        srv_seen, cli_seen = _record(srv), _record(cli)
        conn_closed: list[ev.ConnectionClosed] = []
        srv.on(ev.ConnectionClosed, conn_closed.append)
        streams = [await cli.new_stream(peer, [HELD]) for _ in range(n)]
        for s in streams:
            await s.write(b"hi")
        await wait_for(lambda: started == n, 2)
        conn = cli.connections(peer)[0] if closer == "dialer" else srv.connections(cli.peer_id)[0]
        await conn.close()
        await wait_for(lambda: len(results) == n, 2)
        for read_err, write_err in results:
            assert isinstance(read_err, ConnectionClosed), read_err
            assert isinstance(write_err, ConnectionClosed), write_err
        for s in streams:
            with pytest.raises(ConnectionClosed):
                await s.write(b"x")
        await asyncio.sleep(0.1)
        _exactly_once(srv_seen, HELD, n)
        _exactly_once(cli_seen, HELD, n)
        assert len(conn_closed) == 1
