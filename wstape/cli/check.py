"""``wstape check`` and ``wstape rules``: the rule catalogue, offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from wstape.cassettes import CassetteError
from wstape.cli.common import ExitCode, cassette_error, console, open_cassette, warn_strays
from wstape.cli.options import (
    AllowHostOpt,
    AppidOpt,
    IgnoreOpt,
    MaxSocketsOpt,
    PlatformOpt,
    ProfileOpt,
    rule_config,
)
from wstape.core.report import Report, to_json
from wstape.core.rules import CATALOGUE, Platform, Profile, Severity, rules_for
from wstape.tools.check import check_reader

SEVERITY_STYLE = {Severity.ERROR: "red", Severity.WARN: "yellow", Severity.INFO: "cyan"}


def check(
    cassette: Annotated[Path, typer.Argument(help="The cassette to check.", show_default=False)],
    profile: ProfileOpt = Profile.RFC6455,
    appid: AppidOpt = None,
    allow_host: AllowHostOpt = None,
    platform: PlatformOpt = Platform.DEVICE,
    max_sockets: MaxSocketsOpt = 5,
    ignore: IgnoreOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (the replay report shape).")
    ] = False,
) -> None:
    """Run the rules over a recorded cassette, without a server: what the recorded client
    (and server) did that breaks RFC 6455, the browser API or the WeChat socket rules.

    Exit code 1 when an error-severity rule was broken (warnings alone: 0), 3 when the
    cassette cannot be read or is truncated (as replay, check refuses half a recording).
    """
    cfg = rule_config(profile, appid, allow_host, platform, max_sockets, ignore)
    # A truncated cassette is refused, as replay refuses it: a check that passes on half a
    # recording would let CI pass on a recorder that was killed.
    reader = open_cassette(cassette, allow_truncated=False)
    try:
        report, strays = check_reader(reader, cfg)
    except CassetteError as e:
        cassette_error(e)
    warn_strays(cassette, strays)
    if as_json:
        sys.stdout.write(to_json(report) + "\n")
    else:
        print_report(report)
    raise typer.Exit(int(ExitCode.OK if report.passed else ExitCode.VIOLATIONS))


def print_report(report: Report) -> None:
    """The human view of a report: one line per violation, then a verdict line."""
    out = console()
    for v in report.violations:
        conn = "-" if v.conn is None else str(v.conn)
        style = SEVERITY_STYLE[v.severity]
        out.print(
            f"[{style}]{v.severity.value:5}[/{style}] {v.rule:28} conn {conn:>4}  {v.message}",
            markup=True,
            highlight=False,
        )
    errors, warns = report.count(Severity.ERROR), report.count(Severity.WARN)
    verdict = "passed" if report.passed else "FAILED"
    out.print(
        f"{report.cassette}: {verdict} under {report.profile}: {len(report.connections)} "
        f"connections, {errors} errors, {warns} warnings, {report.count(Severity.INFO)} info",
        highlight=False,
    )


def rules(
    profile: Annotated[
        Profile | None,
        typer.Option("--profile", help="Only the rules this profile runs (default: all)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List the rule catalogue: id, side, profiles, severity, source, description.

    Rule IDs are what reports show and what --ignore takes.
    """
    chosen = CATALOGUE if profile is None else tuple(rules_for(Profile(profile.value)))
    if as_json:
        rows = [
            {
                "id": r.id,
                "side": r.side,
                "profiles": [p.value for p in r.profiles],
                "severity": r.severity,
                "source": r.source,
                "description": r.description,
            }
            for r in chosen
        ]
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return
    table = Table(title=f"{len(chosen)} rules", title_justify="left")
    for col in ("id", "side", "from profile", "severity", "source", "description"):
        table.add_column(col, overflow="fold")
    for r in chosen:
        table.add_row(r.id, r.side, r.introduced_in.value, r.severity, r.source, r.description)
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("rules")(rules)
