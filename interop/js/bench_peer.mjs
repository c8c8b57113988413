#!/usr/bin/env node
// The js-libp2p side of aiolibp2p's bench/run.py: server and clients, one JSON
// line of results each (same commands as bench/peer_aiolibp2p.py).
//
//   node bench_peer.mjs server [--transport T]
//   node bench_peer.mjs perf ADDR --upload N --download N [--streams S] [--transport T]
//   node bench_peer.mjs dial ADDR --count N [--transport T]
//   node bench_peer.mjs ping ADDR --count N [--transport T]
//
// Stack (--transport, the same names as bench/peer_aiolibp2p.py): tcp = TCP +
// Noise + yamux (the default), tcp-tls = TCP + TLS + yamux, ws = WebSocket +
// Noise + yamux, quic = QUIC-v1 (@chainsafe/libp2p-quic); identify and ping
// on, like peer.mjs. The server
// serves /perf/1.0.0 (perf spec; 256 KiB writes; @libp2p/perf is not on the
// registry here, so the handler is written out below) and /ipfs/ping/1.0.0,
// with connection limits raised so it may hold every benchmark connection.
import './lib/polyfill.mjs'

const { parseArgs } = await import('node:util')
const { randomBytes } = await import('node:crypto')
const { noise } = await import('@chainsafe/libp2p-noise')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { tcp } = await import('@libp2p/tcp')
const { yamux } = await import('@libp2p/yamux')
const { multiaddr } = await import('@multiformats/multiaddr')
const { createLibp2p } = await import('libp2p')

const PERF = '/perf/1.0.0'
const PING = '/ipfs/ping/1.0.0'
const BLOCK = 256 * 1024
const ZEROS = new Uint8Array(BLOCK)

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// --transport: listen address, transport and connection encrypter; loaded
// only when used (@libp2p/tls and the QUIC native module take a while to load)
const STACKS = {
  tcp: { listen: '/ip4/127.0.0.1/tcp/0', transport: async () => tcp(), encrypter: async () => noise() },
  'tcp-tls': {
    listen: '/ip4/127.0.0.1/tcp/0',
    transport: async () => tcp(),
    encrypter: async () => (await import('@libp2p/tls')).tls()
  },
  ws: {
    listen: '/ip4/127.0.0.1/tcp/0/ws',
    transport: async () => (await import('@libp2p/websockets')).webSockets(),
    encrypter: async () => noise()
  },
  quic: {
    listen: '/ip4/127.0.0.1/udp/0/quic-v1',
    transport: async () => (await import('@chainsafe/libp2p-quic')).quic(),
    encrypter: async () => noise() // libp2p wants one; QUIC connections do not use it
  },
  'webrtc-direct': {
    listen: '/ip4/127.0.0.1/udp/0/webrtc-direct',
    transport: async () => (await import('@libp2p/webrtc')).webRTCDirect(),
    encrypter: async () => noise() // Noise runs inside WebRTC-direct (data channel 0)
  }
}

async function makeNode (listen, transport) {
  const stack = STACKS[transport]
  return createLibp2p({
    addresses: { listen: listen ? [stack.listen] : [] },
    transports: [await stack.transport()],
    connectionEncrypters: [await stack.encrypter()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: async () => false },
    connectionManager: {
      maxConnections: 5000,
      maxIncomingPendingConnections: 1000,
      inboundConnectionThreshold: 1_000_000
    },
    services: { identify: identify(), ping: ping() }
  })
}

async function sendAll (stream, n) {
  let left = n
  while (left > 0) {
    const k = Math.min(left, BLOCK)
    if (!stream.send(k === BLOCK ? ZEROS : ZEROS.subarray(0, k))) await stream.onDrain()
    left -= k
  }
}

async function servePerf (stream) {
  let header = new Uint8Array(0)
  for await (const buf of stream) {
    if (header.byteLength < 8) {
      const b = buf instanceof Uint8Array ? buf : buf.subarray()
      const merged = new Uint8Array(header.byteLength + b.byteLength)
      merged.set(header)
      merged.set(b, header.byteLength)
      header = merged.subarray(0, Math.min(8, merged.byteLength))
    }
  }
  if (header.byteLength < 8) throw new Error('perf: short header')
  const size = Number(new DataView(header.buffer, header.byteOffset, 8).getBigUint64(0))
  await sendAll(stream, size)
  await stream.close()
}

async function server (opts) {
  const node = await makeNode(true, opts.transport)
  await node.handle(PERF, (stream) => {
    servePerf(stream).catch((err) => { stream.abort(err) })
  }, { maxInboundStreams: 1024, maxOutboundStreams: 1024 })
  emit({ event: 'listening', addr: node.getMultiaddrs()[0].toString(), pid: process.pid })
  const timer = setTimeout(() => process.exit(0), opts.lifetime * 1000)
  process.stdin.on('data', () => {})
  process.stdin.on('end', async () => {
    clearTimeout(timer)
    setTimeout(() => process.exit(0), 2000).unref()
    await node.stop().catch(() => {})
    process.exit(0)
  })
}

async function perfOne (conn, upload, download) {
  const stream = await conn.newStream(PERF, { maxOutboundStreams: 1024 })
  const header = new Uint8Array(8)
  new DataView(header.buffer).setBigUint64(0, BigInt(download))
  stream.send(header)
  await sendAll(stream, upload)
  await stream.close()
  let got = 0
  for await (const buf of stream) got += buf.byteLength
  if (got !== download) throw new Error(`perf: got ${got} of ${download} bytes`)
}

function withTimeout (opts) {
  setTimeout(() => {
    emit({ error: `timeout after ${opts.timeout} s` })
    process.exit(3)
  }, opts.timeout * 1000).unref()
}

async function perf (opts) {
  const node = await makeNode(false, opts.transport)
  const conn = await node.dial(multiaddr(opts.addr))
  const s = opts.streams
  const t0 = performance.now()
  const jobs = []
  for (let i = 0; i < s; i++) jobs.push(perfOne(conn, Math.floor(opts.upload / s), Math.floor(opts.download / s)))
  await Promise.all(jobs)
  emit({ seconds: (performance.now() - t0) / 1000 })
  await node.stop()
}

// one ping round trip on an open stream, reading through a shared iterator
async function pingRoundTrip (stream, it) {
  const payload = randomBytes(32)
  stream.send(payload)
  let got = 0
  while (got < 32) {
    const { value, done } = await it.next()
    if (done) throw new Error('ping: EOF')
    got += value.byteLength
  }
}

async function dial (opts) {
  const node = await makeNode(false, opts.transport)
  const ma = multiaddr(opts.addr)
  const samples = []
  for (let i = 0; i < opts.count; i++) {
    const t0 = performance.now()
    const conn = await node.dial(ma, { force: true })
    const stream = await conn.newStream(PING)
    await pingRoundTrip(stream, stream[Symbol.asyncIterator]())
    samples.push(performance.now() - t0)
    await stream.close()
    await conn.close()
  }
  emit({ ms: samples })
  await node.stop()
}

async function pingCmd (opts) {
  const node = await makeNode(false, opts.transport)
  const conn = await node.dial(multiaddr(opts.addr))
  const stream = await conn.newStream(PING)
  const it = stream[Symbol.asyncIterator]()
  for (let i = 0; i < 10; i++) await pingRoundTrip(stream, it)
  const samples = []
  for (let i = 0; i < opts.count; i++) {
    const t0 = performance.now()
    await pingRoundTrip(stream, it)
    samples.push((performance.now() - t0) * 1000)
  }
  emit({ us: samples })
  await stream.close()
  await node.stop()
}

const [cmd, ...rest] = process.argv.slice(2)
const { values, positionals } = parseArgs({
  args: rest,
  allowPositionals: true,
  options: {
    lifetime: { type: 'string', default: '3600' },
    timeout: { type: 'string', default: '120' },
    count: { type: 'string', default: '100' },
    upload: { type: 'string', default: '0' },
    download: { type: 'string', default: '0' },
    streams: { type: 'string', default: '1' },
    transport: { type: 'string', default: 'tcp' }
  }
})
const opts = {
  addr: positionals[0],
  lifetime: Number(values.lifetime),
  timeout: Number(values.timeout),
  count: Number(values.count),
  upload: Number(values.upload),
  download: Number(values.download),
  streams: Number(values.streams),
  transport: values.transport
}
const commands = { server, perf, dial, ping: pingCmd }
if (!Object.hasOwn(STACKS, opts.transport)) {
  process.stderr.write(`bench_peer.mjs: --transport must be one of ${Object.keys(STACKS).join(', ')}\n`)
  process.exit(2)
}
if (commands[cmd] == null) {
  process.stderr.write('usage: node bench_peer.mjs server|perf|dial|ping [ADDR] [options]\n')
  process.exit(2)
}
if (cmd !== 'server') withTimeout(opts)
try {
  await commands[cmd](opts)
  if (cmd !== 'server') process.exit(0)
} catch (err) {
  process.stderr.write(`bench_peer.mjs: ${err?.stack ?? err}\n`)
  emit({ error: String(err?.message ?? err) })
  process.exit(1)
}
