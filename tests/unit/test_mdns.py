"""mDNS pieces without the network: instance names and the dnsaddr TXT record."""

from __future__ import annotations

import re

import pytest

from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.discovery.mdns import (
    MAX_ANNOUNCED_ADDRS,
    decode_txt,
    encode_txt,
    make_peer_name,
    peers_from_txt,
)
from aiolibp2p.multiaddr import Multiaddr


def test_peer_names_are_random_lowercase_alphanumerics() -> None:
    names = {make_peer_name() for _ in range(50)}
    assert len(names) == 50
    assert all(re.fullmatch(r"[a-z0-9]{32}", n) for n in names)
    assert len(make_peer_name(63)) == 63
    with pytest.raises(ValueError):
        make_peer_name(31)


def test_txt_round_trip() -> None:
    pid = generate_key_pair().public_key.peer_id
    addrs = [
        Multiaddr("/ip4/127.0.0.1/tcp/4001"),
        Multiaddr("/ip6/::1/udp/4001/quic-v1"),
        Multiaddr("/ip4/10.0.0.1/tcp/1/p2p/" + str(generate_key_pair().public_key.peer_id) + "/p2p-circuit"),
        Multiaddr("/dns4/" + "a" * 250 + "/tcp/1"),  # longer than a DNS character-string
    ]
    strings = decode_txt(encode_txt(pid, addrs))
    assert strings == [f"dnsaddr={a}/p2p/{pid}".encode() for a in addrs[:2]]
    assert peers_from_txt(strings) == {pid: addrs[:2]}
    many = [Multiaddr(f"/ip4/127.0.0.1/tcp/{p}") for p in range(1, 100)]
    assert len(decode_txt(encode_txt(pid, many))) == MAX_ANNOUNCED_ADDRS
    assert decode_txt(encode_txt(pid, [])) == [b""]


def test_txt_parsing_is_tolerant() -> None:
    a = generate_key_pair().public_key.peer_id
    b = generate_key_pair().public_key.peer_id
    strings = [
        f"dnsaddr=/ip4/127.0.0.1/tcp/1/p2p/{a}".encode(),
        f"DNSADDR=/ip4/127.0.0.1/tcp/2/p2p/{b}".encode(),  # TXT keys are case-insensitive
        f"dnsaddr=/ip4/127.0.0.1/tcp/1/p2p/{a}".encode(),  # duplicate
        b"dnsaddr=/ip4/127.0.0.1/tcp/3",  # no /p2p
        b"dnsaddr=/nonsense",
        b"dnsaddr=\xff\xfe",
        b"other=thing",
        b"",
    ]
    assert peers_from_txt(strings) == {
        a: [Multiaddr("/ip4/127.0.0.1/tcp/1")],
        b: [Multiaddr("/ip4/127.0.0.1/tcp/2")],
    }
    assert decode_txt(b"\x03abc\x05de") == [b"abc"]  # truncated string dropped
