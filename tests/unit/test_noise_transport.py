"""NoiseSecurity / NoisePipe over in-memory pipes: handshake, transfer integrity, coalescing, failures."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from aiolibp2p.core.interfaces import SecureSession
from aiolibp2p.core.pipe import PipeReader
from aiolibp2p.crypto.keys import PrivateKey, generate_key_pair
from aiolibp2p.exceptions import (
    ConnectionClosed,
    CryptoError,
    DeadlineExceeded,
    DecodeError,
    HandshakeError,
    InvalidSignature,
    PeerIdMismatch,
)
from aiolibp2p.security.noise import MAX_PLAINTEXT, PROTOCOL_ID, NoiseHandshake, NoisePipe, NoiseSecurity
from aiolibp2p.security.noise.framing import NoiseFrameEncoder, encode_handshake_frame
from aiolibp2p.security.noise.handshake import MAX_NONCE
from aiolibp2p.transports.memory.pipe import MemoryPipe, memory_pipe_pair

YAMUX = "/yamux/1.0.0"
MPLEX = "/mplex/6.7.0"
WAIT = 5.0


class Collector:
    def __init__(self) -> None:
        self.data = bytearray()
        self.calls = 0
        self.eof = False
        self.lost: list[BaseException | None] = []
        self.got = asyncio.Event()

    def pipe_data_received(self, data: bytes) -> None:
        self.data += data
        self.calls += 1
        self.got.set()

    def pipe_eof_received(self) -> None:
        self.eof = True
        self.got.set()

    def pipe_connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)
        self.got.set()

    async def wait_for(self, n: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.data) < n and not self.lost:
                self.got.clear()
                await self.got.wait()

    async def wait_lost(self) -> None:
        async with asyncio.timeout(WAIT):
            while not self.lost:
                self.got.clear()
                await self.got.wait()


async def connect(
    key_a: PrivateKey | None = None,
    key_b: PrivateKey | None = None,
    *,
    muxers_a: tuple[str, ...] = (),
    muxers_b: tuple[str, ...] = (),
    expect: object = "b",
) -> tuple[SecureSession, SecureSession, MemoryPipe, MemoryPipe]:
    key_a = key_a or generate_key_pair()
    key_b = key_b or generate_key_pair()
    pa, pb = memory_pipe_pair("/memory/a", "/memory/b")
    sa, sb = NoiseSecurity(key_a), NoiseSecurity(key_b)
    expected = key_b.public_key.peer_id if expect == "b" else expect
    async with asyncio.timeout(WAIT):
        out, inb = await asyncio.gather(
            sa.secure_outbound(PipeReader(pa), expected, muxers_a),  # type: ignore[arg-type]
            sb.secure_inbound(PipeReader(pb), muxers_b),
        )
    return out, inb, pa, pb


async def test_handshake_over_memory_pipes() -> None:
    a, b = generate_key_pair(), generate_key_pair()
    out, inb, pa, pb = await connect(a, b)
    assert out.remote_peer == b.public_key.peer_id
    assert inb.remote_peer == a.public_key.peer_id
    assert out.local_peer == a.public_key.peer_id
    assert inb.remote_public_key == a.public_key
    assert out.security_protocol == inb.security_protocol == PROTOCOL_ID == NoiseSecurity.protocol_id
    assert out.early_muxer is None
    assert isinstance(out.pipe, NoisePipe)
    assert out.pipe.remote_addr == "/memory/b" and out.pipe.local_addr == "/memory/a"
    out.reader.write(b"hello over noise")
    async with asyncio.timeout(WAIT):
        assert await inb.reader.readexactly(16) == b"hello over noise"
    inb.reader.write(b"and back")
    async with asyncio.timeout(WAIT):
        assert await out.reader.readexactly(8) == b"and back"
    out.pipe.close()
    await asyncio.sleep(0.01)
    assert pa.is_closing() and pb.is_closing()


async def test_early_muxer_in_session() -> None:
    out, inb, _, _ = await connect(muxers_a=(YAMUX, MPLEX), muxers_b=(MPLEX, YAMUX))
    assert out.early_muxer == inb.early_muxer == YAMUX


async def test_no_common_muxer_fails_and_aborts() -> None:
    pa, pb = memory_pipe_pair()
    sa, sb = NoiseSecurity(generate_key_pair()), NoiseSecurity(generate_key_pair())
    async with asyncio.timeout(WAIT):
        res = await asyncio.gather(
            sa.secure_outbound(PipeReader(pa), None, [YAMUX]),
            sb.secure_inbound(PipeReader(pb), [MPLEX]),
            return_exceptions=True,
        )
    assert isinstance(res[0], HandshakeError)
    assert isinstance(res[1], ConnectionClosed)  # the initiator aborted before message 3
    assert pa.is_closing() and pb.is_closing()


async def test_wrong_peer_over_pipes() -> None:
    c = generate_key_pair()
    with pytest.raises(PeerIdMismatch):
        await connect(expect=c.public_key.peer_id)


async def test_bad_signature_over_pipes() -> None:
    pa, pb = memory_pipe_pair()
    liar = generate_key_pair()
    sb = NoiseSecurity(generate_key_pair())
    sb._identity_sig = liar.sign(b"noise-libp2p-static-key:" + bytes(32))  # signed by the wrong key
    sa = NoiseSecurity(generate_key_pair())
    async with asyncio.timeout(WAIT):
        res = await asyncio.gather(
            sa.secure_outbound(PipeReader(pa), None, []),
            sb.secure_inbound(PipeReader(pb), []),
            return_exceptions=True,
        )
    assert isinstance(res[0], InvalidSignature)
    assert isinstance(res[1], ConnectionClosed)


async def test_truncated_handshake() -> None:
    pa, pb = memory_pipe_pair()
    sb = NoiseSecurity(generate_key_pair())
    task = asyncio.create_task(sb.secure_inbound(PipeReader(pb), []))
    hs = NoiseHandshake(generate_key_pair(), is_initiator=True)
    m1 = encode_handshake_frame(hs.write_message())
    pa.write(m1[:20])  # half of message 1, then the dialer goes away
    await asyncio.sleep(0.01)
    pa.close()
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(WAIT):
            await task


async def test_garbage_handshake_message() -> None:
    pa, pb = memory_pipe_pair()
    sa = NoiseSecurity(generate_key_pair())
    task = asyncio.create_task(sa.secure_outbound(PipeReader(pa), None, []))
    reader_b = PipeReader(pb)
    async with asyncio.timeout(WAIT):
        n = int.from_bytes(await reader_b.readexactly(2), "big")
        await reader_b.readexactly(n)
    pb.write(b"\x00\x60" + os.urandom(0x60))  # a message 2 of the right size but random
    with pytest.raises(DecodeError):
        async with asyncio.timeout(WAIT):
            await task
    assert pa.is_closing()


async def test_handshake_timeout() -> None:
    pa, pb = memory_pipe_pair()
    PipeReader(pb)  # a peer that never answers
    sa = NoiseSecurity(generate_key_pair(), handshake_timeout=0.05)
    with pytest.raises(DeadlineExceeded) as info:
        async with asyncio.timeout(WAIT):
            await sa.secure_outbound(PipeReader(pa), None, [])
    assert info.value.what == "noise handshake"
    assert pa.is_closing()


async def test_leftover_after_message_three_is_kept() -> None:
    # The initiator's message 3 and its first transport frame arrive in one chunk.
    pa, pb = memory_pipe_pair()
    sb = NoiseSecurity(generate_key_pair())
    task = asyncio.create_task(sb.secure_inbound(PipeReader(pb), []))
    hs = NoiseHandshake(generate_key_pair(), is_initiator=True)
    reader_a = PipeReader(pa)
    pa.write(encode_handshake_frame(hs.write_message()))
    async with asyncio.timeout(WAIT):
        n = int.from_bytes(await reader_a.readexactly(2), "big")
        hs.read_message(await reader_a.readexactly(n))
    m3 = encode_handshake_frame(hs.write_message())
    enc = NoiseFrameEncoder(hs.result.send_cipher)
    pa.write(m3 + bytes(enc.encode(b"early application data")))
    async with asyncio.timeout(WAIT):
        session = await task
        assert await session.reader.readexactly(22) == b"early application data"


async def test_transfer_4mib_both_ways_in_odd_writes() -> None:
    out, inb, _, _ = await connect()
    rng = random.Random(7)
    data_ab = os.urandom(4 * 1024 * 1024)
    data_ba = os.urandom(4 * 1024 * 1024)
    ca, cb = Collector(), Collector()
    out.reader.hand_over(ca)
    inb.reader.hand_over(cb)

    async def send(pipe: NoisePipe, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            n = rng.choice([1, 7, 100, 4096, MAX_PLAINTEXT - 1, MAX_PLAINTEXT, MAX_PLAINTEXT + 1, 200_000])
            pipe.write(memoryview(data)[pos : pos + n])
            pos += n
            if rng.random() < 0.3:
                await pipe.drain()

    assert isinstance(out.pipe, NoisePipe) and isinstance(inb.pipe, NoisePipe)
    async with asyncio.timeout(WAIT * 2):
        await asyncio.gather(send(out.pipe, data_ab), send(inb.pipe, data_ba))
        await asyncio.gather(cb.wait_for(len(data_ab)), ca.wait_for(len(data_ba)))
    assert bytes(cb.data) == data_ab
    assert bytes(ca.data) == data_ba
    assert not ca.lost and not cb.lost


async def test_small_writes_in_one_iteration_coalesce_into_one_frame() -> None:
    out, inb, pa, _ = await connect()
    writes: list[int] = []
    real_write = pa.write

    def counting_write(data: bytes | bytearray | memoryview) -> None:
        writes.append(len(data))
        real_write(data)

    pa.write = counting_write  # type: ignore[method-assign]
    c = Collector()
    inb.reader.hand_over(c)
    for k in range(100):
        out.pipe.write(b"%03d" % k)
    assert writes == []  # nothing sent before the loop turns
    await c.wait_for(300)
    assert writes == [300 + 2 + 16]
    assert bytes(c.data) == b"".join(b"%03d" % k for k in range(100))
    writes.clear()
    out.pipe.write(b"x" * (MAX_PLAINTEXT - 10))
    out.pipe.write(b"y" * 30)  # fills the frame: sent at once, the 20-byte tail waits for the loop
    assert writes == [2 + 65535]
    await c.wait_for(300 + MAX_PLAINTEXT + 20)
    assert writes == [2 + 65535, 2 + 20 + 16]


async def test_tampered_ciphertext_aborts_and_reports() -> None:
    out, inb, pa, pb = await connect()
    c = Collector()
    inb.reader.hand_over(c)
    out.pipe.write(b"fine")
    await c.wait_for(4)
    # A man in the middle flips one bit of the next frame.
    assert isinstance(out.pipe, NoisePipe)
    frame = bytearray(NoiseFrameEncoder(out.pipe._encoder._cipher).encode(b"tampered"))
    frame[-1] ^= 1
    pa.write(frame)
    await c.wait_lost()
    assert len(c.lost) == 1 and isinstance(c.lost[0], DecodeError)
    assert bytes(c.data) == b"fine"
    assert pb.is_closing()
    with pytest.raises(ConnectionClosed):
        inb.pipe.write(b"after")
    with pytest.raises(ConnectionClosed):
        await inb.pipe.drain()


async def test_frame_shorter_than_tag_aborts() -> None:
    _out, inb, pa, pb = await connect()
    c = Collector()
    inb.reader.hand_over(c)
    pa.write(b"\x00\x05hello")
    await c.wait_lost()
    assert isinstance(c.lost[0], DecodeError)
    assert pb.is_closing()


async def test_eof_mid_frame_is_an_error_and_clean_close_is_not() -> None:
    _out, inb, pa, _ = await connect()
    c = Collector()
    inb.reader.hand_over(c)
    pa.write(b"\x00\x40abc")  # a frame header promising more than ever arrives
    pa.close()
    await c.wait_lost()
    assert isinstance(c.lost[0], DecodeError)

    out2, inb2, _, _ = await connect()
    c2 = Collector()
    inb2.reader.hand_over(c2)
    out2.pipe.write(b"last words")
    out2.pipe.close()  # flushes the pending frame before closing
    await c2.wait_lost()
    assert bytes(c2.data) == b"last words"
    assert c2.eof and c2.lost == [None]


async def test_abort_drops_pending_and_notifies_remote() -> None:
    out, inb, _, _ = await connect()
    c = Collector()
    inb.reader.hand_over(c)
    out.pipe.write(b"never sent")
    out.pipe.abort()
    await c.wait_lost()
    assert bytes(c.data) == b""
    assert out.pipe.is_closing()
    with pytest.raises(ConnectionClosed):
        out.pipe.write(b"x")


async def test_data_buffered_until_receiver_set() -> None:
    pa, pb = memory_pipe_pair()
    ka, kb = generate_key_pair(), generate_key_pair()
    ia = NoiseHandshake(ka, is_initiator=True)
    ib = NoiseHandshake(kb, is_initiator=False)
    ib.read_message(ia.write_message())
    ia.read_message(ib.write_message())
    ib.read_message(ia.write_message())
    npa = NoisePipe(pa, ia.result.send_cipher, ia.result.recv_cipher)
    npb = NoisePipe(pb, ib.result.send_cipher, ib.result.recv_cipher)
    pa.set_receiver(npa)
    pb.set_receiver(npb)  # no receiver on npb yet
    npa.write(b"queued before the receiver")
    npa.close()
    await asyncio.sleep(0.02)
    c = Collector()
    npb.set_receiver(c)
    assert bytes(c.data) == b"queued before the receiver"
    assert c.eof and c.lost == [None]


async def test_pause_and_resume_forwarded() -> None:
    out, inb, _, _ = await connect()
    c = Collector()
    inb.reader.hand_over(c)
    inb.pipe.pause_reading()
    out.pipe.write(b"held")
    await asyncio.sleep(0.02)
    assert c.data == b""
    inb.pipe.resume_reading()
    await c.wait_for(4)
    assert bytes(c.data) == b"held"


async def test_send_nonce_exhaustion_terminates() -> None:
    out, inb, _, _ = await connect()
    ca, cb = Collector(), Collector()
    out.reader.hand_over(ca)
    inb.reader.hand_over(cb)
    assert isinstance(out.pipe, NoisePipe)
    out.pipe._encoder._cipher.n = MAX_NONCE  # as if 2^64 - 1 frames had been sent
    with pytest.raises(ConnectionClosed):
        out.pipe.write(bytes(MAX_PLAINTEXT))
    assert len(ca.lost) == 1 and isinstance(ca.lost[0], CryptoError)
    await cb.wait_lost()
    assert cb.data == b""


async def test_small_write_nonce_exhaustion_in_flush_terminates() -> None:
    out, _, _, _ = await connect()
    ca = Collector()
    out.reader.hand_over(ca)
    assert isinstance(out.pipe, NoisePipe)
    out.pipe._encoder._cipher.n = MAX_NONCE
    out.pipe.write(b"small")  # held for coalescing; the flush fails and tears down
    await ca.wait_lost()
    assert isinstance(ca.lost[0], CryptoError)


async def test_receive_nonce_exhaustion_terminates() -> None:
    out, inb, _, pb = await connect()
    cb = Collector()
    inb.reader.hand_over(cb)
    assert isinstance(inb.pipe, NoisePipe)
    inb.pipe._decoder._cipher.n = MAX_NONCE
    out.pipe.write(b"one more")
    await cb.wait_lost()
    assert isinstance(cb.lost[0], CryptoError)
    assert pb.is_closing()


async def test_write_now_encrypts_at_once_after_what_was_queued() -> None:
    out, inb, pa, _ = await connect()
    c = Collector()
    inb.reader.hand_over(c)
    assert isinstance(out.pipe, NoisePipe)
    sent: list[bytes] = []
    raw_write = pa.write

    def write(data: bytes | bytearray | memoryview) -> None:
        sent.append(bytes(data))
        raw_write(data)

    pa.write = write  # type: ignore[method-assign]
    out.pipe.write(b"queued ")  # held for coalescing until the loop turns
    assert sent == []
    out.pipe.write_now(b"then now")  # the queued bytes first, in this turn
    assert len(sent) == 1
    out.pipe.write_now(b"; alone")  # nothing queued: one frame of its own
    assert len(sent) == 2 and len(sent[1]) == 2 + len(b"; alone") + 16
    await c.wait_for(len(b"queued then now; alone"))
    assert bytes(c.data) == b"queued then now; alone"


async def test_write_now_nonce_exhaustion_terminates() -> None:
    out, _, _, _ = await connect()
    ca = Collector()
    out.reader.hand_over(ca)
    assert isinstance(out.pipe, NoisePipe)
    out.pipe._encoder._cipher.n = MAX_NONCE
    with pytest.raises(ConnectionClosed):
        out.pipe.write_now(b"small")
    assert len(ca.lost) == 1 and isinstance(ca.lost[0], CryptoError)
