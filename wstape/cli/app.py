"""The ``wstape`` typer application: each command group lives in its own module."""

from __future__ import annotations

import os
import sys

import typer

from wstape import __version__
from wstape.cli import check, convert, demo, diff, edit, inspect, record, replay

app = typer.Typer(
    name="wstape",
    help=(
        "Record WebSocket traffic through mitmproxy into msgpack cassettes, replay a "
        "cassette offline as a real ws:// or wss:// server, and check the client against "
        "RFC 6455, the browser WebSocket API and the WeChat mini-program socket API.\n\n"
        "Exit codes: 0 ok, 1 rule violations or replay mismatches (for diff: differences), "
        "2 usage error, 3 cassette unreadable, truncated where that matters, or from a newer "
        "wstape."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"wstape {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """wstape: record, replay and check WebSocket traffic."""


for _module in (demo, record, replay, check, inspect, diff, edit, convert):
    _module.register(app)


def main() -> None:
    try:
        app()
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    status = 0 if code is None else int(code)
    if "mitmproxy" in sys.modules:
        # mitmproxy_rs keeps native threads that can run Python's garbage collector while
        # the interpreter finalizes, which segfaults now and then (seen with mitmproxy 12 after
        # `wstape record` had finished and closed its cassette). Everything is written and
        # closed by now, so leave without finalizing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
