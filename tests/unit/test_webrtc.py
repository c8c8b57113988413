"""WebRTC-direct pieces without sockets: the stream framing (codec and state machine), ICE credentials and
STUN checks, certificates and certhashes, the Noise prologue (the spec's test vector), and two DTLS engines
wired back to back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiolibp2p.exceptions import CertificateError, DecodeError, MessageTooLarge, MultiaddrError, StreamClosed
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.transports.webrtc import ice
from aiolibp2p.transports.webrtc.certificate import (
    WebRtcCertificate,
    certhash_to_fingerprint,
    fingerprint_to_certhash,
    sdp_fingerprint,
)
from aiolibp2p.transports.webrtc.connection import noise_prologue
from aiolibp2p.transports.webrtc.dtls import DtlsClosed, DtlsData, DtlsEngine, DtlsHandshakeComplete
from aiolibp2p.transports.webrtc.framing import (
    FLAG_FIN,
    FLAG_FIN_ACK,
    FLAG_RESET,
    FLAG_STOP_SENDING,
    MAX_MESSAGE_SIZE,
    DataReceived,
    FinAckReceived,
    FinReceived,
    MessageDecoder,
    ResetReceived,
    StopSendingReceived,
    StreamCore,
    encode_data,
    encode_flag,
)
from aiolibp2p.transports.webrtc.transport import parse_webrtc_direct_multiaddr
from aiolibp2p.wire.pb import webrtc_pb2 as pb
from aiolibp2p.wire.varint import encode_uvarint

# -- framing codec ------------------------------------------------------------------------------------------


@given(st.binary(max_size=20000))
def test_encode_data_matches_protobuf(data: bytes) -> None:
    body = pb.Message(message=data).SerializeToString()
    assert encode_data(data) == encode_uvarint(len(body)) + body


@given(st.lists(st.binary(max_size=3000), max_size=8), st.data())
def test_decoder_reassembles_any_split(payloads: list[bytes], data: st.DataObject) -> None:
    wire = b"".join(encode_data(p) for p in payloads) + encode_flag(FLAG_FIN)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    dec = MessageDecoder()
    got: list[pb.Message] = []
    prev = 0
    for c in [*cuts, len(wire)]:
        got += dec.feed(wire[prev:c])
        prev = c
    assert [m.message for m in got[:-1]] == payloads
    assert got[-1].flag == FLAG_FIN and dec.buffered == 0


def test_decoder_refuses_oversized_before_buffering() -> None:
    dec = MessageDecoder(max_size=1000)
    with pytest.raises(MessageTooLarge):
        dec.feed(encode_uvarint(1001))


def test_decoder_refuses_malformed_protobuf() -> None:
    with pytest.raises(DecodeError):
        MessageDecoder().feed(b"\x02\x12\x05")  # field 2 claims 5 bytes, has none


def test_flag_with_error_code_and_unknown_fields() -> None:
    (m,) = MessageDecoder().feed(encode_flag(FLAG_RESET, 42))
    assert m.flag == FLAG_RESET and m.errorCode == 42
    body = b"\x08\x00" + b"\x20\x07"  # FIN and an unknown field 4: ignored
    (m,) = MessageDecoder().feed(encode_uvarint(len(body)) + body)
    assert m.flag == FLAG_FIN


def test_send_data_chunks_within_16_kib() -> None:
    core = StreamCore()
    msgs = core.send_data(bytes(100_000))
    assert all(len(m) <= MAX_MESSAGE_SIZE for m in msgs)
    dec = MessageDecoder()
    assert sum(len(x.message) for m in msgs for x in dec.feed(m)) == 100_000


# -- stream state machine -----------------------------------------------------------------------------------


def _pair() -> tuple[StreamCore, StreamCore]:
    return StreamCore(), StreamCore()


def _deliver(dst: StreamCore, msgs: list[bytes]) -> tuple[list[object], list[bytes]]:
    events: list[object] = []
    out: list[bytes] = []
    for m in msgs:
        ev, o = dst.receive(m)
        events += ev
        out += o
    return events, out


def test_fin_fin_ack_close_handshake() -> None:
    a, b = _pair()
    ev, back = _deliver(b, a.send_data(b"hello") + a.send_fin())
    assert ev == [DataReceived(b"hello"), FinReceived()]
    assert a.write_closed and not a.done
    ev, _ = _deliver(a, back)  # the FIN_ACK
    assert ev == [FinAckReceived()] and a.fin_acked
    ev, back = _deliver(a, b.send_fin())
    assert ev == [FinReceived()]
    _deliver(b, back)
    assert a.done and b.done


def test_write_after_fin_is_refused_and_a_repeated_fin_is_acked_again() -> None:
    a, b = _pair()
    fin = a.send_fin()
    with pytest.raises(StreamClosed):
        a.send_data(b"x")
    assert a.send_fin() == []
    _, acks1 = _deliver(b, fin)
    ev, acks2 = _deliver(b, fin)
    assert ev == [] and acks1 == acks2 == [encode_flag(FLAG_FIN_ACK)]


def test_stop_sending_closes_the_remote_write_side() -> None:
    a, b = _pair()
    ev, _ = _deliver(b, a.send_stop_sending())
    assert ev == [StopSendingReceived()] and b.write_closed
    assert a.read_closed
    # data after our STOP_SENDING is dropped, not delivered
    ev, _ = _deliver(a, [encode_data(b"late")])
    assert ev == []


def test_reset_carries_its_code_and_ends_everything() -> None:
    a, b = _pair()
    ev, _ = _deliver(b, a.send_reset(7))
    assert ev == [ResetReceived(7)] and b.done and a.done
    # data on a reset stream is ignored
    ev, out = _deliver(b, [encode_data(b"x"), encode_flag(FLAG_FIN)])
    assert ev == [] and out == []
    assert a.send_reset(1) == []


def test_data_and_flag_in_one_message() -> None:
    body = pb.Message(flag=FLAG_FIN, message=b"last").SerializeToString()
    ev, out = StreamCore().receive(encode_uvarint(len(body)) + body)
    assert ev == [DataReceived(b"last"), FinReceived()] and out == [encode_flag(FLAG_FIN_ACK)]


def test_fin_ack_without_fin_sent_is_ignored() -> None:
    ev, _ = StreamCore().receive(encode_flag(FLAG_FIN_ACK))
    assert ev == []
    ev, _ = StreamCore().receive(encode_flag(FLAG_STOP_SENDING))
    assert ev == [StopSendingReceived()]


# -- ICE ------------------------------------------------------------------------------------------------------


def test_v1_credentials_from_a_dialer_check_verify_on_the_listener() -> None:
    creds = ice.IceCredentials.for_dial_v1()
    assert creds.server_ufrag.startswith(ice.UFRAG_PREFIX_V1) and creds.server_ufrag == creds.client_pwd
    txid, data = ice.binding_request(creds, controlling=True, tie_breaker=1, use_candidate=True)
    assert ice.is_stun(data) and not ice.is_dtls(data)
    req = ice.parse_binding_request(data)
    assert req is not None and req.transaction_id == txid and req.use_candidate and req.controlling
    derived = ice.IceCredentials.from_server_ufrag(req.username)
    assert derived == creds
    resp = ice.binding_success(txid, ("127.0.0.1", 5), derived.server_pwd)
    assert ice.parse_binding_response(resp, creds.server_pwd) == txid
    assert ice.parse_binding_response(resp, "wrong-password") is None


def test_v2_dial_credentials_round_trip() -> None:
    creds = ice.IceCredentials.for_dial_v2()
    assert (
        creds.server_ufrag == ice.UFRAG_PREFIX_V2 + creds.client_pwd
        and creds.client_ufrag != creds.client_pwd
    )
    _, data = ice.binding_request(creds, controlling=True, tie_breaker=1, use_candidate=True)
    req = ice.parse_binding_request(data)
    assert req is not None and ice.IceCredentials.from_server_ufrag(req.username) == creds


def test_v2_ufrag_carries_the_client_password() -> None:
    pwd = "A" * 24
    creds = ice.IceCredentials.from_server_ufrag(f"{ice.UFRAG_PREFIX_V2}{pwd}:clientufrag")
    assert creds.client_pwd == pwd and creds.server_pwd == creds.server_ufrag
    with pytest.raises(DecodeError):
        ice.IceCredentials.from_server_ufrag(f"{ice.UFRAG_PREFIX_V2}short:clientufrag")


@pytest.mark.parametrize(
    "username",
    [
        "libp2p+webrtc+v9/abc:abc",  # unknown version: refused, not a v1 fallback
        "plainufrag:plainufrag",
        "libp2p+webrtc+v1/abc:libp2p+webrtc+v1/abd",  # v1 ufrags must match
        "libp2p+webrtc+v1/abc",  # no colon
        "libp2p+webrtc+v1/a b:libp2p+webrtc+v1/a b",  # not ice-chars
    ],
)
def test_bad_usernames_are_refused(username: str) -> None:
    with pytest.raises(DecodeError):
        ice.IceCredentials.from_server_ufrag(username)


def test_checks_with_a_bad_integrity_or_garbage_are_ignored() -> None:
    creds = ice.IceCredentials.for_dial_v1()
    _, data = ice.binding_request(creds, controlling=True, tie_breaker=1, use_candidate=True)
    assert ice.parse_binding_request(data, key_for="not-the-password") is None
    tampered = bytearray(data)
    tampered[30] ^= 1
    assert ice.parse_binding_request(bytes(tampered)) is None
    assert ice.parse_binding_request(b"\x00\x01" + bytes(40)) is None
    assert ice.parse_binding_request(b"junk") is None


# -- certificates ----------------------------------------------------------------------------------------------


def test_noise_prologue_spec_vector() -> None:
    a = bytes.fromhex("3e79af40d6059617a0d83b83a52ce73b0c1f37a72c6043ad2969e2351bdca870")
    b = bytes.fromhex("30fc9f469c207419dfdd0aab5f27a86c973c94e40548db9375cca2e915973b99")
    assert noise_prologue(a, b).hex() == (
        "6c69627032702d7765627274632d6e6f6973653a12203e79af40d6059617a0d83b83a52ce73b0c1f37a72c6043ad"
        "2969e2351bdca870122030fc9f469c207419dfdd0aab5f27a86c973c94e40548db9375cca2e915973b99"
    )


def test_certhash_round_trip_and_sdp_form() -> None:
    cert = WebRtcCertificate.generate()
    h = cert.certhash
    assert h.startswith("u") and certhash_to_fingerprint(h) == cert.fingerprint
    assert fingerprint_to_certhash(cert.fingerprint) == h
    assert sdp_fingerprint(bytes([0xAB, 0x01])) == "sha-256 AB:01"
    with pytest.raises(DecodeError):
        certhash_to_fingerprint("uAAEA")  # identity multihash: not sha2-256


def test_certificate_persists_across_restarts(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "webrtc.pem"
    first = WebRtcCertificate.load_or_create(path)
    second = WebRtcCertificate.load_or_create(path)
    assert first.certhash == second.certhash
    assert path.stat().st_mode & 0o077 == 0
    path.write_bytes(b"not a pem")
    with pytest.raises(CertificateError):
        WebRtcCertificate.load_or_create(path)


def test_multiaddr_parsing() -> None:
    cert = WebRtcCertificate.generate()
    ip, port, fps = parse_webrtc_direct_multiaddr(
        Multiaddr(f"/ip4/127.0.0.1/udp/4001/webrtc-direct/certhash/{cert.certhash}")
    )
    assert (ip, port, fps) == ("127.0.0.1", 4001, [cert.fingerprint])
    with pytest.raises(MultiaddrError):
        parse_webrtc_direct_multiaddr(Multiaddr("/ip4/127.0.0.1/udp/4001/webrtc-direct"))
    assert (
        parse_webrtc_direct_multiaddr(Multiaddr("/ip6/::1/udp/1/webrtc-direct"), need_certhash=False)[2] == []
    )
    with pytest.raises(MultiaddrError):
        parse_webrtc_direct_multiaddr(Multiaddr("/ip4/127.0.0.1/udp/1/quic-v1"))


# -- DTLS -------------------------------------------------------------------------------------------------------


def _pump(a: DtlsEngine, b: DtlsEngine) -> list[object]:
    events: list[object] = []
    for _ in range(10):
        moved = False
        for src, dst in ((a, b), (b, a)):
            for d in src.datagrams_to_send():
                moved = True
                events += dst.receive(d)
        if not moved:
            break
    return events


def test_dtls_engines_back_to_back() -> None:
    ca, cb = WebRtcCertificate.generate(), WebRtcCertificate.generate()
    client, server = DtlsEngine(ca, is_server=False), DtlsEngine(cb, is_server=True)
    client.start()
    events = _pump(client, server)
    done = [e for e in events if isinstance(e, DtlsHandshakeComplete)]
    assert {e.remote_fingerprint for e in done} == {ca.fingerprint, cb.fingerprint}
    client.send(b"x" * 1200)
    (d,) = client.datagrams_to_send()
    assert len(d) <= 1400 and server.receive(d) == [DtlsData(b"x" * 1200)]
    assert server.receive(b"\x17" + bytes(40)) == []  # a record that does not decrypt is dropped
    client.close()
    (d,) = client.datagrams_to_send()
    assert server.receive(d) == [DtlsClosed()]
