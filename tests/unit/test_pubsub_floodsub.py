"""FloodSub engine, alone and mixed with GossipSub (a gossipsub router floods to its floodsub peers)."""

from __future__ import annotations

import itertools

from test_pubsub_harness import Net

from aiolibp2p.pubsub.core import PeerJoinedTopic, PeerLeftTopic


def test_floodsub_line_delivers_once_to_all() -> None:
    net = Net()
    nodes = [net.add_floodsub() for _ in range(5)]
    for a, b in itertools.pairwise(nodes):
        net.connect(a, b)
    net.subscribe_all("t")
    nodes[0].router.publish("t", b"hop", net.now)
    net.pump()
    assert all(n.data("t") == [b"hop"] for n in nodes)
    nodes[4].router.publish("t", b"back", net.now)
    net.pump()
    assert all(n.data("t") == [b"hop", b"back"] for n in nodes)


def test_floodsub_full_mesh_dedup() -> None:
    net = Net()
    nodes = [net.add_floodsub() for _ in range(6)]
    net.connect_all()
    net.subscribe_all("t")
    nodes[2].router.publish("t", b"x", net.now)
    net.pump()
    assert all(n.data("t") == [b"x"] for n in nodes)
    assert sum(n.router.stats.messages_duplicate for n in nodes) > 0


def test_subscription_events_and_unsubscribe() -> None:
    net = Net()
    a, b = net.add_floodsub(), net.add_floodsub()
    net.connect(a, b)
    b.router.subscribe("t", net.now)
    net.pump()
    assert a.router.topic_peers("t") == {b.peer_id}
    assert PeerJoinedTopic(b.peer_id, "t") in a.events
    b.router.unsubscribe("t", net.now)
    net.pump()
    assert a.router.topic_peers("t") == set()
    assert PeerLeftTopic(b.peer_id, "t") in a.events
    # hello: a peer added later learns our subscriptions at once
    a.router.subscribe("u", net.now)
    c = net.add_floodsub()
    net.connect(c, a)
    assert c.router.topic_peers("u") == {a.peer_id}
    net.disconnect(c, a)
    assert PeerLeftTopic(a.peer_id, "u") in c.events


def test_messages_for_unsubscribed_topics_not_relayed() -> None:
    net = Net()
    a, b, c = net.add_floodsub(), net.add_floodsub(), net.add_floodsub()
    net.connect(a, b)
    net.connect(b, c)
    net.subscribe_all("t", [a, c])
    a.router.publish("t", b"x", net.now)
    net.pump()
    assert c.data("t") == []  # b is not subscribed: it neither receives nor relays


def test_gossipsub_and_floodsub_interoperate() -> None:
    net = Net()
    gs = [net.add_gossipsub() for _ in range(4)]
    fs = [net.add_floodsub() for _ in range(2)]
    net.connect_all()
    net.subscribe_all("t")
    net.advance(2.0)
    for f in fs:
        assert all(f.peer_id not in g.gs.mesh["t"] for g in gs)
    gs[1].router.publish("t", b"from-gs", net.now)
    fs[0].router.publish("t", b"from-fs", net.now)
    net.pump()
    for n in net.nodes:
        assert sorted(n.data("t")) == [b"from-fs", b"from-gs"]
