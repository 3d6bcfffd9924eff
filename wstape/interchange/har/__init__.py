"""HAR 1.2 export and import, with Chrome's ``_webSocketMessages`` and wstape's ``_wstape``
extension fields.

- :mod:`~wstape.interchange.har.export`: a cassette as a HAR (:func:`export_har`);
- :mod:`~wstape.interchange.har.importer`: a HAR as cassette records (:func:`read_har`);
- :mod:`~wstape.interchange.har.stream`: the incremental JSON reading of a HAR.

Strict access to its JSON objects is :mod:`wstape.interchange.fields` (shared with the
JSONL import).

The field mapping is documented in docs/interchange.md. Errors: :class:`InterchangeError`,
naming the file, the entry index and the field.
"""

from __future__ import annotations

from wstape.interchange.errors import InterchangeError
from wstape.interchange.fields import EXT, EXT_VERSION
from wstape.interchange.har.export import HarExportResult, export_har, har_message
from wstape.interchange.har.importer import UNKNOWN_END_NOTE, HarImport, read_har

__all__ = [
    "EXT",
    "EXT_VERSION",
    "UNKNOWN_END_NOTE",
    "HarExportResult",
    "HarImport",
    "InterchangeError",
    "export_har",
    "har_message",
    "read_har",
]
