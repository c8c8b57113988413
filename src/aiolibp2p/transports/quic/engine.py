"""The sans-I/O QUIC engine: aioquic's ``QuicConnection`` with the libp2p policies it lacks.

aioquic is a sans-I/O engine (datagrams and the time in; events and datagrams out), so the asyncio adapter
in :mod:`.connection` stays thin. This subclass adds, per ``quic/README.md`` and ``tls/tls.md``:

- mutual libp2p certificate authentication *inside* the TLS handshake: the server sends a
  CertificateRequest, both sides check the peer's single self-signed certificate with
  :func:`~aiolibp2p.security.tls.certificate.verify_certificate_chain` (CA checks off), and a bad,
  missing or unexpected certificate aborts the handshake with a TLS alert the remote sees;
- receive windows that grow only as the application reads (aioquic doubles them as data arrives,
  which lets a peer fill our memory through a stream nobody reads);
- stateless reset tokens derived from a secret and the connection ID (RFC 9000 §10.3.2), so an endpoint
  that lost a connection's state can still reset it, and detection of received stateless resets;
- a lighter handshake: the client sends key shares for X25519 and P-256 only (aioquic also makes P-384 and
  X448 shares, each a key generation per dial that no libp2p peer picks over X25519), and both sides offer
  the two SHA-256 cipher suites, AES-128-GCM first (every TLS 1.3 stack implements it, RFC 8446 §9.1; one
  transcript hash less per dial than with AES-256-GCM-SHA384 also offered);
- a dialer's first flight (TLS context, Initial keys, ClientHello) built ahead of the dial by
  :meth:`Libp2pQuicEngine.prepare`, since none of it depends on the address;
- PADDING skipped in C (``bytes.lstrip``): aioquic walks it byte by byte in Python, which costs ~1.5 ms per
  16 KiB Initial datagram on loopback (one per dial, on the listener).

aioquic internals used (pinned by the dependency bound and covered by the tests): ``tls.Context``'s
handshake-step methods and ``_request_client_certificate``, ``_host_cids``, ``_peer_cid(_available)``,
``_close_event``, ``_network_paths``, ``_close_at`` and ``_idle_timeout`` (a prepared engine's dial), the
module function ``EPOCHS`` (memoized), ``tls.pull_block``/``push_block``/``push_extension``/``push_message``
(replaced by equivalent classes), ``_replenish_connection_ids`` and ``_handshake_complete`` (spare
connection IDs issued later), the limit objects, the two ``_write_*_limits`` hooks and
``_handle_padding_frame`` (bound into the frame table at construction, so the override is what runs).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import ssl
from collections.abc import Callable
from typing import Any, Literal

from aioquic import tls as aioquic_tls
from aioquic._buffer import Buffer
from aioquic.quic import connection as aioquic_connection
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import (
    NetworkAddress,
    QuicConnection,
    QuicConnectionId,
    QuicConnectionState,
    QuicNetworkPath,
)
from aioquic.quic.packet import QuicFrameType, QuicProtocolVersion
from aioquic.quic.stream import QuicStream as _AioStream
from aioquic.tls import CipherSuite, Group
from cryptography import x509

from ...crypto.keys import PrivateKey, PublicKey
from ...crypto.peer_id import PeerId
from ...exceptions import CertificateError, PeerIdMismatch
from ...security.tls.certificate import TlsCertificate, verify_certificate_chain
from .config import ALPN, QuicConfig

__all__ = ["STATELESS_RESET_TOKEN_SIZE", "Libp2pQuicEngine", "reset_token_for", "stateless_reset_key"]

STATELESS_RESET_TOKEN_SIZE = 16
_RESET_KEY_INFO = b"libp2p quic stateless reset key"


def stateless_reset_key(host_key: PrivateKey) -> bytes:
    """A secret for stateless reset tokens, stable across restarts (go-libp2p derives it from the host
    key with HKDF-SHA256 and the same info string)."""
    prk = hmac.new(b"\x00" * 32, host_key.raw(), hashlib.sha256).digest()
    return hmac.new(prk, _RESET_KEY_INFO + b"\x01", hashlib.sha256).digest()


def reset_token_for(key: bytes, cid: bytes) -> bytes:
    return hmac.new(key, cid, hashlib.sha256).digest()[:STATELESS_RESET_TOKEN_SIZE]


_UNSET_ADDR = ("0.0.0.0", 0)  # the path of a prepared engine until its dial sets the real one

CIPHER_SUITES = [CipherSuite.AES_128_GCM_SHA256, CipherSuite.CHACHA20_POLY1305_SHA256]
"""TLS 1.3 suites offered and accepted, in preference order."""
SUPPORTED_VERSIONS = [QuicProtocolVersion.VERSION_1]
"""QUIC versions spoken: ``/quic-v1`` is RFC 9000 version 1 only (go-libp2p configures quic-go the same way).
aioquic would also derive Initial keys for version 2 on every connection, for compatible version negotiation."""
# aioquic's QuicConnection builds its frame-handler table per connection, calling EPOCHS() (a frozenset made
# from a string) 33 times: half of an engine's construction (67 -> 35 us measured), which a listener pays on
# each Initial's critical path. EPOCHS is pure and its frozensets immutable, so memoizing it changes nothing
# else, for aioquic's other users in the process included.
if not hasattr(aioquic_connection.EPOCHS, "cache_info"):
    aioquic_connection.EPOCHS = functools.cache(aioquic_connection.EPOCHS)


# aioquic's TLS writes and parses every length-prefixed block, extension and handshake message inside a
# @contextmanager generator (pull_block, push_block, push_extension, push_message: ~115 uses per handshake on
# the two sides, each a generator plus a _GeneratorContextManager). The classes below do the same in
# __enter__/__exit__, at a third of the cost: as with the generators, the closing step (length written, hash
# updated, trailing bytes refused) runs only when the block ended without an exception. tls.py looks these
# names up in its module globals, so replacing them there is all it takes.
class _Block:
    """A length-prefixed block of ``capacity`` length bytes in ``buf``; ``_mark`` is where its body ends
    (reading) or starts (writing)."""

    __slots__ = ("_buf", "_capacity", "_mark")

    def __init__(self, buf: Buffer, capacity: int) -> None:
        self._buf = buf
        self._capacity = capacity
        self._mark = 0


class _PullBlock(_Block):
    __slots__ = ()

    def __enter__(self) -> int:
        buf = self._buf
        length = int.from_bytes(buf.pull_bytes(self._capacity), byteorder="big")
        self._mark = buf.tell() + length
        return length

    def __exit__(self, exc_type: object, exc: object, tb: object) -> Literal[False]:
        if exc_type is None and self._buf.tell() != self._mark:
            raise aioquic_tls.AlertDecodeError("extra bytes at the end of a block")
        return False


class _PushBlock(_Block):
    __slots__ = ()

    def __enter__(self) -> None:
        buf = self._buf
        self._mark = start = buf.tell() + self._capacity
        buf.seek(start)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> Literal[False]:
        if exc_type is None:
            buf, start, capacity = self._buf, self._mark, self._capacity
            end = buf.tell()
            buf.seek(start - capacity)
            buf.push_bytes((end - start).to_bytes(capacity, byteorder="big"))
            buf.seek(end)
        return False


class _PushExtension(_PushBlock):
    __slots__ = ("_type",)

    def __init__(self, buf: Buffer, extension_type: int) -> None:
        super().__init__(buf, 2)
        self._type = extension_type

    def __enter__(self) -> None:
        self._buf.push_uint16(self._type)
        super().__enter__()


class _PushMessage:
    __slots__ = ("_buf", "_key_schedule", "_start")

    def __init__(self, key_schedule: Any, buf: Buffer) -> None:
        self._key_schedule = key_schedule
        self._buf = buf
        self._start = 0

    def __enter__(self) -> None:
        self._start = self._buf.tell()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> Literal[False]:
        if exc_type is None:
            buf = self._buf
            self._key_schedule.update_hash(buf.data_slice(self._start, buf.tell()))
        return False


if hasattr(aioquic_tls.push_block, "__wrapped__"):  # still aioquic's generator versions (not replaced yet)
    aioquic_tls.pull_block = _PullBlock  # type: ignore[assignment]
    aioquic_tls.push_block = _PushBlock  # type: ignore[assignment]
    aioquic_tls.push_extension = _PushExtension  # type: ignore[assignment]
    aioquic_tls.push_message = _PushMessage  # type: ignore[assignment]

CLIENT_KEY_SHARE_GROUPS = [Group.X25519, Group.SECP256R1]
"""Groups a dialer sends key shares for (aioquic cannot answer a HelloRetryRequest, so each needs a share)."""


def make_configuration(
    cert: TlsCertificate, cfg: QuicConfig, *, is_client: bool, loopback: bool = False
) -> QuicConfiguration:
    return QuicConfiguration(
        max_datagram_size=cfg.loopback_datagram_size if loopback else cfg.max_datagram_size,
        is_client=is_client,
        alpn_protocols=[ALPN],
        certificate=cert.certificate,
        private_key=cert.private_key,
        verify_mode=ssl.CERT_NONE,  # libp2p certificates are self-signed: checked by our hooks instead
        idle_timeout=cfg.effective_idle_timeout,
        max_data=cfg.connection_receive_window,
        max_stream_data=cfg.stream_receive_window,
        connection_id_length=cfg.connection_id_length,
        cipher_suites=list(CIPHER_SUITES),
        supported_versions=list(SUPPORTED_VERSIONS),
    )


class Libp2pQuicEngine(QuicConnection):
    """One QUIC connection's state machine with libp2p authentication and bounded receive windows."""

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        config: QuicConfig,
        reset_key: bytes,
        expected_peer: PeerId | None = None,
        original_destination_connection_id: bytes | None = None,
    ) -> None:
        super().__init__(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
        )
        self._reset_key = reset_key
        self._cfg = config
        self.expected_peer = expected_peer
        self.remote_peer: PeerId | None = None
        self.remote_public_key: PublicKey | None = None
        self.auth_error: CertificateError | PeerIdMismatch | None = None
        self.consumed: dict[int, int] = {}  # stream id -> bytes the application has read
        self.consumed_total = 0
        # max concurrent inbound bidi streams; no unidirectional streams (libp2p does not use them)
        for limit, value in (
            (self._local_max_streams_bidi, config.max_inbound_streams),
            (self._local_max_streams_uni, 0),
        ):
            limit.value = limit.sent = value
        if not self._is_client:
            first = self._host_cids[0]
            first.stateless_reset_token = reset_token_for(reset_key, first.cid)
        self._prepared = False
        # spare connection IDs wait for issue_connection_ids(): see QuicConfig.connection_id_issue_delay
        self._issue_cids = config.connection_id_issue_delay <= 0

    # -- a dialer's first flight, built ahead of the dial -------------------------------------------------
    def prepare(self, now: float) -> None:
        """Build the client's TLS context, Initial keys and ClientHello now, before the address is known (none
        of it depends on the address): :meth:`connect` then only sets the path. The endpoint keeps one engine
        prepared while it waits on the network, taking ~0.4 ms of Python off the next dial's path."""
        super().connect(_UNSET_ADDR, now)
        self._prepared = True

    def connect(self, addr: NetworkAddress, now: float) -> None:
        if not self._prepared:
            super().connect(addr, now)
            return
        self._prepared = False
        self._network_paths = [QuicNetworkPath(addr, is_validated=True)]
        # the idle clock starts with the dial, not with the preparation
        self._close_at = now + self._idle_timeout()

    # -- state the adapter reads ------------------------------------------------------------------------
    @property
    def state(self) -> QuicConnectionState:
        return self._state

    @property
    def close_event(self) -> Any:
        """The ConnectionTerminated event once a close started (ours or the peer's), else None."""
        return self._close_event

    @property
    def handshake_done(self) -> bool:
        """TLS completed. Server: the client's certificate checked and its Finished received. Client: the
        server's certificate checked and our Finished ready to go out, so streams may be used at once, as
        quic-go (go-libp2p) and quinn (rust-libp2p) do; the server still checks our certificate, and if it
        refuses it, its CONNECTION_CLOSE ends the connection half a round trip later. Waiting for
        HANDSHAKE_DONE instead cost that half round trip plus the server's work on our flight (~1.2 ms
        of a ~10 ms loopback dial)."""
        return self._handshake_complete

    def host_connection_ids(self) -> list[bytes]:
        return [c.cid for c in self._host_cids]

    def peer_cids_version(self) -> tuple[int, bytes | None, int]:
        """Changes whenever the peer's connection IDs (and so its reset tokens) may have changed, including the
        token a listener's transport parameters give the connection ID in use (set on the same object)."""
        cid = self._peer_cid
        return (id(cid), cid.stateless_reset_token, len(self._peer_cid_available))

    def peer_reset_tokens(self) -> list[bytes]:
        tokens = [self._peer_cid.stateless_reset_token]
        tokens += [c.stateless_reset_token for c in self._peer_cid_available]
        return [t for t in tokens if t]

    def stream_send_pending(self, stream_id: int) -> int:
        """Bytes written to the stream and not yet acknowledged."""
        s = self._streams.get(stream_id)
        return 0 if s is None else len(s.sender._buffer)

    @property
    def inbound_stream_limit(self) -> int:
        """How many bidirectional streams the peer may have opened in total (grows as streams finish)."""
        return int(self._local_max_streams_bidi.value)

    def has_stream(self, stream_id: int) -> bool:
        return stream_id in self._streams

    # -- authentication: hooks into the TLS handshake steps -------------------------------------------------
    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        t = self.tls
        # per-instance hooks around aioquic's handshake steps (the steps are methods of tls.Context)
        hooks: dict[str, Callable[[Callable[[Buffer], None]], Callable[[Buffer], None]]]
        if self._is_client:
            t._supported_groups = list(CLIENT_KEY_SHARE_GROUPS)
            hooks = {"_client_handle_certificate_verify": self._wrap_verify}
        else:
            t._request_client_certificate = True
            hooks = {
                "_server_handle_certificate": self._wrap_server_certificate,
                "_server_handle_certificate_verify": self._wrap_verify,
            }
        for name, wrap in hooks.items():
            setattr(t, name, wrap(getattr(t, name)))

    def _wrap_server_certificate(self, step: Callable[[Buffer], None]) -> Callable[[Buffer], None]:
        def handle(input_buf: Buffer) -> None:
            step(input_buf)
            if self.tls._peer_certificate is None:  # an empty Certificate: the spec requires one
                self.auth_error = CertificateError("the client sent no certificate")
                raise aioquic_tls.AlertBadCertificate("a libp2p certificate is required")

        return handle

    def _wrap_verify(self, step: Callable[[Buffer], None]) -> Callable[[Buffer], None]:
        def handle(input_buf: Buffer) -> None:
            step(input_buf)  # checks the CertificateVerify signature with the certificate's key
            self._authenticate()

        return handle

    def _authenticate(self) -> None:
        t = self.tls
        chain: list[x509.Certificate] = []
        if t._peer_certificate is not None:
            chain = [t._peer_certificate, *t._peer_certificate_chain]
        try:
            peer, key = verify_certificate_chain(chain)
        except CertificateError as e:
            self.auth_error = e
            raise aioquic_tls.AlertBadCertificate(str(e)) from None
        if self.expected_peer is not None and peer != self.expected_peer:
            self.auth_error = PeerIdMismatch(self.expected_peer, peer)
            raise aioquic_tls.AlertBadCertificate("unexpected peer ID")
        self.remote_peer, self.remote_public_key = peer, key

    # -- stateless reset tokens -----------------------------------------------------------------------------
    def issue_connection_ids(self) -> None:
        """Issue the spare connection IDs now (NEW_CONNECTION_ID frames on the next transmit)."""
        self._issue_cids = True
        if self._handshake_complete:
            self._replenish_connection_ids()

    def _replenish_connection_ids(self) -> None:
        if not self._issue_cids:
            return
        while len(self._host_cids) < min(8, self._remote_active_connection_id_limit):
            cid = os.urandom(self._configuration.connection_id_length)
            self._host_cids.append(
                QuicConnectionId(
                    cid=cid,
                    sequence_number=self._host_cid_seq,
                    stateless_reset_token=reset_token_for(self._reset_key, cid),
                )
            )
            self._host_cid_seq += 1

    # -- frames -------------------------------------------------------------------------------------------
    def _handle_padding_frame(self, context: Any, frame_type: int, buf: Buffer) -> None:
        """PADDING runs to the first non-zero byte (RFC 9000 §19.1), found in C rather than byte by byte."""
        pos = buf.tell()
        rest = buf.data_slice(pos, buf.capacity)
        buf.seek(pos + len(rest) - len(rest.lstrip(b"\x00")))

    # -- receive windows that follow the application's reading ------------------------------------------
    def _write_connection_limits(self, builder: Any, space: Any) -> None:
        max_data = self._local_max_data
        wanted = self.consumed_total + self._cfg.connection_receive_window
        if wanted - max_data.value >= self._cfg.connection_receive_window // 2:
            max_data.value = wanted
        used = max_data.used
        max_data.used = 0  # keep aioquic's doubling rule (used * 2 > value) from firing
        try:
            super()._write_connection_limits(builder, space)
        finally:
            max_data.used = used

    def _write_stream_limits(self, builder: Any, space: Any, stream: _AioStream) -> None:
        if stream.max_stream_data_local:
            window = self._cfg.stream_receive_window
            wanted = self.consumed.get(stream.stream_id or 0, 0) + window
            if wanted - stream.max_stream_data_local >= window // 2:
                stream.max_stream_data_local = wanted
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=aioquic_connection.MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(stream.stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local
