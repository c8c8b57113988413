"""Settings and wire constants of the QUIC-v1 transport (libp2p ``quic/README.md``, RFC 9000).

Every limit and timeout is a named field of :class:`QuicConfig`; the defaults follow go-libp2p's
``quicreuse`` configuration (keep-alive 15 s) and quic-go (idle timeout 30 s, handshake 10 s).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALPN", "CONN_CLOSE_NORMAL", "QuicConfig"]

ALPN = "libp2p"
"""The one ALPN token libp2p speaks over QUIC."""

CONN_CLOSE_NORMAL = 0
"""Application error code of an ordinary close (go-libp2p closes with 0)."""


@dataclass(frozen=True, slots=True)
class QuicConfig:
    keep_alive_interval: float = 15.0
    """Seconds between keep-alive PINGs (go-libp2p ``KeepAlivePeriod``). A silently dead peer is detected
    within ``idle_timeout`` (default: 2 × this)."""
    idle_timeout: float | None = None
    """Seconds of silence after which a connection is dropped; ``None`` = 2 × ``keep_alive_interval``
    (30 s, quic-go's default). The effective value is the smaller of both sides' (RFC 9000 §10.1)."""
    handshake_timeout: float = 10.0
    """Seconds a dial (or an inbound handshake) may take (quic-go ``HandshakeIdleTimeout``)."""
    max_inbound_streams: int = 256
    """Concurrent bidirectional streams the remote may open (QUIC MAX_STREAMS; go-libp2p: 256)."""
    stream_receive_window: int = 1024 * 1024
    """Bytes a remote may send on one stream beyond what our application has read."""
    connection_receive_window: int = 16 * 1024 * 1024
    """Bytes a remote may send on all streams together beyond what our application has read."""
    stream_send_buffer: int = 256 * 1024
    """Bytes of unacknowledged data buffered per stream before ``write`` waits."""
    max_pending_inbound_handshakes: int = 128
    """Inbound connections still handshaking per listener; further Initial packets are dropped."""
    transmit_coalesce: int = 3
    """Event-loop iterations a connection waits before sending what its streams wrote (timers, closes, the
    first Initial and a stream about to wait for input send at once). The tasks woken by one datagram (a handler
    answering, identify) then share datagrams: a loopback dial + first ping + close exchanges ~10 datagrams
    instead of ~18 (each costs ~0.1 ms of Python on both sides). 0 sends on the next iteration."""
    dial_socket_linger: float = 10.0
    """Seconds the UDP socket dials share (when not listening on their address family) stays open after its
    last connection ends, so the next dial reuses it (go-libp2p's quicreuse keeps an unused one 10 s); 0
    closes it at once."""
    close_linger: float = 1.0
    """Seconds a closed connection's IDs stay routed, to repeat CONNECTION_CLOSE / absorb stray packets."""
    stateless_reset_rate: int = 64
    """Stateless resets sent per second per endpoint at most (RFC 9000 §10.3: avoid amplification)."""
    connection_id_length: int = 8
    socket_buffer: int = 4 * 1024 * 1024
    """SO_RCVBUF / SO_SNDBUF of the UDP socket (the kernel caps it at net.core.rmem_max / wmem_max); 0 keeps
    the system default (~208 KiB), which a fast sender's burst overflows: each drop halves the congestion
    window."""
    max_datagram_size: int = 1200
    """UDP payload bytes per datagram: QUIC's minimum, safe on every path (no path-MTU discovery yet)."""
    loopback_datagram_size: int = 16384
    """UDP payload bytes per datagram when the peer is on a loopback address (its MTU is 64 KiB): fewer,
    larger packets cut the per-packet Python cost that bounds throughput."""

    connection_id_issue_delay: float = 0.05
    """Seconds after the handshake completes before a connection issues its spare connection IDs (7
    NEW_CONNECTION_ID frames each way, needed only to migrate). Issued at completion, as quic-go and quinn
    do, they ride in the dialer's Finished and the listener's first answer, and building and parsing them
    delays the first streams by ~0.1 ms a side; a connection closed sooner never issues them. 0 issues them
    at completion."""

    @property
    def effective_idle_timeout(self) -> float:
        return self.idle_timeout if self.idle_timeout is not None else 2 * self.keep_alive_interval
