"""Benchmark: ``dosesim power`` over a grid of sample sizes (issue 17's target).

The base scenario with its disease model (FVC at weeks 0, 13, 26, 52 with relapses,
Treg at weeks 0, 26, 52; the paired t-test at week 52), n = 10 to 60 in steps of 5 (11
sizes), 2,000 replicates each, on 2 worker processes: the wall time, the CPU time of
this process and its workers, and patient-years simulated per CPU-second. The target
is under 60 s on the benchmark machine.

Run: ``.venv/bin/python -m benchmarks.bench_power [--replicates N]``. Record the output
with the machine in benchmarks/README.md. Not a test: speed is never asserted.
"""

from __future__ import annotations

import argparse
import resource
import time

from benchmarks._common import BASE, machine
from sim import load_scenario
from sim.power import power_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    scenario = load_scenario(BASE)
    sizes = list(range(10, 61, 5))
    start = time.perf_counter()
    table = power_table(scenario, sizes, args.replicates, 20201201, workers=args.workers)
    wall = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu = children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime
    print(machine())
    print(table[["n", "power", "power_mcse", "evaluable_mean", "p_complete_by_deadline"]])
    # patients enrolled x their time on study is what the trials simulated; the
    # evaluable patients' year is a lower bound of it
    patient_years = float((table["evaluable_mean"] * args.replicates).sum())
    print(f"{len(sizes)} sizes x {args.replicates} replicates on {args.workers} workers: "
          f"wall {wall:.1f} s, CPU {cpu:.1f} s, at least {patient_years:,.0f} patient-years "
          f"({patient_years / cpu:,.0f} per CPU-second)")  # fmt: skip


if __name__ == "__main__":
    main()
