"""Fixtures for the real-client tests: a backend loop, a mitmproxy CA, a page server.

The tests drive real clients (Chromium, Node.js ``ws``, ``websocket-client``) through
``wstape record`` and against ``wstape replay``, both run as processes; see
tests/helpers/browser.py and docs/clients.md.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.browser import BackgroundLoop, PageServer, make_ca
from wstape.replay.tls import minted_context


@pytest.fixture(scope="session")
def bg() -> Iterator[BackgroundLoop]:
    """An event loop on a thread, for the backend servers (tests stay synchronous)."""
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mitmproxy confdir shared by ``wstape record`` and ``wstape replay --tls``."""
    path = tmp_path_factory.mktemp("clients-mitmproxy")
    make_ca(path)
    return path


@pytest.fixture(scope="session")
def ca_cert(confdir: Path) -> Path:
    return confdir / "mitmproxy-ca-cert.pem"


@pytest.fixture(scope="session")
def backend_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """The backend's own certificate for ``localhost``, from a CA nobody trusts: the
    recorder reaches it with ``--ssl-insecure``, as with a self-signed staging backend."""
    return minted_context(["localhost"], tmp_path_factory.mktemp("backend-ca"))


@pytest.fixture(scope="session")
def pages() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server
