"""The connection upgrader: raw pipe → security → muxer → muxed connection.

Model: go-libp2p ``p2p/net/upgrader``. Security and muxer are each negotiated with multistream-select,
unless the security handshake already chose the muxer (Noise extensions / TLS ALPN). Every step is bounded by
a named timeout, and a failed upgrade aborts the raw pipe so the remote sees it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from ..core.interfaces import Direction, MuxedConnection, MuxerFactory, SecureSession, SecurityTransport
from ..core.pipe import Pipe, PipeReader
from ..crypto.peer_id import PeerId
from ..exceptions import DeadlineExceeded, GaterRefused, HandshakeError
from ..multistream import LazySelectReader, handle_protocol, select_protocol
from .gater import ConnectionGater


@dataclass(frozen=True, slots=True)
class UpgraderConfig:
    security_timeout: float = 10.0
    """Seconds for security negotiation plus the handshake."""
    muxer_timeout: float = 10.0
    """Seconds for muxer negotiation after the secure channel is up."""
    lazy_security: bool = True
    """With a single security protocol configured, a dialer proposes it and starts its handshake without
    waiting for the listener's echo (multistream "V1Lazy", as rust-libp2p dials): one round trip less. The echo
    is checked before the handshake's first answer is read; a listener without the protocol fails the dial."""


@dataclass(frozen=True, slots=True)
class Upgraded:
    session: SecureSession
    muxed: MuxedConnection
    muxer: str


class Upgrader:
    def __init__(
        self,
        security: Sequence[SecurityTransport],
        muxers: Sequence[MuxerFactory],
        config: UpgraderConfig | None = None,
        gater: ConnectionGater | None = None,
    ) -> None:
        if not security:
            raise ValueError("at least one security transport is required")
        if not muxers:
            raise ValueError("at least one muxer is required")
        self.security = {s.protocol_id: s for s in security}
        self.security_order = [s.protocol_id for s in security]
        self.muxers = {m.protocol_id: m for m in muxers}
        self.muxer_order = [m.protocol_id for m in muxers]
        self.config = config or UpgraderConfig()
        self.gater = gater

    async def upgrade(self, pipe: Pipe, direction: Direction, remote_peer: PeerId | None = None) -> Upgraded:
        try:
            return await self._upgrade(pipe, direction, remote_peer)
        except BaseException:
            pipe.abort()
            raise

    async def _upgrade(self, pipe: Pipe, direction: Direction, remote_peer: PeerId | None) -> Upgraded:
        outbound = direction is Direction.OUTBOUND
        cfg = self.config
        lazy = outbound and cfg.lazy_security and len(self.security_order) == 1
        reader = LazySelectReader(pipe, self.security_order[0]) if lazy else PipeReader(pipe)
        try:
            async with asyncio.timeout(cfg.security_timeout):
                if outbound:
                    if lazy:
                        proto = self.security_order[0]
                    else:
                        proto = await select_protocol(reader, self.security_order)
                    session = await self.security[proto].secure_outbound(
                        reader, remote_peer, self.muxer_order
                    )
                else:
                    proto = await handle_protocol(reader, self.security)
                    session = await self.security[proto].secure_inbound(reader, self.muxer_order)
        except TimeoutError:
            raise DeadlineExceeded("security handshake", cfg.security_timeout) from None
        if outbound and remote_peer is not None and session.remote_peer != remote_peer:
            raise HandshakeError(f"security handshake authenticated {session.remote_peer}, not {remote_peer}")
        if self.gater is not None and not self.gater.allow_secured(
            direction, session.remote_peer, pipe.remote_addr
        ):
            raise GaterRefused(f"gater refused secured connection with {session.remote_peer}")
        muxer_id = session.early_muxer
        sreader = session.reader
        if muxer_id is None or muxer_id not in self.muxers:
            try:
                async with asyncio.timeout(cfg.muxer_timeout):
                    if outbound:
                        muxer_id = await select_protocol(sreader, self.muxer_order)
                    else:
                        muxer_id = await handle_protocol(sreader, self.muxers)
            except TimeoutError:
                raise DeadlineExceeded("muxer negotiation", cfg.muxer_timeout) from None
        muxed = self.muxers[muxer_id].create(sreader, is_initiator=outbound)
        return Upgraded(session, muxed, muxer_id)
