"""Settings of the WebRTC-direct transport. Every limit and timeout is a named field of
:class:`WebRtcDirectConfig`; defaults follow go-libp2p's ``p2p/transport/webrtc`` where it has one."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCTP_PORT", "WebRtcDirectConfig"]

SCTP_PORT = 5000
"""The SCTP port of both sides (the SDP's ``a=sctp-port:5000``)."""


@dataclass(frozen=True, slots=True)
class WebRtcDirectConfig:
    certificate_file: str | None = None
    """PEM file holding the DTLS key and certificate; created on first use. With it the ``/certhash`` (and so
    the listen address) stays the same across restarts; without it a new certificate is made at every start."""
    dial_version: int = 1
    """ICE credentials the dialer uses: 1 (``libp2p+webrtc+v1/``, what js-libp2p 3.x listeners expect) or 2
    (``libp2p+webrtc+v2/`` + our pwd, go-libp2p ≥ 0.49). A listener accepts both."""
    handshake_timeout: float = 10.0
    """Seconds for ICE + DTLS + SCTP + Noise, dialing or accepting."""
    keepalive_interval: float = 5.0
    """Seconds between the dialer's STUN consent checks (RFC 7675 uses 4-6 s); the listener answers them."""
    idle_timeout: float = 15.0
    """Seconds without any datagram from the remote after which the connection is closed (a peer that
    vanished silently). go-libp2p detects this only after ~50 s (ICE disconnected 20 s + failed 30 s)."""
    stun_retransmit_initial: float = 0.05
    """Seconds before the first connectivity check is repeated; doubles up to ``stun_retransmit_max``."""
    stun_retransmit_max: float = 0.5
    fin_ack_timeout: float = 10.0
    """Seconds a closed stream waits for the remote's FIN_ACK (and FIN) before its channel is closed
    anyway (go-libp2p ``maxFINACKWait``)."""
    stream_send_buffer: int = 256 * 1024
    """Bytes queued on one stream's data channel before ``write`` waits for the SCTP layer to drain."""
    stream_receive_buffer: int = 1024 * 1024
    """Bytes buffered on one stream beyond what the application has read; beyond that the SCTP receive
    window closes (the remote waits), so the buffer never grows without bound."""
    max_receive_message_size: int = 256 * 1024 + 1024
    """Largest framed stream message accepted (go-libp2p receives up to 256 KiB + 1 KiB; 16 KiB is sent)."""
    max_inbound_streams: int = 256
    """Concurrent inbound streams one connection may hold; a further channel gets RESET at once (the muxers'
    and QUIC's limit is 256 as well)."""
    max_accept_queue: int = 256
    """Inbound streams waiting for the swarm; beyond that a new channel is reset (go: 256)."""
    max_pending_inbound_handshakes: int = 128
    """Inbound connections still handshaking per listening socket; further new ufrags are ignored (the spec:
    a listener MUST rate-limit STUN-driven allocations)."""
    pending_silence_timeout: float = 3.0
    """Seconds an inbound connection still handshaking may go without a datagram before it is dropped (a
    dialer that gave up sends nothing more; a live one retransmits within ~1 s)."""
    max_pending_per_ip: int = 16
    """Inbound connections still handshaking from one remote IP."""
    sctp_receive_window: int = 1024 * 1024
    """The SCTP receive window we advertise (bytes)."""
    sack_delay: float = 0.02
    """Seconds a lone received SCTP packet waits for its SACK (a second packet is acknowledged at once; RFC
    9260 allows up to 200 ms)."""
    socket_buffer: int = 4 * 1024 * 1024
    """SO_RCVBUF / SO_SNDBUF of the UDP socket (the kernel caps it at net.core.rmem_max / wmem_max); 0 keeps
    the system default."""
    dtls_mtu: int = 1400
    """Largest DTLS datagram (SCTP packets are 1200 bytes at most, as in browsers)."""
    close_linger: float = 0.5
    """Seconds a closed connection keeps its socket route, to absorb stray datagrams and repeat nothing."""
