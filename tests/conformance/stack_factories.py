"""The stacks the conformance suite runs over, as a list of stack factories, plus the helpers its tests share.

A stack is what a connection is made of: a transport, and (for transports that do not secure and multiplex
by themselves) a security protocol and a muxer. go-libp2p's ``p2p/test/transport/transport_test.go``
(``transportsToTest``) is the model: one list, one entry per stack, every test parametrised over it.

To add a stack (QUIC, WebSocket, TLS, WebRTC-direct), append one :class:`StackFactory` to :data:`STACKS`;
say what its wire format carries (reset codes, close codes, flow control, keep-alive) so that the tests
assert what is carried and skip, with the reason, what is not. If its hosts need other options (a QUIC
stream limit lives in the transport's config, not in a muxer), give it an ``options`` function.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiolibp2p
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import handle_echo

__all__ = [
    "ECHO",
    "STACKS",
    "HostSpec",
    "StackFactory",
    "connected_pair",
    "resource_snapshot",
    "stack_params",
    "wait_for",
]


@dataclass(frozen=True, slots=True)
class HostSpec:
    """What a test asks of a host, whatever the stack."""

    listen: bool = True
    max_inbound_streams: int | None = None
    """Inbound streams one connection may hold open at once (the muxer's limit, or the transport's)."""
    keepalive: tuple[float, float] | None = None
    """(interval, timeout) of the connection keep-alive, in seconds; None keeps the defaults."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Other ``new_host`` options, passed through."""


def _muxed_options(stack: StackFactory, spec: HostSpec) -> dict[str, Any]:
    """Host options for a stack built by the upgrader (raw transport + security + muxer)."""
    assert stack.security is not None and stack.muxer is not None
    opts: dict[str, Any] = {"transports": [stack.transport], "security": [stack.security]}
    ka_interval, ka_timeout = spec.keepalive if spec.keepalive is not None else (15.0, 10.0)
    if spec.keepalive is not None:
        opts["keepalive_interval"], opts["keepalive_timeout"] = ka_interval, ka_timeout
    if spec.max_inbound_streams is None:
        opts["muxers"] = [stack.muxer]
    elif stack.muxer == "/yamux/1.0.0":
        from aiolibp2p.muxers.yamux import YamuxConfig, YamuxMuxer

        cfg = YamuxConfig(
            max_inbound_streams=spec.max_inbound_streams,
            keepalive_interval=ka_interval,
            keepalive_timeout=ka_timeout,
        )
        opts["muxers"] = [YamuxMuxer(cfg)]
    elif stack.muxer == "/mplex/6.7.0":
        from aiolibp2p.muxers.mplex import MplexConfig, MplexMuxer

        opts["muxers"] = [MplexMuxer(MplexConfig(max_inbound_streams=spec.max_inbound_streams))]
    else:
        raise NotImplementedError(f"no stream limit known for muxer {stack.muxer}")
    return opts


@dataclass(frozen=True, slots=True)
class StackFactory:
    """One stack of the matrix and what its wire format can carry."""

    name: str
    transport: str
    """The ``transports=`` entry of ``new_host``."""
    listen_addr: str
    security: str | None = None
    """None for transports that secure themselves (QUIC, WebRTC)."""
    muxer: str | None = None
    """None for transports that multiplex themselves (QUIC, WebRTC)."""
    carries_stream_reset_code: bool = False
    """The remote of ``stream.reset(42)`` sees code 42 (yamux and mplex carry none; QUIC does)."""
    carries_conn_close_code: bool = False
    """The remote of ``conn.close(42)`` sees code 42 (yamux GoAway carries it; mplex has no GoAway)."""
    stream_flow_control: bool = True
    """A writer blocks once a non-reading peer's stream window is full (mplex has none: it resets a stream
    whose reader falls ``max_stream_buffer`` behind)."""
    refuses_excess_streams: bool = True
    """Streams beyond the remote's limit are refused with a reset (muxers); QUIC makes them wait for
    MAX_STREAMS credit instead."""
    keepalive: bool = True
    """The connection pings an idle peer and ends when it does not answer (mplex has no ping)."""
    options: Callable[[StackFactory, HostSpec], dict[str, Any]] = _muxed_options
    """``new_host`` options for a :class:`HostSpec` (override for stacks with their own config)."""

    def new_host(self, spec: HostSpec | None = None, **extra: Any) -> aiolibp2p.Host:
        spec = spec or HostSpec()
        opts = self.options(self, spec)
        opts["listen"] = [self.listen_addr] if spec.listen else []
        opts.update(spec.extra)
        opts.update(extra)
        return aiolibp2p.new_host(**opts)

    def __str__(self) -> str:
        return self.name


_TRANSPORTS = [("tcp", "tcp", "/ip4/127.0.0.1/tcp/0"), ("memory", "memory", "/memory/0")]
_SECURITY = [("noise", "noise"), ("plaintext", "plaintext")]
_MUXERS = [
    ("yamux", "/yamux/1.0.0", {"carries_conn_close_code": True}),
    ("mplex", "/mplex/6.7.0", {"stream_flow_control": False, "keepalive": False}),
]

STACKS: list[StackFactory] = [
    StackFactory(
        name=f"{tname}-{sname}-{mname}",
        transport=transport,
        listen_addr=listen,
        security=security,
        muxer=muxer,
        **caps,  # type: ignore[arg-type]
    )
    for (tname, transport, listen), (sname, security), (mname, muxer, caps) in itertools.product(
        _TRANSPORTS, _SECURITY, _MUXERS
    )
]
"""Every stack the conformance suite runs over. Add QUIC/WebSocket/TLS/WebRTC here."""


def _quic_options(stack: StackFactory, spec: HostSpec) -> dict[str, Any]:
    """QUIC secures and multiplexes by itself: its stream limit and keep-alive live in QuicConfig."""
    from aiolibp2p.crypto.keys import generate_key_pair
    from aiolibp2p.transports.quic import QuicConfig, QuicTransport

    key = generate_key_pair()
    cfg: dict[str, Any] = {}
    if spec.max_inbound_streams is not None:
        cfg["max_inbound_streams"] = spec.max_inbound_streams
    if spec.keepalive is not None:
        cfg["keep_alive_interval"] = spec.keepalive[0]
        cfg["idle_timeout"] = spec.keepalive[0] + spec.keepalive[1]
    return {"key": key, "transports": [QuicTransport(key, QuicConfig(**cfg))]}


STACKS += [
    StackFactory(
        name="tcp-tls-yamux",
        transport="tcp",
        listen_addr="/ip4/127.0.0.1/tcp/0",
        security="tls",
        muxer="/yamux/1.0.0",
        carries_conn_close_code=True,
    ),
    StackFactory(
        name="tcp-tls-mplex",
        transport="tcp",
        listen_addr="/ip4/127.0.0.1/tcp/0",
        security="tls",
        muxer="/mplex/6.7.0",
        stream_flow_control=False,
        keepalive=False,
    ),
    StackFactory(
        name="ws-noise-yamux",
        transport="websocket",
        listen_addr="/ip4/127.0.0.1/tcp/0/ws",
        security="noise",
        muxer="/yamux/1.0.0",
        carries_conn_close_code=True,
    ),
    StackFactory(
        name="quic",
        transport="quic",
        listen_addr="/ip4/127.0.0.1/udp/0/quic-v1",
        carries_stream_reset_code=True,
        carries_conn_close_code=True,
        refuses_excess_streams=False,
        options=_quic_options,
    ),
]


def stack_params(pred: Callable[[StackFactory], bool] = lambda s: True) -> list[Any]:
    """``pytest.mark.parametrize`` values over the stacks (ids are the stack names)."""
    import pytest

    return [pytest.param(s, id=s.name) for s in STACKS if pred(s)]


@contextlib.asynccontextmanager
async def connected_pair(
    stack: StackFactory,
    server: HostSpec | None = None,
    client: HostSpec | None = None,
) -> AsyncIterator[tuple[aiolibp2p.Host, aiolibp2p.Host, PeerId]]:
    """A listening ``server`` serving echo and a ``client`` (not listening) connected to it; yields
    ``(server, client, server's peer ID)`` and closes both."""
    client = client or HostSpec(listen=False)
    async with stack.new_host(server) as srv, stack.new_host(client) as cli:
        srv.set_stream_handler(ECHO, handle_echo)
        peer = await cli.connect(srv.full_addrs()[0], timeout=10)
        await wait_for(lambda: len(srv.connections(cli.peer_id)) == 1, 5)
        yield srv, cli, peer


async def wait_for(pred: Callable[[], object], timeout: float, interval: float = 0.005) -> float:
    """Wait (bounded) until ``pred()`` is true; returns the seconds it took."""
    t0 = time.monotonic()
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(interval)
    return time.monotonic() - t0


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ResourceSnapshot:
    tasks: frozenset[asyncio.Task[Any]]
    fds: frozenset[str]
    sockets: frozenset[str]
    rss: int

    def fd_targets(self, fds: frozenset[str]) -> dict[str, str]:
        out = {}
        for fd in fds:
            with contextlib.suppress(OSError):
                out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        return out


def resource_snapshot() -> ResourceSnapshot:
    """Tasks, file descriptors, sockets and RSS of this process now."""
    fds: set[str] = set()
    sockets: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the fd of the listdir itself, gone already
            continue
        fds.add(fd)
        if target.startswith("socket:"):
            sockets.add(target)
    return ResourceSnapshot(frozenset(asyncio.all_tasks()), frozenset(fds), frozenset(sockets), _rss_bytes())


def _webrtc_options(stack: StackFactory, spec: HostSpec) -> dict[str, Any]:
    """WebRTC-direct secures and multiplexes by itself: limits and keep-alive live in WebRtcDirectConfig."""
    from aiolibp2p.crypto.keys import generate_key_pair
    from aiolibp2p.transports.webrtc import WebRtcDirectConfig, WebRtcDirectTransport

    key = generate_key_pair()
    cfg: dict[str, Any] = {}
    if spec.max_inbound_streams is not None:
        cfg["max_inbound_streams"] = spec.max_inbound_streams
    if spec.keepalive is not None:
        cfg["keepalive_interval"] = spec.keepalive[0]
        cfg["idle_timeout"] = spec.keepalive[0] + spec.keepalive[1]
    return {"key": key, "transports": [WebRtcDirectTransport(key, WebRtcDirectConfig(**cfg))]}


STACKS.append(
    StackFactory(
        name="webrtc-direct",
        transport="webrtc-direct",
        listen_addr="/ip4/127.0.0.1/udp/0/webrtc-direct",
        carries_stream_reset_code=True,  # the framing's errorCode
        carries_conn_close_code=False,  # an SCTP ABORT carries no libp2p code (go: CloseWithError ignores it)
        options=_webrtc_options,
    )
)
