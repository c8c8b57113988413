"""mDNS peer discovery on the local network (``_p2p._udp.local``), built on python-zeroconf.

Spec: https://github.com/libp2p/specs/blob/master/discovery/mdns.md. Each host registers the DNS-SD instance
``<peer-name>._p2p._udp.local``, where peer-name is a random string of :data:`PEER_NAME_LENGTH` lowercase
alphanumerics (not the peer ID, which may not fit a DNS label), with one TXT string ``dnsaddr=<ma>/p2p/<id>``
per advertised address. zeroconf answers PTR queries for the service (its own too) with the TXT record among
the additional records, and its browser queries the service and reports instances; :class:`MdnsDiscovery`
reads their TXT records, keeps a bounded table of the peers seen, calls ``on_peer_found`` and can dial them.

mDNS has no namespaces: the host is announced from :meth:`MdnsDiscovery.start` on, ``advertise`` only reports
that, and ``find_peers`` yields the peers seen whatever the namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from ...crypto.peer_id import PeerId
from ...exceptions import DeadlineExceeded, Libp2pError
from ...multiaddr import Multiaddr
from .. import DEFAULT_TTL, PeerInfo

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

    from ...host.host import Host

__all__ = [
    "MAX_PEERS",
    "PEER_NAME_LENGTH",
    "SERVICE_NAME",
    "MdnsDiscovery",
    "decode_txt",
    "encode_txt",
    "make_peer_name",
    "peers_from_txt",
]

log = logging.getLogger(__name__)

SERVICE_NAME: Final = "_p2p._udp.local."
"""The DNS-SD service every libp2p peer registers (a private network uses ``_p2p-<fingerprint>._udp``)."""
PEER_NAME_LENGTH: Final = 32
"""Length of the random instance name (the spec asks for at least 32 lowercase alphanumerics)."""
DNSADDR_PREFIX: Final = "dnsaddr="
MAX_TXT_STRING: Final = 255
"""A DNS character-string holds at most 255 bytes; longer addresses are not announced."""
MAX_ANNOUNCED_ADDRS: Final = 32
"""Addresses announced at most (keeps the response within one mDNS packet)."""
MAX_ADDRS_PER_PEER: Final = 32
"""Addresses taken from one peer's TXT record."""
MAX_PEERS: Final = 1024
"""Peers remembered; the oldest is forgotten beyond it."""
START_TIMEOUT: Final = 10.0
"""Seconds for registering the instance (zeroconf probes the name for about 1 s first)."""
CLOSE_TIMEOUT: Final = 3.0
"""Seconds for the goodbye packets and closing zeroconf."""
RESOLVE_TIMEOUT: Final = 2.0
"""Seconds to ask for a TXT record that did not come with the PTR answer."""
CONNECT_TIMEOUT: Final = 5.0
"""Seconds for one auto-connect dial."""
MAX_PENDING_CONNECTS: Final = 16
"""Auto-connect dials in flight at most; peers found beyond it are reported but not dialed."""

_ALPHABET: Final = string.ascii_lowercase + string.digits


def make_peer_name(length: int = PEER_NAME_LENGTH) -> str:
    """A random lowercase alphanumeric instance name."""
    if not 32 <= length <= 63:
        raise ValueError("a peer name has 32 to 63 characters (one DNS label)")
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def encode_txt(peer_id: PeerId, addrs: Iterable[Multiaddr]) -> bytes:
    """The TXT RDATA: one ``dnsaddr=<ma>/p2p/<id>`` character-string per address (those that fit)."""
    out = bytearray()
    n = 0
    for a in addrs:
        if a.has_protocol("p2p-circuit"):
            continue  # relayed addresses are not reachable on the local network by definition
        s = (DNSADDR_PREFIX + str(a.with_peer_id(str(peer_id)))).encode()
        if len(s) > MAX_TXT_STRING or n >= MAX_ANNOUNCED_ADDRS:
            continue
        out += bytes([len(s)]) + s
        n += 1
    return bytes(out) or b"\x00"  # an empty TXT record is one empty string (RFC 6763 §6.1)


def decode_txt(rdata: bytes) -> list[bytes]:
    """Split TXT RDATA into its character-strings (a truncated last string is dropped)."""
    out = []
    pos = 0
    while pos < len(rdata):
        n = rdata[pos]
        if pos + 1 + n > len(rdata):
            break
        out.append(rdata[pos + 1 : pos + 1 + n])
        pos += 1 + n
    return out


def peers_from_txt(strings: Iterable[bytes]) -> dict[PeerId, list[Multiaddr]]:
    """Peers and their addresses (without ``/p2p``) from ``dnsaddr=`` strings; anything else is ignored."""
    peers: dict[PeerId, list[Multiaddr]] = {}
    prefix = DNSADDR_PREFIX.encode()
    for s in strings:
        if not s.lower().startswith(prefix):
            continue
        try:
            ma, pid_text = Multiaddr(s[len(prefix) :].decode()).split_peer_id()
            if pid_text is None:
                continue
            pid = PeerId.from_string(pid_text)
        except (Libp2pError, ValueError, UnicodeDecodeError):
            continue
        addrs = peers.setdefault(pid, [])
        if len(addrs) < MAX_ADDRS_PER_PEER and ma not in addrs:
            addrs.append(ma)
    return peers


def _ip_version(interfaces: Sequence[str] | None) -> Any:
    from zeroconf import IPVersion

    if interfaces is None:
        return IPVersion.V4Only  # zeroconf's own default for InterfaceChoice.All
    v6 = [":" in i for i in interfaces]
    return IPVersion.V6Only if all(v6) else IPVersion.V4Only if not any(v6) else IPVersion.All


class MdnsDiscovery:
    """mDNS for ``host``: announce it and find the peers on the local network.

    ``interfaces`` are the local IP addresses to use (None: every interface); tests pass ``["127.0.0.1"]``.
    ``on_peer_found(info)`` runs for each peer seen for the first time or with new addresses (never for the
    host itself); ``auto_connect`` dials such peers when not connected already.
    """

    def __init__(
        self,
        host: Host,
        *,
        interfaces: Sequence[str] | None = None,
        service_name: str = SERVICE_NAME,
        peer_name: str | None = None,
        on_peer_found: Callable[[PeerInfo], object] | None = None,
        auto_connect: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.host = host
        self.interfaces = list(interfaces) if interfaces is not None else None
        self.service_name = service_name
        self.peer_name = peer_name or make_peer_name()
        self.on_peer_found = on_peer_found
        self.auto_connect = auto_connect
        self.connect_timeout = connect_timeout
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._peers: dict[PeerId, PeerInfo] = {}
        self._by_instance: dict[str, set[PeerId]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connecting: set[PeerId] = set()
        self._changed = asyncio.Event()

    @property
    def instance_name(self) -> str:
        return f"{self.peer_name}.{self.service_name}"

    # -- lifecycle ------------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Register the host's instance (bounded by :data:`START_TIMEOUT`) and start browsing."""
        try:
            from zeroconf import InterfaceChoice
            from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf
        except ImportError as e:
            raise ImportError("mDNS discovery needs zeroconf: pip install 'aiolibp2p[mdns]'") from e

        if self._zc is not None:
            return
        self._zc = AsyncZeroconf(
            interfaces=self.interfaces if self.interfaces is not None else InterfaceChoice.All,
            ip_version=_ip_version(self.interfaces),
        )
        info = AsyncServiceInfo(
            self.service_name,
            self.instance_name,
            port=self._port(),
            properties=encode_txt(self.host.peer_id, self.host.advertised_addrs()),
            server=f"{self.peer_name}.local.",
        )
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await (await self._zc.async_register_service(info))
        except TimeoutError:
            await self.close()
            raise DeadlineExceeded("mdns registration", START_TIMEOUT) from None
        except BaseException:
            await self.close()
            raise
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, self.service_name, handlers=[self._on_service])

    def _port(self) -> int:
        for a in self.host.advertised_addrs():
            for proto in ("tcp", "udp"):
                v = a.value_for_protocol(proto)
                if v is not None:
                    return int(v)
        return 0

    async def close(self) -> None:
        zc, self._zc = self._zc, None
        browser, self._browser = self._browser, None
        for t in list(self._tasks):
            t.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if browser is not None:
                    await browser.async_cancel()
                if zc is not None:
                    await zc.async_close()  # sends the goodbyes of our instance

    async def __aenter__(self) -> MdnsDiscovery:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- what the browser reports --------------------------------------------------------------------------------------
    def _on_service(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        from zeroconf import ServiceInfo, ServiceStateChange

        if name.lower() == self.instance_name.lower():
            return  # our own answer
        if state_change is ServiceStateChange.Removed:
            for pid in self._by_instance.pop(name, set()):
                self._peers.pop(pid, None)
            return
        info = ServiceInfo(service_type, name)
        info.load_from_cache(zeroconf)
        if info.text:
            self._consume(name, info.text)
        else:
            self._spawn(self._resolve(zeroconf, service_type, name))

    async def _resolve(self, zeroconf: Any, service_type: str, name: str) -> None:
        from zeroconf.asyncio import AsyncServiceInfo

        info = AsyncServiceInfo(service_type, name)
        # Incomplete (no SRV/A) is fine: the TXT record is all libp2p needs.
        await info.async_request(zeroconf, int(RESOLVE_TIMEOUT * 1000))
        if info.text:
            self._consume(name, info.text)

    def _consume(self, instance: str, rdata: bytes) -> None:
        found = peers_from_txt(decode_txt(rdata))
        found.pop(self.host.peer_id, None)
        self._by_instance[instance] = set(found)
        for pid, addrs in found.items():
            info = PeerInfo(pid, tuple(addrs))
            if self._peers.get(pid) == info:
                continue
            self._peers.pop(pid, None)
            if len(self._peers) >= MAX_PEERS:
                self._peers.pop(next(iter(self._peers)))
            self._peers[pid] = info
            self._changed.set()
            if self.on_peer_found is not None:
                try:
                    self.on_peer_found(info)
                except Exception:  # a user callback must not break discovery
                    log.exception("mdns on_peer_found callback failed")
            if self.auto_connect:
                self._maybe_connect(info)

    def _maybe_connect(self, info: PeerInfo) -> None:
        if (
            info.peer_id in self._connecting
            or len(self._connecting) >= MAX_PENDING_CONNECTS
            or self.host.connections(info.peer_id)
        ):
            return
        self._connecting.add(info.peer_id)

        async def dial() -> None:
            try:
                await self.host.connect(list(info.addrs), peer=info.peer_id, timeout=self.connect_timeout)
            except (Libp2pError, OSError) as e:
                log.debug("mdns auto-connect to %s failed: %r", info.peer_id, e)
            finally:
                self._connecting.discard(info.peer_id)

        self._spawn(dial())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the Discovery interface ------------------------------------------------------------------------------------------
    def peers(self) -> list[PeerInfo]:
        """The peers seen so far (and not said goodbye)."""
        return list(self._peers.values())

    async def wait_for_peers(self, n: int, timeout: float) -> list[PeerInfo]:
        """Wait (at most ``timeout`` s) until ``n`` peers have been seen; returns those seen."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(self._peers) < n:
                    self._changed.clear()
                    await self._changed.wait()
        return self.peers()

    async def advertise(self, namespace: str, *, ttl: float = DEFAULT_TTL) -> float:
        """mDNS has no namespaces: the host is announced while started. Returns ``ttl``."""
        if self._zc is None:
            await self.start()
        return ttl

    async def find_peers(self, namespace: str, *, limit: int = 0) -> AsyncIterator[PeerInfo]:
        """The peers seen so far (whatever ``namespace``), at most ``limit``."""
        for i, info in enumerate(self.peers()):
            if limit > 0 and i >= limit:
                return
            yield info
