"""Identity keys, peer IDs, signed envelopes and peer records (peer-ids spec, RFC 0002, RFC 0003)."""

from .envelope import SignedEnvelope
from .keys import (
    KeyType,
    PrivateKey,
    PublicKey,
    generate_key_pair,
    load_private_key_file,
    save_private_key_file,
    unmarshal_private_key,
    unmarshal_public_key,
)
from .peer_id import PeerId
from .peer_record import PeerRecord, make_signed_peer_record, open_signed_peer_record

__all__ = [
    "KeyType",
    "PeerId",
    "PeerRecord",
    "PrivateKey",
    "PublicKey",
    "SignedEnvelope",
    "generate_key_pair",
    "load_private_key_file",
    "make_signed_peer_record",
    "open_signed_peer_record",
    "save_private_key_file",
    "unmarshal_private_key",
    "unmarshal_public_key",
]
