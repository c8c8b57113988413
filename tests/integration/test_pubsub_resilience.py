"""Pubsub never loses a connected peer (GO-LIBP2P-NOTES §1.4, §2 "a targeted regression test").

Peer A has two connections to B and the pubsub streams run over one of them. That connection dies
silently (a forwarding proxy stops passing bytes) or B closes it. A keeps B in the topic the whole time,
and messages keep flowing both ways over the surviving connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from test_founding_scenario import StallingProxy

import aiolibp2p
from aiolibp2p.exceptions import DeadlineExceeded
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.pubsub import PubSub, Subscription, Topic, floodsub, gossipsub


class Proxy(StallingProxy):
    """A StallingProxy that also passes a close on (while not stalled), so a close by B reaches A."""

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await super()._pump(r, w)
        if not self.stalled:
            w.close()


KEEPALIVE = dict(keepalive_interval=0.3, keepalive_timeout=0.3)
Factory = Callable[..., Awaitable[PubSub]]


async def _wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def _first_delivery(src: Topic, dst: Subscription, tag: str, timeout: float) -> float:
    """Publish (a new payload every 100 ms) until ``dst`` receives one; returns the seconds it took."""
    t0 = time.monotonic()
    sent: set[bytes] = set()
    async with asyncio.timeout(timeout):
        while True:
            data = f"{tag} {len(sent)}".encode()
            sent.add(data)
            await src.publish(data)
            deadline = time.monotonic() + 0.1
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = await dst.next(timeout=left)
                except DeadlineExceeded:
                    break
                if msg.data in sent:  # (dst also gets what its own host published)
                    return time.monotonic() - t0


async def _flows_both_ways(ta: Topic, sa: Subscription, tb: Topic, sb: Subscription, n: int = 10) -> None:
    """n messages each way, all received in order (late replays of earlier payloads are skipped)."""
    for i in range(n):
        await ta.publish(b"A:%d" % i)
        await tb.publish(b"B:%d" % i)
    for sub in (sa, sb):
        got: list[bytes] = []
        async with asyncio.timeout(5):
            while len(got) < 2 * n:
                data = (await sub.next()).data
                if data[:2] in (b"A:", b"B:"):
                    got.append(data)
        assert [d for d in got if d.startswith(b"A:")] == [b"A:%d" % i for i in range(n)]
        assert [d for d in got if d.startswith(b"B:")] == [b"B:%d" % i for i in range(n)]


def _drain(sub: Subscription) -> None:
    while not sub._queue.empty():
        sub._queue.get_nowait()


@pytest.mark.parametrize("make", [gossipsub, floodsub], ids=["gossipsub", "floodsub"])
@pytest.mark.parametrize("failure", ["stall", "closed-by-b"])
async def test_peer_kept_when_the_pubsub_connection_dies(make: Factory, failure: str) -> None:
    async with asyncio.timeout(30):
        async with (
            aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"], transports=["tcp"], **KEEPALIVE) as a,
            aiolibp2p.new_host(
                listen=["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.2/tcp/0"], transports=["tcp"], **KEEPALIVE
            ) as b,
        ):
            addr1, addr2 = b.full_addrs()
            host, port = Multiaddr(str(addr2)).split_peer_id()[0].host_port()
            proxy = Proxy((host, port))
            pport = await proxy.start()
            try:
                await a.connect(addr1)
                await a.identify(b.peer_id)
                await a.connect(f"/ip4/127.0.0.1/tcp/{pport}/p2p/{b.peer_id}", new_connection=True)
                await _wait_for(lambda: len(b.connections(a.peer_id)) == 2, 2, "2 connections at B")
                await _wait_for(
                    lambda: all(c.identified.is_set() for c in a.connections(b.peer_id)), 3, "identify"
                )
                # the newest identified connection (the proxied one) carries the pubsub streams
                ps_a, ps_b = await make(a), await make(b)
                try:
                    ta, tb = await ps_a.join("t"), await ps_b.join("t")
                    sa, sb = await ta.subscribe(), await tb.subscribe()
                    await ta.publish(b"hello", min_peers=1, timeout=5)
                    await tb.publish(b"hello", min_peers=1, timeout=5)
                    assert (await sb.next(timeout=5)).data in (b"hello",)
                    _drain(sa)
                    _drain(sb)
                    link = ps_a._links[b.peer_id]
                    assert link.stream is not None
                    victim = link.stream.conn
                    assert str(pport) in str(victim.remote_addr), "pubsub did not pick the proxied connection"

                    absent: list[float] = []

                    async def watch() -> None:
                        while True:
                            if b.peer_id not in ps_a.router.topic_peers("t"):
                                absent.append(time.monotonic())
                            if a.peer_id not in ps_b.router.topic_peers("t"):
                                absent.append(time.monotonic())
                            await asyncio.sleep(0.005)

                    watcher = asyncio.ensure_future(watch())
                    if failure == "stall":
                        proxy.stall()
                    else:
                        b_side = next(c for c in b.connections(a.peer_id) if "127.0.0.2" in str(c.local_addr))
                        await b_side.close()
                    took_b = await _first_delivery(ta, sb, "a->b", 5)
                    took_a = await _first_delivery(tb, sa, "b->a", 5)
                    print(
                        f"{failure}: first delivery after the failure a->b {took_b:.2f} s, b->a {took_a:.2f} s"
                    )
                    await _wait_for(lambda: victim.is_closed(), 3, "A to notice the dead connection")
                    assert len(a.connections(b.peer_id)) == 1
                    _drain(sa)
                    _drain(sb)
                    await _flows_both_ways(ta, sa, tb, sb)
                    watcher.cancel()
                    assert absent == [], "a peer left the topic while still connected"
                    assert took_a < 5 and took_b < 5
                finally:
                    await ps_a.close()
                    await ps_b.close()
            finally:
                await proxy.close()


async def test_blocked_write_is_abandoned_and_the_stream_reopened(monkeypatch: pytest.MonkeyPatch) -> None:
    """B announces a subscription but never reads its inbound pubsub stream: A's writes to B fill the yamux
    window and block. After ``WRITE_TIMEOUT`` A's watchdog interrupts the write and A opens a new stream to
    B (while its messages keep flowing to C); without the watchdog the write would block for good."""
    from aiolibp2p.pubsub import service as pubsub_service
    from aiolibp2p.pubsub.gossipsub import GOSSIPSUB_V11
    from aiolibp2p.wire.pb import pubsub_pb2 as pb
    from aiolibp2p.wire.varint import length_prefixed

    monkeypatch.setattr(pubsub_service, "WRITE_TIMEOUT", 0.5)
    monkeypatch.setattr(pubsub_service, "WRITE_WATCHDOG_INTERVAL", 0.1)
    listen = ["/ip4/127.0.0.1/tcp/0"]
    async with (
        aiolibp2p.new_host(listen=listen) as a,
        aiolibp2p.new_host(listen=listen) as b,
        aiolibp2p.new_host(listen=listen) as c,
    ):
        inbound: list[object] = []
        stall = asyncio.Event()

        async def never_read(stream: object) -> None:
            inbound.append(stream)
            await stall.wait()

        b.set_stream_handler(GOSSIPSUB_V11, never_read)
        ps_a, ps_c = await gossipsub(a), await gossipsub(c)
        try:
            async with asyncio.timeout(20):
                topic_a, topic_c = await ps_a.join("t"), await ps_c.join("t")
                await topic_a.subscribe()
                sub_c = await topic_c.subscribe()
                await b.connect(a.full_addrs())
                await c.connect(a.full_addrs())
                hello = await b.new_stream(a.peer_id, [GOSSIPSUB_V11])
                rpc = pb.RPC()
                rpc.subscriptions.add(subscribe=True, topicid="t")
                await hello.write(length_prefixed(rpc.SerializeToString()))
                await _wait_for(
                    lambda: len(topic_a.peers()) == 2 and bool(inbound), 10, "B and C on the topic"
                )
                big = bytes(60_000)
                for i in range(12):  # 720 kB: more than B's 256 KiB receive window
                    await topic_a.publish(big + i.to_bytes(2, "big"))
                for _ in range(12):
                    await sub_c.next(timeout=5)
                await _wait_for(lambda: len(inbound) >= 2, 10, "A to reopen its stream to B")
        finally:
            stall.set()
            await ps_a.close()
            await ps_c.close()
