"""Upgrading records written by older wstape versions, one format version at a time.

Modelled on mitmproxy's ``io/compat.py``: each on-disk change bumps ``FORMAT_VERSION``
(schema.py) and adds a ``convert_N_M(record) -> record`` step here that rewrites one record
map of version N into version M. Readers run the chain on every record as it streams by,
so migration costs no memory. A cassette newer than ``FORMAT_VERSION`` is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wstape.cassettes.schema import FORMAT_VERSION

RecordMap = dict[str, Any]

# CONVERTERS[n] turns a version-n record into a version n+1 record. Version 1 is the first
# format, so there is nothing to convert yet; a future change adds, for example:
#
#     def convert_1_2(record: RecordMap) -> RecordMap:
#         if record.get("type") == "message":
#             record["flags"] = 0
#         return record
#
#     CONVERTERS[1] = convert_1_2
CONVERTERS: dict[int, Callable[[RecordMap], RecordMap]] = {}


def migrate(record: RecordMap, version: int) -> RecordMap:
    """Bring one record map from ``version`` up to ``FORMAT_VERSION``.

    Raises KeyError if a step is missing (a bug: every bump needs a converter).
    """
    while version < FORMAT_VERSION:
        record = CONVERTERS[version](record)
        version += 1
    return record
