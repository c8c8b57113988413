"""Echo client: connects to an echo server, sends a message, prints the reply and the round-trip time.

python examples/echo_client.py /ip4/127.0.0.1/tcp/PORT/p2p/12D3KooW... "hello, libp2p"
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiolibp2p

PROTOCOL = "/echo/1.0.0"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("addr", help="the server's multiaddr, ending in /p2p/<peer id>")
    ap.add_argument("message", nargs="?", default="hello, libp2p")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds for each step")
    args = ap.parse_args()

    async with aiolibp2p.new_host(listen=[]) as host:  # a pure client: no listen address
        peer = await host.connect(args.addr, timeout=args.timeout)
        print(f"connected to {peer}")
        rtt = await host.ping(peer, timeout=args.timeout)
        print(f"ping: {rtt * 1000:.2f} ms")

        t0 = time.perf_counter()
        stream = await host.new_stream(peer, [PROTOCOL], timeout=args.timeout)
        data = args.message.encode()
        await stream.write(data)
        await stream.close_write()  # half-close: the server sees EOF, echoes what it has, and closes
        reply = await stream.read_all(len(data), timeout=args.timeout)
        await stream.close()
        dt = (time.perf_counter() - t0) * 1000
        assert reply == data, f"echo mismatch: {reply!r}"
        print(f"echo: {reply.decode()!r} in {dt:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
