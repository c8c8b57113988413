"""The QUIC engine without sockets: two ``Libp2pQuicEngine``s back to back in memory on a fake clock
(mutual libp2p certificates inside the handshake, refusals as TLS alerts, read-paced receive windows,
derived stateless reset tokens), plus address parsing and settings."""

from __future__ import annotations

import pytest
from aioquic import tls
from aioquic._buffer import Buffer
from aioquic.quic import events as qe
from aioquic.quic.connection import NetworkAddress
from aioquic.quic.packet import QuicProtocolVersion, pull_quic_header

from aiolibp2p.crypto.keys import PrivateKey, generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.exceptions import CertificateError, MultiaddrError, PeerIdMismatch
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.security.tls.certificate import TlsCertificate
from aiolibp2p.transports.quic import QuicConfig, parse_quic_multiaddr
from aiolibp2p.transports.quic.engine import (
    Libp2pQuicEngine,
    make_configuration,
    reset_token_for,
    stateless_reset_key,
)

CLIENT_ADDR = ("127.0.0.1", 1111)
SERVER_ADDR = ("127.0.0.1", 2222)
CFG = QuicConfig()


def dialer_engine(
    kc: PrivateKey,
    *,
    cert: TlsCertificate | None = None,
    cfg: QuicConfig = CFG,
    expected: PeerId | None = None,
) -> Libp2pQuicEngine:
    """A dialer engine for key ``kc`` (its certificate unless ``cert`` is given), not yet connected."""
    conf = make_configuration(cert or TlsCertificate.generate(kc), cfg, is_client=True)
    return Libp2pQuicEngine(
        configuration=conf, config=cfg, reset_key=stateless_reset_key(kc), expected_peer=expected
    )


def listener_engine(
    ks: PrivateKey, first: list[tuple[bytes, NetworkAddress]], *, cfg: QuicConfig = CFG
) -> Libp2pQuicEngine:
    """The listener engine a dialer's first datagrams ``first`` create (keyed by their destination CID)."""
    header = pull_quic_header(Buffer(data=first[0][0]), host_cid_length=cfg.connection_id_length)
    return Libp2pQuicEngine(
        configuration=make_configuration(TlsCertificate.generate(ks), cfg, is_client=False),
        config=cfg,
        reset_key=stateless_reset_key(ks),
        original_destination_connection_id=header.destination_cid,
    )


def answer_first_flight(client: Libp2pQuicEngine, ks: PrivateKey, now: float) -> Libp2pQuicEngine:
    """The listener (key ``ks``) that the connected ``client``'s first flight creates, after one round trip:
    it reads the flight at ``now`` + 1 ms, the client reads its answer at ``now`` + 2 ms."""
    first = client.datagrams_to_send(now)
    server = listener_engine(ks, first)
    for data, _ in first:
        server.receive_datagram(data, CLIENT_ADDR, now + 0.001)
    for data, _ in server.datagrams_to_send(now + 0.001):
        client.receive_datagram(data, SERVER_ADDR, now + 0.002)
    return server


class Pair:
    def __init__(
        self,
        *,
        expected: PeerId | None = None,
        client_cert: TlsCertificate | None = None,
        cfg: QuicConfig = CFG,
    ) -> None:
        self.ks, self.kc = generate_key_pair(), generate_key_pair()
        self.now = 0.0
        self.reset_key = stateless_reset_key(self.ks)
        self.client = dialer_engine(self.kc, cert=client_cert, cfg=cfg, expected=expected)
        self.client.connect(SERVER_ADDR, self.now)
        first = self.client.datagrams_to_send(self.now)
        self.server = listener_engine(self.ks, first, cfg=cfg)
        for data, _ in first:
            self.server.receive_datagram(data, CLIENT_ADDR, self.now)
        self.pump()

    def pump(self, rounds: int = 100) -> None:
        for _ in range(rounds):
            self.now += 0.001
            moved = False
            for src, dst, addr in (
                (self.server, self.client, SERVER_ADDR),
                (self.client, self.server, CLIENT_ADDR),
            ):
                for data, _ in src.datagrams_to_send(self.now):
                    dst.receive_datagram(data, addr, self.now)
                    moved = True
            if not moved:
                return

    @staticmethod
    def events(engine: Libp2pQuicEngine) -> list[qe.QuicEvent]:
        out = []
        while (e := engine.next_event()) is not None:
            out.append(e)
        return out


def test_mutual_authentication_yields_both_peer_ids() -> None:
    p = Pair()
    assert p.client.handshake_done and p.server.handshake_done
    assert p.client.remote_peer == PeerId.from_public_key(p.ks.public_key)
    assert p.server.remote_peer == PeerId.from_public_key(p.kc.public_key)
    assert p.client.auth_error is None and p.server.auth_error is None
    assert any(
        isinstance(e, qe.HandshakeCompleted) and e.alpn_protocol == "libp2p" for e in p.events(p.server)
    )


def test_dialer_is_ready_when_tls_completes_before_handshake_done() -> None:
    """The dialer may send stream data right behind its Finished (as quic-go and quinn let it), without
    waiting half a round trip for HANDSHAKE_DONE; the listener gets the data with the Finished."""
    ks, kc = generate_key_pair(), generate_key_pair()
    client = dialer_engine(kc)
    client.connect(SERVER_ADDR, 0.0)
    server = answer_first_flight(client, ks, 0.0)
    assert client.handshake_done and client.remote_peer == PeerId.from_public_key(ks.public_key)
    assert not client._handshake_confirmed and not server.handshake_done
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, b"hello", end_stream=True)
    for data, _ in client.datagrams_to_send(0.003):
        server.receive_datagram(data, CLIENT_ADDR, 0.004)
    assert server.handshake_done and server.remote_peer == PeerId.from_public_key(kc.public_key)
    got = [e for e in Pair.events(server) if isinstance(e, qe.StreamDataReceived)]
    assert b"".join(e.data for e in got) == b"hello" and got[-1].end_stream


def test_prepared_dialer_engine_dials_the_address_given_later_with_a_fresh_idle_clock() -> None:
    """A dialer engine whose first flight was built ahead (``prepare``, no address yet) sends it to the address
    ``connect`` names, authenticates both sides as usual, and counts its idle timeout from the dial."""
    ks, kc = generate_key_pair(), generate_key_pair()
    client = dialer_engine(kc)
    client.prepare(0.0)
    dial_at = 1000.0  # long after the preparation
    client.expected_peer = PeerId.from_public_key(ks.public_key)
    client.connect(SERVER_ADDR, dial_at)
    first = client.datagrams_to_send(dial_at)
    assert first and all(addr == SERVER_ADDR for _, addr in first)
    timer = client.get_timer()
    assert timer is not None and timer > dial_at  # not the idle deadline of the preparation time
    server = listener_engine(ks, first)
    now = dial_at
    for data, _ in first:
        server.receive_datagram(data, CLIENT_ADDR, now)
    for _ in range(10):
        now += 0.001
        for src, dst, addr in ((server, client, SERVER_ADDR), (client, server, CLIENT_ADDR)):
            for data, _ in src.datagrams_to_send(now):
                dst.receive_datagram(data, addr, now)
    assert client.handshake_done and server.handshake_done
    assert client.remote_peer == PeerId.from_public_key(ks.public_key)
    assert server.remote_peer == PeerId.from_public_key(kc.public_key)
    close_at = client._close_at
    assert close_at is not None and close_at >= dial_at + CFG.effective_idle_timeout - 1


def test_prepared_dialer_engine_still_refuses_an_unexpected_peer() -> None:
    ks, kc = generate_key_pair(), generate_key_pair()
    client = dialer_engine(kc)
    client.prepare(0.0)
    other = generate_key_pair().public_key.peer_id
    client.expected_peer = other
    client.connect(SERVER_ADDR, 1.0)
    answer_first_flight(client, ks, 1.0)
    assert not client.handshake_done and client.remote_peer is None
    assert isinstance(client.auth_error, PeerIdMismatch) and client.auth_error.expected == other


def test_dialer_refused_by_the_listener_after_tls_completes_is_closed() -> None:
    good = TlsCertificate.generate(generate_key_pair())
    forged = TlsCertificate(
        TlsCertificate.generate(generate_key_pair()).private_key, good.certificate, good.der
    )
    p = Pair(client_cert=forged)
    # the dialer finished its side of TLS; the listener's alert then closes the connection
    assert p.client.remote_peer == PeerId.from_public_key(p.ks.public_key)
    assert p.client.close_event is not None  # what the adapter surfaces as soon as the engine drains
    # CRYPTO_ERROR(decrypt_error): our CertificateVerify does not verify with the certificate's key
    assert p.client.close_event.error_code == 0x100 + 51


def test_expected_peer_mismatch_aborts_the_handshake_with_an_alert() -> None:
    other = PeerId.from_public_key(generate_key_pair().public_key)
    p = Pair(expected=other)
    assert isinstance(p.client.auth_error, PeerIdMismatch)
    assert not p.client.handshake_done and not p.server.handshake_done
    p.now += 10
    p.server.handle_timer(p.now)
    assert any(isinstance(e, qe.ConnectionTerminated) for e in p.events(p.server))
    assert p.server.close_event is not None
    assert p.server.close_event.error_code == 0x100 + 42  # CRYPTO_ERROR(bad_certificate)


def test_server_refuses_a_certificate_whose_extension_signs_another_key() -> None:
    good = TlsCertificate.generate(generate_key_pair())
    forged = TlsCertificate(
        TlsCertificate.generate(generate_key_pair()).private_key, good.certificate, good.der
    )
    p = Pair(client_cert=forged)
    # the CertificateVerify signature (by a key that is not the certificate's) already fails inside aioquic
    assert not p.server.handshake_done
    assert p.server.remote_peer is None


def test_server_refuses_a_certificate_without_the_libp2p_extension() -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    plain = TlsCertificate(key, cert, cert.public_bytes(serialization.Encoding.DER))
    p = Pair(client_cert=plain)
    assert isinstance(p.server.auth_error, CertificateError)
    assert not p.server.handshake_done
    assert p.server.close_event is not None and p.server.close_event.error_code == 0x100 + 42


def test_receive_window_follows_what_the_application_reads() -> None:
    cfg = QuicConfig(stream_receive_window=64 * 1024, connection_receive_window=256 * 1024)
    p = Pair(cfg=cfg)
    sid = p.client.get_next_available_stream_id()
    p.client.send_stream_data(sid, b"x" * (1024 * 1024))
    for _ in range(20):
        p.pump()
        p.now += 0.5
        p.client.handle_timer(p.now)
    received = sum(len(e.data) for e in p.events(p.server) if isinstance(e, qe.StreamDataReceived))
    assert received == 64 * 1024  # aioquic alone would have doubled the window as data arrived
    p.server.consumed[sid] = received  # the application read it all
    p.server.consumed_total = received
    p.pump()
    more = sum(len(e.data) for e in p.events(p.server) if isinstance(e, qe.StreamDataReceived))
    assert more == 64 * 1024


def test_spare_connection_ids_wait_until_issued() -> None:
    """Spare connection IDs are not part of the handshake (QuicConfig.connection_id_issue_delay): each side
    has only its first until the adapter's timer calls issue_connection_ids(); the dialer still knows the
    reset token of the listener's ID in use, from its transport parameters."""
    p = Pair()
    assert [len(e._host_cids) for e in (p.server, p.client)] == [1, 1]
    assert not p.client._peer_cid_available and not p.server._peer_cid_available
    first = p.server._host_cids[0]
    assert p.client.peer_reset_tokens() == [reset_token_for(p.reset_key, first.cid)]
    version = p.client.peer_cids_version()
    for e in (p.server, p.client):
        e.issue_connection_ids()
    p.pump()
    assert [len(e._host_cids) for e in (p.server, p.client)] == [8, 8]
    assert len(p.client._peer_cid_available) == len(p.server._peer_cid_available) == 7
    assert p.client.peer_cids_version() != version
    issued = [e for e in p.events(p.server) if isinstance(e, qe.ConnectionIdIssued)]
    assert len(issued) == 7
    # with no delay they are issued at completion, as before
    q = Pair(cfg=QuicConfig(connection_id_issue_delay=0))
    assert [len(e._host_cids) for e in (q.server, q.client)] == [8, 8]


def test_stateless_reset_tokens_are_derived_from_the_host_key_and_cid() -> None:
    p = Pair()
    p.server.issue_connection_ids()
    p.pump()
    tokens = {c.cid: c.stateless_reset_token for c in p.server._host_cids}
    assert len(tokens) > 1  # the initial one and the NEW_CONNECTION_ID ones
    for cid, token in tokens.items():
        assert token == reset_token_for(p.reset_key, cid)
    assert set(p.client.peer_reset_tokens()) <= set(tokens.values())
    assert stateless_reset_key(p.ks) == p.reset_key  # stable across restarts
    assert stateless_reset_key(generate_key_pair()) != p.reset_key


def test_stream_limits_advertised() -> None:
    p = Pair(cfg=QuicConfig(max_inbound_streams=3))
    assert p.client._remote_max_streams_bidi == 3
    assert p.client._remote_max_streams_uni == 0


def test_addresses_and_settings() -> None:
    assert parse_quic_multiaddr(Multiaddr("/ip4/127.0.0.1/udp/4001/quic-v1")) == ("127.0.0.1", 4001)
    pid = PeerId.from_public_key(generate_key_pair().public_key)
    assert parse_quic_multiaddr(Multiaddr(f"/ip6/::1/udp/5/quic-v1/p2p/{pid}")) == ("::1", 5)
    for bad in ("/ip4/1.2.3.4/udp/1/quic", "/ip4/1.2.3.4/tcp/1", "/ip4/1.2.3.4/udp/1/quic-v1/webtransport"):
        try:
            parse_quic_multiaddr(Multiaddr(bad))
        except MultiaddrError:
            continue
        raise AssertionError(f"{bad} accepted")
    assert QuicConfig().effective_idle_timeout == 30.0
    assert QuicConfig(keep_alive_interval=1.0).effective_idle_timeout == 2.0
    assert QuicConfig(idle_timeout=5.0).effective_idle_timeout == 5.0


def test_only_quic_version_1_is_spoken() -> None:
    """``/quic-v1`` is RFC 9000 version 1: no version 2 Initial keys are derived (nor offered) per connection."""
    p = Pair()
    for engine in (p.client, p.server):
        assert engine._configuration.supported_versions == [QuicProtocolVersion.VERSION_1]
        assert list(engine._cryptos_initial) == [QuicProtocolVersion.VERSION_1]
    assert p.client.handshake_done and p.server.handshake_done


def test_aioquic_epochs_memoized_and_unchanged() -> None:
    """The engine memoizes aioquic's EPOCHS() (its per-connection frame table calls it 33 times): same
    values as computed fresh, one frozenset per shortcut."""
    from aioquic import tls as aioquic_tls
    from aioquic.quic import connection as aioquic_connection

    epochs = aioquic_connection.EPOCHS
    assert hasattr(epochs, "cache_info")
    assert epochs("IH01") is epochs("IH01")
    assert epochs("IH01") == frozenset(
        {
            aioquic_tls.Epoch.INITIAL,
            aioquic_tls.Epoch.HANDSHAKE,
            aioquic_tls.Epoch.ZERO_RTT,
            aioquic_tls.Epoch.ONE_RTT,
        }
    )
    assert epochs("1") == frozenset({aioquic_tls.Epoch.ONE_RTT})


def test_tls_block_helpers_replace_aioquics_generators_with_the_same_results() -> None:
    """aioquic's TLS writes and reads its length-prefixed blocks through the classes the engine module puts in
    place of its @contextmanager generators: same bytes, same refusal of trailing bytes, and nothing written or
    checked when the block ends with an exception."""
    assert not hasattr(tls.push_block, "__wrapped__")  # replaced on import of the engine module
    buf = Buffer(capacity=64)
    with tls.push_block(buf, 2):
        buf.push_bytes(b"abc")
        with tls.push_extension(buf, 0x10):
            buf.push_bytes(b"xy")
    assert buf.data == b"\x00\x09abc\x00\x10\x00\x02xy"

    pull = Buffer(data=buf.data)
    with tls.pull_block(pull, 2) as length:
        assert length == 9
        pull.pull_bytes(9)
    with pytest.raises(tls.AlertDecodeError), tls.pull_block(Buffer(data=b"\x00\x02xy"), 2):
        pass  # a block not read to its end
    # the body's exception, not a decode error on top of it
    with pytest.raises(KeyError), tls.pull_block(Buffer(data=b"\x00\x02xy"), 2):
        raise KeyError

    out = Buffer(data=b"\xee" * 8)
    with pytest.raises(KeyError), tls.push_block(out, 2):
        out.push_bytes(b"zz")
        raise KeyError
    assert out.tell() == 4 and out.data_slice(0, 4) == b"\xee\xeezz"  # the length was never written

    hashed: list[bytes] = []

    class Schedule:
        def update_hash(self, data: bytes) -> None:
            hashed.append(bytes(data))

    msg = Buffer(capacity=16)
    msg.push_bytes(b"before")
    with tls.push_message(Schedule(), msg):  # type: ignore[arg-type]
        msg.push_bytes(b"message")
    assert hashed == [b"message"]
