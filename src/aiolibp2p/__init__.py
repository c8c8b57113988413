"""aiolibp2p: a complete, fast asyncio implementation of libp2p.

Quick start::

    import asyncio, aiolibp2p

    async def main():
        async with aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"]) as a, aiolibp2p.new_host() as b:
            peer = await b.connect(a.full_addrs()[0])
            print(await b.ping(peer))

    asyncio.run(main())

The names below are imported lazily, so ``import aiolibp2p.wire.varint`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Connection": "aiolibp2p.network.connection",
    "Stream": "aiolibp2p.network.connection",
    "Host": "aiolibp2p.host.host",
    "new_host": "aiolibp2p.host.host",
    "KeyType": "aiolibp2p.crypto.keys",
    "PrivateKey": "aiolibp2p.crypto.keys",
    "PublicKey": "aiolibp2p.crypto.keys",
    "generate_key_pair": "aiolibp2p.crypto.keys",
    "PeerId": "aiolibp2p.crypto.peer_id",
    "Multiaddr": "aiolibp2p.multiaddr",
}

__all__ = [
    "Connection",
    "Host",
    "KeyType",
    "Multiaddr",
    "PeerId",
    "PrivateKey",
    "PublicKey",
    "Stream",
    "__version__",
    "events",
    "generate_key_pair",
    "new_host",
]

if TYPE_CHECKING:
    from .crypto.keys import KeyType, PrivateKey, PublicKey, generate_key_pair
    from .crypto.peer_id import PeerId
    from .host.host import Host, new_host
    from .multiaddr import Multiaddr
    from .network import events
    from .network.connection import Connection, Stream


def __getattr__(name: str) -> Any:
    if name == "events":
        return importlib.import_module("aiolibp2p.network.events")
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'aiolibp2p' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)
