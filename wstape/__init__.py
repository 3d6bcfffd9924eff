"""wstape: record, replay and check WebSocket traffic."""

__version__ = "0.1.0"
