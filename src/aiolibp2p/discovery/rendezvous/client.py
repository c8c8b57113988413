"""A rendezvous client: REGISTER / UNREGISTER / DISCOVER against one rendezvous point, and the
:class:`~aiolibp2p.discovery.Discovery` interface on top (advertise keeps the registration refreshed;
find_peers pages through the registrations with cookies).

Spec: https://github.com/libp2p/specs/blob/master/rendezvous/README.md. Each request uses its own stream, as
go does. Registrations received are verified (signature, and the record's peer is the signer) before they
are reported; an invalid one is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ...crypto.peer_id import PeerId
from ...crypto.peer_record import PeerRecord, make_signed_peer_record, open_signed_peer_record
from ...exceptions import Libp2pError, ProtocolViolation
from ...multiaddr import Multiaddr
from ...network.connection import Stream
from ...wire.pb import rendezvous_pb2
from .. import DEFAULT_TTL, PeerInfo
from .codec import (
    MAX_MESSAGE_SIZE,
    PROTOCOL_ID,
    MessageReader,
    MessageType,
    RendezvousError,
    Status,
    discover_message,
    encode_message,
    register_message,
    unregister_message,
)
from .registry import MAX_DISCOVER_LIMIT

if TYPE_CHECKING:
    from ...host.host import Host

__all__ = [
    "MAX_DISCOVER_PAGES",
    "REFRESH_FRACTION",
    "REFRESH_RETRY_DELAY",
    "REQUEST_TIMEOUT",
    "DiscoveredRegistration",
    "RendezvousClient",
]

log = logging.getLogger(__name__)

REQUEST_TIMEOUT: Final = 10.0
"""Seconds for one request: opening the stream, sending, and reading the response."""
REFRESH_FRACTION: Final = 0.875
"""An advertisement is re-registered after this fraction of the granted TTL."""
REFRESH_RETRY_DELAY: Final = 10.0
"""Seconds before retrying a failed refresh (capped by what is left of the TTL)."""
MAX_DISCOVER_PAGES: Final = 1000
"""Pages one find_peers call requests at most (a bound against a server whose cookie never ends)."""


@dataclass(frozen=True, slots=True)
class DiscoveredRegistration:
    """A verified registration from a DISCOVER_RESPONSE."""

    namespace: str
    peer_id: PeerId
    addrs: tuple[Multiaddr, ...]
    ttl: int
    record: PeerRecord
    signed_record: bytes

    @property
    def info(self) -> PeerInfo:
        return PeerInfo(self.peer_id, self.addrs)


def _parse_addrs(raw: Iterable[bytes]) -> tuple[Multiaddr, ...]:
    out = []
    for a in raw:
        with contextlib.suppress(Libp2pError):
            out.append(Multiaddr.from_bytes(a))
    return tuple(out)


class RendezvousClient:
    """Talks to the rendezvous point ``server`` (its ``addrs``, if given, go to the peer store)."""

    def __init__(
        self,
        host: Host,
        server: PeerId | str,
        *,
        addrs: Iterable[Multiaddr] = (),
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.host = host
        self.server = PeerId.from_string(server) if isinstance(server, str) else server
        if addrs:
            host.peerstore.add_addrs(self.server, list(addrs))
        self.timeout = timeout
        self._refresh: dict[str, asyncio.Task[None]] = {}

    # -- one request ------------------------------------------------------------------------------------------------
    async def _request(
        self, msg: rendezvous_pb2.Message, expect: MessageType | None
    ) -> rendezvous_pb2.Message | None:
        async with asyncio.timeout(self.timeout):
            stream = await self.host.new_stream(self.server, [PROTOCOL_ID], timeout=self.timeout)
            try:
                await stream.write(encode_message(msg))
                resp = await self._read_response(stream, expect) if expect is not None else None
                await stream.close()
            except BaseException:
                await stream.reset()
                raise
            return resp

    async def _read_response(self, stream: Stream, expect: MessageType) -> rendezvous_pb2.Message:
        reader = MessageReader(MAX_MESSAGE_SIZE)
        while True:
            data = await stream.read(65536)
            if not data:
                raise ProtocolViolation(
                    f"rendezvous point closed the stream before {expect.name}",
                    protocol=PROTOCOL_ID,
                    peer=self.server,
                )
            msgs = reader.feed(data)
            if msgs:
                if int(msgs[0].type) != int(expect):
                    raise ProtocolViolation(
                        f"expected {expect.name}, got message type {msgs[0].type}",
                        protocol=PROTOCOL_ID,
                        peer=self.server,
                    )
                return msgs[0]

    def _signed_record(self) -> bytes:
        return make_signed_peer_record(
            self.host.private_key, [a.to_bytes() for a in self.host.advertised_addrs()]
        )

    # -- the protocol ---------------------------------------------------------------------------------------------------
    async def register(self, namespace: str, ttl: int | None = None) -> int:
        """Register the host under ``namespace``; returns the TTL granted (s). Raises RendezvousError."""
        resp = await self._request(
            register_message(namespace, self._signed_record(), ttl), MessageType.REGISTER_RESPONSE
        )
        assert resp is not None
        r = resp.registerResponse
        if int(r.status) != Status.OK:
            raise RendezvousError(r.status, r.statusText, peer=self.server)
        return int(r.ttl)

    async def unregister(self, namespace: str) -> None:
        """Cancel the registration under ``namespace`` and stop refreshing it (UNREGISTER has no response)."""
        task = self._refresh.pop(namespace, None)
        if task is not None:
            task.cancel()
        await self._request(unregister_message(namespace), None)

    async def discover(
        self, namespace: str = "", limit: int = 0, cookie: bytes = b""
    ) -> tuple[list[DiscoveredRegistration], bytes]:
        """One DISCOVER: the registrations after ``cookie`` (at most ``limit``; 0: the server's maximum) and the
        cookie to continue from. ``namespace`` "" asks for every namespace. Raises RendezvousError."""
        resp = await self._request(discover_message(namespace, limit, cookie), MessageType.DISCOVER_RESPONSE)
        assert resp is not None
        r = resp.discoverResponse
        if int(r.status) != Status.OK:
            raise RendezvousError(r.status, r.statusText, peer=self.server)
        out: list[DiscoveredRegistration] = []
        for reg in r.registrations:
            if namespace and reg.ns != namespace:
                log.debug("rendezvous point %s returned namespace %r for %r", self.server, reg.ns, namespace)
                continue
            try:
                record, _env = open_signed_peer_record(reg.signedPeerRecord)
            except Libp2pError as e:
                log.debug("rendezvous point %s returned a bad record: %r", self.server, e)
                continue
            out.append(
                DiscoveredRegistration(
                    reg.ns,
                    record.peer_id,
                    _parse_addrs(record.addrs),
                    int(reg.ttl),
                    record,
                    reg.signedPeerRecord,
                )
            )
        return out, r.cookie

    # -- the Discovery interface ---------------------------------------------------------------------------------------
    async def advertise(self, namespace: str, *, ttl: float = DEFAULT_TTL) -> float:
        """Register under ``namespace`` and keep the registration refreshed until :meth:`unregister` or
        :meth:`close`; returns the TTL granted."""
        want = max(1, math.ceil(ttl))
        granted = await self.register(namespace, want)
        old = self._refresh.pop(namespace, None)
        if old is not None:
            old.cancel()
        task = asyncio.ensure_future(self._keep_registered(namespace, want, granted))
        self._refresh[namespace] = task
        return float(granted)

    async def _keep_registered(self, namespace: str, want: int, granted: int) -> None:
        loop = asyncio.get_running_loop()
        delay = granted * REFRESH_FRACTION
        expires = loop.time() + granted
        while True:
            await asyncio.sleep(delay)
            try:
                granted = await self.register(namespace, want)
            except (Libp2pError, OSError) as e:
                left = expires - loop.time()
                delay = min(REFRESH_RETRY_DELAY, max(left / 2, 0.05)) if left > 0 else REFRESH_RETRY_DELAY
                log.debug("rendezvous refresh of %r at %s failed: %r", namespace, self.server, e)
                continue
            expires = loop.time() + granted
            delay = granted * REFRESH_FRACTION

    async def find_peers(self, namespace: str, *, limit: int = 0) -> AsyncIterator[PeerInfo]:
        """Every live registration under ``namespace``, paged with cookies (at most ``limit``; 0: all)."""
        cookie = b""
        sent = 0
        for _page in range(MAX_DISCOVER_PAGES):
            want = MAX_DISCOVER_LIMIT if limit <= 0 else min(MAX_DISCOVER_LIMIT, limit - sent)
            regs, next_cookie = await self.discover(namespace, want, cookie)
            for reg in regs:
                yield reg.info
                sent += 1
            if not regs or not next_cookie or next_cookie == cookie or (limit > 0 and sent >= limit):
                return
            cookie = next_cookie

    async def close(self) -> None:
        """Stop refreshing advertisements (registrations then expire at the point)."""
        tasks = list(self._refresh.values())
        self._refresh.clear()
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
