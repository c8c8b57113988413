"""The ``aiolibp2p`` command: serve, ping, echo, identify, keygen, demo.

With ``--json`` every result is one JSON object per line. Exit code 0 on success; otherwise non-zero with a
one-line error (on stderr, and as ``{"event":"error",...}`` on stdout with ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from ..crypto.keys import KeyType, PrivateKey, generate_key_pair, load_private_key_file, save_private_key_file
from ..crypto.peer_id import PeerId
from ..dns import DnsConfig
from ..exceptions import Libp2pError
from ..host.host import Host, new_host
from ..network import events as ev
from ..protocols.echo import PROTOCOL_ID as ECHO_ID
from ..protocols.echo import echo_roundtrip, handle_echo


class CliError(Exception):
    pass


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, obj: dict[str, Any], text: str) -> None:
        if self.as_json:
            print(json.dumps(obj, separators=(",", ":")), flush=True)
        else:
            print(text, flush=True)


def _load_key(path: str | None) -> PrivateKey | None:
    if path is None:
        return None
    return load_private_key_file(path)


def _use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _client_host(args: argparse.Namespace) -> Host:
    servers = getattr(args, "dns_server", None)
    return new_host(
        listen=[],
        key=_load_key(getattr(args, "key", None)),
        muxers=args.muxer if getattr(args, "muxer", None) else None,
        security=args.security if getattr(args, "security", None) else None,
        dns=DnsConfig(nameservers=tuple(servers)) if servers else None,
    )


# -- serve ------------------------------------------------------------------------------------------------------------
async def cmd_serve(args: argparse.Namespace, out: Output) -> int:
    host = new_host(
        listen=args.listen or ["/ip4/127.0.0.1/tcp/0"],
        key=_load_key(args.key),
        muxers=args.muxer or None,
        security=args.security or None,
    )

    def on_event(e: Any) -> None:
        if isinstance(e, ev.ConnectionOpened | ev.ConnectionClosed):
            c = e.conn
            kind = "connection_opened" if isinstance(e, ev.ConnectionOpened) else "connection_closed"
            obj: dict[str, Any] = {
                "event": kind,
                "peerId": str(e.peer),
                "remoteAddr": str(c.remote_addr),
                "direction": c.direction.value,
                "transport": c.transport,
                "security": c.security,
                "muxer": c.muxer,
                "connId": c.id,
            }
            if isinstance(e, ev.ConnectionClosed):
                obj["cause"] = e.cause
                obj["remaining"] = e.remaining
            out.emit(obj, f"{kind} {e.peer} {c.remote_addr} ({c.direction.value})")

    host.on((ev.ConnectionOpened, ev.ConnectionClosed), on_event)
    host.set_stream_handler(ECHO_ID, handle_echo)
    if args.perf:
        from ..protocols.perf import PROTOCOL_ID as PERF_ID
        from ..protocols.perf import handle_perf

        host.set_stream_handler(PERF_ID, handle_perf)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    metrics_stack = contextlib.AsyncExitStack()
    if args.metrics:
        from ..metrics import HostMetrics, parse_hostport, serve_metrics

        mhost, mport = parse_hostport(args.metrics)
        host_metrics = HostMetrics(host)
        metrics_stack.callback(host_metrics.close)
    async with host, metrics_stack:
        addrs = [str(a) for a in host.full_addrs()]
        if args.metrics:
            msrv = await metrics_stack.enter_async_context(
                await serve_metrics(host_metrics.registry, mhost, mport)
            )
        out.emit(
            {"event": "listening", "peerId": str(host.peer_id), "addrs": addrs},
            f"listening as {host.peer_id}\n" + "\n".join(f"  {a}" for a in addrs),
        )
        if args.metrics:
            out.emit({"event": "metrics", "url": msrv.url}, f"metrics at {msrv.url}")
        if args.topic:
            ps = await metrics_stack.enter_async_context(_serve_topics(host, args.topic, args.router))
            if args.metrics:
                from ..metrics import PubSubMetrics

                metrics_stack.callback(PubSubMetrics(ps, registry=host_metrics.registry).close)
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
        if args.exit_on_stdin_eof:
            waiters.append(asyncio.ensure_future(_stdin_eof()))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
    out.emit({"event": "stopped"}, "stopped")
    return 0


# -- pubsub ---------------------------------------------------------------------------------------------------------
def _message_line(msg: Any) -> str:
    """A received pubsub message as one JSON line (data in base64)."""
    import base64

    return json.dumps(
        {
            "event": "message",
            "topic": msg.topic,
            "from": None if msg.source is None else str(msg.source),
            "seqno": None if msg.seqno is None else msg.seqno.hex(),
            "data": base64.b64encode(msg.data).decode(),
        },
        separators=(",", ":"),
    )


@contextlib.asynccontextmanager
async def _serve_topics(host: Host, topics: Sequence[str], router: str) -> Any:
    """Join and subscribe ``topics``; print every received message as a JSON line until the context ends."""
    from .. import pubsub

    ps = await (pubsub.floodsub(host) if router == "floodsub" else pubsub.gossipsub(host))

    async def printer(sub: pubsub.Subscription) -> None:
        async for msg in sub:
            print(_message_line(msg), flush=True)

    tasks = []
    try:
        for name in topics:
            sub = await (await ps.join(name)).subscribe()
            tasks.append(asyncio.ensure_future(printer(sub)))
        yield ps
    finally:
        for t in tasks:
            t.cancel()
        await ps.close()


async def cmd_pubsub_publish(args: argparse.Namespace, out: Output) -> int:
    """Dial ``addr``, join the topic, wait (bounded by ``--timeout``) until the peer has told us it is
    subscribed, then publish ``--data`` ``--count`` times (GossipSub flood-publishes our own messages to
    every topic peer, so this does not depend on the mesh)."""
    from .. import pubsub

    async with _client_host(args) as host:
        ps = await (pubsub.floodsub(host) if args.router == "floodsub" else pubsub.gossipsub(host))
        try:
            topic = await ps.join(args.topic)
            await host.connect(args.addr, timeout=args.timeout)
            data = args.data.encode()
            for i in range(args.count):
                msg_id = await topic.publish(data, min_peers=1, timeout=args.timeout)
                out.emit(
                    {
                        "event": "published",
                        "topic": args.topic,
                        "seq": i,
                        "msgId": msg_id.hex(),
                        "bytes": len(data),
                    },
                    f"published {len(data)} bytes to {args.topic} ({i + 1}/{args.count})",
                )
            # let the writer flush before the host closes
            for _ in range(int(args.timeout * 100)):
                if not ps.router.peers_with_frames():
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
        finally:
            await ps.close()
    return 0


async def _stdin_eof() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


# -- clients -------------------------------------------------------------------------------------------------------------
async def cmd_ping(args: argparse.Namespace, out: Output) -> int:
    async with _client_host(args) as host:
        t0 = time.perf_counter()
        peer = await host.connect(args.addr, timeout=args.timeout)
        connect_ms = (time.perf_counter() - t0) * 1000
        rtts = []
        for i in range(args.count):
            rtt = await host.ping(peer, timeout=args.timeout)
            rtts.append(rtt * 1000)
            out.emit(
                {"event": "ping", "peerId": str(peer), "seq": i, "rttMs": round(rtt * 1000, 3)},
                f"ping {peer}: seq={i} rtt={rtt * 1000:.3f} ms",
            )
            if args.interval and i + 1 < args.count:
                await asyncio.sleep(args.interval)
        srt = sorted(rtts)
        out.emit(
            {
                "event": "ping_summary",
                "peerId": str(peer),
                "count": len(rtts),
                "connectMs": round(connect_ms, 3),
                "minMs": round(srt[0], 3),
                "medianMs": round(srt[len(srt) // 2], 3),
                "maxMs": round(srt[-1], 3),
            },
            f"{len(rtts)} pings: min {srt[0]:.3f} ms, median {srt[len(srt) // 2]:.3f} ms, "
            f"max {srt[-1]:.3f} ms (connect {connect_ms:.2f} ms)",
        )
    return 0


async def cmd_echo(args: argparse.Namespace, out: Output) -> int:
    async with _client_host(args) as host:
        peer = await host.connect(args.addr, timeout=args.timeout)
        t0 = time.perf_counter()
        stream = await host.new_stream(peer, [ECHO_ID], timeout=args.timeout)
        async with asyncio.timeout(args.timeout + args.bytes / 1e6):
            n = await echo_roundtrip(stream, args.bytes)
        dt = time.perf_counter() - t0
        out.emit(
            {"event": "echo", "peerId": str(peer), "bytes": n, "verified": True, "seconds": round(dt, 6)},
            f"echoed {n} bytes from {peer}, all verified, in {dt:.3f} s",
        )
    return 0


async def cmd_identify(args: argparse.Namespace, out: Output) -> int:
    async with _client_host(args) as host:
        peer = await host.connect(args.addr, timeout=args.timeout)
        info = await host.identify(peer, timeout=args.timeout)
        obj = {
            "event": "identify",
            "peerId": str(peer),
            "protocolVersion": info.protocol_version,
            "agentVersion": info.agent_version,
            "protocols": info.protocols,
            "listenAddrs": [str(a) for a in info.listen_addrs],
            "observedAddr": str(info.observed_addr) if info.observed_addr else None,
            "signedPeerRecord": info.signed_record_valid,
        }
        text = "\n".join(f"{k}: {v}" for k, v in obj.items() if k != "event")
        out.emit(obj, text)
    return 0


async def cmd_perf(args: argparse.Namespace, out: Output) -> int:
    from ..protocols.perf import PROTOCOL_ID as PERF_ID
    from ..protocols.perf import run_perf

    tty = sys.stderr.isatty() and not out.as_json

    def progress(phase: str, n: int, elapsed: float) -> None:
        total = args.upload_bytes if phase == "upload" else args.download_bytes
        rate = n / elapsed / 1e6 if elapsed > 0 else 0.0
        if tty:
            width = 30
            done = int(width * n / total) if total else width
            print(
                f"\r{phase:8} [{'#' * done}{'.' * (width - done)}] {n / 1e6:8.1f} MB {rate:7.1f} MB/s",
                end="",
                file=sys.stderr,
                flush=True,
            )
        else:
            out.emit(
                {"type": "intermediary", "phase": phase, "bytes": n, "timeSeconds": round(elapsed, 6)},
                f"{phase}: {n} bytes in {elapsed:.2f} s ({rate:.1f} MB/s)",
            )

    async with _client_host(args) as host:
        t0 = time.perf_counter()
        peer = await host.connect(args.addr, timeout=args.timeout)
        stream = await host.new_stream(peer, [PERF_ID], timeout=args.timeout)
        res = await run_perf(stream, args.upload_bytes, args.download_bytes, progress)
        total = time.perf_counter() - t0
        if tty:
            print(file=sys.stderr)
        up = res.upload_bytes / res.upload_seconds / 1e6 if res.upload_seconds else 0.0
        down = res.download_bytes / res.download_seconds / 1e6 if res.download_seconds else 0.0
        obj = {
            "type": "final",
            "timeSeconds": round(total, 6),
            "uploadBytes": res.upload_bytes,
            "downloadBytes": res.download_bytes,
        }
        if out.as_json:
            print(json.dumps(obj, separators=(",", ":")), flush=True)
        else:
            print(
                f"uploaded {res.upload_bytes} B in {res.upload_seconds:.3f} s ({up:.1f} MB/s), downloaded "
                f"{res.download_bytes} B in {res.download_seconds:.3f} s ({down:.1f} MB/s); total {total:.3f} s"
            )
            print(json.dumps(obj, separators=(",", ":")), flush=True)
    return 0


def cmd_keygen(args: argparse.Namespace, out: Output) -> int:
    kt = {
        "ed25519": KeyType.Ed25519,
        "secp256k1": KeyType.Secp256k1,
        "ecdsa": KeyType.ECDSA,
        "rsa": KeyType.RSA,
    }[args.type]
    key = generate_key_pair(kt)
    save_private_key_file(key, args.out)
    pid = PeerId.from_public_key(key.public_key)
    out.emit(
        {"event": "keygen", "peerId": str(pid), "type": args.type, "file": args.out},
        f"wrote {args.type} key for {pid} to {args.out}",
    )
    return 0


async def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    """A local network: N hosts on loopback, each connects to the others, pings and identifies them."""
    from ..demo import run_demo

    await run_demo(args.hosts, out.emit)
    return 0


# -- main ------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aiolibp2p", description="aiolibp2p: libp2p for asyncio")
    p.add_argument("--log-level", default="WARNING")
    p.add_argument(
        "--log-format",
        choices=["text", "structured", "json"],
        default="text",
        help="structured/json add peer, connection id and protocol to each record (aiolibp2p.logs)",
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser, client: bool) -> None:
        sp.add_argument("--json", action="store_true", help="one JSON object per line")
        sp.add_argument("--key", help="private key file (from `aiolibp2p keygen`)")
        sp.add_argument("--muxer", action="append", help="muxer protocol IDs in preference order")
        sp.add_argument("--security", action="append", help="noise or plaintext, in preference order")
        if client:
            sp.add_argument("addr", help="multiaddr of the peer, ending in /p2p/<peer id>")
            sp.add_argument("--timeout", type=float, default=15.0, help="seconds for each step")
            sp.add_argument(
                "--dns-server",
                action="append",
                metavar="IP[:PORT]",
                help="DNS server for /dnsaddr and /dns* addresses (repeatable; default: the system's)",
            )

    s = sub.add_parser("serve", help="serve identify, ping and /echo/1.0.0")
    common(s, False)
    s.add_argument("--listen", action="append", help="listen multiaddr (repeatable)")
    s.add_argument("--exit-on-stdin-eof", action="store_true")
    s.add_argument("--perf", action="store_true", help="serve /perf/1.0.0 (off by default)")
    s.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (needs prometheus-client)",
    )
    s.add_argument("--topic", action="append", help="join and subscribe a pubsub topic; print its messages")
    s.add_argument("--router", choices=["gossipsub", "floodsub"], default="gossipsub")
    s = sub.add_parser("pubsub", help="pubsub commands")
    psub = s.add_subparsers(dest="pubsub_cmd", required=True)
    s = psub.add_parser("publish", help="dial a peer, join a topic, wait for the peer there, publish")
    common(s, True)
    s.add_argument("--topic", required=True)
    s.add_argument("--data", required=True, help="message text (UTF-8)")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--router", choices=["gossipsub", "floodsub"], default="gossipsub")
    s = sub.add_parser("ping", help="ping a peer")
    common(s, True)
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--interval", type=float, default=0.0)
    s = sub.add_parser("echo", help="echo bytes through a peer's /echo/1.0.0 and verify them")
    common(s, True)
    s.add_argument("--bytes", type=int, default=1024 * 1024)
    s = sub.add_parser("identify", help="identify a peer")
    common(s, True)
    s = sub.add_parser("perf", help="measure throughput against a peer serving /perf/1.0.0")
    common(s, True)
    s.add_argument("--upload-bytes", type=int, default=100 * 1024 * 1024)
    s.add_argument("--download-bytes", type=int, default=100 * 1024 * 1024)
    s = sub.add_parser("keygen", help="generate a private key file")
    s.add_argument("--type", choices=["ed25519", "secp256k1", "ecdsa", "rsa"], default="ed25519")
    s.add_argument("--out", required=True)
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("demo", help="run a local network of hosts that connect, ping and identify")
    s.add_argument("--hosts", type=int, default=4)
    s.add_argument("--json", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.log_format == "text":
        logging.basicConfig(
            level=args.log_level.upper(),
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    else:
        from ..logs import enable_structured_logging

        enable_structured_logging(args.log_level, json=args.log_format == "json")
    out = Output(getattr(args, "json", False))
    try:
        if args.cmd == "keygen":
            return cmd_keygen(args, out)
        _use_uvloop()
        fn = {
            "serve": cmd_serve,
            "ping": cmd_ping,
            "echo": cmd_echo,
            "identify": cmd_identify,
            "demo": cmd_demo,
            "perf": cmd_perf,
            "pubsub": cmd_pubsub_publish,
        }[args.cmd]
        return asyncio.run(fn(args, out))
    except KeyboardInterrupt:
        return 130
    except (Libp2pError, OSError, ValueError, TimeoutError, CliError) as e:
        msg = f"{type(e).__name__}: {e}".replace("\n", " ")
        if out.as_json:
            print(json.dumps({"event": "error", "error": msg}), flush=True)
        print(f"error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
