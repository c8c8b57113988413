"""What a host still holds per peer, per connection and per stream: once nobody is connected, all of it should
be gone (the soak and the clean-up tests check it)."""

from __future__ import annotations

import aiolibp2p


def leftovers(h: aiolibp2p.Host) -> dict[str, int]:
    """Non-empty per-peer / per-connection structures of ``h`` (name → size); ``{}`` when all are clean."""
    rm = {
        f"resources {k}": v for k, v in h.swarm.resources.stats().items() if v and k != "rate_limited_sources"
    }
    sizes = {
        "swarm connections": len(h.swarm._conns),
        "swarm dials": len(h.swarm._dials),
        "ping streams": len(h.ping_service._streams),
        "ping locks": len(h.ping_service._locks),
        "ping inbound": len(h.ping_service._inbound),
        "identify running": len(h.identify_service._running),
        "identify results": len(h.identify_service._results),
        "connmgr tags": len(h.conn_manager._tags),
        "event subscriptions": h.bus.num_subscriptions,
    }
    return {**rm, **{k: v for k, v in sizes.items() if v}}
