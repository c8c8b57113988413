"""TCP transport."""

from .transport import TcpConfig, TcpListener, TcpPipe, TcpTransport

__all__ = ["TcpConfig", "TcpListener", "TcpPipe", "TcpTransport"]
