"""libp2p TLS certificates: generation and verification of the self-signed certificate that carries a peer's
host key in the libp2p Public Key Extension.

Spec: https://github.com/libp2p/specs/blob/master/tls/tls.md §"Peer Authentication" and §"libp2p Public Key
Extension". Used by ``/tls/1.0.0`` (``transport.py`` beside this file) and by QUIC, which authenticates peers
the same way.

The certificate key is a fresh ECDSA P-256 key, unrelated to the host key (spec: SHOULD NOT be related; go
does the same). The extension value is the DER ``SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature
OCTET STRING }``: the libp2p ``PublicKey`` protobuf and the host key's signature over
``"libp2p-tls-handshake:" || DER SubjectPublicKeyInfo of the certificate key``. The two-field SEQUENCE is
encoded and parsed here by hand, strictly (DER: definite, minimal lengths, nothing trailing).
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from ...crypto.keys import PrivateKey, PublicKey, unmarshal_public_key
from ...crypto.peer_id import PeerId
from ...exceptions import CertificateError, Libp2pError

__all__ = [
    "CERTIFICATE_BACKDATE",
    "CERTIFICATE_VALIDITY",
    "LIBP2P_EXTENSION_OID",
    "MAX_CERTIFICATE_BYTES",
    "SIGNATURE_PREFIX",
    "VERIFIED_CERTIFICATE_CACHE_SIZE",
    "TlsCertificate",
    "decode_signed_key",
    "encode_signed_key",
    "verify_certificate",
    "verify_certificate_chain",
]

LIBP2P_EXTENSION_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.1")
SIGNATURE_PREFIX: Final = b"libp2p-tls-handshake:"
CERTIFICATE_BACKDATE: Final = datetime.timedelta(hours=1)  # NotBefore = now - 1 h, against clock skew
CERTIFICATE_VALIDITY: Final = datetime.timedelta(days=100 * 365)  # as go-libp2p: about 100 years
MAX_CERTIFICATE_BYTES: Final = 16384  # a libp2p certificate is ~500 bytes; RSA host keys make it ~1 KiB
VERIFIED_CERTIFICATE_CACHE_SIZE: Final = 256
"""Certificates whose signatures verified, remembered (least recently seen dropped first): a peer presents the
same certificate on every connection (one per transport), and its two signature checks are ~0.2 ms of CPU on
each handshake. Only the signatures are remembered; the validity period is checked every time."""

# Critical extensions we understand (and that cannot restrict a self-signed libp2p certificate in a way we
# would have to enforce); any other critical extension aborts the handshake (tls.md).
_UNDERSTOOD_CRITICAL: Final = frozenset(
    {
        LIBP2P_EXTENSION_OID,
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)

_TAG_SEQUENCE: Final = 0x30
_TAG_OCTET_STRING: Final = 0x04
_TAG_ISSUER_UID: Final = 0x81  # [1] IMPLICIT UniqueIdentifier
_TAG_SUBJECT_UID: Final = 0x82  # [2] IMPLICIT UniqueIdentifier
_TAG_VERSION: Final = 0xA0  # [0] EXPLICIT Version


# --- DER, the little that is needed ---------------------------------------------------------------------


def _der_tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes((tag, n)) + value
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + value


def _der_read(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one TLV at ``pos`` (not past ``end``): ``(tag, value_start, value_end)``. Strict DER lengths."""
    if pos + 2 > end:
        raise CertificateError("truncated DER element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise CertificateError("DER high tag numbers are not used here")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4:
            raise CertificateError("DER indefinite or oversized length")
        if pos + n > end:
            raise CertificateError("truncated DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        if data[pos] == 0 or length < 0x80:
            raise CertificateError("DER length is not minimally encoded")
        pos += n
    if pos + length > end:
        raise CertificateError("DER element runs past its container")
    return tag, pos, pos + length


def encode_signed_key(public_key_protobuf: bytes, signature: bytes) -> bytes:
    """DER ``SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }``."""
    return _der_tlv(
        _TAG_SEQUENCE,
        _der_tlv(_TAG_OCTET_STRING, public_key_protobuf) + _der_tlv(_TAG_OCTET_STRING, signature),
    )


def decode_signed_key(data: bytes) -> tuple[bytes, bytes]:
    """Parse a DER ``SignedKey``: ``(public_key_protobuf, signature)``. Raises CertificateError."""
    tag, start, end = _der_read(data, 0, len(data))
    if tag != _TAG_SEQUENCE or end != len(data):
        raise CertificateError("SignedKey is not exactly one DER SEQUENCE")
    fields: list[bytes] = []
    pos = start
    while pos < end:
        tag, vstart, vend = _der_read(data, pos, end)
        if tag != _TAG_OCTET_STRING:
            raise CertificateError("SignedKey field is not an OCTET STRING")
        fields.append(data[vstart:vend])
        pos = vend
    if len(fields) != 2:
        raise CertificateError(f"SignedKey has {len(fields)} fields, expected 2")
    return fields[0], fields[1]


def _tbs_fields(tbs: bytes) -> list[tuple[int, int, int]]:
    """The top-level ``(tag, start, end)`` of each TBSCertificate field (``start`` at the tag byte)."""
    tag, start, end = _der_read(tbs, 0, len(tbs))
    if tag != _TAG_SEQUENCE or end != len(tbs):
        raise CertificateError("TBSCertificate is not one DER SEQUENCE")
    out: list[tuple[int, int, int]] = []
    pos = start
    while pos < end:
        tag, _vstart, vend = _der_read(tbs, pos, end)
        out.append((tag, pos, vend))
        pos = vend
    return out


def _raw_spki_and_check_unique_ids(cert: x509.Certificate) -> bytes:
    """The certificate's SubjectPublicKeyInfo exactly as encoded (what the host key signed), after refusing
    the deprecated subjectUniqueId/issuerUniqueId fields (tls.md: MUST be omitted, MAY abort)."""
    fields = _tbs_fields(cert.tbs_certificate_bytes)
    if fields and fields[0][0] == _TAG_VERSION:
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, then optional fields
    if len(fields) < 6:
        raise CertificateError("TBSCertificate has too few fields")
    if any(tag in (_TAG_ISSUER_UID, _TAG_SUBJECT_UID) for tag, _, _ in fields[6:]):
        raise CertificateError("certificate carries the deprecated issuerUniqueId/subjectUniqueId")
    tag, start, end = fields[5]
    if tag != _TAG_SEQUENCE:
        raise CertificateError("SubjectPublicKeyInfo is not a SEQUENCE")
    return cert.tbs_certificate_bytes[start:end]


# --- generation -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlsCertificate:
    """A libp2p TLS certificate and its (certificate, not host) private key.

    ``der`` is what goes on the wire; QUIC and the TLS engine load ``private_key`` and ``certificate``.
    """

    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    der: bytes

    @classmethod
    def generate(
        cls,
        host_key: PrivateKey,
        *,
        now: datetime.datetime | None = None,
        validity: datetime.timedelta = CERTIFICATE_VALIDITY,
        extension_critical: bool = False,
    ) -> TlsCertificate:
        """A fresh P-256 key and a self-signed certificate binding it to ``host_key``.

        NotBefore is ``now - 1 h``; NotAfter ``now + validity``. The extension is non-critical by default,
        as go-libp2p sends it (the spec allows either).
        """
        now = now or datetime.datetime.now(datetime.UTC)
        cert_key = ec.generate_private_key(ec.SECP256R1())
        spki = cert_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signed_key = encode_signed_key(
            host_key.public_key.to_protobuf(), host_key.sign(SIGNATURE_PREFIX + spki)
        )
        serial = x509.random_serial_number()
        name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(serial))])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(cert_key.public_key())
            .serial_number(serial)
            .not_valid_before(now - CERTIFICATE_BACKDATE)
            .not_valid_after(now + validity)
            .add_extension(
                x509.UnrecognizedExtension(LIBP2P_EXTENSION_OID, signed_key), critical=extension_critical
            )
            .sign(cert_key, hashes.SHA256())
        )
        return cls(cert_key, cert, cert.public_bytes(serialization.Encoding.DER))


# --- verification ---------------------------------------------------------------------------------------


def _load(cert: x509.Certificate | bytes) -> x509.Certificate:
    if isinstance(cert, x509.Certificate):
        return cert
    if len(cert) > MAX_CERTIFICATE_BYTES:
        raise CertificateError(f"certificate of {len(cert)} bytes exceeds {MAX_CERTIFICATE_BYTES}")
    try:
        return x509.load_der_x509_certificate(cert)
    except ValueError as exc:
        raise CertificateError(f"certificate does not parse: {exc}") from None


def verify_certificate(
    cert: x509.Certificate | bytes, *, now: datetime.datetime | None = None
) -> tuple[PeerId, PublicKey]:
    """Check one libp2p certificate: within its validity, self-signature valid, no unknown critical
    extension, no unique IDs, the libp2p extension present with a valid host-key signature.

    Returns the authenticated ``(peer_id, host_public_key)``; raises CertificateError.
    """
    c = _load(cert)
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        not_before, not_after = c.not_valid_before_utc, c.not_valid_after_utc
    except ValueError as exc:
        raise CertificateError(f"certificate validity does not parse: {exc}") from None
    if now < not_before:
        raise CertificateError(f"certificate not valid before {not_before.isoformat()}")
    if now > not_after:
        raise CertificateError(f"certificate expired at {not_after.isoformat()}")
    # x509.Certificate hashes and compares by its DER encoding: a hit is the same certificate, byte for byte
    known = _verified.get(c)
    if known is not None:
        _verified.move_to_end(c)
        return known
    result = _verify_signatures(c)
    _verified[c] = result
    if len(_verified) > VERIFIED_CERTIFICATE_CACHE_SIZE:
        _verified.popitem(last=False)
    return result


_verified: OrderedDict[x509.Certificate, tuple[PeerId, PublicKey]] = OrderedDict()


def _verify_signatures(c: x509.Certificate) -> tuple[PeerId, PublicKey]:
    """The checks that depend on the certificate's bytes alone: self-signature, unique IDs, critical
    extensions, the libp2p extension and its host-key signature."""
    try:
        c.verify_directly_issued_by(c)
    except _CryptoInvalidSignature:
        raise CertificateError("certificate self-signature does not verify") from None
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"certificate is not validly self-signed: {exc}") from None
    spki = _raw_spki_and_check_unique_ids(c)
    try:
        extensions = c.extensions
    except ValueError as exc:  # duplicate or malformed extensions
        raise CertificateError(f"certificate extensions do not parse: {exc}") from None
    signed_key: bytes | None = None
    for ext in extensions:
        if ext.oid == LIBP2P_EXTENSION_OID:
            value = ext.value
            if not isinstance(value, x509.UnrecognizedExtension):  # pragma: no cover - cryptography internals
                raise CertificateError("libp2p extension has an unexpected representation")
            signed_key = value.value
        elif ext.critical and ext.oid not in _UNDERSTOOD_CRITICAL:
            raise CertificateError(f"certificate has an unknown critical extension {ext.oid.dotted_string}")
    if signed_key is None:
        raise CertificateError("certificate lacks the libp2p public key extension")
    key_protobuf, signature = decode_signed_key(signed_key)
    try:
        host_key = unmarshal_public_key(key_protobuf)
    except Libp2pError as exc:
        raise CertificateError(f"libp2p extension carries an invalid public key: {exc}") from None
    if not host_key.verify(SIGNATURE_PREFIX + spki, signature):
        raise CertificateError("libp2p extension signature does not verify against the certificate key")
    return host_key.peer_id, host_key


def verify_certificate_chain(
    certs: Sequence[x509.Certificate | bytes], *, now: datetime.datetime | None = None
) -> tuple[PeerId, PublicKey]:
    """Verify a peer's certificate chain as libp2p TLS requires: exactly one certificate, which passes
    :func:`verify_certificate`. Returns ``(peer_id, host_public_key)``; raises CertificateError."""
    if len(certs) != 1:
        raise CertificateError(f"expected exactly one certificate, got {len(certs)}")
    return verify_certificate(certs[0], now=now)
