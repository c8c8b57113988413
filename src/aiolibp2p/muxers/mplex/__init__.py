"""mplex (``/mplex/6.7.0``, deprecated): sans-I/O engine and asyncio adapter. Spec: libp2p/specs
``mplex/README.md``."""

from .engine import PROTOCOL_ID, MplexConfig, MplexEngine, StreamKey
from .session import MplexMuxer, MplexSession, MplexStream

__all__ = [
    "PROTOCOL_ID",
    "MplexConfig",
    "MplexEngine",
    "MplexMuxer",
    "MplexSession",
    "MplexStream",
    "StreamKey",
]
