"""The rendezvous point on a host: serves ``/rendezvous/1.0.0`` streams with a :class:`RendezvousRegistry`.

Spec: https://github.com/libp2p/specs/blob/master/rendezvous/README.md. A client may send several requests on
one stream (each REGISTER and DISCOVER gets its response in order; UNREGISTER gets none); the stream ends at
the client's EOF, after ``idle_timeout`` without a request, or at the first protocol violation (reset).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ...exceptions import Libp2pError, ProtocolViolation
from ...network.connection import Stream
from .codec import PROTOCOL_ID, MessageReader, encode_message
from .registry import RendezvousLimits, RendezvousRegistry

if TYPE_CHECKING:
    from ...host.host import Host

__all__ = ["MAX_REQUESTS_PER_STREAM", "MAX_REQUEST_SIZE", "STREAM_IDLE_TIMEOUT", "RendezvousServer"]

log = logging.getLogger(__name__)

MAX_REQUEST_SIZE: Final = 64 * 1024
"""Largest request accepted (a REGISTER is a namespace and a signed record of at most 8 KiB)."""
MAX_REQUESTS_PER_STREAM: Final = 1000
"""Requests served on one stream before the server closes it."""
STREAM_IDLE_TIMEOUT: Final = 30.0
"""Seconds a server stream may wait for the next request (or a response write may take)."""


class RendezvousServer:
    """Makes ``host`` a rendezvous point. ``clock`` (seconds) drives TTLs; inject one in tests."""

    def __init__(
        self,
        host: Host,
        limits: RendezvousLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        idle_timeout: float = STREAM_IDLE_TIMEOUT,
    ) -> None:
        self.host = host
        self.registry = RendezvousRegistry(limits)
        self.clock = clock
        self.idle_timeout = idle_timeout

    def start(self) -> None:
        self.host.set_stream_handler(PROTOCOL_ID, self._handle)

    def close(self) -> None:
        self.host.remove_stream_handler(PROTOCOL_ID)

    async def _handle(self, stream: Stream) -> None:
        reader = MessageReader(MAX_REQUEST_SIZE)
        served = 0
        try:
            while served < MAX_REQUESTS_PER_STREAM:
                data = await stream.read(65536, timeout=self.idle_timeout)
                if not data:
                    break
                for msg in reader.feed(data):
                    served += 1
                    resp = self.registry.handle(stream.remote_peer, msg, self.clock())
                    if resp is not None:
                        await stream.write(encode_message(resp), timeout=self.idle_timeout)
            await stream.close()
        except ProtocolViolation as e:
            log.debug("rendezvous: %s broke the protocol: %r", stream.remote_peer, e)
            await stream.reset()
        except (Libp2pError, OSError) as e:
            log.debug("rendezvous stream from %s failed: %r", stream.remote_peer, e)
            await stream.reset()
