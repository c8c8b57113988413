"""Rendezvous over loopback: a rendezvous point and clients as real hosts (TCP, Noise, yamux)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

import aiolibp2p
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.crypto.peer_record import make_signed_peer_record
from aiolibp2p.discovery import Discovery
from aiolibp2p.discovery.rendezvous import (
    PROTOCOL_ID,
    RendezvousClient,
    RendezvousError,
    RendezvousLimits,
    RendezvousServer,
    Status,
)
from aiolibp2p.discovery.rendezvous import client as client_mod
from aiolibp2p.discovery.rendezvous.codec import (
    Message,
    MessageReader,
    discover_message,
    encode_message,
    register_response,
)
from aiolibp2p.exceptions import Libp2pError

TEST_TIMEOUT = 10.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def rendezvous(
    n_clients: int, limits: RendezvousLimits | None = None, clock: FakeClock | None = None
) -> AsyncIterator[tuple[RendezvousServer, list[RendezvousClient]]]:
    async with contextlib.AsyncExitStack() as stack:
        point = await stack.enter_async_context(aiolibp2p.new_host())
        server = RendezvousServer(point, limits, clock=clock or FakeClock())
        server.start()
        clients = []
        for _ in range(n_clients):
            h = await stack.enter_async_context(aiolibp2p.new_host())
            c = RendezvousClient(h, point.peer_id, addrs=point.listen_addrs)
            stack.push_async_callback(c.close)
            clients.append(c)
        yield server, clients


async def _ids(client: RendezvousClient, ns: str, limit: int = 0) -> set[str]:
    return {str(info.peer_id) async for info in client.find_peers(ns, limit=limit)}


async def test_register_discover_connect_unregister() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), rendezvous(3) as (server, (a, b, c)):
        assert isinstance(a, Discovery)
        assert await a.advertise("app") == 3 * 3600  # discovery.DEFAULT_TTL, within [2 h, 72 h]
        assert await b.register("app") == 2 * 3600  # no TTL: the spec's default
        assert await _ids(c, "app") == {str(a.host.peer_id), str(b.host.peer_id)}
        infos = [i async for i in c.find_peers("app")]
        found = next(i for i in infos if i.peer_id == a.host.peer_id)
        assert found.addrs == tuple(a.host.advertised_addrs())
        # What was discovered is enough to dial.
        assert await c.host.connect(list(found.addrs), peer=found.peer_id) == a.host.peer_id
        await a.unregister("app")
        for _ in range(100):  # UNREGISTER has no response: wait (bounded) for the point to process it
            if len(server.registry) == 1:
                break
            await asyncio.sleep(0.01)
        assert await _ids(c, "app") == {str(b.host.peer_id)}
        await a.unregister("never-registered")  # a no-op, not an error
        assert await _ids(c, "nobody") == set()


async def test_cookie_paging_and_incremental_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), rendezvous(6) as (_server, clients):
        *registrants, watcher = clients
        for c in registrants[:4]:
            await c.register("app")
        page1, cookie = await watcher.discover("app", limit=3)
        page2, cookie = await watcher.discover("app", limit=3, cookie=cookie)
        assert len(page1) == 3 and len(page2) == 1
        assert {r.peer_id for r in page1 + page2} == {c.host.peer_id for c in registrants[:4]}
        assert all(r.ttl > 0 and r.namespace == "app" for r in page1)
        await registrants[4].register("app")
        new, cookie2 = await watcher.discover("app", cookie=cookie)
        assert [r.peer_id for r in new] == [registrants[4].host.peer_id]
        assert (await watcher.discover("app", cookie=cookie2))[0] == []
        # find_peers pages with cookies (pages of 2 here) and honours its limit.
        monkeypatch.setattr(client_mod, "MAX_DISCOVER_LIMIT", 2)
        assert len(await _ids(watcher, "app")) == 5
        assert len(await _ids(watcher, "app", limit=3)) == 3
        with pytest.raises(RendezvousError) as ei:
            await watcher.discover("app", cookie=b"not a cookie of this point")
        assert ei.value.status == Status.E_INVALID_COOKIE


async def test_ttl_expiry_with_the_points_clock() -> None:
    clock = FakeClock()
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        rendezvous(2, RendezvousLimits(min_ttl=1), clock) as (_s, (a, b)),
    ):
        assert await a.register("app", ttl=60) == 60
        await b.register("app", ttl=120)
        clock.now += 59
        assert await _ids(a, "app") == {str(a.host.peer_id), str(b.host.peer_id)}
        clock.now += 1
        assert await _ids(a, "app") == {str(b.host.peer_id)}
        clock.now += 60
        assert await _ids(a, "app") == set()


async def test_advertise_refreshes_before_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "REFRESH_FRACTION", 0.05)  # refresh after 0.05 × 2 s = 0.1 s
    async with asyncio.timeout(TEST_TIMEOUT), rendezvous(1, RendezvousLimits(min_ttl=1)) as (server, (a,)):
        await a.advertise("app", ttl=2)
        first = server.registry.registrations("app")[0].counter
        for _ in range(200):
            regs = server.registry.registrations("app")
            if regs and regs[0].counter >= first + 2:
                break
            await asyncio.sleep(0.01)
        assert server.registry.registrations("app")[0].counter >= first + 2  # refreshed twice
        await a.unregister("app")  # also stops the refresh
        await asyncio.sleep(0.3)
        assert server.registry.registrations("app") == []


async def test_bad_signed_records_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), rendezvous(2) as (server, (a, b)):
        other = make_signed_peer_record(generate_key_pair(), [])
        monkeypatch.setattr(a, "_signed_record", lambda: other)  # someone else's (valid) record
        with pytest.raises(RendezvousError) as ei:
            await a.register("app")
        assert ei.value.status == Status.E_NOT_AUTHORIZED and ei.value.peer == server.host.peer_id
        monkeypatch.setattr(b, "_signed_record", lambda: b"\x0a\x02not an envelope")
        with pytest.raises(RendezvousError) as ei:
            await b.register("app")
        assert ei.value.status == Status.E_INVALID_SIGNED_PEER_RECORD
        assert len(server.registry) == 0


async def test_limits_over_the_wire() -> None:
    limits = RendezvousLimits(max_registrations_per_peer=2)
    async with asyncio.timeout(TEST_TIMEOUT), rendezvous(1, limits) as (_server, (a,)):
        for ns, ttl, status in [
            ("x" * 256, None, Status.E_INVALID_NAMESPACE),
            ("app", 72 * 3600 + 1, Status.E_INVALID_TTL),
            ("app", 60, Status.E_INVALID_TTL),
        ]:
            with pytest.raises(RendezvousError) as ei:
                await a.register(ns, ttl)
            assert ei.value.status == status and ei.value.text
        assert await a.register("x" * 255, 72 * 3600) == 72 * 3600
        await a.register("two")
        with pytest.raises(RendezvousError) as ei:
            await a.register("three")
        assert ei.value.status == Status.E_NOT_AUTHORIZED


async def test_point_serves_several_requests_per_stream_and_resets_violations() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), rendezvous(1) as (server, (a,)):
        # Several requests on one stream are answered in order.
        s1 = await a.host.new_stream(server.host.peer_id, PROTOCOL_ID)
        await s1.write(encode_message(discover_message("a")) + encode_message(discover_message("b")))
        reader = MessageReader()
        got: list[Message] = []
        while len(got) < 2:
            data = await s1.read(timeout=5)
            assert data
            got += reader.feed(data)
        assert [m.type for m in got] == [Message.DISCOVER_RESPONSE] * 2
        await s1.close()
        # A response sent as a request: the point resets the stream without answering.
        s2 = await a.host.new_stream(server.host.peer_id, PROTOCOL_ID)
        await s2.write(encode_message(register_response(Status.OK)))
        with pytest.raises(Libp2pError):
            while data := await s2.read(timeout=5):
                assert not reader.feed(data)
            await s2.write(b"x")  # EOF alone would not prove a reset; writing after it must fail
