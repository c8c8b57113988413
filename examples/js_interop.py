"""Talk to a js-libp2p node: connect, ping, identify, and echo through it.

    python examples/js_interop.py                      # starts the js peer from interop/js itself
    python examples/js_interop.py /ip4/127.0.0.1/tcp/PORT/p2p/12D3KooW...   # or use a running one

The js peer (``interop/js/peer.mjs``, js-libp2p 3.x over TCP + Noise + yamux, serving ``/echo/1.0.0``) needs
node >= 20 and its npm packages: ``cd interop/js && npm ci``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiolibp2p

JS_DIR = Path(__file__).resolve().parents[1] / "interop" / "js"
ECHO = "/echo/1.0.0"


@contextlib.asynccontextmanager
async def js_peer(timeout: float) -> AsyncIterator[str]:
    """Run interop/js/peer.mjs; yield its first listen address (with /p2p/<id>)."""
    node = os.environ.get("AIOLIBP2P_NODE") or shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "libp2p").is_dir():
        raise SystemExit(f"the js peer needs node and its packages: cd {JS_DIR} && npm ci")
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / "peer.mjs"),
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        cwd=str(JS_DIR),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise SystemExit("the js peer exited before listening")
                with contextlib.suppress(ValueError):
                    msg = json.loads(line)
                    if msg.get("event") == "listening":
                        break
        yield msg["addrs"][0]
    finally:
        if proc.stdin is not None:  # the js peer stops when its stdin closes
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def talk(addr: str, timeout: float) -> None:
    async with aiolibp2p.new_host(listen=[]) as host:
        peer = await host.connect(addr, timeout=timeout)
        conn = host.connections(peer)[0]
        print(f"connected to {peer} via {conn.transport}/{conn.security}/{conn.muxer}")
        rtt = await host.ping(peer, timeout=timeout)
        print(f"ping: {rtt * 1000:.2f} ms")
        info = await host.identify(peer, timeout=timeout)
        print(f"agent: {info.agent_version}")
        print(f"protocols: {', '.join(info.protocols)}")
        stream = await host.new_stream(peer, [ECHO], timeout=timeout)
        data = os.urandom(64 * 1024)
        await stream.write(data)
        await stream.close_write()
        back = await stream.read_all(len(data), timeout=timeout)
        await stream.close()
        assert back == data, "echo mismatch"
        print(f"echo: {len(back)} bytes through js-libp2p, verified")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("addr", nargs="?", help="a running js-libp2p peer (default: start interop/js/peer.mjs)")
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()
    if args.addr:
        await talk(args.addr, args.timeout)
    else:
        async with js_peer(args.timeout) as addr:
            await talk(addr, args.timeout)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
