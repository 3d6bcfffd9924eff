"""The layer contract of DESIGN.md: imports only point down, and core does no I/O.

Every module of the package belongs to a tier; it may import wstape modules of its own
tier or a lower one, never a higher one, and each tier has third-party modules it must not
touch. Relative imports (``from ..replay import server``) are resolved, and imports inside
functions count too (a lazy import is still an import).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).parent.parent / "wstape"

TIERS: list[tuple[str, ...]] = [
    ("wstape.core",),
    ("wstape.cassettes",),
    ("wstape.interchange",),
    ("wstape.tools",),
    ("wstape.replay",),
    ("wstape.addons",),
    (
        "wstape.cli",
        "wstape.pytest_plugin",
        "wstape.demo",
        "wstape.sample",
        "wstape.__main__",
        "wstape",
    ),
]
"""Lowest first. ``wstape`` itself (the public API) is at the top."""

NO_IO = {
    "asyncio", "socket", "ssl", "selectors", "subprocess", "threading", "os", "shutil",
    "tempfile", "mitmproxy", "msgpack", "typer", "click", "rich", "websockets", "pytest",
    "cryptography",
}  # fmt: skip
FORBIDDEN: dict[str, set[str]] = {
    "wstape.core": NO_IO,
    "wstape.cassettes": {"asyncio", "socket", "ssl", "mitmproxy", "typer", "click", "rich",
                         "websockets", "pytest"},
    "wstape.interchange": {"asyncio", "socket", "ssl", "mitmproxy", "typer", "click", "rich",
                           "websockets", "pytest"},
    "wstape.tools": {"asyncio", "socket", "ssl", "mitmproxy", "typer", "click", "rich",
                     "websockets", "pytest"},
    "wstape.replay": {"typer", "click", "rich", "pytest"},
    "wstape.addons": {"typer", "click", "pytest"},
}  # fmt: skip
MITMPROXY_ALLOWED_IN = {"wstape.interchange.flows"}
"""interchange reads mitmproxy's own flow files with mitmproxy's reader, nowhere else."""
WEBSOCKETS_IN_CORE = {
    "wstape.core.deflate": (
        "websockets.exceptions",
        "websockets.extensions.permessage_deflate",
        "websockets.frames",
        "websockets.headers",
    )
}
"""permessage-deflate is websockets' sans-I/O extension (zlib streams and RFC 7692's
parameter tables, no sockets, no asyncio), used by one core module, from these modules
only, imported lazily (inside functions: ``import wstape.core`` does not load them)."""


def module_name(path: Path, root: Path = PKG) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module ``source`` imports, relative imports resolved against ``module``."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            names.add(target)
            # ``from wstape.core import replay`` imports the submodule wstape.core.replay.
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def tier_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, tier)
    for i, prefixes in enumerate(TIERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), i)
    return None if best is None else best[1]


def _is_module(name: str) -> bool:
    """Whether ``name`` (a wstape dotted name) is a module or package of the tree."""
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PKG / rel).with_suffix(".py").exists() or (PKG / rel / "__init__.py").exists()


def problems(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """What is wrong with the imports of ``module`` (empty when it keeps the contract)."""
    mine = tier_of(module)
    assert mine is not None, f"{module} belongs to no tier: add it to TIERS"
    top = next(p for p in TIERS[mine] if module == p or module.startswith(p + "."))
    found = []
    for name in sorted(imported_modules(source, module, is_package=is_package)):
        if name.startswith("wstape"):
            if not _is_module(name):
                continue  # a name imported from a module, not a module itself
            theirs = tier_of(name)
            if theirs is not None and theirs > mine:
                found.append(f"{module} imports {name} from a higher tier")
            continue
        root = name.split(".")[0]
        if root in FORBIDDEN.get(top, set()):
            if root == "mitmproxy" and module in MITMPROXY_ALLOWED_IN:
                continue
            if root == "websockets" and name.startswith(WEBSOCKETS_IN_CORE.get(module, ("-",))):
                continue
            found.append(f"{module} imports {name}, which {top} must not use")
    return found


def package_modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def test_every_module_keeps_the_layer_contract() -> None:
    bad = []
    for path in package_modules():
        bad += problems(
            path.read_text(encoding="utf-8"),
            module_name(path),
            is_package=path.name == "__init__.py",
        )
    assert not bad, "\n".join(bad)


def test_every_module_is_in_a_tier() -> None:
    assert all(tier_of(module_name(p)) is not None for p in package_modules())


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("wstape.core.model", "from ..replay import server"),
        ("wstape.core.replay.script", "from ...replay.server import ReplayServer"),
        ("wstape.core.model", "from wstape.replay import server"),
        ("wstape.core.model", "import wstape.cli.app"),
        ("wstape.core.model", "def f():\n    from wstape.addons import runner"),
        ("wstape.core.model", "import asyncio"),
        ("wstape.core.model", "import msgpack"),
        ("wstape.cassettes.reader", "from wstape.tools import stats"),
        ("wstape.tools.stats", "from wstape.replay.server import ReplayServer"),
        ("wstape.replay.server", "from wstape.addons import runner"),
        ("wstape.replay.server", "from wstape.cli.common import fail"),
        ("wstape.interchange.har", "import mitmproxy.io"),
        ("wstape.addons.runner", "import typer"),
        ("wstape.addons.runner", "from wstape import pytest_plugin"),
        ("wstape.core.frames", "def f():\n    from websockets.frames import Frame"),
        ("wstape.core.deflate", "import websockets.asyncio.server"),
        ("wstape.core.deflate", "from websockets import connect"),
    ],
)
def test_the_contract_catches_an_upward_import(module: str, source: str) -> None:
    assert problems(source, module)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("wstape.core.replay.script", "from ..model import Message"),
        ("wstape.core.replay.script", "from wstape.core.rules import violation"),
        ("wstape.replay.server", "from wstape.core.replay.session import ReplaySession"),
        ("wstape.interchange.flows", "from mitmproxy.io import FlowReader"),
        ("wstape.core.deflate", "def f():\n    from websockets.frames import Frame"),
        ("wstape.cli.app", "from wstape.addons import runner"),
    ],
)
def test_the_contract_allows_a_downward_import(module: str, source: str) -> None:
    assert problems(source, module) == []


def test_the_public_api_names_what_it_exports() -> None:
    import wstape

    assert sorted(wstape.__all__) == sorted(["__version__", *wstape._EXPORTS])
    for name in wstape._EXPORTS:
        if wstape._EXPORTS[name].startswith("wstape.addons"):
            continue  # loads mitmproxy: checked by test_public_api_is_lazy below
        assert getattr(wstape, name) is not None


def test_public_api_is_lazy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, wstape; assert 'wstape.replay' not in sys.modules; "
        "wstape.ReplayServer; assert 'mitmproxy' not in sys.modules; "
        "wstape.record; assert 'mitmproxy' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_websockets_is_not_loaded_by_the_core_until_a_client_compresses() -> None:
    """WEBSOCKETS_IN_CORE's imports are lazy: the replay core loads without them."""
    code = (
        "import sys, wstape.core.replay.connection, wstape.core.replay.echo, "
        "wstape.core.deflate; print(sorted(m for m in sys.modules if m.startswith('websockets')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
