// Polyfills needed to run libp2p 3.x (which targets Node >= 22) on Node 20.
// This module must be evaluated BEFORE any libp2p module is imported; peer.mjs
// imports it statically and loads everything else with a dynamic import().
import { WebSocket as WsWebSocket } from 'ws'

if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve
      let reject
      const promise = new this((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    }
  })
}

if (typeof globalThis.WebSocket === 'undefined') {
  // Node 20 only has WebSocket behind --experimental-websocket, and
  // @libp2p/websockets dials with the WebSocket global. The `ws` package
  // (already used by its listener; pinned in package.json) implements the
  // same API (addEventListener, binaryType 'arraybuffer', CloseEvent.wasClean)
  // but dispatches events synchronously while it parses a socket chunk: a
  // message arriving in the same TCP segment as the HTTP 101 is dispatched
  // before the dialer's `await` on 'open' resumes and adds its 'message'
  // listener, so it is lost (seen as js reading "/noise" before the
  // multistream header when the listener sends its header eagerly). Browsers
  // and undici queue one task per event; do the same.
  const DEFERRED = new Set(['open', 'message', 'close', 'error'])
  const queue = Symbol('queue')
  class WebSocket extends WsWebSocket {
    emit (type, ...args) {
      if (!DEFERRED.has(type)) return super.emit(type, ...args)
      if (this[queue] == null) this[queue] = []
      this[queue].push([type, args])
      if (this[queue].length === 1) setImmediate(() => this.#dispatchOne())
      return true
    }

    #dispatchOne () {
      const [type, args] = this[queue].shift()
      if (this[queue].length > 0) setImmediate(() => this.#dispatchOne())
      // like a browser: an error nobody listens to is not thrown
      if (type !== 'error' || this.listenerCount('error') > 0) super.emit(type, ...args)
    }
  }
  globalThis.WebSocket = WebSocket
}
