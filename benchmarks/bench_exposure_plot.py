"""Benchmark: `dosesim exposure --patients N --plot`, the population figure (default N = 10,000).

Times, in this process, for the base scenario's 70 kg patients (seed 1):

- the N patients' MPA random effects and AUC0-12 at the target (what the command
  prints, unchanged by ``--plot``);
- the concentrations of the bands' patients (the first 500): every 30 min over the
  year and in the close-up, both drugs, with :func:`sim.exposure_batch.concentration_by_patient`,
  and, for comparison, the plain way (:func:`sim.exposure.concentration` patient by
  patient) on a tenth of them;
- the figure (:func:`sim.views.exposure_plots.population_profiles`) drawn, then
  PNG-encoded at 120 dpi as the command writes it;

then the whole command in a fresh process (Python start and imports included): with
``--patients`` and without ``--plot``, with both, and the typical patient's figure
alone (``--plot`` without ``--patients``). Medians of ``--rounds`` rounds, CPU and wall seconds.

Run: ``.venv/bin/python -m benchmarks.bench_exposure_plot [--patients N] [--rounds R]``.
Results are recorded, with the machine, in benchmarks/README.md. Not a test.
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from benchmarks._common import BASE, machine, timed


def _command(argv: list[str], rounds: int) -> tuple[float, float]:
    """Median CPU (of the child) and wall seconds of a fresh ``python -m sim`` process."""
    cpu, wall = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        w = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sim", *argv], check=True, capture_output=True)
        wall.append(time.perf_counter() - w)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from sim import Schedule, build_schedules, load_scenario
    from sim.exposure import (
        OralOneCompartment,
        concentration,
        draw_etas,
        mpa_auc0_12_at_target,
        scenario_models,
    )
    from sim.exposure_batch import concentration_by_patient
    from sim.streams import stream
    from sim.views.exposure_plots import BAND_PATIENTS, course_hours, population_profiles

    n, weight, seed = args.patients, 70.0, 1
    scenario = load_scenario(BASE)
    assert scenario.exposure is not None
    mpa_pk = scenario.exposure.mpa
    schedules = build_schedules(scenario, weight)
    typical = scenario_models(scenario, weight)
    print(f"machine: {machine()}")

    def draws() -> tuple[np.ndarray, np.ndarray]:
        etas = draw_etas(mpa_pk, stream(seed, "exposure_patients", "mpa"), size=n)
        mpa = scenario_models(scenario, weight, {"mpa": etas})["mpa"]
        return etas, mpa_auc0_12_at_target(scenario, mpa)

    cpu, wall = timed(draws, args.rounds)
    print(
        f"{n} patients' MPA effects and AUC0-12: {1e3 * cpu:.1f} CPU-ms ({1e3 * wall:.1f} ms wall)"
    )
    etas, auc = draws()
    shown = min(n, BAND_PATIENTS)
    pred = draw_etas(
        scenario.exposure.prednisolone,
        stream(seed, "exposure_patients", "prednisolone"),
        size=shown,
    )
    population = scenario_models(scenario, weight, {"prednisolone": pred, "mpa": etas[:shown]})
    drugs = {"prednisolone": "prednisone", "mpa": "mmf"}
    tenth = max(1, shown // 10)
    for moiety, drug in drugs.items():
        model, schedule = population[moiety], schedules[drug]
        t_h = course_hours(schedule)

        def together(m: OralOneCompartment = model, s: Schedule = schedule) -> object:
            return concentration_by_patient(m, s, course_hours(s))

        def one_by_one(m: OralOneCompartment = model, s: Schedule = schedule) -> object:
            return [concentration(m.row(i), s, course_hours(s)) for i in range(tenth)]

        cpu, wall = timed(together, args.rounds)
        plain, _ = timed(one_by_one, 1)
        print(
            f"  {moiety}: {shown} patients x {t_h.size} times: {cpu:.3f} CPU-s ({wall:.3f} s "
            f"wall); patient by patient, {tenth} of them: {plain:.3f} CPU-s "
            f"(x{shown / tenth:g}: {plain * shown / tenth:.1f} CPU-s)"
        )
    curves = {
        moiety: (typical[moiety], population[moiety], schedules[drug])
        for moiety, drug in drugs.items()
    }

    def figure() -> Figure:
        return population_profiles(curves, auc, (30.0, 60.0), "benchmark")

    cpu, wall = timed(figure, args.rounds)
    print(f"population_profiles drawn: {cpu:.3f} CPU-s ({wall:.3f} s wall)")
    fig = figure()
    cpu, wall = timed(lambda: fig.savefig(io.BytesIO(), format="png", dpi=120), args.rounds)
    print(f"  PNG-encoded (120 dpi): {cpu:.3f} CPU-s ({wall:.3f} s wall)")
    with tempfile.TemporaryDirectory() as tmp:
        plot = ["--plot", str(Path(tmp) / "pk.png")]
        population = ["--patients", str(n), "--seed", "1"]
        for extra in (population, [*population, *plot], plot):
            argv = ["exposure", str(BASE), "--weight-kg", "70", *extra]
            cpu, wall = _command(argv, args.rounds)
            shown_argv = " ".join(a if not a.startswith("/") else Path(a).name for a in argv)
            print(f"dosesim {shown_argv}: {cpu:.2f} CPU-s, {wall:.2f} s wall")


if __name__ == "__main__":
    main()
