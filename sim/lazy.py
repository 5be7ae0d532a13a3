"""Submodules of a package imported on first use (PEP 562), so ``import sim`` stays light."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def submodules(package: str, names: Iterable[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<name>`` for each of ``names``.

    Usage, in a package's ``__init__.py``::

        __getattr__ = submodules(__name__, ("cohort", "trial"))
    """
    known = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name in known:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
