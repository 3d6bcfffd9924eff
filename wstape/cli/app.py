"""The ``wstape`` typer application: each command group lives in its own module."""

from __future__ import annotations

import os
import sys

import typer

from wstape import __version__
from wstape.cli import check, convert, demo, diff, edit, inspect, output, record, replay


def _plain_argument_names() -> None:
    """Arguments read as their metavar, ``CASSETTE`` (``[CASSETTE]`` when optional), in the
    usage line and the argument list: typer 0.29 writes ``{CASSETTE}`` and ``CASSETTE
    <path>``. Left alone on a typer without these methods."""
    from typer.core import TyperArgument

    if hasattr(TyperArgument, "_usage_display_name"):

        def usage(self: TyperArgument) -> str:
            name = self.metavar or self.name or ""
            return name if self.required else f"[{name}]"

        TyperArgument._usage_display_name = usage  # type: ignore[method-assign]
    if hasattr(TyperArgument, "display_type_rich"):
        TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]


_plain_argument_names()
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
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
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
    no_color: bool = typer.Option(
        False,
        "--no-color",
        help="Plain output without colour (also NO_COLOR=1; piped output is always plain). "
        "Taken after any command too.",
    ),
) -> None:
    """wstape: record, replay and check WebSocket traffic."""
    output.no_color(no_color)


for _module in (demo, record, replay, check, inspect, diff, edit, convert):
    _module.register(app)


def main() -> None:
    # --no-color is a global option that every command also takes, wherever it stands.
    if "--no-color" in sys.argv[2:]:
        sys.argv = [sys.argv[0], *(a for a in sys.argv[1:] if a != "--no-color")]
        output.no_color()
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
