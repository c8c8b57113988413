// stdin command implementations. Each command gets the parsed JSON message and
// returns (a promise of) an object merged into the {"id":..,"ok":true} reply;
// throwing produces {"id":..,"ok":false,"error":..}.
import { PeerRecord, RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'
import { describeConnection, emit, log } from './output.mjs'
import { echoRoundTrip, pseudoRandomBytes, readToEnd, sendAll, serveEcho } from './streams.mjs'

export const ECHO_PROTOCOL = '/echo/1.0.0'

const DEFAULT_TIMEOUT_MS = 30_000

function timeoutSignal (msg, extra) {
  const ms = Number(msg.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`bad timeoutMs: ${msg.timeoutMs}`)
  const t = AbortSignal.timeout(ms)
  return extra == null ? t : AbortSignal.any([t, extra])
}

function requirePeerId (target) {
  if (target.toMultihash == null) throw new Error('"peer" must be a peer id for this command')
  return target
}

const decoder = new TextDecoder()

async function describePeerStore (node, peerId) {
  let peer
  try {
    peer = await node.peerStore.get(peerId)
  } catch (err) {
    if (err.name === 'NotFoundError') return null
    throw err
  }
  let envelope = null
  if (peer.peerRecordEnvelope != null) {
    // re-verify the stored envelope independently of identify
    try {
      const env = await RecordEnvelope.openAndCertify(peer.peerRecordEnvelope, PeerRecord.DOMAIN)
      const record = PeerRecord.createFromProtobuf(env.payload)
      envelope = {
        verified: record.peerId.equals(peerId) && env.publicKey.toCID().equals(peerId.toCID()),
        seq: record.seqNumber,
        addrs: record.multiaddrs.map((ma) => ma.toString())
      }
    } catch (err) {
      envelope = { verified: false, error: String(err?.message ?? err) }
    }
  }
  const meta = (k) => {
    const v = peer.metadata.get(k)
    return v == null ? null : decoder.decode(v)
  }
  return {
    protocols: [...peer.protocols].sort(),
    addrs: peer.addresses.map((a) => ({ addr: a.multiaddr.toString(), certified: a.isCertified })),
    agentVersion: meta('AgentVersion'),
    protocolVersion: meta('ProtocolVersion'),
    peerRecordEnvelope: envelope
  }
}

/**
 * Serve `protocol` with echo; every finished stream is reported as an
 * 'echo:served' (or 'echo:error') event.
 */
export async function handleEcho (node, protocol, options = {}) {
  await node.handle(protocol, (stream, connection) => {
    const peerId = connection.remotePeer.toString()
    serveEcho(stream).then(
      (bytes) => emit({ event: 'echo:served', peerId, protocol, bytes }),
      (err) => {
        log('%s stream from %s failed: %s', protocol, peerId, err?.message ?? err)
        emit({ event: 'echo:error', peerId, protocol, error: String(err?.message ?? err) })
      })
  }, { maxInboundStreams: 1024, maxOutboundStreams: 1024, ...options })
}

function streamOptions (msg, signal) {
  const opts = { signal }
  // false: optimistic ("lazy") multistream-select, protocol + first data in one write
  if (msg.negotiateFully != null) opts.negotiateFully = Boolean(msg.negotiateFully)
  return opts
}

export function makeCommands ({ node, identified, identifyWaiters, stop, peerOf }) {
  function waitIdentified (key, signal) {
    const have = identified.get(key)
    if (have != null) return Promise.resolve(have)
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        identifyWaiters.delete(waiter)
        const connected = node.getConnections().some((c) => c.remotePeer.toString() === key)
        reject(new Error(`no identify result for ${key} in time (connected: ${connected})`))
      }
      const waiter = (k) => {
        if (k !== key) return
        identifyWaiters.delete(waiter)
        signal.removeEventListener('abort', onAbort)
        resolve(identified.get(key))
      }
      identifyWaiters.add(waiter)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  return {
    async dial (msg) {
      if (typeof msg.addr !== 'string') throw new Error('missing "addr"')
      const conn = await node.dial(multiaddr(msg.addr), { signal: timeoutSignal(msg) })
      return describeConnection(conn)
    },

    async ping (msg) {
      const rttMs = await node.services.ping.ping(peerOf(msg.peer), { signal: timeoutSignal(msg) })
      return { rttMs }
    },

    // Wait (bounded) for the identify js ran automatically on connection open,
    // or with "run": true run identify again over an open connection.
    async identify (msg) {
      const peerId = requirePeerId(peerOf(msg.peer))
      const key = peerId.toString()
      const signal = timeoutSignal(msg)
      let result
      if (msg.run === true) {
        const conn = node.getConnections(peerId).find((c) => c.status === 'open')
        if (conn == null) throw new Error(`not connected to ${key}`)
        result = await node.services.identify.identify(conn, { signal })
      } else {
        result = await waitIdentified(key, signal)
      }
      return {
        peerId: key,
        protocols: [...result.protocols].sort(),
        agentVersion: result.agentVersion ?? null,
        protocolVersion: result.protocolVersion ?? null,
        listenAddrs: result.listenAddrs.map((ma) => ma.toString()),
        observedAddr: result.observedAddr?.toString() ?? null,
        publicKey: result.publicKey == null ? null : Buffer.from(result.publicKey).toString('hex'),
        // set only when a signed peer record was received and its envelope verified
        signedPeerRecord: result.signedPeerRecord == null
          ? null
          : { seq: result.signedPeerRecord.seq, addrs: result.signedPeerRecord.addresses.map((ma) => ma.toString()) },
        connectionId: result.connection?.id ?? null,
        peerStore: await describePeerStore(node, peerId)
      }
    },

    // Open K concurrent echo streams, send N pseudo-random bytes on each,
    // close write, read everything back and verify it.
    async echo (msg) {
      const target = peerOf(msg.peer)
      const n = Number(msg.bytes ?? 1024)
      const k = Number(msg.streams ?? 1)
      if (!Number.isInteger(n) || n < 0) throw new Error(`bad "bytes": ${msg.bytes}`)
      if (!Number.isInteger(k) || k < 1) throw new Error(`bad "streams": ${msg.streams}`)
      const protocol = msg.protocol ?? ECHO_PROTOCOL
      const seed = Number(msg.seed ?? 1)
      const failFast = new AbortController()
      const signal = timeoutSignal(msg, failFast.signal)
      const started = performance.now()
      const results = await Promise.allSettled(Array.from({ length: k }, async (_, i) => {
        try {
          const data = pseudoRandomBytes(n, seed + i)
          const stream = await node.dialProtocol(target, protocol, streamOptions(msg, signal))
          return await echoRoundTrip(stream, data, { signal })
        } catch (err) {
          failFast.abort(err)
          throw err
        }
      }))
      const failed = results.filter((r) => r.status === 'rejected')
      if (failed.length > 0) {
        // report the first cause, not the abort it triggered in the others
        throw new Error(`${failed.length}/${k} echo streams failed: ${failed[0].reason?.message ?? failed[0].reason}`)
      }
      const bytes = results.reduce((acc, r) => acc + r.value, 0)
      return { bytes, streams: k, ms: performance.now() - started }
    },

    // Open one stream (first of "protocols" the remote supports), write
    // "dataHex", close write unless "closeWrite": false, read until the remote
    // closes (at most "maxBytes") and return what was read.
    async stream (msg) {
      const target = peerOf(msg.peer)
      const protocols = msg.protocols ?? msg.protocol
      if (protocols == null || protocols.length === 0) throw new Error('missing "protocols"')
      const data = Buffer.from(msg.dataHex ?? '', 'hex')
      const maxBytes = Number(msg.maxBytes ?? 1024 * 1024)
      const signal = timeoutSignal(msg)
      const stream = await node.dialProtocol(target, protocols, streamOptions(msg, signal))
      const chunks = []
      let total = 0
      const reading = readToEnd(stream, (buf) => {
        total += buf.byteLength
        if (total > maxBytes) throw new Error(`remote sent more than maxBytes=${maxBytes}`)
        chunks.push(Buffer.from(buf))
      }, { signal })
      reading.catch(() => {})
      if (data.byteLength > 0) await sendAll(stream, data, { signal })
      if (msg.closeWrite !== false) await stream.close({ signal })
      await reading
      if (msg.closeWrite === false) await stream.close({ signal })
      return { protocol: stream.protocol, dataHex: Buffer.concat(chunks).toString('hex'), bytes: total }
    },

    // Serve an extra protocol with the echo behaviour (e.g. to test
    // multistream-select against names other than /echo/1.0.0).
    async handle (msg) {
      const protocol = msg.protocol
      if (typeof protocol !== 'string') throw new Error('missing "protocol"')
      if ((msg.mode ?? 'echo') !== 'echo') throw new Error(`unsupported mode: ${msg.mode}`)
      await handleEcho(node, protocol, { force: true })
      return { protocol }
    },

    async unhandle (msg) {
      if (typeof msg.protocol !== 'string') throw new Error('missing "protocol"')
      await node.unhandle(msg.protocol)
      return {}
    },

    async connections () {
      return { connections: node.getConnections().map(describeConnection) }
    },

    async addrs () {
      return { peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map((ma) => ma.toString()) }
    },

    async hangup (msg) {
      await node.hangUp(peerOf(msg.peer), { signal: timeoutSignal(msg) })
      return {}
    },

    async stop () {
      // reply first, then stop and exit
      setImmediate(() => { stop(0) })
      return {}
    }
  }
}
