"""Instruction counts (callgrind) of the naive comparison's timed event-driven run.

Seconds on a shared machine move by tens of per cent between runs; instructions
counted by ``valgrind --tool=callgrind`` do not (the same total twice, whatever
else the machine does). This script counts the instructions of the timed part of
:func:`benchmarks.naive_daily_tick.speed_ratio` for the event-driven model (2,000
patients of the base scenario, seed 20201201, after a warm-up run of 2,000 others
with the next seed) as the difference of two processes under callgrind: one that
imports, warms up and runs the timed cohort, one that stops after the warm-up.

``--against DIR`` counts a second source tree (e.g. a ``git worktree`` of the
commit before a change) in the same invocation, and prints the ratio::

    git worktree add /tmp/before <commit>
    .venv/bin/python -m benchmarks.instructions --against /tmp/before

Each process takes about two minutes under callgrind; the four run two at a time.
Not a test: speed is measured here, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks._common import REPO

PATIENTS, SEED = 2000, 20201201

# Runs in the tree measured (old or new layout): only names both layouts have.
_INNER = """
import sys
from sim import load_scenario
from sim.collector import young_collections_only
from benchmarks.naive_daily_tick import simulate_event_driven
scenario = load_scenario("scenarios/nct05129410.toml")
with young_collections_only():
    simulate_event_driven(scenario, {n}, {seed} + 1)
    if sys.argv[1] == "timed":
        simulate_event_driven(scenario, {n}, {seed})
""".replace("{n}", str(PATIENTS)).replace("{seed}", str(SEED))


def _count(tree: Path, part: str) -> int:
    """Instructions of one process under callgrind (``part``: setup or timed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
        # addresses fixed (no ASLR): dicts keyed by id() probe the same way every run
        subprocess.run(
            [
                "setarch", platform.machine(), "-R",
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                sys.executable, "-c", _INNER, part,
            ],
            cwd=tree, env=env, check=True, capture_output=True,
        )  # fmt: skip
        totals = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        if totals is None:
            raise SystemExit(f"{tree}: no totals in the callgrind output")
        return int(totals.group(1))


def timed_instructions(trees: list[Path]) -> dict[Path, int]:
    """The timed run's instructions in each tree (timed minus setup process)."""
    jobs = [(tree, part) for tree in trees for part in ("timed", "setup")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: _count(*job), jobs), strict=True))
    return {tree: counts[tree, "timed"] - counts[tree, "setup"] for tree in trees}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", metavar="DIR", default=str(REPO), help="the tree to count")
    parser.add_argument("--against", metavar="DIR", help="a second source tree to count")
    args = parser.parse_args()
    first = Path(args.tree).resolve()
    trees = [first] + ([Path(args.against).resolve()] if args.against else [])
    result = timed_instructions(trees)
    for tree, n in result.items():
        print(f"{tree}: {n:,} instructions in the timed event-driven run ({PATIENTS} patients)")
    if args.against:
        ratio = result[first] / result[trees[1]]
        print(f"ratio this tree / {trees[1]}: {ratio:.4f} ({(ratio - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    main()
