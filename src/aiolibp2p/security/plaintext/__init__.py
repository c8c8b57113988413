"""``/plaintext/2.0.0`` (https://github.com/libp2p/specs/blob/master/plaintext/README.md): tests only."""

from .transport import MAX_EXCHANGE_SIZE, PLAINTEXT_PROTOCOL_ID, PlaintextSecurity

__all__ = ["MAX_EXCHANGE_SIZE", "PLAINTEXT_PROTOCOL_ID", "PlaintextSecurity"]
