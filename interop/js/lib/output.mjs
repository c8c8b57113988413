// stdout carries exactly one JSON object per line; everything else goes to stderr.
import { format } from 'node:util'

let verbose = false
export function setVerbose (v) { verbose = v }

function replacer (_key, value) {
  if (typeof value === 'bigint') {
    return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString()
  }
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex')
  return value
}

export function emit (obj) {
  process.stdout.write(JSON.stringify(obj, replacer) + '\n')
}

export function log (...args) {
  process.stderr.write(`[jspeer ${new Date().toISOString()}] ${format(...args)}\n`)
}

export function debug (...args) {
  if (verbose) log(...args)
}

export function describeConnection (conn) {
  return {
    connId: conn.id,
    peerId: conn.remotePeer.toString(),
    remoteAddr: conn.remoteAddr.toString(),
    status: conn.status,
    muxer: conn.multiplexer ?? null,
    encryption: conn.encryption ?? null,
    direction: conn.direction,
    streams: conn.streams.length
  }
}
