"""libp2p TLS certificates: spec test vectors (tls/tls.md), generation round trips, and every refusal."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aiolibp2p.crypto.keys import KeyType, PrivateKey, generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.exceptions import CertificateError, HandshakeError
from aiolibp2p.security.tls.certificate import (
    CERTIFICATE_BACKDATE,
    LIBP2P_EXTENSION_OID,
    SIGNATURE_PREFIX,
    TlsCertificate,
    _der_tlv,
    _tbs_fields,
    decode_signed_key,
    encode_signed_key,
    verify_certificate,
    verify_certificate_chain,
)

# tls/tls.md §"Test vectors"
VECTORS = [
    (
        "308201ae30820156a0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea37c307a3078060a2b0601040183a25a0101046a3068042408011220a77f1d92fedb59dddaea5a1c4abd1ac2fbde7d7b879ed364501809923d7c11b90440d90d2769db992d5e6195dbb08e706b6651e024fda6cfb8846694a435519941cac215a8207792e42849cccc6cd8136c6e4bde92a58c5e08cfd4206eb5fe0bf909300a06082a8648ce3d0403020346003043021f50f6b6c52711a881778718238f650c9fb48943ae6ee6d28427dc6071ae55e702203625f116a7a454db9c56986c82a25682f7248ea1cb764d322ea983ed36a31b77",
        "12D3KooWM6CgA9iBFZmcYAHA6A2qvbAxqfkmrYiRQuz3XEsk4Ksv",
        KeyType.Ed25519,
    ),
    (
        "308201f63082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155de0bb5a96fedf6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f2044730450220064ea8124774caf8f50e57f436aa62350ce652418c019df5d98a3ac666c9386a022100aa59d704a931b5f72fb9222cb6cc51f954d04a4e2e5450f8805fe8918f71eaae300a06082a8648ce3d04030203470030440220799395b0b6c1e940a7e4484705f610ab51ed376f19ff9d7c16757cfbf61b8d4302206205c03fbb0f95205c779be86581d3e31c01871ad5d1f3435bcf375cb0e5088a",
        "QmfXbAwNjJLXfesgztEHe8HwgVDCMMpZ9Eax1HYq6hn9uE",
        KeyType.ECDSA,
    ),
    (
        "308201ba3082015fa0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea38184308181307f060a2b0601040183a25a01010471306f0425080212210206dc6968726765b820f050263ececf7f71e4955892776c0970542efd689d2382044630440220145e15a991961f0d08cd15425bb95ec93f6ffa03c5a385eedc34ecf464c7a8ab022026b3109b8a3f40ef833169777eb2aa337cfb6282f188de0666d1bcec2a4690dd300a06082a8648ce3d0403020349003046022100e1a217eeef9ec9204b3f774a08b70849646b6a1e6b8b27f93dc00ed58545d9fe022100b00dafa549d0f03547878338c7b15e7502888f6d45db387e5ae6b5d46899cef0",
        "16Uiu2HAkutTMoTzDw1tCvSRtu6YoixJwS46S1ZFxW8hSx9fWHiPs",
        KeyType.Secp256k1,
    ),
]
INVALID_VECTOR = "308201f73082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155de0bb5a96fedf6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f204473045022100bb6e03577b7cc7a3cd1558df0da2b117dfdcc0399bc2504ebe7de6f65cade72802206de96e2a5be9b6202adba24ee0362e490641ac45c240db71fe955f2c5cf8df6e300a06082a8648ce3d0403020348003045022100e847f267f43717358f850355bdcabbefb2cfbf8a3c043b203a14788a092fe8db022027c1d04a2d41fd6b57a7e8b3989e470325de4406e52e084e34a3fd56eef0d0df"


@pytest.mark.parametrize(("cert_hex", "peer", "key_type"), VECTORS)
def test_spec_valid_vectors(cert_hex: str, peer: str, key_type: KeyType) -> None:
    peer_id, key = verify_certificate_chain([bytes.fromhex(cert_hex)])
    assert peer_id == PeerId.from_string(peer)
    assert str(peer_id) == peer
    assert key.key_type == key_type
    assert key.peer_id == peer_id


def test_spec_invalid_vector() -> None:
    with pytest.raises(CertificateError, match="signature"):
        verify_certificate_chain([bytes.fromhex(INVALID_VECTOR)])


@pytest.mark.parametrize("key_type", [KeyType.Ed25519, KeyType.Secp256k1, KeyType.ECDSA, KeyType.RSA])
def test_generate_round_trip(key_type: KeyType) -> None:
    host = generate_key_pair(key_type)
    cert = TlsCertificate.generate(host)
    peer, key = verify_certificate_chain([cert.der])
    assert peer == host.peer_id and key == host.public_key
    # the certificate object verifies the same, and QUIC can load the pieces
    assert verify_certificate(cert.certificate) == (peer, key)
    assert isinstance(cert.private_key.curve, ec.SECP256R1)
    assert x509.load_der_x509_certificate(cert.der) == cert.certificate


def test_generated_certificate_shape() -> None:
    host = generate_key_pair()
    now = datetime.datetime(2030, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    cert = TlsCertificate.generate(host, now=now).certificate
    assert cert.not_valid_before_utc == now - CERTIFICATE_BACKDATE
    assert cert.not_valid_after_utc - now > datetime.timedelta(days=365 * 99)
    assert cert.issuer == cert.subject
    ext = cert.extensions.get_extension_for_oid(LIBP2P_EXTENSION_OID)
    assert not ext.critical
    # the certificate key is not the host key, and the host key signed the certificate key's SPKI
    key_pb, sig = decode_signed_key(ext.value.value)  # type: ignore[attr-defined]
    assert key_pb == host.public_key.to_protobuf()
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert host.public_key.verify(SIGNATURE_PREFIX + spki, sig)
    # a fresh certificate key each time
    again = TlsCertificate.generate(host, now=now).certificate
    assert again.public_key() != cert.public_key()


def test_critical_libp2p_extension_is_accepted() -> None:
    host = generate_key_pair()
    cert = TlsCertificate.generate(host, extension_critical=True)
    assert verify_certificate(cert.der)[0] == host.peer_id


# --- SignedKey DER ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(0, 0), (36, 64), (127, 128), (300, 256), (70000, 10)])
def test_signed_key_round_trip(sizes: tuple[int, int]) -> None:
    a, b = bytes(range(256)) * (sizes[0] // 256 + 1), b"\x01" * sizes[1]
    a = a[: sizes[0]]
    assert decode_signed_key(encode_signed_key(a, b)) == (a, b)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30",
        b"\x30\x00",  # no fields
        b"\x30\x02\x04\x00",  # one field
        b"\x30\x06\x04\x00\x04\x00\x04\x00",  # three fields
        b"\x30\x04\x04\x00\x04\x00\x00",  # trailing byte
        b"\x30\x04\x04\x00\x02\x00",  # INTEGER instead of OCTET STRING
        b"\x31\x04\x04\x00\x04\x00",  # SET instead of SEQUENCE
        b"\x30\x81\x04\x04\x00\x04\x00",  # non-minimal length
        b"\x30\x80\x04\x00\x04\x00\x00\x00",  # indefinite length
        b"\x30\x04\x04\x05\x04\x00",  # inner length past the container
        b"\x30\x85\x01\x00\x00\x00\x00",  # 5-byte length
        b"\x3f\x01\x00",  # high tag number
    ],
)
def test_signed_key_malformed(data: bytes) -> None:
    with pytest.raises(CertificateError):
        decode_signed_key(data)


# --- refusals ---------------------------------------------------------------------------------------------


def build(
    host: PrivateKey | None,
    *,
    signed_key: bytes | None = None,
    cert_key: ec.EllipticCurvePrivateKey | None = None,
    signer: ec.EllipticCurvePrivateKey | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.Certificate:
    """A certificate built by hand, with any of the libp2p rules broken."""
    cert_key = cert_key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(cert_key.public_key())
        .serial_number(1)
        .not_valid_before(not_before or now - datetime.timedelta(hours=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=1))
    )
    if host is not None and signed_key is None:
        spki = cert_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signed_key = encode_signed_key(host.public_key.to_protobuf(), host.sign(SIGNATURE_PREFIX + spki))
    if signed_key is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(LIBP2P_EXTENSION_OID, signed_key), False)
    for ext, critical in extra:
        builder = builder.add_extension(ext, critical)
    return builder.sign(signer or cert_key, hashes.SHA256())


def test_hand_built_certificate_is_valid() -> None:
    host = generate_key_pair()
    assert verify_certificate(build(host))[0] == host.peer_id


def test_missing_extension_refused() -> None:
    with pytest.raises(CertificateError, match="lacks the libp2p public key extension"):
        verify_certificate(build(None))


def test_bad_extension_signature_refused() -> None:
    host = generate_key_pair()
    other_key = ec.generate_private_key(ec.SECP256R1())
    spki = other_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # the host key signed a different certificate key
    signed = encode_signed_key(host.public_key.to_protobuf(), host.sign(SIGNATURE_PREFIX + spki))
    with pytest.raises(CertificateError, match="signature does not verify"):
        verify_certificate(build(host, signed_key=signed))


def test_wrong_host_key_refused() -> None:
    # signed by one host key, claiming another
    host, claimed = generate_key_pair(), generate_key_pair()
    cert_key = ec.generate_private_key(ec.SECP256R1())
    spki = cert_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signed = encode_signed_key(claimed.public_key.to_protobuf(), host.sign(SIGNATURE_PREFIX + spki))
    with pytest.raises(CertificateError, match="signature does not verify"):
        verify_certificate(build(None, signed_key=signed, cert_key=cert_key))


def test_garbage_public_key_in_extension_refused() -> None:
    with pytest.raises(CertificateError, match="invalid public key"):
        verify_certificate(build(None, signed_key=encode_signed_key(b"\x08\x01\x12\x03abc", b"sig")))
    with pytest.raises(CertificateError):
        verify_certificate(build(None, signed_key=b"\x04\x00"))


def test_bad_self_signature_refused() -> None:
    host = generate_key_pair()
    with pytest.raises(CertificateError, match="self-sign"):
        verify_certificate(build(host, signer=ec.generate_private_key(ec.SECP256R1())))


def test_tampered_certificate_refused() -> None:
    der = bytearray(TlsCertificate.generate(generate_key_pair()).der)
    der[-80] ^= 1  # inside the extension's signature, covered by the self-signature
    with pytest.raises(CertificateError):
        verify_certificate(bytes(der))


def test_expired_and_not_yet_valid_refused() -> None:
    host = generate_key_pair()
    past = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    cert = TlsCertificate.generate(host, now=past, validity=datetime.timedelta(days=1))
    with pytest.raises(CertificateError, match="expired"):
        verify_certificate(cert.der)
    assert verify_certificate(cert.der, now=past)[0] == host.peer_id
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
    with pytest.raises(CertificateError, match="not valid before"):
        verify_certificate(TlsCertificate.generate(host, now=future).der)
    now = datetime.datetime.now(datetime.UTC)
    with pytest.raises(CertificateError, match="expired"):
        verify_certificate(build(host, not_after=now - datetime.timedelta(seconds=5)))


def test_verified_certificates_are_remembered_by_their_bytes_only() -> None:
    from aiolibp2p.security.tls import certificate as certmod

    host = generate_key_pair()
    past = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    cert = TlsCertificate.generate(host, now=past, validity=datetime.timedelta(days=1))
    assert verify_certificate(cert.der, now=past) == (host.peer_id, host.public_key)
    assert cert.certificate in certmod._verified
    # a remembered certificate still has its validity period checked
    with pytest.raises(CertificateError, match="expired"):
        verify_certificate(cert.der)
    # the same bytes with one bit flipped are another certificate: fully checked, refused, not remembered
    der = bytearray(cert.der)
    der[-80] ^= 1
    with pytest.raises(CertificateError):
        verify_certificate(bytes(der), now=past)
    assert all(c.public_bytes(serialization.Encoding.DER) != bytes(der) for c in certmod._verified)
    # bounded: the least recently seen certificate goes first
    first = TlsCertificate.generate(generate_key_pair())
    verify_certificate(first.der)
    for _ in range(certmod.VERIFIED_CERTIFICATE_CACHE_SIZE):
        verify_certificate(TlsCertificate.generate(generate_key_pair()).der)
    assert len(certmod._verified) == certmod.VERIFIED_CERTIFICATE_CACHE_SIZE
    assert first.certificate not in certmod._verified


def test_unknown_critical_extension_refused_known_ones_accepted() -> None:
    host = generate_key_pair()
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00")
    with pytest.raises(CertificateError, match=r"unknown critical extension 1\.2\.3\.4\.5"):
        verify_certificate(build(host, extra=[(unknown, True)]))
    # unknown but not critical: ignored; well-known critical ones: understood
    assert verify_certificate(build(host, extra=[(unknown, False)]))[0] == host.peer_id
    known = [(x509.BasicConstraints(ca=False, path_length=None), True)]
    assert verify_certificate(build(host, extra=known))[0] == host.peer_id


def test_chain_must_have_exactly_one_certificate() -> None:
    cert = TlsCertificate.generate(generate_key_pair())
    with pytest.raises(CertificateError, match="exactly one"):
        verify_certificate_chain([])
    with pytest.raises(CertificateError, match="exactly one"):
        verify_certificate_chain([cert.der, cert.der])


def test_garbage_and_oversized_refused() -> None:
    for data in (b"", b"\x30\x03abc", b"not a certificate", b"\x30" + b"\xff" * 40):
        with pytest.raises(CertificateError):
            verify_certificate(data)
    with pytest.raises(CertificateError, match="exceeds"):
        verify_certificate(b"\x30" * 100_000)
    assert issubclass(CertificateError, HandshakeError)


def _resign(tbs: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A certificate from raw TBSCertificate bytes (to produce what the builder refuses to write)."""
    sig_alg = bytes.fromhex("300a06082a8648ce3d040302")  # ecdsa-with-SHA256
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return _der_tlv(0x30, tbs + sig_alg + _der_tlv(0x03, b"\x00" + signature))


@pytest.mark.parametrize("field", [b"\x81\x02\x00\xab", b"\x82\x02\x00\xcd"])
def test_unique_ids_refused(field: bytes) -> None:
    host = generate_key_pair()
    cert_key = ec.generate_private_key(ec.SECP256R1())
    tbs = build(host, cert_key=cert_key).tbs_certificate_bytes
    # sanity: re-signing the unchanged TBS gives a valid certificate
    assert verify_certificate(_resign(tbs, cert_key))[0] == host.peer_id
    fields = _tbs_fields(tbs)
    assert fields[-1][0] == 0xA3  # the extensions come last
    body = b"".join(tbs[start:end] for _, start, end in fields[:-1])
    ext = tbs[fields[-1][1] : fields[-1][2]]
    try:
        der = _resign(_der_tlv(0x30, body + field + ext), cert_key)
        x509.load_der_x509_certificate(der)
    except ValueError:  # pragma: no cover - depends on the cryptography version
        pytest.skip("this cryptography version refuses unique IDs while parsing")
    with pytest.raises(CertificateError, match="UniqueId"):
        verify_certificate(der)
