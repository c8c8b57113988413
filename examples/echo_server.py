"""Echo server: serves /echo/1.0.0 and prints the address to give to the client.

    python examples/echo_server.py                # then, in another shell:
    python examples/echo_client.py /ip4/127.0.0.1/tcp/PORT/p2p/12D3KooW... hello

Stops on Ctrl-C (or when its stdin closes, with --exit-on-stdin-eof).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import aiolibp2p

PROTOCOL = "/echo/1.0.0"


async def echo(stream: aiolibp2p.Stream) -> None:
    """A protocol handler: runs once per inbound stream that negotiated PROTOCOL."""
    n = 0
    while data := await stream.read(65536):
        n += len(data)
        await stream.write(data)
    await stream.close()
    print(f"echoed {n} bytes for {stream.remote_peer}", flush=True)


async def wait_for_stdin_eof() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0", help="multiaddr to listen on")
    ap.add_argument("--exit-on-stdin-eof", action="store_true")
    args = ap.parse_args()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    async with aiolibp2p.new_host(listen=[args.listen]) as host:
        host.set_stream_handler(PROTOCOL, echo)
        for addr in host.full_addrs():
            print(f"listening on {addr}", flush=True)
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
        if args.exit_on_stdin_eof:
            waits.append(asyncio.ensure_future(wait_for_stdin_eof()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()


if __name__ == "__main__":
    asyncio.run(main())
