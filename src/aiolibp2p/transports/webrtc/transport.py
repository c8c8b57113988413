"""The WebRTC-direct transport (libp2p ``webrtc/webrtc-direct.md``):
``/ip4|ip6/<ip>/udp/<port>/webrtc-direct/certhash/<multibase multihash>/p2p/<id>``.

A *capable* transport: connections arrive authenticated (Noise over data channel 0, bound to both DTLS
certificates) and multiplexed (one SCTP data channel per stream), so the swarm skips the upgrader.

There is no SDP here: the parameters that the spec's SDP munging puts into a browser's session descriptions
are applied directly: the dialer invents the ufrag/pwd (v1), takes the listener's fingerprint from
``/certhash`` and its address from the multiaddr; the listener (ICE-lite, one shared UDP port) reads the ufrag
from the STUN USERNAME and accepts any client certificate, which Noise then authenticates.

Engine: aiortc's SCTP (pure Python) over our own ICE-lite/STUN (aioice's codec) and DTLS (OpenSSL through
pyOpenSSL). ``aiolibdatachannel`` (libdatachannel) needs Python ≥ 3.12, above this project's floor (3.11),
so it was not an option; see ``docs/concepts/transports.md``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ...core.interfaces import Direction
from ...crypto.keys import PrivateKey
from ...crypto.peer_id import PeerId
from ...exceptions import DecodeError, DialError, MultiaddrError
from ...multiaddr import Multiaddr
from ...security.noise.handshake import NoiseHandshake, sign_static_key, x25519_public_bytes
from .certificate import WebRtcCertificate, certhash_to_fingerprint
from .config import WebRtcDirectConfig

if TYPE_CHECKING:
    from . import ice
    from .connection import WebRtcConnection
    from .endpoint import WebRtcEndpoint

__all__ = ["WebRtcDirectListener", "WebRtcDirectTransport", "parse_webrtc_direct_multiaddr"]

log = logging.getLogger(__name__)

CapableHandler = Callable[["WebRtcConnection"], Awaitable[None]]


def parse_webrtc_direct_multiaddr(
    addr: Multiaddr, *, need_certhash: bool = True
) -> tuple[str, int, list[bytes]]:
    """``(ip, port, [fingerprint…])`` of ``/ip4|ip6/<ip>/udp/<port>/webrtc-direct[/certhash/<h>…][/p2p/<id>]``.

    Raises MultiaddrError for another shape or a certhash that is not sha2-256."""
    items = addr.items()
    if items and items[-1][0] == "p2p":
        items = items[:-1]
    if (
        len(items) < 3
        or items[0][0] not in ("ip4", "ip6")
        or items[1][0] != "udp"
        or items[2][0] != "webrtc-direct"
    ):
        raise MultiaddrError(f"not a WebRTC-direct address: {addr}")
    fps: list[bytes] = []
    for name, value in items[3:]:
        if name != "certhash" or value is None:
            raise MultiaddrError(f"not a WebRTC-direct address: {addr}")
        try:
            fps.append(certhash_to_fingerprint(value))
        except DecodeError as e:
            raise MultiaddrError(f"unusable certhash in {addr}: {e}") from None
    if need_certhash and not fps:
        raise MultiaddrError(f"a WebRTC-direct address to dial needs a /certhash: {addr}")
    host, port = items[0][1], items[1][1]
    assert host is not None and port is not None
    return host, int(port), fps


class WebRtcDirectListener:
    def __init__(self, transport: WebRtcDirectTransport, endpoint: WebRtcEndpoint) -> None:
        self._transport = transport
        self.endpoint = endpoint

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        if self.endpoint.closed:
            return []
        from .endpoint import webrtc_multiaddr

        return [webrtc_multiaddr(self.endpoint.local_sockaddr, self._transport.certificate.certhash)]

    async def close(self) -> None:
        """Stop accepting; connections already accepted stay up (the socket closes with the last one)."""
        ep = self.endpoint
        ep.accepting = False
        self._transport._listening.pop(ep, None)
        if ep.num_connections == 0:
            ep.close()


class WebRtcDirectTransport:
    """Dials and listens on WebRTC-direct; connections come out secured and multiplexed."""

    name = "webrtc-direct"
    capable = True

    def __init__(self, private_key: PrivateKey, config: WebRtcDirectConfig | None = None) -> None:
        self.config = config or WebRtcDirectConfig()
        self._key = private_key
        self.local_peer = PeerId.from_public_key(private_key.public_key)
        if self.config.certificate_file is not None:
            self.certificate = WebRtcCertificate.load_or_create(self.config.certificate_file)
        else:
            self.certificate = WebRtcCertificate.generate()
        self._static_key = X25519PrivateKey.generate()
        self._identity_sig = sign_static_key(private_key, x25519_public_bytes(self._static_key))
        self._listening: dict[WebRtcEndpoint, CapableHandler] = {}
        self._endpoints: set[WebRtcEndpoint] = set()
        self._dialing: dict[bool, WebRtcEndpoint] = {}  # IPv6? -> the shared dial-only socket
        self._tasks: set[asyncio.Task[None]] = set()
        self.accept_filter: Callable[[Multiaddr], bool] | None = None
        """Asked with a new remote's address at its first STUN check, before any handshake work (the swarm sets
        its gater's ``allow_accept``, as go-libp2p calls ``InterceptAccept`` per STUN check); a refused remote
        is dropped silently and its dial runs into its timeout."""
        self.stats_gated = 0

    # -- addresses ----------------------------------------------------------------------------------------------
    def can_dial(self, addr: Multiaddr) -> bool:
        try:
            parse_webrtc_direct_multiaddr(addr)
        except MultiaddrError:
            return False
        return True

    def can_listen(self, addr: Multiaddr) -> bool:
        try:
            parse_webrtc_direct_multiaddr(addr, need_certhash=False)
        except MultiaddrError:
            return False
        return True

    # -- plumbing ------------------------------------------------------------------------------------------------
    def _noise(self, *, is_initiator: bool, expected_peer: PeerId | None, prologue: bytes) -> NoiseHandshake:
        return NoiseHandshake(
            self._key,
            is_initiator=is_initiator,
            static_key=self._static_key,
            identity_sig=self._identity_sig,
            expected_peer=expected_peer,
            prologue=prologue,
        )

    async def _new_endpoint(self, host: str, port: int) -> WebRtcEndpoint:
        from .endpoint import WebRtcEndpoint

        ep = WebRtcEndpoint(self.config, self._accept, self._endpoints.discard)
        await ep.bind(host, port)
        self._endpoints.add(ep)
        return ep

    def _accept(
        self, ep: WebRtcEndpoint, addr: tuple[Any, ...], creds: ice.IceCredentials
    ) -> WebRtcConnection | None:
        handler = self._listening.get(ep)
        if handler is None:
            return None
        from .connection import WebRtcConnection
        from .endpoint import webrtc_multiaddr

        remote_addr = webrtc_multiaddr(addr)
        if self.accept_filter is not None and not self.accept_filter(remote_addr):
            self.stats_gated += 1
            return None
        conn = WebRtcConnection(
            ep,
            certificate=self.certificate,
            noise_factory=self._noise,
            config=self.config,
            direction=Direction.INBOUND,
            remote_sockaddr=addr,
            credentials=creds,
            local_addr=webrtc_multiaddr(ep.local_sockaddr),
            remote_addr=remote_addr,
        )
        conn.start()

        async def run() -> None:
            try:
                await conn.wait_handshake(self.config.handshake_timeout)
            except BaseException as e:
                conn.abort(e if isinstance(e, Exception) else None)
                if not isinstance(e, Exception):
                    raise
                log.debug("inbound WebRTC-direct handshake from %s failed: %r", addr, e)
                return
            await handler(conn)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return conn

    # -- listening -----------------------------------------------------------------------------------------------
    async def listen(self, addr: Multiaddr, handler: CapableHandler) -> WebRtcDirectListener:
        host, port, _ = parse_webrtc_direct_multiaddr(addr, need_certhash=False)
        ep = await self._new_endpoint(host, port)
        ep.accepting = True
        self._listening[ep] = handler
        return WebRtcDirectListener(self, ep)

    async def _endpoint_for_dial(self, sockaddr: tuple[Any, ...]) -> WebRtcEndpoint:
        """The socket a dial to ``sockaddr`` is made from: the family's shared dial-only socket, or a new one
        when that socket already has a connection to this remote address (the address is what routes DTLS).

        Never a listening socket, as go-libp2p and js-libp2p never dial from theirs: two hosts dialing each
        other at the same moment from their listening sockets would put two connections on one address pair,
        and UDP routes by address, so each side's checks reached its own dial and both dials timed out."""
        v6 = ":" in sockaddr[0]
        shared = self._dialing.get(v6)
        if shared is not None and not shared.closed and not shared.has_connection_to(sockaddr):
            return shared
        ep = await self._new_endpoint("::" if v6 else "0.0.0.0", 0)
        if shared is None or shared.closed:
            self._dialing[v6] = ep
        return ep

    # -- dialing -------------------------------------------------------------------------------------------------
    async def dial(self, addr: Multiaddr, peer: PeerId | None = None) -> WebRtcConnection:
        """ICE, DTLS (checking ``/certhash``), SCTP, Noise. ``peer`` (or the address's /p2p) must match the
        Noise identity (PeerIdMismatch); a listener whose certificate is not the certhash fails the dial."""
        host, port, fps = parse_webrtc_direct_multiaddr(addr)
        if self.config.dial_version not in (1, 2):
            raise DialError(f"unknown WebRTC-direct version {self.config.dial_version}")
        if peer is None:
            pid = addr.get_peer_id()
            peer = PeerId.from_string(pid) if pid is not None else None
        sockaddr: tuple[Any, ...] = (host, port, 0, 0) if ":" in host else (host, port)
        try:
            ep = await self._endpoint_for_dial(sockaddr)
        except OSError as e:
            raise DialError(f"cannot open a UDP socket to dial {addr}: {e}") from e
        from . import ice
        from .connection import WebRtcConnection
        from .endpoint import webrtc_multiaddr

        conn = WebRtcConnection(
            ep,
            certificate=self.certificate,
            noise_factory=self._noise,
            config=self.config,
            direction=Direction.OUTBOUND,
            remote_sockaddr=sockaddr,
            credentials=(
                ice.IceCredentials.for_dial_v2()
                if self.config.dial_version == 2
                else ice.IceCredentials.for_dial_v1()
            ),
            local_addr=webrtc_multiaddr(ep.local_sockaddr),
            remote_addr=addr.split_peer_id()[0],
            expected_fingerprint=fps[0],
            expected_peer=peer,
        )
        ep.add(sockaddr, conn)
        conn.start()
        try:
            await conn.wait_handshake(self.config.handshake_timeout)
        except BaseException as e:
            # failed, timed out, or cancelled (a dial that lost a happy-eyeballs race): never leave a connection
            # behind that keeps sending checks
            conn.abort(e if isinstance(e, Exception) else None)
            raise
        return conn

    async def close(self) -> None:
        for ep in list(self._endpoints):
            ep.close()
        for t in list(self._tasks):
            t.cancel()
