"""The seen-message cache and the message cache of gossipsub.

* :class:`SeenCache` — pubsub/README.md §"Message Identification" / gossipsub-v1.0.md §"Message cache":
  first-seen time cache of message IDs (go's TimeCacheDuration, 120 s). Entries expire in insertion order,
  so the cache is bounded by the arrival rate times the TTL.
* :class:`MessageCache` — gossipsub-v1.0.md §"Message Cache": ``history_length`` windows of recent
  messages, of which the first ``history_gossip`` are advertised in IHAVE; per-peer IWANT counts bound
  retransmissions (go's GossipRetransmission).
"""

from __future__ import annotations

from collections import OrderedDict

from ..crypto.peer_id import PeerId
from .message import PubSubMessage


class SeenCache:
    """Message IDs seen within the last ``ttl`` seconds (first-seen semantics: a hit does not refresh)."""

    __slots__ = ("_entries", "contains", "ttl")

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: OrderedDict[bytes, float] = OrderedDict()
        self.contains = self._entries.__contains__
        """``msg_id in cache`` without a Python-level call (the duplicate check of every received message)."""

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, msg_id: bytes) -> bool:
        return msg_id in self._entries

    def add(self, msg_id: bytes, now: float) -> bool:
        """Record ``msg_id``; False if it was already present."""
        if msg_id in self._entries:
            return False
        self._entries[msg_id] = now + self.ttl
        return True

    def sweep(self, now: float) -> None:
        entries = self._entries
        while entries:
            msg_id, expiry = next(iter(entries.items()))
            if expiry > now:
                break
            del entries[msg_id]


class MessageCache:
    """Sliding windows of recently seen messages (gossipsub-v1.0.md §"Message Cache")."""

    __slots__ = ("_messages", "_peer_tx", "_windows", "history_gossip")

    def __init__(self, history_length: int, history_gossip: int) -> None:
        if not 0 < history_gossip <= history_length:
            raise ValueError("history_gossip must be in 1..history_length")
        self.history_gossip = history_gossip
        self._messages: dict[bytes, PubSubMessage] = {}
        self._peer_tx: dict[bytes, dict[PeerId, int]] = {}
        self._windows: list[list[tuple[bytes, str]]] = [[] for _ in range(history_length)]

    def __len__(self) -> int:
        return len(self._messages)

    def put(self, msg_id: bytes, msg: PubSubMessage) -> None:
        if msg_id in self._messages:
            return
        self._messages[msg_id] = msg
        self._windows[0].append((msg_id, msg.topic))

    def get(self, msg_id: bytes) -> PubSubMessage | None:
        return self._messages.get(msg_id)

    def get_for_peer(self, msg_id: bytes, peer: PeerId) -> tuple[PubSubMessage, int] | None:
        """The message and how many times ``peer`` asked for it (this request included)."""
        msg = self._messages.get(msg_id)
        if msg is None:
            return None
        tx = self._peer_tx.setdefault(msg_id, {})
        count = tx.get(peer, 0) + 1
        tx[peer] = count
        return msg, count

    def gossip_ids(self, topic: str) -> list[bytes]:
        return [mid for window in self._windows[: self.history_gossip] for mid, t in window if t == topic]

    def shift(self) -> None:
        for msg_id, _ in self._windows.pop():
            self._messages.pop(msg_id, None)
            self._peer_tx.pop(msg_id, None)
        self._windows.insert(0, [])
