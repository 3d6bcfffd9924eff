"""``wstape record`` and ``wstape addon-path``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wstape.cassettes import WriteMode
from wstape.cli.common import ExitCode, check_writable, error, fail
from wstape.core.redaction import DEFAULT_HEADERS, DEFAULT_KEYS

_RECORD_HELP = """Record WebSocket traffic through an in-process mitmproxy into a cassette.

Every upgrade, message and close is written and flushed as it happens; Ctrl-C or SIGTERM
stops recording and ends the connections still open (close by: null), so the cassette is
always complete and readable.

Modes (--mode):

\b
  regular (default)  an HTTP proxy: point the client's HTTP proxy at
                     http://HOST:PORT; for wss:// the client must trust
                     mitmproxy's CA, CONFDIR/mitmproxy-ca-cert.pem
  reverse:ws://HOST:PORT, reverse:wss://HOST:PORT
                     in front of one backend: clients connect to
                     ws://127.0.0.1:PORT/path (--host, --port) as if it were the
                     backend (ws/wss mean mitmproxy's http/https); add
                     --ssl-insecure for a self-signed wss backend
  upstream:http://PROXY:PORT
                     a regular proxy that forwards through another proxy
  socks5             a SOCKS5 proxy
  transparent        traffic redirected by the kernel: needs root and
                     iptables rules, see docs/recording.md

Redaction (only the cassette is redacted; the peers get the traffic unchanged): by
default the values of the headers {headers}, of the query parameters and JSON keys
{keys} (case-insensitive, - and _ alike; JSON keys at any depth, also in JSON inside JSON
strings), and credentials among the offered subprotocols are written as <redacted>. A
message that may hold such a key but cannot be parsed is written as <redacted>, with a
note. Binary payloads are only touched by --secret-env/--secret-file. The cassette is
created with mode 0600. See docs/recording.md.

Exit codes: 0 stopped normally; 2 usage error (bad option, existing output without
--append/--overwrite, port in use); 3 the cassette could not be written while recording
(disk full, file removed: recording stops at once rather than let traffic through
unrecorded) or, with --append, the existing cassette is unreadable or newer.
""".format(headers=", ".join(DEFAULT_HEADERS), keys=", ".join(DEFAULT_KEYS))


def record(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Cassette file to write (.msgpack).",
            show_default=False,
        ),
    ],
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            metavar="MODE",
            help="regular | reverse:ws://HOST:PORT | reverse:wss://HOST:PORT | "
            "upstream:URL | socks5 | transparent (see above).",
        ),
    ] = "regular",
    host: Annotated[
        str,
        typer.Option("--host", metavar="HOST", help="Address to listen on ('' for all)."),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port",
            "-p",
            metavar="PORT",
            min=0,
            max=65535,
            help="Port to listen on; 0 picks a free one.",
        ),
    ] = 8080,
    listen_host: Annotated[
        str | None, typer.Option("--listen-host", hidden=True, help="Old name of --host.")
    ] = None,
    listen_port: Annotated[
        int | None,
        typer.Option("--listen-port", hidden=True, min=0, max=65535, help="Old name of --port."),
    ] = None,
    append: Annotated[bool, typer.Option("--append", help="Add to an existing cassette.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing cassette.")
    ] = False,
    confdir: Annotated[
        str | None,
        typer.Option(
            "--confdir",
            metavar="DIR",
            help="mitmproxy configuration directory, where its CA is created and kept "
            "[default: ~/.mitmproxy].",
            show_default=False,
        ),
    ] = None,
    ssl_insecure: Annotated[
        bool,
        typer.Option(
            "--ssl-insecure", help="Do not verify upstream TLS certificates (self-signed backends)."
        ),
    ] = False,
    idle_timeout: Annotated[
        int | None,
        typer.Option(
            "--idle-timeout",
            metavar="SECONDS",
            min=1,
            help="Seconds without traffic before a connection is cut [default: mitmproxy's 600].",
            show_default=False,
        ),
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            metavar="EXPR",
            help="Record only upgrades matching this mitmproxy filter, e.g. '~u /chat'.",
            show_default=False,
        ),
    ] = None,
    redact_header: Annotated[
        list[str] | None,
        typer.Option(
            "--redact-header",
            metavar="NAME",
            help="Also redact this header's value (repeatable; case-insensitive, * matches "
            "any run, e.g. 'X-*-Key').",
            show_default=False,
        ),
    ] = None,
    redact_json_key: Annotated[
        list[str] | None,
        typer.Option(
            "--redact-json-key",
            metavar="KEY",
            help="Also mask this key's value, at any depth, in JSON text messages "
            "(repeatable; case-insensitive, - and _ alike).",
            show_default=False,
        ),
    ] = None,
    redact_query: Annotated[
        list[str] | None,
        typer.Option(
            "--redact-query",
            metavar="NAME",
            help="Also redact this query parameter's value in the URL (repeatable).",
            show_default=False,
        ),
    ] = None,
    no_default_redaction: Annotated[
        bool,
        typer.Option(
            "--no-default-redaction",
            help="Do not redact the common secret names (see above); only what "
            "--redact-* and --secret-* name.",
        ),
    ] = False,
    secret_env: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-env",
            metavar="NAME",
            help="The value of this environment variable must never be written: it is "
            "redacted wherever it appears, binary payloads included (repeatable).",
            show_default=False,
        ),
    ] = None,
    secret_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--secret-file",
            metavar="FILE",
            help="Like --secret-env, for each line of FILE (repeatable).",
            show_default=False,
        ),
    ] = None,
    ready_file: Annotated[
        Path | None,
        typer.Option(
            "--ready-file",
            metavar="FILE",
            help="Write the listening port to this file once the proxy accepts connections.",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Print one line per record written, as `wstape show` does."
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print only warnings and errors (no status, no summary)."
        ),
    ] = False,
) -> None:
    if verbose and quiet:
        fail("--verbose and --quiet cannot be used together")
    if append and overwrite:
        fail("--append and --overwrite cannot be used together")
    write = WriteMode.from_flags(append, overwrite)
    if output.exists() and output.is_dir():
        fail(f"{output} is a directory; give a file name")
    if ready_file is not None:
        check_writable(ready_file, "--ready-file")

    # Imported here: mitmproxy takes a moment to import, and other commands do not need it.
    from wstape.addons import runner

    try:
        mode = runner.normalize_mode(mode)
        if filter_:
            runner.validate_filter(filter_)
    except ValueError as e:
        fail(str(e))
    config = runner.RecordConfig(
        output=output,
        mode=mode,
        listen_host=host if listen_host is None else listen_host,
        listen_port=port if listen_port is None else listen_port,
        write=write,
        confdir=confdir,
        ssl_insecure=ssl_insecure,
        idle_timeout=idle_timeout,
        filter=filter_,
        default_redaction=not no_default_redaction,
        redact_headers=list(redact_header or []),
        redact_json_keys=list(redact_json_key or []),
        redact_query=list(redact_query or []),
        secret_env=list(secret_env or []),
        secret_files=list(secret_file or []),
        ready_file=ready_file,
        verbosity=1 if verbose else -1 if quiet else 0,
    )
    try:
        result = runner.run(config)
    except runner.RecordExists as e:
        fail(f"{e}; use --append to add to it or --overwrite to replace it")
    except runner.RecordUsageError as e:
        fail(str(e), ExitCode.USAGE)
    except runner.RecordCassetteError as e:
        fail(str(e), ExitCode.CASSETTE)
    except KeyboardInterrupt:  # a Ctrl-C before the proxy was listening
        error("interrupted before recording started")
        raise typer.Exit(130) from None
    if result.failure is not None:
        raise typer.Exit(int(ExitCode.CASSETTE))


def addon_path() -> None:
    """Print the path of the wstape addon script for your own mitmproxy.

    \b
      mitmdump -s "$(wstape addon-path)" --set wstape_cassette=chat.msgpack

    mitmproxy must run in the Python environment where wstape is installed. Options:
    wstape_cassette, wstape_append, wstape_overwrite, wstape_filter,
    wstape_default_redaction, wstape_redact_headers, wstape_redact_json_keys,
    wstape_redact_query, wstape_secret_env, wstape_secret_file, wstape_trim_messages (off by default
    inside your own mitmproxy; turn it on for long connections). Give it first among your
    -s scripts, so it records messages before other addons modify them. See
    docs/recording.md.
    """
    from wstape.addons import SCRIPT_PATH

    print(SCRIPT_PATH)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command(
        "record", help=_RECORD_HELP, short_help="Record WebSocket traffic through mitmproxy."
    )(record)
    app.command("addon-path", short_help="Print the addon script's path for your own mitmdump.")(
        addon_path
    )
