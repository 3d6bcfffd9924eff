"""The ``wstape`` typer application: each command group lives in its own module."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from wstape import __version__
from wstape.cli import output


def _plain_argument_names() -> None:
    """Arguments read as their metavar, ``CASSETTE`` (``[CASSETTE]`` when optional), in the
    usage line and the argument list: typer writes ``{CASSETTE}`` (and 0.29 ``CASSETTE
    <path>``)."""
    from typer.core import TyperArgument

    def usage(self: TyperArgument, ctx: object) -> list[str]:
        name = self.metavar or (self.name or "").upper()
        return [name if self.required else f"[{name}]"]

    setattr(TyperArgument, "get_usage_pieces", usage)  # noqa: B010 - patched on the class
    if hasattr(TyperArgument, "display_type_rich"):
        setattr(TyperArgument, "display_type_rich", lambda self, ctx: None)  # noqa: B010


def _paths_checked_by_commands() -> None:
    """No path argument or option is checked by click before its command runs: typer makes
    every ``Path`` parameter ``readable=True`` unless told otherwise, so an unreadable
    cassette was click's four-line usage error (exit 2). Each command opens its files
    itself and says in one line what is wrong with one (exit 3 for a cassette: README's
    exit codes); a path option that is written is checked by the command
    (:func:`~wstape.cli.common.check_writable`). Patched on the class, so it holds for
    every command, those yet to be written included."""
    from typer.models import TyperPath

    init = TyperPath.__init__

    def no_access_check(self: TyperPath, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.readable = False

    setattr(TyperPath, "__init__", no_access_check)  # noqa: B010 - patched on the class


def _one_line_usage_errors() -> None:
    """A usage error click finds (a missing argument, an unknown option, a bad value) is
    one line, as every error of wstape's own is: ``wstape: error: Missing argument
    'CASSETTE'. (see wstape ls --help)`` instead of click's usage, hint, blank line and
    message. Exit code 2 as before. Patched on the class, for every command."""
    import typer._click.exceptions as vendored

    classes: set[type[Any]] = {vendored.UsageError}
    try:
        import click.exceptions
    except ImportError:  # pragma: no cover - typer vendors click from 0.28 on
        pass
    else:
        classes.add(click.exceptions.UsageError)

    def show(self: Any, file: Any = None) -> None:
        ctx = self.ctx
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        print(f"wstape: error: {self.format_message()}{where}", file=sys.stderr)

    for cls in classes:
        setattr(cls, "show", show)  # noqa: B010 - patched on the class


_plain_argument_names()
_paths_checked_by_commands()
_one_line_usage_errors()
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "record": "record",
    "addon-path": "record",
    "replay": "replay",
    "check": "check",
    "rules": "check",
    "ls": "inspect",
    "show": "inspect",
    "stats": "inspect",
    "diff": "diff",
    "redact": "edit",
    "cut": "edit",
    "repair": "edit",
    "upgrade": "edit",
    "export": "convert",
    "import": "convert",
    "view": "convert",
}
"""Each command and the module that defines it, in the order ``--help`` lists them."""


def build_app(command: str | None = None) -> typer.Typer:
    """The typer application: every command, or only the module of ``command`` (what
    :func:`main` runs, so ``wstape ls`` does not import replay, recording or HAR code)."""
    import importlib

    app = typer.Typer(
        name="wstape",
        help=(
            "Record WebSocket traffic through mitmproxy into msgpack cassettes, replay a "
            "cassette offline as a real ws:// or wss:// server, and check the client "
            "against RFC 6455, the browser WebSocket API and the WeChat mini-program socket "
            "API.\n\n"
            "Exit codes: 0 ok, 1 rule violations or replay mismatches (for diff: "
            "differences), 2 usage error, 3 cassette unreadable, truncated where that "
            "matters, from a newer wstape, or (check) with end records that do not match "
            "its records."
        ),
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
        add_completion=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode=None,
    )
    app.callback()(_main)
    wanted = COMMANDS.values() if command not in COMMANDS else [COMMANDS[command]]
    for name in dict.fromkeys(wanted):
        importlib.import_module(f"wstape.cli.{name}").register(app)
    return app


def _version(value: bool) -> None:
    if value:
        print(f"wstape {__version__}")
        raise typer.Exit()


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


def __getattr__(name: str) -> typer.Typer:
    # ``from wstape.cli.app import app``: the whole application (tests, typer's CLI runner).
    if name == "app":
        return build_app()
    raise AttributeError(name)


def _command(argv: list[str]) -> str | None:
    """The command ``argv`` runs (the first word after the global options), if any."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def main() -> None:
    output.escape_unencodable()  # (a non-UTF-8 stdout: escapes, not a traceback)
    # --no-color is a global option that every command also takes, wherever it stands.
    if "--no-color" in sys.argv[2:]:
        sys.argv = [sys.argv[0], *(a for a in sys.argv[1:] if a != "--no-color")]
        output.no_color()
    try:
        build_app(_command(sys.argv[1:]))()
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
