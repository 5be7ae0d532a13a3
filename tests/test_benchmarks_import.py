"""Every benchmark module imports (they are not run in tests: speed is never asserted)."""

from __future__ import annotations

import importlib

import pytest

from tests.conftest import REPO

MODULES = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_module_imports(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert module.__doc__, f"benchmarks/{name}.py needs a docstring saying what it measures"
