"""PubSub: FloodSub and GossipSub v1.1/v1.2 (pubsub/README.md, pubsub/gossipsub/ in libp2p/specs).

The routers are sans-I/O state machines (:mod:`.core`, :mod:`.floodsub`, :mod:`.gossipsub`) with their
message layer (:mod:`.message`), caches (:mod:`.caches`) and peer scoring (:mod:`.score`).
"""

from .core import (
    FLOODSUB_PROTOCOL_ID,
    ConnectToPeer,
    DeliverMessage,
    MessageDropped,
    PeerJoinedTopic,
    PeerLeftTopic,
    PubSubConfig,
    PubSubEvent,
    PubSubRouter,
    PubSubStats,
    ValidateMessage,
)
from .floodsub import FloodSub
from .gossipsub import (
    GOSSIPSUB_PROTOCOLS,
    GOSSIPSUB_V10,
    GOSSIPSUB_V11,
    GOSSIPSUB_V12,
    GossipSub,
    GossipSubConfig,
)
from .message import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MessageIdFn,
    MessageRejected,
    PubSubMessage,
    RejectReason,
    SignaturePolicy,
    ValidationResult,
    content_message_id,
    default_message_id,
)
from .score import PeerScoreParams, PeerScoreThresholds, TopicScoreParams, score_parameter_decay
from .service import PubSub, Subscription, Topic, floodsub, gossipsub

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "FLOODSUB_PROTOCOL_ID",
    "GOSSIPSUB_PROTOCOLS",
    "GOSSIPSUB_V10",
    "GOSSIPSUB_V11",
    "GOSSIPSUB_V12",
    "ConnectToPeer",
    "DeliverMessage",
    "FloodSub",
    "GossipSub",
    "GossipSubConfig",
    "MessageDropped",
    "MessageIdFn",
    "MessageRejected",
    "PeerJoinedTopic",
    "PeerLeftTopic",
    "PeerScoreParams",
    "PeerScoreThresholds",
    "PubSub",
    "PubSubConfig",
    "PubSubEvent",
    "PubSubMessage",
    "PubSubRouter",
    "PubSubStats",
    "RejectReason",
    "SignaturePolicy",
    "Subscription",
    "Topic",
    "TopicScoreParams",
    "ValidateMessage",
    "ValidationResult",
    "content_message_id",
    "default_message_id",
    "floodsub",
    "gossipsub",
    "score_parameter_decay",
]
