"""Benchmark: replicates at scale for the base scenario (issue 6's numbers).

Measures, for the base scenario (one site, 20 patients per trial):

1. patient-years simulated per CPU-second by ``sim.run`` in one process, for runs
   of 1,000 (the size of ``make run``) and 5,000 replicates, each from a cold
   start (a fresh process: the per-scenario caches fill during the run);
2. SimPy events processed per simulated patient-year;
3. the speed ratio to the naive daily-tick SimPy model of the same protocol
   (``benchmarks/naive_daily_tick.py``), CPU time per patient-year, both models
   on the same patients with the same output, each after a warm-up run; in
   several rounds, each a fresh process with other patients (the median and
   the range, as one round varies by up to a third on a shared machine);
4. the wall-time speedup of ``--workers 2`` over ``--workers 1``, for runs of
   4,000 and 10,000 replicates (about 4 and 10 s with one worker);
5. peak memory (max RSS of a fresh process) of a run of 1,000 and of 20,000 replicates.

Run: ``.venv/bin/python -m benchmarks.bench_runner [--quick]``. Record the output with the
machine in benchmarks/README.md. Not a test: speed is never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks._common import BASE, REPO, count_simpy_steps, machine
from sim import load_scenario
from sim.runner import run

_THROUGHPUT_CHILD = """
import sys, time
from sim import load_scenario
from sim.runner import run
scenario = load_scenario(sys.argv[2])
cpu0 = time.process_time()
result = run(scenario, int(sys.argv[1]), seed=1, keep_patients=0)
cpu = time.process_time() - cpu0
print(float(result.replicates["patient_years"].sum()), cpu)
"""

_RATIO_CHILD = """
import sys
from sim import load_scenario
from benchmarks.naive_daily_tick import speed_ratio
naive, event = speed_ratio(load_scenario(sys.argv[1]), int(sys.argv[2]), seed=int(sys.argv[3]))
print(naive.patient_years, naive.cpu_s, naive.steps, event.patient_years, event.cpu_s, event.steps)
"""

_MEMORY_CHILD = """
import resource, sys, tempfile
from sim import load_scenario
from sim.runner import run
n, workers = int(sys.argv[1]), int(sys.argv[2])
with tempfile.TemporaryDirectory() as out:
    run(load_scenario(sys.argv[3]), n, seed=1, workers=workers, out=out)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", default="1000,5000", help="replicate counts for throughput")
    parser.add_argument("--naive-patients", type=int, default=2000)
    parser.add_argument("--naive-rounds", type=int, default=5)
    parser.add_argument("--speedup-replicates", default="4000,10000")
    parser.add_argument("--memory", default="1000,20000", help="replicate counts for memory")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.replicates, args.naive_patients, args.speedup_replicates = "40", 200, "60"
        args.naive_rounds = 1
        args.memory = "50,200"
    scenario = load_scenario(BASE)
    print(f"machine: {machine()}")

    # 1. throughput: each size in a fresh process, so every run starts with cold caches
    for count in (int(x) for x in args.replicates.split(",")):
        out = subprocess.run(
            [sys.executable, "-c", _THROUGHPUT_CHILD, str(count), str(BASE)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        patient_years, cpu = (float(x) for x in out.stdout.split())
        print(
            f"run, {count:,} replicates in one process (from a cold start): "
            f"{patient_years:,.0f} patient-years, {cpu:.2f} CPU s -> "
            f"{patient_years / cpu:,.0f} patient-years per CPU-second"
        )

    # 2. events per patient-year
    with count_simpy_steps() as counter:
        result = run(scenario, 300, seed=1, keep_patients=0)
    patient_years = float(result.replicates["patient_years"].sum())
    print(
        f"SimPy events: {counter[0]:,} = {counter[0] / patient_years:.2f} per patient-year "
        "(site processes and screening included)"
    )

    # 3. naive daily-tick model, same protocol, same patients, same output, both warmed up;
    # rounds in fresh processes with other patients (seeds), so no round warms the next
    ratios = []
    for k in range(args.naive_rounds):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _RATIO_CHILD,
                str(BASE),
                str(args.naive_patients),
                str(7 + 100 * k),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        n_py, n_cpu, n_steps, e_py, e_cpu, e_steps = (float(x) for x in out.stdout.split())
        ratios.append((n_cpu / n_py) / (e_cpu / e_py))
        print(
            f"naive daily-tick model, {args.naive_patients} patients (round {k + 1}): "
            f"{n_py / n_cpu:,.0f} patient-years per CPU-second "
            f"({n_steps / n_py:.0f} SimPy events per patient-year); "
            f"event-driven {e_py / e_cpu:,.0f} ({e_steps / e_py:.1f}); speed ratio {ratios[-1]:.1f}"
        )
    print(
        f"speed ratio over {len(ratios)} round(s): median {statistics.median(ratios):.1f} "
        f"(range {min(ratios):.1f}-{max(ratios):.1f})"
    )

    # 4. speedup with two workers (wall time); starting the workers (and their caches)
    # is a fixed cost, so a longer run shows more of the speedup
    for count in (int(x) for x in args.speedup_replicates.split(",")):
        walls = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            run(scenario, count, seed=2, workers=workers, keep_patients=0)
            walls[workers] = time.perf_counter() - t0
        print(
            f"{count} replicates: 1 worker {walls[1]:.2f} s, 2 workers "
            f"{walls[2]:.2f} s -> speedup {walls[1] / walls[2]:.2f}"
        )

    # 5. peak memory of whole runs (fresh processes, results written to a folder)
    peaks = {}
    for count in (int(x) for x in args.memory.split(",")):
        with tempfile.TemporaryDirectory():
            out = subprocess.run(
                [sys.executable, "-c", _MEMORY_CHILD, str(count), "2", str(BASE)],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
        peaks[count] = int(out.stdout.strip().splitlines()[-1]) / 1024
        print(
            f"peak memory, {count:,} replicates (2 workers, main process): {peaks[count]:.0f} MiB"
        )
    small, large = min(peaks), max(peaks)
    print(f"memory ratio {large:,} / {small:,} replicates: {peaks[large] / peaks[small]:.2f}")


if __name__ == "__main__":
    main()
