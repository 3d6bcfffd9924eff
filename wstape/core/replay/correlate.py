"""Values the client makes up every session, carried from its messages into the replies.

A live client sends what the recorded one sent, except the values it generates each
session: graphql operation ids, JSON-RPC ids from a UUID generator, MQTT packet
identifiers and client ids, STOMP receipts. The recorded replies carry the recorded
values, which the live client would not recognise. A :class:`Correlator` (one per played
connection) does two things:

- :meth:`Correlator.learn`, for each live client unit against its recorded one: it finds
  the generated fields where the two differ, remembers ``recorded value -> live value``,
  and returns the live unit with the recorded values put back, so the matcher compares
  what the client meant, not the random part;
- :meth:`Correlator.rewrite`, for each recorded server unit about to be sent: it puts the
  live values where the recorded ones are (the fields that echo them).

Which fields: the protocol codec's (``Decoded.generated`` in client units,
``Decoded.echoes`` in server units); without a codec, for any JSON message, the paths
given with ``--correlate`` and, unless turned off, every string shaped like a UUID that
differs between the recording and the live client (then rewritten wherever it appears in
a later server message). :attr:`Correlator.substituted` counts the values put into server
units, for the report.

A UUID the recorded *server* sent earlier on the connection (a room, a session, a
resource it handed out) was not made up by the client, however it changed: the client
must send it back as the server sent it live (the recorded value itself, or its live
substitute when the client had generated it first). Any other value is an inconsistency
the caller reports as a mismatch, from :attr:`Correlator.conflicts`, and nothing is
learned from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Mapping, Sequence
from typing import Any, NamedTuple

from wstape.core.codecs import Codec, Path, Scalar, jsontext
from wstape.core.codecs.textutil import short_json
from wstape.core.matchers import WILDCARD, Segment, format_path
from wstape.core.model import Message, Opcode, Side

UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
MAX_JSON_BYTES = 256 * 1024
"""Larger JSON messages are not scanned for generated values (a cost bound)."""
MAX_VALUES = 100_000
"""At most this many learned values per connection (a memory bound)."""


class Saved(NamedTuple):
    """A :class:`Correlator`'s learned state (:meth:`Correlator.snapshot`)."""

    values: dict[Scalar, Scalar]
    bound: dict[Scalar, Scalar]
    owner: dict[Scalar, Scalar]
    json_learned: bool
    substituted: int
    conflicts: list[str]


class Correlator:
    """Learn generated values from client units; put them into server units."""

    def __init__(
        self,
        codec: Codec | None = None,
        *,
        paths: Sequence[tuple[Segment, ...]] = (),
        uuids: bool = True,
    ) -> None:
        self.codec = codec
        self.paths = tuple(paths)
        self.uuids = uuids
        self.values: dict[Scalar, Scalar] = {}
        """Recorded value -> live value."""
        self.substituted = 0
        self.conflicts: list[str] = []
        """Set by each :meth:`learn`: why the live unit's values are not consistent with
        what the connection did so far (one line each, naming the path); empty when
        they are. The caller reports a non-empty list as a mismatch."""
        self._server_uuids: set[str] = set()
        """UUIDs the recorded server units sent so far (:meth:`rewrite` sees them all)."""
        self.bound: dict[Scalar, Scalar] = {}
        """Recorded value -> live value of the client's values in use (unchanged ones
        too): until released (``Decoded.releases``) the client must use that live value
        for it, and no other recorded value may take it."""
        self._owner: dict[Scalar, Scalar] = {}
        """Live value -> the recorded value it stands for, while in use."""
        self._json_learned = False
        """A value was learned by the JSON rules (UUIDs, ``--correlate``) inside a codec's
        unit: server units' JSON is then searched for it too, not only their echoes."""
        self._unseen = set(range(len(self.paths)))
        """The ``--correlate`` paths no recorded client unit compared so far had (by
        index): :attr:`unmatched_paths`, for the report's note on a path that changed
        nothing. Not part of :meth:`snapshot`: a unit tried and put back was still seen."""

    def snapshot(self) -> Saved:
        """What :meth:`learn` may change, for :meth:`restore` (trying a live unit against
        several recorded ones)."""
        return Saved(
            dict(self.values),
            dict(self.bound),
            dict(self._owner),
            self._json_learned,
            self.substituted,
            self.conflicts,
        )

    def restore(self, saved: Saved) -> None:
        self.values, self.bound, self._owner = saved.values, saved.bound, saved.owner
        self._json_learned, self.substituted = saved.json_learned, saved.substituted
        self.conflicts = saved.conflicts

    @property
    def unmatched_paths(self) -> frozenset[int]:
        """Indexes of the ``--correlate`` paths that matched no JSON value of any
        recorded client unit :meth:`learn` compared (and so changed nothing)."""
        return frozenset(self._unseen)

    @property
    def active(self) -> bool:
        return self.codec is not None or bool(self.paths) or self.uuids

    # -- client units -----------------------------------------------------------------

    def learn(self, recorded: Message, opcode: Opcode, payload: bytes) -> bytes:
        """The live ``payload`` with its generated values replaced by the recorded ones
        (learning each pair); unchanged when it has none. Sets :attr:`conflicts`."""
        self.conflicts = []
        if opcode is not recorded.opcode:
            return payload
        same = payload == recorded.payload
        codec = self.codec
        if same and codec is None and not self.paths:
            if not self.uuids or UUID.search(payload) is None:
                return payload  # the common case: nothing the client generated
        # An unchanged unit still binds its values (the client kept the recorded ones)
        # and must agree with the values bound so far.
        if codec is not None:
            normal = self._learn_codec(codec, recorded, opcode, payload, same)
            if normal is not None:
                return normal
        if opcode is Opcode.TEXT and (self.paths or self.uuids):
            return self._learn_json(recorded.payload, payload, same)
        return payload

    def _learn_codec(
        self, codec: Codec, recorded: Message, opcode: Opcode, payload: bytes, same: bool
    ) -> bytes | None:
        old = codec.decode(Side.CLIENT, recorded.opcode, recorded.payload)
        new = old if same else codec.decode(Side.CLIENT, opcode, payload)
        if old is None or new is None or old.kind != new.kind:
            return None
        back: dict[Path, Scalar] = {}
        for path in dict.fromkeys((*old.generated, *new.generated)):
            was, now = _get(old.value, path), _get(new.value, path)
            if _scalar(was) and _scalar(now):
                self._bind(path, was, now)
                if not _same(was, now):
                    back[path] = was
        for path in old.releases:
            self._release(_get(old.value, path))
        root = codec.json_root
        if root is not None and (self.paths or self.uuids) and len(payload) <= MAX_JSON_BYTES:
            # The JSON the application wrote in the unit (a JSON-RPC message, a
            # Socket.IO packet's arguments): UUIDs and --correlate paths apply to it too.
            if not (self.uuids and not self.paths and UUID.search(recorded.payload) is None):
                was_doc = codec.json_doc(old)
                now_doc = was_doc if same else codec.json_doc(new)
                if was_doc is not None and now_doc is not None:
                    olds = _walk(was_doc)
                    depth = len(root)
                    ids = {p[depth:] for p in (*old.generated, *new.generated) if p[:depth] == root}
                    found = self._json_rules(olds, olds if same else _walk(now_doc), ids)
                    for path, was in found.items():
                        back.setdefault((*root, *path), was)
        if not back:
            return payload
        return codec.substitute(Side.CLIENT, opcode, payload, back)

    def _learn_json(self, old_payload: bytes, new_payload: bytes, same: bool = False) -> bytes:
        if self.uuids and not self.paths and UUID.search(old_payload) is None:
            return new_payload  # the cheap test first: most messages have no UUID
        old = _scalars(old_payload)
        new = old if same else _scalars(new_payload)
        if old is None or new is None:
            return new_payload
        back = self._json_rules(old, new)
        if not back:
            return new_payload
        try:
            text = new_payload.decode("utf-8")
            return jsontext.replace(text, back).encode("utf-8")
        except ValueError:
            return new_payload

    def _json_rules(
        self, old: Mapping[Path, Any], new: Mapping[Path, Any], skip: Container[Path] = ()
    ) -> dict[Path, Scalar]:
        """The UUID and ``--correlate`` rules on the scalars of two JSON values by path:
        the recorded value to put back at each path the client generated (bound)."""
        back: dict[Path, Scalar] = {}
        for path, now in new.items():
            was = old.get(path, _MISSING)
            if was is _MISSING:
                continue
            if self._unseen:
                self._see(path)
            if path in skip:
                continue
            if self._from_server(path, was, now):
                if not _same(was, now):
                    back[path] = was
                continue
            if (
                self.uuids
                and isinstance(was, str)
                and isinstance(now, str)
                and _UUID_TEXT.fullmatch(was)
                and _UUID_TEXT.fullmatch(now)
            ) or self._named(path):
                if not (_scalar(was) and _scalar(now)):
                    continue
                self._bind(path, was, now)
                if not _same(was, now):
                    back[path] = was
                    self._json_learned = True
        return back

    def _from_server(self, path: Path, was: Any, now: Any) -> bool:
        """Whether ``was`` is a UUID a recorded server unit sent before: then the live
        value must be what the server sent live (a conflict is noted otherwise)."""
        if not self.uuids or not isinstance(was, str) or was not in self._server_uuids:
            return False
        expected = self.values.get(was, was)
        if not _same(now, expected):
            self.conflicts.append(
                f"{format_path(path)}: expected {_show(expected)}, which the server sent "
                f"earlier on this connection, got {_show(now)} (a value the server hands "
                "out is not the client's to make up)"
            )
        return True

    def _note_server(self, payload: bytes) -> None:
        """Remember the UUIDs a recorded server unit carries."""
        if UUID.search(payload) is None:
            return
        seen = self._server_uuids
        for found in UUID.finditer(payload):
            if len(seen) >= MAX_VALUES:
                break
            seen.add(found.group().decode("ascii"))

    def _see(self, path: Path) -> None:
        """A recorded client unit has a value at ``path``: the ``--correlate`` paths
        that name it matched something."""
        self._unseen -= {i for i in self._unseen if _path_matches(self.paths[i], path)}

    def _named(self, path: Path) -> bool:
        return any(_path_matches(pattern, path) for pattern in self.paths)

    def _bind(self, path: Path, was: Scalar, now: Scalar) -> None:
        """The client sent ``now`` for the recorded ``was``: check it against the values
        in use (a conflict is noted, nothing learned) and bind it."""
        held = self.bound.get(was, _MISSING)
        if held is not _MISSING:
            if not _same(held, now):
                self.conflicts.append(
                    f"{format_path(path)}: expected {_show(held)}, the client's value for "
                    f"recorded {_show(was)} (still in use), got {_show(now)}"
                )
            return
        owner = self._owner.get(now, _MISSING)
        if owner is not _MISSING and not _same(owner, was):
            self.conflicts.append(
                f"{format_path(path)}: {_show(now)} is already the client's value for "
                f"recorded {_show(owner)} (still in use); recorded {_show(was)} needs a "
                "value of its own"
            )
            return
        if len(self.bound) < MAX_VALUES:
            self.bound[was] = now
            self._owner[now] = was
        if _same(was, now):
            self.values.pop(was, None)  # a value used afresh, unchanged this time
        else:
            self._remember(was, now)

    def _release(self, was: Any) -> None:
        """The use of the recorded value ``was`` ended: both it and its live value are
        free again (replies still in flight keep getting the live value)."""
        if not _scalar(was):
            return
        live = self.bound.pop(was, _MISSING)
        if live is not _MISSING and _same(self._owner.get(live, _MISSING), was):
            del self._owner[live]

    def _remember(self, was: Scalar, now: Scalar) -> None:
        if was in self.values or len(self.values) < MAX_VALUES:
            self.values[was] = now

    # -- server units -----------------------------------------------------------------

    def rewrite(self, opcode: Opcode, payload: bytes) -> bytes:
        """A recorded server unit with the live values put where recorded ones are.

        Called for every recorded server unit in order: it also notes the UUIDs they
        carry (values the server handed out)."""
        if self.uuids and len(payload) <= MAX_JSON_BYTES:
            self._note_server(payload)
        if not self.values and not self.bound:
            return payload
        codec = self.codec
        if codec is not None:
            decoded = codec.decode(Side.SERVER, opcode, payload)
            root = codec.json_root
            if decoded is not None and (decoded.echoes or root is not None):
                changes: dict[Path, Scalar] = {}
                for path in decoded.echoes:
                    value = _get(decoded.value, path)
                    if _scalar(value) and value in self.values:
                        changes[path] = self.values[value]
                for path in decoded.releases:
                    self._release(_get(decoded.value, path))
                if root is not None and self._json_learned and len(payload) <= MAX_JSON_BYTES:
                    doc = codec.json_doc(decoded)
                    for path, value in ({} if doc is None else _walk(doc)).items():
                        full = (*root, *path)
                        if full in changes or value not in self.values:
                            continue
                        uuid_like = isinstance(value, str) and _UUID_TEXT.fullmatch(value)
                        if (self.uuids and uuid_like) or self._named(path):
                            changes[full] = self.values[value]
                if changes:
                    self.substituted += len(changes)
                    return codec.substitute(Side.SERVER, opcode, payload, changes)
                return payload
        if opcode is not Opcode.TEXT or not self.values:
            return payload
        return self._rewrite_json(payload)

    def _rewrite_json(self, payload: bytes) -> bytes:
        if self.uuids and not self.paths and UUID.search(payload) is None:
            return payload
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload
        if len(payload) > MAX_JSON_BYTES:
            return payload
        try:
            spans = [(p, s, e) for p, s, e in jsontext.spans(text) if _is_scalar_text(text, s)]
        except (ValueError, RecursionError):
            return payload
        changes: list[tuple[int, int, str]] = []
        for path, start, end in spans:
            value = _load_scalar(text[start:end])
            if not _scalar(value) or value not in self.values:
                continue
            uuid_like = isinstance(value, str) and _UUID_TEXT.fullmatch(value) is not None
            if (self.uuids and uuid_like) or self._named(path):
                changes.append((start, end, jsontext.encode_scalar(self.values[value])))
        if not changes:
            return payload
        self.substituted += len(changes)
        return jsontext.apply_edits(text, changes).encode("utf-8")


_MISSING: Any = object()


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _show(value: object) -> str:
    return short_json(value, 60)


def _same(a: object, b: object) -> bool:
    """Equal as JSON values: ``1`` is not ``True``, nor ``"1"``."""
    return type(a) is type(b) and a == b


def _get(value: Any, path: Path) -> Any:
    for step in path:
        if isinstance(step, int) and isinstance(value, list) and 0 <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return _MISSING
    return value


def _walk(value: Any, prefix: Path = ()) -> dict[Path, Any]:
    """Every scalar in a decoded JSON-like value by path (bytes and other types left
    out); the value itself at ``()`` when it is a scalar."""
    out: dict[Path, Any] = {}
    stack: list[tuple[Path, Any]] = [(prefix, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            stack.extend(((*path, k), v) for k, v in item.items() if isinstance(k, str))
        elif isinstance(item, list):
            stack.extend(((*path, i), v) for i, v in enumerate(item))
        elif _scalar(item):
            out[path] = item
    return out


def _is_scalar_text(text: str, start: int) -> bool:
    return text[start] not in "[{"


def _load_scalar(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _MISSING


def _scalars(payload: bytes) -> dict[Path, Any] | None:
    """Every scalar value of a JSON text by path; None when it is not (small) JSON."""
    if len(payload) > MAX_JSON_BYTES or payload[:1] not in (b"{", b"["):
        return None
    try:
        text = payload.decode("utf-8")
        out: dict[Path, Any] = {}
        for path, start, end in jsontext.spans(text):
            if _is_scalar_text(text, start):
                out[path] = _load_scalar(text[start:end])
        return out
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _path_matches(pattern: tuple[Segment, ...], path: Path) -> bool:
    if len(pattern) != len(path):
        return False
    for want, step in zip(pattern, path, strict=True):
        if want is WILDCARD:
            continue
        if type(want) is not type(step) or want != step:
            return False
    return True


__all__ = ["UUID", "Correlator"]
