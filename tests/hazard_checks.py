"""The shortcut checks every hazard driver must pass, reusable for a driver defined anywhere.

The cohort model never computes a patient's grid from scratch when it can
avoid it: it computes many patients at once on a few plans (``plan_grids``),
shares each plan's rates between patients (the template cache), splits a shared
grid at a patient's windows, and looks up a patient's own multipliers by dose
after a dose modification. Each shortcut must give what the plain one-patient
grid gives (``_grid``: every hazard's rate on the union of every breakpoint).
:func:`check_driver` runs every shortcut for one driver, put in a hazard beside
the base scenario's and between a dose driver and a time driver (so that the
split of a rate into the plan's part and the patient's own part is exercised).

``tests/test_hazards.py`` runs it over every registered driver;
``docs/contributing.md`` tells a contributor to do the same for a new one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim import load_scenario
from sim.actions import DoseAction, apply_dose_action
from sim.exposure import OralOneCompartment, etas_from_normals, pk_model
from sim.hazards import CurrentDose, Driver, Hazard, HazardGrid, Plan, TemplateCache, TimeBands
from sim.hazards.grids import _grid, plan_grids
from sim.hazards.plan import COVARIATES
from sim.scenario import MmfStop, Scenario
from sim.schedule import Schedule
from sim.trial.context import TrialContext, context_for
from tests.conftest import BASE

END = 364.0
START_DOSES_MG = (40.0, 45.0, 55.0, 60.0)


def base_parts() -> tuple[Scenario, TrialContext]:
    scenario = load_scenario(BASE)
    return scenario, context_for(scenario)


def with_probe(ctx: TrialContext, driver: Driver, alone: bool = False) -> list[Hazard]:
    """The scenario's hazards and one more that mixes ``driver`` with plan-only drivers;
    ``alone``: a hazard of ``driver`` alone (no other driver's breakpoints to hide behind)."""
    if alone:
        return [Hazard("alone", 0.3, (driver,))]
    probe = Hazard(
        "probe", 0.3, (CurrentDose(1.5, cap=4.0), driver, TimeBands((100.0,), (1.0, 0.5)))
    )
    return [*ctx.hazards, probe]


def patients(
    scenario: Scenario, n: int, rng: np.random.Generator
) -> tuple[OralOneCompartment, dict[str, np.ndarray]]:
    """``n`` patients' MPA models (arrays of shape (n,)) and covariates (arrays of shape (n,))."""
    weights = rng.uniform(40, 90, n)
    assert scenario.exposure is not None
    etas = etas_from_normals(scenario.exposure.mpa, rng.standard_normal((n, 2)))
    covariates = {
        "age_years": rng.uniform(18, 85, n),
        "weight_kg": weights,
        "female": (rng.random(n) < 0.6).astype(float),
        "fvc_percent": rng.uniform(40, 100, n),
    }
    assert set(covariates) == set(COVARIATES)
    return pk_model(scenario.exposure.mpa, weights, etas), covariates


def one_plan(
    ctx: TrialContext, prednisone, mmf, mpa: OralOneCompartment, cov: dict, p: int
) -> Plan:  # type: ignore[no-untyped-def]
    """Patient ``p``'s plan: scalars."""
    return ctx.plan(prednisone, mmf, {"mmf": mpa.row(p)}, {k: float(v[p]) for k, v in cov.items()})


def many_plan(ctx: TrialContext, prednisone, mmf, mpa, cov: dict, rows) -> Plan:  # type: ignore[no-untyped-def]
    """Patients ``rows``' plan: arrays of shape (P, 1)."""
    return ctx.plan(
        prednisone, mmf, {"mmf": mpa.rows(rows)}, {k: v[rows, None] for k, v in cov.items()}
    )


def fresh(hazards: Sequence[Hazard], plan: Plan) -> HazardGrid:
    """The grid computed from scratch: every rate on the union of every breakpoint."""
    starts, ends, rates = _grid(hazards, plan, 0.0, END)
    cum = np.concatenate((np.zeros((len(hazards), 1)), np.cumsum(rates * (ends - starts), 1)), 1)
    return HazardGrid.of_arrays(starts, ends, rates, cum)


def after_actions(
    scenario: Scenario, ctx: TrialContext, changes: Sequence[tuple[int, int]]
) -> dict[str, Schedule]:
    """A 60 kg patient's schedules (start 50 mg/day) after the scenario's MMF actions and an
    MMF stop: ``(which action, day)``, taken in day order."""
    actions = [a for e in ctx.actions for a in e if isinstance(a, DoseAction) and a.drug == "mmf"]
    actions.append(MmfStop(action="mmf_stop"))
    schedules = ctx.schedules(ctx.prednisone(50.0))
    for which, day in sorted(changes, key=lambda c: c[1]):
        change = apply_dose_action(actions[which % len(actions)], scenario, 60.0, schedules, day)
        if change is not None:
            schedules = {**schedules, change.drug: change.schedule}
    return schedules


def check_plan_grids(driver: Driver, seed: int = 5, n: int = 30, alone: bool = False) -> None:
    """Many patients on a few plans at once, and the shared one-patient grid, equal fresh grids."""
    scenario, ctx = base_parts()
    hazards = with_probe(ctx, driver, alone)
    rng = np.random.default_rng(seed)
    mpa, cov = patients(scenario, n, rng)
    plans = [ctx.plan(ctx.prednisone(mg), ctx.planned_mmf) for mg in START_DOSES_MG]
    group = rng.integers(0, len(plans), n)
    targets = rng.standard_exponential((n, len(hazards))) * rng.choice([0.01, 0.1, 1.0], n)[:, None]
    shared = TemplateCache(hazards, "mmf", ctx.mmf_levels)
    rows = np.arange(n)
    pk = {"mmf": mpa.rows(rows)}
    covariates = {k: cov[k][rows, None] for k in shared.parts.covariates}
    starts, ends, rates, cum, times = plan_grids(
        hazards, plans, group, pk, covariates, END, shared, targets
    )
    for p in range(n):
        plan = one_plan(ctx, plans[group[p]].schedules["prednisone"], ctx.planned_mmf, mpa, cov, p)
        expected = fresh(hazards, plan)
        np.testing.assert_allclose(times[p], expected.crossing(targets[p]), rtol=1e-12, atol=1e-9)
        mine = HazardGrid.of_arrays(starts[p], ends[p], rates[p], cum[p])
        for t in (0.0, 13.5, 14.0, 27.9, 100.0, 250.25, END):
            np.testing.assert_allclose(mine.at(t), expected.at(t), rtol=1e-12, atol=1e-15)
        shared_grid = HazardGrid(hazards, plan, END, shared)
        np.testing.assert_allclose(
            shared_grid.crossing(targets[p]), expected.crossing(targets[p]), rtol=1e-12, atol=1e-9
        )
    if not alone:
        assert np.isfinite(times).any() and np.isinf(times).any()  # both cases exercised


def check_level_lookup(driver: Driver, seed: int = 3, n: int = 3, alone: bool = False) -> None:
    """After dose modifications, the grid with the patient's own part looked up at the MMF
    doses is the grid computed afresh (or no lookup is offered).

    To rounding: numpy may evaluate a power or an exponential of an array and of a
    0-d array (one patient's covariate) with different routines, one unit in the last
    place apart. The built-in drivers agree bit for bit (``tests/test_hazards.py``), and
    either way a run takes the same path whatever its workers.
    """
    scenario, ctx = base_parts()
    hazards = with_probe(ctx, driver, alone)
    rng = np.random.default_rng(seed)
    mpa, cov = patients(scenario, n, rng)
    given = after_actions(scenario, ctx, ((0, 20), (1, 90), (2, 150), (-1, 300)))
    prednisone, mmf = given["prednisone"], given["mmf"]
    assert set(mmf.doses_mg_per_day) <= set(ctx.mmf_levels)
    looked_up = TemplateCache(hazards, "mmf", ctx.mmf_levels)
    levels = looked_up.level_multipliers(many_plan(ctx, prednisone, mmf, mpa, cov, np.arange(n)))
    if looked_up.parts.per_dose and looked_up.parts.own:
        assert levels is not None and levels.shape[::2] == (n, len(ctx.mmf_levels))
    for p in range(n):
        plan = one_plan(ctx, prednisone, mmf, mpa, cov, p)
        fast = HazardGrid(
            hazards, plan, END, looked_up, pk_levels=None if levels is None else levels[p]
        )
        slow = HazardGrid(hazards, plan, END, TemplateCache(hazards))
        np.testing.assert_array_equal(fast.starts, slow.starts)
        for name in ("rates", "cum"):
            np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=1e-14)
        np.testing.assert_allclose(fast.cum, fresh(hazards, plan).cum, rtol=1e-12, atol=1e-15)


def check_windows_split(driver: Driver, seed: int = 8) -> None:
    """A shared grid split at a patient's windows (``extra``) equals a fresh grid with them."""
    scenario, ctx = base_parts()
    hazards = [*ctx.hazards]
    rng = np.random.default_rng(seed)
    mpa, cov = patients(scenario, 1, rng)
    plan = one_plan(ctx, ctx.prednisone(55.0), ctx.planned_mmf, mpa, cov, 0)
    row = len(hazards) - 1  # any row works
    with_driver = [*hazards]
    with_driver[row] = hazards[row].with_driver(driver)
    expected = fresh(with_driver, plan)
    split = HazardGrid(hazards, plan, END, TemplateCache(hazards), extra={row: driver})
    for t in np.linspace(0, END, 97):
        np.testing.assert_allclose(split.at(t), expected.at(t), rtol=1e-12, atol=1e-15)
    targets = rng.standard_exponential(len(hazards)) * 0.05
    np.testing.assert_allclose(split.crossing(targets), expected.crossing(targets), rtol=1e-12)


def check_driver(driver: Driver) -> None:
    """Every shortcut of the grids, for one driver."""
    if driver.inputs.patient_windows:
        check_windows_split(driver)  # such a driver is never in a shared grid
        return
    for alone in (False, True):
        check_plan_grids(driver, alone=alone)
        check_level_lookup(driver, alone=alone)
