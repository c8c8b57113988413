"""TlsSecurity / TlsPipe over in-memory pipes: handshake both ways, ALPN, refusals on both sides, 4 MiB
transfer, coalescing, close_notify, tampering, truncation, timeouts."""

from __future__ import annotations

import asyncio
import datetime
import os

import pytest

from aiolibp2p.core.interfaces import SecureSession
from aiolibp2p.core.pipe import PipeReader
from aiolibp2p.crypto.keys import PrivateKey, generate_key_pair
from aiolibp2p.exceptions import (
    CertificateError,
    ConnectionClosed,
    DeadlineExceeded,
    HandshakeError,
    PeerIdMismatch,
    ProtocolViolation,
)
from aiolibp2p.security.tls import PROTOCOL_ID, TlsCertificate, TlsPipe, TlsSecurity
from aiolibp2p.security.tls.transport import COALESCE_LIMIT
from aiolibp2p.transports.memory.pipe import MemoryPipe, memory_pipe_pair

YAMUX = "/yamux/1.0.0"
MPLEX = "/mplex/6.7.0"
WAIT = 5.0


@pytest.fixture(autouse=True, params=["fast", "public"])
def data_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test over both data paths of the engine (direct OpenSSL calls / pyOpenSSL's API)."""
    import aiolibp2p.security.tls.engine as engine_module

    if request.param == "fast" and not engine_module.FAST_PATH_AVAILABLE:
        pytest.skip("pyOpenSSL does not expose the OpenSSL functions of the fast path")
    monkeypatch.setattr(engine_module, "USE_FAST_PATH", request.param == "fast")
    return str(request.param)


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

    async def wait_until(self, cond: str) -> None:
        async with asyncio.timeout(WAIT):
            while not getattr(self, cond):
                self.got.clear()
                await self.got.wait()


async def connect(
    key_a: PrivateKey | None = None,
    key_b: PrivateKey | None = None,
    *,
    muxers_a: tuple[str, ...] = (),
    muxers_b: tuple[str, ...] = (),
    expect: object = "b",
    sec_a: TlsSecurity | None = None,
    sec_b: TlsSecurity | None = None,
) -> tuple[SecureSession, SecureSession, MemoryPipe, MemoryPipe]:
    key_a = key_a or generate_key_pair()
    key_b = key_b or generate_key_pair()
    pa, pb = memory_pipe_pair("/memory/a", "/memory/b")
    sa, sb = sec_a or TlsSecurity(key_a), sec_b or TlsSecurity(key_b)
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
    assert out.remote_peer == b.public_key.peer_id and inb.remote_peer == a.public_key.peer_id
    assert out.local_peer == a.public_key.peer_id and inb.local_peer == b.public_key.peer_id
    assert inb.remote_public_key == a.public_key and out.remote_public_key == b.public_key
    assert out.security_protocol == inb.security_protocol == PROTOCOL_ID == TlsSecurity.protocol_id
    assert PROTOCOL_ID == "/tls/1.0.0"
    assert out.early_muxer is None and inb.early_muxer is None
    assert isinstance(out.pipe, TlsPipe) and isinstance(inb.pipe, TlsPipe)
    assert out.pipe.remote_addr == "/memory/b" and out.pipe.local_addr == "/memory/a"
    out.reader.write(b"hello over tls")
    async with asyncio.timeout(WAIT):
        assert await inb.reader.readexactly(14) == b"hello over tls"
    inb.reader.write(b"and back")
    async with asyncio.timeout(WAIT):
        assert await out.reader.readexactly(8) == b"and back"
    out.pipe.close()
    async with asyncio.timeout(WAIT):
        assert await inb.reader.read_some() == b""  # close_notify: EOF
    await asyncio.sleep(0.01)
    assert pa.is_closing() and pb.is_closing()


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        ((YAMUX, MPLEX), (MPLEX, YAMUX), YAMUX),
        ((MPLEX,), (YAMUX, MPLEX), MPLEX),
        ((YAMUX,), (MPLEX,), None),
        ((), (YAMUX,), None),
    ],
)
async def test_early_muxer_in_session(
    client: tuple[str, ...], server: tuple[str, ...], expected: str | None
) -> None:
    out, inb, _, _ = await connect(muxers_a=client, muxers_b=server)
    assert out.early_muxer == inb.early_muxer == expected


async def test_same_security_serves_many_connections_both_ways() -> None:
    ka, kb = generate_key_pair(), generate_key_pair()
    sa, sb = TlsSecurity(ka), TlsSecurity(kb)
    for _ in range(3):
        out, _, _, _ = await connect(ka, kb, sec_a=sa, sec_b=sb)
        assert out.remote_peer == kb.peer_id
        back, forth, _, _ = await connect(kb, ka, sec_a=sb, sec_b=sa)
        assert back.remote_peer == ka.peer_id and forth.remote_peer == kb.peer_id


async def test_wrong_peer_id_refused() -> None:
    pa, pb = memory_pipe_pair()
    kb = generate_key_pair()
    async with asyncio.timeout(WAIT):
        res = await asyncio.gather(
            TlsSecurity(generate_key_pair()).secure_outbound(PipeReader(pa), generate_key_pair().peer_id, ()),
            TlsSecurity(kb).secure_inbound(PipeReader(pb), ()),
            return_exceptions=True,
        )
    assert isinstance(res[0], PeerIdMismatch)
    assert isinstance(res[1], HandshakeError)  # the client's alert
    await asyncio.sleep(0.01)
    assert pa.is_closing() and pb.is_closing()


def _no_extension_certificate() -> TlsCertificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "plain")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(3)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return TlsCertificate(key, cert, cert.public_bytes(serialization.Encoding.DER))


async def test_bad_client_certificate_refused_by_server_client_sees_close() -> None:
    pa, pb = memory_pipe_pair()
    ka, kb = generate_key_pair(), generate_key_pair()
    bad = TlsSecurity(ka, certificate=_no_extension_certificate())
    async with asyncio.timeout(WAIT):
        res = await asyncio.gather(
            bad.secure_outbound(PipeReader(pa), kb.peer_id, ()),
            TlsSecurity(kb).secure_inbound(PipeReader(pb), ()),
            return_exceptions=True,
        )
    assert isinstance(res[1], CertificateError)
    # TLS 1.3: the client finished before the server judged it; the refusal shows as the pipe failing
    session = res[0]
    assert isinstance(session, SecureSession)
    sink = Collector()
    session.reader.hand_over(sink)
    await sink.wait_until("lost")
    assert not sink.data
    assert isinstance(sink.lost[0], ProtocolViolation)
    assert "alert" in str(sink.lost[0])
    with pytest.raises(ConnectionClosed):
        session.pipe.write(b"too late")


async def test_bad_server_certificate_refused_by_client() -> None:
    pa, pb = memory_pipe_pair()
    kb = generate_key_pair()
    async with asyncio.timeout(WAIT):
        res = await asyncio.gather(
            TlsSecurity(generate_key_pair()).secure_outbound(PipeReader(pa), kb.peer_id, ()),
            TlsSecurity(kb, certificate=_no_extension_certificate()).secure_inbound(PipeReader(pb), ()),
            return_exceptions=True,
        )
    assert isinstance(res[0], CertificateError)
    assert isinstance(res[1], HandshakeError)


async def test_expired_certificate_refused() -> None:
    ka, kb = generate_key_pair(), generate_key_pair()
    old = TlsCertificate.generate(
        kb, now=datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC), validity=datetime.timedelta(days=1)
    )
    pa, pb = memory_pipe_pair()
    async with asyncio.timeout(WAIT):
        res = await asyncio.gather(
            TlsSecurity(ka).secure_outbound(PipeReader(pa), kb.peer_id, ()),
            TlsSecurity(kb, certificate=old).secure_inbound(PipeReader(pb), ()),
            return_exceptions=True,
        )
    assert isinstance(res[0], CertificateError) and "expired" in str(res[0])
    assert isinstance(res[1], HandshakeError)


async def test_transfer_4mib_both_ways_with_backpressure() -> None:
    out, inb, pa, _ = await connect()
    payload_ab = os.urandom(4 * 1024 * 1024)
    payload_ba = os.urandom(4 * 1024 * 1024)
    sink_b, sink_a = Collector(), Collector()
    inb.reader.hand_over(sink_b)
    out.reader.hand_over(sink_a)

    async def send(pipe: object, data: bytes) -> None:
        assert isinstance(pipe, TlsPipe)
        view = memoryview(data)
        for i in range(0, len(data), 100_000):
            pipe.write(view[i : i + 100_000])
            await pipe.drain()

    async with asyncio.timeout(WAIT * 2):
        await asyncio.gather(send(out.pipe, payload_ab), send(inb.pipe, payload_ba))
        await sink_b.wait_for(len(payload_ab))
        await sink_a.wait_for(len(payload_ba))
    assert bytes(sink_b.data) == payload_ab
    assert bytes(sink_a.data) == payload_ba
    assert not sink_a.lost and not sink_b.lost
    # TLS overhead: about 22 bytes per 16 KiB record
    assert pa.bytes_written < len(payload_ab) * 1.01 + 8192


async def test_small_writes_are_coalesced() -> None:
    out, inb, pa, _ = await connect()
    sink = Collector()
    inb.reader.hand_over(sink)
    before = pa.bytes_written
    for _ in range(1000):
        out.pipe.write(b"0123456789")
    await sink.wait_for(10_000)
    assert bytes(sink.data) == b"0123456789" * 1000
    # one record per COALESCE_LIMIT, not one per write
    assert pa.bytes_written - before < 10_000 + 4 * 30
    # a write of exactly the limit goes out at once, the pending tail first
    out.pipe.write(b"a")
    out.pipe.write(b"b" * COALESCE_LIMIT)
    await sink.wait_for(10_001 + COALESCE_LIMIT)
    assert bytes(sink.data[10_000:]) == b"a" + b"b" * COALESCE_LIMIT


async def test_data_sent_with_the_last_flight_is_kept() -> None:
    # the client writes at once after its handshake: the server gets the Finished and the data together
    ka, kb = generate_key_pair(), generate_key_pair()
    pa, pb = memory_pipe_pair()
    sa, sb = TlsSecurity(ka), TlsSecurity(kb)
    server_task = asyncio.ensure_future(sb.secure_inbound(PipeReader(pb), ()))
    async with asyncio.timeout(WAIT):
        out = await sa.secure_outbound(PipeReader(pa), kb.peer_id, ())
        out.pipe.write(b"immediately")
        out.pipe.write(b"!" * 40000)
        out.pipe.close()  # and close_notify right behind
        inb = await server_task
        data = bytearray()
        while chunk := await inb.reader.read_some():
            data += chunk
    assert bytes(data) == b"immediately" + b"!" * 40000


async def test_tampered_record_fails_the_pipe() -> None:
    out, inb, _, pb = await connect()
    sink = Collector()
    inb.reader.hand_over(sink)
    assert isinstance(inb.pipe, TlsPipe)
    out.pipe.write(b"x" * 1000)
    out.pipe.close()
    # corrupt what arrives at the server's TLS pipe
    tls_pipe = inb.pipe

    class Corrupter:
        def pipe_data_received(self, data: bytes) -> None:
            b = bytearray(data)
            if len(b) > 50:
                b[50] ^= 1
            tls_pipe.pipe_data_received(bytes(b))

        def pipe_eof_received(self) -> None:
            tls_pipe.pipe_eof_received()

        def pipe_connection_lost(self, exc: BaseException | None) -> None:
            tls_pipe.pipe_connection_lost(exc)

    pb.set_receiver(Corrupter())
    await sink.wait_until("lost")
    assert isinstance(sink.lost[0], ProtocolViolation)
    assert not sink.data
    assert pb.is_closing()


async def test_truncated_record_fails_the_pipe() -> None:
    _, inb, _, _ = await connect()
    sink = Collector()
    inb.reader.hand_over(sink)
    assert isinstance(inb.pipe, TlsPipe)
    inb.pipe.pipe_data_received(b"\x17\x03\x03\x01\x00" + b"\x00" * 10)  # a record header and a bit
    inb.pipe.pipe_eof_received()
    await sink.wait_until("lost")
    assert isinstance(sink.lost[0], ProtocolViolation)


async def test_raw_eof_at_record_boundary_is_eof() -> None:
    out, inb, pa, _ = await connect()
    sink = Collector()
    inb.reader.hand_over(sink)
    out.pipe.write(b"bye")
    await sink.wait_for(3)
    pa.close()  # the raw pipe, no close_notify
    await sink.wait_until("eof")
    assert bytes(sink.data) == b"bye"


async def test_handshake_timeout() -> None:
    pa, _pb = memory_pipe_pair()  # nobody answers
    sec = TlsSecurity(generate_key_pair(), handshake_timeout=0.2)
    with pytest.raises(DeadlineExceeded):
        async with asyncio.timeout(WAIT):
            await sec.secure_outbound(PipeReader(pa), None, ())
    assert pa.is_closing()


async def test_peer_closes_during_handshake() -> None:
    pa, pb = memory_pipe_pair()
    sec = TlsSecurity(generate_key_pair())
    task = asyncio.ensure_future(sec.secure_inbound(PipeReader(pb), ()))
    pa.write(b"\x16\x03\x01\x00\x10")  # the start of a ClientHello, then nothing
    await asyncio.sleep(0.01)
    pa.close()
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(WAIT):
            await task


async def test_garbage_refused() -> None:
    pa, pb = memory_pipe_pair()
    sec = TlsSecurity(generate_key_pair())
    task = asyncio.ensure_future(sec.secure_inbound(PipeReader(pb), ()))
    pa.write(b"/multistream/1.0.0\n" * 10)
    with pytest.raises(HandshakeError):
        async with asyncio.timeout(WAIT):
            await task
    await asyncio.sleep(0.01)
    assert pb.is_closing()


async def test_write_after_close_raises() -> None:
    out, _, _, _ = await connect()
    out.pipe.close()
    out.pipe.close()  # idempotent
    with pytest.raises(ConnectionClosed):
        out.pipe.write(b"x")
    out.pipe.abort()
