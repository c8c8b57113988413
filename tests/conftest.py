"""Shared pytest configuration: uvloop when installed (set AIOLIBP2P_TEST_UVLOOP=0 for the stdlib loop)."""

from __future__ import annotations

import asyncio
import contextlib
import os

if os.environ.get("AIOLIBP2P_TEST_UVLOOP", "1") == "1":
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
