"""Multiaddr: composable, self-describing network addresses (multiformats/multiaddr).

``from aiolibp2p.multiaddr import Multiaddr``. See :mod:`.multiaddr` for the value type and :mod:`.protocols`
for the protocol table (codes and sizes from protocols.csv).
"""

from __future__ import annotations

from . import protocols as _protocols
from .multiaddr import Multiaddr
from .protocols import *  # noqa: F403  (the protocol table's public names, listed once in its __all__)

__all__ = ["Multiaddr"]
__all__ += _protocols.__all__
