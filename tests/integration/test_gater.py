"""The connection gater at every stage: dial peer, dial address, accept, secured (both directions) and upgraded
(both directions), over TCP (the upgrader's path) and QUIC (a transport that arrives secured and multiplexed).

Each refusal is checked from both sides: the refused side gets a typed error or sees the connection end, the
gated side never announces the connection (no ConnectionOpened), its resources are released, and it keeps
serving others.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aiolibp2p
from aiolibp2p.core.interfaces import Direction
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.exceptions import DialError, GaterRefused
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.network import events as ev
from aiolibp2p.network.connection import Connection
from aiolibp2p.network.gater import ConnectionGater

STACKS = {
    "tcp": {"transports": ["tcp"], "listen": ["/ip4/127.0.0.1/tcp/0"]},
    "quic": {"transports": ["quic"], "listen": ["/ip4/127.0.0.1/udp/0/quic-v1"]},
}


class RecordingGater(ConnectionGater):
    """Records every stage it is asked about; refuses the stages named in ``refuse``."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.refuse = refuse
        self.calls: list[tuple[str, Any]] = []

    def _answer(self, stage: str, arg: Any) -> bool:
        self.calls.append((stage, arg))
        return stage not in self.refuse

    def allow_dial_peer(self, peer: PeerId) -> bool:
        return self._answer("dial_peer", peer) and super().allow_dial_peer(peer)

    def allow_dial_addr(self, peer: PeerId | None, addr: Multiaddr) -> bool:
        return self._answer("dial_addr", addr) and super().allow_dial_addr(peer, addr)

    def allow_accept(self, remote_addr: object | None) -> bool:
        return self._answer("accept", remote_addr) and super().allow_accept(remote_addr)

    def allow_secured(self, direction: Direction, peer: PeerId, remote_addr: object | None) -> bool:
        return self._answer("secured", (direction, peer)) and super().allow_secured(
            direction, peer, remote_addr
        )

    def allow_upgraded(self, conn: Connection) -> bool:
        return self._answer("upgraded", conn) and super().allow_upgraded(conn)

    def stages(self) -> list[str]:
        return [s for s, _ in self.calls]


def _host(stack: str, gater: ConnectionGater | None = None, *, listen: bool = True) -> aiolibp2p.Host:
    opts = dict(STACKS[stack])
    if not listen:
        opts["listen"] = []
    return aiolibp2p.new_host(gater=gater, **opts)


async def _wait(pred: Any, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


async def _dial_refused_by_listener(dialer: aiolibp2p.Host, listener: aiolibp2p.Host) -> None:
    """The dial fails, or (when the dialer's side of the handshake completes first, as with Noise XX, TLS 1.3
    and QUIC) the connection it got ends within 1 s."""
    try:
        await dialer.connect(listener.full_addrs()[0], timeout=5)
    except DialError:
        return
    await _wait(lambda: not dialer.connections(), 1.0)


def _clean(h: aiolibp2p.Host) -> bool:
    st = h.swarm.resources.stats()
    return not h.connections() and st["connections"] == 0 and st["streams"] == 0


@pytest.mark.parametrize("stack", list(STACKS))
async def test_every_stage_is_consulted_in_order(stack: str) -> None:
    dg, lg = RecordingGater(), RecordingGater()
    async with asyncio.timeout(10), _host(stack, lg) as listener, _host(stack, dg, listen=False) as dialer:
        peer = await dialer.connect(listener.full_addrs()[0])
        await _wait(lambda: listener.connections(dialer.peer_id))
        assert dg.stages() == ["dial_peer", "dial_addr", "secured", "upgraded"]
        assert lg.stages() == ["accept", "secured", "upgraded"]
        assert dg.calls[2][1] == (Direction.OUTBOUND, peer)
        assert lg.calls[1][1] == (Direction.INBOUND, dialer.peer_id)
        up = lg.calls[2][1]  # the whole connection: peer, direction, transport, addresses
        assert up.remote_peer == dialer.peer_id and up.direction is Direction.INBOUND
        assert up.transport == stack and up.remote_addr is not None
        assert dg.calls[3][1] is dialer.connections(peer)[0]
        assert await dialer.ping(peer) > 0


async def test_dial_peer_stage() -> None:
    async with asyncio.timeout(10), _host("tcp") as listener, _host("tcp", listen=False) as dialer:
        dialer.gater.deny_peer(listener.peer_id)
        with pytest.raises(GaterRefused):
            await dialer.connect(listener.full_addrs()[0])
        assert not listener.connections()
        dialer.gater.allow_peer(listener.peer_id)
        assert await dialer.connect(listener.full_addrs()[0]) == listener.peer_id


async def test_dial_addr_stage() -> None:
    """A denied subnet is skipped among a peer's addresses; with only it, the dial fails naming the gater."""
    async with asyncio.timeout(10):
        async with (
            aiolibp2p.new_host(
                transports=["tcp"], listen=["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.2/tcp/0"]
            ) as lst,
            _host("tcp", listen=False) as dialer,
        ):
            dialer.gater.deny_subnet("127.0.0.2/32")
            via_2 = [a for a in lst.full_addrs() if "127.0.0.2" in str(a)]
            with pytest.raises(DialError) as ei:
                await dialer.connect(via_2)
            assert all(isinstance(e, GaterRefused) for e in ei.value.errors.values()), ei.value.errors
            assert not lst.connections()
            await dialer.connect(lst.full_addrs())
            (conn,) = dialer.connections(lst.peer_id)
            assert "127.0.0.1" in str(conn.remote_addr)


@pytest.mark.parametrize("stack", list(STACKS))
async def test_accept_stage(stack: str) -> None:
    """The listener refuses the source address: over TCP before any handshake work (the dial fails); QUIC asks
    once its handshake is done. The listener never holds or announces the connection."""
    gater = RecordingGater(refuse=("accept",))
    async with asyncio.timeout(15), _host(stack, gater) as listener, _host(stack, listen=False) as dialer:
        opened: list[ev.Event] = []
        listener.on(ev.ConnectionOpened, opened.append)
        if stack == "tcp":
            with pytest.raises(DialError):
                await dialer.connect(listener.full_addrs()[0], timeout=5)
        else:
            await _dial_refused_by_listener(dialer, listener)
        assert gater.stages() == ["accept"]
        assert not opened and _clean(listener)
        gater.refuse = ()
        assert await dialer.connect(listener.full_addrs()[0], timeout=5) == listener.peer_id


@pytest.mark.parametrize("side", ["listener", "dialer"])
@pytest.mark.parametrize("stack", list(STACKS))
async def test_secured_stage(stack: str, side: str) -> None:
    """Refused once the peer is authenticated, on either side: the dial fails (or, refused by the listener,
    the dialer's connection ends within 1 s), neither side keeps a connection and the refusing side never
    announces one."""
    gater = RecordingGater(refuse=("secured",))
    lg, dg = (gater, None) if side == "listener" else (None, gater)
    async with asyncio.timeout(15), _host(stack, lg) as listener, _host(stack, dg, listen=False) as dialer:
        refusing = listener if side == "listener" else dialer
        opened: list[ev.Event] = []
        refusing.on(ev.ConnectionOpened, opened.append)
        if side == "dialer":
            with pytest.raises(DialError) as ei:
                await dialer.connect(listener.full_addrs()[0], timeout=5)
            assert any(isinstance(e, GaterRefused) for e in ei.value.errors.values()), ei.value.errors
        else:
            await _dial_refused_by_listener(dialer, listener)
        assert "secured" in gater.stages() and "upgraded" not in gater.stages()
        assert not opened
        await _wait(lambda: _clean(listener) and _clean(dialer))


@pytest.mark.parametrize("side", ["listener", "dialer"])
@pytest.mark.parametrize("stack", list(STACKS))
async def test_upgraded_stage(stack: str, side: str) -> None:
    """Refused with the whole connection in hand: the refusing side never announces it (no opened, no closed
    event) and releases it; the other side sees it end within 1 s; a third peer is served meanwhile."""

    class RefuseDialerPeer(RecordingGater):
        target: PeerId | None = None

        def allow_upgraded(self, conn: Connection) -> bool:
            self.calls.append(("upgraded", conn))
            return conn.remote_peer != self.target

    gater = RefuseDialerPeer()
    lg, dg = (gater, None) if side == "listener" else (None, gater)
    async with (
        asyncio.timeout(15),
        _host(stack, lg) as listener,
        _host(stack, dg, listen=False) as dialer,
        _host(stack, listen=False) as other,
    ):
        gater.target = dialer.peer_id if side == "listener" else listener.peer_id
        refusing, refused = (listener, dialer) if side == "listener" else (dialer, listener)
        seen: list[ev.Event] = []
        refusing.on((ev.ConnectionOpened, ev.ConnectionClosed), seen.append)
        if side == "dialer":
            with pytest.raises(DialError) as ei:
                await dialer.connect(listener.full_addrs()[0], timeout=5)
            assert any(isinstance(e, GaterRefused) for e in ei.value.errors.values()), ei.value.errors
        else:
            await _dial_refused_by_listener(dialer, listener)
        assert gater.stages()[-1] == "upgraded"
        await _wait(lambda: not refused.connections(), 1.0)
        await _wait(lambda: _clean(refusing) and _clean(refused))
        assert not seen
        assert await other.connect(listener.full_addrs()[0]) == listener.peer_id
        assert await other.ping(listener.peer_id) > 0
