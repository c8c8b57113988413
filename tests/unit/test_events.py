"""The event bus: services before users, subscriptions bounded."""

from __future__ import annotations

import asyncio

import pytest

from aiolibp2p.network import events as ev
from aiolibp2p.wire.multihash import multihash_digest


def _peer() -> object:
    from aiolibp2p.crypto.peer_id import PeerId

    return PeerId.from_bytes(multihash_digest(b"p"))


async def test_services_see_events_first_and_subscriptions_work() -> None:
    bus = ev.EventBus()
    order: list[str] = []
    bus.on(ev.PeerConnected, lambda e: order.append("user"))
    bus.on(ev.PeerConnected, lambda e: order.append("service"), service=True)
    sub = bus.subscribe(ev.PeerConnected)
    p = _peer()
    bus.emit(ev.PeerConnected(p))  # type: ignore[arg-type]
    bus.emit(ev.PeerDisconnected(p))  # type: ignore[arg-type]
    assert order == ["service", "user"]
    got = await sub.get(timeout=1)
    assert isinstance(got, ev.PeerConnected)
    sub.close()


async def test_subscription_overflow_is_reported() -> None:
    bus = ev.EventBus()
    sub = bus.subscribe(maxsize=2)
    p = _peer()
    for _ in range(5):
        bus.emit(ev.PeerConnected(p))  # type: ignore[arg-type]
    await sub.get(timeout=1)
    await sub.get(timeout=1)
    with pytest.raises(ev.SubscriptionOverflow):
        await asyncio.wait_for(sub.__anext__(), 1)


async def test_failing_callback_does_not_break_others() -> None:
    bus = ev.EventBus()
    seen: list[object] = []

    def bad(e: object) -> None:
        raise RuntimeError("boom")

    bus.on(ev.PeerConnected, bad)
    bus.on(ev.PeerConnected, seen.append)
    bus.emit(ev.PeerConnected(_peer()))  # type: ignore[arg-type]
    assert len(seen) == 1


async def test_the_bus_drops_abandoned_and_overflowed_subscriptions() -> None:
    """A subscription nobody holds goes with its queue; one that overflowed is not offered events any more."""
    import gc

    bus = ev.EventBus()
    p = _peer()
    bus.subscribe(ev.PeerConnected)  # abandoned at once
    kept = bus.subscribe(ev.PeerConnected, maxsize=2)
    gc.collect()
    assert bus.num_subscriptions == 1
    for _ in range(3):
        bus.emit(ev.PeerConnected(p))  # type: ignore[arg-type]
    assert kept.overflowed and bus.num_subscriptions == 0
    kept.close()  # still fine after the bus let it go
    with bus.subscribe() as sub:
        assert bus.num_subscriptions == 1
        del sub
    assert bus.num_subscriptions == 0
