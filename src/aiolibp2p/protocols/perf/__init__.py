"""Perf (``/perf/1.0.0``): throughput measurement.

Spec: https://github.com/libp2p/specs/blob/master/perf/perf.md — the client sends the download size as a
big-endian u64, uploads its bytes, closes its write side; the server reads to EOF, then sends the requested
number of bytes and closes. Off by default on a host (the spec says it MUST NOT be on by default).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...exceptions import Libp2pError, ProtocolViolation
from ...network.connection import Stream

PROTOCOL_ID = "/perf/1.0.0"
BLOCK_SIZE = 256 * 1024
"""Bytes per write on either side."""
MAX_DOWNLOAD_BYTES = 1 << 40
"""Largest download a server agrees to send (1 TiB)."""

_ZEROS = memoryview(bytes(BLOCK_SIZE))

Progress = Callable[[str, int, float], None]
"""progress(phase, bytes_so_far, elapsed_seconds) — phase is "upload" or "download"."""


@dataclass(frozen=True, slots=True)
class PerfResult:
    upload_bytes: int
    download_bytes: int
    upload_seconds: float
    download_seconds: float
    total_seconds: float


async def handle_perf(stream: Stream) -> None:
    """Server side."""
    try:
        header = await stream.readexactly(8)
        (size,) = struct.unpack(">Q", header)
        if size > MAX_DOWNLOAD_BYTES:
            raise ProtocolViolation(
                f"perf download of {size} bytes exceeds {MAX_DOWNLOAD_BYTES}", protocol=PROTOCOL_ID
            )
        while await stream.read(BLOCK_SIZE):
            pass
        left = size
        while left > 0:
            n = min(left, BLOCK_SIZE)
            await stream.write(_ZEROS[:n])
            left -= n
        await stream.close()
    except (Libp2pError, EOFError) as e:
        del e
        await stream.reset()
    except Exception:
        await stream.reset()
        raise


async def run_perf(
    stream: Stream,
    upload_bytes: int,
    download_bytes: int,
    progress: Progress | None = None,
    progress_interval: float = 1.0,
) -> PerfResult:
    """Client side: upload ``upload_bytes``, then download ``download_bytes``; times each phase."""
    t0 = time.perf_counter()
    last = t0
    await stream.write(struct.pack(">Q", download_bytes))
    left = upload_bytes
    while left > 0:
        n = min(left, BLOCK_SIZE)
        await stream.write(_ZEROS[:n])
        left -= n
        if progress is not None and time.perf_counter() - last >= progress_interval:
            last = time.perf_counter()
            progress("upload", upload_bytes - left, last - t0)
    await stream.close_write()
    t1 = time.perf_counter()
    got = 0
    while True:
        data = await stream.read(BLOCK_SIZE)
        if not data:
            break
        got += len(data)
        if got > download_bytes:
            raise ProtocolViolation("perf server sent more than requested", protocol=PROTOCOL_ID)
        if progress is not None and time.perf_counter() - last >= progress_interval:
            last = time.perf_counter()
            progress("download", got, last - t1)
    t2 = time.perf_counter()
    if got != download_bytes:
        raise ProtocolViolation(f"perf server sent {got} of {download_bytes} bytes", protocol=PROTOCOL_ID)
    await stream.close()
    return PerfResult(upload_bytes, got, t1 - t0, t2 - t1, t2 - t0)
