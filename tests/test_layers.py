"""The layer contract of DESIGN.md: imports only point down, and core does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).parent.parent / "wstape"

# For each layer, the wstape layers and third-party modules it must not import.
FORBIDDEN: dict[str, set[str]] = {
    "core": {
        "asyncio",
        "socket",
        "ssl",
        "mitmproxy",
        "msgpack",
        "typer",
        "rich",
        "websockets",
        "wstape.cassettes",
        "wstape.addons",
        "wstape.replay",
        "wstape.cli",
    },
    "cassettes": {
        "asyncio",
        "socket",
        "mitmproxy",
        "typer",
        "wstape.addons",
        "wstape.replay",
        "wstape.cli",
    },
    "addons": {"typer", "wstape.replay", "wstape.cli"},
    "replay": {"typer", "wstape.addons", "wstape.cli"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_point_down(layer: str) -> None:
    files = sorted((PKG / layer).rglob("*.py"))
    if not files:
        pytest.skip(f"wstape/{layer} has no modules yet")
    bad = []
    for f in files:
        for mod in imported_modules(f):
            for forbidden in FORBIDDEN[layer]:
                if mod == forbidden or mod.startswith(forbidden + "."):
                    bad.append(f"{f.relative_to(PKG.parent)} imports {mod}")
    assert not bad, "\n".join(bad)
