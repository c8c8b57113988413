"""Every script in examples/ runs, as a subprocess, on loopback, within a bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ADDR_RE = re.compile(r"listening on (/\S+/p2p/\S+)")


async def run(*args: str, stdin: bytes | None = None, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Background:
    """A running example process whose stdout lines we can wait for."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def wait_line(self, pattern: str | re.Pattern[str], timeout: float = 20) -> re.Match[str]:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in self.lines:
            if m := rx.search(line):
                return m
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    err = b""
                    if self.proc.stderr is not None:
                        with contextlib.suppress(TimeoutError):
                            err = await asyncio.wait_for(self.proc.stderr.read(), 2)
                    raise AssertionError(f"exited before {rx.pattern!r}: {self.lines} {err.decode()}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if m := rx.search(line):
                    return m

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)

    async def finish(self, timeout: float = 15) -> int:
        """Close stdin and wait for a clean exit."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        self.lines += rest.decode().splitlines()
        return await asyncio.wait_for(self.proc.wait(), timeout)


@contextlib.asynccontextmanager
async def background(*args: str) -> AsyncIterator[Background]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        yield Background(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_echo_server_and_client() -> None:
    async with background(str(EXAMPLES / "echo_server.py"), "--exit-on-stdin-eof") as server:
        addr = (await server.wait_line(ADDR_RE)).group(1)
        code, out, err = await run(str(EXAMPLES / "echo_client.py"), addr, "hello from the test")
        assert code == 0, err
        assert "echo: 'hello from the test'" in out and "ping:" in out
        await server.wait_line(r"echoed 19 bytes")
        assert await server.finish() == 0


async def test_file_transfer_with_progress(tmp_path: Path) -> None:
    src = tmp_path / "payload.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(data)
    inbox = tmp_path / "inbox"
    async with background(str(EXAMPLES / "file_transfer.py"), "receive", "--out", str(inbox), "--once") as rx:
        addr = (await rx.wait_line(ADDR_RE)).group(1)
        code, out, err = await run(str(EXAMPLES / "file_transfer.py"), "send", addr, str(src))
        assert code == 0, err
        assert "sha256 verified" in out
        assert "sending payload.bin 100%" in err  # progress (not a tty: a line every 25 %)
        await rx.wait_line(
            rf"received payload.bin \({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}\)"
        )
        assert await asyncio.wait_for(rx.proc.wait(), 15) == 0  # --once
    assert (inbox / "payload.bin").read_bytes() == data


async def test_js_interop_example() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "interop"))
    try:
        from jspeer import missing_requirements  # type: ignore[import-not-found]  # (tests/interop/, put on the path above)
    finally:
        sys.path.pop(0)
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    code, out, err = await run(str(EXAMPLES / "js_interop.py"), timeout=60)
    assert code == 0, err
    assert "agent: js-libp2p/" in out
    assert "echo: 65536 bytes through js-libp2p, verified" in out


async def test_pubsub_chat_between_two_processes() -> None:
    chat = str(EXAMPLES / "pubsub_chat.py")
    async with background(chat) as alice:
        addr = (await alice.wait_line(ADDR_RE)).group(1)
        alice_id = (await alice.wait_line(r"you are (\S+)")).group(1)
        async with background(chat, "--connect", addr) as bob:
            bob_id = (await bob.wait_line(r"you are (\S+)")).group(1)
            await bob.wait_line(r"connected to")
            bob.send(b"hello from bob\n")
            await alice.wait_line(rf"<{bob_id[-8:]}> hello from bob")
            alice.send(b"hi bob\n")
            await bob.wait_line(rf"<{alice_id[-8:]}> hi bob")
            assert await bob.finish() == 0
        assert await alice.finish() == 0
    assert not any("hello from bob" in line for line in bob.lines)  # own messages are not echoed
