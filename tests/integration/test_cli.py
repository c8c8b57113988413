"""The `aiolibp2p` command: JSON lines, exit codes, clean shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "aiolibp2p"]


async def run(*args: str, timeout: float = 30) -> tuple[int, list[dict[str, Any]], str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
    assert proc.returncode is not None
    return proc.returncode, lines, err.decode()


@asynccontextmanager
async def serve(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, Any]]]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "serve",
        "--json",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        assert first["event"] == "listening"
        yield proc, first
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_keygen_serve_ping_echo_identify_and_sigterm(tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    code, lines, _ = await run("keygen", "--type", "ed25519", "--out", str(key), "--json")
    assert code == 0 and lines[0]["event"] == "keygen" and key.stat().st_mode & 0o777 == 0o600
    pid = lines[0]["peerId"]
    async with serve("--key", str(key)) as (proc, listening):
        assert listening["peerId"] == pid
        addr = listening["addrs"][0]
        assert addr.endswith(f"/p2p/{pid}")
        code, lines, err = await run("ping", addr, "--count", "3", "--json")
        assert code == 0, err
        assert [x["event"] for x in lines] == ["ping", "ping", "ping", "ping_summary"]
        assert all(x["rttMs"] > 0 for x in lines[:3])
        code, lines, err = await run("echo", addr, "--bytes", str(1 << 20), "--json")
        assert code == 0, err
        assert lines == [lines[0]] and lines[0]["bytes"] == 1 << 20 and lines[0]["verified"] is True
        code, lines, err = await run("identify", addr, "--json")
        assert code == 0, err
        info = lines[0]
        assert info["agentVersion"].startswith("aiolibp2p/") and info["signedPeerRecord"] is True
        assert "/echo/1.0.0" in info["protocols"]
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout is not None
        out = (await asyncio.wait_for(proc.stdout.read(), 10)).decode().splitlines()
        events = [json.loads(x)["event"] for x in out]
        assert "connection_opened" in events and "connection_closed" in events
        assert events[-1] == "stopped"
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_serve_exits_on_stdin_eof_and_perf() -> None:
    async with serve("--exit-on-stdin-eof", "--perf") as (proc, listening):
        code, lines, err = await run(
            "perf",
            listening["addrs"][0],
            "--upload-bytes",
            "1000000",
            "--download-bytes",
            "2000000",
            "--json",
        )
        assert code == 0, err
        final = lines[-1]
        assert (
            final["type"] == "final" and final["uploadBytes"] == 1000000 and final["downloadBytes"] == 2000000
        )
        assert proc.stdin is not None
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_errors_are_one_line_and_nonzero() -> None:
    code, lines, err = await run(
        "ping",
        "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
        "--json",
        "--timeout",
        "3",
    )
    assert code != 0
    assert lines[-1]["event"] == "error"
    assert len(err.strip().splitlines()) == 1
    code, lines, err = await run("ping", "/not/a/multiaddr", "--json")
    assert code != 0 and lines[-1]["event"] == "error"


async def test_serve_and_ping_over_webrtc_direct() -> None:
    """The CLI over WebRTC-direct: serve prints a /webrtc-direct/certhash address; ping and echo dial it (the
    default transports include WebRTC-direct), and the server sees each client's connection close."""
    async with serve("--listen", "/ip4/127.0.0.1/udp/0/webrtc-direct") as (proc, listening):
        (addr,) = [a for a in listening["addrs"] if "/webrtc-direct/certhash/" in a]
        code, lines, err = await run("ping", addr, "--count", "2", "--json")
        assert code == 0, err
        assert lines[-1]["event"] == "ping_summary" and lines[-1]["count"] == 2
        code, lines, err = await run("echo", addr, "--bytes", "300000", "--json")
        assert code == 0, err
        assert lines[0]["verified"] is True
        assert proc.stdout is not None
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while sum(1 for e in events if e["event"] == "connection_closed") < 2:
                events.append(json.loads(await proc.stdout.readline()))
        assert {e["transport"] for e in events} == {"webrtc-direct"}
