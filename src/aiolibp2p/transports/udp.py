"""What the UDP transports (QUIC, WebRTC-direct) share about their sockets."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

__all__ = ["set_socket_buffers", "socket_reaches"]


def socket_reaches(family: int, local_sockaddr: tuple[Any, ...], host: str) -> bool:
    """Whether a UDP socket of ``family`` bound to ``local_sockaddr`` can send to the IP ``host``: the same
    family, and a socket bound to a loopback address only to loopback (a wildcard-bound one to anything)."""
    ip = ipaddress.ip_address(host)
    if (family == socket.AF_INET6) != (ip.version == 6):
        return False
    bound = ipaddress.ip_address(str(local_sockaddr[0]).split("%", 1)[0])
    return bound.is_unspecified or bound.is_loopback == ip.is_loopback


def set_socket_buffers(sock: socket.socket | None, size: int) -> None:
    """Ask for ``size`` bytes of kernel send and receive buffer on a UDP socket (capped by the kernel at
    net.core.rmem_max / wmem_max; 0 keeps the defaults). A burst beyond the default buffer (~208 KiB) is
    dropped by the kernel, and every transport over UDP answers a loss by slowing down: QUIC halves its
    congestion window, SCTP waits a retransmission timeout. quic-go raises its buffers for the same reason."""
    if sock is None or size <= 0:
        return
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
        except OSError:
            pass
