"""The layout keeps its promises: one-way imports, no borrowed private names, small rooms.

Parsed with :mod:`ast`, so every import counts: at the top, inside functions
(lazy) and under ``if TYPE_CHECKING:``. Deleting a rule here is a design
decision for ``docs/contributing.md``, not a way to make a change pass.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parents[1] / "sim"
#: The one module allowed to be long: the declarative pydantic schema of every table.
LONG_ALLOWED = {"sim.scenario_schema"}
MAX_LINES = 620
#: The faces of the package, above everything: they may import views.
FACES = {"sim", "sim.cli", "sim.commands", "sim.commands_power", "sim.__main__"}
"""The command line and the package face: they may import the views; the core may not."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in SIM.rglob("*.py"):
        parts = list(path.relative_to(SIM.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every ``import sim...`` and ``from sim... import name`` in a file."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "sim" or node.module.startswith("sim."):
                found += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.split(".")[0] == "sim"]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}: relative import; write the full sim.… path")
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target, name in _imports(path):
            if name is not None and f"{target}.{name}" in modules:
                graph[module].add(f"{target}.{name}")  # `from sim.views import plots`
            elif target in modules:
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v] - {v}:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_lazy_and_type_checking_imports_included() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a two-module circle and a three-module circle are found."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(_cycles(graph)) == [["a", "b"], ["c", "d", "e"]]


def test_no_private_name_is_imported_from_another_module() -> None:
    modules = _modules()
    borrowed = [
        f"{module} imports {target}.{name}"
        for module, path in modules.items()
        for target, name in _imports(path)
        if name is not None
        and name.startswith("_")
        and not (name.startswith("__") and name.endswith("__"))
        and target != module
    ]
    assert borrowed == []


def test_the_core_never_imports_views() -> None:
    graph = _graph()
    core = [m for m in graph if m not in FACES and not m.startswith("sim.views")]
    leaks = [f"{m} -> {t}" for m in core for t in graph[m] if t.startswith("sim.views")]
    assert leaks == []


def test_no_module_is_much_over_600_lines() -> None:
    long = {
        module: n
        for module, path in _modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES and module not in LONG_ALLOWED
    }
    assert long == {}


def test_the_package_ships_its_type_marker() -> None:
    assert (SIM / "py.typed").is_file()


@pytest.mark.parametrize(
    "expression",
    [
        "sim.views.plots.dose_schedules",
        "sim.views.report.write_report",
        "sim.compare.compare",
        "sim.hazards.drivers.Driver",
        "sim.trial.cohort.simulate_cohort",
    ],
)
def test_modules_are_reachable_after_import_sim(expression: str) -> None:
    code = f"import sim; print(callable({expression}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
