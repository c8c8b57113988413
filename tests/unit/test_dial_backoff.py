"""Dial backoff: per (peer, address), growing with the tries, forgotten one period after it ends, bounded."""

from __future__ import annotations

from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.network.swarm import DialBackoff, SwarmConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _peer() -> PeerId:
    return PeerId.from_public_key(generate_key_pair().public_key)


A = Multiaddr("/ip4/10.0.0.1/tcp/1")
B = Multiaddr("/ip4/10.0.0.2/tcp/1")


def test_backoff_grows_with_tries_and_is_forgotten_one_period_after_it_ends() -> None:
    clock = Clock()
    bo = DialBackoff(SwarmConfig(backoff_base=5.0, backoff_coef=1.0, backoff_max=300.0), clock)
    p, q = _peer(), _peer()
    bo.failed(p, A)  # 6 s
    assert bo.backed_off(p, A) and not bo.backed_off(p, B) and not bo.backed_off(q, A)
    clock.now += 6.5
    assert not bo.backed_off(p, A)
    bo.failed(p, A)  # second try: 9 s
    clock.now += 8.5
    assert bo.backed_off(p, A)
    clock.now += 1
    assert not bo.backed_off(p, A)
    assert bo.prune() == 0 and len(bo) == 1  # within one period after: a new failure still counts the tries
    clock.now += 9
    assert bo.prune() == 1 and len(bo) == 0


def test_success_clears_the_peer_and_the_table_is_bounded() -> None:
    clock = Clock()
    bo = DialBackoff(SwarmConfig(backoff_base=1.0, backoff_coef=0.0, max_backoff_entries=4), clock)
    p = _peer()
    bo.failed(p, A)
    bo.failed(p, B)
    bo.clear(p)
    assert len(bo) == 0 and not bo.backed_off(p, A)
    peers = [_peer() for _ in range(6)]
    for x in peers:
        bo.failed(x, A)
    assert len(bo) == 4  # full of live entries: the last two failures were not recorded
    assert not bo.backed_off(peers[5], A)
    clock.now += 3  # all ended a period ago: an insert prunes them
    bo.failed(peers[5], A)
    assert len(bo) == 1 and bo.backed_off(peers[5], A)
