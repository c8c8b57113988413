"""Peer records: a peer's self-certified listen addresses, carried in a signed envelope.

Implements RFC 0003 (https://github.com/libp2p/specs/blob/master/RFC/0003-routing-records.md):
``PeerRecord{peer_id=1, seq=2, addresses=3 {multiaddr=1}}``, sealed in a :class:`SignedEnvelope`.

The RFC text names the domain ``libp2p-routing-state`` and payload type ``/libp2p/routing-state-record``;
every deployed implementation (go, js, nim, py, rust's interop mode) uses domain ``"libp2p-peer-record"``
and payload type ``0x03 0x01`` (multicodec 0x0301 as two raw big-endian bytes), and so does this module.

Addresses are kept as binary multiaddr bytes; parsing them is the multiaddr module's job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from google.protobuf.message import DecodeError as _PbDecodeError

from ..exceptions import DecodeError, InvalidSignature
from ..wire.pb import peer_record_pb2
from .envelope import SignedEnvelope
from .keys import PrivateKey
from .peer_id import PeerId

__all__ = [
    "MAX_PEER_RECORD_ADDRS",
    "PEER_RECORD_ENVELOPE_DOMAIN",
    "PEER_RECORD_PAYLOAD_TYPE",
    "PeerRecord",
    "make_signed_peer_record",
    "open_signed_peer_record",
]

PEER_RECORD_ENVELOPE_DOMAIN: Final = "libp2p-peer-record"
PEER_RECORD_PAYLOAD_TYPE: Final = b"\x03\x01"
MAX_PEER_RECORD_ADDRS: Final = 256
"""Most addresses accepted in one record (a host rarely has more than a few dozen)."""
MAX_PEER_RECORD_ADDR_BYTES: Final = 1024
"""Longest single binary multiaddr accepted in a record."""
MAX_SEQ: Final = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A peer's addresses at a point in its history (``seq`` orders records; higher is newer)."""

    peer_id: PeerId
    seq: int
    addrs: tuple[bytes, ...]

    def __init__(self, peer_id: PeerId, seq: int, addrs: Iterable[bytes]) -> None:
        addrs_t = tuple(bytes(a) for a in addrs)
        if not 0 <= seq <= MAX_SEQ:
            raise ValueError("peer record seq must fit in a uint64")
        if len(addrs_t) > MAX_PEER_RECORD_ADDRS:
            raise ValueError(f"a peer record holds at most {MAX_PEER_RECORD_ADDRS} addresses")
        object.__setattr__(self, "peer_id", peer_id)
        object.__setattr__(self, "seq", seq)
        object.__setattr__(self, "addrs", addrs_t)

    def to_protobuf(self) -> bytes:
        msg = peer_record_pb2.PeerRecord(peer_id=self.peer_id.to_bytes(), seq=self.seq)
        for a in self.addrs:
            msg.addresses.add(multiaddr=a)
        return msg.SerializeToString(deterministic=True)

    @classmethod
    def from_protobuf(cls, data: bytes | bytearray | memoryview) -> PeerRecord:
        """Parse a ``PeerRecord``; raises DecodeError."""
        msg = peer_record_pb2.PeerRecord()
        try:
            msg.ParseFromString(bytes(data))
        except (_PbDecodeError, ValueError, RuntimeError) as e:
            raise DecodeError(f"malformed peer record: {e}") from None
        peer_id = PeerId.from_bytes(msg.peer_id)
        if len(msg.addresses) > MAX_PEER_RECORD_ADDRS:
            raise DecodeError(
                f"peer record has {len(msg.addresses)} addresses, limit {MAX_PEER_RECORD_ADDRS}"
            )
        addrs = []
        for info in msg.addresses:
            if not info.multiaddr or len(info.multiaddr) > MAX_PEER_RECORD_ADDR_BYTES:
                raise DecodeError("peer record address is empty or too long")
            addrs.append(info.multiaddr)
        return cls(peer_id, msg.seq, addrs)


class _SeqClock:
    """Time-based sequence numbers (unix nanoseconds, as go does) that strictly increase in this process,
    even if the wall clock steps back."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last


_seq_clock = _SeqClock()


def make_signed_peer_record(private_key: PrivateKey, addrs: Iterable[bytes], seq: int | None = None) -> bytes:
    """Build, sign and serialize a peer record envelope for ``private_key``'s peer.

    ``seq`` defaults to the current time in nanoseconds, strictly increasing within the process.
    """
    record = PeerRecord(private_key.public_key.peer_id, _seq_clock.next() if seq is None else seq, addrs)
    envelope = SignedEnvelope.seal(
        private_key, PEER_RECORD_ENVELOPE_DOMAIN, PEER_RECORD_PAYLOAD_TYPE, record.to_protobuf()
    )
    return envelope.to_bytes()


def open_signed_peer_record(data: bytes | bytearray | memoryview) -> tuple[PeerRecord, SignedEnvelope]:
    """Verify a signed peer record envelope and parse its record.

    Raises DecodeError (malformed, wrong payload type), CryptoError (bad key) or InvalidSignature (bad
    signature, or a record about a peer other than the signer).
    """
    envelope = SignedEnvelope.open(data, PEER_RECORD_ENVELOPE_DOMAIN)
    if envelope.payload_type != PEER_RECORD_PAYLOAD_TYPE:
        raise DecodeError(f"envelope payload type {envelope.payload_type.hex()} is not a peer record (0301)")
    record = PeerRecord.from_protobuf(envelope.payload)
    if record.peer_id != envelope.peer_id:
        raise InvalidSignature(f"peer record for {record.peer_id} is signed by {envelope.peer_id}")
    return record, envelope
