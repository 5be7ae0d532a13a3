"""Benchmark: rendering the run report of the base scenario's 1,000 replicates.

Runs the base scenario (1,000 replicates, seed 20201201, 100 replicates' patients
kept, as ``make run`` does) into a temporary folder, then times, in this process:

- ``load_results`` (reading the folder, checking every file's sha256, summarising);
- ``render_report`` (six figures drawn and PNG-encoded, the tables, the checks),
  by figure;
- the whole ``dosesim report`` command in a fresh process (Python start and the
  imports included);
- the comparison's report (base against the low start, 200 replicates each) and the
  forecast's (the README's example), each rendered from its folder.

Each is the median of ``--rounds`` rounds, in CPU and wall seconds. Issue 13's
target: the report rendered in at most 1.5 s on the benchmark machine.

Run: ``.venv/bin/python -m benchmarks.bench_report [--rounds N]``. Results are
recorded, with the machine, in benchmarks/README.md. Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks._common import BASE, machine, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from sim import load_scenario, run
    from sim.views import plots
    from sim.views.report import load_results, render_report

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        run(load_scenario(BASE), 1000, 20201201, workers=2, out=out, keep_patients=100)
        cpu, wall = timed(lambda: load_results(out), args.rounds)
        print(f"load_results: {cpu:.3f} CPU-s ({wall:.3f} s wall)")
        scenario, result = load_results(out)
        render_report(scenario, result)  # warm: fonts, caches
        cpu, wall = timed(lambda: render_report(scenario, result), args.rounds)
        print(f"render_report: {cpu:.3f} CPU-s ({wall:.3f} s wall)  [target <= 1.5 s]")
        figures: dict[str, Callable[[], object]] = {
            "dose_schedules": lambda: plots.dose_schedules(scenario),
            "cumulative_prednisone": lambda: plots.cumulative_prednisone(result),
            "mpa_auc_distribution": lambda: plots.mpa_auc_distribution(result, scenario),
            "cumulative_incidence": lambda: plots.cumulative_incidence(result),
            "enrolment_fan": lambda: plots.enrolment_fan(result, scenario),
            "milestone_dates": lambda: plots.milestone_dates(result, scenario),
        }
        for name, draw in figures.items():

            def drawn_and_encoded(draw: Callable[[], object] = draw) -> None:
                draw().savefig(io.BytesIO(), format="png", dpi=110)  # type: ignore[attr-defined]

            cpu, wall = timed(drawn_and_encoded, args.rounds)
            print(f"  {name:<24} {cpu:.3f} CPU-s")
        command = [sys.executable, "-m", "sim", "report", str(out), "-o", str(Path(tmp) / "r.html")]
        walls = []
        for _ in range(args.rounds):
            w = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            walls.append(time.perf_counter() - w)
        print(f"dosesim report (fresh process, imports included): {statistics.median(walls):.2f} s")
        _other_reports(Path(tmp), args.rounds)


def _other_reports(tmp: Path, rounds: int) -> None:
    """The comparison's report (base against the low start, 200 replicates each, 100 kept)
    and the forecast's (the README's example), each made from its folder."""
    from sim.cli import main as cli
    from sim.results.comparison_files import load_comparison
    from sim.views.compare_report import render_comparison_report
    from sim.views.forecast_report import load_forecast, render_forecast_report

    low = str(BASE.with_name("nct05129410_low_start.toml"))
    folder = tmp / "compare"
    with contextlib.redirect_stdout(io.StringIO()):
        cli(["compare", str(BASE), low, "--replicates", "200", "--workers", "2",
             "--out", str(folder)])  # fmt: skip
    cpu, wall = timed(lambda: load_comparison(folder), rounds)
    print(f"load_comparison: {cpu:.3f} CPU-s ({wall:.3f} s wall)")
    comparison, manifest = load_comparison(folder)
    cpu, wall = timed(lambda: render_comparison_report(comparison, manifest), rounds)
    print(f"render_comparison_report: {cpu:.3f} CPU-s ({wall:.3f} s wall)")
    folder = tmp / "forecast"
    observed = BASE.with_name("example_observed_enrolment.csv")
    with contextlib.redirect_stdout(io.StringIO()):
        cli(["forecast", str(BASE), "--observed", str(observed), "--as-of", "2022-03-01",
             "--replicates", "300", "--seed", "7", "--workers", "2",
             "--out", str(folder)])  # fmt: skip
    files = load_forecast(folder)
    cpu, wall = timed(lambda: render_forecast_report(*files), rounds)
    print(f"render_forecast_report: {cpu:.3f} CPU-s ({wall:.3f} s wall)")


if __name__ == "__main__":
    main()
