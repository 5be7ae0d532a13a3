"""Figures: each planner's figure renders on a small run; the Aalen-Johansen estimator."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import sim
from sim.errors import DosesimError
from sim.views import plots
from sim.views.plots import aalen_johansen
from tests.conftest import BASE, SCENARIOS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scenario() -> sim.Scenario:
    return sim.load_scenario(BASE)


@pytest.fixture(scope="module")
def result(scenario: sim.Scenario) -> sim.RunResult:
    return sim.run(scenario, 12, seed=1, keep_patients=12)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    return buf.getvalue()


FIGURES: dict[str, Callable[[sim.Scenario, sim.RunResult], Figure]] = {
    "dose_schedules": lambda s, r: plots.dose_schedules(s),
    "cumulative_prednisone": lambda s, r: plots.cumulative_prednisone(r),
    "mpa_auc_distribution": lambda s, r: plots.mpa_auc_distribution(r, s),
    "cumulative_incidence": lambda s, r: plots.cumulative_incidence(r),
    "enrolment_fan": lambda s, r: plots.enrolment_fan(r, s),
    "enrolment_fan_observed": lambda s, r: plots.enrolment_fan(
        r, s, observed=pd.read_csv(SCENARIOS / "example_observed_enrolment.csv")["enrolled_date"]
    ),
    "milestone_dates": lambda s, r: plots.milestone_dates(r, s),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_each_figure_renders_a_non_empty_png(
    name: str, scenario: sim.Scenario, result: sim.RunResult
) -> None:
    fig = FIGURES[name](scenario, result)
    assert isinstance(fig, Figure)
    assert fig.axes and all(ax.has_data() for ax in fig.axes if ax.get_visible())
    png = _png(fig)
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) > 10_000


def test_weeks_rebuilt_from_ex_match_the_patients_table(result: sim.RunResult) -> None:
    weekly = plots.prednisone_by_week(result)
    patients = result.kept["patients"].set_index(["replicate", "patient_id"])
    assert list(weekly.columns) == list(range(53))
    assert weekly.index.equals(patients.index)
    assert (weekly[0] == 0).all()
    for week in sim.endpoints.LANDMARK_WEEKS:
        expected = patients[f"cumulative_prednisone_mg_week{week}"].to_numpy()
        np.testing.assert_allclose(weekly[week].to_numpy(), expected, rtol=0, atol=1e-9)


def test_dose_schedules_share_a_line_for_weights_with_one_schedule(
    scenario: sim.Scenario,
) -> None:
    # start 1 mg/kg capped at 60 mg/day: 60 kg and above share one schedule
    fig = plots.dose_schedules(scenario, weights_kg=(45, 60, 90))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [
        "45 kg: start 45 mg/day, total 5,688 mg",
        "60, 90 kg: start 60 mg/day, total 7,892 mg",
    ]


def test_exit_incidences_add_up_to_the_share_who_left(result: sim.RunResult) -> None:
    """Completion at the end of treatment is the only censoring, so at the end the
    cumulative incidences of all reasons for leaving add up to the share who left
    (1 - KM per reason would add up to more)."""
    fig = plots.cumulative_incidence(result)
    exits = fig.axes[1].get_lines()
    patients = result.kept["patients"]
    left = float((patients["status"] != "completed").mean())
    gone = patients.loc[patients["status"] != "completed", ["status", "exit_reason"]]
    assert len(exits) == len(gone.drop_duplicates())
    assert sum(line.get_ydata()[-1] for line in exits) == pytest.approx(left, abs=1e-12)


def test_enrolment_fan_draws_observed_enrolment(
    scenario: sim.Scenario, result: sim.RunResult
) -> None:
    dates = ["2021-01-20", "2021-03-02", "2021-04-11"]
    fig = plots.enrolment_fan(result, scenario, observed=dates)
    (line,) = [x for x in fig.axes[0].get_lines() if x.get_label() == "observed (3)"]
    assert list(line.get_ydata()) == [0, 1, 2, 3]


def test_per_patient_figures_need_kept_tables(scenario: sim.Scenario) -> None:
    bare = sim.run(scenario, 2, seed=1, keep_patients=0)
    with pytest.raises(DosesimError, match="keep_patients"):
        plots.cumulative_prednisone(bare)
    assert _png(plots.milestone_dates(bare, scenario)).startswith(PNG_SIGNATURE)


# ---------------------------------------------------------------------------
# Aalen-Johansen
# ---------------------------------------------------------------------------


def test_aalen_johansen_hand_computed() -> None:
    """Six subjects: t = 1 (cause 1), 2 (cause 2), 2 (censored), 3 (cause 1), 4
    (censored), 5 (cause 2). Event times, at risk n, events d, of cause 1 d1, KM
    before S-: t=1: 6, 1, 1, 1; t=2: 5, 1, 0, 5/6; t=3: 3, 1, 1, 4/6; t=5: 1, 1, 0, 4/9.
    F1 = 1/6 from t = 1, 1/6 + (4/6)(1/3) = 7/18 from t = 3; F2 = (5/6)(1/5) = 1/6
    from t = 2, 1/6 + 4/9 = 11/18 from t = 5; F1 + F2 = 1 after the last event.
    1 - KM for cause 1 (cause 2 censored) would give 1 - (5/6)(2/3) = 8/18 > 7/18.
    """
    times = [1, 2, 2, 3, 4, 5]
    causes = [1, 2, 0, 1, 0, 2]
    one = aalen_johansen(times, causes, 1)
    two = aalen_johansen(times, causes, 2)
    np.testing.assert_array_equal(one.time, [0, 1, 2, 3, 5])
    np.testing.assert_array_equal(one.at_risk, [6, 6, 5, 3, 1])
    np.testing.assert_allclose(one.estimate, [0, 1 / 6, 1 / 6, 7 / 18, 7 / 18])
    np.testing.assert_allclose(two.estimate, [0, 0, 1 / 6, 1 / 6, 11 / 18])
    np.testing.assert_allclose(one.at([0.5, 1, 2.9, 3, 10]), [0, 1 / 6, 1 / 6, 7 / 18, 7 / 18])
    # variance at t = 1: binomial, (1/6)(5/6)/6; at t = 3 the three delta-method terms
    f = [Fraction(1, 6), Fraction(1, 6), Fraction(7, 18)]
    var3 = (
        (f[2] - f[0]) ** 2 * Fraction(1, 6 * 5)
        + (f[2] - f[1]) ** 2 * Fraction(1, 5 * 4)
        + Fraction(1 * 5, 6**3)
        + Fraction(4, 6) ** 2 * Fraction(1 * 2, 3**3)
        - 2 * (f[2] - f[0]) * 1 * Fraction(1, 6**2)
    )
    assert one.standard_error[1] == pytest.approx(math.sqrt(5 / 216))
    assert one.se_at(3.5) == pytest.approx(math.sqrt(float(var3)))


def test_aalen_johansen_without_censoring_is_the_empirical_share() -> None:
    rng = np.random.default_rng(11)
    times = rng.exponential(1.0, 500)
    causes = rng.integers(1, 4, 500)
    for cause in (1, 2, 3):
        ci = aalen_johansen(times, causes, cause)
        for t in (0.2, 1.0, 3.0):
            assert ci.at(t) == pytest.approx(np.mean((times <= t) & (causes == cause)))


def _competing_sample(
    rng: np.random.Generator, n: int, hazards: tuple[float, float], censoring: float
) -> tuple[Any, Any]:
    """Exponential times with constant cause-specific hazards, independent censoring."""
    h = sum(hazards)
    event = rng.exponential(1 / h, n)
    cause = np.where(rng.random(n) < hazards[0] / h, 1, 2)
    censor = rng.exponential(1 / censoring, n)
    return np.minimum(event, censor), np.where(event <= censor, cause, 0)


def test_aalen_johansen_against_constant_competing_hazards() -> None:
    """Constant hazards h_k: CIF_k(t) = h_k / h (1 - exp(-h t)), h = sum of h_k. Within
    4 standard errors on 20,000 subjects with exponential censoring (rate 0.4)."""
    hazards = (0.3, 0.7)
    h = sum(hazards)
    rng = np.random.default_rng(20240607)
    times, causes = _competing_sample(rng, 20_000, hazards, 0.4)
    grid = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    for k, hk in enumerate(hazards, start=1):
        ci = aalen_johansen(times, causes, k)
        exact = hk / h * (1 - np.exp(-h * grid))
        se = ci.se_at(grid)
        assert np.all(se > 0)
        assert np.all(np.abs(ci.at(grid) - exact) < 4 * se), (k, ci.at(grid), exact, se)
    # 1 - KM of cause 1 (cause 2 as censored) estimates 1 - exp(-h1 t): far off
    naive = 1 - np.exp(-hazards[0] * 4.0)
    assert naive - hazards[0] / h * (1 - np.exp(-h * 4.0)) > 20 * aalen_johansen(
        times, causes, 1
    ).se_at(4.0)


def test_aalen_johansen_standard_error_matches_the_spread() -> None:
    """The delta-method SE against the SD of the estimate over 400 samples of 300:
    the SD's own relative SE is about 1 / sqrt(2 * 400) = 3.5 %, so allow 15 %."""
    rng = np.random.default_rng(7)
    estimates, ses = [], []
    for _ in range(400):
        times, causes = _competing_sample(rng, 300, (0.3, 0.7), 0.4)
        ci = aalen_johansen(times, causes, 1)
        estimates.append(float(ci.at(1.5)))
        ses.append(float(ci.se_at(1.5)))
    assert np.mean(ses) == pytest.approx(np.std(estimates, ddof=1), rel=0.15)


@pytest.mark.parametrize(
    ("times", "causes", "cause", "match"),
    [
        ([1.0, 2.0], [1], 1, "one length"),
        ([1.0, -2.0], [1, 0], 1, "finite and >= 0"),
        ([1.0, math.nan], [1, 0], 1, "finite and >= 0"),
        ([1.0, 2.0], [1, -1], 1, "integers >= 0"),
        ([1.0, 2.0], [1.5, 0.0], 1, "integers >= 0"),
        ([1.0, 2.0], [1, 0], 0, "cause must be >= 1"),
    ],
)
def test_aalen_johansen_rejects_bad_input(
    times: list[float], causes: list[float], cause: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        aalen_johansen(times, causes, cause)


def test_aalen_johansen_empty_and_all_censored() -> None:
    empty = aalen_johansen([], np.array([], dtype=int), 1)
    assert list(empty.time) == [0.0] and list(empty.estimate) == [0.0]
    censored = aalen_johansen([1.0, 2.0], [0, 0], 1)
    assert list(censored.estimate) == [0.0]
