"""Prometheus metrics for a host, driven by its event bus.

    from aiolibp2p.metrics import HostMetrics, serve_metrics

    metrics = HostMetrics(host)                       # subscribes to host events
    server = await serve_metrics(metrics.registry, "127.0.0.1", 9464)   # GET /metrics
    ...
    server.close(); metrics.close()

Needs ``prometheus-client`` (``pip install 'aiolibp2p[metrics]'``); without it :class:`HostMetrics` raises
:class:`MetricsUnavailable` with that hint. Nothing here touches the data path: events update counters as they
happen, and what the host already counts (stream bytes, resource-manager refusals, connection-manager trims) is
sampled when the registry is scraped.

Exported series (prefix ``libp2p_`` by default):

=========================================== ======================================== ===========================
name                                         labels                                   meaning
=========================================== ======================================== ===========================
``connections_opened_total``                 transport, direction                     connections established
``connections_closed_total``                 transport, direction, cause              connections closed
``connections_open``                         transport, direction                     live connections
``connection_duration_seconds``              transport, direction                     lifetime of closed ones
``peers_connected``                                                                   peers with ≥ 1 connection
``streams_opened_total``                     protocol, direction                      negotiated streams
``streams_open``                             protocol, direction                      live streams
``stream_bytes_received_total``              protocol, transport                      payload bytes read
``stream_bytes_sent_total``                  protocol, transport                      payload bytes written
``dials_total``                              outcome (``ok`` or the error class)      dials to a peer
``dial_duration_seconds``                    outcome                                  latency of those dials
``identify_total``                           result (``ok``/``error``)                identify exchanges
``resource_refusals_total``                  limit                                    resource-manager refusals
``resource_usage``                           resource                                 resource-manager counts
``connmgr_trimmed_connections_total``                                                 closed by the conn manager
=========================================== ======================================== ===========================

:class:`PubSubMetrics` adds the series of a :class:`~aiolibp2p.pubsub.PubSub` service, all read at scrape time
from the router's own counters and state (nothing on the message path):

=========================================== ======================================== ===========================
name                                         labels                                   meaning
=========================================== ======================================== ===========================
``pubsub_messages_delivered_total``                                                   validated messages accepted
``pubsub_messages_duplicate_total``                                                   copies already seen
``pubsub_messages_rejected_total``                                                    invalid (signature, policy,
                                                                                      validator REJECT)
``pubsub_messages_ignored_total``                                                     validator IGNORE
``pubsub_messages_dropped_total``            reason                                   messages dropped unsent
                                                                                      or undelivered
``pubsub_rpcs_total``                        outcome                                  RPC frames by outcome
``pubsub_peers``                                                                      pubsub peers
``pubsub_topic_peers``                       topic                                    peers subscribed to a topic
``pubsub_mesh_peers``                        topic                                    GossipSub mesh size
``pubsub_graylisted_peers``                                                           peers scored below the
                                                                                      graylist threshold
``pubsub_peer_score``                                                                 histogram of peer scores
=========================================== ======================================== ===========================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .network import events as ev

if TYPE_CHECKING:
    from .host.host import Host
    from .pubsub.service import PubSub

log = logging.getLogger(__name__)

DIAL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
CONNECTION_DURATION_BUCKETS = (0.1, 1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 24 * 3600.0)
PEER_SCORE_BUCKETS = (-1000.0, -100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0, 1000.0)
MAX_TOPIC_SERIES = 256
"""Topics exported with per-topic series (the first in name order); bounds the label cardinality."""


class MetricsUnavailable(ImportError):
    """prometheus-client is not installed."""


def _prometheus() -> Any:
    try:
        import prometheus_client
        import prometheus_client.core
    except ImportError as e:
        raise MetricsUnavailable(
            "metrics need prometheus-client: pip install 'aiolibp2p[metrics]' (or pip install prometheus-client)"
        ) from e
    return prometheus_client


class HostMetrics:
    """Prometheus metrics of one host. ``registry`` defaults to a fresh one (so several hosts in a process do
    not collide); pass ``prometheus_client.REGISTRY`` to export through the global default registry."""

    def __init__(self, host: Host, *, registry: Any = None, namespace: str = "libp2p") -> None:
        pc = _prometheus()
        self.host = host
        self.registry = registry if registry is not None else pc.CollectorRegistry(auto_describe=True)
        r, ns = self.registry, namespace
        self._ns = ns
        self.connections_opened = pc.Counter(
            "connections_opened",
            "Connections established",
            ["transport", "direction"],
            namespace=ns,
            registry=r,
        )
        self.connections_closed = pc.Counter(
            "connections_closed",
            "Connections closed, by cause",
            ["transport", "direction", "cause"],
            namespace=ns,
            registry=r,
        )
        self.connections_open = pc.Gauge(
            "connections_open", "Live connections", ["transport", "direction"], namespace=ns, registry=r
        )
        self.connection_duration = pc.Histogram(
            "connection_duration_seconds",
            "Lifetime of closed connections",
            ["transport", "direction"],
            buckets=CONNECTION_DURATION_BUCKETS,
            namespace=ns,
            registry=r,
        )
        self.peers_connected = pc.Gauge(
            "peers_connected", "Peers with at least one connection", namespace=ns, registry=r
        )
        self.streams_opened = pc.Counter(
            "streams_opened", "Negotiated streams", ["protocol", "direction"], namespace=ns, registry=r
        )
        self.dials = pc.Counter(
            "dials",
            "Dials to a peer, by outcome (ok or the error class)",
            ["outcome"],
            namespace=ns,
            registry=r,
        )
        self.dial_duration = pc.Histogram(
            "dial_duration_seconds",
            "Seconds a dial to a peer took (all addresses, upgrade included)",
            ["outcome"],
            buckets=DIAL_BUCKETS,
            namespace=ns,
            registry=r,
        )
        self.identify = pc.Counter("identify", "Identify exchanges", ["result"], namespace=ns, registry=r)
        self._open_streams: dict[tuple[str, str], int] = {}
        self._closed_bytes: dict[tuple[str, str], list[int]] = {}  # (protocol, transport) -> [read, written]
        self._reported_bytes: dict[tuple[str, str], list[int]] = {}
        self._collector = _SampledCollector(self, pc)
        r.register(self._collector)
        on = host.on
        self._off: list[Callable[[], None]] = [
            on(ev.ConnectionOpened, self._on_conn_opened),
            on(ev.ConnectionClosed, self._on_conn_closed),
            on(ev.PeerConnected, lambda e: self.peers_connected.inc()),
            on(ev.PeerDisconnected, lambda e: self.peers_connected.dec()),
            on(ev.StreamOpened, self._on_stream_opened),
            on(ev.StreamClosed, self._on_stream_closed),
            on(ev.DialCompleted, self._on_dial),
            on(ev.PeerIdentified, lambda e: self.identify.labels("ok").inc()),
            on(ev.IdentifyFailed, lambda e: self.identify.labels("error").inc()),
        ]
        for c in host.connections():  # attached to a running host: count what is already open
            self.connections_open.labels(c.transport, c.direction.value).inc()
        self.peers_connected.set(len(host.connected_peers()))

    def close(self) -> None:
        """Stop listening to the host and unregister the sampled series."""
        for off in self._off:
            off()
        self._off.clear()
        with contextlib.suppress(KeyError):
            self.registry.unregister(self._collector)

    # -- event handlers (synchronous, on the loop) -----------------------------------------------------------------
    def _on_conn_opened(self, e: ev.ConnectionOpened) -> None:
        c = e.conn
        d = c.direction.value
        self.connections_opened.labels(c.transport, d).inc()
        self.connections_open.labels(c.transport, d).inc()

    def _on_conn_closed(self, e: ev.ConnectionClosed) -> None:
        c = e.conn
        d = c.direction.value
        self.connections_closed.labels(c.transport, d, e.cause).inc()
        self.connections_open.labels(c.transport, d).dec()
        self.connection_duration.labels(c.transport, d).observe(time.monotonic() - c.opened_at)

    def _on_stream_opened(self, e: ev.StreamOpened) -> None:
        key = (e.protocol, e.direction)
        self.streams_opened.labels(*key).inc()
        self._open_streams[key] = self._open_streams.get(key, 0) + 1

    def _on_stream_closed(self, e: ev.StreamClosed) -> None:
        key = (e.protocol, e.direction)
        n = self._open_streams.get(key, 0)
        if n > 0:
            self._open_streams[key] = n - 1
        s = e.stream
        if s is not None:
            acc = self._closed_bytes.setdefault((s.protocol, s.conn.transport), [0, 0])
            acc[0] += s.bytes_read
            acc[1] += s.bytes_written

    def _on_dial(self, e: ev.DialCompleted) -> None:
        outcome = "ok" if e.ok else e.error
        self.dials.labels(outcome).inc()
        self.dial_duration.labels(outcome).observe(e.seconds)

    # -- sampled at scrape time ------------------------------------------------------------------------------------
    def stream_bytes(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(bytes received, bytes sent) by (protocol, transport): closed streams plus live ones, never
        decreasing between two calls."""
        totals = {k: [v[0], v[1]] for k, v in self._closed_bytes.items()}
        for c in self.host.connections():
            for s in list(c.streams):
                acc = totals.setdefault((s.protocol, c.transport), [0, 0])
                acc[0] += s.bytes_read
                acc[1] += s.bytes_written
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for k, (rd, wr) in totals.items():
            last = self._reported_bytes.setdefault(k, [0, 0])
            last[0] = max(last[0], rd)
            last[1] = max(last[1], wr)
            out[k] = (last[0], last[1])
        for k, last in self._reported_bytes.items():
            out.setdefault(k, (last[0], last[1]))
        return out


class _SampledCollector:
    """Series read from the host's own counters when the registry is scraped."""

    def __init__(self, m: HostMetrics, pc: Any) -> None:
        self._m = m
        self._pc = pc

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        core = self._pc.core
        m = self._m
        ns = m._ns
        host = m.host
        streams_open = core.GaugeMetricFamily(
            f"{ns}_streams_open", "Live negotiated streams", labels=["protocol", "direction"]
        )
        for (proto, d), n in sorted(m._open_streams.items()):
            streams_open.add_metric([proto, d], n)
        yield streams_open
        rx = core.CounterMetricFamily(
            f"{ns}_stream_bytes_received", "Payload bytes read from streams", labels=["protocol", "transport"]
        )
        tx = core.CounterMetricFamily(
            f"{ns}_stream_bytes_sent", "Payload bytes written to streams", labels=["protocol", "transport"]
        )
        for (proto, transport), (rd, wr) in sorted(m.stream_bytes().items()):
            rx.add_metric([proto, transport], rd)
            tx.add_metric([proto, transport], wr)
        yield rx
        yield tx
        rm = host.swarm.resources
        refusals = core.CounterMetricFamily(
            f"{ns}_resource_refusals", "Requests the resource manager refused, by limit", labels=["limit"]
        )
        for limit, n in sorted(rm.refusals.items()):
            refusals.add_metric([limit], n)
        yield refusals
        usage = core.GaugeMetricFamily(
            f"{ns}_resource_usage", "What the resource manager counts as open", labels=["resource"]
        )
        for name, n in sorted(rm.stats().items()):
            usage.add_metric([name], n)
        yield usage
        yield core.CounterMetricFamily(
            f"{ns}_connmgr_trimmed_connections",
            "Connections closed by the connection manager",
            value=host.conn_manager.trimmed,
        )


class PubSubMetrics:
    """Prometheus series of one PubSub service (see the module docstring), sampled when ``registry`` is
    scraped: pass the registry of the host's :class:`HostMetrics` to serve both from one endpoint."""

    def __init__(
        self,
        pubsub: PubSub,
        *,
        registry: Any = None,
        namespace: str = "libp2p",
        max_topics: int = MAX_TOPIC_SERIES,
    ) -> None:
        pc = _prometheus()
        self.pubsub = pubsub
        self.registry = registry if registry is not None else pc.CollectorRegistry(auto_describe=True)
        self.max_topics = max_topics
        self._ns = namespace
        self._pc = pc
        self.registry.register(self)

    def close(self) -> None:
        with contextlib.suppress(KeyError):
            self.registry.unregister(self)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from .pubsub.gossipsub import GossipSub

        core = self._pc.core
        ns = f"{self._ns}_pubsub"
        ps = self.pubsub
        router = ps.router
        st = router.stats

        def counter(name: str, doc: str, value: float) -> Any:
            return core.CounterMetricFamily(f"{ns}_{name}", doc, value=value)

        yield counter("messages_delivered", "Received messages validated and accepted", st.messages_delivered)
        yield counter("messages_duplicate", "Received copies of messages already seen", st.messages_duplicate)
        yield counter(
            "messages_rejected",
            "Received messages rejected as invalid (signature, signing policy, validator REJECT)",
            st.messages_rejected,
        )
        yield counter("messages_ignored", "Received messages a validator IGNOREd", st.messages_ignored)
        dropped = core.CounterMetricFamily(
            f"{ns}_messages_dropped", "Messages dropped unsent or undelivered, by reason", labels=["reason"]
        )
        dropped.add_metric(["outbound_queue_full"], st.messages_dropped_queue_full)
        dropped.add_metric(["subscription_queue_full"], ps.subscription_drops)
        dropped.add_metric(["validation_throttled"], st.validations_throttled)
        dropped.add_metric(["too_large"], st.messages_too_large)
        yield dropped
        rpcs = core.CounterMetricFamily(f"{ns}_rpcs", "RPC frames, by outcome", labels=["outcome"])
        rpcs.add_metric(["received"], st.rpcs_received)
        rpcs.add_metric(["sent"], st.rpcs_sent)
        rpcs.add_metric(["dropped_queue_full"], st.rpcs_dropped)
        rpcs.add_metric(["malformed"], st.rpcs_malformed)
        rpcs.add_metric(["graylisted"], st.rpcs_graylisted)
        yield rpcs
        yield core.GaugeMetricFamily(f"{ns}_peers", "Peers with a pubsub stream", value=len(router.peers))
        topics = sorted(router.topics)[: self.max_topics]
        topic_peers = core.GaugeMetricFamily(
            f"{ns}_topic_peers", "Peers subscribed to a topic", labels=["topic"]
        )
        for t in topics:
            topic_peers.add_metric([t], len(router.topics[t]))
        yield topic_peers
        if not isinstance(router, GossipSub):
            return
        mesh = core.GaugeMetricFamily(f"{ns}_mesh_peers", "GossipSub mesh peers of a topic", labels=["topic"])
        for t in sorted(router.mesh)[: self.max_topics]:
            mesh.add_metric([t], len(router.mesh[t]))
        yield mesh
        scores = [router.peer_score(p) for p in router.peers]
        threshold = router.thresholds.graylist_threshold
        yield core.GaugeMetricFamily(
            f"{ns}_graylisted_peers",
            "Peers scored below the graylist threshold (their RPCs are ignored)",
            value=sum(1 for x in scores if x < threshold) if router.score is not None else 0,
        )
        buckets = [(str(b), float(sum(1 for x in scores if x <= b))) for b in PEER_SCORE_BUCKETS]
        buckets.append(("+Inf", float(len(scores))))
        yield core.HistogramMetricFamily(
            f"{ns}_peer_score",
            "Scores of the pubsub peers (0 without scoring)",
            buckets=buckets,
            sum_value=sum(scores),
        )


# -- /metrics over HTTP, on the event loop ------------------------------------------------------------------------
class MetricsServer:
    """A minimal HTTP/1.1 server answering ``GET /metrics`` from the event loop (so collection never races the
    loop, unlike prometheus-client's threaded server). Close with :meth:`close` (or ``async with``)."""

    def __init__(self, server: asyncio.Server, registry: Any) -> None:
        self._server = server
        self.registry = registry
        sock = server.sockets[0].getsockname()
        self.host: str = sock[0]
        self.port: int = sock[1]

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}/metrics"

    def close(self) -> None:
        self._server.close()

    async def wait_closed(self) -> None:
        await self._server.wait_closed()

    async def __aenter__(self) -> MetricsServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait_closed(), 2.0)


async def serve_metrics(
    registry: Any, host: str = "127.0.0.1", port: int = 0, *, request_timeout: float = 10.0
) -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` (port 0 picks a free one: see ``.port``)."""
    pc = _prometheus()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(request_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
                parts = head.split(b"\r\n", 1)[0].split()
                if len(parts) < 2 or parts[0] not in (b"GET", b"HEAD"):
                    status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET /metrics\n"
                elif parts[1].split(b"?", 1)[0] in (b"/metrics", b"/metrics/"):
                    try:
                        status, ctype, body = "200 OK", pc.CONTENT_TYPE_LATEST, pc.generate_latest(registry)
                    except Exception as e:  # a broken collector: say so rather than hang up
                        log.exception("collecting metrics failed")
                        status, ctype, body = "500 Internal Server Error", "text/plain", f"{e!r}\n".encode()
                else:
                    status, ctype, body = "404 Not Found", "text/plain", b"see /metrics\n"
                hdr = (
                    f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
                writer.write(hdr if parts and parts[0] == b"HEAD" else hdr + body)
                await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    server = await asyncio.start_server(handle, host, port)
    return MetricsServer(server, registry)


def parse_hostport(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"``, ``"[::1]:9464"`` or ``":9464"`` (loopback) → (host, port)."""
    h, sep, p = value.rpartition(":")
    if not sep or not p.isdigit():
        raise ValueError(f"expected HOST:PORT, not {value!r}")
    h = h.strip("[]") or "127.0.0.1"
    return h, int(p)
