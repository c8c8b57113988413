"""multistream-select 1.0 (https://github.com/multiformats/multistream-select): sans-I/O engines in
:mod:`.engine`, asyncio helpers in :mod:`.negotiate`."""

from .engine import (
    MAX_MESSAGE_SIZE,
    MAX_NA_ATTEMPTS,
    MULTISTREAM_PROTOCOL_ID,
    MultistreamDialer,
    MultistreamListener,
)
from .negotiate import (
    LazyNegotiatedStream,
    LazySelectReader,
    NegotiationStream,
    handle_protocol,
    select_protocol,
    select_protocol_lazy,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_NA_ATTEMPTS",
    "MULTISTREAM_PROTOCOL_ID",
    "LazyNegotiatedStream",
    "LazySelectReader",
    "MultistreamDialer",
    "MultistreamListener",
    "NegotiationStream",
    "handle_protocol",
    "select_protocol",
    "select_protocol_lazy",
]
