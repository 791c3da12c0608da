"""The house's import arrows, read from the source with `ast` (module-level, function-level and
TYPE_CHECKING imports alike): no package imports one above it, no two packages import each other, and
nothing but the command layer imports the venue (DESIGN.md "Layout")."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "python" / "hybridtrader"

# Bottom up. A package may import packages of its own layer or below; top-level modules count as packages.
LAYERS: list[set[str]] = [
    {"_core", "errors"},  # the Rust extension and the exception tree
    {"market"},  # ground floor: schemas, time units and conversions, intervals, calendar, bars, synthetic
    {"config"},
    {"credentials"},
    {"logs", "metrics"},
    {"execution"},  # cost and fill models, slicing, toxic times, the rate limiter: over market data only
    {"data"},  # stores, historical fetch, caches, quality
    {"monitoring", "stream", "tasks"},
    {"ml"},
    {"risk", "portfolio"},
    {"engine"},  # ports, events, orders, the Strategy base and the one Trader loop
    {"strategy"},  # the strategies the engine runs
    {"backtest", "live", "venue"},
    {"cli"},  # the commands
]
COMMANDS = LAYERS[-1]
LEVEL = {package: i for i, layer in enumerate(LAYERS) for package in layer}


def _package(module: str) -> str:
    """`hybridtrader.data.bar_store` -> `data`; the package facade `hybridtrader` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported hybridtrader module, line) for every import statement anywhere in the file."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "hybridtrader"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: len(module.split(".")) - node.level + is_package]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "hybridtrader":
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in known or alias.name == "_core" else target, node.lineno))
    return found


def _package_edges() -> dict[tuple[str, str], list[str]]:
    """(importer package, imported package) -> where ("path:line"), packages differing."""
    modules = _modules()
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for module, path in modules.items():
        for target, line in _imports(module, path, set(modules)):
            a, b = _package(module), _package(target)
            if a != b:
                edges[(a, b)].append(f"{path.relative_to(ROOT)}:{line}")
    return edges


EDGES = _package_edges()


def test_every_package_has_a_layer() -> None:
    packages = {_package(m) for m in _modules()} - {"__init__"}
    assert packages - set(LEVEL) == set(), "place the new package in LAYERS"


def test_no_package_imports_one_above_it() -> None:
    upward = [
        f"{a} -> {b} ({', '.join(where)})"
        for (a, b), where in sorted(EDGES.items())
        if a != "__init__" and ((b == "__init__" and a not in COMMANDS) or LEVEL.get(b, -1) > LEVEL[a])
    ]
    assert upward == []


def _circles(edges: set[tuple[str, str]]) -> list[tuple[str, ...]]:
    """Pairs of nodes that reach each other through `edges`."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)

    def reaches(src: str, dst: str) -> bool:
        seen, todo = set(), [src]
        while todo:
            node = todo.pop()
            if node == dst:
                return True
            if node not in seen:
                seen.add(node)
                todo += graph[node]
        return False

    return sorted({tuple(sorted((a, b))) for a, b in edges if reaches(b, a)})


def test_no_two_packages_import_each_other() -> None:
    assert _circles(set(EDGES)) == []


def test_no_two_modules_import_each_other() -> None:
    modules = _modules()
    edges = {
        (module, target)
        for module, path in modules.items()
        for target, _ in _imports(module, path, set(modules))
        if target in modules and target != module
    }
    assert _circles(edges) == []


def test_only_commands_import_the_venue() -> None:
    importers = {a: where for (a, b), where in EDGES.items() if b == "venue"}
    assert set(importers) <= COMMANDS | {"__init__"}, importers


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("from hybridtrader.data.bar_store import BarStore", "hybridtrader.data.bar_store"),
        ("from hybridtrader import _core", "hybridtrader._core"),
        ("from hybridtrader.market import calendar", "hybridtrader.market.calendar"),
        ("from . import frames", "hybridtrader.market.frames"),
        ("from .calendar import NEW_YORK", "hybridtrader.market.calendar"),
        ("import hybridtrader.venue.server", "hybridtrader.venue.server"),
    ],
)
def test_imports_are_read_like_python_reads_them(tmp_path: Path, line: str, expected: str) -> None:
    src = tmp_path / "bars.py"
    src.write_text(f"def f():\n    {line}\n")
    known = set(_modules())
    assert _imports("hybridtrader.market.bars", src, known) == [(expected, 2)]
