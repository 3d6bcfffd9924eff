"""Shared fixtures: scenario servers (ws and wss) and one mitmproxy confdir per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import ScenarioServer, self_signed_cert, server_ssl_context


@pytest.fixture(scope="session")
def upstream_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("upstream-tls"))


@pytest.fixture(scope="session")
def ws_server() -> Iterator[ScenarioServer]:
    with ScenarioServer() as server:
        yield server


@pytest.fixture(scope="session")
def wss_server(upstream_cert: tuple[Path, Path]) -> Iterator[ScenarioServer]:
    with ScenarioServer(ssl_context=server_ssl_context(*upstream_cert)) as server:
        yield server


@pytest.fixture(scope="session")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mitmproxy confdir shared by the session: its CA is generated once, on first use."""
    return tmp_path_factory.mktemp("mitmproxy-confdir")
