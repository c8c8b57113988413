"""Multiaddr parsing, encoding and helpers, against vectors from the multiaddr spec and go/js test suites."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import pickle

import pytest

from aiolibp2p.exceptions import MultiaddrError
from aiolibp2p.multiaddr import (
    P_IP4,
    P_MEMORY,
    P_P2P,
    P_TCP,
    VAR_SIZE,
    Multiaddr,
    ProtocolInfo,
    all_protocols,
    protocol_with_code,
    protocol_with_name,
)

PEER_QM = "QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC"
PEER_ED = "12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV"
GARLIC64 = (
    "jT~IyXaoauTni6N4517EG8mrFUKpy0IlgZh-EY9csMAk82Odatmzr~YTZy8Hv7u~wvkg75EFNOyqb~nAPg-khyp2TS~ObUz8WlqYAM2VlEzJ7"
    "wJB91P-cUlKF18zSzVoJFmsrcQHZCirSbWoOknS6iNmsGRh5KVZsBEfp1Dg3gwTipTRIx7Vl5Vy~1OSKQVjYiGZS9q8RL0MF~7xFiKxZDLbPxk0"
    "AK9TzGGqm~wMTI2HS0Gm4Ycy8LYPVmLvGonIBYndg2bJC7WLuF6tVjVquiokSVDKFwq70BCUU5AU-EvdOD5KEOAM7mPfw-gJUG4tm1Tt"
    "vcobrObqoRnmhXPTBTN5H7qDD12AvlwFGnfAlBXjuP4xOUAISL5SRLiulrsMSiT4GcugSI80mF6sdB0zWRgL1yyvoVWeTBn1TqjO27alr95DG"
    "TluuSqrNAxgpQzCKEWAyzrQkBfo2avGAmmz2NaHaAvYbOg0QSJz1PLjv2jdPW~ofiQmrGWM1cd~1cCqAAAA"
)

# Valid text addresses (go-multiaddr TestConstructSucceeds, minus nothing we do not support).
GOOD = [
    "/ip4/1.2.3.4",
    "/ip4/0.0.0.0",
    "/ip4/192.0.2.0/ipcidr/24",
    "/ip6/::1",
    "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21",
    "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21/udp/1234/quic",
    "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21/udp/1234/quic-v1",
    "/ip6/2001:db8::/ipcidr/32",
    "/ip6zone/x/ip6/fe80::1",
    "/ip6zone/x%y/ip6/fe80::1",
    "/ip6zone/x%y/ip6/::",
    "/ip6zone/x/ip6/fe80::1/udp/1234/quic",
    "/ip6zone/x/ip6/fe80::1/udp/1234/quic-v1",
    "/onion/timaq4ygg2iegci7:1234",
    "/onion/timaq4ygg2iegci7:80/http",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:80/http",
    "/garlic64/" + GARLIC64,
    "/garlic64/" + GARLIC64 + "/http",
    "/garlic64/" + GARLIC64 + "/udp/8080",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuqzwas",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuqzwassw",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq/tcp/8080",
    "/udp/0",
    "/tcp/0",
    "/sctp/0",
    "/udp/1234",
    "/tcp/1234",
    "/sctp/1234",
    "/udp/65535",
    "/tcp/65535",
    "/dccp/65535",
    f"/ipfs/{PEER_QM}",
    "/ipfs/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7",
    f"/p2p/{PEER_QM}",
    "/p2p/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7",
    "/p2p/bafzbeigvf25ytwc3akrijfecaotc74udrhcxzh2cx3we5qqnw5vgrei4bm",
    f"/p2p/{PEER_ED}",
    "/p2p/k51qzi5uqu5dhb6l8spkdx7yxafegfkee5by8h7lmjh2ehc2sgg34z7c15vzqs",
    "/p2p/bafzaajaiaejcalj543iwv2d7pkjt7ykvefrkfu7qjfi6sduakhso4lay6abn2d5u",
    "/udp/1234/sctp/1234",
    "/udp/1234/udt",
    "/udp/1234/utp",
    "/tcp/1234/http",
    "/tcp/1234/tls/http",
    "/tcp/1234/https",
    f"/p2p/{PEER_QM}/tcp/1234",
    "/ip4/127.0.0.1/udp/1234",
    "/ip4/127.0.0.1/udp/0",
    "/ip4/127.0.0.1/tcp/1234",
    "/ip4/127.0.0.1/tcp/1234/",
    "/ip4/127.0.0.1/udp/1234/quic",
    "/ip4/127.0.0.1/udp/1234/quic-v1",
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport",
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmpy",
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmpy"
    "/certhash/zQmbWTwYGcmdyK9CYfNBcfs9nhZs17a6FQ4Y8oea278xx41",
    f"/ip4/127.0.0.1/ipfs/{PEER_QM}/tcp/1234",
    f"/ip4/127.0.0.1/p2p/{PEER_QM}/tcp/1234",
    "/unix/a/b/c/d/e",
    "/unix/stdio",
    "/ip4/1.2.3.4/tcp/80/unix/a/b/c/d/e/f",
    f"/ip4/127.0.0.1/p2p/{PEER_QM}/tcp/1234/unix/stdio",
    "/ip4/127.0.0.1/tcp/9090/http/p2p-webrtc-direct",
    "/ip4/127.0.0.1/tcp/127/ws",
    "/ip4/127.0.0.1/tcp/127/tls",
    "/ip4/127.0.0.1/tcp/127/tls/ws",
    "/ip4/127.0.0.1/tcp/127/noise",
    "/ip4/127.0.0.1/tcp/127/wss",
    "/ip4/127.0.0.1/tcp/127/webrtc-direct",
    "/ip4/127.0.0.1/tcp/127/webrtc",
    "/ip4/127.0.0.1/udp/9090/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g",
    "/http-path/tmp%2Fbar",
    "/http-path/tmp%2Fbar%2Fbaz",
    "/http-path/foo",
    f"/ip4/127.0.0.1/tcp/0/p2p/{PEER_ED}/http-path/foo",
    "/ip4/127.0.0.1/tcp/443/tls/sni/example.com/http/http-path/foo",
    "/memory/4",
    "/dns/example.com",
    "/dns4/example.com/tcp/443/wss",
    "/dns6/example.com/udp/443/quic-v1",
    "/dnsaddr/bootstrap.libp2p.io",
    f"/ip4/1.2.3.4/tcp/4001/p2p/{PEER_QM}/p2p-circuit/p2p/{PEER_ED}",
    "/p2p-websocket-star",
    "/p2p-stardust",
    "/p2p-webrtc-star",
]

# Invalid text addresses (go-multiaddr TestConstructFails and TestInvalidP2PAddrString, js suite, and ours).
BAD = [
    "",
    "/",
    "//",
    "ip4/1.2.3.4",
    "/ip4",
    "/ip4/::1",
    "/ip4/fdpsofodsajfdoisa",
    "/ip4/1.2.3",
    "/ip4/1.2.3.4.5",
    "/ip4/256.0.0.1",
    "/ip4/01.2.3.4",
    "/ip4/::/ipcidr/256",
    "/ip6/::/ipcidr/1026",
    "/ip6/::/ipcidr/-1",
    "/ip6",
    "/ip6/1.2.3.4",
    "/ip6/fe80::1%eth0",
    "/ip6zone",
    "/ip6zone/",
    "/ip6zone//ip6/fe80::1",
    "/udp",
    "/tcp",
    "/sctp",
    "/udp/65536",
    "/tcp/65536",
    "/tcp/100000000000000000000000000000",
    "/tcp/+80",
    "/tcp/ 80",
    "/tcp/8O",
    "/tcp/\u0661\u0662",  # Arabic-Indic digits are str.isdigit() but not a port
    "/quic/65536",
    "/quic-v1/65536",
    "/onion/9imaq4ygg2iegci7:80",
    "/onion/aaimaq4ygg2iegci7:80",
    "/onion/timaq4ygg2iegci7:0",
    "/onion/timaq4ygg2iegci7:-1",
    "/onion/timaq4ygg2iegci7",
    "/onion/timaq4ygg2iegci@:666",
    "/onion3/9ww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:80",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd7:80",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:0",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:-1",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyy@:666",
    "/garlic64/" + GARLIC64 + "7",
    "/garlic64/" + GARLIC64[:-4],
    "/garlic64/" + GARLIC64 + "@",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzu",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzu77",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzu:80",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq:-1",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzu@",
    "/udp/1234/sctp",
    "/udp/1234/udt/1234",
    "/udp/1234/utp/1234",
    "/ip4/127.0.0.1/udp/jfodsajfidosajfoidsa",
    "/ip4/127.0.0.1/udp",
    "/ip4/127.0.0.1/tcp/jfodsajfidosajfoidsa",
    "/ip4/127.0.0.1/tcp",
    "/ip4/127.0.0.1/quic/1234",
    "/ip4/127.0.0.1/quic-v1/1234",
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash",
    # one character missing from the certhash
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmp",
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/u!!!!",
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/?nope",
    "/ip4/127.0.0.1/ipfs",
    "/ip4/127.0.0.1/ipfs/tcp",
    "/ip4/127.0.0.1/p2p",
    "/ip4/127.0.0.1/p2p/tcp",
    "/unix",
    "/unix/",
    "/ip4/1.2.3.4/tcp/80/unix",
    "/unix/%2F",
    "/unix/%2Fa%2",
    "/ip4/1.2.3.4/tcp/-1",
    "/ip4/127.0.0.1/tcp/9090/http/p2p-webcrt-direct",
    "/ip4/127.0.0.1//tcp/1",
    "/ip4/127.0.0.1/tcp/1/ws/8080",
    "/dns4",
    "/dns4//tcp/1",
    "/dns",
    "/dnsaddr",
    "/sni",
    "/http-path",
    "/http-path/thisIsMissingAfullByte%f",
    "/http-path/%zz",
    "/http-path/%",
    "/memory",
    "/nonexistent/1",
    "/IP4/1.2.3.4",
    # sha2-256 multihash with a digest longer than 32 bytes
    "/p2p/QmxoHT6iViN5xAjoz1VZ553cL31U9F94ht3QvWR1FrEbZY",
    "/p2p/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl-",  # invalid multibase encoding
    "/p2p/?unknownmultibase",
    "/p2p/k2jmtxwoe2phm1hbqp0e7nufqf6umvuu2e9qd7ana7h411a0haqj6i2z",  # non-libp2p-key codec
    "/p2p/Qm0000",  # '0' is not base58
    "/p2p/1",  # identity multihash without its length
    "/p2p/z",
    "/p2p/" + "1" * 5000,
]


def _cid_base32(version: int, codec: int, mh: bytes) -> str:
    return "b" + base64.b32encode(bytes([version, codec]) + mh).decode().lower().rstrip("=")


@pytest.mark.parametrize("text", GOOD)
def test_good_text_round_trips(text: str) -> None:
    ma = Multiaddr(text)
    assert Multiaddr(str(ma)) == ma
    assert Multiaddr(ma.to_bytes()) == ma
    assert str(Multiaddr(ma.to_bytes())) == str(ma)
    assert Multiaddr(str(ma)).to_bytes() == ma.to_bytes()


@pytest.mark.parametrize("text", BAD)
def test_bad_text_raises(text: str) -> None:
    with pytest.raises(MultiaddrError):
        Multiaddr(text)


def test_p2p_rejects_impossible_and_non_libp2p_key_cids() -> None:
    sha = b"\x12\x20" + hashlib.sha256(b"test").digest()
    assert Multiaddr("/p2p/" + _cid_base32(1, 0x72, sha)).get_peer_id() is not None
    with pytest.raises(MultiaddrError, match="libp2p-key"):
        Multiaddr("/p2p/" + _cid_base32(1, 0x55, sha))  # raw codec
    with pytest.raises(MultiaddrError, match="version"):
        Multiaddr("/p2p/" + _cid_base32(2, 0x72, sha))
    md5_mh = b"\xd5\x01\x10" + hashlib.md5(b"test").digest()
    with pytest.raises(MultiaddrError, match="neither identity nor sha2-256"):
        Multiaddr("/p2p/" + "b" + base64.b32encode(b"\x01\x72" + md5_mh).decode().lower().rstrip("="))


# (text, canonical text, hex): go-multiaddr TestStringToBytes/TestBytesToString and the spec feature file.
VECTORS = [
    ("/ip4/192.0.2.42/tcp/443", "/ip4/192.0.2.42/tcp/443", "04c000022a0601bb"),
    ("/ip4/127.0.0.1/udp/1234", "/ip4/127.0.0.1/udp/1234", "047f000001910204d2"),
    ("/ip4/127.0.0.1/tcp/4321", "/ip4/127.0.0.1/tcp/4321", "047f0000010610e1"),
    (
        "/ip4/127.0.0.1/udp/1234/ip4/127.0.0.1/tcp/4321",
        "/ip4/127.0.0.1/udp/1234/ip4/127.0.0.1/tcp/4321",
        "047f000001910204d2047f0000010610e1",
    ),
    ("/onion/aaimaq4ygg2iegci:80", "/onion/aaimaq4ygg2iegci:80", "bc030010c0439831b48218480050"),
    (
        "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234",
        "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234",
        "bd03adadec040be047f9658668b11a504f3155001f231a37f54c4476c07fb4cc139ed7e30304d2",
    ),
    (
        "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq",
        "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq",
        "bf0320efbcd45d0c5dc79781ac6f20ea5055a036afb48d45a52e7d68ec7d4338919e69",
    ),
    ("/ip6zone/eth0/ip6/::1", "/ip6zone/eth0/ip6/::1", "2a0465746830" + "29" + "00" * 15 + "01"),
    (
        "/ip6/::ffff:127.0.0.1/tcp/111",
        "/ip6/::ffff:127.0.0.1/tcp/111",
        "29" + "00" * 10 + "ffff7f000001" + "06006f",
    ),
    ("/ip6/0:0::0:1", "/ip6/::1", "29" + "00" * 15 + "01"),
    ("/ip6/2001:DB8::1", "/ip6/2001:db8::1", "2920010db8" + "00" * 10 + "0001"),
    ("/tcp/0080", "/tcp/80", "060050"),
    (
        f"/ipfs/{PEER_QM}",
        f"/p2p/{PEER_QM}",
        "a503221220d52ebb89d85b02a284948203a62ff28389c57c9f42beec4ec20db76a68911c0b",
    ),
    (
        "/p2p/bafzbeigvf25ytwc3akrijfecaotc74udrhcxzh2cx3we5qqnw5vgrei4bm",
        f"/p2p/{PEER_QM}",
        "a503221220d52ebb89d85b02a284948203a62ff28389c57c9f42beec4ec20db76a68911c0b",
    ),
    ("/unix/a/b/c", "/unix/a/b/c", "9003062f612f622f63"),
    ("/unix/%2Fa%2Fb%2Fc", "/unix/a/b/c", "9003062f612f622f63"),
    ("/unix/%2Ftmp%2Fx/tcp/1", "/unix/%2Ftmp%2Fx/tcp/1", "9003062f746d702f78060001"),
    ("/http-path/tmp%2Fbar/p2p-circuit", "/http-path/tmp%2Fbar/p2p-circuit", "e10307746d702f626172a202"),
    ("/http-path/a%2520space", "/http-path/a%2520space", "e10309612532307370616365"),
    ("/http-path/a%20b", "/http-path/a%20b", "e1030361" + "2062"),
    ("/ip4/0.0.0.0/tcp/4001/tls", "/ip4/0.0.0.0/tcp/4001/tls", "0400000000060fa1c003"),
    ("/dns4/a.io/tcp/443/wss", "/dns4/a.io/tcp/443/wss", "3604" + b"a.io".hex() + "0601bbde03"),
    ("/memory/4", "/memory/4", "89060134"),
    (
        "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmpy",
        "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/u1QEQOFj2IjCsPJFfMAxmQxLGPw",
        "047f000001910204d2cd03d103d20313d501103858f62230ac3c915f300c664312c63f",
    ),
]


@pytest.mark.parametrize(("text", "canonical", "hexed"), VECTORS)
def test_vectors(text: str, canonical: str, hexed: str) -> None:
    ma = Multiaddr(text)
    assert ma.to_bytes().hex() == hexed
    assert str(ma) == canonical
    from_bytes = Multiaddr.from_bytes(bytes.fromhex(hexed))
    assert from_bytes == ma
    assert str(from_bytes) == canonical
    assert bytes(from_bytes) == bytes.fromhex(hexed)


BAD_BYTES = [
    "",
    "04",  # ip4 without its value
    "047f0000",  # ip4 value truncated
    "047f00000106",  # tcp without its value
    "047f0000010600",  # tcp value truncated
    "80",  # varint ends early
    "ff",
    "8000",  # non-minimal varint
    "ffffffffffffffffffff01",  # varint longer than 9 bytes
    "0300",  # code 3 is not a protocol
    "e703",  # code 487 is not a protocol
    "a503",  # p2p without length
    "a50305",  # p2p length beyond the end
    "a5030122",  # p2p value that is not a multihash
    "a503221221c05877cbae039d70a5e600ea02c6f9f2942439285c9e344e26f8d280c850fad6",  # go: bad p2p bytes
    "a503041101" + "aa" * 1,  # md5 / unknown multihash code
    "a5030400030000",  # identity digest length mismatch
    "a5030200" + "00",  # identity multihash of nothing (a 2-byte mh with an empty digest)
    "a50302" + "0000",
    "2a00",  # empty ip6zone
    "2a012f",  # ip6zone containing '/'
    "3600",  # empty dns4
    "3601ff",  # dns4 that is not UTF-8
    "900300",  # empty unix path
    "9003016162",  # length 1 but two bytes follow -> 'b' is unknown code 0x62
    "900301" + b"a".hex(),  # relative unix path
    "900301" + b"/".hex(),  # the root alone
    "900303" + b"/a/".hex(),  # trailing slash
    "e10300",  # empty http-path
    "d20300",  # empty certhash
    "d2030112",  # certhash that is not a multihash
    "bc030010c0439831b48218480000",  # onion with port 0
    "be0301ff",  # garlic64 too short
    "bf0301ff",  # garlic32 too short
    "a503ffffffffffffffff7f",  # absurd length
]


@pytest.mark.parametrize("hexed", BAD_BYTES)
def test_bad_bytes_raise(hexed: str) -> None:
    with pytest.raises(MultiaddrError):
        Multiaddr(bytes.fromhex(hexed))


def test_odd_but_valid_bytes() -> None:
    # go TestDNS: arbitrary bytes that happen to parse must survive a text round trip.
    raw = b"7*000000000000000000000000000000000000000000"
    ma = Multiaddr(raw)
    assert Multiaddr(str(ma)) == ma


def test_construction_and_caching() -> None:
    ma = Multiaddr("/ip4/1.2.3.4/tcp/5")
    assert Multiaddr(ma) is ma
    assert Multiaddr("/ip4/1.2.3.4/tcp/5") is ma  # the parse cache
    assert Multiaddr.from_string("/ip4/1.2.3.4/tcp/5") == ma
    assert Multiaddr(bytearray(ma.to_bytes())) == ma
    assert Multiaddr(memoryview(ma.to_bytes())) == ma
    assert Multiaddr("/ip4/1.2.3.4/tcp/5/") == ma
    assert repr(ma) == "Multiaddr('/ip4/1.2.3.4/tcp/5')"
    assert hash(ma) == hash(Multiaddr(ma.to_bytes()))
    assert ma != Multiaddr("/ip4/1.2.3.4/udp/5")
    assert ma != "/ip4/1.2.3.4/tcp/5"
    assert len({ma, Multiaddr(ma.to_bytes()), Multiaddr("/ip4/1.2.3.4/tcp/5/")}) == 1
    assert pickle.loads(pickle.dumps(ma)) == ma
    assert len(ma) == 2
    with pytest.raises(TypeError):
        Multiaddr(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Multiaddr.from_bytes("/ip4/1.2.3.4")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        ma.foo = 1  # type: ignore[attr-defined]


def test_protocols_and_items() -> None:
    ma = Multiaddr(f"/ip4/127.0.0.1/udp/1234/quic-v1/p2p/{PEER_ED}")
    assert ma.protocols() == [
        ProtocolInfo(4, "ip4", 32),
        ProtocolInfo(273, "udp", 16),
        ProtocolInfo(461, "quic-v1", 0),
        ProtocolInfo(421, "p2p", VAR_SIZE),
    ]
    assert ma.items() == [("ip4", "127.0.0.1"), ("udp", "1234"), ("quic-v1", None), ("p2p", PEER_ED)]
    items = ma.items()
    items.clear()  # a copy: mutating it does not touch the address
    assert len(ma.items()) == 4
    assert [str(m) for m in ma.split()] == ["/ip4/127.0.0.1", "/udp/1234", "/quic-v1", f"/p2p/{PEER_ED}"]


def test_protocol_table() -> None:
    names = {p.name: p for p in all_protocols()}
    expected = {
        "ip4": (4, 32),
        "tcp": (6, 16),
        "dccp": (33, 16),
        "ip6": (41, 128),
        "ip6zone": (42, VAR_SIZE),
        "ipcidr": (43, 8),
        "dns": (53, VAR_SIZE),
        "dns4": (54, VAR_SIZE),
        "dns6": (55, VAR_SIZE),
        "dnsaddr": (56, VAR_SIZE),
        "sctp": (132, 16),
        "udp": (273, 16),
        "unix": (400, VAR_SIZE),
        "p2p": (421, VAR_SIZE),
        "tls": (448, 0),
        "sni": (449, VAR_SIZE),
        "noise": (454, 0),
        "quic": (460, 0),
        "quic-v1": (461, 0),
        "webtransport": (465, 0),
        "certhash": (466, VAR_SIZE),
        "ws": (477, 0),
        "wss": (478, 0),
        "p2p-circuit": (290, 0),
        "webrtc-direct": (280, 0),
        "webrtc": (281, 0),
        "http": (480, 0),
        "http-path": (481, VAR_SIZE),
        "memory": (0x0309, VAR_SIZE),
    }
    for name, (code, size) in expected.items():
        assert (names[name].code, names[name].size) == (code, size), name
    assert protocol_with_name("ipfs") == protocol_with_name("p2p") == protocol_with_code(P_P2P)
    assert protocol_with_code(P_MEMORY).name == "memory"
    with pytest.raises(MultiaddrError):
        protocol_with_name("nope")
    with pytest.raises(MultiaddrError):
        protocol_with_code(12345)


def test_value_for_protocol() -> None:
    ma = Multiaddr(f"/ip4/127.0.0.1/tcp/5555/udp/1234/tls/utp/ipfs/{PEER_QM}")
    assert ma.value_for_protocol("ip4") == "127.0.0.1"
    assert ma.value_for_protocol("tcp") == "5555"
    assert ma.value_for_protocol("udp") == "1234"
    assert ma.value_for_protocol("p2p") == PEER_QM
    assert ma.value_for_protocol("ipfs") == PEER_QM
    assert ma.value_for_protocol("tls") == ""
    assert ma.value_for_protocol("ip6") is None
    assert ma.has_protocol("tcp") and not ma.has_protocol("ws")
    with pytest.raises(MultiaddrError):
        ma.value_for_protocol("bogus")
    assert Multiaddr("/ip4/0.0.0.0/ip4/1.1.1.1").value_for_protocol("ip4") == "0.0.0.0"
    assert Multiaddr("/ip4/0.0.0.0/unix/a/b/c/d").value_for_protocol("unix") == "/a/b/c/d"
    hp = Multiaddr("/http-path/tmp%2Fbar")
    assert hp.value_for_protocol("http-path") == "tmp%2Fbar"
    assert hp.raw_value_for_protocol("http-path") == b"tmp/bar"
    assert Multiaddr("/ip4/1.2.3.4").raw_value_for_protocol("ip4") == b"\x01\x02\x03\x04"


def test_encapsulate() -> None:
    ma = Multiaddr("/ip4/127.0.0.1/udp/1234")
    both = ma.encapsulate(Multiaddr("/udp/5678"))
    assert str(both) == "/ip4/127.0.0.1/udp/1234/udp/5678"
    assert ma.encapsulate("/quic-v1") == Multiaddr("/ip4/127.0.0.1/udp/1234/quic-v1")
    assert ma.encapsulate(Multiaddr("/quic-v1").to_bytes()) == Multiaddr("/ip4/127.0.0.1/udp/1234/quic-v1")
    assert both.decapsulate("/udp/5678") == ma
    with pytest.raises(MultiaddrError):
        ma.encapsulate("/udp")
    assert Multiaddr.empty().encapsulate(ma) is ma
    assert ma.encapsulate(Multiaddr.empty()) is ma


# go-multiaddr TestDecapsulate: (address, removed, left) with "" meaning nothing is left.
DECAPSULATE = [
    ("/ip4/1.2.3.4/tcp/1234", "/ip4/1.2.3.4", ""),
    ("/ip4/1.2.3.4", "/ip4/1.2.3.4/tcp/1234", "/ip4/1.2.3.4"),
    ("/ip4/1.2.3.5/tcp/1234", "/ip4/5.3.2.1", "/ip4/1.2.3.5/tcp/1234"),
    ("/ip4/1.2.3.5/udp/1234/quic-v1", "/udp/1234", "/ip4/1.2.3.5"),
    ("/ip4/1.2.3.6/udp/1234/quic-v1", "/udp/1234/quic-v1", "/ip4/1.2.3.6"),
    ("/ip4/1.2.3.7/tcp/1234", "/ws", "/ip4/1.2.3.7/tcp/1234"),
    ("/dnsaddr/wss.com/tcp/4001", "/ws", "/dnsaddr/wss.com/tcp/4001"),
    ("/dnsaddr/wss.com/tcp/4001/ws", "/wss", "/dnsaddr/wss.com/tcp/4001/ws"),
    ("/dnsaddr/wss.com/ws", "/wss", "/dnsaddr/wss.com/ws"),
    ("/dnsaddr/wss.com/ws", "/dnsaddr/wss.com", ""),
    ("/dnsaddr/wss.com/tcp/4001/wss", "/wss", "/dnsaddr/wss.com/tcp/4001"),
    ("/ip4/1.2.3.4/tcp/1/ip4/1.2.3.4/tcp/1/ws", "/ip4/1.2.3.4/tcp/1", "/ip4/1.2.3.4/tcp/1"),
    ("/ip4/1.2.3.4/tcp/1/ip4/1.2.3.4/tcp/2", "/ip4/1.2.3.4/tcp/1", ""),
]


@pytest.mark.parametrize(("addr", "removed", "left"), DECAPSULATE)
def test_decapsulate(addr: str, removed: str, left: str) -> None:
    result = Multiaddr(addr).decapsulate(Multiaddr(removed))
    assert str(result) == left
    assert Multiaddr(addr).decapsulate(removed) == result


def test_decapsulate_by_name_uses_last_occurrence() -> None:
    relay = f"/ip4/1.2.3.4/tcp/4001/p2p/{PEER_QM}"
    circuit = Multiaddr(f"{relay}/p2p-circuit/p2p/{PEER_ED}")
    assert circuit.decapsulate("p2p") == Multiaddr(f"{relay}/p2p-circuit")
    assert circuit.decapsulate("p2p-circuit") == Multiaddr(relay)
    assert circuit.decapsulate("ipfs") == Multiaddr(f"{relay}/p2p-circuit")
    assert circuit.decapsulate("ws") is circuit
    assert str(circuit.decapsulate("ip4")) == ""
    assert circuit.decapsulate("ip4") == Multiaddr.empty()
    with pytest.raises(MultiaddrError):
        circuit.decapsulate("bogus")
    with pytest.raises(MultiaddrError):
        circuit.decapsulate("/bogus")


def test_empty() -> None:
    empty = Multiaddr.empty()
    assert str(empty) == "" and empty.to_bytes() == b"" and len(empty) == 0
    assert empty.items() == [] and empty.protocols() == []
    assert not empty
    assert empty.split_peer_id() == (empty, None)
    assert empty.get_peer_id() is None
    with pytest.raises(MultiaddrError):
        empty.host_port()


def test_peer_id_helpers() -> None:
    base = Multiaddr("/ip4/1.2.3.4/tcp/4001")
    with_id = Multiaddr(f"/ip4/1.2.3.4/tcp/4001/p2p/{PEER_ED}")
    assert with_id.split_peer_id() == (base, PEER_ED)
    assert base.split_peer_id() == (base, None)
    assert with_id.get_peer_id() == PEER_ED
    assert base.get_peer_id() is None
    assert Multiaddr(f"/p2p/{PEER_QM}").split_peer_id() == (Multiaddr.empty(), PEER_QM)

    assert base.with_peer_id(PEER_ED) == with_id
    assert with_id.with_peer_id(PEER_ED) is with_id
    # the CID text form and the raw multihash name the same peer
    assert base.with_peer_id("k51qzi5uqu5dhb6l8spkdx7yxafegfkee5by8h7lmjh2ehc2sgg34z7c15vzqs") == with_id
    assert base.with_peer_id(with_id.raw_value_for_protocol("p2p")) == with_id

    class FakePeerId:
        def __str__(self) -> str:
            return PEER_ED

    assert base.with_peer_id(FakePeerId()) == with_id
    with pytest.raises(MultiaddrError):
        with_id.with_peer_id(PEER_QM)
    with pytest.raises(MultiaddrError):
        base.with_peer_id("not-a-peer-id")
    with pytest.raises(MultiaddrError):
        base.with_peer_id(b"\x12\x20")

    relay = Multiaddr(f"/ip4/1.2.3.4/tcp/4001/p2p/{PEER_QM}/p2p-circuit")
    assert relay.get_peer_id() == PEER_QM
    assert relay.split_peer_id() == (relay, None)
    assert str(relay.with_peer_id(PEER_ED)) == f"{relay}/p2p/{PEER_ED}"
    assert Multiaddr(f"{relay}/p2p/{PEER_ED}").get_peer_id() == PEER_ED


def test_host_port() -> None:
    assert Multiaddr("/ip4/1.2.3.4/tcp/4001").host_port() == ("1.2.3.4", 4001)
    assert Multiaddr("/ip4/1.2.3.4/udp/0/quic-v1").host_port() == ("1.2.3.4", 0)
    assert Multiaddr("/ip6/::1/tcp/65535/ws").host_port() == ("::1", 65535)
    assert Multiaddr("/dns4/example.com/tcp/443/wss").host_port() == ("example.com", 443)
    assert Multiaddr("/dns6/example.com/udp/443").host_port() == ("example.com", 443)
    assert Multiaddr("/dns/example.com/tcp/1").host_port() == ("example.com", 1)
    assert Multiaddr("/ip6zone/eth0/ip6/fe80::1/tcp/1").host_port() == ("fe80::1%eth0", 1)
    assert Multiaddr(f"/ip4/1.2.3.4/tcp/1/p2p/{PEER_ED}").host_port() == ("1.2.3.4", 1)
    for bad in [
        "/ip4/1.2.3.4",
        "/ip4/1.2.3.4/sctp/1",
        "/tcp/1",
        "/dnsaddr/example.com/tcp/1",
        "/ip4/1.2.3.4/ws/tcp/1",
        "/unix/a",
        "/memory/1",
        "/ip6zone/eth0/tcp/1",
    ]:
        with pytest.raises(MultiaddrError):
            Multiaddr(bad).host_port()


def test_ip_address_and_loopback() -> None:
    assert Multiaddr("/ip4/127.0.0.1/tcp/1").ip_address() == ipaddress.IPv4Address("127.0.0.1")
    assert Multiaddr("/ip6/::1").ip_address() == ipaddress.IPv6Address("::1")
    assert Multiaddr("/ip6zone/eth0/ip6/fe80::1").ip_address() == ipaddress.IPv6Address("fe80::1")
    assert Multiaddr("/dns4/localhost/tcp/1").ip_address() is None
    assert Multiaddr("/tcp/1/ip4/127.0.0.1").ip_address() is None
    assert Multiaddr("/ip4/127.0.0.1/tcp/1").is_loopback()
    assert Multiaddr("/ip4/127.9.9.9").is_loopback()
    assert Multiaddr("/ip6/::1/udp/1/quic-v1").is_loopback()
    assert Multiaddr("/ip6/::ffff:127.0.0.1/tcp/1").is_loopback()
    assert not Multiaddr("/ip4/1.2.3.4/tcp/1").is_loopback()
    assert not Multiaddr("/ip6/::2").is_loopback()
    assert not Multiaddr("/dns4/localhost/tcp/1").is_loopback()
    assert not Multiaddr("/memory/1").is_loopback()


def test_typed_constants() -> None:
    assert (P_IP4, P_TCP, P_P2P, P_MEMORY) == (4, 6, 421, 777)


def test_from_sockaddr_builds_the_binary_form_without_the_parse_caches() -> None:
    from aiolibp2p.multiaddr import multiaddr as mod

    before = (mod._parse_text.cache_info().currsize, mod._parse_bytes.cache_info().currsize)
    cases = [
        ((("127.0.0.1", 54321), "tcp", None), "/ip4/127.0.0.1/tcp/54321"),
        ((("::1", 1, 0, 0), "tcp", None), "/ip6/::1/tcp/1"),
        ((("fe80::1%eth0", 443, 0, 2), "udp", None), "/ip6/fe80::1/udp/443"),
        ((("0:0:0:0:0:ffff:7f00:1", 65535), "tcp", None), "/ip6/::ffff:127.0.0.1/tcp/65535"),
    ]
    built = [Multiaddr.from_sockaddr(*args) for args, _ in cases]
    assert [str(ma) for ma in built] == [text for _, text in cases]
    assert (mod._parse_text.cache_info().currsize, mod._parse_bytes.cache_info().currsize) == before
    for ma, (_, text) in zip(built, cases, strict=True):
        assert ma == Multiaddr(text) and hash(ma) == hash(Multiaddr(text))
    quic = Multiaddr.from_sockaddr(("10.0.0.1", 4001), "udp", Multiaddr("/quic-v1"))
    assert quic == Multiaddr("/ip4/10.0.0.1/udp/4001/quic-v1")
    assert quic.host_port() == ("10.0.0.1", 4001)
    for bad, transport in [
        (("localhost", 1), "tcp"),
        (("1.2.3.4", 70000), "tcp"),
        (("1.2.3.4", -1), "tcp"),
        (("1.2.3.4",), "tcp"),
        ((), "tcp"),
        (("1.2.3.4", 1), "sctp"),
    ]:
        with pytest.raises(MultiaddrError):
            Multiaddr.from_sockaddr(bad, transport)


def test_from_bytes_without_the_cache() -> None:
    from aiolibp2p.multiaddr import multiaddr as mod

    raw = Multiaddr("/ip4/192.0.2.77/tcp/54999").to_bytes()
    mod._parse_bytes.cache_clear()
    ma = Multiaddr.from_bytes(raw, cache=False)
    assert mod._parse_bytes.cache_info().currsize == 0
    assert ma == Multiaddr.from_bytes(raw) and str(ma) == "/ip4/192.0.2.77/tcp/54999"
    assert mod._parse_bytes.cache_info().currsize == 1
    with pytest.raises(MultiaddrError):
        Multiaddr.from_bytes(b"\x04\x01", cache=False)
