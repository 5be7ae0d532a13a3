"""Progress bars for commands that run replicates (tqdm; a widget in notebooks)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(total: int, description: str, show: bool) -> Iterator[Callable[[int], None]]:
    """A bar of ``total`` replicates on stderr; yields ``tick(n)`` to advance it by ``n``.

    With ``show`` false nothing is shown (``--quiet``, or output that is not a
    terminal). ``tqdm.auto`` picks a notebook widget where one can be drawn.
    """
    if not show or total <= 0:
        yield lambda n: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total, desc=description, unit="replicate", file=sys.stderr, smoothing=0.1, leave=False
    )
    try:
        yield bar.update
    finally:
        bar.close()
