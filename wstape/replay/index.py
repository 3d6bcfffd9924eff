"""An offset index over a streamed cassette, so each connection is replayed on its own.

:meth:`CassetteIndex.build` reads the cassette once, start to end, keeping only what the
replay needs up front: each connection's ``Open``, its ``Close``, message counts and
heartbeat pairs (:class:`~wstape.core.replay.recorded.RecordedConnection`), plus, per connection,
a few *segments* of the file where its records lie. :meth:`CassetteIndex.events` later
streams one connection's messages from those segments, :data:`BATCH_FEED` bytes of the
file at a time (:meth:`~wstape.cassettes.reader.CassetteReader.read_batch`: the reader's
fast way, each record checked as the indexing pass checked it, the file open only while
it reads), so a 1,000,000-message connection is replayed in constant memory and a
thousand concurrent connections do not hold a thousand open files.

The events the indexing pass read anyway are kept, up to :data:`KEPT_BYTES` for the whole
cassette, so a connection that fits is replayed from memory: its records are neither read
nor validated a second time, which is most of a replayed message's cost otherwise.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wstape.cassettes import CassetteReader
from wstape.core.connections import ConnectionTracker, Strays
from wstape.core.model import Close, Message, Note, Open
from wstape.core.replay.options import PlayOptions
from wstape.core.replay.recorded import RecordedBuilder, RecordedConnection

SEGMENT_GAP = 64 * 1024
"""Records of one connection closer than this (in bytes) share a segment: reading a few
foreign records is cheaper than seeking and opening the file again."""
BATCH_FEED = 32 * 1024
"""File bytes read at a time for a streamed connection: its records among them wait in
memory until played (a few hundred small ones; a record bigger than this is read whole)."""
KEPT_BYTES = 16 * 1024 * 1024
"""Recorded events kept in memory from the indexing pass, counted as each message's
payload plus :data:`KEPT_OVERHEAD`: connections that fit in what is left are kept whole,
the others (and all of a bigger cassette's) are streamed from the file."""
KEPT_OVERHEAD = 200
"""Bytes counted for each kept event besides its payload (the objects that hold it)."""


@dataclass(slots=True)
class _Segment:
    start: int
    """Byte offset of the segment's first record."""
    index: int
    """Record index of that record."""
    last: int
    """Byte offset of the segment's last record of this connection."""


@dataclass
class _Building:
    open: Open
    builder: RecordedBuilder
    close: Close | None = None
    segments: list[_Segment] = field(default_factory=list)
    kept: list[Message | Close] | None = field(default_factory=list)
    """Its events so far, while they fit in :data:`KEPT_BYTES` (None once not)."""
    kept_bytes: int = 0


class CassetteIndex:
    """What the replay server knows about a cassette before any client connects."""

    def __init__(
        self,
        reader: CassetteReader,
        connections: list[RecordedConnection],
        segments: dict[int, list[_Segment]],
        strays: Strays | None = None,
        kept: dict[int, list[Message | Close]] | None = None,
    ) -> None:
        self.reader = reader
        self.path = reader.path
        self.connections = connections
        self._segments = segments
        self._kept = kept or {}
        """Connection id -> all its events, for the connections kept in memory."""
        self.strays = strays or Strays()
        """Records of no connection (:mod:`wstape.core.connections`): never replayed."""

    @classmethod
    def build(cls, path: str | Path, options: PlayOptions | None = None) -> CassetteIndex:
        """Index ``path``: each connection's protocol and heartbeats as ``options`` say
        (``--protocol``, ``--heartbeat``, ``--no-heartbeats``). Raises CassetteError
        (TruncatedCassette for a cut-off file, DuplicateConnection for a connection id
        opened twice)."""
        opts = options or PlayOptions()
        declared = opts.declared_heartbeats()
        reader = CassetteReader(path, allow_truncated=False)
        building: list[_Building] = []
        tracker = ConnectionTracker()
        room = KEPT_BYTES
        for index, offset, record in reader.iter_with_offsets():
            slot = tracker.route(record)
            if slot < 0 or isinstance(record, Note):
                continue
            if isinstance(record, Open):
                entry = _Building(
                    record,
                    RecordedBuilder(
                        record,
                        protocol=opts.protocol,
                        declared=declared,
                        detect_heartbeats=opts.detect_heartbeats,
                    ),
                )
                building.append(entry)
            else:
                entry = building[slot]
                if isinstance(record, Message):
                    entry.builder.add(record)
                    cost = len(record.payload) + KEPT_OVERHEAD
                else:
                    entry.close = record
                    cost = KEPT_OVERHEAD
                kept = entry.kept
                if kept is not None:
                    if cost <= room:
                        kept.append(record)
                        entry.kept_bytes += cost
                        room -= cost
                    else:  # too big to keep: streamed, and its room goes to the others
                        room += entry.kept_bytes
                        entry.kept = None
            segments = entry.segments
            if segments and offset - segments[-1].last <= SEGMENT_GAP:
                segments[-1].last = offset
            else:
                segments.append(_Segment(offset, index, offset))
        connections = [b.builder.finish(b.close) for b in building]
        # The reader refuses a reused id, so each connection id names one connection.
        by_conn = {b.open.conn: b.segments for b in building}
        in_memory = {b.open.conn: b.kept for b in building if b.kept is not None}
        return cls(reader, connections, by_conn, tracker.strays, in_memory)

    def events(self, conn: int) -> Iterator[Message | Close]:
        """The messages and close of connection ``conn``, in order: from memory if they
        were kept, else streamed from disk."""
        kept = self._kept.get(conn)
        if kept is not None:
            return iter(kept)
        return self._streamed(conn)

    def streams(self, conn: int) -> bool:
        """Connection ``conn``'s events are read from the file as it is replayed."""
        return conn not in self._kept

    def _streamed(self, conn: int) -> Iterator[Message | Close]:
        # Each batch is a list and chain() walks them in C: no generator step per event.
        return itertools.chain.from_iterable(self._batches(conn))

    def _batches(self, conn: int) -> Iterator[list[Message | Close]]:
        """Connection ``conn``'s events from its segments, a batch of the file at a time
        (the reader's fast way, checked as in full as the indexing pass checked them)."""
        read_batch = self.reader.read_batch
        for segment in self._segments.get(conn, []):
            start: int | None = segment.start
            index = segment.index
            last = segment.last
            while start is not None:
                batch, start, index = read_batch(start, index, last, feed=BATCH_FEED)
                mine = [
                    r for r in batch if (type(r) is Message or type(r) is Close) and r.conn == conn
                ]
                if mine:
                    yield mine
