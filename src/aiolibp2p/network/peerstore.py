"""The peer store: what we know about other peers — addresses (with TTLs), public keys, protocols,
metadata (agent version, ...) and their latest signed peer record.

Bounded: addresses and protocols per peer are capped (named limits); expired addresses are dropped lazily.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ..crypto.keys import PublicKey
from ..crypto.peer_id import PeerId
from ..multiaddr import Multiaddr

PERMANENT_ADDR_TTL = float("inf")
CONNECTED_ADDR_TTL = float("inf")
"""Addresses of a connected peer stay until it disconnects (then they get RECENTLY_CONNECTED_ADDR_TTL)."""
RECENTLY_CONNECTED_ADDR_TTL = 15 * 60.0
TEMP_ADDR_TTL = 2 * 60.0
DEFAULT_ADDR_TTL = 60 * 60.0
MAX_ADDRS_PER_PEER = 64
MAX_PROTOCOLS_PER_PEER = 256
MAX_PROTOCOL_ID_LENGTH = 1024
MAX_PEERS = 10_000
"""Peers remembered at most. Beyond it, :meth:`Peerstore.gc` forgets peers that are not kept (connected),
those whose addresses expire soonest first."""
GC_INTERVAL = 60.0
"""Seconds between the host's peerstore sweeps (forgetting unconnected peers whose addresses all expired)."""


class Peerstore:
    def __init__(self, *, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._addrs: dict[PeerId, dict[Multiaddr, float]] = {}
        self._keys: dict[PeerId, PublicKey] = {}
        self._protocols: dict[PeerId, set[str]] = {}
        self._meta: dict[PeerId, dict[str, Any]] = {}
        self._records: dict[PeerId, tuple[int, bytes, tuple[Multiaddr, ...]]] = {}

    # -- addresses ----------------------------------------------------------------------------------------
    def add_addrs(self, peer: PeerId, addrs: Iterable[Multiaddr], ttl: float = DEFAULT_ADDR_TTL) -> None:
        """Add addresses (without their /p2p suffix); an existing address keeps the longer expiry."""
        book = self._addrs.setdefault(peer, {})
        expiry = self._clock() + ttl
        for a in addrs:
            a, _ = a.split_peer_id()
            old = book.get(a)
            if old is None and len(book) >= MAX_ADDRS_PER_PEER:
                self._gc(peer)
                if len(book) >= MAX_ADDRS_PER_PEER:
                    continue
            if old is None or old < expiry:
                book[a] = expiry

    def set_addrs_ttl(self, peer: PeerId, ttl: float) -> None:
        """Set the expiry of every known address of ``peer`` (e.g. on disconnect)."""
        book = self._addrs.get(peer)
        if book:
            expiry = self._clock() + ttl
            for a in book:
                book[a] = expiry

    def addrs(self, peer: PeerId) -> list[Multiaddr]:
        self._gc(peer)
        return list(self._addrs.get(peer, ()))

    def clear_addrs(self, peer: PeerId) -> None:
        self._addrs.pop(peer, None)

    def _gc(self, peer: PeerId) -> None:
        book = self._addrs.get(peer)
        if book:
            now = self._clock()
            for a in [a for a, exp in book.items() if exp < now]:
                del book[a]

    # -- keys -----------------------------------------------------------------------------------------------
    def add_public_key(self, peer: PeerId, key: PublicKey) -> None:
        if not peer.matches_public_key(key):
            raise ValueError(f"public key does not match peer {peer}")
        self._keys[peer] = key

    def public_key(self, peer: PeerId) -> PublicKey | None:
        k = self._keys.get(peer)
        return k if k is not None else peer.extract_public_key()

    # -- protocols ------------------------------------------------------------------------------------------
    def set_protocols(
        self, peer: PeerId, protocols: Iterable[str]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Replace the protocol set; returns ``(added, removed)``."""
        new = {p for p in protocols if len(p) <= MAX_PROTOCOL_ID_LENGTH}
        if len(new) > MAX_PROTOCOLS_PER_PEER:
            new = set(sorted(new)[:MAX_PROTOCOLS_PER_PEER])
        old = self._protocols.get(peer, set())
        self._protocols[peer] = new
        return tuple(sorted(new - old)), tuple(sorted(old - new))

    def get_protocols(self, peer: PeerId) -> list[str]:
        return sorted(self._protocols.get(peer, ()))

    def supports(self, peer: PeerId, protocols: Iterable[str]) -> list[str]:
        """The subset of ``protocols`` the peer is known to support, in the given order."""
        known = self._protocols.get(peer)
        if not known:
            return []
        return [p for p in protocols if p in known]

    # -- metadata -------------------------------------------------------------------------------------------
    def put(self, peer: PeerId, key: str, value: Any) -> None:
        self._meta.setdefault(peer, {})[key] = value

    def get(self, peer: PeerId, key: str, default: Any = None) -> Any:
        return self._meta.get(peer, {}).get(key, default)

    # -- signed peer records ----------------------------------------------------------------------------------
    def consume_peer_record(
        self,
        peer: PeerId,
        seq: int,
        envelope: bytes,
        addrs: Iterable[Multiaddr],
        ttl: float = DEFAULT_ADDR_TTL,
    ) -> bool:
        """Store a verified record if its seq is newer than what we have; returns whether it was taken."""
        old = self._records.get(peer)
        if old is not None and old[0] >= seq:
            return old[0] == seq
        addrs = tuple(addrs)
        self._records[peer] = (seq, envelope, addrs)
        self.add_addrs(peer, addrs, ttl)
        return True

    def peer_record(self, peer: PeerId) -> bytes | None:
        r = self._records.get(peer)
        return r[1] if r else None

    def stored_record(self, peer: PeerId, envelope: bytes) -> tuple[int, tuple[Multiaddr, ...]] | None:
        """``(seq, addrs)`` if ``envelope`` is exactly the (verified) record we hold for ``peer``: a peer sends the
        same record on every connection, and its signature need not be checked again."""
        r = self._records.get(peer)
        return (r[0], r[2]) if r is not None and r[1] == envelope else None

    # -- peers ------------------------------------------------------------------------------------------------
    def peers(self) -> list[PeerId]:
        return list(
            set(self._addrs) | set(self._keys) | set(self._protocols) | set(self._meta) | set(self._records)
        )

    def remove_peer(self, peer: PeerId) -> None:
        for d in (self._addrs, self._keys, self._protocols, self._meta, self._records):
            d.pop(peer, None)

    def gc(self, keep: Callable[[PeerId], bool] = lambda _p: False, *, max_peers: int = MAX_PEERS) -> int:
        """Forget what we know of peers that ``keep`` does not protect (the host keeps connected peers) and
        whose addresses have all expired (as go-libp2p's peerstore does); then, while more than
        ``max_peers`` remain, forget unprotected peers whose addresses expire soonest. Returns how many
        peers were forgotten."""
        now = self._clock()
        removed = 0
        candidates: list[tuple[float, PeerId]] = []
        for peer in self.peers():
            if keep(peer):
                continue
            book = self._addrs.get(peer)
            latest = max(book.values(), default=0.0) if book else 0.0
            if latest < now:
                self.remove_peer(peer)
                removed += 1
            else:
                self._gc(peer)
                candidates.append((latest, peer))
        excess = len(self.peers()) - max_peers
        if excess > 0:
            candidates.sort(key=lambda c: c[0])
            for _, peer in candidates[:excess]:
                self.remove_peer(peer)
                removed += 1
        return removed
