#!/usr/bin/env node
// js-libp2p interop peer for aiolibp2p. See ../../tests/interop/README.md.
//
// The polyfill must be evaluated before libp2p is loaded, so it is imported
// statically and everything else is loaded with a dynamic import().
import './lib/polyfill.mjs'

const { main } = await import('./lib/main.mjs')

try {
  await main(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`peer.mjs: fatal: ${err?.stack ?? err}\n`)
  process.stdout.write(JSON.stringify({ event: 'fatal', error: String(err?.message ?? err) }) + '\n')
  process.exit(1)
}
