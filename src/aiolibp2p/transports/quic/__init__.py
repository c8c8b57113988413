"""QUIC-v1 transport: libp2p TLS inside QUIC, native streams (``quic/README.md``)."""

from .config import ALPN, QuicConfig
from .connection import QuicConnection, QuicStream
from .transport import QuicListener, QuicTransport, parse_quic_multiaddr

__all__ = [
    "ALPN",
    "QuicConfig",
    "QuicConnection",
    "QuicListener",
    "QuicStream",
    "QuicTransport",
    "parse_quic_multiaddr",
]
