"""The garbage collector while simulating: young generations only.

CPython's collector now and then walks every object of the process (a full
collection). After importing numpy, scipy, pandas and pydantic that is about
75,000 objects, and on the 2-core machine of ``benchmarks/README.md`` a full
collection takes about 30 ms: as long as simulating some 500 patient-years.
What a simulation leaves behind is young (each replicate's objects die with
it), so the young generations find it. While simulating, automatic full
collections are paused; the young generations are collected as usual, and
the thresholds are restored afterwards (as :mod:`timeit` pauses the collector
while it times). A collection asked for explicitly (``gc.collect()``) still
runs.

The pause is process-wide, so it is counted: nested or concurrent pauses (in
threads) restore the thresholds once, when the last one ends. Thresholds set
by someone else during a pause are replaced by those saved when it began. A
process forked during a pause keeps it (and ends it where the parent would).

It rests on CPython's generational thresholds (``gc.set_threshold``); from
CPython 3.14 the collector is incremental and ignores the third threshold, so
there the pause does nothing (``FULL_COLLECTIONS_PAUSABLE`` is False).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
from collections.abc import Iterator

__all__ = ["FULL_COLLECTIONS_PAUSABLE", "young_collections_only"]

FULL_COLLECTIONS_PAUSABLE = sys.implementation.name == "cpython" and sys.version_info < (3, 14)
"""Whether the third threshold holds off full collections (CPython before 3.14)."""

_NO_FULL_COLLECTIONS = 1 << 30
"""Young-generation collections before a full one: never reached in a pause."""

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] = (0, 0, 0)


def _new_lock_after_fork() -> None:
    """A forked child gets a lock of its own: another thread may have held the parent's."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_new_lock_after_fork)


@contextlib.contextmanager
def young_collections_only() -> Iterator[None]:
    """Pause automatic full collections of the garbage collector within this block.

    Young generations are collected as usual; the collector's thresholds are
    restored when the last pause ends.
    """
    global _depth, _saved
    if not FULL_COLLECTIONS_PAUSABLE:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(_saved[0], _saved[1], _NO_FULL_COLLECTIONS)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)
