"""Benchmark: the cohort model on the base scenario, events per patient-year and throughput.

Reports, for one replicate of N patients (default 5,000) of the base scenario:

- SimPy events processed per simulated patient-year (every event the engine
  steps through: process starts, timeouts, process ends);
- patient-years simulated per CPU-second (``time.process_time``), and where the
  time goes (screening, enrolment, the SimPy run).

Run: ``.venv/bin/python benchmarks/bench_cohort.py [--patients N] [--seed S]``.
Results are recorded, with the machine, in benchmarks/README.md. Not a test.
"""

from __future__ import annotations

import argparse
import time

from benchmarks._common import BASE, count_simpy_steps, machine
from sim import load_scenario, simulate_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()
    scenario = load_scenario(BASE)

    with count_simpy_steps() as counter:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = simulate_cohort(scenario, args.patients, seed=args.seed)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    steps = counter[0]

    p = result.patients
    patient_years = float(p["exit_day"].sum()) / 365.25
    n_events = len(result.events)
    print(f"machine: {machine()}")
    print(
        f"patients: {len(p):,} enrolled of {len(result.screened):,} screened; "
        f"{patient_years:,.1f} patient-years simulated"
    )
    print(f"SimPy events processed: {steps:,} = {steps / patient_years:.2f} per patient-year")
    print(f"log records: {n_events:,} = {n_events / patient_years:.2f} per patient-year")
    print(f"CPU time {cpu:.2f} s (wall {wall:.2f} s)")
    print(f"patient-years per CPU-second: {patient_years / cpu:,.0f}")


if __name__ == "__main__":
    main()
