"""CPU of a QUIC-v1 handshake per step, sans-I/O: two ``Libp2pQuicEngine``s back to back in one process.

Usage: ``python bench/quic_handshake.py [--count N] [--wan]``; prints one line per step (the median over N
handshakes, after 20 to warm up) and the sum per side, in ms, then the same as JSON. The steps are the ones
on a dial's critical path: the dialer's Initial, the listener's answer (ServerHello through Finished, its
certificate signed), the dialer checking that flight (the libp2p certificate included) and sending its own,
the listener checking the dialer's certificate and Finished, then HANDSHAKE_DONE. No sockets, no event loop:
what is left is aioquic's Python TLS and packet handling plus the libp2p certificate checks, so this is the
steadiest view of the handshake's share of ``bench/ab_dial.py --transport quic``. Each step's input comes
from the previous step; the certificates are the same for every handshake (as between two hosts that met
before). ``--wan``: 1200-byte datagrams instead of the loopback size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

from aioquic._buffer import Buffer
from aioquic.quic.packet import pull_quic_header

from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.security.tls.certificate import TlsCertificate
from aiolibp2p.transports.quic import QuicConfig
from aiolibp2p.transports.quic.engine import Libp2pQuicEngine, make_configuration, stateless_reset_key

T = TypeVar("T")
DIALER, LISTENER = ("127.0.0.1", 40001), ("127.0.0.1", 40002)
STEPS = [
    ("dialer", "Initial (ClientHello)"),
    ("listener", "reads the Initial"),
    ("listener", "sends its flight"),
    ("dialer", "reads the listener's flight"),
    ("dialer", "sends its flight (Finished)"),
    ("listener", "reads the dialer's flight"),
    ("listener", "sends HANDSHAKE_DONE"),
    ("dialer", "reads HANDSHAKE_DONE"),
]


def run(count: int, loopback: bool) -> dict[str, float]:
    cfg = QuicConfig()
    kd, kl = generate_key_pair(), generate_key_pair()
    dconf = make_configuration(TlsCertificate.generate(kd), cfg, is_client=True, loopback=loopback)
    lconf = make_configuration(TlsCertificate.generate(kl), cfg, is_client=False, loopback=loopback)
    dkey, lkey = stateless_reset_key(kd), stateless_reset_key(kl)
    samples: dict[int, list[float]] = defaultdict(list)

    def handshake() -> None:
        now = 0.0
        step = 0

        def timed(fn: Callable[[], T]) -> T:
            nonlocal now, step
            now += 0.0001
            t0 = time.perf_counter()
            out = fn()
            samples[step].append((time.perf_counter() - t0) * 1e3)
            step += 1
            return out

        def dial() -> tuple[Libp2pQuicEngine, list[tuple[bytes, object]]]:
            d = Libp2pQuicEngine(configuration=dconf, config=cfg, reset_key=dkey)
            d.connect(LISTENER, now)
            return d, d.datagrams_to_send(now)

        dialer, first = timed(dial)

        def accept() -> Libp2pQuicEngine:
            header = pull_quic_header(Buffer(data=first[0][0]), host_cid_length=cfg.connection_id_length)
            lst = Libp2pQuicEngine(
                configuration=lconf,
                config=cfg,
                reset_key=lkey,
                original_destination_connection_id=header.destination_cid,
            )
            for data, _ in first:
                lst.receive_datagram(data, DIALER, now)
            return lst

        listener = timed(accept)
        for src, dst, src_addr in (
            (listener, dialer, LISTENER),
            (dialer, listener, DIALER),
            (listener, dialer, LISTENER),
        ):
            out = timed(lambda src=src: src.datagrams_to_send(now))
            timed(
                lambda dst=dst, out=out, addr=src_addr: [dst.receive_datagram(d, addr, now) for d, _ in out]
            )
        if not (dialer.handshake_done and listener.handshake_done and dialer._handshake_confirmed):
            raise RuntimeError("the handshake did not complete")

    for _ in range(20 + count):
        handshake()
    result = {f"{side}: {what}": statistics.median(samples[i][20:]) for i, (side, what) in enumerate(STEPS)}
    for side in ("dialer", "listener"):
        result[f"{side} total"] = sum(v for k, v in result.items() if k.startswith(f"{side}:"))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--wan", action="store_true", help="1200-byte datagrams (default: the loopback size)")
    args = p.parse_args()
    result = run(args.count, loopback=not args.wan)
    for name, ms in result.items():
        print(f"{name:45s} {ms:.3f} ms")
    print(json.dumps({k: round(v, 4) for k, v in result.items()}))


if __name__ == "__main__":
    main()
