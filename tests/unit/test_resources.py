"""The resource manager's accounting and refusals."""

from __future__ import annotations

import pytest

from aiolibp2p.core.interfaces import Direction
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.exceptions import ResourceLimitExceeded
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
