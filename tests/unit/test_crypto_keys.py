"""Tests of aiolibp2p.crypto.keys: the peer-ids spec test vectors, sign/verify per key type, protobuf
determinism and strict parsing, key files, and fuzzing of the unmarshallers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolibp2p.crypto import keys as K
from aiolibp2p.crypto.keys import (
    KeyType,
    PrivateKey,
    generate_key_pair,
    load_private_key_file,
    save_private_key_file,
    unmarshal_private_key,
    unmarshal_public_key,
)
from aiolibp2p.exceptions import CryptoError, DecodeError
from aiolibp2p.wire.pb import crypto_pb2

# --- test vectors of peer-ids/peer-ids.md ("Test vectors"), hex of the protobufs ---------------------------
ECDSA_PRIVATE = (
    "08031279307702010104203E5B1FE9712E6C314942A750BD67485DE3C1EFE85B1BFB520AE8F9AE3DFA4A4CA00A06082A8648CE3D"
    "030107A14403420004DE3D300FA36AE0E8F5D530899D83ABAB44ABF3161F162A4BC901D8E6ECDA020E8B6D5F8DA30525E71D6851"
    "510C098E5C47C646A597FB4DCEC034E9F77C409E62"
)
ECDSA_PUBLIC = (
    "0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d530899d83abab44abf3161f"
    "162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646a597fb4dcec034e9f77c409e62"
)
ED25519_PRIVATE = (
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be8fd4b47bf3d3"
    "b34b871c3cacf6010f0e42d474fce27e"
)
ED25519_PUBLIC = "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
SECP256K1_PRIVATE = "0802122053DADF1D5A164D6B4ACDB15E24AA4C5B1D3461BDBD42ABEDB0A4404D56CED8FB"
SECP256K1_PUBLIC = "08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99"
RSA_PRIVATE = (
    "080012ae123082092a0201000282020100e1beab071d08200bde24eef00d049449b07770ff9910257b2d7d5dda242ce8"
    "f0e2f12e1af4b32d9efd2c090f66b0f29986dbb645dae9880089704a94e5066d594162ae6ee8892e6ec70701db0a6c44"
    "5c04778eb3de1293aa1a23c3825b85c6620a2bc3f82f9b0c309bc0ab3aeb1873282bebd3da03c33e76c21e9beb172fd4"
    "4c9e43be32e2c99827033cf8d0f0c606f4579326c930eb4e854395ad941256542c793902185153c474bed109d6ff5141"
    "ebf9cd256cf58893a37f83729f97e7cb435ec679d2e33901d27bb35aa0d7e20561da08885ef0abbf8e2fb48d6a548704"
    "7a9ecb1ad41fa7ed84f6e3e8ecd5d98b3982d2a901b4454991766da295ab78822add5612a2df83bcee814cf50973e80d"
    "7ef38111b1bd87da2ae92438a2c8cbcc70b31ee319939a3b9c761dbc13b5c086d6b64bf7ae7dacc14622375d92a8ff9a"
    "f7eb962162bbddebf90acb32adb5e4e4029f1c96019949ecfbfeffd7ac1e3fbcc6b6168c34be3d5a2e5999fcbb39bba7"
    "adbca78eab09b9bc39f7fa4b93411f4cc175e70c0a083e96bfaefb04a9580b4753c1738a6a760ae1afd851a1a4bdad23"
    "1cf56e9284d832483df215a46c1c21bdf0c6cfe951c18f1ee4078c79c13d63edb6e14feaeffabc90ad317e4875fe6481"
    "01b0864097e998f0ca3025ef9638cd2b0caecd3770ab54a1d9c6ca959b0f5dcbc90caeefc4135baca6fd475224269bbe"
    "1b02030100010282020100a472ffa858efd8588ce59ee264b957452f3673acdf5631d7bfd5ba0ef59779c231b0bc838a"
    "8b14cae367b6d9ef572c03c7883b0a3c652f5c24c316b1ccfd979f13d0cd7da20c7d34d9ec32dfdc81ee7292167e706d"
    "705efde5b8f3edfcba41409e642f8897357df5d320d21c43b33600a7ae4e505db957c1afbc189d73f0b5d972d9aaaeeb"
    "232ca20eebd5de6fe7f29d01470354413cc9a0af1154b7af7c1029adcd67c74b4798afeb69e09f2cb387305e73a1b5f4"
    "50202d54f0ef096fe1bde340219a1194d1ac9026e90b366cce0c59b239d10e4888f52ca1780824d39ae01a6b9f4dd605"
    "9191a7f12b2a3d8db3c2868cd4e5a5862b8b625a4197d52c6ac77710116ebd3ced81c4d91ad5fdfbed68312ebce7eea4"
    "5c1833ca3acf7da2052820eacf5c6b07d086dabeb893391c71417fd8a4b1829ae2cf60d1749d0e25da19530d889461c2"
    "1da3492a8dc6ccac7de83ac1c2185262c7473c8cc42f547cc9864b02a8073b6aa54a037d8c0de3914784e6205e83d979"
    "18b944f11b877b12084c0dd1d36592f8a4f8b8da5bb404c3d2c079b22b6ceabfbcb637c0dbe0201f0909d533f8bf308a"
    "da47aee641a012a494d31b54c974e58b87f140258258bb82f31692659db7aa07e17a5b2a0832c24e122d3a8babcc9ee7"
    "4cbb07d3058bb85b15f6f6b2674aba9fd34367be9782d444335fbed31e3c4086c652597c27104938b47fa10282010100"
    "e9fdf843c1550070ca711cb8ff28411466198f0e212511c3186623890c0071bf6561219682fe7dbdfd81176eba7c4fab"
    "a21614a20721e0fcd63768e6d925688ecc90992059ac89256e0524de90bf3d8a052ce6a9f6adafa712f3107a016e20c8"
    "0255c9e37d8206d1bc327e06e66eb24288da866b55904fd8b59e6b2ab31bc5eab47e597093c63fab7872102d57b4c589"
    "c66077f534a61f5f65127459a33c91f6db61fc431b1ae90be92b4149a3255291baf94304e3efb77b1107b5a3bda91135"
    "9c40a53c347ff9100baf8f36dc5cd991066b5bdc28b39ed644f404afe9213f4d31c9d4e40f3a5f5e3c39bebeb244e841"
    "37544e1a1839c1c8aaebf0c78a7fad590282010100f6fa1f1e6b803742d5490b7441152f500970f46feb0b73a6e4baba"
    "2aaf3c0e245ed852fc31d86a8e46eb48e90fac409989dfee45238f97e8f1f8e83a136488c1b04b8a7fb695f37b861630"
    "7ff8a8d63e8cfa0b4fb9b9167ffaebabf111aa5a4344afbabd002ae8961c38c02da76a9149abdde93eb389eb32595c29"
    "ba30d8283a7885218a5a9d33f7f01dbdf85f3aad016c071395491338ec318d39220e1c7bd69d3d6b520a13a30d745c10"
    "2b827ad9984b0dd6aed73916ffa82a06c1c111e7047dcd2668f988a0570a71474992eecf416e068f029ec323d5d635fd"
    "24694fc9bf96973c255d26c772a95bf8b7f876547a5beabf86f06cd21b67994f944e7a5493028201010095b02fd30069"
    "e547426a8bea58e8a2816f33688dac6c6f6974415af8402244a22133baedf34ce499d7036f3f19b38eb00897c18949b0"
    "c5a25953c71aeeccfc8f6594173157cc854bd98f16dffe8f28ca13b77eb43a2730585c49fc3f608cd811bb54b03b84bd"
    "daa8ef910988567f783012266199667a546a18fd88271fbf63a45ae4fd4884706da8befb9117c0a4d73de5172f8640b1"
    "091ed8a4aea3ed4641463f5ff6a5e3401ad7d0c92811f87956d1fd5f9a1d15c7f3839a08698d9f35f9d966e5000f7cb2"
    "655d7b6c4adcd8a9d950ea5f61bb7c9a33c17508f9baa313eecfee4ae493249ebe05a5d7770bbd3551b2eeb752e3649e"
    "0636de08e3d672e66cb90282010100ad93e4c31072b063fc5ab5fe22afacece775c795d0efdf7c704cfc027bde0d626a"
    "7646fc905bb5a80117e3ca49059af14e0160089f9190065be9bfecf12c3b2145b211c8e89e42dd91c38e9aa23ca73697"
    "063564f6f6aa6590088a738722df056004d18d7bccac62b3bafef6172fc2a4b071ea37f31eff7a076bcab7dd144e51a9"
    "da8754219352aef2c73478971539fa41de4759285ea626fa3c72e7085be47d554d915bbb5149cb6ef835351f23104304"
    "9cd941506a034bf2f8767f3e1e42ead92f91cb3d75549b57ef7d56ac39c2d80d67f6a2b4ca192974bfc5060e2dd17121"
    "7971002193dba12e7e4133ab201f07500a90495a38610279b13a48d54f0c99028201003e3a1ac0c2b67d54ed5c4bbe04"
    "a7db99103659d33a4f9d35809e1f60c282e5988dddc964527f3b05e6cc890eab3dcb571d66debf3a5527704c87264b39"
    "54d7265f4e8d2c637dd89b491b9cf23f264801f804b90454d65af0c4c830d1aef76f597ef61b26ca857ecce9cb78d4f6"
    "c2218c00d2975d46c2b013fbf59b750c3b92d8d3ed9e6d1fd0ef1ec091a5c286a3fe2dead292f40f380065731e2079eb"
    "b9f2a7ef2c415ecbb488da98f3a12609ca1b6ec8c734032c8bd513292ff842c375d4acd1b02dfb206b24cd815f8e2f9d"
    "4af8e7dea0370b19c1b23cc531d78b40e06e1119ee2e08f6f31c6e2e8444c568d13c5d451a291ae0c9f1d4f27d23b3a0"
    "0d60ad"
)
RSA_PUBLIC = (
    "080012a60430820222300d06092a864886f70d01010105000382020f003082020a0282020100e1beab071d08200bde24"
    "eef00d049449b07770ff9910257b2d7d5dda242ce8f0e2f12e1af4b32d9efd2c090f66b0f29986dbb645dae988008970"
    "4a94e5066d594162ae6ee8892e6ec70701db0a6c445c04778eb3de1293aa1a23c3825b85c6620a2bc3f82f9b0c309bc0"
    "ab3aeb1873282bebd3da03c33e76c21e9beb172fd44c9e43be32e2c99827033cf8d0f0c606f4579326c930eb4e854395"
    "ad941256542c793902185153c474bed109d6ff5141ebf9cd256cf58893a37f83729f97e7cb435ec679d2e33901d27bb3"
    "5aa0d7e20561da08885ef0abbf8e2fb48d6a5487047a9ecb1ad41fa7ed84f6e3e8ecd5d98b3982d2a901b4454991766d"
    "a295ab78822add5612a2df83bcee814cf50973e80d7ef38111b1bd87da2ae92438a2c8cbcc70b31ee319939a3b9c761d"
    "bc13b5c086d6b64bf7ae7dacc14622375d92a8ff9af7eb962162bbddebf90acb32adb5e4e4029f1c96019949ecfbfeff"
    "d7ac1e3fbcc6b6168c34be3d5a2e5999fcbb39bba7adbca78eab09b9bc39f7fa4b93411f4cc175e70c0a083e96bfaefb"
    "04a9580b4753c1738a6a760ae1afd851a1a4bdad231cf56e9284d832483df215a46c1c21bdf0c6cfe951c18f1ee4078c"
    "79c13d63edb6e14feaeffabc90ad317e4875fe648101b0864097e998f0ca3025ef9638cd2b0caecd3770ab54a1d9c6ca"
    "959b0f5dcbc90caeefc4135baca6fd475224269bbe1b0203010001"
)

VECTORS = {
    KeyType.ECDSA: (ECDSA_PRIVATE, ECDSA_PUBLIC, "QmVMT29id3TUASyfZZ6k9hmNyc2nYabCo4uMSpDw4zrgDk"),
    KeyType.Ed25519: (
        ED25519_PRIVATE,
        ED25519_PUBLIC,
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
    ),
    KeyType.Secp256k1: (
        SECP256K1_PRIVATE,
        SECP256K1_PUBLIC,
        "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY",
    ),
    KeyType.RSA: (RSA_PRIVATE, RSA_PUBLIC, "QmaeANgBs1DTSxWSrPPtobgQuxW8XTfsS4ydbK4rCHzqxG"),
}


@pytest.fixture(scope="module")
def rsa_key() -> PrivateKey:
    return generate_key_pair(KeyType.RSA)


@pytest.fixture(scope="module")
def keys(rsa_key: PrivateKey) -> dict[KeyType, PrivateKey]:
    out = {t: generate_key_pair(t) for t in (KeyType.Ed25519, KeyType.Secp256k1, KeyType.ECDSA)}
    out[KeyType.RSA] = rsa_key
    return out


@pytest.mark.parametrize("key_type", list(VECTORS))
def test_spec_vectors(key_type: KeyType) -> None:
    priv_hex, pub_hex, _ = VECTORS[key_type]
    priv = unmarshal_private_key(bytes.fromhex(priv_hex))
    pub = unmarshal_public_key(bytes.fromhex(pub_hex))
    assert priv.key_type == key_type == pub.key_type
    # The spec: implementations SHOULD produce the given public key from the private key.
    assert priv.public_key == pub
    assert priv.public_key.to_protobuf() == bytes.fromhex(pub_hex)
    # Deterministic re-encoding reproduces the vectors byte for byte.
    assert pub.to_protobuf().hex() == pub_hex.lower()
    assert priv.to_protobuf().hex() == priv_hex.lower()
    assert pub.verify(b"spec", priv.sign(b"spec"))


@pytest.mark.parametrize("key_type", list(VECTORS))
def test_spec_vector_peer_ids(key_type: KeyType) -> None:
    _, pub_hex, expected = VECTORS[key_type]
    pub = unmarshal_public_key(bytes.fromhex(pub_hex))
    assert str(pub.peer_id) == expected


def test_protobuf_layout_per_type(keys: dict[KeyType, PrivateKey]) -> None:
    ed = keys[KeyType.Ed25519].public_key.to_protobuf()
    assert ed[:4] == bytes.fromhex("08011220") and len(ed) == 36
    k1 = keys[KeyType.Secp256k1].public_key.to_protobuf()
    assert k1[:4] == bytes.fromhex("08021221") and len(k1) == 37 and k1[4] in (2, 3)
    ec = keys[KeyType.ECDSA].public_key.to_protobuf()
    assert ec[:4] == bytes.fromhex("0803125b") and len(ec) == 95
    rsa = keys[KeyType.RSA].public_key.to_protobuf()
    assert rsa[:2] == bytes.fromhex("0800")


@pytest.mark.parametrize("key_type", list(KeyType))
def test_protobuf_matches_protobuf_runtime(keys: dict[KeyType, PrivateKey], key_type: KeyType) -> None:
    key = keys[key_type]
    msg = crypto_pb2.PublicKey(Type=crypto_pb2.KeyType.ValueType(key_type), Data=key.public_key.raw())
    assert msg.SerializeToString(deterministic=True) == key.public_key.to_protobuf()
    pmsg = crypto_pb2.PrivateKey(Type=crypto_pb2.KeyType.ValueType(key_type), Data=key.raw())
    assert pmsg.SerializeToString(deterministic=True) == key.to_protobuf()


@pytest.mark.parametrize("key_type", list(KeyType))
def test_sign_verify(keys: dict[KeyType, PrivateKey], key_type: KeyType) -> None:
    key = keys[key_type]
    pub = key.public_key
    sig = key.sign(b"hello")
    assert pub.verify(b"hello", sig)
    assert not pub.verify(b"hellp", sig)
    assert not pub.verify(b"hello", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not pub.verify(b"hello", b"")
    assert not pub.verify(b"hello", b"\x30" * 70)
    other = generate_key_pair(KeyType.Ed25519)
    assert not other.public_key.verify(b"hello", sig)


@pytest.mark.parametrize("key_type", list(KeyType))
def test_private_round_trip(keys: dict[KeyType, PrivateKey], key_type: KeyType) -> None:
    key = keys[key_type]
    again = unmarshal_private_key(key.to_protobuf())
    assert again.public_key == key.public_key
    assert again.to_protobuf() == key.to_protobuf()
    assert unmarshal_public_key(key.public_key.to_protobuf()) == key.public_key
    assert hash(unmarshal_public_key(key.public_key.to_protobuf())) == hash(key.public_key)
    assert key.public_key.verify(b"m", again.sign(b"m"))


def test_secp256k1_signatures_are_low_s(keys: dict[KeyType, PrivateKey]) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = keys[KeyType.Secp256k1]
    for i in range(40):
        _, s = decode_dss_signature(key.sign(i.to_bytes(2, "big")))
        assert s <= K.SECP256K1_ORDER // 2


def test_secp256k1_uncompressed_public_key_is_accepted_and_recompressed(
    keys: dict[KeyType, PrivateKey],
) -> None:
    from cryptography.hazmat.primitives import serialization

    pub = keys[KeyType.Secp256k1].public_key
    assert isinstance(pub, K.Secp256k1PublicKey)
    uncompressed = pub._key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    again = K.Secp256k1PublicKey(uncompressed)
    assert again == pub and len(again.raw()) == 33


def test_ed25519_legacy_96_byte_private_key() -> None:
    key = unmarshal_private_key(bytes.fromhex(ED25519_PRIVATE))
    raw = key.raw()
    legacy = bytes.fromhex("08011260") + raw + raw[32:]
    loaded = unmarshal_private_key(legacy)
    assert loaded.public_key == key.public_key
    assert loaded.to_protobuf() == key.to_protobuf()  # re-encoded in the preferred 64-byte form
    bad = bytes.fromhex("08011260") + raw + bytes(32)
    with pytest.raises(CryptoError):
        unmarshal_private_key(bad)


def test_ed25519_private_key_with_wrong_public_half_is_refused() -> None:
    key = unmarshal_private_key(bytes.fromhex(ED25519_PRIVATE))
    with pytest.raises(CryptoError):
        unmarshal_private_key(bytes.fromhex("08011240") + key.raw()[:32] + bytes(32))


def test_unknown_key_type_is_refused() -> None:
    with pytest.raises(CryptoError):
        unmarshal_public_key(bytes.fromhex("0804120100"))
    with pytest.raises(CryptoError):
        unmarshal_private_key(bytes.fromhex("0809120100"))


def test_missing_fields_and_truncation_are_decode_errors() -> None:
    pub = bytes.fromhex(ED25519_PUBLIC)
    for bad in (b"", pub[:2], pub[2:], pub[:-1], b"\x08", b"\x08\x01\x12", b"\x0f"):
        with pytest.raises((DecodeError, CryptoError)):
            unmarshal_public_key(bad)


def test_non_canonical_input_is_accepted_but_reencoded_canonically() -> None:
    pub = bytes.fromhex(ED25519_PUBLIC)
    # Data before Type, plus an unknown field 3.
    reordered = pub[2:] + pub[:2] + b"\x18\x05"
    key = unmarshal_public_key(reordered)
    assert key.to_protobuf() == pub


def test_oversized_input_is_refused() -> None:
    with pytest.raises(DecodeError):
        unmarshal_public_key(b"\x08\x00\x12" + bytes(K.MAX_PUBLIC_KEY_PROTOBUF_BYTES))


def test_rsa_size_bounds() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    der = small.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(CryptoError):
        unmarshal_public_key(b"\x08\x00\x12" + bytes([0x80 | (len(der) & 0x7F), len(der) >> 7]) + der)
    with pytest.raises(CryptoError):
        generate_key_pair(KeyType.RSA, rsa_bits=1024)
    priv = small.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(CryptoError):
        K.RSAPrivateKey.from_raw(priv)


def test_key_type_mismatch_is_refused(keys: dict[KeyType, PrivateKey]) -> None:
    ec_raw = keys[KeyType.ECDSA].public_key.raw()
    with pytest.raises(CryptoError):
        K.public_key_from_raw(KeyType.RSA, ec_raw)
    rsa_raw = keys[KeyType.RSA].public_key.raw()
    with pytest.raises(CryptoError):
        K.public_key_from_raw(KeyType.ECDSA, rsa_raw)
    with pytest.raises(CryptoError):
        K.private_key_from_raw(KeyType.ECDSA, keys[KeyType.RSA].raw())


def test_secp256k1_scalar_range() -> None:
    with pytest.raises(CryptoError):
        K.Secp256k1PrivateKey.from_raw(bytes(32))
    with pytest.raises(CryptoError):
        K.Secp256k1PrivateKey.from_raw(K.SECP256K1_ORDER.to_bytes(32, "big"))


def test_equality_and_hash(keys: dict[KeyType, PrivateKey]) -> None:
    a = keys[KeyType.Ed25519].public_key
    b = unmarshal_public_key(a.to_protobuf())
    assert a == b and len({a, b}) == 1
    assert a != keys[KeyType.Secp256k1].public_key
    assert a != object()


def test_private_repr_does_not_leak_secret(keys: dict[KeyType, PrivateKey]) -> None:
    key = keys[KeyType.Ed25519]
    assert key.raw()[:32].hex() not in repr(key)


def test_key_file_round_trip(tmp_path: Path) -> None:
    key = generate_key_pair()
    path = tmp_path / "identity.key"
    save_private_key_file(key, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == K.PRIVATE_KEY_FILE_MODE
    assert path.read_bytes() == key.to_protobuf()
    assert load_private_key_file(path).public_key == key.public_key
    # Overwrite keeps the mode and leaves no temporary files behind.
    save_private_key_file(generate_key_pair(KeyType.Secp256k1), path)
    assert load_private_key_file(path).key_type == KeyType.Secp256k1
    assert os.listdir(tmp_path) == ["identity.key"]


def test_oversized_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(bytes(K.MAX_PRIVATE_KEY_FILE_BYTES + 1))
    with pytest.raises(CryptoError):
        load_private_key_file(path)


# --- fuzzing ---------------------------------------------------------------------------------------------

_key_message = st.builds(
    lambda t, d: bytes([0x08, t, 0x12, len(d)]) + d,
    st.integers(0, 5),
    st.binary(max_size=120),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), _key_message))
def test_fuzz_unmarshal_public_key(data: bytes) -> None:
    try:
        key = unmarshal_public_key(data)
    except (DecodeError, CryptoError):
        return
    assert unmarshal_public_key(key.to_protobuf()) == key


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), _key_message))
def test_fuzz_unmarshal_private_key(data: bytes) -> None:
    try:
        key = unmarshal_private_key(data)
    except (DecodeError, CryptoError):
        return
    assert unmarshal_private_key(key.to_protobuf()).public_key == key.public_key


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_ed25519_sign_verify(msg: bytes) -> None:
    key = unmarshal_private_key(bytes.fromhex(ED25519_PRIVATE))
    sig = key.sign(msg)
    assert key.public_key.verify(msg, sig)
    assert not key.public_key.verify(msg + b"\x00", sig)


# Signatures of b"aiolibp2p" made by js-libp2p (@libp2p/crypto 5, interop/js) with the spec's test keys.
JS_ED25519_SIG = bytes.fromhex(
    "c0da385827ada2752a0897e9c7bf91f9f6073668033edc868ac7628b180c9b1493c82215abd268064168fc3b362f5a5419f087c8"
    "32d182a3f67adb8dae9c6d06"
)
JS_SECP256K1_SIG = bytes.fromhex(
    "3044022005516e2ee0bd8666b76824932f1dd928e8fa56b7a20f5cbb8e81b2101efb39db02202b1d1d7882311c7bb69141471cba"
    "c1f29017cb0b5cdafdc9b57a231a60979003"
)


def test_js_signatures_verify() -> None:
    ed = unmarshal_private_key(bytes.fromhex(ED25519_PRIVATE))
    assert ed.sign(b"aiolibp2p") == JS_ED25519_SIG  # RFC 8032 signatures are deterministic
    k1 = unmarshal_public_key(bytes.fromhex(SECP256K1_PUBLIC))
    assert k1.verify(b"aiolibp2p", JS_SECP256K1_SIG)
    assert not k1.verify(b"aiolibp2q", JS_SECP256K1_SIG)


# --- the libsodium and OpenSSL Ed25519 paths agree -------------------------------------------------------


@given(
    st.binary(max_size=300), st.integers(min_value=0, max_value=63), st.integers(min_value=1, max_value=255)
)
@settings(max_examples=60, deadline=None)
def test_ed25519_sodium_and_openssl_agree(msg: bytes, pos: int, flip: int) -> None:
    if not K.HAVE_SODIUM:
        pytest.skip("PyNaCl is not installed")
    key = K.Ed25519PrivateKey.from_seed(bytes(range(32)))
    pub = key.public_key
    try:
        sig_sodium = key.sign(msg)
        bad = bytearray(sig_sodium)
        bad[pos] ^= flip
        results_sodium = (
            pub.verify(msg, sig_sodium),
            pub.verify(msg, bytes(bad)),
            pub.verify(msg + b"!", sig_sodium),
        )
        K._use_sodium = False
        sig_openssl = key.sign(msg)
        results_openssl = (
            pub.verify(msg, sig_openssl),
            pub.verify(msg, bytes(bad)),
            pub.verify(msg + b"!", sig_openssl),
        )
    finally:
        K._use_sodium = True
    assert sig_sodium == sig_openssl  # deterministic Ed25519 (RFC 8032)
    assert results_sodium == results_openssl == (True, False, False)
