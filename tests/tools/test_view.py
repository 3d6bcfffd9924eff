"""wstape view: the HTML page, checked as text and rendered in headless Chromium."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.records import write
from wstape.cassettes import CassetteReader
from wstape.cli.app import app
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side
from wstape.core.rules import RuleConfig, Severity, Violation
from wstape.tools.check import check_file
from wstape.tools.timeline import close_words
from wstape.tools.view import render_html

V1 = Path(__file__).parent.parent / "data" / "cassette-v1.msgpack"
CHROMIUM = Path("/usr/bin/chromium")
HEADERS = (
    (b"Host", b"h"),
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Sec-WebSocket-Version", b"13"),
)
LONG = "长" * 300 + "<script>alert(1)</script>"


def bad_session() -> list[Record]:
    return [
        Open(1, 100.0, "GET", "ws", "h", 80, "/chat", "HTTP/1.1", HEADERS, 101, ()),
        Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b'{"a":1}'),
        Message(1, 0.2, Side.CLIENT, Opcode.TEXT, b"\xff\xfe not utf-8"),
        Message(1, 0.3, Side.SERVER, Opcode.TEXT, LONG.encode()),
        Message(1, 0.4, Side.SERVER, Opcode.BINARY, bytes(range(40))),
        Note(1, "a <b>note</b>", 0.45),
        Close(1, 0.5, Side.CLIENT, 1005, "x" * 200, True),
        Open(
            2,
            101.0,
            "GET",
            "ws",
            "h",
            80,
            "/admin",
            "HTTP/1.1",
            HEADERS,
            403,
            (),
            reason="Forbidden",
            body=b"go away",
        ),
    ]


def page(tmp_path: Path, records: list[Record], *, check: bool = True, **kw: int) -> str:
    src = tmp_path / "bad.msgpack"
    write(src, records)
    violations = list(check_file(CassetteReader(src), RuleConfig()).violations) if check else []
    out = io.StringIO()
    render_html(CassetteReader(src), out, violations, **kw)
    return out.getvalue()


def test_page_is_self_contained_and_escaped(tmp_path: Path) -> None:
    text = page(tmp_path, bad_session())
    assert text.startswith("<!doctype html>")
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert not re.search(r'(src|href)=["\']?(https?:)?//', text)  # nothing to fetch
    assert "a &lt;b&gt;note&lt;/b&gt;" in text
    assert text.count('<section class="connection') == 2
    assert len(re.findall(r'class="row (?:violation )?message c2s', text)) == 2
    assert len(re.findall(r'class="row (?:violation )?message s2c', text)) == 2


def test_violations_sit_on_their_rows(tmp_path: Path) -> None:
    text = page(tmp_path, bad_session())
    utf8_row = re.search(
        r'<li class="row violation message c2s[^>]*data-index="2".*?</li></ul>', text
    )
    assert utf8_row and "RFC-TEXT-UTF8" in utf8_row.group(0)
    close_row = re.search(r'<li class="row violation close".*?</li></ul>', text)
    assert close_row and "RFC-CLOSE-CODE" in close_row.group(0)
    assert "RFC-CLOSE-REASON-LENGTH" in close_row.group(0)


def test_violation_without_a_time_goes_on_the_connection(tmp_path: Path) -> None:
    src = tmp_path / "c.msgpack"
    write(src, bad_session())
    out = io.StringIO()
    v = Violation("TEST-RULE", Severity.WARN, 1, "about the whole connection")
    loose = Violation("TEST-LOOSE", Severity.INFO, None, "about the cassette")
    result = render_html(CassetteReader(src), out, [v, loose])
    text = out.getvalue()
    section = text[text.index('id="conn-1"') : text.index("<ol")]
    assert "TEST-RULE" in section
    assert text.index("TEST-LOOSE") < text.index("<main>")
    assert result.violations == 2


def test_max_messages(tmp_path: Path) -> None:
    records: list[Record] = [bad_session()[0]]
    records += [Message(1, i / 10, Side.SERVER, Opcode.TEXT, b"m%d" % i) for i in range(30)]
    text = page(tmp_path, records, check=False, max_messages=10)
    assert text.count("row message") == 10
    assert "20 more messages not drawn" in text and "30 messages (20 not drawn)" in text


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "v1.html"
    result = CliRunner().invoke(app, ["view", str(V1), "-o", str(out), "--profile", "wechat"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 3 connections, 3 messages" in result.stdout
    assert "WX-HS-USER-AGENT" in out.read_text(encoding="utf-8")
    result = CliRunner().invoke(app, ["view", str(V1), "-o", str(out), "--no-check", "--overwrite"])
    assert "0 violations" in result.stdout
    missing = CliRunner().invoke(
        app, ["view", str(tmp_path / "nope.msgpack"), "-o", str(out), "--overwrite"]
    )
    assert missing.exit_code == 3 and len(missing.stderr.strip().splitlines()) == 1


# -- rendered in a real browser --------------------------------------------------------


def test_rendered_in_headless_chromium(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
    html_path = tmp_path / "bad.html"
    html_path.write_text(page(tmp_path, bad_session()), encoding="utf-8")
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1100, "height": 900})
            tab.on("request", lambda r: requests.append(r.url))
            tab.goto(html_path.as_uri())
            sections = tab.locator("section.connection")
            assert sections.count() == 2
            chat = sections.nth(0)
            assert chat.locator("li.message.c2s").count() == 2
            assert chat.locator("li.message.s2c").count() == 2
            # the invalid UTF-8 message is highlighted with its rule
            bad = chat.locator("li.message.violation")
            assert bad.count() == 1
            assert "RFC-TEXT-UTF8" in bad.inner_text()
            assert bad.get_attribute("data-index") == "2"
            # the close row carries the close-code and reason-length violations
            close = chat.locator("li.close")
            assert "closed by client: 1005" in close.inner_text()
            assert "RFC-CLOSE-REASON-LENGTH" in close.inner_text()
            # arrows point the way the message travelled
            c2s_after = tab.evaluate(
                "getComputedStyle(document.querySelector('li.c2s .arrow'), '::after').content"
            )
            assert c2s_after == '"▶"'
            # click to expand: the full text becomes visible
            long_row = chat.locator("li.message.s2c.text")
            full = long_row.locator("pre.full")
            assert not full.is_visible()
            long_row.locator("summary").click()
            assert full.is_visible() and "<script>alert(1)</script>" in full.inner_text()
            binary = chat.locator("li.binary")
            assert "40 B" in binary.locator("summary").inner_text()
            binary.locator("summary").click()
            assert "00000000  00 01 02" in binary.locator("pre.full").inner_text()
            # the refused upgrade
            assert "403 Forbidden (refused)" in sections.nth(1).inner_text()
            assert "go away" in sections.nth(1).inner_text()
            tab.screenshot(path=str(tmp_path / "view.png"), full_page=True)  # kept out of the repo
        finally:
            browser.close()
    assert all(url.startswith("file://") for url in requests), requests
    assert (tmp_path / "view.png").stat().st_size > 0


def test_bidi_and_control_characters_are_visible_and_the_page_has_a_csp(tmp_path: Path) -> None:
    from tests.helpers.records import make_open

    evil = "invoice\u202egnp.exe \x1b[2J\x07"
    text = page(
        tmp_path,
        [
            make_open(1, "/chat"),
            Message(1, 0.1, Side.SERVER, Opcode.TEXT, evil.encode()),
            Note(1, "note " + evil, 0.2),
            Close(1, 1.0, Side.CLIENT, 4000, "\u202ebye"),
        ],
        check=False,
    )
    for raw in ("\u202e", "\x1b", "\x07"):
        assert raw not in text
    assert "invoice\\u202egnp.exe \\x1b[2J\\x07" in text
    assert (
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">" in text
    )


def test_an_empty_close_frame_is_not_called_no_close_frame() -> None:
    # QA: a server's empty Close (recorded as 1005, not on the wire: it carries no code) read
    # "(no Close frame on the wire)"; the HTML view and `show` share the words.
    assert close_words(Close(1, 1.0, Side.SERVER, 1005, "", on_wire=False)) == (
        "closed by server: 1005 (no status received) (an empty Close frame)"
    )
    assert close_words(Close(1, 1.0, Side.CLIENT, 1006, "", on_wire=False)).endswith(
        "1006 (abnormal closure) (no Close frame on the wire)"
    )


@pytest.mark.parametrize(
    "t",
    [10**400, float("nan"), float("inf"), -1.0, True, "0.2"],
    ids=["10**400", "nan", "inf", "negative", "true", "string"],
)
def test_a_fault_time_that_is_no_time_is_shown_without_one(tmp_path: Path, t: object) -> None:
    """QA: `wstape view --report` of a report whose fault has `"t": 1e400`-sized integer
    (JSON has no limit; json.loads builds it) crashed with a traceback (OverflowError in
    float() and in the row's format) and left its temporary file. A time that is not a
    finite number of seconds from 0 is shown as no time, as a missing one is."""
    src = tmp_path / "c.msgpack"
    write(src, bad_session())
    out = io.StringIO()
    fault = {"conn": 1, "t": t, "spec": "drop@after=1", "what": "dropped", "then": "gone"}
    result = render_html(CassetteReader(src), out, faults=[fault])
    assert result.faults == 1
    text = out.getvalue()
    assert text.count('class="row fault"') == 1 and "fault drop@after=1:" in text
    assert '<li class="row fault"><span class="time"></span>' in text
