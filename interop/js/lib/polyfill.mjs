// Polyfills needed to run libp2p 3.x (which targets Node >= 22) on Node 20.
// This module must be evaluated BEFORE any libp2p module is imported; peer.mjs
// imports it statically and loads everything else with a dynamic import().

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
  // Node 20 only has WebSocket behind --experimental-websocket. Nothing this
  // peer loads opens a WebSocket (TCP transport only); the global must merely
  // exist. Any real use fails loudly instead of silently misbehaving.
  globalThis.WebSocket = class WebSocketUnavailable {
    static CONNECTING = 0
    static OPEN = 1
    static CLOSING = 2
    static CLOSED = 3
    constructor () {
      throw new Error('WebSocket is not available in this Node version (run node with --experimental-websocket)')
    }
  }
}
