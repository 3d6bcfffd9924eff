"""Small shared pieces of the rule checks: header access, previews, UTF-8 diagnosis."""

from __future__ import annotations

from wstape.core.model import Headers, decode_header_value
from wstape.core.rules.catalogue import RuleConfig, Severity, Violation, violation


class Report:
    """Collects the violations of one check call, dropping inactive rules."""

    def __init__(self, cfg: RuleConfig, conn: int | None, t: float | None = None) -> None:
        self.cfg = cfg
        self.conn = conn
        self.t = t
        self.items: list[Violation] = []

    def add(
        self,
        rule_id: str,
        severity: Severity,
        message: str,
        expected: object = None,
        actual: object = None,
    ) -> None:
        found = violation(rule_id, severity, self.cfg, self.conn, message, expected, actual, self.t)
        if found is not None:
            self.items.append(found)


def header_values(headers: Headers, name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive), in order, decoded and stripped.

    ``Open.request_header`` returns only the first; a repeated header is exactly what a
    handshake check must see (RFC 7230 §3.2.2: repeats are one comma-joined list).
    """
    wanted = name.lower().encode("ascii")
    n = len(wanted)
    # (the length first: lower-casing every name for every lookup is most of the cost)
    return [
        decode_header_value(v).strip() for k, v in headers if len(k) == n and k.lower() == wanted
    ]


def header_items(headers: Headers, name: str) -> list[str]:
    """All comma-separated items of header ``name`` over every occurrence, empties kept."""
    return [item.strip() for value in header_values(headers, name) for item in value.split(",")]


def header_tokens(headers: Headers, name: str) -> set[str]:
    """The non-empty items of header ``name``, lower-cased (for case-insensitive tokens)."""
    return {item.lower() for item in header_items(headers, name) if item}


def preview(data: bytes | str, limit: int = 60) -> str:
    """A short one-line rendering of a payload: quoted text if UTF-8, else hex."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            shown = data[:limit].hex(" ")
            more = f" ... ({len(data)} bytes)" if len(data) > limit else ""
            return f"0x[{shown}]{more}"
    else:
        text = data
    if len(text) > limit:
        return f"{text[:limit]!r}... ({len(text)} characters)"
    return repr(text)


def clipped(text: str, limit: int = 60) -> str:
    """``text`` as it is, or its first ``limit`` characters and how long it was (a field
    of a hostile cassette can be long; a report line stays short)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def utf8_error(data: bytes) -> str | None:
    """None if ``data`` is valid UTF-8, else a short explanation naming the byte offset.

    Python's strict decoder already rejects what RFC 3629 forbids (overlong forms,
    surrogates U+D800-DFFF, code points above U+10FFFF), which is what §8.1 requires.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.reason == "unexpected end of data":
            return f"cut inside a character at byte {e.start} of {len(data)}"
        return f"{e.reason} at byte {e.start} of {len(data)}"
    return None
