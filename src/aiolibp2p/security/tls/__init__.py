"""libp2p TLS 1.3 security (``/tls/1.0.0``).

Spec: https://github.com/libp2p/specs/blob/master/tls/tls.md, with ALPN muxer negotiation from
https://github.com/libp2p/specs/blob/master/connections/inlined-muxer-negotiation.md.

- :class:`TlsSecurity` — the ``SecurityTransport`` (``secure_outbound`` / ``secure_inbound``) the upgrader
  uses; ``new_host(security=["tls"])`` or ``security=[TlsSecurity(key)]``.
- :class:`TlsPipe` — the secured pipe it returns.
- :class:`TlsEngine` — the sans-I/O engine (OpenSSL over memory BIOs, via pyOpenSSL).
- :class:`TlsCertificate`, :func:`verify_certificate_chain` — the libp2p certificate, reusable by QUIC.
"""

from .certificate import (
    LIBP2P_EXTENSION_OID,
    SIGNATURE_PREFIX,
    TlsCertificate,
    decode_signed_key,
    encode_signed_key,
    verify_certificate,
    verify_certificate_chain,
)
from .engine import ALPN_LIBP2P, PROTOCOL_ID, TlsEngine, TlsHandshakeResult, make_tls_context
from .transport import DEFAULT_HANDSHAKE_TIMEOUT, TlsPipe, TlsSecurity

__all__ = [
    "ALPN_LIBP2P",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "LIBP2P_EXTENSION_OID",
    "PROTOCOL_ID",
    "SIGNATURE_PREFIX",
    "TlsCertificate",
    "TlsEngine",
    "TlsHandshakeResult",
    "TlsPipe",
    "TlsSecurity",
    "decode_signed_key",
    "encode_signed_key",
    "make_tls_context",
    "verify_certificate",
    "verify_certificate_chain",
]
