"""The pytest plugin, driven through ``pytester``: each test writes a cassette and a test
file into a fresh folder and runs pytest on it in a subprocess (the plugin is loaded from
the ``pytest11`` entry point, as for a user).

The inner runs have no ini file, so pytest-asyncio is in strict mode: the plugin itself
must let ``async def`` tests marked ``wstape`` run.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from websockets.sync.server import ServerConnection, serve

from tests.replay.conftest import c, close, opening, s
from wstape.cassettes import CassetteWriter, read_cassette
from wstape.core.model import Message, Open, Record, Side

pytest_plugins = ["pytester"]

CHAT: list[Record] = [
    opening(1, "/chat"),
    c(1, 0.01, "hello"),
    s(1, 0.02, "welcome"),
    c(1, 0.03, "more"),
    s(1, 0.04, "done"),
    close(1, 0.05, Side.CLIENT, 1000),
]
OTHER: list[Record] = [
    opening(2, "/other"),
    s(2, 0.01, "never sent"),
    close(2, 0.02, Side.SERVER, 1000),
]

ASYNC_CLIENT = """
import ssl
import pytest
import websockets

async def chat(url, messages=("hello", "more"), **kw):
    got = []
    async with websockets.connect(url, proxy=None, compression=None, **kw) as ws:
        for m in messages:
            await ws.send(m)
            got.append(await ws.recv())
    return got
"""


def write_cassette(path: Path, records: Sequence[Record]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with CassetteWriter(path) as w:
        for record in records:
            w.write(record)
    return path


@pytest.fixture
def chat_cassette(pytester: pytest.Pytester) -> Path:
    return write_cassette(pytester.path / "cassettes" / "chat.msgpack", [*CHAT, *OTHER])


def test_async_test_passes(pytester: pytest.Pytester, chat_cassette: Path) -> None:
    pytester.makepyfile(
        ASYNC_CLIENT
        + """
@pytest.mark.wstape("cassettes/chat.msgpack", profile="wechat", match="json")
async def test_chat(wstape_server):
    assert wstape_server.url.startswith("ws://127.0.0.1:")
    assert not wstape_server.url.endswith("/")
    assert wstape_server.url.endswith(f":{wstape_server.port}")
    assert wstape_server.ca_path is None
    assert await chat(wstape_server.url + "/chat") == ["welcome", "done"]
    # The fixture's own address is not held against the client (WX-URL-HOST), the
    # rest of the wechat profile is (warnings here: ws:// to a LAN address, User-Agent).
    rules = {v.rule for v in wstape_server.report().violations}
    assert "WX-URL-HOST" not in rules
    assert {"WX-URL-SCHEME", "WX-HS-USER-AGENT"} <= rules
"""
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=1)


def test_the_compression_marker_argument(pytester: pytest.Pytester, chat_cassette: Path) -> None:
    """``compression`` is a PlayOptions field, so a marker argument: the recording declined
    permessage-deflate, ``auto`` declines again, ``on`` accepts the client's offer."""
    pytester.makepyfile(
        """
import pytest
from websockets.sync.client import connect

def talk(url):
    with connect(url + "/chat", proxy=None) as ws:  # websockets offers compression
        ws.send("hello")
        assert ws.recv(5) == "welcome"
        ws.send("more")
        assert ws.recv(5) == "done"
        return ws.response.headers.get("Sec-WebSocket-Extensions")

@pytest.mark.wstape("cassettes/chat.msgpack")
def test_auto(wstape_server):
    assert talk(wstape_server.url) is None

@pytest.mark.wstape("cassettes/chat.msgpack", compression="on")
def test_on(wstape_server):
    assert talk(wstape_server.url).startswith("permessage-deflate")
"""
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=2)


def test_sync_test_passes_and_sees_the_report(
    pytester: pytest.Pytester, chat_cassette: Path
) -> None:
    pytester.makepyfile(
        """
import pytest
from websockets.sync.client import connect

@pytest.mark.wstape("cassettes/chat.msgpack")
def test_chat(wstape_server):
    with connect(wstape_server.url + "/chat", proxy=None, compression=None) as ws:
        ws.send("hello")
        assert ws.recv(5) == "welcome"
        ws.send("more")
        assert ws.recv(5) == "done"
    report = wstape_server.report()
    assert report.passed
"""
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=1)


def test_rule_violation_fails_with_rule_id(pytester: pytest.Pytester, chat_cassette: Path) -> None:
    pytester.makepyfile(
        ASYNC_CLIENT
        + """
@pytest.mark.wstape("cassettes/chat.msgpack", profile="browser")
async def test_going_away(wstape_server):
    async with websockets.connect(wstape_server.url + "/chat", proxy=None) as ws:
        await ws.send("hello")
        await ws.recv()
        await ws.send("more")
        await ws.recv()
        await ws.close(1001)  # RFC 6455 allows it; the browser's close() throws

@pytest.mark.wstape("cassettes/chat.msgpack")
async def test_wrong_message(wstape_server):
    assert await chat(wstape_server.url + "/chat", ("hello", "less")) == ["welcome", "done"]
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*FAILED*test_going_away*",
            "*FAILED*test_wrong_message*",
        ]
    )
    out = result.stdout.str()
    assert "BROWSER-CLOSE-CODE conn 1" in out
    assert "REPLAY-MESSAGE-MISMATCH conn 1" in out
    assert "wstape: 1 problem replaying" in out
    assert "ERROR" not in out  # failures of the test, not errors at setup or teardown


def test_unplayed_messages_fail_unless_allowed(
    pytester: pytest.Pytester, chat_cassette: Path
) -> None:
    pytester.makepyfile(
        ASYNC_CLIENT
        + """
@pytest.mark.wstape("cassettes/chat.msgpack")
async def test_leaves_early(wstape_server):
    assert await chat(wstape_server.url + "/chat", ("hello",)) == ["welcome"]

@pytest.mark.wstape("cassettes/chat.msgpack", allow_unplayed=True)
async def test_leaves_early_allowed(wstape_server):
    assert await chat(wstape_server.url + "/chat", ("hello",)) == ["welcome"]
"""
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_leaves_early FAILED*", "*test_leaves_early_allowed PASSED*"]
    )
    assert "REPLAY-UNPLAYED conn 1" in result.stdout.str()
    assert "conn 2" not in result.stdout.str()  # never opened: not a failure


def test_connection_left_open_by_a_sync_test(
    pytester: pytest.Pytester, chat_cassette: Path
) -> None:
    pytester.makepyfile(
        """
import pytest
from websockets.sync.client import connect

@pytest.mark.wstape("cassettes/chat.msgpack", timeout=30)
def test_forgets_to_close(wstape_server):
    ws = connect(wstape_server.url + "/chat", proxy=None)
    ws.send("hello")
    assert ws.recv(5) == "welcome"
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown*", "*REPLAY-UNPLAYED conn 1*still open*"])


def test_recorded_connection_never_opened_passes(
    pytester: pytest.Pytester, chat_cassette: Path
) -> None:
    pytester.makepyfile(
        ASYNC_CLIENT
        + """
@pytest.mark.wstape("cassettes/chat.msgpack")
async def test_chat_only(wstape_server):
    await chat(wstape_server.url + "/chat")
    report = wstape_server.report()
    assert [c.conn for c in report.connections] == [1]

@pytest.mark.wstape("cassettes/chat.msgpack")
def test_opens_nothing(wstape_server):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=2)


def test_markers_merge_and_paths_are_relative_to_the_test_file(
    pytester: pytest.Pytester,
) -> None:
    pytester.mkpydir("sub")
    write_cassette(pytester.path / "sub" / "cassettes" / "chat.msgpack", CHAT)
    (pytester.path / "sub" / "test_sub.py").write_text(
        ASYNC_CLIENT
        + """
pytestmark = pytest.mark.wstape(profile="browser", match="json")

@pytest.mark.wstape("cassettes/chat.msgpack")
async def test_chat(wstape_server):
    assert wstape_server.settings.options.rules.profile == "browser"
    assert wstape_server.settings.options.play.match == "json"
    assert wstape_server.cassette.parent.parent.name == "sub"
    await chat(wstape_server.url + "/chat")
"""
    )
    result = pytester.runpytest_subprocess("-v", "sub")
    result.assert_outcomes(passed=1)


def test_usage_errors_are_loud(pytester: pytest.Pytester, chat_cassette: Path) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.wstape("cassettes/chat.msgpack", profle="wechat")
def test_typo(wstape_server):
    pass

@pytest.mark.wstape("cassettes/chat.msgpack", ignore=["NO-SUCH-RULE"])
def test_bad_rule(wstape_server):
    pass

@pytest.mark.wstape("cassettes/chat.msgpack", record_mode="sometimes")
def test_bad_mode(wstape_server):
    pass

def test_no_marker(wstape_server):
    pass
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=4)
    out = result.stdout.str()
    assert "unknown argument profle" in out
    assert "unknown rule ID NO-SUCH-RULE" in out
    assert "record_mode='sometimes': choose one of none, once, new_episodes, all" in out
    assert "wstape_server needs @pytest.mark.wstape" in out

    bad = pytester.runpytest_subprocess("--wstape-record-mode=sometimes")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "invalid choice: 'sometimes'" in bad.stderr.str()


def test_record_mode_none_with_missing_cassette_fails_clearly(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.wstape("cassettes/missing.msgpack")
def test_chat(wstape_server):
    raise AssertionError("must not run")
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    missing = pytester.path / "cassettes" / "missing.msgpack"
    result.stdout.fnmatch_lines(
        [f"*wstape: cassette {missing} not found (record mode none)*--wstape-record-mode=once*"]
    )
    assert not missing.exists()
    # once/all without an upstream: also a clear error, and nothing written.
    result = pytester.runpytest_subprocess("--wstape-record-mode=all")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*record mode all needs an upstream*--wstape-upstream*"])
    assert not missing.exists()


# -- recording ---------------------------------------------------------------------------


def echo_upstream(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(f"echo:{message}")


@pytest.fixture
def upstream() -> Iterator[str]:
    with serve(echo_upstream, "127.0.0.1", 0, compression=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        server.shutdown()
    thread.join(5)


RECORDING_TEST = (
    ASYNC_CLIENT
    + """
@pytest.mark.wstape("cassettes/echo.msgpack")
async def test_echo(wstape_server):
    got = await chat(wstape_server.url + "/echo", ("a", "b"))
    assert got == ["echo:a", "echo:b"]
    print("RECORDING" if wstape_server.recording else "REPLAYING")
"""
)


def cassette_messages(path: Path) -> list[tuple[int, str, str]]:
    _, records = read_cassette(path)
    return [(r.conn, r.side.value, r.payload.decode()) for r in records if isinstance(r, Message)]


def test_record_once_then_replay_without_upstream(pytester: pytest.Pytester, upstream: str) -> None:
    pytester.makepyfile(RECORDING_TEST)
    cassette = pytester.path / "cassettes" / "echo.msgpack"

    first = pytester.runpytest_subprocess(
        "-s", "--wstape-record-mode=once", f"--wstape-upstream={upstream}"
    )
    first.assert_outcomes(passed=1)
    assert "RECORDING" in first.stdout.str()
    assert cassette_messages(cassette) == [
        (1, "client", "a"),
        (1, "server", "echo:a"),
        (1, "client", "b"),
        (1, "server", "echo:b"),
    ]
    _, records = read_cassette(cassette)
    [opened] = [r for r in records if isinstance(r, Open)]
    assert opened.target == "/echo"
    size = cassette.stat().st_size

    # once again, with an upstream that is gone: the cassette exists, so it is replayed.
    second = pytester.runpytest_subprocess(
        "-s", "--wstape-record-mode=once", "--wstape-upstream=ws://127.0.0.1:9"
    )
    second.assert_outcomes(passed=1)
    assert "REPLAYING" in second.stdout.str()
    # and under the default mode (none).
    third = pytester.runpytest_subprocess("-s")
    third.assert_outcomes(passed=1)
    assert "REPLAYING" in third.stdout.str()
    assert cassette.stat().st_size == size


def test_a_recording_that_never_reached_the_upstream_says_so_and_keeps_no_cassette(
    pytester: pytest.Pytester,
) -> None:
    """QA: with the upstream down, record mode once wrote a cassette of no connection
    and the run ended on the client's own error; every later run replayed that empty
    cassette (a 404, 'no recorded connection for /echo') instead of recording. Now the
    test also errors at teardown naming the upstream's failure, and once keeps no file."""
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections to it are refused
    port = dead.getsockname()[1]
    pytester.makepyfile(RECORDING_TEST)
    cassette = pytester.path / "cassettes" / "echo.msgpack"
    try:
        for _ in range(2):  # the second run records again, it does not replay
            result = pytester.runpytest_subprocess(
                "-s", "--wstape-record-mode=once", f"--wstape-upstream=ws://127.0.0.1:{port}"
            )
            result.assert_outcomes(failed=1, errors=1)
            result.stdout.fnmatch_lines(
                [
                    f"*wstape: recording to {cassette} recorded nothing: cannot connect to "
                    f"127.0.0.1:{port} (*); no cassette was kept"
                ]
            )
            assert not cassette.exists()
    finally:
        dead.close()


def test_record_all_overwrites_and_new_episodes_appends(
    pytester: pytest.Pytester, upstream: str
) -> None:
    pytester.makepyfile(RECORDING_TEST)
    cassette = write_cassette(
        pytester.path / "cassettes" / "echo.msgpack",
        [opening(1, "/old"), close(1, 0.01, Side.CLIENT, 1000)],
    )
    pytester.runpytest_subprocess(
        "--wstape-record-mode=all", f"--wstape-upstream={upstream}"
    ).assert_outcomes(passed=1)
    _, records = read_cassette(cassette)
    assert [r.target for r in records if isinstance(r, Open)] == ["/echo"]

    pytester.runpytest_subprocess(
        "--wstape-record-mode=new_episodes", f"--wstape-upstream={upstream}"
    ).assert_outcomes(passed=1)
    _, records = read_cassette(cassette)
    assert [(r.conn, r.target) for r in records if isinstance(r, Open)] == [
        (1, "/echo"),
        (2, "/echo"),
    ]


def test_marker_upstream_and_record_mode(pytester: pytest.Pytester, upstream: str) -> None:
    pytester.makepyfile(
        ASYNC_CLIENT
        + f"""
@pytest.mark.wstape("cassettes/m.msgpack", record_mode="once", upstream={upstream!r})
async def test_echo(wstape_server):
    assert await chat(wstape_server.url + "/m", ("x",)) == ["echo:x"]
"""
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    assert cassette_messages(pytester.path / "cassettes" / "m.msgpack") == [
        (1, "client", "x"),
        (1, "server", "echo:x"),
    ]


def test_marker_redaction_options_for_recording(
    pytester: pytest.Pytester, upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WSTAPE_TEST_SECRET", "S3CRET-value-42")
    pytester.makepyfile(
        ASYNC_CLIENT
        + f"""
@pytest.mark.wstape(
    "cassettes/r.msgpack",
    record_mode="once",
    upstream={upstream!r},
    redact_headers=["X-Team"],
    redact_json_keys="pin",
    redact_query=["room"],
    secret_env="WSTAPE_TEST_SECRET",
)
async def test_echo(wstape_server):
    got = await chat(
        wstape_server.url + "/r?room=42&token=abc",
        ('{{"pin": 1234, "token": "t0k"}}', "my S3CRET-value-42"),
        additional_headers={{"X-Team": "blue"}},
    )
    assert got[1] == "echo:my S3CRET-value-42"

@pytest.mark.wstape("cassettes/bad.msgpack", record_mode="once", upstream={upstream!r},
                    redact_headers=["bad name"])
def test_bad(wstape_server):
    pass
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    assert "redact_headers=: not a header name: 'bad name'" in result.stdout.str()
    cassette = pytester.path / "cassettes" / "r.msgpack"
    assert b"S3CRET-value-42" not in cassette.read_bytes()
    _, records = read_cassette(cassette)
    [opened] = [r for r in records if isinstance(r, Open)]
    assert opened.target == "/r?room=<redacted>&token=<redacted>"
    assert (b"X-Team", b"<redacted>") in opened.request_headers
    assert [m for _, _, m in cassette_messages(cassette)] == [
        '{"pin": "<redacted>", "token": "<redacted>"}',
        'echo:{"pin": "<redacted>", "token": "<redacted>"}',
        "my <redacted>",
        "echo:my <redacted>",
    ]


# -- wss ---------------------------------------------------------------------------------


@pytest.fixture
def self_signed_upstream(tmp_path: Path) -> Iterator[str]:
    """A wss echo backend whose certificate no recorder trusts (its own CA, not the
    recorder's), as a developer's local backend with a self-signed certificate."""
    import ssl

    from wstape.replay.tls import mint

    chain, key, _ = mint(["127.0.0.1"], tmp_path / "backend-ca")
    (tmp_path / "cert.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with serve(echo_upstream, "127.0.0.1", 0, ssl=ctx, compression=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"wss://127.0.0.1:{server.socket.getsockname()[1]}"
        server.shutdown()
    thread.join(5)


def test_record_from_a_self_signed_wss_upstream(
    pytester: pytest.Pytester, self_signed_upstream: str
) -> None:
    """QA: a wss upstream with a self-signed certificate could not be recorded from pytest
    (the client got mitmproxy's 502): --wstape-ssl-insecure or ssl_insecure=True, as
    wstape record --ssl-insecure."""
    pytester.makepyfile(
        ASYNC_CLIENT
        + """
@pytest.mark.wstape("cassettes/cli.msgpack")
async def test_option(wstape_server):
    assert await chat(wstape_server.url + "/cli", ("a",)) == ["echo:a"]

@pytest.mark.wstape("cassettes/marker.msgpack", ssl_insecure=True)
async def test_marker(wstape_server):
    assert await chat(wstape_server.url + "/marker", ("b",)) == ["echo:b"]

@pytest.mark.wstape("cassettes/bad.msgpack", ssl_insecure="yes")
def test_bad(wstape_server):
    pass
"""
    )
    record = ("--wstape-record-mode=all", f"--wstape-upstream={self_signed_upstream}")
    verified = pytester.runpytest_subprocess(*record, "-k", "option")
    verified.assert_outcomes(failed=1, errors=1)
    verified.stdout.fnmatch_lines(
        [
            "*recorded nothing: upgrade to https://127.0.0.1:*/cli failed before the server "
            "answered (Certificate verify failed: *) (--wstape-ssl-insecure or "
            "ssl_insecure=True skips the check); the cassette now holds no connection"
        ]
    )
    result = pytester.runpytest_subprocess(*record, "--wstape-ssl-insecure")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*wstape: ssl_insecure= takes True or False, not 'yes'*"])
    result = pytester.runpytest_subprocess(*record, "-k", "marker")
    result.assert_outcomes(passed=1)
    assert cassette_messages(pytester.path / "cassettes" / "marker.msgpack") == [
        (1, "client", "b"),
        (1, "server", "echo:b"),
    ]
    pytester.runpytest_subprocess("-k", "not bad").assert_outcomes(passed=2)


def test_wss_with_ca_path(pytester: pytest.Pytester) -> None:
    write_cassette(
        pytester.path / "cassettes" / "wss.msgpack",
        [
            opening(1, "/chat", scheme="wss"),
            c(1, 0.01, "hello"),
            s(1, 0.02, "welcome"),
            close(1, 0.03, Side.CLIENT, 1000),
        ],
    )
    pytester.makepyfile(
        ASYNC_CLIENT
        + """
@pytest.mark.wstape("cassettes/wss.msgpack", tls=True, hostnames=["chat.example.com"])
async def test_wss(wstape_server):
    assert wstape_server.url.startswith("wss://127.0.0.1:")
    assert wstape_server.ca_path.name == "mitmproxy-ca-cert.pem"
    ctx = ssl.create_default_context(cafile=str(wstape_server.ca_path))
    assert await chat(wstape_server.url + "/chat", ("hello",), ssl=ctx) == ["welcome"]

@pytest.mark.wstape("cassettes/wss.msgpack", tls=True, hostnames=["chat.example.com"])
def test_wss_by_name_sync(wstape_server):
    from websockets.sync.client import connect
    ctx = ssl.create_default_context(cafile=str(wstape_server.ca_path))
    import socket
    sock = socket.create_connection(("127.0.0.1", wstape_server.port))
    url = f"wss://chat.example.com:{wstape_server.port}/chat"
    with connect(url, sock=sock, ssl=ctx, server_hostname="chat.example.com") as ws:
        ws.send("hello")
        assert ws.recv(5) == "welcome"
"""
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=2)


# -- a real browser as the client ------------------------------------------------------------


def test_chromium_test_with_the_fixture(pytester: pytest.Pytester, chat_cassette: Path) -> None:
    """A sync test driving Chromium through Playwright (whose sync API refuses to run
    inside an event loop): the fixture needs none in the test's thread."""
    from tests.helpers import browser

    missing = browser.chromium_missing()
    if missing:
        pytest.skip(missing)
    pytester.makepyfile(
        f"""
import pytest
from playwright.sync_api import sync_playwright

ARGS = {list(browser.CHROMIUM_ARGS)!r}
JS = '''(url) => new Promise((resolve) => {{
  const ws = new WebSocket(url);
  const got = [];
  ws.onopen = () => ws.send("hello");
  ws.onmessage = (e) => {{
    got.push(e.data);
    if (got.length === 1) ws.send("more"); else ws.close(1000);
  }};
  ws.onclose = (e) => resolve({{got, code: e.code}});
}})'''

@pytest.mark.wstape("cassettes/chat.msgpack", profile="browser")
def test_page(wstape_server):
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path={str(browser.CHROMIUM)!r}, args=ARGS)
        try:
            page = chromium.new_page()
            got = page.evaluate(JS, wstape_server.url + "/chat")
        finally:
            chromium.close()
    assert got == {{"got": ["welcome", "done"], "code": 1000}}
    assert [c.conn for c in wstape_server.report().connections] == [1]
"""
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=1)


SHARED_ONCE = (
    ASYNC_CLIENT
    + """
@pytest.mark.wstape("cassettes/shared.msgpack")
@pytest.mark.parametrize("n", range(6))
async def test_echo(wstape_server, n):
    got = await chat(wstape_server.url + "/echo", ("a", "b"))
    assert got == ["echo:a", "echo:b"]
    print("RECORDING" if wstape_server.recording else "REPLAYING", n)
"""
)


def test_record_once_under_xdist_records_once_and_the_others_replay(
    pytester: pytest.Pytester, upstream: str
) -> None:
    # Real pytest-xdist workers on one missing cassette: one records it (holding a lock
    # on it), the others wait for it and replay; no "already exists", no half file.
    pytester.makepyfile(SHARED_ONCE)
    result = pytester.runpytest_subprocess(
        "-n", "2", "-s", "-p", "no:cacheprovider",
        "--wstape-record-mode=once", f"--wstape-upstream={upstream}",
    )  # fmt: skip
    result.assert_outcomes(passed=6)
    out = result.stdout.str()
    assert "already exists" not in out
    messages = cassette_messages(pytester.path / "cassettes" / "shared.msgpack")
    assert {conn for conn, _, _ in messages} == {1}  # recorded once
    # (QA: the lock was a CASSETTE.lock beside every cassette, to be committed with it)
    assert sorted(p.name for p in (pytester.path / "cassettes").iterdir()) == ["shared.msgpack"]


def test_new_episodes_under_xdist_appends_every_test_with_unique_ids(
    pytester: pytest.Pytester, upstream: str
) -> None:
    # Four real workers appending to one cassette at once: each connection id is taken
    # under a lock on the cassette, so none is used twice and no record is lost.
    pytester.makepyfile(SHARED_ONCE.replace("range(6)", "range(12)"))
    result = pytester.runpytest_subprocess(
        "-n", "4", "-p", "no:cacheprovider",
        "--wstape-record-mode=new_episodes", f"--wstape-upstream={upstream}",
    )  # fmt: skip
    result.assert_outcomes(passed=12)
    path = pytester.path / "cassettes" / "shared.msgpack"
    _, records = read_cassette(path)  # refuses a reused id
    opens = [r.conn for r in records if isinstance(r, Open)]
    assert sorted(opens) == list(range(1, 13))
    messages = cassette_messages(path)
    assert len(messages) == 12 * 4
    for conn in opens:
        assert [(side, text) for c, side, text in messages if c == conn] == [
            ("client", "a"), ("server", "echo:a"), ("client", "b"), ("server", "echo:b"),
        ]  # fmt: skip
    listing = pytester.run(sys.executable, "-m", "wstape", "stats", str(path), "--json")
    assert json.loads(listing.stdout.str())["total"]["connections"] == 12


SHARED_PATHS = (
    ASYNC_CLIENT
    + """
@pytest.mark.wstape("cassettes/shared.msgpack")
@pytest.mark.parametrize("n", range(4))
async def test_echo(wstape_server, n):
    got = await chat(wstape_server.url + f"/echo{n}", (f"m{n}",))
    assert got == [f"echo:m{n}"]
"""
)


@pytest.mark.parametrize("workers", [None, "2"])
def test_record_all_on_a_shared_cassette_keeps_every_test_of_the_run(
    pytester: pytest.Pytester, upstream: str, workers: str | None
) -> None:
    # QA: with record mode all, each test replaced the cassette, so only the last test's
    # session was kept (and under -n 2, one or two of four): the next run failed the others
    # with a 404. Now the run's first test replaces it, the others append, in any worker.
    pytester.makepyfile(SHARED_PATHS)
    write_cassette(
        pytester.path / "cassettes" / "shared.msgpack",
        [opening(1, "/old"), close(1, 0.01, Side.CLIENT, 1000)],
    )
    xdist = ["-n", workers] if workers else ["-p", "no:xdist"]
    args = [*xdist, "-p", "no:cacheprovider", f"--wstape-upstream={upstream}"]
    for _ in range(2):  # (a second run replaces the first's)
        pytester.runpytest_subprocess(*args, "--wstape-record-mode=all").assert_outcomes(passed=4)
        _, records = read_cassette(pytester.path / "cassettes" / "shared.msgpack")
        assert sorted(r.target for r in records if isinstance(r, Open)) == [
            f"/echo{n}" for n in range(4)
        ]
        assert [p.name for p in (pytester.path / "cassettes").iterdir()] == ["shared.msgpack"]
    pytester.runpytest_subprocess(*xdist, "-p", "no:cacheprovider").assert_outcomes(passed=4)


def test_replay_under_xdist_reports_the_right_rule_per_test(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes" / "chat.msgpack", [*CHAT, *OTHER])
    pytester.makepyfile(
        ASYNC_CLIENT
        + """
@pytest.mark.wstape("cassettes/chat.msgpack", allow_unplayed=True)
@pytest.mark.parametrize("n", range(4))
async def test_ok(wstape_server, n):
    assert await chat(wstape_server.url + "/chat", ("hello",)) == ["welcome"]


@pytest.mark.wstape("cassettes/chat.msgpack")
@pytest.mark.parametrize("n", range(3))
async def test_wrong(wstape_server, n):
    await chat(wstape_server.url + "/chat", ("bonjour",))
"""
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=3)
    assert result.stdout.str().count("REPLAY-MESSAGE-MISMATCH") >= 3


FAULT_CLIENT = """
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

def chat_again(url):
    with connect(url, proxy=None, compression=None) as ws:
        ws.send("hello")
        assert ws.recv(5) == "welcome"
        ws.send("more")
        assert ws.recv(5) == "done"
"""


def test_marker_faults_a_client_that_reconnects_passes(
    pytester: pytest.Pytester, chat_cassette: Path
) -> None:
    pytester.makepyfile(
        FAULT_CLIENT
        + """
@pytest.mark.wstape("cassettes/chat.msgpack", faults=["drop@path=/chat,after=1"])
def test_reconnects(wstape_server):
    with connect(wstape_server.url + "/chat", proxy=None, compression=None) as ws:
        ws.send("hello")
        assert ws.recv(5) == "welcome"
        with pytest.raises(ConnectionClosed):  # dropped after the first server message
            ws.recv(5)
    chat_again(wstape_server.url + "/chat")  # the recording again, from its start
    [fault] = wstape_server.report().faults
    assert fault["then"].startswith("reconnected after")

@pytest.mark.wstape(
    "cassettes/chat.msgpack", faults=["drop@path=/chat,after=1"], expect_reconnect=0.3
)
def test_gives_up(wstape_server):
    with connect(wstape_server.url + "/chat", proxy=None, compression=None) as ws:
        ws.send("hello")
        assert ws.recv(5) == "welcome"
        with pytest.raises(ConnectionClosed):
            ws.recv(5)
"""
    )
    result = pytester.runpytest_subprocess("-v")
    # The reconnect it owed is settled when the server stops: an error at teardown, as
    # for a connection left open.
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_reconnects PASSED*",
            "*ERROR at teardown of test_gives_up*",
            "*REPLAY-FAULT-NO-RECONNECT conn 1: client did not reconnect before the server*",
        ]
    )


def test_inject_a_fault_mid_test(pytester: pytest.Pytester, chat_cassette: Path) -> None:
    pytester.makepyfile(
        FAULT_CLIENT
        + """
@pytest.mark.wstape("cassettes/chat.msgpack")
def test_drop_mid_test(wstape_server):
    with connect(wstape_server.url + "/chat", proxy=None, compression=None) as ws:
        ws.send("hello")
        assert ws.recv(5) == "welcome"
        wstape_server.inject("drop")  # the open connection, now
        with pytest.raises(ConnectionClosed):
            ws.recv(5)
    chat_again(wstape_server.url + "/chat")
    [fault] = wstape_server.report().faults
    assert (fault["spec"], fault["what"]) == ("drop", "dropped TCP with no Close")

@pytest.mark.wstape("cassettes/chat.msgpack")
def test_bad_spec(wstape_server):
    with pytest.raises(Exception, match="unknown fault 'explode'"):
        wstape_server.inject("explode")
    chat_again(wstape_server.url + "/chat")
"""
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=2)


def test_a_cassettes_lock_is_one_file_per_path_outside_its_folder(tmp_path: Path) -> None:
    from wstape.pytest_plugin.lock import lock_dir, lock_path

    real = tmp_path / "cassettes"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    lock = lock_path(real / "chat.msgpack")
    assert lock.parent == lock_dir() and lock.name.startswith("chat.msgpack.")
    assert lock_path(tmp_path / "link" / "chat.msgpack") == lock  # the same cassette
    assert lock_path(real / "other.msgpack") != lock
    assert lock_path(tmp_path / "elsewhere" / "chat.msgpack") != lock


def test_tests_that_would_share_a_default_cassette_fail_naming_each_other(
    pytester: pytest.Pytester,
) -> None:
    # QA: TestA::test_send and TestB::test_send, or test_p[a/b] and test_p[a b], got the
    # same default cassette: the second replayed (or recorded over) the first's recording.
    pytester.makepyfile(
        test_shared="""
import pytest


class TestA:
    @pytest.mark.wstape
    def test_send(self, wstape_server):
        pass


class TestB:
    @pytest.mark.wstape
    def test_send(self, wstape_server):
        pass


@pytest.mark.wstape
@pytest.mark.parametrize("who", ["a/b", "a b", "c"])
def test_p(wstape_server, who):
    pass


@pytest.mark.wstape("cassettes/one.msgpack", allow_unplayed=True)
@pytest.mark.parametrize("n", [1, 2])
def test_named(wstape_server, n):
    pass
"""
    )
    write_cassette(pytester.path / "cassettes" / "one.msgpack", CHAT)
    write_cassette(pytester.path / "cassettes" / "test_shared" / "test_p_c.msgpack", CHAT)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-k", "TestA or test_p or named"
    )
    result.assert_outcomes(errors=3, passed=3)
    out = result.stdout.str()
    assert (
        "test_shared.py::TestA::test_send and test_shared.py::TestB::test_send would share "
        "the default cassette cassettes/test_shared/test_send.msgpack: name one for each"
    ) in out
    assert "test_shared.py::test_p[a/b] and test_shared.py::test_p[a b] would share" in out
