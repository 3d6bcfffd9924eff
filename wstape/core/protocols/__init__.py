"""Application-protocol codecs for replay (Socket.IO, graphql-ws, MQTT, STOMP, JSON-RPC).

See :mod:`.base` for what a codec tells replay; each protocol is one module here.
"""

from .base import CODECS, Codec, Decoded, Heartbeat, HeartbeatRole, Path, Reassembler, Scalar

__all__ = [
    "CODECS",
    "Codec",
    "Decoded",
    "Heartbeat",
    "HeartbeatRole",
    "Path",
    "Reassembler",
    "Scalar",
]
