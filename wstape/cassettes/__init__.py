"""The on-disk cassette format: a stream of msgpack records, read and written one at a time."""

from wstape.cassettes.errors import (
    CassetteBusy,
    CassetteError,
    CassetteExists,
    CassetteWriteError,
    DuplicateConnection,
    NewerCassette,
    OlderCassette,
    TruncatedCassette,
    UnendedAppend,
    UnendedCassette,
    UnreadableRecord,
)
from wstape.cassettes.reader import CassetteReader, read_cassette
from wstape.cassettes.schema import FORMAT_VERSION
from wstape.cassettes.writer import CassetteWriter, WriteMode

__all__ = [
    "FORMAT_VERSION",
    "CassetteBusy",
    "CassetteError",
    "CassetteExists",
    "CassetteReader",
    "CassetteWriteError",
    "CassetteWriter",
    "DuplicateConnection",
    "NewerCassette",
    "OlderCassette",
    "TruncatedCassette",
    "UnendedAppend",
    "UnendedCassette",
    "UnreadableRecord",
    "WriteMode",
    "read_cassette",
]
