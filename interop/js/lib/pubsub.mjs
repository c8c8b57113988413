// PubSub for the interop peer (--pubsub gossipsub|floodsub): the service,
// its events on stdout and the subscribe/publish commands. Loaded by main.mjs
// only when --pubsub is given, so the default peer is unchanged.
//
// Events: pubsub:message {topic, dataHex, from, seqno, type, msgIdHex,
// propagationSource}, pubsub:subscription-change {peerId, subscriptions},
// pubsub:graft / pubsub:prune {peerId, topic, direction} (gossipsub; direction
// "inbound" = the remote sent it, "outbound" = we did), pubsub:idontwant
// {peerId, msgIdsHex} (an IDONTWANT received).
// Commands: subscribe/unsubscribe {topic}, publish {topic, dataHex} ->
// {recipients}, pubsub-peers {topic} -> {subscribers, mesh, peers,
// idontwantsFrom: {peerId: message ids received in IDONTWANTs}}.
import { emit } from './output.mjs'

// --pubsub-msgid go: from (peer id bytes) || 8-byte big-endian seqno, as go
// and aiolibp2p compute it. js's own default is protobuf(public key) || seqno,
// which differs for every key type (LIBP2P-NOTES §3.9), so IHAVE/IWANT/IDONTWANT
// ids would not match; "js" keeps it for tests that want to see that.
function goMsgId (msg) {
  if (msg.type !== 'signed') throw new Error('go message ids need signed messages')
  const from = msg.from.toMultihash().bytes
  const seqno = new Uint8Array(8)
  new DataView(seqno.buffer).setBigUint64(0, BigInt(msg.sequenceNumber))
  const id = new Uint8Array(from.length + 8)
  id.set(from, 0)
  id.set(seqno, from.length)
  return id
}

const hex = (b) => Buffer.from(b).toString('hex')
// gossipsub hands message ids to listeners as base64 strings
const idHex = (id) => typeof id === 'string' ? Buffer.from(id, 'base64').toString('hex') : hex(id)

export async function pubsubService (opts) {
  const kind = opts.pubsub
  const msgid = opts['pubsub-msgid']
  if (!['go', 'js'].includes(msgid)) throw new Error(`--pubsub-msgid must be go or js, not ${msgid}`)
  if (kind === 'gossipsub') {
    const { gossipsub } = await import('@libp2p/gossipsub')
    const init = { allowPublishToZeroTopicPeers: true, emitSelf: false }
    if (msgid === 'go') init.msgIdFn = goMsgId
    return gossipsub(init)
  }
  if (kind === 'floodsub') {
    const { floodsub } = await import('@libp2p/floodsub')
    return floodsub({ emitSelf: false })
  }
  throw new Error(`--pubsub must be gossipsub or floodsub, not ${kind}`)
}

export function attachPubsub (node, opts) {
  const ps = node.services.pubsub
  const describe = (msg) => ({
    topic: msg.topic,
    dataHex: hex(msg.data),
    from: msg.from?.toString() ?? null,
    seqno: msg.sequenceNumber == null ? null : msg.sequenceNumber.toString(),
    type: msg.type
  })
  if (opts.pubsub === 'gossipsub') {
    ps.addEventListener('gossipsub:message', (evt) => {
      const { msg, msgId, propagationSource } = evt.detail
      emit({ event: 'pubsub:message', ...describe(msg), msgIdHex: idHex(msgId), propagationSource: propagationSource.toString() })
    })
    for (const name of ['graft', 'prune']) {
      ps.addEventListener(`gossipsub:${name}`, (evt) => {
        const { peerId, topic, direction } = evt.detail
        emit({ event: `pubsub:${name}`, peerId: peerId.toString(), topic, direction })
      })
    }
  } else {
    ps.addEventListener('message', (evt) => {
      emit({ event: 'pubsub:message', ...describe(evt.detail), msgIdHex: null, propagationSource: null })
    })
  }
  if (typeof ps.handleIdontwant === 'function') {
    // no event for IDONTWANT in gossipsub: report each one received
    const handle = ps.handleIdontwant.bind(ps)
    ps.handleIdontwant = (id, idontwant) => {
      const ids = idontwant.flatMap((i) => (i.messageIDs ?? []).map(hex))
      emit({ event: 'pubsub:idontwant', peerId: id, msgIdsHex: ids })
      return handle(id, idontwant)
    }
  }
  ps.addEventListener('subscription-change', (evt) => {
    emit({
      event: 'pubsub:subscription-change',
      peerId: evt.detail.peerId.toString(),
      subscriptions: evt.detail.subscriptions.map((s) => ({ topic: s.topic, subscribe: s.subscribe }))
    })
  })

  const topicOf = (msg) => {
    if (typeof msg.topic !== 'string' || msg.topic.length === 0) throw new Error('missing "topic"')
    return msg.topic
  }
  return {
    subscribe: async (msg) => { ps.subscribe(topicOf(msg)); return {} },
    unsubscribe: async (msg) => { ps.unsubscribe(topicOf(msg)); return {} },
    publish: async (msg) => {
      const res = await ps.publish(topicOf(msg), Buffer.from(msg.dataHex ?? '', 'hex'))
      return { recipients: (res?.recipients ?? []).map((p) => p.toString()) }
    },
    'pubsub-peers': async (msg) => {
      const topic = topicOf(msg)
      const idontwantsFrom = {}
      for (const [peer, ids] of ps.idontwants ?? new Map()) idontwantsFrom[peer] = ids.size
      return {
        subscribers: ps.getSubscribers(topic).map((p) => p.toString()).sort(),
        mesh: typeof ps.getMeshPeers === 'function' ? ps.getMeshPeers(topic).map(String).sort() : null,
        peers: ps.getPeers().map((p) => p.toString()).sort(),
        idontwantsFrom
      }
    }
  }
}
