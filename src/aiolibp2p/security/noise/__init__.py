"""libp2p Noise security (``/noise``): https://github.com/libp2p/specs/blob/master/noise/README.md.

``handshake`` is the sans-I/O XX handshake, ``framing`` the sans-I/O transport framing, ``transport`` the
asyncio adapter (:class:`NoiseSecurity`, :class:`NoisePipe`).
"""

from .framing import MAX_PLAINTEXT, NoiseFrameDecoder, NoiseFrameEncoder, encode_handshake_frame
from .handshake import (
    PROTOCOL_NAME,
    CipherState,
    NoiseExtensions,
    NoiseHandshake,
    NoiseHandshakeResult,
    select_early_muxer,
)
from .transport import DEFAULT_HANDSHAKE_TIMEOUT, PROTOCOL_ID, NoisePipe, NoiseSecurity

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "MAX_PLAINTEXT",
    "PROTOCOL_ID",
    "PROTOCOL_NAME",
    "CipherState",
    "NoiseExtensions",
    "NoiseFrameDecoder",
    "NoiseFrameEncoder",
    "NoiseHandshake",
    "NoiseHandshakeResult",
    "NoisePipe",
    "NoiseSecurity",
    "encode_handshake_frame",
    "select_early_muxer",
]
