"""Application-protocol codecs for replay (Socket.IO, graphql-ws, MQTT, STOMP, JSON-RPC).

See :mod:`.base` for what a codec tells replay; each protocol is one module here, and
importing this package registers them all in :data:`CODECS`, in detection order (the
most specific first: a Socket.IO path, then subprotocols, then JSON-RPC, which only
needs ``"jsonrpc": "2.0"`` in a message).
"""

from wstape.core.codecs.base import (
    CODECS,
    Codec,
    Decoded,
    Heartbeat,
    HeartbeatRole,
    Path,
    Reassembler,
    Scalar,
)

# isort: off
# Registration order is detection order: keep it, do not sort.
from wstape.core.codecs import socketio
from wstape.core.codecs import graphql
from wstape.core.codecs import mqtt
from wstape.core.codecs import stomp
from wstape.core.codecs import jsonrpc

# isort: on

__all__ = [
    "CODECS",
    "Codec",
    "Decoded",
    "Heartbeat",
    "HeartbeatRole",
    "Path",
    "Reassembler",
    "Scalar",
    "graphql",
    "jsonrpc",
    "mqtt",
    "socketio",
    "stomp",
]
