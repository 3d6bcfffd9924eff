"""Options shared by ``wstape check`` and ``wstape replay``: which rules, how strict."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from wstape.cli.common import fail
from wstape.core.rules import Profile, RuleConfig, unknown_rule_ids
from wstape.core.rules.handshake import WX_APPID


class ProfileChoice(StrEnum):
    RFC6455 = "rfc6455"
    BROWSER = "browser"
    WECHAT = "wechat"


class PlatformChoice(StrEnum):
    DEVICE = "device"
    DEVTOOLS = "devtools"


ProfileOpt = Annotated[
    ProfileChoice,
    typer.Option(
        "--profile",
        help="Rules to check: rfc6455 (the protocol), browser (+ the WHATWG WebSocket API), "
        "wechat (+ wx.connectSocket / SocketTask rules). Each includes the one before.",
    ),
]
AppidOpt = Annotated[
    str | None,
    typer.Option("--appid", help="wechat: the appid the Referer must name (wx + 16 hex)."),
]
AllowHostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host",
        help="wechat: a name of the mini-program's socket legal domain list (repeatable). "
        "Exact match, any port.",
    ),
]
PlatformOpt = Annotated[
    PlatformChoice,
    typer.Option(
        "--platform",
        help="wechat: device (phone WeChat: a refused close code is a warning) or devtools "
        "(WeChat DevTools / PC WeChat: an error, as in Chromium).",
    ),
]
MaxSocketsOpt = Annotated[
    int, typer.Option("--max-sockets", min=1, help="wechat: concurrent sockets allowed.")
]
IgnoreOpt = Annotated[
    list[str] | None,
    typer.Option("--ignore", help="A rule ID not to report (repeatable). See `wstape rules`."),
]


def rule_config(
    profile: ProfileChoice,
    appid: str | None,
    allow_host: list[str] | None,
    platform: PlatformChoice,
    max_sockets: int,
    ignore: list[str] | None,
) -> RuleConfig:
    """Build the RuleConfig, or exit 2 naming an unknown rule ID."""
    if appid is not None and not WX_APPID.match(appid):
        fail(f"--appid {appid!r} is not an appid (wx and 16 hex digits, e.g. wx0123456789abcdef)")
    ignored = [i.upper() for i in ignore or []]
    unknown = unknown_rule_ids(ignored)
    if unknown:
        fail(f"--ignore: unknown rule ID {', '.join(unknown)} (see `wstape rules`)")
    try:
        return RuleConfig(
            profile=Profile(profile.value),
            appid=appid,
            allow_hosts=tuple(allow_host or ()),
            max_sockets=max_sockets,
            platform=platform.value,
            ignore=frozenset(ignored),
        )
    except ValueError as e:
        fail(str(e))
