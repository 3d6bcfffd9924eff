"""Upgrading records written by older wstape versions, one format version at a time.

Modelled on mitmproxy's ``io/compat.py``: each on-disk change bumps ``FORMAT_VERSION``
(schema.py) and adds a ``convert_N_M(record) -> record`` step here that rewrites one record
of version N into version M. Readers run the chain on every record as it streams by, so
migration costs no memory (and ``wstape upgrade`` writes the result). A cassette newer
than ``FORMAT_VERSION`` is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wstape.cassettes import v2
from wstape.cassettes.schema import FORMAT_VERSION, SchemaError, record_from_dict
from wstape.core.model import Message

RecordObj = Any
"""A record as msgpack built it: a map (or, from version 2, an array for a message)."""


def convert_1_2(record: RecordObj) -> RecordObj:
    """Version 2 packs a message as an array (:mod:`wstape.cassettes.v2`); every other
    record is the same map. A message map is held to the v1 schema first, so a bad one is
    reported with the field it got wrong (raises SchemaError)."""
    if type(record) is dict and record.get("type") == "message":
        message = record_from_dict(record)
        assert isinstance(message, Message)
        return v2.message_to_array(message)
    return record


def convert_2_3(record: RecordObj) -> RecordObj:
    """Version 3 adds the end record's ``listing`` (:mod:`wstape.cassettes.v2`); every
    record is the same. A version-2 end record has no such field (raises SchemaError)."""
    if type(record) is dict and record.get("type") == "end" and "listing" in record:
        raise SchemaError("unknown field 'listing' in an end record")
    return record


# CONVERTERS[n] turns a version-n record into a version n+1 record.
CONVERTERS: dict[int, Callable[[RecordObj], RecordObj]] = {1: convert_1_2, 2: convert_2_3}


def migrate(record: RecordObj, version: int) -> RecordObj:
    """Bring one record from ``version`` up to ``FORMAT_VERSION``.

    Raises SchemaError for a record the older version's schema refuses, KeyError if a
    step is missing (a bug: every bump needs a converter).
    """
    while version < FORMAT_VERSION:
        record = CONVERTERS[version](record)
        version += 1
    return record
