"""WebSocket transport (``/ws``, ``/wss``, ``/tls/ws``, ``/tls/sni/<name>/ws``)."""

from .transport import (
    WebSocketAddr,
    WebSocketConfig,
    WebSocketHandshakeError,
    WebSocketListener,
    WebSocketPipe,
    WebSocketTransport,
    parse_websocket_multiaddr,
)

__all__ = [
    "WebSocketAddr",
    "WebSocketConfig",
    "WebSocketHandshakeError",
    "WebSocketListener",
    "WebSocketPipe",
    "WebSocketTransport",
    "parse_websocket_multiaddr",
]
