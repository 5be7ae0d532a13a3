"""The batched and shared hazard grids against a grid built from scratch for one patient.

The cohort model computes the first event times of many patients on a few plans
at once (``plan_grids``), reuses each plan's plan-only rates across patients,
and splits a shared grid at a patient's windows of raised death risk. Each of
these must give what the plain one-patient grid (``_grid``: every hazard's rate
on the union of every breakpoint) gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import load_scenario
from sim.exposure import etas_from_normals, pk_model
from sim.hazards import (
    MULTIPLIER_CEILING,
    CurrentDose,
    FloatArray,
    Hazard,
    HazardGrid,
    Intervals,
    MpaAuc,
    MpaBands,
    Plan,
    TimeBands,
    Windows,
    _crossing,
    _grid,
    pk_level_multipliers,
    plan_grids,
    template_cache,
)
from sim.model import _context, _mmf_levels, _row_of, _rows_of, apply_dose_action
from sim.population import DRAWS_PER_PERSON, draw_people
from sim.scenario import MmfHold, MmfReduce, MmfStop
from tests.conftest import BASE

END = 364.0


def _scenario_parts():  # type: ignore[no-untyped-def]
    scenario = load_scenario(BASE)
    ctx = _context(scenario)
    # one more hazard mixing a plan driver and PK drivers, to check the split of
    # a rate into the plan's part (shared) and the patient's part
    mixed = Hazard(
        "mixed",
        0.3,
        (
            CurrentDose(1.5, cap=4.0),
            MpaAuc(0.03, 40.0, cap=3.0),
            TimeBands((100.0,), (1.0, 0.5)),
            MpaBands((35.0,), (1.5, 1.0)),
        ),
    )
    return scenario, ctx, [*ctx.hazards, mixed]


def _fresh(hazards: list[Hazard], plan: Plan) -> HazardGrid:
    starts, ends, rates = _grid(hazards, plan, 0.0, END)
    cum = np.concatenate((np.zeros((len(hazards), 1)), np.cumsum(rates * (ends - starts), 1)), 1)
    return HazardGrid._of(starts, ends, rates, cum)


def _models(scenario, n: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    weights = rng.uniform(40, 90, n)
    etas = etas_from_normals(scenario.exposure.mpa, rng.standard_normal((n, 2)))
    return pk_model(scenario.exposure.mpa, weights, etas)


def test_plan_grids_equal_one_patient_grids() -> None:
    scenario, ctx, hazards = _scenario_parts()
    rng = np.random.default_rng(5)
    n = 40
    mpa = _models(scenario, n, rng)
    doses = [40.0, 45.0, 55.0, 60.0]
    plans = [Plan(ctx.prednisone(mg), ctx.planned_mmf) for mg in doses]
    group = rng.integers(0, len(doses), n)
    targets = rng.standard_exponential((n, len(hazards))) * rng.choice([0.01, 0.1, 1.0], n)[:, None]
    shared: dict = {}
    starts, ends, rates, cum, times = plan_grids(
        hazards, plans, group, _rows_of(mpa, np.arange(n)), END, shared, targets
    )
    for p in range(n):
        plan = Plan(plans[group[p]].prednisone, ctx.planned_mmf, _row_of(mpa, p))
        fresh = _fresh(hazards, plan)
        np.testing.assert_allclose(times[p], fresh.crossing(targets[p]), rtol=1e-12, atol=1e-9)
        mine = HazardGrid._of(starts[p], ends[p], rates[p], cum[p])
        for t in (0.0, 13.5, 14.0, 27.9, 100.0, 250.25, END):
            np.testing.assert_allclose(mine.at(t), fresh.at(t), rtol=1e-12, atol=1e-15)
        # the shared one-patient path agrees too
        shared_grid = HazardGrid(hazards, plan, END, shared)
        np.testing.assert_allclose(
            shared_grid.crossing(targets[p]), fresh.crossing(targets[p]), rtol=1e-12, atol=1e-9
        )
    assert np.isfinite(times).any() and np.isinf(times).any()  # both cases exercised


def test_windows_split_the_shared_grid_as_a_fresh_grid_would() -> None:
    scenario, ctx, hazards = _scenario_parts()
    rng = np.random.default_rng(8)
    mpa = _models(scenario, 1, rng)
    plan = Plan(ctx.prednisone(55.0), ctx.planned_mmf, _row_of(mpa, 0))
    windows = Windows(((30.5, 90.5), (200.25, 260.25)), 5.0)
    death = len(hazards) - 2  # any row works; death in the model
    with_windows = [*hazards]
    with_windows[death] = hazards[death].with_driver(windows)
    fresh = _fresh(with_windows, plan)
    split = HazardGrid(hazards, plan, END, {}, extra={death: windows})
    for t in np.linspace(0, END, 97):
        np.testing.assert_allclose(split.at(t), fresh.at(t), rtol=1e-12, atol=1e-15)
    targets = rng.standard_exponential(len(hazards)) * 0.05
    np.testing.assert_allclose(split.crossing(targets), fresh.crossing(targets), rtol=1e-12)


def test_plan_grids_refuse_windows_and_mixed_mmf_plans() -> None:
    _, ctx, hazards = _scenario_parts()
    plan = Plan(ctx.prednisone(60.0), ctx.planned_mmf)
    windowed = [hazards[0].with_driver(Windows(((1.0, 2.0),), 2.0))]
    with pytest.raises(ValueError, match="windows"):
        plan_grids(windowed, [plan], np.zeros(1, int), None, END, {}, np.ones((1, 1)))
    other = Plan(ctx.prednisone(60.0), ctx.planned_mmf.capped_at(1000.0))
    with pytest.raises(ValueError, match="one MMF"):
        plan_grids(hazards[:1], [plan, other], np.zeros(1, int), None, END, {}, np.ones((1, 1)))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6),
)
def test_people_do_not_depend_on_the_block_size(seed: int, sizes: list[int]) -> None:
    """Person k is row k of the stream however the people are drawn in blocks."""
    scenario = load_scenario(BASE)
    pop, elig = scenario.population, scenario.eligibility
    assert pop is not None
    total = sum(sizes)
    whole = draw_people(pop, elig, np.random.default_rng(seed), np.arange(total))
    rng = np.random.default_rng(seed)
    first = 0
    for size in sizes:
        block = draw_people(pop, elig, rng, np.arange(first, first + size))
        for name in ("weight_kg", "age_years", "eligible", "pk_normals", "thresholds"):
            np.testing.assert_array_equal(
                getattr(block, name), getattr(whole, name)[first : first + size]
            )
        first += size
    # and each row used exactly DRAWS_PER_PERSON uniforms
    after = np.random.default_rng(seed)
    after.random(total * DRAWS_PER_PERSON)
    assert after.random() == rng.random()


def test_a_template_cache_serves_one_list_of_hazards() -> None:
    scenario, ctx, hazards = _scenario_parts()
    mpa = _row_of(_models(scenario, 1, np.random.default_rng(3)), 0)
    plan = Plan(ctx.prednisone(60.0), ctx.planned_mmf, mpa)
    shared: dict = {}
    HazardGrid(hazards[:3], plan, END, shared)
    with pytest.raises(ValueError, match="one list of hazards"):
        HazardGrid(hazards, plan, END, shared)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_hazards=st.integers(1, 8),
    n_intervals=st.integers(1, 30),
    zero_rates=st.booleans(),
)
def test_one_grid_crossings_equal_the_batched_routine(
    seed: int, n_hazards: int, n_intervals: int, zero_rates: bool
) -> None:
    """A grid's crossings (plain floats) are exactly those of the numpy routine."""
    rng = np.random.default_rng(seed)
    edges = np.unique(np.round(rng.uniform(0, END, n_intervals + 1), 1))
    if edges.size < 2:
        edges = np.array([0.0, END])
    starts, ends = edges[:-1], edges[1:]
    rates = rng.exponential(0.01, (n_hazards, starts.size))
    if zero_rates:
        rates[rng.random(rates.shape) < 0.5] = 0.0
    cum = np.zeros((n_hazards, starts.size + 1))
    np.cumsum(rates * (ends - starts), axis=1, out=cum[:, 1:])
    # targets inside, beyond the end, and exactly on a cumulative value
    targets = rng.exponential(1.0, n_hazards) * rng.choice([0.01, 0.5, 5.0], n_hazards)
    targets[0] = cum[0, rng.integers(1, starts.size + 1)] or targets[0]
    grid = HazardGrid._of(starts, ends, rates, cum)
    expected = _crossing(starts, rates, cum, targets)
    np.testing.assert_array_equal(grid.crossing(targets), expected)
    for k in range(n_hazards):
        one = grid.crossing_one(k, float(targets[k]))
        assert one == expected[k] or (np.isnan(one) and np.isnan(expected[k]))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    changes=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 363)), min_size=1, max_size=4),
)
def test_pk_multipliers_looked_up_by_mmf_dose_equal_computed_ones(
    seed: int, changes: list[tuple[int, int]]
) -> None:
    """After dose modifications, the grid with the PK part looked up at the MMF doses
    (``pk_levels``) is the grid computed afresh, bit for bit; every dose the scenario's
    actions reach is one of the context's MMF doses."""
    scenario, ctx, hazards = _scenario_parts()
    rng = np.random.default_rng(seed)
    n = 3
    mpa = _models(scenario, n, rng)
    actions = [a for event in ctx.actions for a in event if a.action.startswith("mmf")]
    actions.append(MmfStop(action="mmf_stop"))
    weight = 60.0
    prednisone, mmf = ctx.prednisone(50.0), ctx.planned_mmf
    for which, day in sorted(changes, key=lambda c: c[1]):
        change = apply_dose_action(
            actions[which % len(actions)], scenario, weight, prednisone, mmf, day
        )
        if change is not None:
            prednisone, mmf = change[0], change[1]
    assert set(mmf.doses_mg_per_day) <= set(ctx.mmf_levels)
    own_plan = Plan(prednisone, mmf, _rows_of(mpa, np.arange(n)))
    looked_up: dict = template_cache(ctx.mmf_levels)
    levels = pk_level_multipliers(hazards, own_plan, looked_up)
    assert levels is not None and levels.shape == (n, 3, len(ctx.mmf_levels))  # 3 read PK
    for p in range(n):
        plan = Plan(prednisone, mmf, _row_of(mpa, p))
        fast = HazardGrid(hazards, plan, END, looked_up, pk_levels=levels[p])
        slow = HazardGrid(hazards, plan, END, {})
        for name in ("starts", "rates", "cum"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    assert all(t.level_col is not None for k, t in _templates(looked_up))  # the lookup was used


def _templates(shared: dict) -> list:  # type: ignore[type-arg]
    return [(k, v[2]) for k, v in shared.items() if len(k) == 2 and isinstance(k[0], int)]


def test_a_dose_outside_the_mmf_doses_is_computed_afresh() -> None:
    scenario, ctx, hazards = _scenario_parts()
    mpa = _models(scenario, 1, np.random.default_rng(2))
    mmf = ctx.planned_mmf.capped_at(1234.0)  # no action gives this dose
    plan = Plan(ctx.prednisone(45.0), mmf, _row_of(mpa, 0))
    shared: dict = template_cache(ctx.mmf_levels)
    levels = pk_level_multipliers(
        hazards, Plan(plan.prednisone, mmf, _rows_of(mpa, np.arange(1))), shared
    )
    assert levels is not None
    fast = HazardGrid(hazards, plan, END, shared, pk_levels=levels[0])
    assert [t.level_col for _, t in _templates(shared)] == [None]
    np.testing.assert_array_equal(fast.cum, HazardGrid(hazards, plan, END, {}).cum)


@settings(max_examples=40, deadline=None)
@given(
    by=st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.7]),
    floor=st.sampled_from([0.0, 0.4, 0.5, 1.0]),
    days=st.lists(st.integers(1, 363), min_size=1, max_size=6),
)
def test_the_mmf_doses_hold_every_dose_a_chain_of_reductions_reaches(
    by: float, floor: float, days: list[int]
) -> None:
    scenario, ctx, _ = _scenario_parts()
    reduce = MmfReduce(action="mmf_reduce", by_g_per_day=by, floor_g_per_day=floor)
    hold = MmfHold(action="mmf_hold", days=14, resume_reduce_by_g_per_day=by / 2)
    levels = _mmf_levels(ctx.planned_mmf, [(reduce,), (hold,)])
    prednisone, mmf = ctx.prednisone(50.0), ctx.planned_mmf
    for k, day in enumerate(sorted(days)):
        change = apply_dose_action((reduce, hold)[k % 2], scenario, 60.0, prednisone, mmf, day)
        if change is not None:
            mmf = change[1]
    assert set(mmf.doses_mg_per_day) <= set(levels)


def test_a_looked_up_rate_that_overflows_is_refused() -> None:
    scenario, ctx, _ = _scenario_parts()
    # the multiplier is cut at MULTIPLIER_CEILING (1000): a baseline of 1.5e308 makes the rate inf
    hazards = [Hazard("huge", 1.5e308, (MpaAuc(1.0, -600.0),))]
    mpa = _models(scenario, 1, np.random.default_rng(4))
    plan = Plan(ctx.prednisone(45.0), ctx.planned_mmf, _row_of(mpa, 0))
    shared: dict = template_cache(ctx.mmf_levels)
    levels = pk_level_multipliers(
        hazards, Plan(plan.prednisone, plan.mmf, _rows_of(mpa, np.arange(1))), shared
    )
    assert levels is not None and np.isfinite(levels).all()
    with np.errstate(over="ignore"), pytest.raises(FloatingPointError, match="not finite"):
        HazardGrid(hazards, plan, END, shared, pk_levels=levels[0])
    with np.errstate(over="ignore"), pytest.raises(FloatingPointError, match="not finite"):
        HazardGrid(hazards, plan, END, {})


@dataclass(frozen=True)
class _UncappedMpaAuc(MpaAuc):
    """A driver whose multiplier can be inf (no driver of the scenario's can be, since
    MULTIPLIER_CEILING): the safety net below it must still refuse one."""

    def _multiplier(self, iv: Intervals) -> FloatArray:
        return np.asarray(
            np.exp(self.per_mg_h_per_l * (iv.mpa_auc0_12 - self.reference_mg_h_per_l))
        )


def test_log_linear_multipliers_are_cut_at_the_ceiling() -> None:
    scenario, ctx, _ = _scenario_parts()
    mpa = _models(scenario, 1, np.random.default_rng(4))
    plan = Plan(ctx.prednisone(45.0), ctx.planned_mmf, _row_of(mpa, 0))
    starts, ends = np.array([0.0, 100.0]), np.array([100.0, 364.0])
    with np.errstate(over="raise"):  # no overflow warning on the way either
        big = MpaAuc(1.0, -700.0).multiplier(plan, starts, ends)
        dose = CurrentDose(1000.0).multiplier(plan, starts, ends)
    assert (big == MULTIPLIER_CEILING).all() and (dose == MULTIPLIER_CEILING).all()
    small = MpaAuc(0.01, 60.0).multiplier(plan, starts, ends)
    assert (small < MULTIPLIER_CEILING).all()  # below the ceiling: the formula's own value


def test_no_lookup_when_a_multiplier_is_not_finite_at_some_dose() -> None:
    """The grids then compute the PK part, and refuse it only where it is reached."""
    scenario, ctx, _ = _scenario_parts()
    hazards = [Hazard("huge", 0.1, (_UncappedMpaAuc(1.0, -700.0),))]  # e^(700 + AUC): inf
    mpa = _models(scenario, 2, np.random.default_rng(6))
    plan = Plan(ctx.prednisone(45.0), ctx.planned_mmf, _rows_of(mpa, np.arange(2)))
    with np.errstate(over="ignore"):
        assert pk_level_multipliers(hazards, plan, template_cache(ctx.mmf_levels)) is None
        held = Plan(plan.prednisone, ctx.planned_mmf.capped_at(0.0), _row_of(mpa, 0))
        assert np.isfinite(HazardGrid(hazards, held, END, {}).cum).all()  # no MMF: finite
