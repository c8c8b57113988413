"""The resource manager's accounting and refusals."""

from __future__ import annotations

import pytest

from aiolibp2p.core.interfaces import Direction
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.exceptions import ResourceLimitExceeded
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.network import resources as resources_mod
from aiolibp2p.network.resources import ResourceLimits, ResourceManager

IN, OUT = Direction.INBOUND, Direction.OUTBOUND


def _peer() -> PeerId:
    return PeerId.from_public_key(generate_key_pair().public_key)


def test_connection_limits_and_release() -> None:
    rm = ResourceManager(
        ResourceLimits(max_connections=3, max_inbound_connections=2, max_connections_per_peer=1)
    )
    p = _peer()
    a = rm.open_connection(IN)
    b = rm.open_connection(IN)
    with pytest.raises(ResourceLimitExceeded) as ei:
        rm.open_connection(IN)
    assert ei.value.limit == "max_inbound_connections"
    c = rm.open_connection(OUT)
    with pytest.raises(ResourceLimitExceeded):
        rm.open_connection(OUT)
    a.set_peer(p)
    with pytest.raises(ResourceLimitExceeded) as ei:
        b.set_peer(p)
    assert ei.value.limit == "max_connections_per_peer"
    for s in (a, b, c, a):  # done() is idempotent
        s.done()
    assert rm.stats() == {
        "connections": 0,
        "inbound_connections": 0,
        "outbound_connections": 0,
        "streams": 0,
        "inbound_streams": 0,
        "memory": 0,
        "peers": 0,
        "inbound_sources": 0,
        "rate_limited_sources": 0,
    }
    assert rm.refusals == {"max_inbound_connections": 1, "max_connections": 1, "max_connections_per_peer": 1}


def test_stream_limits_protocols_and_memory() -> None:
    rm = ResourceManager(
        ResourceLimits(
            max_inbound_streams_per_peer=3,
            max_streams_per_connection=4,
            protocol_inbound_stream_limits={"/x": 1},
            stream_memory=100,
            max_memory=450,
        )
    )
    p = _peer()
    conn = rm.open_connection(IN)
    conn.set_peer(p)
    s1 = rm.open_stream(conn, p, IN)
    s1.set_protocol("/x")
    s2 = rm.open_stream(conn, p, IN)
    with pytest.raises(ResourceLimitExceeded) as ei:
        s2.set_protocol("/x")
    assert ei.value.limit == "inbound streams for /x"
    s2.set_protocol("/y")
    s3 = rm.open_stream(conn, p, IN)
    with pytest.raises(ResourceLimitExceeded) as ei:
        rm.open_stream(conn, p, IN)
    assert ei.value.limit == "max_inbound_streams_per_peer"
    s4 = rm.open_stream(conn, p, OUT)
    with pytest.raises(ResourceLimitExceeded) as ei:
        rm.open_stream(conn, p, OUT)
    assert ei.value.limit == "max_memory"
    assert rm.memory == 400
    for s in (s1, s2, s3, s4):
        s.done()
    s1.done()
    conn.done()
    assert rm.stats()["streams"] == 0 and rm.memory == 0 and rm.stats()["peers"] == 0
    assert rm.peer_usage(p) == (0, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _ip(a: str) -> Multiaddr:
    return Multiaddr(f"/ip4/{a}/tcp/4001") if ":" not in a else Multiaddr(f"/ip6/{a}/tcp/4001")


def test_inbound_connections_per_ip_are_capped_and_released() -> None:
    rm = ResourceManager(
        ResourceLimits(max_inbound_connections_per_ip=2, inbound_connection_burst_per_ip=100)
    )
    a, b = rm.open_connection(IN, _ip("10.0.0.1")), rm.open_connection(IN, _ip("10.0.0.1"))
    with pytest.raises(ResourceLimitExceeded) as ei:
        rm.open_connection(IN, _ip("10.0.0.1"))
    assert ei.value.limit == "max_inbound_connections_per_ip"
    rm.open_connection(IN, _ip("10.0.0.2")).done()  # another source is not affected
    for _ in range(5):  # neither are loopback, outbound connections, and addresses without an IP
        rm.open_connection(IN, _ip("127.0.0.1"))
        rm.open_connection(OUT, _ip("10.0.0.1"))
        rm.open_connection(IN, Multiaddr("/memory/1"))
    a.done()
    a.done()  # idempotent: releases one slot, once
    c = rm.open_connection(IN, _ip("10.0.0.1"))
    with pytest.raises(ResourceLimitExceeded):
        rm.open_connection(IN, _ip("10.0.0.1"))
    b.done()
    c.done()
    assert rm.stats()["inbound_sources"] == 0


def test_ipv6_sources_are_grouped_by_56_and_mapped_ipv4_is_ipv4() -> None:
    rm = ResourceManager(
        ResourceLimits(max_inbound_connections_per_ip=1, inbound_connection_burst_per_ip=100)
    )
    rm.open_connection(IN, _ip("2001:db8:0:1::1"))
    with pytest.raises(ResourceLimitExceeded):
        rm.open_connection(IN, _ip("2001:db8:0:ff::2"))  # same /56
    rm.open_connection(IN, _ip("2001:db8:0:100::1"))  # another /56
    rm.open_connection(IN, _ip("10.0.0.9"))
    with pytest.raises(ResourceLimitExceeded):
        rm.open_connection(IN, _ip("::ffff:10.0.0.9"))


def test_inbound_connection_rate_per_ip_is_a_token_bucket() -> None:
    clock = Clock()
    rm = ResourceManager(
        ResourceLimits(inbound_connection_rate_per_ip=2.0, inbound_connection_burst_per_ip=4), clock=clock
    )
    for _ in range(4):  # the burst, closed at once: a dial loop
        rm.open_connection(IN, _ip("10.0.0.1")).done()
    with pytest.raises(ResourceLimitExceeded) as ei:
        rm.open_connection(IN, _ip("10.0.0.1"))
    assert ei.value.limit == "inbound_connection_rate_per_ip"
    rm.open_connection(IN, _ip("10.0.0.2")).done()  # per source
    clock.now += 0.5  # one token back
    rm.open_connection(IN, _ip("10.0.0.1")).done()
    with pytest.raises(ResourceLimitExceeded):
        rm.open_connection(IN, _ip("10.0.0.1"))
    assert rm.refusals["inbound_connection_rate_per_ip"] == 2


def test_rate_limiter_forgets_refilled_sources_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    rm = ResourceManager(
        ResourceLimits(inbound_connection_rate_per_ip=1.0, inbound_connection_burst_per_ip=2), clock=clock
    )
    for i in range(10):
        rm.open_connection(IN, _ip(f"10.0.0.{i}")).done()
    assert rm.stats()["rate_limited_sources"] == 10
    clock.now += 0.5
    assert rm.prune_rate_limiter() == 0  # not refilled yet: they still limit
    clock.now += 0.5
    assert rm.prune_rate_limiter() == 10
    assert rm.stats()["rate_limited_sources"] == 0
    monkeypatch.setattr(resources_mod, "MAX_RATE_LIMITED_SOURCES", 8)
    for i in range(50):  # many sources at once: never more than the bound
        rm.open_connection(IN, _ip(f"10.0.1.{i}")).done()
        assert rm.stats()["rate_limited_sources"] <= 8
