"""What every benchmark shares: the machine's description, a timer and a SimPy event counter."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import simpy

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "scenarios" / "nct05129410.toml"


def machine() -> str:
    """CPU model, cores, system, Python and numpy versions."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )


def timed(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median CPU and wall seconds of ``rounds`` calls of ``fn``."""
    cpu, wall = [], []
    for _ in range(rounds):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu), statistics.median(wall)


@contextmanager
def count_simpy_steps() -> Iterator[list[int]]:
    """Count every event SimPy processes inside the block: ``with ... as n: ...; n[0]``."""
    counter = [0]
    original = simpy.Environment.step

    def step(self: simpy.Environment) -> None:
        counter[0] += 1
        original(self)

    simpy.Environment.step = step  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        simpy.Environment.step = original  # type: ignore[method-assign]
