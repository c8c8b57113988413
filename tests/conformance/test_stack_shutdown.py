"""Shutdown: ``host.close()`` leaves no task, socket or file descriptor behind, for every stack.

Two hosts are made busy (two connections, finished echo streams, a stream parked in a handler, a user task
blocked reading it), then closed; tasks and fds must return to what they were before.
"""

from __future__ import annotations

import asyncio

import pytest
from stack_factories import ECHO, HostSpec, StackFactory, resource_snapshot, stack_params, wait_for

import aiolibp2p
from aiolibp2p.exceptions import ConnectionClosed, StreamReset
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo


@pytest.mark.parametrize("closing_first", ["dialer", "listener"])
@pytest.mark.parametrize("stack", stack_params())
async def test_close_leaves_nothing_behind(stack: StackFactory, closing_first: str) -> None:
    await asyncio.sleep(0)  # let callbacks of earlier tests settle
    before = resource_snapshot()
    me = asyncio.current_task()
    async with asyncio.timeout(15):
        srv = stack.new_host()
        cli = stack.new_host(HostSpec(listen=False))
        await srv.start()
        await cli.start()
        hold = asyncio.Event()

        async def park(s: aiolibp2p.Stream) -> None:
            await hold.wait()

        srv.set_stream_handler(ECHO, handle_echo)
        srv.set_stream_handler("/park/1.0.0", park)
        peer = await cli.connect(srv.full_addrs()[0])
        await cli.connect(srv.full_addrs()[0], new_connection=True)
        assert len(cli.connections(peer)) == 2
        assert await cli.ping(peer) > 0
        for _ in range(4):
            s = await cli.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 256 * 1024) == 256 * 1024
        parked = await cli.new_stream(peer, ["/park/1.0.0"])
        await parked.write(b"hi")
        blocked_reader = asyncio.ensure_future(parked.read())
        await asyncio.sleep(0.05)
        first, second = (cli, srv) if closing_first == "dialer" else (srv, cli)
        await first.close()
        await second.close()
        # the user's blocked read ends with an error, not a hang
        with pytest.raises((ConnectionClosed, StreamReset)):
            await asyncio.wait_for(blocked_reader, 2)

        def leftovers() -> tuple[set[asyncio.Task[object]], set[str], set[str]]:
            now = resource_snapshot()
            tasks = {t for t in now.tasks - before.tasks if t is not me and not t.done()}
            # libuv (uvloop) opens /dev/null once per loop, at its first listen, as a reserve fd for EMFILE;
            # it belongs to the loop, not to a host.
            fds = {fd for fd, target in now.fd_targets(now.fds - before.fds).items() if target != "/dev/null"}
            return tasks, fds, set(now.sockets - before.sockets)

        try:
            await wait_for(lambda: leftovers() == (set(), set(), set()), 3.0, interval=0.02)
        except TimeoutError:
            tasks, fds, socks = leftovers()
            targets = resource_snapshot().fd_targets(frozenset(fds))
            pytest.fail(f"left behind after close: tasks={tasks} fds={targets} sockets={socks}")
