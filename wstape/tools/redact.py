"""``wstape redact``: rewrite a cassette without its secrets, streaming, counting what was
replaced.

The engine is :mod:`wstape.core.redaction`, the same the recorder runs, so a cassette
redacted afterwards looks like one recorded with the same options: the default secret
names (headers, query parameters, JSON keys, subprotocol tokens) unless switched off,
the names and patterns given, and the values of ``--secret-env`` / ``--secret-file``
wherever they appear, binary payloads included. Each record that held a secret value or
had its payload withheld is followed by a note saying so.

This module also reads those secret values (:func:`load_secrets`), for the recorder too:
the core engine does no I/O.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from wstape.cassettes.reader import CassetteReader
from wstape.core.errors import ConfigError
from wstape.core.redaction import MARKER, MIN_SECRET, Counts, Policy, Redactor
from wstape.tools.edit import copy_records

REDACTED = MARKER
"""What every redacted value becomes (``<redacted>``)."""


class RedactError(ConfigError):
    """A redaction rule or secret source that cannot work (``option`` names which)."""


def load_secrets(
    env: Iterable[str] = (),
    files: Iterable[str | Path] = (),
    *,
    environ: Mapping[str, str] | None = None,
) -> tuple[bytes, ...]:
    """The values of the environment variables ``env`` and the lines of ``files``.

    A file holds one value per line; line endings are stripped (nothing else) and empty
    lines skipped. Raises RedactError (``option`` ``secret_env`` or ``secret_file``) for a
    variable that is unset or empty, an unreadable or empty file, or a value shorter than
    :data:`~wstape.core.redaction.MIN_SECRET` bytes. Messages never show a value.
    """
    source = os.environ if environ is None else environ
    values: list[bytes] = []
    for name in env:
        if not name:
            raise RedactError("empty variable name", option="secret_env")
        if name not in source:
            raise RedactError(f"{name} is not set", option="secret_env")
        value = os.fsencode(source[name])
        if not value:
            raise RedactError(f"{name} is empty", option="secret_env")
        if len(value) < MIN_SECRET:
            raise RedactError(
                f"{name} is shorter than {MIN_SECRET} bytes: too short to redact safely",
                option="secret_env",
            )
        values.append(value)
    for path in files:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise RedactError(
                f"{path}: cannot read: {e.strerror or e}", option="secret_file"
            ) from None
        found = 0
        for number, line in enumerate(data.split(b"\n"), 1):
            line = line.removesuffix(b"\r")
            if not line:
                continue
            if len(line) < MIN_SECRET:
                raise RedactError(
                    f"{path} line {number} is shorter than {MIN_SECRET} bytes: too short "
                    "to redact safely",
                    option="secret_file",
                )
            values.append(line)
            found += 1
        if not found:
            raise RedactError(f"{path} holds no value", option="secret_file")
    return tuple(values)


def build_rules(
    *,
    defaults: bool = True,
    headers: Iterable[str] = (),
    json_keys: Iterable[str] = (),
    patterns: Iterable[str] = (),
    query: Iterable[str] = (),
    secret_env: Iterable[str] = (),
    secret_files: Iterable[str | Path] = (),
) -> Policy:
    """The policy ``wstape redact`` applies; RedactError (``option`` set) for a bad rule."""
    secrets = load_secrets(env=secret_env, files=secret_files)
    try:
        return Policy.build(
            defaults=defaults,
            headers=headers,
            json_keys=json_keys,
            query=query,
            patterns=patterns,
            secrets=secrets,
        )
    except RedactError:
        raise
    except ConfigError as e:
        raise RedactError(e.message, option=e.option) from None


def redact_cassette(reader: CassetteReader, output: str | Path, rules: Policy) -> Counts:
    """Write a redacted copy of the cassette to ``output`` (which may be its own path).

    The copy is readable by its owner only when the input was. Raises CassetteError
    (including TruncatedCassette) and CassetteWriteError; the output is only replaced
    once the whole cassette was written.
    """
    redactor = Redactor(rules)
    copy_records(redactor.records(reader), output, reader.header, reader.path)
    return redactor.counts


__all__ = [
    "REDACTED",
    "RedactError",
    "build_rules",
    "load_secrets",
    "redact_cassette",
]
