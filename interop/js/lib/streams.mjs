// Stream helpers on top of the libp2p 3.x event based stream API
// (send()/'drain'/'message'/'end'/'close').

/** Convert a Uint8Array | Uint8ArrayList to a Uint8Array without copying when possible. */
export function toBytes (data) {
  return data instanceof Uint8Array ? data : data.subarray()
}

/**
 * Send `data` in chunks, honouring back-pressure ('drain').
 */
export async function sendAll (stream, data, { chunkSize = 64 * 1024, signal } = {}) {
  for (let off = 0; off < data.byteLength; off += chunkSize) {
    const chunk = data.subarray(off, Math.min(off + chunkSize, data.byteLength))
    if (!stream.send(chunk)) {
      await stream.onDrain({ signal })
    }
  }
}

/**
 * Consume the readable side of a stream until the remote closes its write side.
 * Calls onChunk(Uint8Array) for every chunk. Resolves with the total number of
 * bytes read; rejects if the stream is reset/aborted or the signal fires.
 */
export function readToEnd (stream, onChunk, { signal } = {}) {
  return new Promise((resolve, reject) => {
    let total = 0
    let done = false
    const cleanup = () => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('end', onEnd)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    const fail = (err) => {
      if (done) return
      done = true
      cleanup()
      reject(err)
    }
    const onMessage = (evt) => {
      if (done) return
      const buf = toBytes(evt.data)
      total += buf.byteLength
      try {
        onChunk?.(buf)
      } catch (err) {
        stream.abort(err)
        fail(err)
      }
    }
    const onEnd = () => {
      if (done) return
      // 'end' is also dispatched when the stream is aborted or reset
      if (stream.status === 'aborted' || stream.status === 'reset') {
        return fail(new Error(`stream ${stream.status} before the remote finished writing`))
      }
      done = true
      cleanup()
      resolve(total)
    }
    const onClose = (evt) => {
      // 'end' is dispatched before 'close' on a clean shutdown
      if (stream.readableEnded) return onEnd()
      fail(evt.error ?? new Error(`stream closed before the remote finished writing (status ${stream.status})`))
    }
    const onAbort = () => {
      const err = signal.reason ?? new Error('aborted')
      stream.abort(err)
      fail(err)
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('end', onEnd)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort, { once: true })
    if (stream.readableEnded) onEnd()
    else if (stream.status !== 'open') onClose({})
  })
}

/**
 * Serve one echo stream: write back every byte until the remote closes its
 * write side, then close ours. Resolves with the number of bytes echoed.
 */
export async function serveEcho (stream, { timeoutMs = 120_000 } = {}) {
  const signal = AbortSignal.timeout(timeoutMs)
  let pending = Promise.resolve()
  const total = await readToEnd(stream, (buf) => {
    if (!stream.send(buf)) {
      // Stop reading until the outgoing data has drained (flow control).
      stream.pause()
      // The remote may close its write side while we are paused (its FIN ends the readable side);
      // resuming a closed readable end throws, so only resume a paused one.
      pending = stream.onDrain({ signal }).then(() => {
        if (stream.readStatus === 'paused') stream.resume()
      }, (err) => stream.abort(err))
    }
  }, { signal })
  await pending
  await stream.close({ signal })
  return total
}

/** Deterministic pseudo-random bytes (xorshift32), so failures are reproducible. */
export function pseudoRandomBytes (n, seed = 0x9e3779b9) {
  const out = new Uint8Array(n)
  let x = (seed >>> 0) || 1
  let i = 0
  const words = Math.floor(n / 4)
  const view = new DataView(out.buffer)
  for (let w = 0; w < words; w++, i += 4) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    view.setUint32(i, x, true)
  }
  for (; i < n; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

/**
 * Client side of echo: send `data`, close write, read everything back and
 * verify it byte for byte. Resolves with the number of bytes verified.
 */
export async function echoRoundTrip (stream, data, { signal } = {}) {
  let offset = 0
  const reading = readToEnd(stream, (buf) => {
    if (offset + buf.byteLength > data.byteLength) {
      throw new Error(`echo returned more bytes than sent (${offset + buf.byteLength} > ${data.byteLength})`)
    }
    for (let j = 0; j < buf.byteLength; j++) {
      if (buf[j] !== data[offset + j]) {
        throw new Error(`echo mismatch at byte ${offset + j}: sent ${data[offset + j]}, got ${buf[j]}`)
      }
    }
    offset += buf.byteLength
  }, { signal })
  // surface read errors even while we are still writing
  reading.catch(() => {})
  await sendAll(stream, data, { signal })
  await stream.close({ signal })
  await reading
  if (offset !== data.byteLength) {
    throw new Error(`echo returned ${offset} bytes, expected ${data.byteLength}`)
  }
  return offset
}
