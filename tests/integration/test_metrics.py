"""Prometheus metrics (aiolibp2p.metrics), `serve --metrics`, and structured logging (aiolibp2p.logs)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from typing import Any

import pytest

import aiolibp2p
from aiolibp2p.network import events as ev
from aiolibp2p.network.resources import ResourceLimits
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO_ID
from aiolibp2p.protocols.echo import handle_echo

prometheus_client = pytest.importorskip("prometheus_client", reason="prometheus-client is not installed")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from aiolibp2p.metrics import HostMetrics, MetricsUnavailable, parse_hostport, serve_metrics  # noqa: E402

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def http_get(host: str, port: int, path: str = "/metrics") -> tuple[int, str]:
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def parse(text: str) -> Samples:
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and all((k, labels[k]) in ls for k in labels))


async def scrape(host: str, port: int) -> Samples:
    status, body = await http_get(host, port)
    assert status == 200
    return parse(body)


async def test_metrics_follow_connections_streams_bytes_dials_and_identify() -> None:
    async with (
        aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"]) as server,
        aiolibp2p.new_host(listen=[]) as client,
    ):
        server.set_stream_handler(ECHO_ID, handle_echo)
        sm = HostMetrics(server)
        cm = HostMetrics(client)
        async with await serve_metrics(sm.registry) as srv, await serve_metrics(cm.registry) as cli:
            identified = asyncio.Event()
            client.on(ev.PeerIdentified, lambda e: identified.set())
            peer = await client.connect(server.full_addrs()[0])
            stream = await client.new_stream(peer, [ECHO_ID])
            payload = b"x" * 100_000
            await stream.write(payload)
            got = await stream.readexactly(len(payload), timeout=10)
            assert got == payload
            # live stream: bytes are sampled at scrape time
            s = await scrape(cli.host, cli.port)
            assert value(s, "libp2p_stream_bytes_sent_total", protocol=ECHO_ID, transport="tcp") == 100_000
            assert value(s, "libp2p_streams_open", protocol=ECHO_ID, direction="outbound") == 1
            await stream.close_write()
            assert await stream.read(10, timeout=10) == b""
            await stream.close()
            await asyncio.wait_for(identified.wait(), 10)

            s = await scrape(cli.host, cli.port)
            assert value(s, "libp2p_connections_opened_total", transport="tcp", direction="outbound") == 1
            assert value(s, "libp2p_connections_open", transport="tcp", direction="outbound") == 1
            assert value(s, "libp2p_peers_connected") == 1
            assert value(s, "libp2p_dials_total", outcome="ok") == 1
            assert value(s, "libp2p_dial_duration_seconds_count", outcome="ok") == 1
            assert value(s, "libp2p_streams_opened_total", protocol=ECHO_ID, direction="outbound") == 1
            assert value(s, "libp2p_streams_open", protocol=ECHO_ID, direction="outbound") == 0
            # closed stream: still counted, never decreasing
            assert value(s, "libp2p_stream_bytes_sent_total", protocol=ECHO_ID, transport="tcp") == 100_000
            assert (
                value(s, "libp2p_stream_bytes_received_total", protocol=ECHO_ID, transport="tcp") == 100_000
            )
            assert value(s, "libp2p_identify_total", result="ok") == 1
            assert value(s, "libp2p_resource_usage", resource="connections") == 1

            s = await scrape(srv.host, srv.port)
            assert value(s, "libp2p_connections_opened_total", direction="inbound") == 1
            for _ in range(100):  # the handler's side of the stream closes a moment later
                if value(s, "libp2p_streams_open", protocol=ECHO_ID, direction="inbound") == 0:
                    break
                await asyncio.sleep(0.02)
                s = await scrape(srv.host, srv.port)
            assert value(s, "libp2p_streams_opened_total", protocol=ECHO_ID, direction="inbound") == 1
            assert value(s, "libp2p_stream_bytes_received_total", protocol=ECHO_ID) == 100_000

            await client.disconnect(peer)
            s = await scrape(cli.host, cli.port)
            assert value(s, "libp2p_connections_closed_total", transport="tcp", cause="local-close") == 1
            assert value(s, "libp2p_connections_open") == 0
            assert value(s, "libp2p_connection_duration_seconds_count") == 1
            assert value(s, "libp2p_peers_connected") == 0
            assert value(s, "libp2p_stream_bytes_sent_total", protocol=ECHO_ID) == 100_000

            status, _ = await http_get(cli.host, cli.port, "/other")
            assert status == 404
        sm.close()
        cm.close()


async def test_failed_dials_and_resource_refusals_are_counted() -> None:
    limits = ResourceLimits(max_inbound_streams_per_protocol=0)
    async with (
        aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"], resource_limits=limits) as server,
        aiolibp2p.new_host(listen=[]) as client,
    ):
        server.set_stream_handler(ECHO_ID, handle_echo)
        sm, cm = HostMetrics(server), HostMetrics(client)
        peer = await client.connect(server.full_addrs()[0])
        with pytest.raises(aiolibp2p.exceptions.Libp2pError):
            s = await client.new_stream(peer, [ECHO_ID], timeout=5)
            await s.write(b"x")
            await s.read(1, timeout=5)
        samples = parse(prometheus_client.generate_latest(sm.registry).decode())
        assert value(samples, "libp2p_resource_refusals_total", limit=f"inbound streams for {ECHO_ID}") == 1
        assert value(samples, "libp2p_connmgr_trimmed_connections_total") == 0

        dead = aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"])
        await dead.start()
        addr = dead.full_addrs()[0]
        await dead.close()
        with pytest.raises(aiolibp2p.exceptions.Libp2pError):
            await client.connect(addr, timeout=5)
        samples = parse(prometheus_client.generate_latest(cm.registry).decode())
        errors = value(samples, "libp2p_dials_total") - value(samples, "libp2p_dials_total", outcome="ok")
        assert errors == 1
        sm.close()
        cm.close()


async def test_attaching_to_a_running_host_counts_open_connections() -> None:
    async with (
        aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"]) as server,
        aiolibp2p.new_host(listen=[]) as client,
    ):
        await client.connect(server.full_addrs()[0])
        m = HostMetrics(client, namespace="p2p")
        samples = parse(prometheus_client.generate_latest(m.registry).decode())
        assert value(samples, "p2p_connections_open") == 1
        assert value(samples, "p2p_peers_connected") == 1
        m.close()
        assert prometheus_client.generate_latest(m.registry).decode().count("p2p_stream_bytes") == 0


def test_missing_prometheus_client_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MetricsUnavailable, match=r"aiolibp2p\[metrics\]"):
        HostMetrics(aiolibp2p.new_host(listen=[]))


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_hostport("[::1]:1") == ("::1", 1)
    assert parse_hostport(":0") == ("127.0.0.1", 0)
    with pytest.raises(ValueError):
        parse_hostport("localhost")


async def test_cli_serve_metrics_is_scraped() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiolibp2p",
        "serve",
        "--json",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--metrics",
        "127.0.0.1:0",
        "--exit-on-stdin-eof",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        listening = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        assert listening["event"] == "listening"
        metrics_line = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        assert metrics_line["event"] == "metrics"
        url = metrics_line["url"]
        hostport = url.removeprefix("http://").removesuffix("/metrics")
        mh, mp = parse_hostport(hostport)
        async with aiolibp2p.new_host(listen=[]) as client:
            peer = await client.connect(listening["addrs"][0])
            await client.ping(peer)
            s = await scrape(mh, mp)
            for _ in range(100):
                if value(s, "libp2p_streams_opened_total", protocol="/ipfs/ping/1.0.0") >= 1:
                    break
                await asyncio.sleep(0.02)
                s = await scrape(mh, mp)
            assert value(s, "libp2p_connections_opened_total", transport="tcp", direction="inbound") == 1
            assert value(s, "libp2p_streams_opened_total", protocol="/ipfs/ping/1.0.0") >= 1
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 10)
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_serve_metrics_with_topic_exports_pubsub_series() -> None:
    """``serve --metrics --topic T``: the served topic's PubSub series are on the same endpoint as the host's
    and follow what the served node receives."""
    from aiolibp2p.pubsub import gossipsub

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiolibp2p", "serve", "--json", "--listen", "/ip4/127.0.0.1/tcp/0",
        "--metrics", "127.0.0.1:0", "--topic", "news", "--exit-on-stdin-eof",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdin is not None
        async with asyncio.timeout(40):
            listening = json.loads(await proc.stdout.readline())
            assert listening["event"] == "listening"
            metrics_line = json.loads(await proc.stdout.readline())
            assert metrics_line["event"] == "metrics"
            mh, mp = parse_hostport(metrics_line["url"].removeprefix("http://").removesuffix("/metrics"))
            s = await scrape(mh, mp)
            assert value(s, "libp2p_pubsub_messages_delivered_total") == 0
            assert value(s, "libp2p_pubsub_peers") == 0
            async with aiolibp2p.new_host(listen=[]) as client:
                ps = await gossipsub(client)
                topic = await ps.join("news")
                await topic.subscribe()  # (a publisher that is not subscribed is no topic peer)
                await client.connect(listening["addrs"][0])
                for i in range(3):
                    await topic.publish(b"m%d" % i, min_peers=1, timeout=10)
                got = 0
                while got < 3:
                    line = json.loads(await proc.stdout.readline())
                    got += line["event"] == "message"
                s = await scrape(mh, mp)
                assert value(s, "libp2p_pubsub_messages_delivered_total") == 3
                assert value(s, "libp2p_pubsub_peers") == 1
                assert value(s, "libp2p_pubsub_topic_peers", topic="news") == 1
                assert value(s, "libp2p_connections_opened_total", transport="tcp", direction="inbound") == 1
            proc.stdin.close()
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_structured_logging_carries_peer_connection_and_protocol() -> None:
    from aiolibp2p.logs import enable_structured_logging, log_context, stream_logger

    buf = io.StringIO()
    handler = enable_structured_logging("DEBUG", json=True, stream=buf, logger="aiolibp2p")
    lg = logging.getLogger("aiolibp2p")
    records: list[dict[str, Any]] = []
    try:
        async with (
            aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"]) as server,
            aiolibp2p.new_host(listen=[]) as client,
        ):
            got: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            async def handler_fn(stream: aiolibp2p.Stream) -> None:
                stream_logger("aiolibp2p.example", stream).info("hello from a handler")
                with log_context(stream):
                    logging.getLogger("aiolibp2p.example").info("inside a context")
                await stream.close()
                got.set_result(None)

            server.set_stream_handler("/log/1.0.0", handler_fn)
            peer = await client.connect(server.full_addrs()[0])
            s = await client.new_stream(peer, ["/log/1.0.0"])
            await asyncio.wait_for(got, 10)
            await s.close()
        records = [json.loads(line) for line in buf.getvalue().splitlines()]
    finally:
        lg.removeHandler(handler)
        lg.setLevel(logging.NOTSET)
    mine = [r for r in records if r["logger"] == "aiolibp2p.example"]
    assert [r["message"] for r in mine] == ["hello from a handler", "inside a context"]
    for r in mine:
        assert r["peer"] == str(client.peer_id) and r["protocol"] == "/log/1.0.0" and r["conn_id"]
    # the library's own "connection opened: %r" records get the fields from their arguments
    opened = [r for r in records if r["message"].startswith("connection opened")]
    assert opened and all("peer" in r and "conn_id" in r for r in opened)


async def test_pubsub_metrics_follow_deliveries_duplicates_drops_validation_mesh_and_scores() -> None:
    """PubSubMetrics on B (sharing B's HostMetrics registry): every series moves with what B's router sees."""
    from aiolibp2p.metrics import PubSubMetrics
    from aiolibp2p.pubsub import PeerScoreParams, PeerScoreThresholds, ValidationResult, gossipsub
    from aiolibp2p.pubsub.gossipsub import GossipSub
    from aiolibp2p.pubsub.service import SUBSCRIPTION_QUEUE_SIZE

    listen = ["/ip4/127.0.0.1/tcp/0"]
    async with (
        aiolibp2p.new_host(listen=listen) as a,
        aiolibp2p.new_host(listen=listen) as b,
        aiolibp2p.new_host(listen=listen) as c,
    ):
        score = dict(
            score_params=PeerScoreParams(app_specific_weight=1.0), score_thresholds=PeerScoreThresholds()
        )
        ps_a, ps_b, ps_c = await gossipsub(a), await gossipsub(b, **score), await gossipsub(c)
        host_metrics = HostMetrics(b)
        metrics = PubSubMetrics(ps_b, registry=host_metrics.registry)
        try:
            async with asyncio.timeout(30), await serve_metrics(host_metrics.registry) as srv:
                ta, tb, tc = [await ps.join("t") for ps in (ps_a, ps_b, ps_c)]
                await ta.subscribe()
                await tc.subscribe()
                sub_b = await tb.subscribe()
                tb.validator = lambda m: {
                    b"bad": ValidationResult.REJECT,
                    b"meh": ValidationResult.IGNORE,
                }.get(m.data, ValidationResult.ACCEPT)
                s = await scrape(srv.host, srv.port)
                assert value(s, "libp2p_pubsub_messages_delivered_total") == 0
                assert value(s, "libp2p_pubsub_peers") == 0
                await b.connect(a.full_addrs())
                await c.connect(a.full_addrs())
                await c.connect(b.full_addrs())
                routers: list[GossipSub] = []
                for ps in (ps_a, ps_b, ps_c):
                    assert isinstance(ps.router, GossipSub)
                    routers.append(ps.router)
                while not all(len(r.mesh.get("t", ())) == 2 for r in routers):
                    await asyncio.sleep(0.02)
                s = await scrape(srv.host, srv.port)
                assert value(s, "libp2p_pubsub_peers") == 2
                assert value(s, "libp2p_pubsub_topic_peers", topic="t") == 2
                assert value(s, "libp2p_pubsub_mesh_peers", topic="t") == 2
                assert value(s, "libp2p_pubsub_graylisted_peers") == 0
                assert value(s, "libp2p_pubsub_peer_score_bucket", le="+Inf") == 2
                assert value(s, "libp2p_pubsub_peer_score_bucket", le="0.0") == 2
                # A's messages reach B from A and again through C: one delivery and one duplicate each
                for i in range(3):
                    await ta.publish(b"ok %d" % i)
                for i in range(3):
                    assert (await sub_b.next(timeout=5)).data == b"ok %d" % i
                await ta.publish(b"bad")
                await ta.publish(b"meh")
                while ps_b.router.stats.messages_duplicate < 5:
                    await asyncio.sleep(0.02)
                s = await scrape(srv.host, srv.port)
                assert value(s, "libp2p_pubsub_messages_delivered_total") == 3
                assert (
                    value(s, "libp2p_pubsub_messages_duplicate_total")
                    == ps_b.router.stats.messages_duplicate
                    >= 5
                )
                assert value(s, "libp2p_pubsub_messages_rejected_total") == 1
                assert value(s, "libp2p_pubsub_messages_ignored_total") == 1
                assert value(s, "libp2p_pubsub_rpcs_total", outcome="received") >= 5
                assert value(s, "libp2p_pubsub_messages_dropped_total", reason="subscription_queue_full") == 0
                # B's subscription is not read: beyond its queue, messages are dropped and counted
                for i in range(SUBSCRIPTION_QUEUE_SIZE + 5):
                    await ta.publish(b"flood %d" % i)
                while ps_b.router.stats.messages_delivered < 3 + SUBSCRIPTION_QUEUE_SIZE + 5:
                    await asyncio.sleep(0.02)
                s = await scrape(srv.host, srv.port)
                assert value(s, "libp2p_pubsub_messages_dropped_total", reason="subscription_queue_full") == 5
                # a peer whose application score sinks below the graylist threshold is counted
                assert isinstance(ps_b.router, GossipSub)
                ps_b.router.set_app_score(a.peer_id, -1000.0)
                s = await scrape(srv.host, srv.port)
                assert value(s, "libp2p_pubsub_graylisted_peers") == 1
                assert value(s, "libp2p_pubsub_peer_score_bucket", le="-100.0") == 1
                assert value(s, "libp2p_pubsub_peer_score_bucket", le="0.0") == 2
                # B leaves the topic: its mesh is gone
                sub_b.cancel()
                s = await scrape(srv.host, srv.port)
                assert value(s, "libp2p_pubsub_mesh_peers", topic="t") == 0
        finally:
            metrics.close()
            host_metrics.close()
            for ps in (ps_a, ps_b, ps_c):
                await ps.close()
