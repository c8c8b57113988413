#!/usr/bin/env node
// The js-libp2p side of aiolibp2p's gossipsub benchmark (bench/pubsub_bench.py
// mesh, run by `python bench/run.py --only gossipsub`): N js-libp2p nodes in
// ONE node process, every node connected to every other over TCP + Noise +
// yamux on 127.0.0.1, @libp2p/gossipsub with its defaults (StrictSign), one
// topic. Per rate, messages of --size bytes (the first 16: message number and
// publish time, big-endian uint64 + float64 ms of performance.now()) are
// published for --seconds by the nodes in turn (message k by node k mod N),
// then up to --drain seconds are left for the last ones. One JSON line per
// rate, the same fields as the Python benchmark:
// delivery_pct (every message must reach the N-1 other nodes), lat_median_ms,
// lat_p99_ms (publish() call to the 'message' event), cpu_per_hop_us
// (process.cpuUsage() over the window / deliveries).
//
//   node gossip_bench.mjs [--hosts 10] [--rates 50,100] [--seconds 3] [--drain 3] [--size 1024] [--warmup]
import './lib/polyfill.mjs'

const { parseArgs } = await import('node:util')
const { noise } = await import('@chainsafe/libp2p-noise')
const { identify } = await import('@libp2p/identify')
const { gossipsub } = await import('@libp2p/gossipsub')
const { tcp } = await import('@libp2p/tcp')
const { yamux } = await import('@libp2p/yamux')
const { createLibp2p } = await import('libp2p')

const TOPIC = 'bench'
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function pct (xs, p) {
  if (xs.length === 0) return null
  const s = Float64Array.from(xs).sort()
  const k = (s.length - 1) * p / 100
  const lo = Math.floor(k)
  const hi = Math.min(lo + 1, s.length - 1)
  return s[lo] + (s[hi] - s[lo]) * (k - lo)
}

const { values: opts } = parseArgs({
  options: {
    hosts: { type: 'string', default: '10' },
    rates: { type: 'string', default: '50,100,200,400,600,800' },
    seconds: { type: 'string', default: '3' },
    drain: { type: 'string', default: '3' },
    size: { type: 'string', default: '1024' },
    warmup: { type: 'boolean', default: false }
  }
})
const n = Number(opts.hosts)

async function makeNode () {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: async () => false },
    connectionManager: { maxConnections: 1000, maxIncomingPendingConnections: 1000, inboundConnectionThreshold: 1_000_000 },
    services: { identify: identify(), pubsub: gossipsub({ emitSelf: false }) }
  })
}

const nodes = []
for (let i = 0; i < n; i++) nodes.push(await makeNode())
const got = nodes.map(() => new Map()) // per node: message number -> latency ms
nodes.forEach((node, i) => {
  node.services.pubsub.addEventListener('message', (evt) => {
    const d = evt.detail.data
    const view = new DataView(d.buffer, d.byteOffset, 16)
    got[i].set(Number(view.getBigUint64(0)), performance.now() - view.getFloat64(8))
  })
  node.services.pubsub.subscribe(TOPIC)
})
for (let i = 0; i < n; i++) {
  const dials = []
  for (let j = i + 1; j < n; j++) dials.push(nodes[i].dial(nodes[j].getMultiaddrs()[0]))
  await Promise.all(dials)
}
const deadline = Date.now() + 30_000
while (nodes.some((node) => node.services.pubsub.getSubscribers(TOPIC).length < n - 1)) {
  if (Date.now() > deadline) throw new Error('subscriptions not seen within 30 s')
  await sleep(50)
}
await sleep(2000) // a couple of heartbeats: meshes settle

const size = Number(opts.size)
const pad = new Uint8Array(size)
let first = 0
const rates = opts.rates.split(',').map(Number)
const plan = (opts.warmup ? [[rates[0], true]] : []).concat(rates.map((r) => [r, false]))
for (const [rate, warmup] of plan) {
  const count = Math.max(1, Math.floor(rate * Number(opts.seconds)))
  for (const m of got) m.clear()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let k = first
  let publishErrors = 0
  while (k < first + count) {
    const delay = t0 + (k - first) * 1000 / rate - performance.now()
    if (delay > 0) await sleep(delay)
    const now = performance.now()
    while (k < first + count && t0 + (k - first) * 1000 / rate <= now) {
      const data = pad.slice()
      const view = new DataView(data.buffer)
      view.setBigUint64(0, BigInt(k))
      view.setFloat64(8, performance.now())
      try {
        await nodes[k % n].services.pubsub.publish(TOPIC, data)
      } catch {
        publishErrors++
      }
      k++
    }
  }
  const tPub = performance.now() - t0
  const end = performance.now() + Number(opts.drain) * 1000
  while (performance.now() < end) {
    // each node receives every message but its own
    if (got.every((m, i) => m.size >= count - countOwn(first, count, i))) break
    await sleep(10)
  }
  const cpu = process.cpuUsage(cpu0)
  const lats = []
  got.forEach((m, i) => {
    for (const [key, v] of m) if (key >= first && key < first + count && key % n !== i) lats.push(v)
  })
  const cpuS = (cpu.user + cpu.system) / 1e6
  const res = {
    impl: 'js-libp2p',
    hosts: n,
    rate,
    achieved_rate: count / (tPub / 1000),
    messages: count,
    deliveries: lats.length,
    expected: count * (n - 1),
    delivery_pct: 100 * lats.length / (count * (n - 1)),
    lat_median_ms: pct(lats, 50),
    lat_p99_ms: pct(lats, 99),
    cpu_s: cpuS,
    wall_s: (performance.now() - t0) / 1000,
    cpu_per_hop_us: 1e6 * cpuS / Math.max(lats.length, 1),
    publish_errors: publishErrors
  }
  first += count
  emit(warmup ? { ...res, warmup: true } : res)
  await sleep(500)
}
emit({ event: 'done' })
await Promise.all(nodes.map((node) => node.stop()))
process.exit(0)

function countOwn (from, count, i) {
  let c = 0
  for (let key = from; key < from + count; key++) if (key % n === i) c++
  return c
}
