"""Two source trees' ``sim.run`` throughput, measured in interleaved pairs.

A shared machine's speed drifts by tens of per cent over minutes, so comparing
a run today with one recorded last week says little. This script runs the same
cold-start measurement as ``benchmarks/bench_runner.py`` (a fresh process, the
base scenario, ``sim.run`` in one process, seed 1, no kept tables, CPU seconds of
the run) alternately in this tree and in another (``--against``, e.g. a ``git
worktree`` of the commit before a change), the first of each pair alternating
too, and prints per replicate count the median CPU time of each and the median
of the per-pair ratios with its range::

    git worktree add /tmp/before <commit>
    .venv/bin/python -m benchmarks.runner_pairs --against /tmp/before --pairs 5

The simulated patient-years of both must be equal (the same numbers), or the
comparison is void. Not a test: speed is measured here, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks._common import REPO, machine

_CHILD = """
import sys, time
from sim import load_scenario
from sim.runner import run
scenario = load_scenario("scenarios/nct05129410.toml")
cpu0 = time.process_time()
result = run(scenario, int(sys.argv[1]), seed=1, keep_patients=0)
cpu = time.process_time() - cpu0
print(float(result.replicates["patient_years"].sum()), cpu)
"""


def _measure(tree: Path, replicates: int) -> tuple[float, float]:
    """Patient-years and CPU seconds of one cold run in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(replicates)],
        cwd=tree, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    years, cpu = out.stdout.split()
    return float(years), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="DIR", required=True, help="the other tree")
    parser.add_argument("--tree", metavar="DIR", default=str(REPO), help="this tree")
    parser.add_argument("--replicates", default="1000,5000")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    ours, theirs = Path(args.tree).resolve(), Path(args.against).resolve()
    print(f"machine: {machine()}")
    for n in (int(x) for x in args.replicates.split(",")):
        mine, other, ratios = [], [], []
        for k in range(args.pairs):
            order = (ours, theirs) if k % 2 == 0 else (theirs, ours)
            got = {tree: _measure(tree, n) for tree in order}
            if got[ours][0] != got[theirs][0]:
                raise SystemExit(f"{n} replicates: the trees simulate different patient-years")
            mine.append(got[ours][1])
            other.append(got[theirs][1])
            ratios.append(got[ours][1] / got[theirs][1])
        print(
            f"{n} replicates: this tree {statistics.median(mine):.2f} CPU-s, the other "
            f"{statistics.median(other):.2f} CPU-s (medians of {args.pairs}); ratio median "
            f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})"
        )


if __name__ == "__main__":
    main()
