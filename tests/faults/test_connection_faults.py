"""Connection faults seen through a user-space relay and from a killed peer process.

- a relay that stalls or black-holes a connection (silent death): keep-alive detects it within 2 × interval;
- a relay that cuts the connection with an RST: both sides see it within 1 s;
- a relay adding 50 ms each way: transfers still complete;
- a peer process killed with SIGKILL: our side sees the connection close within 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import pytest
from fault_relay import FaultRelay

import aiolibp2p
from aiolibp2p.exceptions import Libp2pError
from aiolibp2p.network import events as ev
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo

MUXERS = ["/yamux/1.0.0", "/mplex/6.7.0"]
KEEPALIVE_INTERVAL = 0.5
KEEPALIVE_TIMEOUT = 0.25


async def _wait_for(pred: object, timeout: float) -> float:
    t0 = time.monotonic()
    async with asyncio.timeout(timeout):
        while not pred():  # type: ignore[operator]
            await asyncio.sleep(0.005)
    return time.monotonic() - t0


def _host(muxer: str, *, listen: bool = True, **kw: object) -> aiolibp2p.Host:
    return aiolibp2p.new_host(
        listen=["/ip4/127.0.0.1/tcp/0"] if listen else [], transports=["tcp"], muxers=[muxer], **kw
    )


@contextlib.asynccontextmanager
async def _relayed_pair(
    muxer: str, *, latency: float = 0.0, **kw: object
) -> AsyncIterator[tuple[aiolibp2p.Host, aiolibp2p.Host, FaultRelay]]:
    """A listener ``a`` (serving echo) and a dialer ``b`` connected to it through a relay."""
    async with _host(muxer, **kw) as a, _host(muxer, listen=False, **kw) as b:
        a.set_stream_handler(ECHO, handle_echo)
        relay = FaultRelay(a.listen_addrs[0].host_port(), latency=latency)
        await relay.start()
        try:
            await b.connect(relay.multiaddr(a.peer_id), timeout=10)
            await _wait_for(lambda: len(a.connections(b.peer_id)) == 1, 5)
            yield a, b, relay
        finally:
            await relay.close()


@pytest.mark.parametrize("fault", ["stall", "blackhole"])
@pytest.mark.parametrize("muxer", MUXERS)
async def test_silent_death_detected_by_keepalive(muxer: str, fault: str) -> None:
    if muxer == "/mplex/6.7.0":
        pytest.skip(
            "mplex has no ping frame, hence no keep-alive: a silently dead mplex connection is only "
            "found when a write fails (go-libp2p has the same gap)"
        )
    ka = {"keepalive_interval": KEEPALIVE_INTERVAL, "keepalive_timeout": KEEPALIVE_TIMEOUT}
    async with asyncio.timeout(15), _relayed_pair(muxer, **ka) as (a, b, relay):
        closed: dict[str, list[ev.ConnectionClosed]] = {"a": [], "b": []}
        a.on(ev.ConnectionClosed, closed["a"].append)
        b.on(ev.ConnectionClosed, closed["b"].append)
        assert await b.ping(a.peer_id) > 0
        (conn_a,), (conn_b,) = a.connections(), b.connections()
        t0 = time.monotonic()
        relay.stall() if fault == "stall" else relay.blackhole()

        def causes() -> list[str]:
            return [e.cause for e in closed["a"] + closed["b"] if e.conn in (conn_a, conn_b)]

        await _wait_for(lambda: len(causes()) == 2, 2 * KEEPALIVE_INTERVAL + 0.2)
        took = time.monotonic() - t0
        assert took <= 2 * KEEPALIVE_INTERVAL + 0.1, took
        assert causes() == ["keepalive-timeout"] * 2
        # (a new stream meanwhile, e.g. an identify push, may have dialed a's direct address: not via the relay)
        assert conn_a not in a.connections() and conn_b not in b.connections()
        # the path heals: a fresh connection works
        relay.resume()
        await b.connect(relay.multiaddr(a.peer_id), timeout=5)
        s = await b.new_stream(a.peer_id, [ECHO], timeout=5)
        assert await echo_roundtrip(s, 100_000) == 100_000


@pytest.mark.parametrize("muxer", MUXERS)
async def test_abrupt_rst_seen_within_one_second(muxer: str) -> None:
    async with asyncio.timeout(15), _relayed_pair(muxer) as (a, b, relay):
        gone = {"a": asyncio.Event(), "b": asyncio.Event()}
        a.on(ev.PeerDisconnected, lambda e: gone["a"].set())
        b.on(ev.PeerDisconnected, lambda e: gone["b"].set())
        causes: list[str] = []
        a.on(ev.ConnectionClosed, lambda e: causes.append(e.cause))
        b.on(ev.ConnectionClosed, lambda e: causes.append(e.cause))
        # a stream in flight on each side when the RST comes
        s = await b.new_stream(a.peer_id, [ECHO])
        await s.write(b"x" * 1000)
        t0 = time.monotonic()
        relay.cut()
        async with asyncio.timeout(1.0):
            await gone["a"].wait()
            await gone["b"].wait()
        assert time.monotonic() - t0 < 1.0
        assert len(causes) == 2 and all(c in ("error", "remote-closed") for c in causes), causes
        with pytest.raises(Libp2pError):
            while await s.read(timeout=1):
                pass


@pytest.mark.parametrize("muxer", MUXERS)
async def test_high_latency_still_completes_transfers(muxer: str) -> None:
    """50 ms each way (RTT 100 ms): the handshakes, 1 MiB on one stream and 16 concurrent streams finish."""
    async with asyncio.timeout(30), _relayed_pair(muxer, latency=0.05) as (a, b, _):
        rtt = await b.ping(a.peer_id)
        # (the relay's timers may fire a little early: libuv rounds them to the millisecond)
        assert 0.098 <= rtt < 1.0, rtt
        s = await b.new_stream(a.peer_id, [ECHO], timeout=5)
        assert await echo_roundtrip(s, 1024 * 1024) == 1024 * 1024

        async def one() -> int:
            s = await b.new_stream(a.peer_id, [ECHO], timeout=5)
            return await echo_roundtrip(s, 64 * 1024)

        assert await asyncio.gather(*(one() for _ in range(16))) == [64 * 1024] * 16
        assert await a.ping(b.peer_id) >= 0.098
        assert len(b.connections(a.peer_id)) == 1


# -- a peer process killed with SIGKILL ---------------------------------------------------------------------


async def _read_json_line(stream: asyncio.StreamReader, event: str, timeout: float) -> dict[str, object]:
    async with asyncio.timeout(timeout):
        while True:
            line = await stream.readline()
            if not line:
                raise EOFError(f"peer process exited before printing {event!r}")
            with contextlib.suppress(json.JSONDecodeError):
                obj = json.loads(line)
                if isinstance(obj, dict) and obj.get("event") == event:
                    return obj


@pytest.mark.parametrize("muxer", MUXERS)
async def test_peer_killed_with_sigkill(muxer: str) -> None:
    """`aiolibp2p serve --json` as a subprocess, connected and busy with a stream; SIGKILL; our side sees
    the connection close within 1 s and the stream fails."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiolibp2p",
        "serve",
        "--json",
        "--muxer",
        muxer,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        async with asyncio.timeout(30), _host(muxer, listen=False) as b:
            assert proc.stdout is not None
            listening = await _read_json_line(proc.stdout, "listening", 20)
            addrs = listening["addrs"]
            assert isinstance(addrs, list)
            peer = await b.connect(str(addrs[0]), timeout=5)
            s = await b.new_stream(peer, [ECHO], timeout=5)
            await s.write(b"ping")
            assert await s.readexactly(4, timeout=5) == b"ping"
            gone = asyncio.Event()
            causes: list[str] = []
            b.on(ev.PeerDisconnected, lambda e: gone.set())
            b.on(ev.ConnectionClosed, lambda e: causes.append(e.cause))
            t0 = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            async with asyncio.timeout(1.0):
                await gone.wait()
            assert time.monotonic() - t0 < 1.0
            assert causes and causes[0] in ("remote-closed", "error"), causes
            with pytest.raises(Libp2pError):
                await s.read(timeout=1)
            assert b.connections() == []
    finally:
        if proc.returncode is None:
            proc.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)
