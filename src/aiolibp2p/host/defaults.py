"""Every default of a host, in one screen. ``new_host(**options)`` fills what it is not given from here."""

from __future__ import annotations

from ..dns import DnsConfig
from ..network.connmgr import ConnManagerConfig
from ..network.resources import ResourceLimits
from ..network.swarm import SwarmConfig
from ..network.upgrader import UpgraderConfig

AGENT_VERSION = "aiolibp2p/0.1.0"
DEFAULT_LISTEN_ADDRS = ("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1")
"""A host listens on TCP and QUIC (loopback unless told otherwise); pass ``listen=`` to choose."""
DEFAULT_SECURITY = ("noise", "tls")
"""Security protocols in preference order: ``noise`` (``/noise``), ``tls`` (``/tls/1.0.0``), ``plaintext``
(``/plaintext/2.0.0``, tests only)."""
DEFAULT_MUXERS = ("/yamux/1.0.0", "/mplex/6.7.0")
DEFAULT_TRANSPORTS = ("quic", "tcp", "websocket", "webrtc-direct", "memory")
"""Dialable transports; dials rank QUIC first, then TCP, then WebSocket, then WebRTC-direct
(``network.swarm.rank_addrs``). Listening on one is asked for with its address (``listen=``)."""

SWARM = SwarmConfig()
UPGRADER = UpgraderConfig()
CONN_MANAGER = ConnManagerConfig()
"""Watermarks 160/192 as go-libp2p's defaults."""
RESOURCE_LIMITS = ResourceLimits()
DNS = DnsConfig()
"""``/dnsaddr`` resolution through the system's DNS servers (5 s, 4 nested levels, 100 addresses); ``/dns*`` names
are left to the transports."""

IDENTIFY_TIMEOUT = 10.0
PING_TIMEOUT = 10.0
CONNECT_TIMEOUT = 15.0
"""Seconds ``Host.connect`` may take (dial + upgrade)."""
NEW_STREAM_TIMEOUT = 15.0
KEEPALIVE_INTERVAL = 15.0
"""Muxer keep-alive ping interval: a silently vanished peer is detected within about twice this."""
KEEPALIVE_TIMEOUT = 10.0
