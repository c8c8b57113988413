"""The sans-I/O TLS engine, two engines wired back to back in memory: handshake, ALPN muxer choice, refusals
on both sides, records, close_notify, truncation."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from aiolibp2p.crypto.keys import PrivateKey, generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.exceptions import CertificateError, HandshakeError, PeerIdMismatch, ProtocolViolation
from aiolibp2p.security.tls.certificate import LIBP2P_EXTENSION_OID, TlsCertificate
from aiolibp2p.security.tls.engine import TlsEngine, make_tls_context

YAMUX = "/yamux/1.0.0"
MPLEX = "/mplex/6.7.0"


@pytest.fixture(autouse=True, params=["fast", "public"])
def data_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test over both data paths of the engine (direct OpenSSL calls / pyOpenSSL's API)."""
    import aiolibp2p.security.tls.engine as engine_module

    if request.param == "fast" and not engine_module.FAST_PATH_AVAILABLE:
        pytest.skip("pyOpenSSL does not expose the OpenSSL functions of the fast path")
    monkeypatch.setattr(engine_module, "USE_FAST_PATH", request.param == "fast")
    return str(request.param)


def engines(
    key_c: PrivateKey | None = None,
    key_s: PrivateKey | None = None,
    *,
    muxers_c: Sequence[str] = (),
    muxers_s: Sequence[str] = (),
    expected: PeerId | str | None = "server",
    client_ctx: SSL.Context | None = None,
    server_cert: TlsCertificate | None = None,
    now: datetime.datetime | None = None,
) -> tuple[TlsEngine, TlsEngine]:
    key_c = key_c or generate_key_pair()
    key_s = key_s or generate_key_pair()
    ctx_c = client_ctx or make_tls_context(TlsCertificate.generate(key_c), is_client=True)
    ctx_s = make_tls_context(server_cert or TlsCertificate.generate(key_s), is_client=False)
    exp = key_s.peer_id if expected == "server" else expected
    assert not isinstance(exp, str)
    c = TlsEngine(ctx_c, is_client=True, muxers=muxers_c, expected_peer=exp, now=now)
    s = TlsEngine(ctx_s, is_client=False, muxers=muxers_s, now=now)
    return c, s


def run(c: TlsEngine, s: TlsEngine) -> None:
    """Exchange flights until both are done (or one raises)."""
    c.start()
    for _ in range(6):
        data = c.data_to_send()
        if data:
            s.receive_data(data)
        data = s.data_to_send()
        if data:
            c.receive_data(data)
        if c.handshake_complete and s.handshake_complete:
            return


def test_handshake_and_data_both_ways(data_path: str) -> None:
    kc, ks = generate_key_pair(), generate_key_pair()
    c, s = engines(kc, ks)
    assert c._fast == s._fast == (data_path == "fast")
    run(c, s)
    assert c.result.remote_peer == ks.peer_id and c.result.remote_public_key == ks.public_key
    assert s.result.remote_peer == kc.peer_id and s.result.remote_public_key == kc.public_key
    assert c.result.alpn == s.result.alpn == "libp2p"
    assert c.result.early_muxer is None and s.result.early_muxer is None
    assert c._conn.get_protocol_version_name() == "TLSv1.3"
    assert s._conn.get_servername() is None  # the client sends no SNI
    c.send(b"hello")
    assert s.receive_data(c.data_to_send()) == b"hello"
    s.send(b"world")
    assert c.receive_data(s.data_to_send()) == b"world"
    big = bytes(range(256)) * 4096  # 1 MiB: many records, one call each way
    c.send(big)
    wire = c.data_to_send(len(big))
    assert len(big) < len(wire) < len(big) + 64 * 64
    assert s.receive_data(wire) == big
    # split at every awkward place: records complete across calls
    c.send(big[:50000])
    wire = c.data_to_send()
    got = b"".join(s.receive_data(wire[i : i + 7777]) for i in range(0, len(wire), 7777))
    assert got == big[:50000]


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        ((YAMUX, MPLEX), (MPLEX, YAMUX), YAMUX),  # the client's preference wins
        ((MPLEX, YAMUX), (YAMUX, MPLEX), MPLEX),
        ((YAMUX, MPLEX), (MPLEX,), MPLEX),
        ((YAMUX,), (MPLEX,), None),  # no common muxer: "libp2p", multistream-select afterwards
        ((), (YAMUX,), None),
        ((YAMUX,), (), None),
    ],
)
def test_alpn_muxer_selection(client: tuple[str, ...], server: tuple[str, ...], expected: str | None) -> None:
    c, s = engines(muxers_c=client, muxers_s=server)
    run(c, s)
    assert c.result.early_muxer == s.result.early_muxer == expected
    assert c.result.alpn == s.result.alpn == (expected or "libp2p")


def test_no_common_alpn_aborts() -> None:
    # a client that does not offer "libp2p" (not ours: ours always does) and no muxer the server knows
    c, s = engines(muxers_s=(MPLEX,))
    c._conn.set_alpn_protos([YAMUX.encode()])
    c.start()
    with pytest.raises(HandshakeError, match="no common ALPN"):
        s.receive_data(c.data_to_send())
    with pytest.raises(HandshakeError, match="no application protocol"):
        c.receive_data(s.data_to_send())  # the fatal alert
    assert not c.handshake_complete and not s.handshake_complete


def test_client_without_alpn_is_accepted() -> None:
    # a client that offers no ALPN at all (plain OpenSSL): the server treats it as "libp2p"
    key_c = generate_key_pair()
    _, s = engines()
    raw = SSL.Connection(_bare_client_context(TlsCertificate.generate(key_c)), None)
    raw.set_connect_state()
    for _ in range(4):
        try:
            raw.do_handshake()
        except SSL.WantReadError:
            pass
        try:
            s.receive_data(raw.bio_read(65536))
        except SSL.WantReadError:
            pass
        out = s.data_to_send()
        if out:
            raw.bio_write(out)
    assert s.handshake_complete
    assert s.result.alpn is None and s.result.early_muxer is None
    assert s.result.remote_peer == key_c.peer_id


def test_wrong_peer_id_refused_by_client_with_alert() -> None:
    c, s = engines(expected=generate_key_pair().peer_id)
    c.start()
    s.receive_data(c.data_to_send())
    with pytest.raises(PeerIdMismatch):
        c.receive_data(s.data_to_send())
    with pytest.raises(HandshakeError, match="alert"):
        s.receive_data(c.data_to_send())


def test_no_expected_peer_accepts_any() -> None:
    c, s = engines(expected=None)
    run(c, s)
    assert c.handshake_complete


def _bare_client_context(cert: TlsCertificate | None, *, max_version: int | None = None) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    if cert is not None:
        ctx.use_certificate(cert.certificate)
        ctx.use_privatekey(cert.private_key)
    if max_version is not None:
        ctx.set_max_proto_version(max_version)
    ctx.set_verify(SSL.VERIFY_PEER, lambda *a: True)
    return ctx


def test_client_without_certificate_refused() -> None:
    c, s = engines(client_ctx=_bare_client_context(None))
    c.start()
    s.receive_data(c.data_to_send())
    c.receive_data(s.data_to_send())
    assert c.handshake_complete  # TLS 1.3: the client is done before the server has judged it
    with pytest.raises(HandshakeError, match="certificate"):
        s.receive_data(c.data_to_send())


def _cert_without_extension() -> TlsCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "no libp2p here")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return TlsCertificate(key, cert, cert.public_bytes(serialization.Encoding.DER))


def test_client_certificate_without_extension_refused_by_server() -> None:
    # TLS 1.3: the client finishes first; the server's refusal arrives as an alert afterwards
    ctx = make_tls_context(_cert_without_extension(), is_client=True)
    c, s = engines(client_ctx=ctx)
    c.start()
    s.receive_data(c.data_to_send())
    c.receive_data(s.data_to_send())
    assert c.handshake_complete
    c.send(b"early data the server must not deliver")
    with pytest.raises(CertificateError, match="lacks the libp2p public key extension"):
        s.receive_data(c.data_to_send())
    with pytest.raises(ProtocolViolation, match="alert"):
        c.receive_data(s.data_to_send())


def test_server_certificate_without_extension_refused_by_client() -> None:
    c, s = engines(server_cert=_cert_without_extension(), expected=None)
    c.start()
    s.receive_data(c.data_to_send())
    with pytest.raises(CertificateError):
        c.receive_data(s.data_to_send())
    with pytest.raises(HandshakeError, match="alert"):
        s.receive_data(c.data_to_send())


def test_stolen_extension_refused() -> None:
    # a certificate for another TLS key carrying the victim's extension (signed over the victim's TLS key)
    victim = generate_key_pair()
    good = TlsCertificate.generate(victim)
    stolen = good.certificate.extensions.get_extension_for_oid(LIBP2P_EXTENSION_OID).value
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(good.certificate.subject)
        .issuer_name(good.certificate.subject)
        .public_key(key.public_key())
        .serial_number(9)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(stolen, critical=False)
        .sign(key, hashes.SHA256())
    )
    thief = TlsCertificate(key, cert, cert.public_bytes(serialization.Encoding.DER))
    c, s = engines(server_cert=thief, expected=victim.peer_id)
    c.start()
    s.receive_data(c.data_to_send())
    with pytest.raises(CertificateError, match="signature does not verify"):
        c.receive_data(s.data_to_send())


def test_certificate_key_mismatch_refused_by_openssl() -> None:
    host = generate_key_pair()
    a, b = TlsCertificate.generate(host), TlsCertificate.generate(host)
    with pytest.raises(SSL.Error):
        make_tls_context(TlsCertificate(b.private_key, a.certificate, a.der), is_client=False)


def test_expired_certificate_refused() -> None:
    key_s = generate_key_pair()
    past = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    old = TlsCertificate.generate(key_s, now=past, validity=datetime.timedelta(days=30))
    c, s = engines(key_s=key_s, server_cert=old)
    c.start()
    s.receive_data(c.data_to_send())
    with pytest.raises(CertificateError, match="expired"):
        c.receive_data(s.data_to_send())


def test_tls12_client_refused() -> None:
    cert = TlsCertificate.generate(generate_key_pair())
    c, s = engines(client_ctx=_bare_client_context(cert, max_version=SSL.TLS1_2_VERSION))
    c.start()
    with pytest.raises(HandshakeError, match="protocol"):
        s.receive_data(c.data_to_send())


def test_garbage_refused() -> None:
    _, s = engines()
    with pytest.raises(HandshakeError):
        s.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4)


def test_tampered_record_refused() -> None:
    c, s = engines()
    run(c, s)
    c.send(b"x" * 1000)
    wire = bytearray(c.data_to_send())
    wire[100] ^= 0x40
    with pytest.raises(ProtocolViolation, match="TLS"):
        s.receive_data(bytes(wire))


def test_close_notify_and_eof() -> None:
    c, s = engines()
    run(c, s)
    c.send(b"last words")
    c.close()
    c.close()  # idempotent
    assert s.receive_data(c.data_to_send()) == b"last words"
    assert s.peer_closed and not c.peer_closed
    s.receive_eof()  # clean


def test_eof_inside_a_record_is_an_error() -> None:
    c, s = engines()
    run(c, s)
    c.send(b"y" * 5000)
    wire = c.data_to_send()
    assert s.receive_data(wire[:3]) == b""  # inside the header
    assert s.mid_record
    with pytest.raises(ProtocolViolation, match="middle of a TLS record"):
        s.receive_eof()
    assert s.receive_data(wire[3:-10]) == b""
    assert s.mid_record
    assert s.receive_data(wire[-10:]) == b"y" * 5000
    assert not s.mid_record
    s.receive_eof()  # at a record boundary without close_notify: accepted


def test_send_before_handshake_refused() -> None:
    c, _ = engines()
    with pytest.raises(HandshakeError):
        c.send(b"too early")
    with pytest.raises(HandshakeError):
        _ = c.result


def test_bad_muxer_name_refused() -> None:
    with pytest.raises(ValueError):
        engines(muxers_c=("x" * 300,))
    with pytest.raises(ValueError):
        engines(muxers_c=("",))


def test_record_tracking_against_a_reference() -> None:
    import random

    rng = random.Random(7)
    for _ in range(50):
        c, _ = engines()
        stream = bytearray()
        boundaries = {0}
        for _ in range(rng.randrange(1, 12)):
            length = rng.choice([0, 1, 4, 5, 100, 16401, rng.randrange(0, 70000) & 0xFFFF])
            stream += bytes((23, 3, 3)) + length.to_bytes(2, "big") + bytes(length)
            boundaries.add(len(stream))
        pos = 0
        while pos < len(stream):
            step = rng.choice([1, 2, 3, 5, 7, 4096, 20000, len(stream)])
            chunk = memoryview(stream)[pos : pos + step]
            c._track_records(chunk)
            pos += len(chunk)
            assert c.mid_record == (pos not in boundaries), pos
