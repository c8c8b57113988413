"""The rendezvous point's state machine: registrations, limits, cookies and expiry (sans-I/O).

Spec: https://github.com/libp2p/specs/blob/master/rendezvous/README.md (§Registration Lifetime, §Interaction,
§Recommendations for Rendezvous Points configurations). :meth:`RendezvousRegistry.handle` takes the sending
peer, a decoded message and the current time, and returns the response to send (None for UNREGISTER). The
host adapter (:mod:`.service`) owns the stream and the clock.

Cookies: every accepted REGISTER (also a refresh) gets the next value of a counter; a DISCOVER returns live
registrations in counter order, and its cookie is ``nonce ‖ counter of the last one returned ‖ namespace``.
Presenting the cookie returns only later registrations, which gives both paging and incremental polling. The
nonce is random per registry, so a cookie from another point (or before a restart) is E_INVALID_COOKIE.
"""

from __future__ import annotations

import heapq
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from ...crypto.peer_id import PeerId
from ...crypto.peer_record import open_signed_peer_record
from ...exceptions import Libp2pError, ProtocolViolation
from ...wire.pb import rendezvous_pb2
from .codec import (
    MAX_MESSAGE_SIZE,
    PROTOCOL_ID,
    MessageType,
    Status,
    discover_response,
    register_response,
)

__all__ = [
    "DEFAULT_TTL",
    "MAX_DISCOVER_LIMIT",
    "MAX_NAMESPACE_LENGTH",
    "MAX_REGISTRATIONS_PER_PEER",
    "MAX_TTL",
    "MIN_TTL",
    "Registration",
    "RendezvousLimits",
    "RendezvousRegistry",
]

MAX_NAMESPACE_LENGTH: Final = 255
"""Longest namespace, in UTF-8 bytes (spec recommendation)."""
DEFAULT_TTL: Final = 2 * 3600
"""Seconds a registration lives when REGISTER carries no TTL (spec)."""
MIN_TTL: Final = 2 * 3600
"""Shortest TTL accepted (spec recommendation; rust and js use it too, go accepts 2 min)."""
MAX_TTL: Final = 72 * 3600
"""Longest TTL accepted (spec)."""
MAX_REGISTRATIONS_PER_PEER: Final = 1000
"""Namespaces one peer may be registered in at once (spec recommendation)."""
MAX_DISCOVER_LIMIT: Final = 1000
"""Most registrations returned by one DISCOVER (spec recommendation); also the default limit."""
MAX_REGISTRATIONS: Final = 100_000
"""Registrations held in total; beyond it REGISTER gets E_UNAVAILABLE (a memory bound of this implementation)."""
MAX_SIGNED_RECORD_SIZE: Final = 8 * 1024
"""Largest signed peer record envelope stored (bounds a DISCOVER_RESPONSE)."""

_COOKIE_NONCE_LEN: Final = 8
_COOKIE_HEAD: Final = struct.Struct(">8sQ")
# Bytes a registration adds to a DISCOVER_RESPONSE besides its record and namespace (tags, lengths, ttl).
_REGISTRATION_OVERHEAD: Final = 32


@dataclass(frozen=True, slots=True)
class RendezvousLimits:
    """The rendezvous point's limits (defaults: the spec's recommendations)."""

    max_namespace_length: int = MAX_NAMESPACE_LENGTH
    default_ttl: int = DEFAULT_TTL
    min_ttl: int = MIN_TTL
    max_ttl: int = MAX_TTL
    max_registrations_per_peer: int = MAX_REGISTRATIONS_PER_PEER
    max_discover_limit: int = MAX_DISCOVER_LIMIT
    max_registrations: int = MAX_REGISTRATIONS
    max_signed_record_size: int = MAX_SIGNED_RECORD_SIZE
    max_response_size: int = MAX_MESSAGE_SIZE


@dataclass(frozen=True, slots=True)
class Registration:
    namespace: str
    peer: PeerId
    signed_record: bytes
    expires: float
    counter: int


class RendezvousRegistry:
    """Registrations by namespace and peer; every operation takes ``now`` (seconds, any monotonic origin)."""

    def __init__(self, limits: RendezvousLimits | None = None, *, nonce: bytes | None = None) -> None:
        self.limits = limits or RendezvousLimits()
        self.nonce = nonce if nonce is not None else os.urandom(_COOKIE_NONCE_LEN)
        if len(self.nonce) != _COOKIE_NONCE_LEN:
            raise ValueError(f"cookie nonce must be {_COOKIE_NONCE_LEN} bytes")
        # namespace → peer → registration; each inner dict is kept in counter order (a refresh re-inserts).
        self._by_ns: dict[str, dict[PeerId, Registration]] = {}
        self._per_peer: dict[PeerId, int] = {}
        self._expiry: list[tuple[float, int, str, PeerId]] = []
        self._counter = 0
        self._total = 0

    # -- queries -----------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._total

    def registrations(self, namespace: str) -> list[Registration]:
        return list(self._by_ns.get(namespace, {}).values())

    def count_for_peer(self, peer: PeerId) -> int:
        return self._per_peer.get(peer, 0)

    # -- the message entry point ---------------------------------------------------------------------------------------
    def handle(self, peer: PeerId, msg: rendezvous_pb2.Message, now: float) -> rendezvous_pb2.Message | None:
        """The response to request ``msg`` from ``peer`` (None for UNREGISTER, which has none).

        Raises ProtocolViolation for a response type (REGISTER_RESPONSE, DISCOVER_RESPONSE) sent as a request.
        """
        kind = MessageType(msg.type)
        if kind == MessageType.REGISTER:
            r = msg.register
            status, text, ttl = self.register(
                peer, r.ns, r.signedPeerRecord, r.ttl if r.HasField("ttl") else None, now
            )
            return register_response(status, text, ttl)
        if kind == MessageType.UNREGISTER:
            self.unregister(peer, msg.unregister.ns)
            return None
        if kind == MessageType.DISCOVER:
            d = msg.discover
            return self.discover(d.ns, d.limit, d.cookie, now)
        raise ProtocolViolation(f"{kind.name} is not a request", protocol=PROTOCOL_ID, peer=peer)

    # -- REGISTER ---------------------------------------------------------------------------------------------------------
    def _check_namespace(self, namespace: str) -> str | None:
        n = len(namespace.encode())
        if n == 0:
            return "empty namespace"
        if n > self.limits.max_namespace_length:
            return f"namespace of {n} bytes exceeds {self.limits.max_namespace_length}"
        return None

    def register(
        self, peer: PeerId, namespace: str, signed_record: bytes, ttl: int | None, now: float
    ) -> tuple[Status, str, int]:
        """Register ``peer``; returns ``(status, status text, granted ttl)``."""
        lim = self.limits
        self.expire(now)
        bad_ns = self._check_namespace(namespace)
        if bad_ns:
            return Status.E_INVALID_NAMESPACE, bad_ns, 0
        granted = lim.default_ttl if ttl is None or ttl == 0 else ttl
        if not lim.min_ttl <= granted <= lim.max_ttl:
            return Status.E_INVALID_TTL, f"ttl {granted} s outside [{lim.min_ttl}, {lim.max_ttl}]", 0
        if not signed_record or len(signed_record) > lim.max_signed_record_size:
            return Status.E_INVALID_SIGNED_PEER_RECORD, "signed peer record missing or too large", 0
        try:
            record, _env = open_signed_peer_record(signed_record)
        except Libp2pError as e:
            return Status.E_INVALID_SIGNED_PEER_RECORD, str(e), 0
        if record.peer_id != peer:
            # Only the peer on the stream may register itself (spec §The Protocol).
            return Status.E_NOT_AUTHORIZED, "the signed peer record is not the registering peer's", 0
        regs = self._by_ns.get(namespace)
        existing = regs.get(peer) if regs is not None else None
        if existing is None:
            if self._per_peer.get(peer, 0) >= lim.max_registrations_per_peer:
                return Status.E_NOT_AUTHORIZED, f"more than {lim.max_registrations_per_peer} registrations", 0
            if self._total >= lim.max_registrations:
                return Status.E_UNAVAILABLE, "the rendezvous point is full", 0
        self._counter += 1
        reg = Registration(namespace, peer, bytes(signed_record), now + granted, self._counter)
        if regs is None:
            regs = self._by_ns[namespace] = {}
        if existing is not None:
            del regs[peer]  # re-insert at the end: the dict stays in counter order
        else:
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
            self._total += 1
        regs[peer] = reg
        heapq.heappush(self._expiry, (reg.expires, reg.counter, namespace, peer))
        return Status.OK, "", granted

    # -- UNREGISTER -------------------------------------------------------------------------------------------------------
    def unregister(self, peer: PeerId, namespace: str) -> bool:
        """Remove ``peer`` from ``namespace`` (a no-op when it is not registered there)."""
        regs = self._by_ns.get(namespace)
        if regs is None or peer not in regs:
            return False
        self._remove(namespace, peer)
        return True

    def _remove(self, namespace: str, peer: PeerId) -> None:
        regs = self._by_ns[namespace]
        del regs[peer]
        if not regs:
            del self._by_ns[namespace]
        left = self._per_peer[peer] - 1
        if left:
            self._per_peer[peer] = left
        else:
            del self._per_peer[peer]
        self._total -= 1

    # -- expiry -----------------------------------------------------------------------------------------------------------
    def expire(self, now: float) -> int:
        """Drop registrations whose TTL ran out; returns how many."""
        dropped = 0
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, counter, ns, peer = heapq.heappop(heap)
            reg = self._by_ns.get(ns, {}).get(peer)
            if reg is not None and reg.counter == counter:  # else superseded by a refresh or unregistered
                self._remove(ns, peer)
                dropped += 1
        return dropped

    # -- DISCOVER ---------------------------------------------------------------------------------------------------------
    def make_cookie(self, counter: int, namespace: str) -> bytes:
        return _COOKIE_HEAD.pack(self.nonce, counter) + namespace.encode()

    def _parse_cookie(self, cookie: bytes, namespace: str) -> int | None:
        if len(cookie) < _COOKIE_HEAD.size:
            return None
        nonce, counter = _COOKIE_HEAD.unpack_from(cookie)
        if nonce != self.nonce or cookie[_COOKIE_HEAD.size :] != namespace.encode():
            return None
        return int(counter)

    def _candidates(self, namespace: str) -> Iterator[Registration]:
        if namespace:
            yield from self._by_ns.get(namespace, {}).values()
        else:
            yield from heapq.merge(*(d.values() for d in self._by_ns.values()), key=lambda r: r.counter)

    def discover(self, namespace: str, limit: int, cookie: bytes, now: float) -> rendezvous_pb2.Message:
        """The DISCOVER_RESPONSE for a query (``namespace`` "" means every namespace)."""
        lim = self.limits
        self.expire(now)
        if namespace:
            bad_ns = self._check_namespace(namespace)
            if bad_ns:
                return discover_response((), status=Status.E_INVALID_NAMESPACE, text=bad_ns)
        after = 0
        if cookie:
            parsed = self._parse_cookie(cookie, namespace)
            if parsed is None:
                return discover_response((), status=Status.E_INVALID_COOKIE, text="unknown cookie")
            after = parsed
        limit = lim.max_discover_limit if limit <= 0 else min(limit, lim.max_discover_limit)
        out: list[tuple[str, bytes, int]] = []
        budget = lim.max_response_size - 64 - len(cookie) - len(namespace.encode())
        last = after
        for reg in self._candidates(namespace):
            if reg.counter <= after or reg.expires <= now:
                continue
            if len(out) >= limit:
                break
            cost = len(reg.signed_record) + len(reg.namespace.encode()) + _REGISTRATION_OVERHEAD
            if cost > budget:
                break  # the response would exceed the message cap; the cookie resumes here
            budget -= cost
            out.append((reg.namespace, reg.signed_record, max(1, math.ceil(reg.expires - now))))
            last = reg.counter
        return discover_response(out, self.make_cookie(last, namespace))
