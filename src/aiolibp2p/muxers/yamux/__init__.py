"""Yamux (``/yamux/1.0.0``): sans-I/O engine and asyncio adapter. Spec: libp2p/specs ``yamux/README.md``."""

from .engine import PROTOCOL_ID, YamuxConfig, YamuxEngine
from .session import YamuxMuxer, YamuxSession, YamuxStream

__all__ = ["PROTOCOL_ID", "YamuxConfig", "YamuxEngine", "YamuxMuxer", "YamuxSession", "YamuxStream"]
