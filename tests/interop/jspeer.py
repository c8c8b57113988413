"""Drive the js-libp2p interop peer (interop/js/peer.mjs) from asyncio tests.

    async with JsPeer(muxer="yamux") as js:
        js.peer_id, js.addrs, js.addr            # addrs carry /p2p/<id>
        await js.dial(other_addr)                # -> {"peerId", "muxer", "encryption", ...}
        await js.ping(peer_id)                   # -> rtt in ms
        await js.identify(peer_id)               # -> what js learnt via identify
        await js.echo(peer_id, nbytes=1024, streams=10)
        await js.stream(peer_id, ["/x/1.0.0", "/echo/1.0.0"], b"hi")  # -> ("/echo/1.0.0", b"hi")
        await js.command("connections")          # any command, raw reply dict
        await js.wait_event("connection:open", peerId=peer_id)

Every wait is bounded; a failed command raises JsPeerError carrying the tail of
the peer's stderr. Leaving the context stops the process (stdin EOF, then
SIGTERM, then SIGKILL) and always reaps it.

Set AIOLIBP2P_JS_LOG=1 to copy the peer's stderr to ours as it arrives, and
DEBUG=libp2p:* (passed through the environment) for js-libp2p's own logs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_DIR = REPO_ROOT / "interop" / "js"
PEER_SCRIPT = JS_DIR / "peer.mjs"

ECHO_PROTOCOL = "/echo/1.0.0"

EventPredicate = str | Callable[[dict[str, Any]], bool]

# --transport values of the js peer and what each listens on
_TRANSPORTS = {
    "tcp": ("tcp",),
    "ws": ("ws",),
    "quic": ("quic",),
    "webrtc-direct": ("webrtc-direct",),
    "both": ("tcp", "ws"),
    "all": ("tcp", "ws", "quic"),
}
_LOOPBACK_LISTEN = {
    "tcp": "/ip4/127.0.0.1/tcp/0",
    "ws": "/ip4/127.0.0.1/tcp/0/ws",
    "quic": "/ip4/127.0.0.1/udp/0/quic-v1",
    "webrtc-direct": "/ip4/127.0.0.1/udp/0/webrtc-direct",
}


def transport_of(addr: str) -> str:
    """The transport of a listen address: "tcp", "ws", "quic" or "webrtc-direct"."""
    parts = addr.split("/")
    if "webrtc-direct" in parts:
        return "webrtc-direct"
    if "quic-v1" in parts:
        return "quic"
    return "ws" if "ws" in parts or "wss" in parts else "tcp"


class JsPeerError(Exception):
    """A js peer command failed, timed out, or the process died."""

    def __init__(self, message: str, reply: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reply = dict(reply) if reply is not None else None


def node_binary() -> str | None:
    return os.environ.get("AIOLIBP2P_NODE") or shutil.which("node")


MIN_NODE_MAJOR = 20


@functools.cache
def missing_requirements() -> str | None:
    """Why the js peer cannot run here, or None when it can."""
    node = node_binary()
    if node is None:
        return "node is not installed (needed for js-libp2p interop tests)"
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10, check=True)
        major = int(out.stdout.strip().lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        return f"cannot run node ({node}): {e}"
    if major < MIN_NODE_MAJOR:
        return f"node {out.stdout.strip()} is too old, need >= {MIN_NODE_MAJOR}"
    if not (JS_DIR / "node_modules" / "libp2p").is_dir():
        return f"js dependencies are not installed: run `npm ci` in {JS_DIR}"
    return None


class JsPeer:
    """An async context manager running one js-libp2p peer as a subprocess."""

    def __init__(
        self,
        muxer: str = "yamux",
        listen: bool | Sequence[str] = True,
        *,
        private_key_hex: str | None = None,
        connection_monitor: bool = True,
        yamux_keepalive: bool = True,
        mplex_disconnect_threshold: int | None = None,
        transport: str = "tcp",
        security: str = "noise",
        extra_args: Sequence[str] = (),
        start_timeout: float = 20.0,
        command_timeout: float = 30.0,
        name: str = "js",
        env: Mapping[str, str] | None = None,
    ) -> None:
        if muxer not in ("yamux", "mplex", "both"):
            raise ValueError(f"muxer must be yamux, mplex or both, not {muxer!r}")
        if transport not in _TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(_TRANSPORTS)}, not {transport!r}")
        if security not in ("noise", "tls", "both", "tls-noise"):
            raise ValueError(f"security must be noise, tls, both or tls-noise, not {security!r}")
        self.muxer = muxer
        self.transport = transport
        self.security = security
        self.name = name
        self.start_timeout = start_timeout
        self.command_timeout = command_timeout
        args = ["--muxer", muxer]
        if transport != "tcp":
            args += ["--transport", transport]
        if security != "noise":
            args += ["--security", security]
        if listen is True:
            for kind in _TRANSPORTS[transport]:
                args += ["--listen", _LOOPBACK_LISTEN[kind]]
        elif listen is False:
            args += ["--no-listen"]
        else:
            for ma in listen:
                args += ["--listen", ma]
        if private_key_hex is not None:
            args += ["--private-key", private_key_hex]
        if not connection_monitor:
            args.append("--no-connection-monitor")
        if not yamux_keepalive:
            args.append("--no-yamux-keepalive")
        if mplex_disconnect_threshold is not None:
            args += ["--mplex-disconnect-threshold", str(mplex_disconnect_threshold)]
        args += list(extra_args)
        self._args = args
        self._env = dict(env) if env is not None else None

        self.peer_id: str = ""
        self.addrs: list[str] = []
        self.events: list[dict[str, Any]] = []

        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._events_changed = asyncio.Event()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        self._echo_stderr = os.environ.get("AIOLIBP2P_JS_LOG", "") not in ("", "0")
        self._tasks: list[asyncio.Task[None]] = []
        self._exited = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> JsPeer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def addr_of(self, transport: str) -> str:
        """The first listen address (with /p2p/<peer id>) of ``transport``: "tcp", "ws" or "quic"."""
        for a in self.addrs:
            if transport_of(a) == transport:
                return a
        raise JsPeerError(f"{self.name} has no {transport} listen address: {self.addrs}")

    @property
    def addr(self) -> str:
        """The first listen address, with /p2p/<peer id>."""
        if not self.addrs:
            raise JsPeerError(f"{self.name} is not listening")
        return self.addrs[0]

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has exited."""
        return None if self._proc is None else self._proc.returncode

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("JsPeer already started")
        reason = missing_requirements()
        if reason is not None:
            raise JsPeerError(reason)
        node = node_binary()
        assert node is not None
        env = dict(os.environ) if self._env is None else {**os.environ, **self._env}
        self._proc = await asyncio.create_subprocess_exec(
            node,
            str(PEER_SCRIPT),
            *self._args,
            cwd=str(JS_DIR),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=16 * 1024 * 1024,
        )
        self._tasks = [
            asyncio.create_task(self._read_stdout(), name=f"{self.name}-stdout"),
            asyncio.create_task(self._read_stderr(), name=f"{self.name}-stderr"),
        ]
        try:
            ev = await self.wait_event("listening", timeout=self.start_timeout)
        except BaseException:
            await self.close()
            raise
        self.peer_id = ev["peerId"]
        self.addrs = list(ev["addrs"])

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the peer: stdin EOF, then SIGTERM, then SIGKILL; always reaps it."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.returncode is None and proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), timeout)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 2.0)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
        finally:
            if proc.returncode is None:  # cancelled while waiting: never leave it behind
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            for t in self._tasks:
                if not t.done():
                    t.cancel()
            for t in self._tasks:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(t, 1.0)
            self._fail_pending(f"{self.name} peer stopped")

    async def terminate(self) -> None:
        """Send SIGTERM (the peer stops cleanly) and wait, bounded, for it to exit."""
        if self._proc is None or self._proc.returncode is not None:
            return
        self._proc.terminate()
        await asyncio.wait_for(self._exited.wait(), 10.0)
        await asyncio.wait_for(self._proc.wait(), 5.0)

    # ------------------------------------------------------------------ I/O

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        try:
            while True:
                raw = await stdout.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                try:
                    msg = json.loads(line)
                except json.JSONDecodeError:
                    self._stderr_line(f"(non-JSON stdout) {line}")
                    continue
                if not isinstance(msg, dict):
                    self._stderr_line(f"(non-object stdout) {line}")
                elif "event" in msg:
                    self.events.append(msg)
                    self._events_changed.set()
                elif "id" in msg:
                    fut = self._pending.pop(msg["id"], None) if msg["id"] is not None else None
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    elif fut is None:
                        self._stderr_line(f"(unmatched reply) {line}")
        finally:
            if self._proc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._proc.wait(), 10.0)
            self._exited.set()
            self._events_changed.set()
            self._fail_pending(f"{self.name} peer exited (rc={self._proc and self._proc.returncode})")

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        stderr = self._proc.stderr
        while True:
            raw = await stderr.readline()
            if not raw:
                return
            self._stderr_line(raw.decode("utf-8", "replace").rstrip("\n"))

    def _stderr_line(self, line: str) -> None:
        self._stderr_tail.append(line)
        if self._echo_stderr:
            print(f"[{self.name}] {line}", file=sys.stderr, flush=True)

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(JsPeerError(f"{why}\n{self.stderr_tail()}"))

    def stderr_tail(self, lines: int = 40) -> str:
        tail = list(self._stderr_tail)[-lines:]
        return "--- js stderr (tail) ---\n" + "\n".join(tail) if tail else "(no js stderr)"

    # ------------------------------------------------------------------ commands

    async def command(self, cmd: str, *, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """Send one command and wait (bounded) for its reply; raise JsPeerError unless ok.

        The js side gets ``timeoutMs`` slightly below our own timeout so that it
        reports its own error before we give up.
        """
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None or self._exited.is_set():
            raise JsPeerError(f"{self.name} peer is not running\n{self.stderr_tail()}")
        timeout = self.command_timeout if timeout is None else timeout
        args.setdefault("timeoutMs", max(100, int(timeout * 1000) - 500))
        msg_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        try:
            proc.stdin.write((json.dumps({"id": msg_id, "cmd": cmd, **args}) + "\n").encode())
            await asyncio.wait_for(proc.stdin.drain(), timeout)
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise JsPeerError(f"{self.name}: command {cmd} timed out after {timeout}s\n{self.stderr_tail()}")
        except (BrokenPipeError, ConnectionResetError) as e:
            raise JsPeerError(f"{self.name}: peer gone while sending {cmd}: {e}\n{self.stderr_tail()}")
        finally:
            self._pending.pop(msg_id, None)
        if not reply.get("ok"):
            raise JsPeerError(f"{self.name}: {cmd} failed: {reply.get('error')}", reply)
        return reply

    async def dial(self, addr: str, *, timeout: float | None = None) -> dict[str, Any]:
        return await self.command("dial", addr=str(addr), timeout=timeout)

    async def ping(self, peer: str, *, timeout: float | None = None) -> float:
        reply = await self.command("ping", peer=str(peer), timeout=timeout)
        return float(reply["rttMs"])

    async def identify(self, peer: str, *, run: bool = False, timeout: float | None = None) -> dict[str, Any]:
        """What js learnt about ``peer`` from identify (waits for the automatic one unless run=True)."""
        return await self.command("identify", peer=str(peer), run=run, timeout=timeout)

    async def echo(
        self,
        peer: str,
        nbytes: int,
        streams: int = 1,
        *,
        protocol: str = ECHO_PROTOCOL,
        seed: int = 1,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """js opens ``streams`` concurrent streams to ``peer`` and verifies the echo of ``nbytes`` each."""
        reply = await self.command(
            "echo",
            peer=str(peer),
            bytes=nbytes,
            streams=streams,
            protocol=protocol,
            seed=seed,
            timeout=timeout,
        )
        if reply.get("bytes") != nbytes * streams:
            raise JsPeerError(
                f"{self.name}: echo verified {reply.get('bytes')} bytes, want {nbytes * streams}"
            )
        return reply

    async def stream(
        self,
        peer: str,
        protocols: str | Sequence[str],
        data: bytes = b"",
        *,
        close_write: bool = True,
        negotiate_fully: bool | None = None,
        max_bytes: int = 1024 * 1024,
        timeout: float | None = None,
    ) -> tuple[str, bytes]:
        """js opens one stream, writes ``data``, closes its write side (unless
        ``close_write=False``) and reads until the remote closes.

        Returns (negotiated protocol, bytes read). ``negotiate_fully=False``
        makes js use optimistic multistream-select (single protocol only).
        """
        args: dict[str, Any] = {
            "peer": str(peer),
            "protocols": [protocols] if isinstance(protocols, str) else list(protocols),
            "dataHex": data.hex(),
            "closeWrite": close_write,
            "maxBytes": max_bytes,
        }
        if negotiate_fully is not None:
            args["negotiateFully"] = negotiate_fully
        reply = await self.command("stream", timeout=timeout, **args)
        return reply["protocol"], bytes.fromhex(reply["dataHex"])

    async def handle_echo(self, protocol: str, *, timeout: float | None = None) -> None:
        """Make js serve ``protocol`` with the echo behaviour too."""
        await self.command("handle", protocol=protocol, mode="echo", timeout=timeout)

    async def unhandle(self, protocol: str, *, timeout: float | None = None) -> None:
        await self.command("unhandle", protocol=protocol, timeout=timeout)

    async def connections(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        return list((await self.command("connections", timeout=timeout))["connections"])

    async def hangup(self, peer: str, *, timeout: float | None = None) -> None:
        await self.command("hangup", peer=str(peer), timeout=timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        """Ask the peer to stop and wait (bounded) for the process to exit."""
        await self.command("stop", timeout=timeout)
        await asyncio.wait_for(self._exited.wait(), timeout)

    # ------------------------------------------------------------------ events

    def mark(self) -> int:
        """Index to pass as ``after=`` to only see events that arrive from now on."""
        return len(self.events)

    def find_events(self, what: EventPredicate, *, after: int = 0, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self.events[after:] if _matches(e, what, fields)]

    async def wait_event(
        self, what: EventPredicate, *, timeout: float = 10.0, after: int = 0, **fields: Any
    ) -> dict[str, Any]:
        """Wait (bounded) for an event: by name or predicate, plus equal ``fields``.

        Events already received (from index ``after`` on) count.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        idx = after
        while True:
            while idx < len(self.events):
                ev = self.events[idx]
                idx += 1
                if _matches(ev, what, fields):
                    return ev
            if self._exited.is_set():
                raise JsPeerError(
                    f"{self.name} exited (rc={self._proc and self._proc.returncode}) while waiting for "
                    f"event {_describe(what, fields)}\n{self.stderr_tail()}"
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise JsPeerError(
                    f"{self.name}: no event {_describe(what, fields)} within {timeout}s; "
                    f"last events: {self.events[-5:]}\n{self.stderr_tail()}"
                )
            self._events_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._events_changed.wait(), remaining)


def _matches(ev: dict[str, Any], what: EventPredicate, fields: Mapping[str, Any]) -> bool:
    if isinstance(what, str):
        if ev.get("event") != what:
            return False
    elif not what(ev):
        return False
    return all(ev.get(k) == v for k, v in fields.items())


def _describe(what: EventPredicate, fields: Mapping[str, Any]) -> str:
    name = what if isinstance(what, str) else getattr(what, "__name__", "predicate")
    return f"{name}{dict(fields) if fields else ''}"
