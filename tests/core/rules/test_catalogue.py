"""The catalogue as data: it matches RULES.md and docs/rules.md, profiles nest, config."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from wstape.core.rules import (
    CATALOGUE,
    Profile,
    RuleConfig,
    Severity,
    Violation,
    catalogue_markdown,
    get_rule,
    is_active,
    rules_for,
    unknown_rule_ids,
    violation,
)
from wstape.core.rules.catalogue import SEVERITY_CHANGES

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "rules.md"

SECTION_SIDES = {
    "Client handshake": "handshake",
    "Server side": "server",
    "Client frames": "frame",
    "Client close": "close",
    "Session": "session",
}


def _rules_md() -> Path | None:
    for candidate in (
        os.environ.get("WSTAPE_RULES_MD"),
        str(ROOT / "RULES.md"),
        str(ROOT.parent / "shared" / "RULES.md"),  # CI: shared/ beside the clone
        "/work/shared/RULES.md",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def parse_rules_md(path: Path) -> list[tuple[str, str, str]]:
    """(id, side, severity) per table row of RULES.md, in document order."""
    rows: list[tuple[str, str, str]] = []
    side = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            side = next((s for t, s in SECTION_SIDES.items() if title.startswith(t)), "")
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"[A-Z][A-Z0-9]*(-[A-Z0-9]+)+", cells[0]):
            rows.append((cells[0], side, cells[-1]))
    return rows


@pytest.fixture(scope="module")
def rules_md() -> list[tuple[str, str, str]]:
    path = _rules_md()
    if path is None:
        pytest.skip("RULES.md not found (set WSTAPE_RULES_MD)")
    rows = parse_rules_md(path)
    assert len(rows) > 30, "RULES.md parsing found too few rules"
    return rows


OWN = [r for r in CATALOGUE if not r.extra]
"""The catalogue's rows of RULES.md; ``extra`` rules are wstape's own additions."""


def test_ids_equal_rules_md_in_order(rules_md: list[tuple[str, str, str]]) -> None:
    assert [r.id for r in OWN] == [row[0] for row in rules_md]


def test_extra_rules_are_not_in_rules_md(rules_md: list[tuple[str, str, str]]) -> None:
    listed = {row[0] for row in rules_md}
    extra = {r.id for r in CATALOGUE if r.extra}
    assert extra and not extra & listed
    assert extra == {
        "RFC-HS-HEADER-SYNTAX",
        "RFC-HS-HOST",
        "RFC-SRV-CLOSE-REASON",
        "RFC-FRAME-LENGTH",
        "RFC-MESSAGE-TOO-BIG",
        "RFC-DEFLATE-DATA",
        "REPLAY-CLIENT-STALLED",
        "REPLAY-HEARTBEAT-UNANSWERED",
        "REPLAY-HEARTBEAT-MISSED",
        "REPLAY-HEARTBEAT-DETECTED",
        "REPLAY-PROTOCOL-MISFIT",
        "REPLAY-HEARTBEAT-DEAD",
        "REPLAY-FAULT-NO-RECONNECT",
        "REPLAY-RECONNECT-TOO-SOON",
        "REPLAY-RECONNECT-SETUP",
    }


def test_sides_follow_rules_md_sections(rules_md: list[tuple[str, str, str]]) -> None:
    assert {r.id: r.side for r in OWN} == {row[0]: row[1] for row in rules_md}


def test_severity_text_is_rules_md_verbatim(rules_md: list[tuple[str, str, str]]) -> None:
    expected = {row[0]: row[2] for row in rules_md}
    got = {r.id: r.severity for r in OWN}
    changed = {rule for rule in got if got[rule] != expected[rule]}
    assert changed == set(SEVERITY_CHANGES), changed


def test_profile_follows_the_severity_qualifier() -> None:
    # "wechat: ..." rules start in wechat, "browser: ..." in browser, unqualified in rfc6455.
    for rule in CATALOGUE:
        if rule.severity.startswith("wechat:"):
            want = Profile.WECHAT
        elif rule.severity.startswith("browser:"):
            want = Profile.BROWSER
        else:
            want = Profile.RFC6455
        assert rule.introduced_in is want, rule.id


def test_catalogue_entries_are_complete() -> None:
    ids = [r.id for r in CATALOGUE]
    assert len(ids) == len(set(ids))
    for rule in CATALOGUE:
        assert rule.side in {"handshake", "server", "frame", "close", "session"}
        assert rule.source and rule.description and rule.severity
        assert rule.id.split("-")[0] in {"RFC", "BROWSER", "WX", "REPLAY"}
        if rule.id.startswith("RFC-") and "replay" not in rule.source:
            assert "RFC" in rule.source, rule.id


def test_profiles_nest() -> None:
    rfc = {r.id for r in rules_for(Profile.RFC6455)}
    browser = {r.id for r in rules_for(Profile.BROWSER)}
    wechat = {r.id for r in rules_for(Profile.WECHAT)}
    assert rfc < browser < wechat
    assert wechat == {r.id for r in CATALOGUE}
    assert "BROWSER-CLOSE-CODE" in browser - rfc
    assert "WX-SOCKET-LIMIT" in wechat - browser
    # Unqualified "warn"/"error" in RULES.md: these WX- rules apply everywhere.
    assert {"WX-HS-SUBPROTOCOL-CHANGED", "WX-SEND-TYPE"} <= rfc
    assert [r.id for r in rules_for(Profile.WECHAT)] == [r.id for r in CATALOGUE]


def test_is_active_and_ignore() -> None:
    assert is_active("RFC-HS-KEY", RuleConfig())
    assert not is_active("WX-URL-SCHEME", RuleConfig())
    assert is_active("WX-URL-SCHEME", RuleConfig(profile=Profile.WECHAT))
    ignoring = RuleConfig(profile=Profile.WECHAT, ignore=frozenset({"wx-url-scheme"}))
    assert not is_active("WX-URL-SCHEME", ignoring)
    assert is_active("WX-URL-HOST", ignoring)
    with pytest.raises(KeyError):
        is_active("RFC-NO-SUCH-RULE", RuleConfig())


def test_violation_builder() -> None:
    v = violation("RFC-HS-KEY", Severity.WARN, RuleConfig(), 4, "m", "a", "b", 1.5)
    assert v == Violation("RFC-HS-KEY", Severity.WARN, 4, "m", "a", "b", 1.5)
    assert violation("WX-URL-HOST", Severity.ERROR, RuleConfig(), 4, "m") is None
    cfg = RuleConfig(ignore=frozenset({"RFC-HS-KEY"}))
    assert violation("RFC-HS-KEY", Severity.ERROR, cfg, 4, "m") is None


def test_to_json_keys_and_values() -> None:
    v = Violation(
        "RFC-PONG-ECHO",
        Severity.ERROR,
        2,
        "pong differs",
        expected=b"\x00\xffping",
        actual={"payload": "héllo".encode(), "codes": (1000, 4001), "seen": frozenset({2, 1})},
        t=0.25,
    )
    data = v.to_json()
    assert list(data) == ["rule", "severity", "conn", "message", "expected", "actual"]
    assert data["severity"] == "error" and type(data["severity"]) is str
    assert data["expected"] == "00ff70696e67"
    assert data["actual"] == {"payload": "héllo", "codes": [1000, 4001], "seen": [1, 2]}
    assert json.loads(json.dumps(data)) == data


def test_violation_with_dict_is_hashable() -> None:
    v = Violation("REPLAY-UNPLAYED", Severity.WARN, None, "m", expected={"a": 1})
    assert v in {v}


def test_rule_config_normalises_and_validates() -> None:
    cfg = RuleConfig(
        profile="wechat",  # type: ignore[arg-type]
        allow_hosts=["a.example"],  # type: ignore[arg-type]
        ignore={"rfc-hs-key"},  # type: ignore[arg-type]
    )
    assert cfg.profile is Profile.WECHAT
    assert cfg.allow_hosts == ("a.example",)
    assert cfg.ignore == frozenset({"RFC-HS-KEY"})
    with pytest.raises(ValueError, match="platform"):
        RuleConfig(platform="phone")
    with pytest.raises(ValueError, match="max_sockets"):
        RuleConfig(max_sockets=0)
    with pytest.raises(ValueError):
        RuleConfig(profile="firefox")  # type: ignore[arg-type]


def test_unknown_rule_ids_and_get_rule() -> None:
    assert unknown_rule_ids(["RFC-HS-KEY", "wx-url-host", "NOPE"]) == ["NOPE"]
    assert get_rule("RFC-SRV-ACCEPT").side == "server"
    with pytest.raises(KeyError, match="NOPE"):
        get_rule("NOPE")


def test_docs_rules_md_is_generated_from_the_catalogue() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for rule in CATALOGUE:
        assert f"`{rule.id}`" in text, rule.id
    assert text == catalogue_markdown(), (
        "docs/rules.md is stale; regenerate: python -c 'from wstape.core.rules import "
        'catalogue_markdown as m; print(m(), end="")\' > docs/rules.md'
    )


def test_markdown_table_has_one_row_per_rule() -> None:
    rows = [line for line in catalogue_markdown().splitlines() if line.startswith("| `")]
    assert len(rows) == len(CATALOGUE)
    assert all(row.count(" | ") == 5 for row in rows)
