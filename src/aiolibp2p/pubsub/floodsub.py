"""FloodSub (``/floodsub/1.0.0``): every valid message goes to every peer subscribed to its topic.

The de-facto first pubsub router (pubsub/README.md; not written up as a spec of its own): no mesh and no
control messages; a message is forwarded to all known topic peers except the one it came from and its
author.
"""

from __future__ import annotations

from ..crypto.peer_id import PeerId
from .core import FLOODSUB_PROTOCOL_ID, PubSubRouter
from .message import PubSubMessage


class FloodSub(PubSubRouter):
    """The FloodSub router (sans-I/O; see :class:`~aiolibp2p.pubsub.core.PubSubRouter`)."""

    protocols = (FLOODSUB_PROTOCOL_ID,)

    def _forward(self, msg_id: bytes, message: PubSubMessage, received_from: PeerId, now: float) -> None:
        source = message.source
        for peer in self.topics.get(message.topic, ()):
            if peer != received_from and peer != source:
                self._outgoing(peer).messages.append(message.pb)
