"""Message layer: StrictSign / StrictNoSign, signatures, keys, message IDs, size limits, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pubsub_harness import Net

from aiolibp2p.crypto.keys import ECDSAPrivateKey, Ed25519PrivateKey
from aiolibp2p.exceptions import DecodeError, MessageTooLarge, ProtocolViolation
from aiolibp2p.pubsub.core import MessageDropped, PubSubConfig
from aiolibp2p.pubsub.gossipsub import GossipSubConfig
from aiolibp2p.pubsub.message import (
    SIGNING_PREFIX,
    MessageRejected,
    RejectReason,
    SignaturePolicy,
    build_message,
    check_message,
    content_message_id,
    default_message_id,
    message_from,
    signing_bytes,
)
from aiolibp2p.wire.pb import pubsub_pb2 as pb

KEY = Ed25519PrivateKey.from_seed(bytes(32))
OTHER = Ed25519PrivateKey.from_seed(bytes([1]) * 32)


def signed(data: bytes = b"x", topic: str = "t", seqno: int = 7, key: object = KEY) -> pb.Message:
    return build_message(topic, data, policy=SignaturePolicy.STRICT_SIGN, private_key=key, seqno=seqno)  # type: ignore[arg-type]


def test_strict_sign_layout() -> None:
    msg = signed(seqno=0x0102)
    assert message_from(msg) == KEY.public_key.peer_id.to_bytes()
    assert msg.seqno == b"\x00\x00\x00\x00\x00\x00\x01\x02"
    assert not msg.HasField("key")  # Ed25519 keys are inlined in the peer ID
    stripped = pb.Message()
    stripped.CopyFrom(msg)
    stripped.ClearField("signature")
    assert signing_bytes(msg) == SIGNING_PREFIX + stripped.SerializeToString()
    assert KEY.public_key.verify(signing_bytes(msg), msg.signature)
    checked = check_message(msg, SignaturePolicy.STRICT_SIGN)
    assert checked.source == KEY.public_key.peer_id and checked.seqno_int == 0x0102
    assert default_message_id(msg) == message_from(msg) + msg.seqno


def test_key_field_for_hashed_peer_ids() -> None:
    ecdsa = ECDSAPrivateKey.generate()
    msg = signed(key=ecdsa)
    assert msg.key == ecdsa.public_key.to_protobuf()
    check_message(msg, SignaturePolicy.STRICT_SIGN)
    # the key must be present ...
    missing = pb.Message()
    missing.CopyFrom(msg)
    missing.ClearField("key")
    with pytest.raises(MessageRejected) as exc:
        check_message(missing, SignaturePolicy.STRICT_SIGN)
    assert exc.value.reason is RejectReason.INVALID_SIGNATURE
    # ... and match `from`
    wrong = pb.Message()
    wrong.CopyFrom(msg)
    wrong.key = ECDSAPrivateKey.generate().public_key.to_protobuf()
    with pytest.raises(MessageRejected):
        check_message(wrong, SignaturePolicy.STRICT_SIGN)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: setattr(m, "data", b"tampered"),
        lambda m: setattr(m, "topic", "other"),
        lambda m: setattr(m, "seqno", (8).to_bytes(8, "big")),
        lambda m: setattr(m, "signature", bytes(64)),
        lambda m: setattr(m, "from", OTHER.public_key.peer_id.to_bytes()),  # wrong key for the signature
        lambda m: setattr(m, "key", OTHER.public_key.to_protobuf()),  # key contradicting the inlined one
        lambda m: setattr(m, "from", b"\x00\x03abc"),  # not a valid peer ID
        lambda m: setattr(m, "seqno", b"\x01"),  # seqno must be 8 bytes
    ],
)
def test_bad_signatures_rejected(mutate: object) -> None:
    msg = signed()
    mutate(msg)  # type: ignore[operator]
    with pytest.raises(MessageRejected) as exc:
        check_message(msg, SignaturePolicy.STRICT_SIGN)
    assert exc.value.reason.penalised


def test_missing_signature_rejected() -> None:
    msg = signed()
    msg.ClearField("signature")
    with pytest.raises(MessageRejected) as exc:
        check_message(msg, SignaturePolicy.STRICT_SIGN)
    assert exc.value.reason is RejectReason.MISSING_SIGNATURE


def test_strict_no_sign() -> None:
    msg = build_message("t", b"d", policy=SignaturePolicy.STRICT_NO_SIGN)
    assert not any(msg.HasField(f) for f in ("from", "seqno", "signature", "key"))
    assert check_message(msg, SignaturePolicy.STRICT_NO_SIGN).source is None
    for field, value in (("from", b""), ("seqno", b""), ("key", b"k")):
        bad = pb.Message()
        bad.CopyFrom(msg)
        setattr(bad, field, value)  # present though empty: still a violation
        with pytest.raises(MessageRejected) as exc:
            check_message(bad, SignaturePolicy.STRICT_NO_SIGN)
        assert exc.value.reason is RejectReason.UNEXPECTED_AUTH_INFO
    with pytest.raises(MessageRejected) as exc:
        check_message(signed(), SignaturePolicy.STRICT_NO_SIGN)
    assert exc.value.reason is RejectReason.UNEXPECTED_SIGNATURE
    assert content_message_id(msg) == content_message_id(
        build_message("t", b"d", policy=SignaturePolicy.STRICT_NO_SIGN)
    )


def test_non_utf8_topic_rejected() -> None:
    raw = b"\x22\x02\xff\xfe"  # topic = invalid UTF-8 (wire-legal in proto2)
    with pytest.raises(MessageRejected) as exc:
        check_message(pb.Message.FromString(raw), SignaturePolicy.STRICT_NO_SIGN)
    assert exc.value.reason is RejectReason.MALFORMED


def test_router_rejects_bad_signature_with_penalty() -> None:
    net = Net()
    a, b = net.add_gossipsub(), net.add_gossipsub()
    net.connect(a, b)
    net.subscribe_all("t")
    forged = signed(topic="t")
    forged.data = b"forged"
    b.router.handle_frame(a.peer_id, pb.RPC(publish=[forged]).SerializeToString(), net.now)
    net.pump()
    assert b.delivered == []
    assert any(isinstance(e, MessageDropped) and e.reason is RejectReason.INVALID_SIGNATURE for e in b.events)
    assert b.router.stats.messages_rejected == 1
    # a forged copy does not poison the seen cache: the genuine message still gets through
    b.router.handle_frame(a.peer_id, pb.RPC(publish=[signed(topic="t")]).SerializeToString(), net.now)
    net.pump()
    assert b.data() == [b"x"]


def test_router_rejects_self_origin() -> None:
    net = Net()
    a, b = net.add_gossipsub(key=KEY), net.add_gossipsub()
    net.connect(a, b)
    net.subscribe_all("t")
    a.router.handle_frame(b.peer_id, pb.RPC(publish=[signed(topic="t")]).SerializeToString(), net.now)
    net.pump()
    assert a.delivered == []
    assert any(isinstance(e, MessageDropped) and e.reason is RejectReason.SELF_ORIGIN for e in a.events)


def test_publish_too_large() -> None:
    config = GossipSubConfig(pubsub=PubSubConfig(max_message_size=4096))
    net = Net()
    a = net.add_gossipsub(config)
    with pytest.raises(MessageTooLarge):
        a.router.publish("t", bytes(4096), net.now)
    a.router.publish("t", bytes(3000), net.now)  # fits


def test_oversized_frame_and_message_rejected() -> None:
    config = GossipSubConfig(pubsub=PubSubConfig(max_message_size=4096))
    net = Net()
    a, b = net.add_gossipsub(), net.add_gossipsub(config)
    net.connect(a, b)
    net.subscribe_all("t")
    with pytest.raises(MessageTooLarge) as exc:
        b.router.handle_frame(a.peer_id, bytes(5000), net.now)
    assert exc.value.peer == a.peer_id
    # a message that (with its RPC framing) cannot fit is rejected even inside an acceptable frame
    overhead = signed(data=b"", topic="t").ByteSize() + 3  # fields other than data, data's tag and length
    msg = signed(data=bytes(4090 - overhead), topic="t")
    assert 4080 < msg.ByteSize() <= 4093
    big = pb.RPC(publish=[msg]).SerializeToString()
    assert len(big) <= 4096
    b.router.handle_frame(a.peer_id, big, net.now)
    assert b.router.stats.messages_too_large == 1


def test_malformed_protobuf_is_a_typed_error() -> None:
    net = Net()
    a, b = net.add_gossipsub(), net.add_gossipsub()
    net.connect(a, b)
    for junk in (b"\xff", b"\x0a\x05ab", b"\x12\xff\xff\xff\xff\x0f", b"\x08"):
        with pytest.raises(DecodeError) as exc:
            b.router.handle_frame(a.peer_id, junk, net.now)
        assert isinstance(exc.value, ProtocolViolation) and exc.value.peer == a.peer_id
    assert b.router.stats.rpcs_malformed == 4


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_frames_never_crash(data: bytes) -> None:
    net = _fuzz_net
    try:
        _fuzz_b.router.handle_frame(_fuzz_a.peer_id, data, net.now)
    except DecodeError:
        pass
    net.pump()


_fuzz_net = Net(seed=9)
_fuzz_a, _fuzz_b = _fuzz_net.add_gossipsub(), _fuzz_net.add_gossipsub()
_fuzz_net.connect(_fuzz_a, _fuzz_b)
_fuzz_net.subscribe_all("t")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(
            lambda topic, data, frm, seqno, sig: pb.Message(
                topic=topic, data=data, seqno=seqno, signature=sig, **{"from": frm}
            ),
            st.sampled_from(["t", "u"]),
            st.binary(max_size=20),
            st.binary(max_size=40),
            st.binary(max_size=10),
            st.binary(max_size=70),
        ),
        max_size=4,
    ),
    st.lists(st.binary(max_size=40), max_size=5),
)
def test_fuzzed_rpcs_never_crash(msgs: list[pb.Message], ids: list[bytes]) -> None:
    rpc = pb.RPC(publish=msgs)
    rpc.control.ihave.add(topicID="t", messageIDs=ids)
    rpc.control.iwant.add(messageIDs=ids)
    rpc.control.graft.add(topicID="u")
    rpc.control.prune.add(
        topicID="t", peers=[pb.PeerInfo(peerID=i, signedPeerRecord=i) for i in ids], backoff=2**63
    )
    rpc.control.idontwant.add(messageIDs=ids)
    _fuzz_b.router.handle_frame(_fuzz_a.peer_id, rpc.SerializeToString(), _fuzz_net.now)
    _fuzz_net.pump()
    assert _fuzz_b.delivered == []
