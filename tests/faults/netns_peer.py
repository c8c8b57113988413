"""A host in its own process, driven over stdin/stdout with JSON lines (for tests that run it inside a network
namespace with ``ip netns exec``).

Usage: ``python netns_peer.py --listen /ip4/10.0.0.1/tcp/0 --keepalive 0.5 0.25``

Prints ``{"event": "listening", "peerId", "addrs"}`` first, then ``connection_opened`` / ``connection_closed``
(with ``cause``) as they happen. Commands on stdin: ``{"cmd": "connect", "addr": MA}`` (answers
``connected`` or ``error``), ``{"cmd": "ping", "peer": ID}`` (``ping`` with ``rtt``, or ``error``),
``{"cmd": "quit"}``. EOF on stdin quits too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import aiolibp2p
from aiolibp2p.network import events as ev
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import handle_echo


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--listen", action="append", default=[])
    p.add_argument("--keepalive", nargs=2, type=float, default=[15.0, 10.0])
    args = p.parse_args()
    host = aiolibp2p.new_host(
        listen=args.listen,
        transports=["tcp"],
        muxers=["/yamux/1.0.0"],
        keepalive_interval=args.keepalive[0],
        keepalive_timeout=args.keepalive[1],
    )

    def on_event(e: Any) -> None:
        kind = "connection_opened" if isinstance(e, ev.ConnectionOpened) else "connection_closed"
        obj = {"event": kind, "peerId": str(e.peer), "connId": e.conn.id}
        if isinstance(e, ev.ConnectionClosed):
            obj["cause"] = e.cause
        emit(obj)

    host.on((ev.ConnectionOpened, ev.ConnectionClosed), on_event)
    host.set_stream_handler(ECHO, handle_echo)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with host:
        emit(
            {"event": "listening", "peerId": str(host.peer_id), "addrs": [str(a) for a in host.full_addrs()]}
        )
        while line := await reader.readline():
            cmd = json.loads(line)
            try:
                if cmd["cmd"] == "quit":
                    break
                if cmd["cmd"] == "connect":
                    peer = await host.connect(cmd["addr"], timeout=5)
                    emit({"event": "connected", "peerId": str(peer)})
                elif cmd["cmd"] == "ping":
                    emit({"event": "ping", "rtt": await host.ping(cmd["peer"], timeout=5)})
            except Exception as e:
                emit({"event": "error", "cmd": cmd["cmd"], "error": repr(e)})


if __name__ == "__main__":
    asyncio.run(main())
