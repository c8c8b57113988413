"""aiolibp2p GossipSub ⇄ js-libp2p 3.x (@libp2p/gossipsub 17.1.1), both dial directions.

Checked: subscriptions seen on both sides, a mesh on both sides (js reports the GRAFTs it sent and
received as ``pubsub:graft`` events; our router's mesh holds js), messages both ways under StrictSign (js
accepts only validly signed messages, our router verifies every signature), the same message ID on both
sides (the peer runs with ``--pubsub-msgid go``: ``from || seqno``, our default; js's own default is
``protobuf(public key) || seqno``, LIBP2P-NOTES §3.9), and IDONTWANT in both directions with a third peer.
js opens its gossipsub stream only after identify shows a /meshsub protocol and grafts on its heartbeat
(first after 100 ms, then every 1 s), so the mesh waits are a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from jspeer import JsPeer

import aiolibp2p
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.pubsub import PubSub, PubSubMessage, Subscription, floodsub, gossipsub

pytestmark = pytest.mark.interop

TOPIC = "interop-topic"


async def _until(pred: object, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not pred():  # type: ignore[operator]
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def _next_from(sub: Subscription, source: str) -> PubSubMessage:
    """The next message on ``sub`` authored by ``source`` (skipping our own, which are delivered locally)."""
    async with asyncio.timeout(5):
        while True:
            msg = await sub.next()
            if str(msg.source) == source:
                return msg


def _js_peer(kind: str = "gossipsub") -> JsPeer:
    return JsPeer(extra_args=["--pubsub", kind, "--pubsub-msgid", "go"])


async def _mesh_formed(js: JsPeer, ps: PubSub, host: aiolibp2p.Host) -> None:
    jid = PeerId.from_string(js.peer_id)
    await _until(lambda: jid in ps.router.topic_peers(TOPIC), 10, "js's subscription at python")
    await js.wait_event("pubsub:subscription-change", timeout=10, peerId=str(host.peer_id))
    # A GRAFT crossed the wire: we graft at once when our mesh is short, so js normally *receives* ours
    # (inbound); js sends its own (outbound) only if its heartbeat got there first. Either way both
    # sides end with the other in their mesh.
    await js.wait_event("pubsub:graft", timeout=10, peerId=str(host.peer_id))
    router = ps.router
    await _until(lambda: jid in router.mesh.get(TOPIC, set()), 5, "js in our mesh")  # type: ignore[attr-defined]
    peers = await js.command("pubsub-peers", topic=TOPIC)
    assert str(host.peer_id) in peers["mesh"]


@pytest.mark.parametrize("dialer", ["python", "js"])
async def test_gossipsub_with_js(dialer: str) -> None:
    async with asyncio.timeout(60):
        async with _js_peer() as js, aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"]) as host:
            ps = await gossipsub(host)
            try:
                topic = await ps.join(TOPIC)
                sub = await topic.subscribe()
                await js.command("subscribe", topic=TOPIC)
                if dialer == "python":
                    await host.connect(js.addr)
                else:
                    await js.dial(str(host.full_addrs()[0]))
                await _mesh_formed(js, ps, host)

                # python -> js: js accepted it (StrictSign: only a valid signature is delivered)
                mark = js.mark()
                msg_id = await topic.publish(b"from python", min_peers=1, timeout=5)
                got = await js.wait_event(
                    "pubsub:message", timeout=5, after=mark, dataHex=b"from python".hex()
                )
                assert got["from"] == str(host.peer_id) and got["type"] == "signed"
                assert got["msgIdHex"] == msg_id.hex()  # same message ID function on both sides
                assert got["propagationSource"] == str(host.peer_id)

                # js -> python: our router verified js's signature before delivering
                reply = await js.command("publish", topic=TOPIC, dataHex=b"from js".hex())
                assert str(host.peer_id) in reply["recipients"]
                msg = await _next_from(sub, js.peer_id)
                assert msg.data == b"from js"
                assert ps.router.stats.messages_rejected == 0
            finally:
                await ps.close()


async def test_idontwant_with_js() -> None:
    """Python A publishes 2 KiB; js and python B, both in each other's meshes, tell each other IDONTWANT."""
    async with asyncio.timeout(60):
        async with (
            _js_peer() as js,
            aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"]) as a,
            aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"]) as b,
        ):
            pa, pb = await gossipsub(a), await gossipsub(b)
            try:
                ta, tb = await pa.join(TOPIC), await pb.join(TOPIC)
                await ta.subscribe()
                sb = await tb.subscribe()
                await js.command("subscribe", topic=TOPIC)
                await a.connect(js.addr)
                await b.connect(js.addr)
                await a.connect(a_to_b := b.full_addrs()[0])
                del a_to_b
                await _mesh_formed(js, pa, a)
                await _mesh_formed(js, pb, b)
                jid = PeerId.from_string(js.peer_id)
                await _until(lambda: b.peer_id in pa.router.mesh.get(TOPIC, set()), 5, "b in a's mesh")  # type: ignore[attr-defined]
                mark = js.mark()
                data = bytes(range(256)) * 8
                msg_id = await ta.publish(data, min_peers=2, timeout=5)
                assert (await sb.next(timeout=5)).data == data
                # b received it and told js (its other mesh peer) IDONTWANT
                got = await js.wait_event(
                    lambda e: e.get("event") == "pubsub:idontwant" and msg_id.hex() in e["msgIdsHex"],
                    timeout=5,
                    after=mark,
                )
                assert got["peerId"] == str(b.peer_id)
                # js received it and told b IDONTWANT
                await _until(
                    lambda: msg_id in pb.router._unwanted.get(jid, {}),  # type: ignore[attr-defined]
                    5,
                    "js's IDONTWANT at b",
                )
            finally:
                for ps in (pa, pb):
                    with contextlib.suppress(Exception):
                        await ps.close()


async def test_floodsub_python_with_js_floodsub() -> None:
    async with asyncio.timeout(60):
        async with _js_peer("floodsub") as js, aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"]) as host:
            ps = await floodsub(host)
            try:
                topic = await ps.join(TOPIC)
                sub = await topic.subscribe()
                await js.command("subscribe", topic=TOPIC)
                await host.connect(js.addr)
                await topic.publish(b"flood from python", min_peers=1, timeout=10)
                got = await js.wait_event("pubsub:message", timeout=5, dataHex=b"flood from python".hex())
                assert got["from"] == str(host.peer_id)
                await js.wait_event("pubsub:subscription-change", timeout=5, peerId=str(host.peer_id))
                await js.command("publish", topic=TOPIC, dataHex=b"flood from js".hex())
                assert (await _next_from(sub, js.peer_id)).data == b"flood from js"
            finally:
                await ps.close()
