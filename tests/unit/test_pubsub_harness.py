"""In-memory harness for the sans-I/O pubsub routers: several engines wired back to back, one clock.

Other test_pubsub_* modules import :class:`Net` from here; the tests at the bottom check the harness.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from aiolibp2p.crypto.keys import Ed25519PrivateKey, PrivateKey
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.pubsub.core import DeliverMessage, PubSubRouter, ValidateMessage
from aiolibp2p.pubsub.floodsub import FloodSub
from aiolibp2p.pubsub.gossipsub import GOSSIPSUB_PROTOCOLS, GossipSub, GossipSubConfig
from aiolibp2p.pubsub.message import PubSubMessage, ValidationResult
from aiolibp2p.wire.pb import pubsub_pb2 as pb

Validator = Callable[[PubSubMessage], ValidationResult | None]  # None: leave pending


@dataclass
class Node:
    router: PubSubRouter
    key: PrivateKey
    delivered: list[DeliverMessage] = field(default_factory=list)
    validator: Validator | None = None
    pending: list[ValidateMessage] = field(default_factory=list)
    events: list[object] = field(default_factory=list)

    @property
    def peer_id(self) -> PeerId:
        return self.router.local_peer

    @property
    def gs(self) -> GossipSub:
        assert isinstance(self.router, GossipSub)
        return self.router

    def data(self, topic: str | None = None) -> list[bytes]:
        return [d.message.data for d in self.delivered if topic is None or d.message.topic == topic]


class Net:
    """Routers connected pairwise; frames are delivered by :meth:`pump`, time moves by :meth:`advance`."""

    def __init__(self, seed: int = 1) -> None:
        self.now = 1000.0
        self.rng = random.Random(seed)
        self.nodes: list[Node] = []
        self.by_id: dict[PeerId, Node] = {}
        self.links: set[tuple[PeerId, PeerId]] = set()
        self.log: list[tuple[PeerId, PeerId, pb.RPC]] = []
        self.cut: set[tuple[PeerId, PeerId]] = set()  # directed links whose frames are dropped

    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_seed(self.rng.randbytes(32))

    def add_gossipsub(self, config: GossipSubConfig | None = None, key: PrivateKey | None = None) -> Node:
        key = key or self._key()
        router = GossipSub(
            key.public_key.peer_id,
            config,
            private_key=key,
            rng=random.Random(self.rng.random()),
            initial_seqno=0,
        )
        router.start(self.now)
        return self._add(router, key)

    def add_floodsub(self, key: PrivateKey | None = None) -> Node:
        key = key or self._key()
        router = FloodSub(key.public_key.peer_id, GossipSubConfig().pubsub, private_key=key, initial_seqno=0)
        return self._add(router, key)

    def _add(self, router: PubSubRouter, key: PrivateKey) -> Node:
        node = Node(router, key)
        self.nodes.append(node)
        self.by_id[node.peer_id] = node
        return node

    @staticmethod
    def negotiate(a: PubSubRouter, b: PubSubRouter) -> str:
        for proto in a.protocols or GOSSIPSUB_PROTOCOLS:
            if proto in b.protocols:
                return proto
        raise AssertionError("no common pubsub protocol")

    def connect(self, a: Node, b: Node) -> None:
        """``a`` dialed ``b``."""
        proto = self.negotiate(a.router, b.router)
        self.links.add((a.peer_id, b.peer_id))
        a.router.add_peer(b.peer_id, proto, self.now, outbound=True)
        b.router.add_peer(a.peer_id, proto, self.now, outbound=False)
        self.pump()

    def disconnect(self, a: Node, b: Node) -> None:
        self.links.discard((a.peer_id, b.peer_id))
        self.links.discard((b.peer_id, a.peer_id))
        a.router.remove_peer(b.peer_id, self.now)
        b.router.remove_peer(a.peer_id, self.now)
        self.pump()

    def connect_all(self, nodes: list[Node] | None = None) -> None:
        nodes = nodes or self.nodes
        for i, a in enumerate(nodes):
            for b in nodes[i + 1 :]:
                self.connect(a, b)

    def connect_random(self, degree: int) -> None:
        for a in self.nodes:
            others = [b for b in self.nodes if b is not a]
            for b in self.rng.sample(others, min(degree, len(others))):
                if (a.peer_id, b.peer_id) not in self.links and (b.peer_id, a.peer_id) not in self.links:
                    self.connect(a, b)

    def _drain_events(self, node: Node) -> bool:
        moved = False
        for ev in node.router.take_events():
            moved = True
            node.events.append(ev)
            if isinstance(ev, ValidateMessage):
                verdict = ValidationResult.ACCEPT if node.validator is None else node.validator(ev.message)
                if verdict is None:
                    node.pending.append(ev)
                else:
                    node.router.report_validation(ev.msg_id, verdict, self.now)
            elif isinstance(ev, DeliverMessage):
                node.delivered.append(ev)
        return moved

    def pump(self, max_rounds: int = 10_000) -> None:
        for _ in range(max_rounds):
            moved = False
            for node in self.nodes:
                moved |= self._drain_events(node)
                for peer in node.router.peers_with_frames():
                    for frame in node.router.take_frames(peer):
                        moved = True
                        dst = self.by_id[peer]
                        self.log.append((node.peer_id, peer, pb.RPC.FromString(frame)))
                        if (node.peer_id, peer) in self.cut or node.peer_id not in dst.router.peers:
                            continue
                        dst.router.handle_frame(node.peer_id, frame, self.now)
            if not moved:
                return
        raise AssertionError("network did not settle")

    def advance(self, seconds: float, step: float = 0.1) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = min(end, self.now + step)
            for node in self.nodes:
                if isinstance(node.router, GossipSub):
                    deadline = node.router.next_timer()
                    while deadline is not None and deadline <= self.now:
                        node.router.handle_timer(self.now)
                        deadline = node.router.next_timer()
                else:
                    node.router.sweep(self.now)
            self.pump()

    def sent(self, src: Node | None = None, dst: Node | None = None) -> list[pb.RPC]:
        return [
            rpc
            for s, d, rpc in self.log
            if (src is None or s == src.peer_id) and (dst is None or d == dst.peer_id)
        ]

    def subscribe_all(self, topic: str, nodes: list[Node] | None = None) -> None:
        for node in nodes or self.nodes:
            node.router.subscribe(topic, self.now)
        self.pump()


# --- harness self-tests --------------------------------------------------------------------------------


def test_two_gossipsub_nodes_exchange_a_message() -> None:
    net = Net()
    a, b = net.add_gossipsub(), net.add_gossipsub()
    net.connect(a, b)
    net.subscribe_all("t")
    net.advance(1.0)
    assert b.peer_id in a.gs.mesh["t"] and a.peer_id in b.gs.mesh["t"]
    a.router.publish("t", b"hello", net.now)
    net.pump()
    assert b.data() == [b"hello"]
    assert a.data() == [b"hello"]  # local delivery of our own publish


def test_protocol_negotiation_prefers_newest() -> None:
    net = Net()
    a, b, f = net.add_gossipsub(), net.add_gossipsub(), net.add_floodsub()
    assert net.negotiate(a.router, b.router) == "/meshsub/1.2.0"
    assert net.negotiate(a.router, f.router) == "/floodsub/1.0.0"
