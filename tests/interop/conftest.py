"""Interop tests against the js-libp2p peer in interop/js.

Every test collected under tests/interop gets the ``interop`` marker, and is
skipped with a clear reason when node or interop/js/node_modules is missing
(CI installs them with ``npm ci`` in interop/js).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jspeer import JsPeer, missing_requirements

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing_requirements()
    skip = pytest.mark.skip(reason=f"js interop unavailable: {reason}") if reason else None
    for item in items:
        if _HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.interop)
        if skip is not None:
            item.add_marker(skip)


@pytest.fixture
async def js_peer_factory() -> AsyncIterator[Callable[..., Any]]:
    """``peer = await js_peer_factory(muxer="mplex")``: started JsPeers, all stopped at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**kwargs: Any) -> JsPeer:
            return await stack.enter_async_context(JsPeer(**kwargs))

        yield make


@pytest.fixture
async def js_peer(js_peer_factory: Callable[..., Any]) -> JsPeer:
    """One started, listening js peer with yamux."""
    peer: JsPeer = await js_peer_factory()
    return peer
