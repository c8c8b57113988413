"""``/echo/1.0.0``: echo every byte until the remote closes its write side, then close. Used by the CLI,
the demo and the interop tests."""

from __future__ import annotations

import asyncio
import os

from ...exceptions import Libp2pError, ProtocolViolation
from ...network.connection import Stream

PROTOCOL_ID = "/echo/1.0.0"
CHUNK = 256 * 1024


async def handle_echo(stream: Stream) -> None:
    try:
        while True:
            data = await stream.read(CHUNK)
            if not data:
                break
            await stream.write(data)
        await stream.close()
    except Libp2pError:
        await stream.reset()


async def echo_roundtrip(
    stream: Stream, size: int, *, chunk: int = 64 * 1024, seed: bytes | None = None
) -> int:
    """Send ``size`` pseudo-random bytes, half-close, read them back and verify every byte. Returns bytes
    verified; raises ProtocolViolation on a mismatch."""
    block = (seed or os.urandom(64)) * (chunk // 64 + 1)
    payload = memoryview(block)[:chunk]

    async def send() -> None:
        left = size
        while left > 0:
            n = min(left, chunk)
            await stream.write(payload[:n])
            left -= n
        await stream.close_write()

    sender = asyncio.ensure_future(send())
    got = 0
    try:
        while True:
            data = await stream.read(CHUNK)
            if not data:
                break
            # the payload repeats every `chunk` bytes; compare against the matching window
            off = got % chunk
            view = memoryview(data)
            pos = 0
            while pos < len(view):
                n = min(len(view) - pos, chunk - off)
                if view[pos : pos + n] != payload[off : off + n]:
                    raise ProtocolViolation(f"echo mismatch at byte {got + pos}", protocol=PROTOCOL_ID)
                pos += n
                off = 0
            got += len(data)
            if got > size:
                raise ProtocolViolation("echo returned more bytes than sent", protocol=PROTOCOL_ID)
        await sender
    finally:
        if not sender.done():
            sender.cancel()
        elif not sender.cancelled():
            sender.exception()  # retrieved: a failed send also fails the read, which reports it
    if got != size:
        raise ProtocolViolation(f"echo returned {got} of {size} bytes", protocol=PROTOCOL_ID)
    await stream.close()
    return got
