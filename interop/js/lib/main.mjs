// The js-libp2p interop peer: one JSON object per line on stdout (events and
// command replies), logs on stderr, commands as JSON lines on stdin.
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { mplex } from '@libp2p/mplex'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { ECHO_PROTOCOL, handleEcho, makeCommands } from './commands.mjs'
import { attachPubsub, pubsubService } from './pubsub.mjs'
import { describeConnection, emit, log, setVerbose } from './output.mjs'

const USAGE = `usage: node peer.mjs [--listen MA]... [--no-listen] [--muxer yamux|mplex|both]
                    [--transport tcp|ws|quic|webrtc-direct|both|all] [--security noise|tls|both|tls-noise]
                    [--private-key HEX] [--no-connection-monitor] [--no-yamux-keepalive]
                    [--mplex-disconnect-threshold N] [--quic-keepalive-ms N]
                    [--quic-idle-timeout-ms N] [--verbose]
                    [--pubsub gossipsub|floodsub] [--pubsub-msgid go|js]`

const TCP_LISTEN = '/ip4/127.0.0.1/tcp/0'
const WS_LISTEN = '/ip4/127.0.0.1/tcp/0/ws'
const QUIC_LISTEN = '/ip4/127.0.0.1/udp/0/quic-v1'
const WEBRTC_DIRECT_LISTEN = '/ip4/127.0.0.1/udp/0/webrtc-direct'
const DEFAULT_LISTEN = {
  tcp: [TCP_LISTEN],
  ws: [WS_LISTEN],
  quic: [QUIC_LISTEN],
  'webrtc-direct': [WEBRTC_DIRECT_LISTEN],
  both: [TCP_LISTEN, WS_LISTEN],
  all: [TCP_LISTEN, WS_LISTEN, QUIC_LISTEN]
}

function parseOptions (argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string', multiple: true },
      'no-listen': { type: 'boolean', default: false },
      muxer: { type: 'string', default: 'yamux' },
      transport: { type: 'string', default: 'tcp' },
      security: { type: 'string', default: 'noise' },
      'private-key': { type: 'string' },
      'no-connection-monitor': { type: 'boolean', default: false },
      'no-yamux-keepalive': { type: 'boolean', default: false },
      'mplex-disconnect-threshold': { type: 'string' },
      'quic-keepalive-ms': { type: 'string' },
      'quic-idle-timeout-ms': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      pubsub: { type: 'string' },
      'pubsub-msgid': { type: 'string', default: 'go' },
      help: { type: 'boolean', default: false }
    },
    strict: true
  })
  if (values.help) {
    process.stderr.write(USAGE + '\n')
    process.exit(0)
  }
  if (!['yamux', 'mplex', 'both'].includes(values.muxer)) {
    throw new Error(`--muxer must be yamux, mplex or both, not ${values.muxer}\n${USAGE}`)
  }
  if (!Object.hasOwn(DEFAULT_LISTEN, values.transport)) {
    throw new Error(`--transport must be tcp, ws, quic, webrtc-direct, both (tcp + ws) or all, not ${values.transport}\n${USAGE}`)
  }
  if (!['noise', 'tls', 'both', 'tls-noise'].includes(values.security)) {
    throw new Error(`--security must be noise, tls, both or tls-noise, not ${values.security}\n${USAGE}`)
  }
  const listen = values['no-listen'] ? [] : (values.listen ?? DEFAULT_LISTEN[values.transport])
  return { ...values, listen }
}

function makeMuxers (opts) {
  const y = yamux({ enableKeepAlive: !opts['no-yamux-keepalive'] })
  // js mplex aborts the connection when the remote opens more than
  // disconnectThreshold (default 5) new streams per second
  const threshold = opts['mplex-disconnect-threshold']
  const m = mplex(threshold == null ? {} : { disconnectThreshold: Number(threshold) })
  switch (opts.muxer) {
    case 'yamux': return [y]
    case 'mplex': return [m]
    default: return [y, m]
  }
}

// @libp2p/websockets, @chainsafe/libp2p-quic and @libp2p/tls are only loaded
// when asked for (loading @libp2p/tls and its x509 stack takes most of a
// second on a slow machine; libp2p-quic loads a native module)
async function makeTransports (opts) {
  const t = opts.transport
  const out = []
  if (t === 'tcp' || t === 'both' || t === 'all') out.push(tcp())
  if (t === 'ws' || t === 'both' || t === 'all') {
    // @libp2p/websockets 10.x has no address filter of its own; libp2p's Node
    // connection gater allows everything, so plain ws to 127.0.0.1 is dialable
    const { webSockets } = await import('@libp2p/websockets')
    out.push(webSockets())
  }
  if (t === 'quic' || t === 'all') {
    // QUIC brings its own TLS and streams: the encrypters and muxers above
    // are not used on QUIC connections. Defaults: 10 s idle timeout,
    // keep-alive every 5 s, 256 concurrent streams
    const { quic } = await import('@chainsafe/libp2p-quic')
    const options = {}
    if (opts['quic-keepalive-ms'] != null) options.keepAliveInterval = Number(opts['quic-keepalive-ms'])
    if (opts['quic-idle-timeout-ms'] != null) options.maxIdleTimeout = Number(opts['quic-idle-timeout-ms'])
    out.push(quic(options))
  }
  if (t === 'webrtc-direct') {
    // WebRTC-direct (node-datachannel): Noise runs inside it over data
    // channel 0; streams are data channels. A new certificate (so a new
    // /certhash) is made at every start
    const { webRTCDirect } = await import('@libp2p/webrtc')
    out.push(webRTCDirect())
  }
  return out
}

async function makeEncrypters (opts) {
  // 'both' = noise preferred, 'tls-noise' = tls preferred
  if (opts.security === 'noise') return [noise()]
  const { tls } = await import('@libp2p/tls')
  switch (opts.security) {
    case 'tls': return [tls()]
    case 'both': return [noise(), tls()]
    default: return [tls(), noise()]
  }
}

export async function main (argv) {
  const opts = parseOptions(argv)
  setVerbose(opts.verbose)

  const init = {
    addresses: { listen: opts.listen },
    transports: await makeTransports(opts),
    connectionEncrypters: await makeEncrypters(opts),
    streamMuxers: makeMuxers(opts),
    connectionMonitor: { enabled: !opts['no-connection-monitor'] },
    // allow every address explicitly (loopback, plain /ws): libp2p's browser
    // gater refuses both, the Node one has no opinion
    connectionGater: { denyDialMultiaddr: async () => false },
    services: {
      identify: identify(),
      ping: ping()
    }
  }
  if (opts['private-key'] != null) {
    init.privateKey = privateKeyFromProtobuf(Buffer.from(opts['private-key'], 'hex'))
  }

  if (opts.pubsub != null) init.services.pubsub = await pubsubService(opts)

  const node = await createLibp2p(init)

  // identify results by peer id, dropped when the connection they came over closes
  const identified = new Map()
  const identifyWaiters = new Set()

  node.addEventListener('connection:open', (evt) => {
    emit({ event: 'connection:open', ...describeConnection(evt.detail) })
  })
  node.addEventListener('connection:close', (evt) => {
    const conn = evt.detail
    const key = conn.remotePeer.toString()
    if (identified.get(key)?.connection?.id === conn.id) identified.delete(key)
    emit({ event: 'connection:close', ...describeConnection(conn) })
  })
  node.addEventListener('peer:identify', (evt) => {
    const result = evt.detail
    const key = result.peerId.toString()
    identified.set(key, result)
    emit({
      event: 'peer:identify',
      peerId: key,
      protocols: result.protocols,
      agentVersion: result.agentVersion ?? null,
      signedPeerRecord: result.signedPeerRecord != null
    })
    for (const w of identifyWaiters) w(key)
  })

  await handleEcho(node, ECHO_PROTOCOL)

  let stopping = null
  const stop = (code = 0) => {
    if (stopping != null) return stopping
    stopping = (async () => {
      const timer = setTimeout(() => {
        log('node.stop() did not finish in 5 s, exiting anyway')
        process.exit(code)
      }, 5000)
      try {
        await node.stop()
      } catch (err) {
        log('error while stopping: %s', err?.message ?? err)
      }
      clearTimeout(timer)
      emit({ event: 'stopped' })
      process.exit(code)
    })()
    return stopping
  }

  const commands = makeCommands({
    node,
    identified,
    identifyWaiters,
    stop,
    peerOf: (s) => {
      if (typeof s !== 'string' || s.length === 0) throw new Error('missing "peer"')
      return s.startsWith('/') ? multiaddr(s) : peerIdFromString(s)
    }
  })

  if (opts.pubsub != null) Object.assign(commands, attachPubsub(node, opts))

  process.on('SIGTERM', () => { stop(0) })
  process.on('SIGINT', () => { stop(0) })

  emit({
    event: 'listening',
    peerId: node.peerId.toString(),
    addrs: node.getMultiaddrs().map((ma) => ma.toString()),
    muxers: opts.muxer,
    transport: opts.transport,
    security: opts.security
  })

  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false })
  rl.on('line', (line) => {
    line = line.trim()
    if (line.length === 0) return
    let msg
    try {
      msg = JSON.parse(line)
    } catch (err) {
      emit({ id: null, ok: false, error: `invalid JSON command: ${err.message}` })
      return
    }
    const id = msg.id ?? null
    const handler = Object.hasOwn(commands, msg.cmd) ? commands[msg.cmd] : undefined
    if (handler == null) {
      emit({ id, ok: false, error: `unknown command: ${msg.cmd}` })
      return
    }
    Promise.resolve()
      .then(() => handler(msg))
      .then((result) => emit({ ...result, id, ok: true }),
        (err) => emit({ id, ok: false, error: String(err?.message ?? err), code: err?.name ?? 'Error' }))
  })
  rl.on('close', () => {
    log('stdin closed, stopping')
    stop(0)
  })
}
