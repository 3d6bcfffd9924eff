"""The root of every error wstape raises on purpose.

Catch :class:`WstapeError` to handle anything wstape reports as a problem of its input,
its options or its environment; anything else escaping wstape is a bug. Messages are
worded for a library user and name the file, record or option value concerned; the CLI
adds the flag to use, the pytest plugin the marker argument. The tree::

    WstapeError
    ├── ConfigError (also a ValueError)     an option value that cannot work
    │   └── RedactError                     wstape.tools.redact: a redaction rule that cannot work
    ├── CassetteError                       wstape.cassettes: a cassette that cannot be read
    │   ├── TruncatedCassette               it ends inside a record (a recorder was killed)
    │   │   └── UnendedCassette             format 2+: whole records, but it did not end cleanly
    │   ├── DuplicateConnection             a connection id opened twice (concurrent appends)
    │   └── NewerCassette                   written by a newer wstape ("upgrade wstape")
    ├── CassetteWriteError                  wstape.cassettes: a record that cannot be written
    │   ├── CassetteExists                  the output exists; neither append nor overwrite asked
    │   ├── OlderCassette                   appending to an older format version (`wstape upgrade`)
    │   └── UnreadableRecord                a record the reader would refuse (nothing written)
    ├── InterchangeError                    wstape.interchange: a HAR, JSONL or flow file
    ├── TlsSetupError                       wstape.replay.tls: a certificate or key
    ├── RecordError                         wstape.addons.runner: the recorder could not run
    │   ├── RecordUsageError                a recording option that cannot work
    │   └── RecordCassetteError             the cassette cannot be recorded to
    ├── ViaProxyError                       wstape.addons.viaproxy: the device proxy
    └── InternalError                       a wstape bug caught at a boundary

Values a parser *returns* for bad peer input (:class:`wstape.core.frames.StreamFailure`,
:class:`wstape.core.handshake.BadRequest`) and rule violations
(:class:`wstape.core.rules.Violation`) are data, not exceptions.
"""

from __future__ import annotations


class WstapeError(Exception):
    """Something wstape cannot do with the input, options or environment it was given."""


class ConfigError(WstapeError, ValueError):
    """An option value that cannot work (an unknown profile, a negative timeout, ...).

    ``option`` names the field as the library spells it (``appid``, ``max_sockets``), so
    the CLI can name its flag and the pytest plugin its marker argument.
    """

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(f"{option}: {message}" if option else message)
        self.message = message
        self.option = option


class InternalError(WstapeError):
    """A wstape bug, caught where it would otherwise have ended a connection silently.

    A run that hit one never passes: the replay reports it and exits 1.
    """


__all__ = ["ConfigError", "InternalError", "WstapeError"]
