"""Replay a cassette as a real ws:// or wss:// server that checks every client.

``ReplayServer`` and ``ReplayOptions`` are the library API (the CLI and the pytest plugin
are thin over them); ``CassetteIndex`` streams a cassette's connections from disk.
"""

from wstape.replay.index import CassetteIndex
from wstape.replay.server import ReplayOptions, ReplayServer

__all__ = ["CassetteIndex", "ReplayOptions", "ReplayServer"]
