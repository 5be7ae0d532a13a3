"""Benchmark: exposure summaries for a whole cohort (default 100,000 patients), vectorised.

Times, separately, the steps a cohort run takes:

1. drawing each patient's weight and PK random effects from the patient's own stream;
2. building each patient's prednisone and MMF schedules (one Python call per patient);
3. the exposure computation proper, in numpy over all segments of all patients:
   steady-state metrics per segment for both drugs, each patient's exact cumulative
   AUC over the 52 weeks, and MPA AUC0-12 at the target dose.

Run: ``.venv/bin/python -m benchmarks.bench_exposure [--patients N] [--repeat R]``.
Results are recorded, with the machine, in benchmarks/README.md. Not a test: speed is
never asserted (machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from benchmarks._common import BASE, machine
from sim import build_schedules, load_scenario
from sim.exposure import draw_etas, mpa_auc0_12_at_target, pk_model
from sim.exposure_batch import ScheduleBatch, batch_cumulative_auc, batch_steady_state
from sim.streams import stream

T = TypeVar("T")


def best_of(repeat: int, fn: Callable[..., T], *args: object) -> tuple[float, T]:
    """Best wall time (s) of ``repeat`` runs after one warm-up run, and the last result."""
    best = float("inf")
    result = fn(*args)
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()
    n = args.patients
    scenario = load_scenario(BASE)
    assert scenario.exposure is not None
    pred_pk, mpa_pk = scenario.exposure.prednisolone, scenario.exposure.mpa

    t0 = time.perf_counter()
    rngs = [stream(args.seed, "patient", i) for i in range(n)]
    # Weight: log-normal, median 59 kg (women) / 68 kg (men), CV 16 % (parameters.md s. 7)
    female = np.array([r.random() < 0.68 for r in rngs])
    z = np.array([r.standard_normal() for r in rngs])
    weights = np.round(np.where(female, 59.0, 68.0) * np.exp(np.sqrt(np.log1p(0.16**2)) * z), 1)
    pred_eta = np.array([draw_etas(pred_pk, r) for r in rngs])
    mpa_eta = np.array([draw_etas(mpa_pk, r) for r in rngs])
    t_draw = time.perf_counter() - t0

    t0 = time.perf_counter()
    schedules = [build_schedules(scenario, float(w)) for w in weights]
    t_build = time.perf_counter() - t0

    def exposure() -> dict[str, np.ndarray]:
        pred_models = pk_model(pred_pk, weights, pred_eta)
        mpa_models = pk_model(mpa_pk, weights, mpa_eta)
        pred_batch = ScheduleBatch.from_schedules([s["prednisone"] for s in schedules])
        mmf_batch = ScheduleBatch.from_schedules([s["mmf"] for s in schedules])
        end_h = scenario.treatment.duration_days * 24.0
        return {
            "pred_ss_auc24": batch_steady_state(pred_models, pred_batch).auc_24h_mg_h_per_l,
            "mpa_ss_cmin": batch_steady_state(mpa_models, mmf_batch).c_min_mg_per_l,
            "pred_auc_52w": batch_cumulative_auc(pred_models, pred_batch, end_h),
            "mpa_auc_52w": batch_cumulative_auc(mpa_models, mmf_batch, end_h),
            "mpa_auc0_12": mpa_auc0_12_at_target(scenario, mpa_models),
        }

    t_exposure, out = best_of(args.repeat, exposure)
    segments = sum(len(s["prednisone"].change_days) + len(s["mmf"].change_days) for s in schedules)
    auc = out["mpa_auc0_12"]
    print(f"machine: {machine()}")
    print(f"patients: {n:,}; constant-dose segments: {segments:,} (doses: {n * 364 * 3:,})")
    print(f"draw weights and PK random effects (per-patient streams): {t_draw:7.3f} s")
    print(f"build schedules (one call per patient):                    {t_build:7.3f} s")
    print(f"exposure computation, vectorised (best of {args.repeat}):         {t_exposure:7.3f} s")
    print(f"  = {n / t_exposure:,.0f} patients per second")
    print(
        f"check: MPA AUC0-12 median {np.median(auc):.1f} mg*h/L, "
        f"{np.mean((auc >= 30) & (auc <= 60)):.1%} within 30-60; "
        f"prednisolone (unbound) 52-week AUC median {np.median(out['pred_auc_52w']):.1f} mg*h/L"
    )


if __name__ == "__main__":
    main()
