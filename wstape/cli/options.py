"""Options shared by ``wstape check`` and ``wstape replay``: which rules, how strict.

The choices come from the library's own enums and registries (profiles, platforms,
matchers), and every value is validated by the library when the option object is built:
the CLI only turns a ConfigError into one line and exit 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from wstape.cli.common import config_error, fail
from wstape.core.errors import ConfigError
from wstape.core.replay.options import protocol_names
from wstape.core.rules import Platform, Profile, RuleConfig


def choices(names: Sequence[str]) -> str:
    """A ``--help`` metavar listing a registry's names: ``[exact|json|type|any]``."""
    return "[" + "|".join(names) + "]"


ProfileOpt = Annotated[
    Profile,
    typer.Option(
        "--profile",
        help="Rules to check: rfc6455 (the protocol), browser (+ the WHATWG WebSocket API), "
        "wechat (+ wx.connectSocket / SocketTask rules). Each includes the one before.",
    ),
]
AppidOpt = Annotated[
    str | None,
    typer.Option(
        "--appid", metavar="APPID", help="wechat: the appid the Referer must name (wx + 16 hex)."
    ),
]
AllowHostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host",
        metavar="HOST",
        help="wechat: a name of the mini-program's socket legal domain list (repeatable). "
        "Exact match, any port.",
    ),
]
PlatformOpt = Annotated[
    Platform,
    typer.Option(
        "--platform",
        help="wechat: device (phone WeChat: a refused close code is a warning) or devtools "
        "(WeChat DevTools / PC WeChat: an error, as in Chromium).",
    ),
]
MaxSocketsOpt = Annotated[
    int,
    typer.Option("--max-sockets", metavar="N", help="wechat: concurrent sockets allowed."),
]
IgnoreOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore", metavar="RULE", help="A rule ID not to report (repeatable). See `wstape rules`."
    ),
]


StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Warnings fail the run too (exit 1): a changed close code, a missing closing "
        'handshake, ... (the JSON report says "strict": true).',
    ),
]
ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", metavar="FILE", help="Write the JSON report here (replaced)."),
]
JunitOpt = Annotated[
    Path | None,
    typer.Option("--junit", metavar="FILE", help="Write a JUnit XML report here (replaced)."),
]
ProtocolOpt = Annotated[
    str,
    typer.Option(
        "--protocol",
        metavar=choices(protocol_names()),
        help="Show messages through the protocol codec: auto (recognised per connection, as "
        "wstape replay does), none (plain), or a name (docs/protocols.md).",
        autocompletion=protocol_names,
    ),
]


def protocol_option(value: str) -> str:
    """``--protocol``'s value, or exit 2 naming the choices."""
    if value not in protocol_names():
        fail(f"--protocol: unknown protocol {value!r}; choose one of {', '.join(protocol_names())}")
    return value


def rule_config(
    profile: Profile,
    appid: str | None,
    allow_host: list[str] | None,
    platform: Platform,
    max_sockets: int,
    ignore: list[str] | None,
) -> RuleConfig:
    """Build the RuleConfig, or exit 2 with the library's one-line reason."""
    try:
        return RuleConfig(
            profile=profile,
            appid=appid,
            allow_hosts=tuple(allow_host or ()),
            max_sockets=max_sockets,
            platform=platform.value,
            ignore=frozenset(ignore or ()),
        )
    except ConfigError as e:
        config_error(e)
