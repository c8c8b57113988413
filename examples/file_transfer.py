"""File transfer over a custom protocol, with progress and an end-to-end SHA-256 check.

    python examples/file_transfer.py receive --out /tmp/inbox       # prints its address
    python examples/file_transfer.py send /ip4/127.0.0.1/tcp/PORT/p2p/12D3KooW... ./big.iso

The protocol, ``/example/file/1.0.0``, is ours: on one stream the sender writes a 4-byte big-endian header
length, a JSON header ``{"name": ..., "size": ...}`` and then exactly ``size`` bytes; the receiver answers
with one JSON line ``{"ok": true, "sha256": "..."}`` and closes. Backpressure is the muxer's flow control:
``await stream.write(...)`` waits while the receiver is behind, so memory stays bounded for any file size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import signal
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiolibp2p

PROTOCOL = "/example/file/1.0.0"
CHUNK = 256 * 1024
MAX_HEADER = 4096


class Progress:
    """A progress bar on a terminal; a line every 25 % otherwise (logs, pipes)."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self._next_quarter = 25

    def add(self, n: int) -> None:
        self.done += n
        pct = 100 * self.done // self.total if self.total else 100
        rate = self.done / max(time.perf_counter() - self.t0, 1e-9) / 1e6
        if self.tty:
            bar = "#" * (pct * 30 // 100)
            print(
                f"\r{self.label} [{bar:<30}] {pct:3d}% {rate:7.1f} MB/s", end="", file=sys.stderr, flush=True
            )
        while pct >= self._next_quarter and not self.tty:
            print(f"{self.label} {self._next_quarter}% ({rate:.1f} MB/s)", file=sys.stderr, flush=True)
            self._next_quarter += 25

    def finish(self) -> float:
        if self.tty:
            print(file=sys.stderr)
        return time.perf_counter() - self.t0


# -- receiver ---------------------------------------------------------------------------------------------------
def make_receiver(
    out_dir: Path, received: asyncio.Queue[Path]
) -> Callable[[aiolibp2p.Stream], Awaitable[None]]:
    async def handle(stream: aiolibp2p.Stream) -> None:
        (n,) = struct.unpack(">I", await stream.readexactly(4, timeout=10))
        if n > MAX_HEADER:
            await stream.reset()
            return
        header = json.loads(await stream.readexactly(n, timeout=10))
        name = Path(str(header["name"])).name or "unnamed"  # never a path chosen by the sender
        size = int(header["size"])
        target = out_dir / name
        digest = hashlib.sha256()
        progress = Progress(f"receiving {name}", size)
        with target.open("wb") as f:
            left = size
            while left:
                chunk = await stream.read(min(CHUNK, left), timeout=30)
                if not chunk:
                    raise EOFError(f"{name}: sender stopped after {size - left} of {size} bytes")
                f.write(chunk)
                digest.update(chunk)
                progress.add(len(chunk))
                left -= len(chunk)
        progress.finish()
        await stream.write(json.dumps({"ok": True, "sha256": digest.hexdigest()}).encode() + b"\n")
        await stream.close()
        print(
            f"received {name} ({size} bytes, sha256 {digest.hexdigest()}) from {stream.remote_peer}",
            flush=True,
        )
        received.put_nowait(target)

    return handle


async def receive(args: argparse.Namespace) -> None:
    out_dir = Path(args.out)
    received: asyncio.Queue[Path] = asyncio.Queue()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with aiolibp2p.new_host(listen=[args.listen]) as host:
        host.set_stream_handler(PROTOCOL, make_receiver(out_dir, received))
        for addr in host.full_addrs():
            print(f"listening on {addr}", flush=True)
        stopping = asyncio.ensure_future(stop.wait())
        while not stop.is_set():
            got = asyncio.ensure_future(received.get())
            await asyncio.wait([got, stopping], return_when=asyncio.FIRST_COMPLETED)
            if got.done() and args.once:
                break
            got.cancel()
        stopping.cancel()


# -- sender -----------------------------------------------------------------------------------------------------
async def send(args: argparse.Namespace) -> None:
    path, size = Path(args.file), args.size
    async with aiolibp2p.new_host(listen=[]) as host:
        peer = await host.connect(args.addr, timeout=args.timeout)
        stream = await host.new_stream(peer, [PROTOCOL], timeout=args.timeout)
        header = json.dumps({"name": path.name, "size": size}).encode()
        await stream.write(struct.pack(">I", len(header)) + header)
        digest = hashlib.sha256()
        progress = Progress(f"sending {path.name}", size)
        # Local disk reads of CHUNK bytes are short; for slow disks read with asyncio.to_thread.
        with path.open("rb") as f:  # noqa: ASYNC230
            while chunk := f.read(CHUNK):
                await stream.write(chunk, timeout=args.timeout)
                digest.update(chunk)
                progress.add(len(chunk))
        await stream.close_write()
        reply = json.loads(await stream.read_all(1024, timeout=args.timeout))
        seconds = progress.finish()
        await stream.close()
        if reply.get("sha256") != digest.hexdigest():
            raise SystemExit(f"checksum mismatch: sent {digest.hexdigest()}, receiver has {reply}")
        print(f"sent {path.name}: {size} bytes in {seconds:.2f} s, sha256 verified by {peer}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("receive", help="serve the protocol and store incoming files")
    r.add_argument("--out", default=".", help="directory for received files")
    r.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    r.add_argument("--once", action="store_true", help="exit after the first file")
    s = sub.add_parser("send", help="send a file to a receiver")
    s.add_argument("addr", help="the receiver's multiaddr, ending in /p2p/<peer id>")
    s.add_argument("file")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds for each step")
    args = ap.parse_args()
    if args.cmd == "receive":
        Path(args.out).mkdir(parents=True, exist_ok=True)
    else:
        args.size = Path(args.file).stat().st_size
    asyncio.run(receive(args) if args.cmd == "receive" else send(args))


if __name__ == "__main__":
    main()
