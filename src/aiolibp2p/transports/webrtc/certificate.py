"""The DTLS certificate of a WebRTC-direct node, its fingerprint and the ``/certhash`` that names it.

The certificate is self-signed (ECDSA P-256, what browsers and go-libp2p use); the remote authenticates it
through the address's ``/certhash`` (the dialer) and the Noise prologue (both sides), never through a CA.
It can be persisted (:meth:`WebRtcCertificate.load_or_create`) so the certhash, and with it the listen
address, stays the same across restarts.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ...exceptions import CertificateError, DecodeError
from ...wire.multibase import multibase_decode, multibase_encode
from ...wire.multihash import SHA2_256, multihash_decode, multihash_encode

__all__ = ["WebRtcCertificate", "certhash_to_fingerprint", "fingerprint_to_certhash", "sdp_fingerprint"]

CERT_VALIDITY_DAYS = 365 * 10
"""A persisted certificate keeps the node's address for years; a fresh one is made at every start otherwise."""


def fingerprint_to_certhash(fingerprint: bytes) -> str:
    """The ``/certhash`` value of a SHA-256 fingerprint: multibase base64url (``u``) of its multihash."""
    return multibase_encode(multihash_encode(SHA2_256, fingerprint), "base64url")


def certhash_to_fingerprint(certhash: str | bytes) -> bytes:
    """The SHA-256 fingerprint named by a ``/certhash`` (text, or the multihash bytes of the binary form).

    Raises DecodeError for another hash function (the spec requires sha2-256 support only) or bad input."""
    mh = multibase_decode(certhash) if isinstance(certhash, str) else certhash
    code, digest = multihash_decode(mh)
    if code != SHA2_256:
        raise DecodeError(f"certhash uses hash function {code:#x}; only sha2-256 is supported")
    return digest


def sdp_fingerprint(fingerprint: bytes) -> str:
    """The SDP ``a=fingerprint`` value: ``sha-256 AB:CD:…`` (upper-case hex pairs)."""
    return "sha-256 " + ":".join(f"{b:02X}" for b in fingerprint)


class WebRtcCertificate:
    """An ECDSA P-256 key and its self-signed certificate, with the SHA-256 fingerprint."""

    __slots__ = ("__weakref__", "certificate", "der", "fingerprint", "private_key")

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise CertificateError("a WebRTC certificate key must be ECDSA P-256")
        self.private_key = private_key
        self.certificate = certificate
        self.der = certificate.public_bytes(serialization.Encoding.DER)
        self.fingerprint = hashlib.sha256(self.der).digest()

    @property
    def certhash(self) -> str:
        return fingerprint_to_certhash(self.fingerprint)

    @property
    def multihash(self) -> bytes:
        """The fingerprint as a multihash (what the Noise prologue carries)."""
        return multihash_encode(SHA2_256, self.fingerprint)

    @classmethod
    def generate(cls, validity_days: int = CERT_VALIDITY_DAYS) -> WebRtcCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(8))])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=validity_days))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    # -- persistence --------------------------------------------------------------------------------------------
    def to_pem(self) -> bytes:
        key = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return key + self.certificate.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def from_pem(cls, data: bytes) -> WebRtcCertificate:
        try:
            key = serialization.load_pem_private_key(data, password=None)
            cert = x509.load_pem_x509_certificate(data)
        except ValueError as e:
            raise CertificateError(f"not a PEM key and certificate: {e}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError("a WebRTC certificate key must be ECDSA P-256")
        if cert.public_key() != key.public_key():
            raise CertificateError("the certificate does not belong to the key")
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> WebRtcCertificate:
        """The certificate stored at ``path`` (PEM: key then certificate), or a new one written there (mode
        0600). An expired stored certificate is replaced."""
        p = Path(path)
        if p.exists():
            cert = cls.from_pem(p.read_bytes())
            if cert.certificate.not_valid_after_utc > datetime.datetime.now(datetime.UTC):
                return cert
        cert = cls.generate()
        tmp = p.with_name(p.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(cert.to_pem())
        os.replace(tmp, p)
        return cert
