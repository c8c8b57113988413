"""Silent death on a real link: two network namespaces joined by a veth pair, a host process in each; the
link is taken down (no FIN, no RST, nothing) and keep-alive must find out within 2 × interval on both sides;
the link comes back and the hosts reconnect.

Needs root (``ip netns add``); skipped with the reason otherwise. Everything the test makes is deleted in
``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.netns

PEER_SCRIPT = Path(__file__).with_name("netns_peer.py")
KEEPALIVE_INTERVAL = 0.5
KEEPALIVE_TIMEOUT = 0.25


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=10)


class PeerProcess:
    """A netns_peer.py process: JSON events out, JSON commands in."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, netns: str, *args: str) -> PeerProcess:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", netns, sys.executable, str(PEER_SCRIPT), *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            with contextlib.suppress(json.JSONDecodeError):
                self.events.put_nowait((time.monotonic(), json.loads(line)))

    async def expect(self, event: str, timeout: float) -> tuple[float, dict[str, Any]]:
        """The next event named ``event`` (others are skipped), with its arrival time."""
        async with asyncio.timeout(timeout):
            while True:
                t, obj = await self.events.get()
                if obj.get("event") == event:
                    return t, obj
                if obj.get("event") == "error":
                    raise AssertionError(f"peer process reported {obj}")

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                self.send(cmd="quit")
            try:
                await asyncio.wait_for(self.proc.wait(), 3)
            except TimeoutError:
                self.proc.kill()
                await asyncio.wait_for(self.proc.wait(), 3)
        self._reader.cancel()


@contextlib.asynccontextmanager
async def _two_namespaces() -> AsyncIterator[tuple[str, str, str, str]]:
    """Namespaces A and B joined by veth (A: 10.231.n.1, B: 10.231.n.2). Yields (ns_a, ns_b, dev_a, ip_a)."""
    tag = f"{os.getpid() % 100000}"
    ns_a, ns_b = f"aiolibp2p-a{tag}", f"aiolibp2p-b{tag}"
    dev_a, dev_b = f"p2pa{tag}", f"p2pb{tag}"
    subnet = f"10.231.{os.getpid() % 250}"
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    try:
        _ip("netns", "add", ns_a)
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", b"") or b""
        pytest.skip(f"`ip netns add` is not permitted here: {e} {detail.decode(errors='replace').strip()}")
    try:
        _ip("netns", "add", ns_b)
        _ip("link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)
        for ns, dev, host in ((ns_a, dev_a, 1), (ns_b, dev_b, 2)):
            _ip("-n", ns, "addr", "add", f"{subnet}.{host}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b, dev_a, f"{subnet}.1"
    finally:
        for ns in (ns_a, ns_b):
            _ip("netns", "del", ns, check=False)  # deletes its end of the veth pair too


async def test_link_down_is_detected_by_keepalive_then_reconnect() -> None:
    ka = ["--keepalive", str(KEEPALIVE_INTERVAL), str(KEEPALIVE_TIMEOUT)]
    async with asyncio.timeout(40), _two_namespaces() as (ns_a, ns_b, dev_a, ip_a):
        a = await PeerProcess.start(ns_a, "--listen", f"/ip4/{ip_a}/tcp/0", *ka)
        b = await PeerProcess.start(ns_b, *ka)
        try:
            _, listening = await a.expect("listening", 20)
            await b.expect("listening", 20)
            addr = listening["addrs"][0]
            b.send(cmd="connect", addr=addr)
            await b.expect("connected", 10)
            await a.expect("connection_opened", 5)
            b.send(cmd="ping", peer=listening["peerId"])
            await b.expect("ping", 5)

            t0 = time.monotonic()
            _ip("-n", ns_a, "link", "set", dev_a, "down")
            bound = 2 * KEEPALIVE_INTERVAL
            (ta, ea), (tb, eb) = await asyncio.gather(
                a.expect("connection_closed", bound + 1), b.expect("connection_closed", bound + 1)
            )
            # + 0.1 s for the event to cross the process pipe
            assert ta - t0 <= bound + 0.1 and tb - t0 <= bound + 0.1, (ta - t0, tb - t0)
            assert ea["cause"] == "keepalive-timeout" and eb["cause"] == "keepalive-timeout", (ea, eb)

            _ip("-n", ns_a, "link", "set", dev_a, "up")
            for attempt in range(20):  # the link needs a moment to carry traffic again
                b.send(cmd="connect", addr=addr)
                try:
                    await b.expect("connected", 5)
                    break
                except AssertionError:
                    if attempt == 19:
                        raise
                    await asyncio.sleep(0.1)
            b.send(cmd="ping", peer=listening["peerId"])
            await b.expect("ping", 5)
        finally:
            await asyncio.gather(a.stop(), b.stop())
