"""Ping (``/ipfs/ping/1.0.0``): the dialer sends 32 random bytes, the listener echoes them; repeatable on one
stream.

Spec: https://github.com/libp2p/specs/blob/master/ping/ping.md — the dialer keeps at most one outbound ping
stream per peer; the listener accepts at most ``MAX_INBOUND_STREAMS_PER_PEER`` streams per peer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from ...crypto.peer_id import PeerId
from ...exceptions import DeadlineExceeded, Libp2pError, ProtocolViolation
from ...network import events as ev
from ...network.connection import Stream

if TYPE_CHECKING:
    from ...host.host import Host

log = logging.getLogger(__name__)

PROTOCOL_ID = "/ipfs/ping/1.0.0"
PING_SIZE = 32
PING_TIMEOUT = 10.0
"""Seconds one ping (including opening its stream when needed) may take."""
MAX_INBOUND_STREAMS_PER_PEER = 2
INBOUND_IDLE_TIMEOUT = 60.0
"""An inbound ping stream with no ping for this long is closed."""


class PingService:
    def __init__(self, host: Host, *, timeout: float = PING_TIMEOUT) -> None:
        self.host = host
        self.timeout = timeout
        self._streams: dict[PeerId, Stream] = {}
        self._locks: dict[PeerId, asyncio.Lock] = {}
        self._inbound: dict[PeerId, int] = {}

    def start(self) -> None:
        self.host.set_stream_handler(PROTOCOL_ID, self._handle)
        self.host.bus.on(ev.ConnectionClosed, self._on_connection_closed, service=True)

    def _on_connection_closed(self, event: ev.ConnectionClosed) -> None:
        # The kept outbound stream dies with its connection: forget it (and the peer's idle lock), or the closed
        # stream would pin the whole connection (muxer, security, socket objects) for as long as we know the peer.
        s = self._streams.get(event.peer)
        if s is not None and s.conn is event.conn:
            del self._streams[event.peer]
            lock = self._locks.get(event.peer)
            if lock is not None and not lock.locked():
                del self._locks[event.peer]

    async def _handle(self, stream: Stream) -> None:
        peer = stream.remote_peer
        n = self._inbound.get(peer, 0)
        if n >= MAX_INBOUND_STREAMS_PER_PEER:
            await stream.reset()
            return
        self._inbound[peer] = n + 1
        loop = asyncio.get_running_loop()
        last = loop.time()
        handle: asyncio.TimerHandle | None = None

        # One timer per stream instead of a deadline per read (this loop is the whole ping hot path): an idle
        # stream is reset, which ends the read below with StreamReset.
        def watchdog() -> None:
            nonlocal handle
            left = last + INBOUND_IDLE_TIMEOUT - loop.time()
            if left > 0:
                handle = loop.call_later(left, watchdog)
            else:
                handle = None
                self.host._track(asyncio.ensure_future(stream.reset()))

        handle = loop.call_later(INBOUND_IDLE_TIMEOUT, watchdog)
        try:
            while True:
                try:
                    data = await stream.readexactly(PING_SIZE)
                except asyncio.IncompleteReadError:
                    break
                last = loop.time()
                await stream.write(data)
            await stream.close()
        except Libp2pError as e:
            log.debug("inbound ping stream from %s ended: %r", peer, e)
            await stream.reset()
        finally:
            if handle is not None:
                handle.cancel()
            left = self._inbound.get(peer, 1) - 1
            if left <= 0:
                self._inbound.pop(peer, None)
            else:
                self._inbound[peer] = left

    async def ping(self, peer: PeerId, *, timeout: float | None = None) -> float:
        """Round-trip time in seconds. Reuses one outbound ping stream per peer; a broken stream is replaced
        once."""
        t = self.timeout if timeout is None else timeout
        lock = self._locks.setdefault(peer, asyncio.Lock())
        try:
            async with asyncio.timeout(t):
                async with lock:
                    for attempt in range(2):
                        stream = self._streams.get(peer)
                        if stream is None or stream.is_closed():
                            stream = await self.host.new_stream(peer, [PROTOCOL_ID], timeout=t)
                            self._streams[peer] = stream
                        try:
                            return await self._ping_once(stream)
                        except (Libp2pError, asyncio.IncompleteReadError, OSError):
                            self._streams.pop(peer, None)
                            await stream.reset()
                            if attempt:
                                raise
                    raise AssertionError("unreachable")
        except TimeoutError:
            s = self._streams.pop(peer, None)
            if s is not None:
                await s.reset()
            raise DeadlineExceeded("ping", t) from None
        finally:
            if not lock.locked() and peer not in self._streams:
                self._locks.pop(peer, None)

    @staticmethod
    async def _ping_once(stream: Stream) -> float:
        payload = os.urandom(PING_SIZE)
        start = time.perf_counter()
        await stream.write(payload)
        echo = await stream.readexactly(PING_SIZE)
        rtt = time.perf_counter() - start
        if echo != payload:
            raise ProtocolViolation("ping echo does not match", protocol=PROTOCOL_ID)
        return rtt

    def forget(self, peer: PeerId) -> None:
        self._streams.pop(peer, None)
