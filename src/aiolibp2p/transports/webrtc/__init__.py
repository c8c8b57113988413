"""WebRTC-direct (``/udp/<port>/webrtc-direct/certhash/<hash>``): see :mod:`.transport`."""

from .certificate import WebRtcCertificate
from .config import WebRtcDirectConfig
from .connection import WebRtcConnection, WebRtcStream
from .transport import WebRtcDirectListener, WebRtcDirectTransport, parse_webrtc_direct_multiaddr

__all__ = [
    "WebRtcCertificate",
    "WebRtcConnection",
    "WebRtcDirectConfig",
    "WebRtcDirectListener",
    "WebRtcDirectTransport",
    "WebRtcStream",
    "parse_webrtc_direct_multiaddr",
]
