"""Fixtures for tests/protocols: every selected session's record -> replay cycle, run once
per test session, several at a time (see harness.py).

Each test takes a session id as its ``sid`` parameter (:func:`session_params`); the
``cycles`` fixture runs the cycles of exactly the sessions whose tests were selected, in
parallel, and the tests then look at the results. A missing dependency skips a session's
tests with the reason, or fails the collection when $WSTAPE_REQUIRE_CLIENTS is set (CI).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import skip_unless_installed
from tests.protocols import harness

WORKERS = 4
"""Sessions at a time: most of a session is spent waiting (heartbeat intervals, held
connections), so 4 fit on 2 cores."""


def session_params(sessions: Iterable[harness.Session]) -> list[Any]:
    """``pytest.param(session.id)`` for each, skipped (or, in CI, failing collection) when
    the session's server or client is missing."""
    return [pytest.param(s.id, id=s.id, marks=skip_unless_installed(s.missing())) for s in sessions]


def _selected(request: pytest.FixtureRequest, fixture: str) -> list[harness.Session]:
    """The sessions of the selected tests that use ``fixture`` (and can run here)."""
    wanted: list[str] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or fixture not in getattr(item, "fixturenames", ()):
            continue
        sid = callspec.params.get("sid")
        if sid is not None and sid not in wanted:
            wanted.append(sid)
    sessions = [harness.session(sid) for sid in wanted]
    return [s for s in sessions if s.missing() is None]


@pytest.fixture(scope="session")
def protocol_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("protocols")


@pytest.fixture(scope="session")
def cycles(
    request: pytest.FixtureRequest, protocol_workdir: Path
) -> dict[str, harness.Cycle | BaseException]:
    """Record then replay (``--speed 0``, no other option) every selected session."""
    sessions = _selected(request, "cycles")
    return harness.run_cycles(sessions, protocol_workdir / "cycles", workers=WORKERS)


@pytest.fixture
def cycle(cycles: dict[str, harness.Cycle | BaseException], sid: str) -> harness.Cycle:
    result = cycles[sid]
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.fixture(scope="session")
def variant_runs(
    request: pytest.FixtureRequest, protocol_workdir: Path
) -> dict[str, dict[str, harness.ClientRun] | BaseException]:
    """Each selected session's client with ``--variant different`` and ``quit-early``
    (``--hold 0``) straight against its real server: the negative clients must complete
    there, so that a replay failing them is about the replay."""
    sessions = _selected(request, "variant_runs")

    def one(s: harness.Session) -> dict[str, harness.ClientRun] | BaseException:
        workdir = protocol_workdir / "variants" / s.id.replace("/", "_").replace(" ", "-")
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            with harness.start_server(s.server, workdir) as server:
                return {
                    variant: harness.run_client(
                        s.client_spec, server.url, variant=variant, extra=("--hold", "0")
                    )
                    for variant in ("normal", "different", "quit-early")
                }
        except Exception as e:
            return e

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(one, sessions))
    return {s.id: r for s, r in zip(sessions, results, strict=True)}
