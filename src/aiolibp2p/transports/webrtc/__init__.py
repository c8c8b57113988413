"""WebRTC-direct (``/udp/<port>/webrtc-direct/certhash/<hash>``): see :mod:`.transport`.

The connection machinery (aiortc's SCTP) is imported on first use, so a host that can dial WebRTC-direct
addresses pays nothing until it does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .certificate import WebRtcCertificate
from .config import WebRtcDirectConfig
from .transport import WebRtcDirectListener, WebRtcDirectTransport, parse_webrtc_direct_multiaddr

if TYPE_CHECKING:
    from .connection import WebRtcConnection, WebRtcStream

__all__ = [
    "WebRtcCertificate",
    "WebRtcConnection",
    "WebRtcDirectConfig",
    "WebRtcDirectListener",
    "WebRtcDirectTransport",
    "WebRtcStream",
    "parse_webrtc_direct_multiaddr",
]


def __getattr__(name: str) -> Any:
    if name in ("WebRtcConnection", "WebRtcStream"):
        from . import connection

        return getattr(connection, name)
    raise AttributeError(name)
