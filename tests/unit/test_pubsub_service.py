"""The asyncio PubSub service over real hosts on the memory transport (3 hosts, GossipSub and FloodSub)."""

from __future__ import annotations

import asyncio

import pytest

import aiolibp2p
from aiolibp2p.exceptions import DeadlineExceeded
from aiolibp2p.pubsub.message import PubSubMessage, ValidationResult
from aiolibp2p.pubsub.service import floodsub, gossipsub


async def _hosts(n: int) -> list[aiolibp2p.Host]:
    hosts = [aiolibp2p.new_host(listen=["/memory/0"]) for _ in range(n)]
    for h in hosts:
        await h.start()
    return hosts


@pytest.mark.parametrize("factory", [gossipsub, floodsub])
async def test_three_hosts_publish_and_receive(factory: object) -> None:
    hosts = await _hosts(3)
    services = []
    try:
        async with asyncio.timeout(10):
            services = [await factory(h) for h in hosts]  # type: ignore[operator]
            topics = [await ps.join("news") for ps in services]
            subs = [await t.subscribe() for t in topics]
            await hosts[1].connect(hosts[0].full_addrs())
            await hosts[2].connect(hosts[1].full_addrs())
            # host 1 sees both others; hosts 0 and 2 reach each other through host 1
            await topics[1].publish(b"hello", min_peers=2, timeout=5)
            for sub in subs:
                assert (await sub.next(timeout=5)).data == b"hello"
            await topics[0].publish(b"from-0", min_peers=1, timeout=5)
            for sub in subs:
                msg = await sub.next(timeout=5)
                assert msg.data == b"from-0" and msg.source == hosts[0].peer_id
    finally:
        for ps in services:
            await ps.close()
        for h in hosts:
            await h.close()


async def test_validator_and_readiness_timeout() -> None:
    hosts = await _hosts(2)
    services = []
    try:
        async with asyncio.timeout(10):
            services = [await gossipsub(h) for h in hosts]
            t0, t1 = await services[0].join("t"), await services[1].join("t")
            t1.validator = lambda m: ValidationResult.REJECT if m.data == b"bad" else ValidationResult.ACCEPT
            s1 = await t1.subscribe()
            with pytest.raises(DeadlineExceeded):
                await t0.publish(b"x", min_peers=1, timeout=0.2)
            await hosts[0].connect(hosts[1].full_addrs())
            await t0.publish(b"bad", min_peers=1, timeout=5)
            await t0.publish(b"good", min_peers=1, timeout=5)
            assert (await s1.next(timeout=5)).data == b"good"
    finally:
        for ps in services:
            await ps.close()
        for h in hosts:
            await h.close()


@pytest.mark.parametrize("factory", [gossipsub, floodsub])
async def test_add_validator_and_mesh_peers(factory: object) -> None:
    """The issue's interface: ``ps.add_validator(topic, fn)`` (before or after joining) and
    ``ps.mesh_peers(topic)`` (the GossipSub mesh; FloodSub forwards to every topic peer)."""
    hosts = await _hosts(2)
    services = []
    try:
        async with asyncio.timeout(10):
            services = [await factory(h) for h in hosts]  # type: ignore[operator]
            services[1].add_validator("t", lambda m: m.data != b"bad")  # before joining
            t0, t1 = await services[0].join("t"), await services[1].join("t")
            s1 = await t1.subscribe()
            await t0.subscribe()
            assert services[0].mesh_peers("t") == []
            await hosts[0].connect(hosts[1].full_addrs())
            await t0.publish(b"bad", min_peers=1, timeout=5)
            await t0.publish(b"good", min_peers=1, timeout=5)
            assert (await s1.next(timeout=5)).data == b"good"
            for _ in range(300):  # GossipSub grafts on its heartbeat
                if services[0].mesh_peers("t") == [hosts[1].peer_id]:
                    break
                await asyncio.sleep(0.02)
            assert services[0].mesh_peers("t") == [hosts[1].peer_id]
            assert services[0].mesh_peers("other") == []
            services[1].add_validator("t", lambda m: True)  # replaces the first one
            await t0.publish(b"bad", min_peers=1, timeout=5)
            assert (await s1.next(timeout=5)).data == b"bad"
    finally:
        for ps in services:
            await ps.close()
        for h in hosts:
            await h.close()


async def test_gossipsub_gets_identify_signed_records_for_peer_exchange() -> None:
    """PRUNE peer exchange carries signed peer records: A, connected to B and C on one topic, prunes B with
    PX and names C with C's signed record from identify."""
    from aiolibp2p.crypto.peer_id import PeerId
    from aiolibp2p.crypto.peer_record import open_signed_peer_record
    from aiolibp2p.pubsub.gossipsub import GossipSub

    hosts = [aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"], transports=["tcp"]) for _ in range(3)]
    for h in hosts:
        await h.start()
    services = []
    try:
        async with asyncio.timeout(10):
            services = [await gossipsub(h, do_px=True) for h in hosts]
            for ps in services:
                await (await ps.join("t")).subscribe()
            a, b, c = hosts
            await a.connect(b.full_addrs())
            await a.connect(c.full_addrs())
            router = services[0].router
            assert isinstance(router, GossipSub)
            for _ in range(250):
                if {b.peer_id, c.peer_id} <= set(router.peer_records) and c.peer_id in router.topic_peers(
                    "t"
                ):
                    break
                await asyncio.sleep(0.02)
            prune = router._make_prune(b.peer_id, "t", px=True, unsubscribe=False)
            (info,) = prune.peers
            assert PeerId.from_bytes(info.peerID) == c.peer_id
            rec, _ = open_signed_peer_record(info.signedPeerRecord)
            assert rec.peer_id == c.peer_id and set(rec.addrs) == {a.to_bytes() for a in c.listen_addrs}
    finally:
        for ps in services:
            await ps.close()
        for h in hosts:
            await h.close()


async def test_async_validators_hold_then_decide() -> None:
    """A coroutine validator, and a plain function returning an awaitable, are awaited (the router keeps
    the message pending); their verdicts decide delivery and forwarding as a synchronous verdict would."""
    hosts = await _hosts(2)
    services = []
    try:
        async with asyncio.timeout(10):
            services = [await gossipsub(h) for h in hosts]
            t0, t1 = await services[0].join("t"), await services[1].join("t")
            gate = asyncio.Event()
            seen: list[bytes] = []

            async def slow(m: PubSubMessage) -> ValidationResult:
                seen.append(m.data)
                await gate.wait()
                return ValidationResult.REJECT if m.data == b"bad" else ValidationResult.ACCEPT

            t1.validator = slow
            s1 = await t1.subscribe()
            await hosts[0].connect(hosts[1].full_addrs())
            await t0.publish(b"bad", min_peers=1, timeout=5)
            await t0.publish(b"good", min_peers=1, timeout=5)
            while len(seen) < 2:
                await asyncio.sleep(0.01)
            assert services[1].router.pending_validations == 2  # held until the validator answers
            gate.set()
            assert (await s1.next(timeout=5)).data == b"good"
            assert seen == [b"bad", b"good"]  # each message validated once

            def plain(m: PubSubMessage) -> asyncio.Future[bool]:
                seen.append(m.data)
                fut = asyncio.get_running_loop().create_future()
                fut.set_result(m.data != b"bad2")
                return fut

            t1.validator = plain
            await t0.publish(b"bad2", timeout=5)
            await t0.publish(b"good2", timeout=5)
            assert (await s1.next(timeout=5)).data == b"good2"
            assert seen[2:] == [b"bad2", b"good2"]
            assert services[1].router.pending_validations == 0
            assert services[1].router.stats.messages_rejected == 2
    finally:
        for ps in services:
            await ps.close()
        for h in hosts:
            await h.close()


async def test_frames_split_across_reads() -> None:
    """Messages larger than one stream read (their frames span several chunks) between small ones, published
    back to back: the reader keeps the start of a frame until the next chunk completes it, and slices whole
    frames out of a chunk; every message arrives intact and in order."""
    hosts = await _hosts(2)
    services = []
    try:
        async with asyncio.timeout(20):
            services = [await gossipsub(h) for h in hosts]
            topics = [await ps.join("big") for ps in services]
            sub = await topics[1].subscribe()
            await hosts[1].connect(hosts[0].full_addrs())
            payloads = [
                bytes([i]) * size for i, size in enumerate([10, 200_000, 130, 70_000, 1, 300_000, 20])
            ]
            await topics[0].publish(payloads[0], min_peers=1, timeout=5)
            for p in payloads[1:]:
                await topics[0].publish(p)
            for p in payloads:
                assert (await sub.next(timeout=5)).data == p
    finally:
        for ps in services:
            await ps.close()
        for h in hosts:
            await h.close()
