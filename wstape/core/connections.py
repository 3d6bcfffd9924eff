"""Which connection each record belongs to: the one fold every tool and the replay use.

A cassette interleaves the records of many connections, tied together only by their
connection id. :class:`ConnectionTracker` is the one place that decides, record by record,
which connection a record belongs to; ``ls``, ``stats``, ``check``, ``diff``, ``view``,
``cut``, ``repair`` and the replay index all route records through it, so they agree on
every cassette. It streams: each record is decided when it arrives, in constant time, and
the tracker keeps a few integers per connection, never a record.

The policy:

- An ``open`` starts a connection. Connections are numbered 0, 1, 2, ... in the order they
  open (their *slot*), whatever their ids.
- A ``message`` or ``close`` belongs to the open, accepted (status 101), not yet closed
  connection with its id. A ``close`` ends that connection.
- A ``note`` belongs to the latest connection opened with its id, even a closed or refused
  one (the recorder notes why it closed a connection after the close); a note without an
  id is about the whole cassette.
- Anything else is a *stray* and belongs to no connection: a message or close of an id
  that was never opened (an orphan), of a connection that already closed, or of a refused
  upgrade, and a note of an id never opened. Every tool leaves strays out and counts
  them (:class:`Strays`); ``repair`` drops them.
- An ``open`` of an id already used (two recorders appended to one cassette at once; the
  reader refuses such a cassette unless asked) starts a new connection, which owns the
  records of that id up to its close; then the id's earlier connection, if still open,
  owns them again. ``repair`` gives each such connection a fresh id (``reused``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import compress
from typing import Any, Generic, TypeVar, overload

from wstape.core.model import (
    Close,
    ConnectionSummary,
    Message,
    Note,
    Opcode,
    Open,
    Record,
    Side,
)

MessageFields = tuple[int, float, Side, Opcode, bytes]
"""A message as a plain tuple of its fields, ``(conn, t, side, opcode, payload)``: what the
reader's fast pass (:meth:`~wstape.cassettes.reader.CassetteReader.iter_fields`) yields in
place of a :class:`~wstape.core.model.Message`, for the folds that need no object per
message. ``Message(*fields)`` is the same message."""

KIND_SIDE = (Side.CLIENT, Side.CLIENT, Side.SERVER, Side.SERVER)
KIND_OPCODE = (Opcode.TEXT, Opcode.BINARY, Opcode.TEXT, Opcode.BINARY)
"""A message's *kind* (0 to 3: 2 x from the server + binary, as cassette format 2 writes a
message) -> its side and opcode."""


@dataclass(frozen=True, slots=True)
class MessageRun:
    """Consecutive messages as four columns, item ``i`` of each being message ``i``'s: what
    the reader's run pass (:meth:`~wstape.cassettes.reader.CassetteReader.iter_runs`) hands
    out for a stretch of a cassette that holds messages only, so a fold can take a few
    hundred messages in a handful of calls made in C. Never empty. (No tuple: a fold tells
    a message's fields from other records by ``isinstance(record, tuple)``.)"""

    conns: tuple[int, ...]
    ts: tuple[float, ...]
    kinds: tuple[int, ...]
    """Each message's kind (:data:`KIND_SIDE`, :data:`KIND_OPCODE`)."""
    payloads: tuple[bytes, ...]

    def fields(self) -> list[MessageFields]:
        """The messages as :data:`MessageFields`, in order."""
        kinds = self.kinds
        return list(
            zip(
                self.conns,
                self.ts,
                map(KIND_SIDE.__getitem__, kinds),
                map(KIND_OPCODE.__getitem__, kinds),
                self.payloads,
                strict=True,
            )
        )

    def one_conn(self) -> int | None:
        """The connection id of every message of the run, if they all share one."""
        conns = self.conns
        first = conns[0]
        return first if conns.count(first) == len(conns) else None


CASSETTE = -1
"""What :meth:`ConnectionTracker.route` returns for a note about the whole cassette."""
STRAY = -2
"""What :meth:`ConnectionTracker.route` returns for a record of no connection."""


class StrayKind(StrEnum):
    """Why a record belongs to no connection."""

    ORPHAN = "orphan"
    """Its connection id was never opened."""
    AFTER_CLOSE = "after close"
    """Its connection had already closed."""
    REFUSED = "refused"
    """Its connection's upgrade was refused: nothing follows a refusal."""


@dataclass
class Strays:
    """The records that belong to no connection, counted (they are never kept)."""

    count: int = 0
    by_kind: dict[StrayKind, int] = field(default_factory=dict)
    first: tuple[int, str, StrayKind] | None = None
    """Position (1 = the first record after the header), what it was, and why."""

    def add(self, position: int, record: Record | MessageFields, kind: StrayKind) -> None:
        self.count += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        if self.first is None:
            conn: int | None
            if isinstance(record, tuple):
                what, conn = "message", record[0]
            else:
                what, conn = type(record).__name__.lower(), record.conn
            self.first = (position, f"a {what} of connection {conn}", kind)

    def describe(self) -> str:
        """One line, e.g. ``2 records belong to no open connection (first: record 7, a
        message of connection 3 after its close)``."""
        plural = "record belongs" if self.count == 1 else "records belong"
        if self.first is None:
            return f"{self.count} {plural} to no open connection"
        position, what, kind = self.first
        why = {
            StrayKind.ORPHAN: "which was never opened",
            StrayKind.AFTER_CLOSE: "after its close",
            StrayKind.REFUSED: "whose upgrade was refused",
        }[kind]
        return (
            f"{self.count} {plural} to no open connection and "
            f"{'is' if self.count == 1 else 'are'} left out "
            f"(first: record {position}, {what} {why})"
        )


class ConnectionTracker:
    """Route each record of a cassette, in order, to the connection it belongs to."""

    def __init__(self) -> None:
        self.connections = 0
        """Connections opened so far (the next slot)."""
        self.strays = Strays()
        self.reused: list[int] = []
        """Slots of connections whose id an earlier connection already used."""
        self.ids: list[int] = []
        """The connection id of each slot."""
        self.position = 0
        """Records routed so far (the reader's record index of the last one)."""
        self._live: dict[int, list[int]] = {}
        """Connection id -> slots of open, accepted connections with it (latest last)."""
        self._latest: dict[int, int] = {}
        """Connection id -> the latest slot opened with it."""
        self._refused: set[int] = set()
        """Slots whose upgrade was refused."""
        self.live_slots: Callable[[int], list[int] | None] = self._live.get
        """Connection id -> the slots of open, accepted connections with it (latest last),
        or None: a message of that id belongs to the last of them. The fast folds route a
        message of a live connection with this instead of :meth:`route` (a plain dict
        lookup, no call per message), and set :attr:`position` before they route any
        other record."""

    def route(self, record: Record | MessageFields) -> int:
        """The slot ``record`` belongs to, or CASSETTE for a cassette note, or STRAY."""
        self.position += 1
        if isinstance(record, tuple):  # a message as its fields: the fast pass's common case
            live = self._live.get(record[0])
            if live:
                return live[-1]
            return self._stray(record)
        if isinstance(record, Message | Close):
            live = self._live.get(record.conn)
            if live:
                slot = live[-1]
                if isinstance(record, Close):
                    live.pop()
                    if not live:
                        del self._live[record.conn]
                return slot
            return self._stray(record)
        if isinstance(record, Open):
            conn = record.conn
            slot = self.connections
            self.connections += 1
            self.ids.append(conn)
            if conn in self._latest:
                self.reused.append(slot)
            self._latest[conn] = slot
            if record.accepted:
                self._live.setdefault(conn, []).append(slot)
            else:
                self._refused.add(slot)
            return slot
        if record.conn is None:
            return CASSETTE
        slot = self._latest.get(record.conn, STRAY)
        if slot == STRAY:
            self.strays.add(self.position, record, StrayKind.ORPHAN)
        return slot

    def _stray(self, record: Message | Close | MessageFields) -> int:
        latest = self._latest.get(record[0] if isinstance(record, tuple) else record.conn)
        if latest is None:
            kind = StrayKind.ORPHAN
        elif latest in self._refused:
            kind = StrayKind.REFUSED
        else:
            kind = StrayKind.AFTER_CLOSE
        self.strays.add(self.position, record, kind)
        return STRAY

    def is_open(self, slot: int) -> bool:
        """Whether the connection in ``slot`` is accepted and has not closed yet."""
        live = self._live.get(self.ids[slot])
        return live is not None and slot in live

    def unclosed(self) -> list[int]:
        """Slots of accepted connections that never closed, in opening order."""
        return sorted(slot for slots in self._live.values() for slot in slots)


S = TypeVar("S")


@dataclass
class Folded(Generic[S]):
    """What :func:`fold_connections` built: one state per connection, in opening order."""

    connections: list[S]
    notes: list[Note]
    """Notes about the whole cassette, in order."""
    strays: Strays
    reused: list[int]
    """Slots (indices into ``connections``) whose connection id was already used."""


def fold_connections(
    records: Iterable[Record | MessageFields],
    start: Callable[[Open], S],
    add: Callable[[S, Message | Close | Note | MessageFields], object],
) -> Folded[S]:
    """Fold the records into one state per connection: ``start(open)`` when a connection
    opens, then ``add(state, record)`` for each of its messages (a Message, or its fields
    when ``records`` is the reader's fast pass), its close and its notes.

    Streams ``records`` once; memory is the states plus the cassette's notes.
    """
    tracker = ConnectionTracker()
    states: list[S] = []
    notes: list[Note] = []
    route = tracker.route
    live_slots = tracker.live_slots
    for position, record in enumerate(records):
        if isinstance(record, tuple):
            # route()'s first case, inlined (a fold is mostly messages of live connections)
            live = live_slots(record[0])
            if live:
                add(states[live[-1]], record)
                continue
        tracker.position = position  # (what route() counts on from here)
        slot = route(record)
        if slot >= 0:
            if type(record) is Open:
                states.append(start(record))
            else:
                add(states[slot], record)  # type: ignore[arg-type]
        elif slot == CASSETTE and isinstance(record, Note):
            notes.append(record)
    return Folded(states, notes, tracker.strays, tracker.reused)


def add_to_summary(
    summary: ConnectionSummary, record: Message | Close | Note | MessageFields
) -> None:
    """:meth:`ConnectionSummary.add`, taking a message's fields as well."""
    if isinstance(record, tuple):
        if record[2] is Side.CLIENT:
            summary.messages_client += 1
            summary.bytes_client += len(record[4])
        else:
            summary.messages_server += 1
            summary.bytes_server += len(record[4])
        if record[1] > summary.last_t:
            summary.last_t = record[1]
    else:
        summary.add(record)


def add_run_to_summary(summary: ConnectionSummary, run: MessageRun) -> None:
    """:func:`add_to_summary` of each message of ``run`` (all of ``summary``'s
    connection), in a few calls made in C."""
    kinds = run.kinds
    sizes = list(map(len, run.payloads))
    client = list(compress(sizes, map((2).__gt__, kinds)))  # (kinds 0 and 1: the client's)
    summary.messages_client += len(client)
    summary.messages_server += len(sizes) - len(client)
    client_bytes = sum(client)
    summary.bytes_client += client_bytes
    summary.bytes_server += sum(sizes) - client_bytes
    last = max(run.ts)
    if last > summary.last_t:
        summary.last_t = last


def slim_open(op: Open) -> Open:
    """``op`` without its headers and body: what a per-connection summary keeps, so that a
    cassette of many connections costs a few hundred bytes per connection."""
    if not (op.request_headers or op.response_headers or op.body):
        return op
    slim = object.__new__(Open)
    # A copy of the fields, three emptied (the frozen dataclass's __init__ would set each
    # of the eighteen through object.__setattr__, four times slower; Open has no
    # __post_init__).
    fields = slim.__dict__
    fields.update(op.__dict__)
    fields["request_headers"] = fields["response_headers"] = ()
    fields["body"] = b""
    return slim


def _summary(op: Open) -> ConnectionSummary:
    return ConnectionSummary(slim_open(op))


@overload
def summarize_connections(
    records: Iterable[Record | MessageFields | MessageRun],
) -> Folded[ConnectionSummary]: ...
@overload
def summarize_connections(
    records: Iterable[Record | MessageFields | MessageRun], finish: Callable[[ConnectionSummary], S]
) -> Folded[S]: ...
def summarize_connections(
    records: Iterable[Record | MessageFields | MessageRun],
    finish: Callable[[ConnectionSummary], Any] | None = None,
) -> Folded[Any]:
    """Per-connection totals (``wstape ls``), in the order the connections opened; each
    summary's open without its headers and body (:func:`slim_open`).

    With ``finish``, each summary is handed to it as soon as its connection is over (its
    close; a refused upgrade at once; the rest when the records end) and the fold keeps
    what it returns instead: a row of text, say, so that a cassette of many connections
    costs what its output costs, not a summary per connection. A note that comes after
    the close is then left out of that summary.

    :func:`fold_connections` with :func:`add_to_summary`, a message of a live connection
    counted in the loop itself (``ls`` of a big cassette is mostly that), a
    :class:`MessageRun` of one in one go (:func:`add_run_to_summary`; the reader's
    ``iter_runs``)."""
    tracker = ConnectionTracker()
    states: list[Any] = []
    over = bytearray()
    """Per slot: 1 once ``finish`` has replaced its summary."""
    notes: list[Note] = []
    route = tracker.route
    live_slots = tracker.live_slots
    client = Side.CLIENT
    position = -1
    for item in records:
        if type(item) is MessageRun:  # (the reader's iter_runs: mostly of one live connection)
            conn = item.one_conn()
            live = None if conn is None else live_slots(conn)
            if live:
                add_run_to_summary(states[live[-1]], item)
                position += len(item.conns)
                continue
            batch: Iterable[Record | MessageFields] = item.fields()
        else:
            batch = (item,)  # type: ignore[assignment]
        for record in batch:
            position += 1
            if isinstance(record, tuple):
                live = live_slots(record[0])
                if live:
                    s = states[live[-1]]
                    if record[2] is client:
                        s.messages_client += 1
                        s.bytes_client += len(record[4])
                    else:
                        s.messages_server += 1
                        s.bytes_server += len(record[4])
                    if record[1] > s.last_t:
                        s.last_t = record[1]
                    continue
            tracker.position = position
            slot = route(record)
            if slot >= 0:
                if type(record) is Open:
                    summary = _summary(record)
                    over.append(0)
                    if finish is not None and not record.accepted:
                        states.append(finish(summary))
                        over[slot] = 1
                    else:
                        states.append(summary)
                elif over[slot]:
                    pass
                elif type(record) is Close:  # (ConnectionSummary.add of a close, inlined)
                    s = states[slot]
                    s.close = record
                    if record.t > s.last_t:  # (max(s.last_t, record.t))
                        s.last_t = record.t
                    if finish is not None:
                        states[slot] = finish(s)
                        over[slot] = 1
                elif not isinstance(record, Open):
                    add_to_summary(states[slot], record)
            elif slot == CASSETTE and isinstance(record, Note):
                notes.append(record)
    if finish is not None:
        for slot, done in enumerate(over):
            if not done:
                states[slot] = finish(states[slot])
    return Folded(states, notes, tracker.strays, tracker.reused)
