"""The primary analysis against closed forms: the paired t-test's power is the
non-central t's, and the mean change of a constant slope is slope x t."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sim.disease import analyse
from sim.scenario import load_scenario
from sim.trial.cohort import Cohort, screen_people

BASE = Path(__file__).resolve().parents[2] / "scenarios" / "nct05129410.toml"
QUIET = [  # nothing happens to anyone but their FVC: no adverse event, no exit
    *(f"adverse_events.{n}.baseline_per_year=0.0" for n in
      ("serious_infection", "gi_intolerance", "leukopenia", "hyperglycaemia", "ild_flare",
       "ild_relapse")),
    "dropout.withdrawal_per_year=0.0",
    "dropout.death_per_year=0.0",
]  # fmt: skip
T_YEARS = 364 / 365.25


def scenario(slope_sd: float, effect: float, sd_e: float, natural: float = 0.0):  # type: ignore[no-untyped-def]
    fvc = (
        f"{{visit_weeks = [0, 26, 52], landmark_week = 52, natural_slope_pp_per_year = {natural},"
        f" slope_sd_pp_per_year = {slope_sd}, mmf_effect_max_pp = {effect},"
        " mpa_ec50_mg_h_per_l = 0.001, onset_half_time_days = 0.001,"
        f" measurement_sd_pp = {sd_e}}}"
    )
    made = load_scenario(BASE, [*QUIET, f"disease={{fvc = {fvc}}}"])
    # the disease table is replaced whole: no flare lowers FVC, no subtype, no Treg
    assert made.disease is not None and not made.disease.fvc.flare_events
    assert not made.disease.fvc.subtypes and made.disease.treg is None
    assert all(ae.baseline_per_year == 0.0 for ae in made.adverse_events.values())
    return made


def changes(sc, n: int, replicate: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The patients' changes at the landmark, as a run computes them (no tables)."""
    cohort = Cohort(sc, 17, replicate, log=False)
    cohort.enrol_all(screen_people(sc, n, 17, replicate)[1])
    cohort.env.run()
    return np.asarray(cohort.outcomes()["fvc_change"])


@pytest.mark.parametrize("n", [10, 20, 40])
def test_paired_t_power_is_the_noncentral_t_power(n: int) -> None:
    slope_sd, effect, sd_e, reps = 4.0, 3.0, 3.0, 800
    sc = scenario(slope_sd, effect, sd_e)
    assert sc.disease is not None
    significant = [analyse(changes(sc, n, r), sc.disease)["fvc_significant"] for r in range(reps)]
    simulated = float(np.mean(significant))
    sd = math.sqrt((slope_sd * T_YEARS) ** 2 + 2 * sd_e**2)  # slope, and two measurements
    ncp = effect / sd * math.sqrt(n)
    crit = stats.t.ppf(0.975, n - 1)
    exact = 1 - stats.nct.cdf(crit, n - 1, ncp) + stats.nct.cdf(-crit, n - 1, ncp)
    mcse = math.sqrt(exact * (1 - exact) / reps)
    assert abs(simulated - exact) < 4 * mcse, (simulated, exact)


def test_a_constant_slope_without_treatment_effect_gives_slope_times_t() -> None:
    sc = scenario(slope_sd=0.0, effect=0.0, sd_e=3.0, natural=-6.0)
    x = np.concatenate([changes(sc, 200, r) for r in range(10)])
    se = math.sqrt(2 * 3.0**2 / x.size)
    assert abs(x.mean() - (-6.0 * T_YEARS)) < 4 * se
    assert abs(x.std(ddof=1) - math.sqrt(2) * 3.0) < 4 * math.sqrt(2) * 3.0 / math.sqrt(2 * x.size)
