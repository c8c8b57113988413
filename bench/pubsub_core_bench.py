"""GossipSub router-core benchmark: CPU per delivery of the sans-I/O routers alone, no network, no asyncio.

Usage::

    python bench/pubsub_core_bench.py [--hosts 10] [--messages 2000] [--size 1024] [--reps 3]

``--hosts`` GossipSub routers (StrictSign, defaults, ``/meshsub/1.2.0``) in one process, every router added as
a peer of every other, one topic, meshes settled by two heartbeats. Messages are published by the routers in
turn; after each publish the frames every router queued are length-prefixed and handed to the receiving
router's ``handle_frame`` (as the service's reader does) until none are left, and validation is inline
(ACCEPT). ``--skip-verify`` replaces the signature check by a no-op, leaving the routers' own cost. Reported per
repetition: CPU time per hop (a hop = one router other than the publisher delivering
one message; signing, verification, duplicates and IDONTWANT included) and RPCs received per hop.

The mesh is built from a fixed seed, so every run of the same code has the same meshes and the same number
of duplicates: unlike ``pubsub_bench.py mesh`` (real hosts over TCP + Noise + yamux, whose CPU per hop follows
the random mesh sizes and the scheduling) this isolates the router code and is steady enough to compare two
versions side by side. It measures none of the I/O stack (streams, muxer, Noise, TCP, event loop).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from aiolibp2p.crypto.keys import Ed25519PrivateKey
from aiolibp2p.pubsub.core import DeliverMessage
from aiolibp2p.pubsub.gossipsub import GOSSIPSUB_V12, GossipSub, GossipSubConfig
from aiolibp2p.pubsub.message import ValidationResult
from aiolibp2p.wire.varint import encode_uvarint, try_decode_length_prefixed

TOPIC = "bench"


def _accept(_message: object) -> ValidationResult:
    return ValidationResult.ACCEPT


def build(hosts: int, seed: int = 1) -> list[GossipSub]:
    rng = random.Random(seed)
    routers = []
    for i in range(hosts):
        key = Ed25519PrivateKey.from_seed(rng.randbytes(32))
        router = GossipSub(
            key.public_key.peer_id, GossipSubConfig(), private_key=key, rng=random.Random(i), initial_seqno=0
        )
        router.inline_validator = _accept
        router.start(0.0)
        routers.append(router)
    for a in routers:
        for b in routers:
            if a is not b:
                a.add_peer(b.local_peer, GOSSIPSUB_V12, 0.0, outbound=True)
    for r in routers:
        r.subscribe(TOPIC, 0.0)
    return routers


def pump(routers: list[GossipSub], now: float) -> int:
    """Deliver queued frames until none are left; returns the deliveries of received messages (a router's own
    publishes not counted)."""
    by_id = {r.local_peer: r for r in routers}
    delivered = 0
    moved = True
    while moved:
        moved = False
        for r in routers:
            me = r.local_peer
            delivered += sum(
                isinstance(ev, DeliverMessage) and ev.received_from != me for ev in r.take_events()
            )
            for peer in r.take_flushed_peers():
                frames = r.take_frames(peer)
                if not frames:
                    continue
                moved = True
                data = b"".join(encode_uvarint(len(f)) + f for f in frames)
                dst = by_id[peer]
                pos = 0
                while (got := try_decode_length_prefixed(data, 1 << 20, pos)) is not None:
                    frame, pos = got
                    dst.handle_frame(r.local_peer, frame, now)
    return delivered


def run(hosts: int, messages: int, size: int) -> dict[str, object]:
    routers = build(hosts)
    pump(routers, 0.0)
    for t in (1.0, 2.0):  # two heartbeats: meshes settle
        for r in routers:
            r.handle_timer(t)
        pump(routers, t)
    pad = bytes(max(0, size - 16))
    rpcs0 = sum(r.stats.rpcs_received for r in routers)
    now = 3.0
    hops = 0
    cpu0 = time.process_time()
    for k in range(messages):
        routers[k % hosts].publish(TOPIC, k.to_bytes(16, "big") + pad, now)
        hops += pump(routers, now)
        now += 0.001
    cpu = time.process_time() - cpu0
    rpcs = sum(r.stats.rpcs_received for r in routers) - rpcs0
    return {
        "hosts": hosts,
        "messages": messages,
        "mesh_sizes": sorted(len(r.mesh.get(TOPIC, ())) for r in routers),
        "delivery_pct": 100.0 * hops / (messages * (hosts - 1)),
        "cpu_per_hop_us": 1e6 * cpu / max(hops, 1),
        "rpcs_per_hop": rpcs / hops,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hosts", type=int, default=10)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--skip-verify",
        action="store_true",
        help="replace the StrictSign signature check with a no-op: the routers' own share of the CPU per hop",
    )
    args = p.parse_args()
    if args.skip_verify:
        import aiolibp2p.pubsub.core as core

        core.verify_signature = lambda _m, _source: None
    for _ in range(args.reps):
        sys.stdout.write(json.dumps(run(args.hosts, args.messages, args.size)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
