"""A chat room over GossipSub: every line typed is published to a topic; every message received is printed.

    python examples/pubsub_chat.py                                   # first node: prints its address
    python examples/pubsub_chat.py --connect /ip4/127.0.0.1/tcp/PORT/p2p/12D3KooW...   # more nodes

Each node joins the topic (``--topic``, default ``chat``); peers find each other's subscriptions when they
connect, and GossipSub builds the mesh that carries messages, so a third node connecting to either of the first
two hears everyone. Stops at end of input (Ctrl-D) or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

import aiolibp2p
from aiolibp2p.pubsub import Subscription, gossipsub


async def print_messages(sub: Subscription, me: aiolibp2p.PeerId) -> None:
    async for msg in sub:
        if msg.source == me:
            continue  # our own messages come back to us too
        who = str(msg.source)[-8:] if msg.source else "anonymous"
        print(f"<{who}> {msg.data.decode(errors='replace')}", flush=True)


async def stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    ap.add_argument("--connect", action="append", default=[], help="a peer to join through (repeatable)")
    ap.add_argument("--topic", default="chat")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a first chat peer")
    args = ap.parse_args()

    async with aiolibp2p.new_host(listen=[args.listen]) as host:
        pubsub = await gossipsub(host)
        try:
            topic = await pubsub.join(args.topic)
            sub = await topic.subscribe()
            printer = asyncio.ensure_future(print_messages(sub, host.peer_id))
            print(f"you are {host.peer_id}", flush=True)
            for addr in host.full_addrs():
                print(f"listening on {addr}", flush=True)
            for addr in args.connect:
                peer = await host.connect(addr, timeout=args.timeout)
                print(f"connected to {peer}", flush=True)
            reader = await stdin_lines()
            while line := await reader.readline():
                text = line.decode(errors="replace").rstrip("\n")
                if text:
                    # wait (bounded) until someone else is in the room, so the first message is not lost
                    await topic.publish(text.encode(), min_peers=1, timeout=args.timeout)
            await asyncio.sleep(0.5)  # let the last message leave before closing
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
            sub.cancel()
        finally:
            await pubsub.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
