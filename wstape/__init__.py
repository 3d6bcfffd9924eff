"""wstape: record, replay and check WebSocket traffic.

The public API, importable from ``wstape`` directly (each name is loaded on first use, so
``import wstape`` stays cheap)::

    import wstape

    # replay a cassette as a ws:// server and check every client
    options = wstape.ReplayOptions.build(port=0, speed=0, profile="wechat")
    async with wstape.ReplayServer("chat.msgpack", options) as server:
        ...                                   # point the client at server.url + "/chat"
        await server.wait_played(timeout=30)
    report = server.report()                  # report.passed, report.to_dict()

    # the same rules over the recording, without a server
    report = wstape.check_cassette("chat.msgpack", wstape.RuleConfig(profile="wechat"))

    # convert a HAR, a JSONL export or a mitmproxy flow dump into a cassette
    result = wstape.import_file("session.har", "chat.msgpack")   # result.connections, ...

    # read and write cassettes
    header, records = wstape.read_cassette("chat.msgpack")
    for record in wstape.CassetteReader("chat.msgpack"):   # streams, constant memory
        ...

    # record through an in-process mitmproxy (loads mitmproxy)
    result = await wstape.record(wstape.RecordConfig(output=Path("chat.msgpack"),
                                                     mode="reverse:ws://127.0.0.1:9000"))

Every error wstape raises on purpose is a :class:`WstapeError` (the tree is drawn in
:mod:`wstape.core.errors`). docs/api.md describes each name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wstape.core.version import __version__

_EXPORTS: dict[str, str] = {
    # errors
    "WstapeError": "wstape.core.errors",
    "ConfigError": "wstape.core.errors",
    "InternalError": "wstape.core.errors",
    "CassetteError": "wstape.cassettes.errors",
    "TruncatedCassette": "wstape.cassettes.errors",
    "UnendedCassette": "wstape.cassettes.errors",
    "OlderCassette": "wstape.cassettes.errors",
    "NewerCassette": "wstape.cassettes.errors",
    "CassetteWriteError": "wstape.cassettes.errors",
    "CassetteExists": "wstape.cassettes.errors",
    "InterchangeError": "wstape.interchange.errors",
    "TlsSetupError": "wstape.replay.tls",
    "RecordError": "wstape.addons.runner",
    # the data model
    "Header": "wstape.core.model",
    "Open": "wstape.core.model",
    "Message": "wstape.core.model",
    "Close": "wstape.core.model",
    "Note": "wstape.core.model",
    "Side": "wstape.core.model",
    "Opcode": "wstape.core.model",
    # cassettes
    "CassetteReader": "wstape.cassettes.reader",
    "CassetteWriter": "wstape.cassettes.writer",
    "WriteMode": "wstape.cassettes.writer",
    "read_cassette": "wstape.cassettes.reader",
    # rules and reports
    "RuleConfig": "wstape.core.rules",
    "Profile": "wstape.core.rules",
    "Platform": "wstape.core.rules",
    "Severity": "wstape.core.rules",
    "Violation": "wstape.core.rules",
    "Report": "wstape.core.report",
    "check_cassette": "wstape.tools.check",
    # import (HAR, JSONL, mitmproxy flow dumps)
    "import_file": "wstape.interchange.importer",
    "ImportResult": "wstape.interchange.importer",
    # replay
    "ReplayServer": "wstape.replay.server",
    "ReplayOptions": "wstape.replay.server",
    "PlayOptions": "wstape.core.replay.options",
    "TlsOptions": "wstape.replay.tls",
    # recording (these load mitmproxy)
    "record": "wstape.addons.runner",
    "RecordConfig": "wstape.addons.runner",
    "Recording": "wstape.addons.runner",
    "RecordResult": "wstape.addons.runner",
    "start_device_proxy": "wstape.addons.viaproxy",
}

__all__ = [
    "CassetteError",
    "CassetteExists",
    "CassetteReader",
    "CassetteWriteError",
    "CassetteWriter",
    "Close",
    "ConfigError",
    "Header",
    "ImportResult",
    "InterchangeError",
    "InternalError",
    "Message",
    "NewerCassette",
    "Note",
    "OlderCassette",
    "Opcode",
    "Open",
    "Platform",
    "PlayOptions",
    "Profile",
    "RecordConfig",
    "RecordError",
    "RecordResult",
    "Recording",
    "ReplayOptions",
    "ReplayServer",
    "Report",
    "RuleConfig",
    "Severity",
    "Side",
    "TlsOptions",
    "TlsSetupError",
    "TruncatedCassette",
    "UnendedCassette",
    "Violation",
    "WriteMode",
    "WstapeError",
    "__version__",
    "check_cassette",
    "import_file",
    "read_cassette",
    "record",
    "start_device_proxy",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wstape' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from wstape.addons.runner import RecordConfig, RecordError, Recording, RecordResult, record
    from wstape.addons.viaproxy import start_device_proxy
    from wstape.cassettes.errors import (
        CassetteError,
        CassetteExists,
        CassetteWriteError,
        NewerCassette,
        OlderCassette,
        TruncatedCassette,
        UnendedCassette,
    )
    from wstape.cassettes.reader import CassetteReader, read_cassette
    from wstape.cassettes.writer import CassetteWriter, WriteMode
    from wstape.core.errors import ConfigError, InternalError, WstapeError
    from wstape.core.model import Close, Header, Message, Note, Opcode, Open, Side
    from wstape.core.replay.options import PlayOptions
    from wstape.core.report import Report
    from wstape.core.rules import Platform, Profile, RuleConfig, Severity, Violation
    from wstape.interchange.errors import InterchangeError
    from wstape.interchange.importer import ImportResult, import_file
    from wstape.replay.server import ReplayOptions, ReplayServer
    from wstape.replay.tls import TlsOptions
    from wstape.tools.check import check_cassette
