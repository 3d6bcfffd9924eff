"""``wstape check`` and ``wstape rules``: the rule catalogue, offline."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from wstape.cassettes import CassetteError
from wstape.cli.common import (
    ExitCode,
    cassette_error,
    check_writable,
    console,
    ends_disagree,
    open_cassette,
    warn_strays,
    write_atomically,
    write_chunks,
)
from wstape.cli.options import (
    AllowHostOpt,
    AppidOpt,
    IgnoreOpt,
    JunitOpt,
    MaxSocketsOpt,
    PlatformOpt,
    ProfileOpt,
    ReportOpt,
    StrictOpt,
    choices,
    protocol_option,
    rule_config,
)
from wstape.cli.output import Column, no_cycle_collection, plural, print_table, progress, safe
from wstape.core.replay.options import protocol_names
from wstape.core.report import Report, iter_json, junit_xml, to_json
from wstape.core.rules import CATALOGUE, Platform, Profile, Severity, rules_for
from wstape.tools.check import check_reader

SEVERITY_STYLE = {Severity.ERROR: "red", Severity.WARN: "yellow", Severity.INFO: "cyan"}


def check(
    cassette: Annotated[
        Path,
        typer.Argument(metavar="CASSETTE", help="The cassette to check.", show_default=False),
    ],
    profile: ProfileOpt = Profile.RFC6455,
    appid: AppidOpt = None,
    allow_host: AllowHostOpt = None,
    platform: PlatformOpt = Platform.DEVICE,
    max_sockets: MaxSocketsOpt = 5,
    ignore: IgnoreOpt = None,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            metavar=choices(protocol_names()),
            help="Name each connection's protocol in the report, recognised as wstape "
            "replay does (auto), or as the codec named (docs/protocols.md); none: plain.",
            autocompletion=protocol_names,
        ),
    ] = "auto",
    strict: StrictOpt = False,
    report_file: ReportOpt = None,
    junit: JunitOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (the replay report shape).")
    ] = False,
) -> None:
    """Run the rules over a recorded cassette, without a server: what the recorded client
    (and server) did that breaks RFC 6455, the browser API or the WeChat socket rules.

    Exit code 1 when an error-severity rule was broken (warnings alone: 0; with --strict,
    1 too), 3 when the cassette cannot be read or is truncated (as replay, check refuses
    half a recording), or when its end records do not match its records (the file was
    changed after it was written).
    """
    cfg = rule_config(profile, appid, allow_host, platform, max_sockets, ignore)
    for path, option in ((report_file, "--report"), (junit, "--junit")):
        if path is not None:
            check_writable(path, option, source=cassette)
    # A truncated cassette is refused, as replay refuses it: a check that passes on half a
    # recording would let CI pass on a recorder that was killed.
    reader = open_cassette(cassette, allow_truncated=False, check_ends=True)
    try:
        with progress([cassette], "check", enabled=not as_json), no_cycle_collection():
            report, strays = check_reader(reader, cfg, protocol=protocol_option(protocol))
    except CassetteError as e:
        cassette_error(e)
    # An end record that does not match the records: the file is not what its writer
    # wrote (records changed, moved or replaced since, or the end record itself), so the
    # verdict would be on a cassette nobody recorded: refused, as a truncated one is.
    ends_disagree(reader, strays.count, fatal=True)
    warn_strays(cassette, strays)
    report = replace(report, strict=strict)
    if report_file is not None:
        write_atomically(report_file, to_json(report) + "\n", "--report", source=cassette)
    if junit is not None:
        write_atomically(junit, junit_xml(report), "--junit", source=cassette)
    if as_json:
        write_chunks(iter_json(report))
        sys.stdout.write("\n")
    else:
        print_report(report)
    raise typer.Exit(int(ExitCode.OK if report.passed else ExitCode.VIOLATIONS))


def print_report(report: Report) -> None:
    """The human view of a report: one line per violation, then a verdict line."""
    out = console()
    plain = out.no_color  # then a line is its text: written as is, without rich per line
    lines: list[str] = []
    for v in report.violations:
        conn = "-" if v.conn is None else str(v.conn)
        rest = f" {v.rule:28} conn {conn:>4}  {safe(v.message)}"
        if plain:
            lines.append(f"{v.severity.value:5}{rest}\n")
            if len(lines) >= 256:
                out.file.write("".join(lines))
                lines.clear()
        else:
            out.print(Text.assemble((f"{v.severity.value:5}", SEVERITY_STYLE[v.severity]), rest))
    out.file.write("".join(lines))
    recognised = [f"conn {c.conn} {c.protocol}" for c in report.connections if c.protocol]
    if recognised:
        out.print(safe("protocols: " + ", ".join(recognised)))
    errors, warns = report.count(Severity.ERROR), report.count(Severity.WARN)
    verdict = "passed" if report.passed else "FAILED"
    out.print(
        f"{safe(report.cassette)}: {verdict} under {report.profile}: "
        f"{plural(report.played, 'connection')}, {plural(errors, 'error')}, "
        f"{plural(warns, 'warning')}, {report.count(Severity.INFO)} info"
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
    columns = (
        Column("id", keep=9, whole=True),
        Column("side", keep=3, whole=True),
        Column("from profile", keep=2),
        Column("severity", keep=4),
        Column("source", keep=1, min_width=12),
        Column("description", keep=5, min_width=24),
    )
    table = [
        (r.id, r.side, r.introduced_in.value, r.severity, r.source, r.description) for r in chosen
    ]
    print_table(console(), plural(len(chosen), "rule"), columns, table)


def register(app: typer.Typer) -> None:
    app.command("check", short_help="Run the rules over a recorded cassette, no server.")(check)
    app.command("rules", short_help="List the rule catalogue (--json for tools).")(rules)
