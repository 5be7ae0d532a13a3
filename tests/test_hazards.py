"""The hazard drivers and the grids' shortcuts, against grids built from scratch.

The cohort model computes the first event times of many patients on a few plans
at once (``plan_grids``), reuses each plan's plan-only rates across patients,
splits a shared grid at a patient's windows of raised death risk, and looks up a
patient's own multipliers by dose. Each must give what the plain one-patient grid
(``_grid``: every hazard's rate on the union of every breakpoint) gives, for every
registered driver (``tests/hazard_checks.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import load_scenario
from sim.actions import apply_dose_action, dose_action, reachable_doses
from sim.draws import DRAWS_PER_PERSON
from sim.hazards import (
    DRIVERS,
    MULTIPLIER_CEILING,
    CurrentDose,
    Driver,
    FloatArray,
    Hazard,
    HazardGrid,
    Intervals,
    MpaAuc,
    MpaBands,
    Plan,
    TemplateCache,
    Windows,
    driver_from,
)
from sim.hazards.grids import _crossing, plan_grids
from sim.population import draw_people
from sim.scenario import MmfHold, MmfReduce
from tests.conftest import BASE
from tests.hazard_checks import (
    END,
    after_actions,
    base_parts,
    check_driver,
    many_plan,
    one_plan,
    patients,
)


def _examples() -> list[Driver]:
    return [example for cls in DRIVERS.values() for example in cls.examples()]


@pytest.mark.parametrize("driver", _examples(), ids=repr)
def test_every_registered_driver_passes_the_shortcut_checks(driver: Driver) -> None:
    check_driver(driver)


def test_the_scenario_names_its_drivers_through_the_registry() -> None:
    scenario = load_scenario(BASE)
    made = [driver_from(m) for ae in scenario.adverse_events.values() for m in ae.multipliers]
    assert made and all(
        type(d).scenario_name == m.driver
        for d, m in zip(
            made,
            [m for ae in scenario.adverse_events.values() for m in ae.multipliers],
            strict=True,
        )
    )
    named = {cls.scenario_name for cls in DRIVERS.values()} - {None}
    assert named == {
        "prednisone_dose", "prednisone_dose_bands", "weighted_cumulative_dose", "mpa_auc",
        "mpa_auc_bands", "time_on_study_bands", "covariate_bands",
    }  # fmt: skip


def test_the_template_cache_derives_its_parts_from_the_declarations() -> None:
    _, ctx = base_parts()
    parts = TemplateCache(ctx.hazards, "mmf", ctx.mmf_levels).parts
    reads_mpa = [
        i
        for i, h in enumerate(ctx.hazards)
        if any(isinstance(d, MpaAuc | MpaBands) for d in h.drivers)
    ]
    assert parts.own == reads_mpa and parts.split_drugs == ("mmf",)
    # (serious infection reads the MMF dose: x1.5 while MMF is given)
    assert parts.plan_drugs == ("mmf", "prednisone") and parts.per_dose and not parts.windows


def test_plan_grids_refuse_windows_and_mixed_mmf_plans() -> None:
    _, ctx = base_parts()
    plan = ctx.plan(ctx.prednisone(60.0), ctx.planned_mmf)
    windowed = [ctx.hazards[0].with_driver(Windows(((1.0, 2.0),), 2.0))]
    with pytest.raises(ValueError, match="windows"):
        plan_grids(windowed, [plan], np.zeros(1, int), {}, {}, END, TemplateCache(windowed),
                   np.ones((1, 1)))  # fmt: skip
    other = ctx.plan(ctx.prednisone(60.0), ctx.planned_mmf.capped_at(1000.0))
    hazards = ctx.hazards[:1]
    with pytest.raises(ValueError, match="one MMF"):
        plan_grids(hazards, [plan, other], np.zeros(1, int), {}, {}, END,
                   TemplateCache(hazards, "mmf"), np.ones((1, 1)))  # fmt: skip


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
    scenario, ctx = base_parts()
    mpa, cov = patients(scenario, 1, np.random.default_rng(3))
    plan = one_plan(ctx, ctx.prednisone(60.0), ctx.planned_mmf, mpa, cov, 0)
    first = ctx.hazards[:3]
    shared = TemplateCache(first)
    HazardGrid(first, plan, END, shared)
    with pytest.raises(ValueError, match="one list of hazards"):
        HazardGrid(ctx.hazards, plan, END, shared)


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
    grid = HazardGrid.of_arrays(starts, ends, rates, cum)
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
    scenario, ctx = base_parts()
    hazards = ctx.hazards
    rng = np.random.default_rng(seed)
    n = 3
    mpa, cov = patients(scenario, n, rng)
    given = after_actions(scenario, ctx, changes)
    prednisone, mmf = given["prednisone"], given["mmf"]
    assert set(mmf.doses_mg_per_day) <= set(ctx.mmf_levels)
    looked_up = TemplateCache(hazards, "mmf", ctx.mmf_levels)
    levels = looked_up.level_multipliers(many_plan(ctx, prednisone, mmf, mpa, cov, np.arange(n)))
    own = looked_up.parts.own
    assert levels is not None and levels.shape == (n, len(own), len(ctx.mmf_levels))
    for p in range(n):
        plan = one_plan(ctx, prednisone, mmf, mpa, cov, p)
        fast = HazardGrid(hazards, plan, END, looked_up, pk_levels=levels[p])
        slow = HazardGrid(hazards, plan, END, TemplateCache(hazards))
        for name in ("starts", "rates", "cum"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    assert all(t.level_col is not None for t in looked_up.templates())  # the lookup was used


def test_a_dose_outside_the_mmf_doses_is_computed_afresh() -> None:
    scenario, ctx = base_parts()
    mpa, cov = patients(scenario, 1, np.random.default_rng(2))
    mmf = ctx.planned_mmf.capped_at(1234.0)  # no action gives this dose
    plan = one_plan(ctx, ctx.prednisone(45.0), mmf, mpa, cov, 0)
    shared = TemplateCache(ctx.hazards, "mmf", ctx.mmf_levels)
    levels = shared.level_multipliers(many_plan(ctx, ctx.prednisone(45.0), mmf, mpa, cov, [0]))
    assert levels is not None
    fast = HazardGrid(ctx.hazards, plan, END, shared, pk_levels=levels[0])
    assert [t.level_col for t in shared.templates()] == [None]
    slow = HazardGrid(ctx.hazards, plan, END, TemplateCache(ctx.hazards))
    np.testing.assert_array_equal(fast.cum, slow.cum)


@settings(max_examples=40, deadline=None)
@given(
    by=st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.7]),
    floor=st.sampled_from([0.0, 0.4, 0.5, 1.0]),
    days=st.lists(st.integers(1, 363), min_size=1, max_size=6),
)
def test_the_mmf_doses_hold_every_dose_a_chain_of_reductions_reaches(
    by: float, floor: float, days: list[int]
) -> None:
    scenario, ctx = base_parts()
    reduce = MmfReduce(action="mmf_reduce", by_g_per_day=by, floor_g_per_day=floor)
    hold = MmfHold(action="mmf_hold", days=14, resume_reduce_by_g_per_day=by / 2)
    levels = reachable_doses("mmf", ctx.planned_mmf, [(dose_action(reduce),), (dose_action(hold),)])
    prednisone, mmf = ctx.prednisone(50.0), ctx.planned_mmf
    for k, day in enumerate(sorted(days)):
        schedules = {"prednisone": prednisone, "mmf": mmf}
        change = apply_dose_action((reduce, hold)[k % 2], scenario, 60.0, schedules, day)
        if change is not None:
            mmf = change.schedule
    assert set(mmf.doses_mg_per_day) <= set(levels)


def test_a_looked_up_rate_that_overflows_is_refused() -> None:
    scenario, ctx = base_parts()
    # the multiplier is cut at MULTIPLIER_CEILING (1000): a baseline of 1.5e308 makes the rate inf
    hazards = [Hazard("huge", 1.5e308, (MpaAuc(1.0, -600.0),))]
    mpa, cov = patients(scenario, 1, np.random.default_rng(4))
    plan = one_plan(ctx, ctx.prednisone(45.0), ctx.planned_mmf, mpa, cov, 0)
    shared = TemplateCache(hazards, "mmf", ctx.mmf_levels)
    levels = shared.level_multipliers(
        many_plan(ctx, ctx.prednisone(45.0), ctx.planned_mmf, mpa, cov, [0])
    )
    assert levels is not None and np.isfinite(levels).all()
    with np.errstate(over="ignore"), pytest.raises(FloatingPointError, match="not finite"):
        HazardGrid(hazards, plan, END, shared, pk_levels=levels[0])
    with np.errstate(over="ignore"), pytest.raises(FloatingPointError, match="not finite"):
        HazardGrid(hazards, plan, END, TemplateCache(hazards))


@dataclass(frozen=True)
class _UncappedMpaAuc(MpaAuc):
    """A driver whose multiplier can be inf (no driver of the scenario's can be, since
    MULTIPLIER_CEILING): the safety net below it must still refuse one."""

    def multiplier(self, iv: Intervals) -> FloatArray:
        auc = iv.steady_state_auc(self.drug, self.window_h)
        return np.asarray(np.exp(self.per_mg_h_per_l * (auc - self.reference_mg_h_per_l)))


@dataclass(frozen=True)
class _TimeReadingLiar(MpaAuc):
    """Declares the exposure alone but computes with the time: a lookup by dose would be
    wrong. (A comparison with the time cannot be caught: declarations are trusted, and
    ``tests/hazard_checks.py`` is what checks them.)"""

    def multiplier(self, iv: Intervals) -> FloatArray:
        return super().multiplier(iv) * (1.0 + iv.starts / 1000.0)


def test_log_linear_multipliers_are_cut_at_the_ceiling() -> None:
    scenario, ctx = base_parts()
    mpa, cov = patients(scenario, 1, np.random.default_rng(4))
    plan = one_plan(ctx, ctx.prednisone(45.0), ctx.planned_mmf, mpa, cov, 0)
    starts, ends = np.array([0.0, 100.0]), np.array([100.0, 364.0])
    with np.errstate(over="raise"):  # no overflow warning on the way either
        big = MpaAuc(1.0, -700.0).multiplier(Intervals(plan, starts, ends))
        dose = CurrentDose(1000.0).multiplier(Intervals(plan, starts, ends))
    assert (big == MULTIPLIER_CEILING).all() and (dose == MULTIPLIER_CEILING).all()
    small = MpaAuc(0.01, 60.0).multiplier(Intervals(plan, starts, ends))
    assert (small < MULTIPLIER_CEILING).all()  # below the ceiling: the formula's own value


def test_no_lookup_when_a_multiplier_is_not_finite_at_some_dose() -> None:
    """The grids then compute the PK part, and refuse it only where it is reached."""
    scenario, ctx = base_parts()
    hazards = [Hazard("huge", 0.1, (_UncappedMpaAuc(1.0, -700.0),))]  # e^(700 + AUC): inf
    mpa, cov = patients(scenario, 2, np.random.default_rng(6))
    plan = many_plan(ctx, ctx.prednisone(45.0), ctx.planned_mmf, mpa, cov, np.arange(2))
    with np.errstate(over="ignore"):
        assert TemplateCache(hazards, "mmf", ctx.mmf_levels).level_multipliers(plan) is None
        held = one_plan(ctx, ctx.prednisone(45.0), ctx.planned_mmf.capped_at(0.0), mpa, cov, 0)
        assert np.isfinite(HazardGrid(hazards, held, END, TemplateCache(hazards)).cum).all()


def test_a_driver_that_reads_more_than_it_declares_gets_no_lookup() -> None:
    """The lookup's intervals have NaN times: computing with them gives NaN, and no lookup."""
    scenario, ctx = base_parts()
    hazards = [Hazard("liar", 0.1, (_TimeReadingLiar(0.01, 40.0),))]
    mpa, cov = patients(scenario, 2, np.random.default_rng(6))
    plan = many_plan(ctx, ctx.prednisone(45.0), ctx.planned_mmf, mpa, cov, np.arange(2))
    with np.errstate(invalid="ignore"):
        assert TemplateCache(hazards, "mmf", ctx.mmf_levels).level_multipliers(plan) is None


def test_a_plan_without_a_drug_a_driver_reads_is_a_clear_error() -> None:
    hazards = [Hazard("x", 0.1, (MpaAuc(0.01, 40.0),))]
    _, ctx = base_parts()
    plan = Plan({"prednisone": ctx.prednisone(45.0)})
    with pytest.raises(ValueError, match="'mmf'"):
        HazardGrid(hazards, plan, END)
