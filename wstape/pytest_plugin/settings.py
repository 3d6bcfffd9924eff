"""What ``@pytest.mark.wstape(...)`` and the ``--wstape-*`` options ask for one test.

The marker takes the plugin's own arguments (the cassette, the record mode, the upstream
and ``ssl_insecure``, ``allow_unplayed``, ``tls``/``hostnames``, the redaction of a recording run:
``redact_headers``, ``redact_json_keys``, ``redact_query``, ``default_redaction``,
``secret_env``, ``secret_files``) and, under the same names as the library,
every replay option (:meth:`wstape.replay.ReplayOptions.build`): the library validates
them, the plugin only words the error for the marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wstape.core.errors import ConfigError, WstapeError
from wstape.core.options import field_names
from wstape.core.redaction import Policy
from wstape.core.replay.options import PlayOptions
from wstape.core.rules import RuleConfig
from wstape.replay.server import ReplayOptions
from wstape.tools.redact import load_secrets

RECORD_MODES = ("none", "once", "new_episodes", "all")
"""As in VCR.py: never record, record a missing cassette, append a new session, re-record."""

REDACTION_KWARGS = frozenset(
    {
        "default_redaction",
        "redact_headers",
        "redact_json_keys",
        "redact_query",
        "secret_env",
        "secret_files",
    }
)
"""What a recording run redacts (:class:`Redaction`); a replay run ignores them."""
PLUGIN_KWARGS = (
    frozenset(
        {
            "cassette",
            "record_mode",
            "upstream",
            "ssl_insecure",
            "allow_unplayed",
            "tls",
            "hostnames",
        }
    )
    | REDACTION_KWARGS
)
ALIASES = {
    "heartbeat": "heartbeats",
    "ignore_query_param": "ignore_query_params",
    "fault": "faults",
}
"""Singular marker names, as the CLI flags read (``heartbeat=`` for ``--heartbeat``)."""
MARKER_KWARGS = (
    PLUGIN_KWARGS | field_names(RuleConfig) | field_names(PlayOptions) | frozenset(ALIASES)
)
"""Every argument ``@pytest.mark.wstape`` takes."""

DEFAULT_SPEED = 0.0
"""Tests replay without the recorded delays unless the marker says ``speed=``."""


class WstapeUsageError(WstapeError):
    """The marker or the command line asks for something impossible (one line of text)."""


@dataclass(frozen=True)
class Redaction:
    """The marker's redaction arguments, as :class:`~wstape.addons.runner.RecordConfig`
    takes them (on top of the defaults unless ``default_redaction=False``)."""

    default_redaction: bool = True
    redact_headers: tuple[str, ...] = ()
    redact_json_keys: tuple[str, ...] = ()
    redact_query: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()
    secret_files: tuple[Path, ...] = ()


_POLICY_ARGS = {
    "header": "redact_headers",
    "json_key": "redact_json_keys",
    "query": "redact_query",
    "secret_env": "secret_env",
    "secret_file": "secret_files",
    "secret": "secret_env/secret_files",
}


def _redaction(kwargs: dict[str, Any], base: Path, recording: bool) -> Redaction:
    """Pop and check the redaction arguments; secret sources only when recording (a
    replay run need not have the secrets)."""
    default = kwargs.pop("default_redaction", True)
    if not isinstance(default, bool):
        raise WstapeUsageError(f"default_redaction= takes True or False, not {default!r}")
    lists = {
        name: _seq(name, kwargs.pop(name)) if name in kwargs else ()
        for name in ("redact_headers", "redact_json_keys", "redact_query", "secret_env")
    }
    files = _seq("secret_files", kwargs.pop("secret_files")) if "secret_files" in kwargs else ()
    redaction = Redaction(
        default_redaction=default,
        redact_headers=lists["redact_headers"],
        redact_json_keys=lists["redact_json_keys"],
        redact_query=lists["redact_query"],
        secret_env=lists["secret_env"],
        secret_files=tuple(p if Path(p).is_absolute() else base / p for p in map(Path, files)),
    )
    try:
        Policy.build(
            defaults=redaction.default_redaction,
            headers=redaction.redact_headers,
            json_keys=redaction.redact_json_keys,
            query=redaction.redact_query,
            secrets=(
                load_secrets(env=redaction.secret_env, files=redaction.secret_files)
                if recording
                else ()
            ),
        )
    except ConfigError as e:
        arg = _POLICY_ARGS.get(e.option or "", "redaction")
        raise WstapeUsageError(f"@pytest.mark.wstape: {arg}=: {e.message}") from None
    return redaction


@dataclass(frozen=True)
class Settings:
    """The merged ``wstape`` markers and command-line options of one test."""

    cassette: Path
    record_mode: str = "none"
    upstream: str | None = None
    ssl_insecure: bool = False
    """Recording: do not verify the upstream's certificate (a self-signed wss backend)."""
    allow_unplayed: bool = False
    tls: bool = False
    hostnames: tuple[str, ...] = ()
    options: ReplayOptions = field(default_factory=ReplayOptions)
    """Rules and play options (host, port and TLS are the fixture's)."""
    redaction: Redaction = field(default_factory=Redaction)
    """What a recording run keeps out of the cassette."""

    @property
    def records(self) -> bool:
        """Whether this run records instead of replaying."""
        if self.record_mode == "none":
            return False
        if self.record_mode == "once":
            return not self.cassette.exists()
        return True

    @property
    def profile(self) -> str:
        return self.options.rules.profile.value


def _seq(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(str(v) for v in value)
    raise WstapeUsageError(f"{name}= takes a string or a list of strings, not {value!r}")


def default_cassette(item: pytest.Item) -> Path:
    name = re.sub(r"[^\w.-]+", "_", item.name).strip("_") or "test"
    return Path("cassettes") / item.path.stem / f"{name}.msgpack"


def names_a_cassette(item: pytest.Item) -> bool:
    """Whether the test's ``wstape`` markers name its cassette (else it gets
    :func:`default_cassette`)."""
    return any(mark.args or "cassette" in mark.kwargs for mark in item.iter_markers("wstape"))


DEFAULTS_SHARED = pytest.StashKey[dict[Path, list[str]]]()
"""On the config: each default cassette that more than one collected test would get, with
their node ids (:func:`find_shared_defaults`)."""


def find_shared_defaults(items: list[pytest.Item]) -> dict[Path, list[str]]:
    """The default cassettes two or more of ``items`` would share: ``TestA::test_send``
    and ``TestB::test_send``, ``test_p[a/b]`` and ``test_p[a b]`` (QA: the second test
    replayed, or recorded over, the first's recording). Tests that name a cassette share it
    on purpose and are left out."""
    users: dict[Path, list[str]] = {}
    for item in items:
        if item.get_closest_marker("wstape") is None or names_a_cassette(item):
            continue
        users.setdefault(item.path.parent / default_cassette(item), []).append(item.nodeid)
    return {path: ids for path, ids in users.items() if len(ids) > 1}


def settings_for(item: pytest.Item) -> Settings:
    """Merge the test's ``wstape`` markers (closest wins) with the command line.

    Raises WstapeUsageError for an unknown argument or value.
    """
    cassette: str | Path | None = None
    kwargs: dict[str, Any] = {}
    for mark in item.iter_markers("wstape"):  # closest first
        if len(mark.args) > 1:
            raise WstapeUsageError(
                f"@pytest.mark.wstape takes one positional argument (the cassette), "
                f"got {len(mark.args)}"
            )
        unknown = sorted(set(mark.kwargs) - MARKER_KWARGS)
        if unknown:
            raise WstapeUsageError(
                f"@pytest.mark.wstape: unknown argument {', '.join(unknown)}; "
                f"known: {', '.join(sorted(MARKER_KWARGS))}"
            )
        if cassette is None and mark.args:
            cassette = mark.args[0]
        for k, v in mark.kwargs.items():
            kwargs.setdefault(ALIASES.get(k, k), v)
    if cassette is None:
        cassette = kwargs.pop("cassette", None)
    else:
        kwargs.pop("cassette", None)
    path = Path(cassette) if cassette is not None else default_cassette(item)
    if not path.is_absolute():
        path = item.path.parent / path
    shared = item.config.stash.get(DEFAULTS_SHARED, {}).get(path) if cassette is None else None
    if shared:
        others = [nodeid for nodeid in shared if nodeid != item.nodeid]
        raise WstapeUsageError(
            f"{item.nodeid} and {', '.join(others)} would share the default cassette "
            f"{default_cassette(item)}: name one for each, "
            "@pytest.mark.wstape('cassettes/NAME.msgpack')"
        )

    config = item.config
    record_mode = kwargs.pop("record_mode", None) or config.getoption("wstape_record_mode")
    record_mode = record_mode or "none"
    if record_mode not in RECORD_MODES:
        raise WstapeUsageError(
            f"record_mode={record_mode!r}: choose one of {', '.join(RECORD_MODES)}"
        )
    upstream = kwargs.pop("upstream", None) or config.getoption("wstape_upstream")
    if upstream is not None and not re.match(r"(?i)^(ws|wss|http|https)://[^/]", str(upstream)):
        raise WstapeUsageError(f"upstream={upstream!r}: expected ws://HOST:PORT or wss://...")
    ssl_insecure = kwargs.pop("ssl_insecure", None)
    if ssl_insecure is None:
        ssl_insecure = bool(config.getoption("wstape_ssl_insecure"))
    if not isinstance(ssl_insecure, bool):
        raise WstapeUsageError(f"ssl_insecure= takes True or False, not {ssl_insecure!r}")
    allow_unplayed = bool(kwargs.pop("allow_unplayed", False))
    tls = bool(kwargs.pop("tls", False))
    hostnames = _seq("hostnames", kwargs.pop("hostnames")) if "hostnames" in kwargs else ()
    recording = Settings(cassette=path, record_mode=record_mode).records
    redaction = _redaction(kwargs, item.path.parent, recording)
    kwargs.setdefault("speed", DEFAULT_SPEED)
    kwargs.setdefault("allow_partial", allow_unplayed)
    try:
        options = ReplayOptions.build(host="127.0.0.1", port=0, **kwargs)
    except ConfigError as e:
        raise WstapeUsageError(f"@pytest.mark.wstape: {e}") from None
    return Settings(
        cassette=path,
        record_mode=record_mode,
        upstream=str(upstream) if upstream is not None else None,
        ssl_insecure=ssl_insecure,
        allow_unplayed=allow_unplayed,
        tls=tls,
        hostnames=hostnames,
        options=options,
        redaction=redaction,
    )


__all__ = [
    "MARKER_KWARGS",
    "RECORD_MODES",
    "REDACTION_KWARGS",
    "Redaction",
    "Settings",
    "WstapeUsageError",
    "default_cassette",
    "find_shared_defaults",
    "names_a_cassette",
    "settings_for",
]
