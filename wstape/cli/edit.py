"""Editing a cassette into a new one: ``redact``, ``cut``, ``repair``, ``upgrade``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from wstape.cassettes import FORMAT_VERSION, CassetteError, CassetteWriteError
from wstape.cli.common import (
    CassetteArg,
    ExitCode,
    JsonOpt,
    OutputOpt,
    OverwriteOpt,
    cassette_error,
    fail,
    open_cassette,
    output_target,
    print_json,
    warn_strays,
    write_error,
)
from wstape.cli.output import plural, progress
from wstape.tools.edit import (
    NothingKept,
    RepairResult,
    Selection,
    cut_cassette,
    repair_cassette,
    same_file,
    upgrade_cassette,
)
from wstape.tools.redact import RedactError, build_rules, redact_cassette

_REDACT_FLAGS = {
    "header": "--header",
    "json_key": "--json-key",
    "query": "--query",
    "pattern": "--pattern",
    "secret_env": "--secret-env",
    "secret_file": "--secret-file",
    "secret": "--secret-env/--secret-file",
}


def redact(
    cassette: CassetteArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="The redacted cassette to write.",
            show_default=False,
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            metavar="NAME",
            help="Also replace this header's values (repeatable; * matches any run).",
        ),
    ] = None,
    json_key: Annotated[
        list[str] | None,
        typer.Option(
            "--json-key",
            metavar="KEY",
            help="Also replace this key's values at any depth in JSON text messages "
            "(case-insensitive, - and _ alike, repeatable).",
        ),
    ] = None,
    pattern: Annotated[
        list[str] | None,
        typer.Option(
            "--pattern",
            metavar="REGEX",
            help="Replace matches of this regular expression in text messages, the request "
            "target, header values, subprotocols, close reasons, notes (repeatable).",
        ),
    ] = None,
    query: Annotated[
        list[str] | None,
        typer.Option(
            "--query",
            metavar="NAME",
            help="Also replace this query parameter's value (repeatable).",
        ),
    ] = None,
    no_default_redaction: Annotated[
        bool,
        typer.Option(
            "--no-default-redaction",
            help="Do not replace the common secret names; only what the other options name.",
        ),
    ] = False,
    secret_env: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-env",
            metavar="NAME",
            help="Replace the value of this environment variable wherever it appears, "
            "binary payloads included (repeatable).",
        ),
    ] = None,
    secret_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--secret-file",
            metavar="FILE",
            help="Like --secret-env, for each line of FILE (repeatable).",
        ),
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="Rewrite the input cassette itself.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Rewrite a cassette with secrets replaced by <redacted>, and report how many values
    were replaced.

    The same engine and defaults as wstape record: the values of the common secret
    headers, query parameters and JSON keys (see wstape record --help) and credentials
    among the offered subprotocols, unless --no-default-redaction; header values by name;
    JSON values by key in text messages (only the value changes, the rest of the message
    keeps its bytes; a message that may hold such a key but cannot be parsed becomes
    <redacted>, with a note); regular expression matches in any text; and --secret-env /
    --secret-file values everywhere, binary payloads included (overwritten in place with
    as many bytes). Refuses to overwrite its input unless --in-place.

    --json prints {"input", "output", "replaced": {"headers", "subprotocols", "query",
    "json_keys", "patterns", "secrets", "withheld"}, "total", "records",
    "changed_records"}.
    """
    try:
        rules = build_rules(
            defaults=not no_default_redaction,
            headers=header or (),
            json_keys=json_key or (),
            patterns=pattern or (),
            query=query or (),
            secret_env=secret_env or (),
            secret_files=secret_file or (),
        )
    except RedactError as e:
        flag = _REDACT_FLAGS.get(e.option or "")
        fail(f"{flag}: {e.message}" if flag else e.message, ExitCode.USAGE)
    if rules.empty:
        fail(
            "nothing to redact: --no-default-redaction without --header, --json-key, "
            "--pattern, --query, --secret-env or --secret-file"
        )
    if in_place:
        if output is not None and not same_file(cassette, output):
            fail("--in-place rewrites the input; do not give a different --output")
        output = cassette
    elif output is None:
        fail("give --output/-o for the redacted copy, or --in-place")
    else:
        output_target(output, source=cassette, overwrite=overwrite, text=False)
    reader = open_cassette(cassette, allow_truncated=False)
    try:
        with progress([cassette], "redact", enabled=not as_json):
            counts = redact_cassette(reader, output, rules)
    except CassetteError as e:
        cassette_error(e)
    except (CassetteWriteError, OSError) as e:
        write_error(e, output)
    if as_json:
        print_json({"input": str(cassette), "output": str(output), **counts.to_json()})
        return
    where = ", ".join(f"{k} {v}" for k, v in sorted(counts.by_location.items()))
    print(
        f"redacted {plural(counts.total, 'value')} in {counts.changed_records} of "
        f"{plural(counts.records, 'record')} → {output} (headers {counts.headers}, "
        f"subprotocols {counts.subprotocols}, "
        f"query {counts.query}, JSON keys {counts.json_keys}, "
        f"patterns {counts.patterns}{' in ' + where if where else ''}, "
        f"secret values {counts.secrets}, payloads withheld {counts.withheld})"
    )


# -- cut and repair --------------------------------------------------------------------


def cut(
    cassette: CassetteArg,
    output: OutputOpt,
    conn: Annotated[
        list[int] | None,
        typer.Option("--conn", "-c", metavar="ID", help="Keep this connection id (repeatable)."),
    ] = None,
    path: Annotated[
        list[str] | None,
        typer.Option(
            "--path",
            metavar="PATTERN",
            help="Keep connections to this path (repeatable; * matches anything; with "
            "?query, path and query are compared).",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a cassette with only some connections: the header, their records and their
    notes, and the notes about the whole cassette.

    Several --conn (or several --path) keep any of them; --conn together with --path keeps
    the connections that match both. Connection ids are kept as they are. When no
    connection matches, nothing is written (exit 2).

    --json prints {"input", "output", "connections": [ids], "records", "messages"}.
    """
    if not conn and not path:
        fail("nothing to keep: give --conn and/or --path")
    output_target(output, source=cassette, overwrite=overwrite, text=False)
    reader = open_cassette(cassette, allow_truncated=False)
    try:
        with progress([cassette], "cut", enabled=not as_json):
            result = cut_cassette(reader, output, Selection(conn or (), path or ()))
    except CassetteError as e:
        cassette_error(e)
    except (CassetteWriteError, OSError) as e:
        write_error(e, output)
    except NothingKept:
        wanted = [*(f"--conn {c}" for c in conn or ()), *(f"--path {p}" for p in path or ())]
        fail(f"{cassette}: no connection matches {' '.join(wanted)}; nothing written")
    warn_strays(cassette, result.strays)
    if as_json:
        print_json(
            {
                "input": str(cassette),
                "output": str(output),
                "connections": result.connections,
                "records": result.records,
                "messages": result.messages,
            }
        )
        return
    ids = ", ".join(str(c) for c in result.connections) or "none"
    print(
        f"kept {plural(len(result.connections), 'connection')} ({ids}), "
        f"{plural(result.records, 'record')}, {plural(result.messages, 'message')} → {output}"
    )


def _repair_json(source: Path, output: Path, r: RepairResult) -> dict[str, Any]:
    return {
        "input": str(source),
        "output": str(output),
        "records": r.records,
        "truncated_at": r.truncated_at,
        "dropped_bytes": r.dropped_bytes,
        "ended_cleanly": r.incomplete is None and r.truncated_at is None,
        "closed": r.closed,
        "renumbered": [{"conn": old, "new": new, "record": at} for old, new, at in r.renumbered],
        "dropped_records": r.strays.count,
    }


def repair(
    cassette: CassetteArg,
    output: OutputOpt,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the complete part of a truncated cassette (a recorder killed mid-write, or
    a cassette that did not end cleanly), or of one that two recorders appended to at once.

    Every complete record is kept; the incomplete tail is dropped. The output is written
    in the current format version and ends with an end record. Connections left open
    get the close a stopped recorder writes (by nobody, no code, not on the wire) and a
    note. A connection id opened a second time gets a fresh id (above every id in the
    file), and so do the records up to that connection's close. Records that belong to no
    open connection (ids never opened, after a close or a refusal) are dropped. Other
    corruption is not repaired (exit 3).

    --json prints {"input", "output", "records", "truncated_at", "dropped_bytes",
    "ended_cleanly", "closed", "renumbered": [{"conn", "new", "record"}], "dropped_records"}
    (a cassette that did not end cleanly has "truncated_at" at its end, "dropped_bytes" 0).
    """
    output_target(output, source=cassette, overwrite=overwrite, text=False)
    reader = open_cassette(cassette, allow_truncated=True, allow_reused_ids=True)
    try:
        with progress([cassette], "repair", enabled=not as_json):
            result = repair_cassette(reader, output)
    except CassetteError as e:
        cassette_error(e)
    except (CassetteWriteError, OSError) as e:
        write_error(e, output)
    if as_json:
        print_json(_repair_json(cassette, output, result))
        return
    if result.truncated_at is None:
        what = "the cassette was not truncated"
    elif result.incomplete is not None:
        what = "the cassette had not ended cleanly (every record was whole): ended it"
    else:
        what = f"dropped {result.dropped_bytes} bytes from byte {result.truncated_at}"
    closed = (
        f"; closed {plural(len(result.closed), 'connection')} left open" if result.closed else ""
    )
    renumbered = "".join(
        f"; connection {old} opened again at record {at}: renumbered {new}"
        for old, new, at in result.renumbered
    )
    dropped = (
        f"; dropped {plural(result.strays.count, 'record')} of no open connection"
        if result.strays.count
        else ""
    )
    print(
        f"kept {plural(result.records, 'record')}, {what}{closed}{renumbered}{dropped} → {output}"
    )


def upgrade(
    cassette: CassetteArg,
    output: OutputOpt,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Rewrite a cassette of an older format version (1 or 2) in the current one (3).

    Every record is kept as it is. From version 1 the output is smaller (messages lose
    their map keys) and ends with an end record, so a later cut at a record boundary is
    detected; from either, the end record lists the connections, so `wstape ls` reads
    them from the end of the file. Any wstape reads versions 1 and 2 as they are; upgrade
    to append to a version-1 file (`record --append` refuses it) or to get the smaller,
    checkable file. A truncated cassette is refused
    (`wstape repair` keeps its complete part, in the current version). A cassette already
    in the current version is rewritten as it is.

    --json prints {"input", "output", "from_version", "version", "records"}.
    """
    output_target(output, source=cassette, overwrite=overwrite, text=False)
    reader = open_cassette(cassette, allow_truncated=False)
    try:
        with progress([cassette], "upgrade", enabled=not as_json):
            records = upgrade_cassette(reader, output)
    except CassetteError as e:
        cassette_error(e)
    except (CassetteWriteError, OSError) as e:
        write_error(e, output)
    old = reader.header.version
    if as_json:
        print_json(
            {
                "input": str(cassette),
                "output": str(output),
                "from_version": old,
                "version": FORMAT_VERSION,
                "records": records,
            }
        )
        return
    what = (
        f"format version {old} → {FORMAT_VERSION}"
        if old != FORMAT_VERSION
        else f"already format version {FORMAT_VERSION}, rewritten"
    )
    print(f"{what}: {plural(records, 'record')} → {output}")


# -- import ----------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    app.command("redact", short_help="Rewrite a cassette with secrets replaced by <redacted>.")(
        redact
    )
    app.command("cut", short_help="Write a cassette with only some connections.")(cut)
    app.command("repair", short_help="Write the complete part of a truncated cassette.")(repair)
    app.command("upgrade", short_help="Rewrite an old-format cassette in the current format.")(
        upgrade
    )
