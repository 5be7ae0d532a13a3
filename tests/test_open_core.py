"""The common changes are local: new drivers, a new drug, made outside ``sim/``.

Each part here is what a contributor would write (``docs/contributing.md``):
nothing under ``sim/`` knows about it, and the checks that guard the built-in
parts pass for it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from sim import Schedule, load_scenario, simulate_cohort
from sim.drugs import Drug
from sim.hazards import DRIVERS, Driver, FloatArray, Inputs, Intervals, Plan, register_driver
from sim.results.exports import nonmem_dosing, sdtm_ex
from tests.conftest import BASE
from tests.hazard_checks import check_driver


@register_driver
@dataclass(frozen=True)
class AgeLogLinear(Driver):
    """``per_decade ** ((age - reference) / 10)``: a multiplier that reads a covariate."""

    per_decade: float
    reference_years: float = 50.0

    @property
    def inputs(self) -> Inputs:
        return Inputs(covariates=frozenset({"age_years"}))

    def multiplier(self, iv: Intervals) -> FloatArray:
        age = np.asarray(iv.covariate("age_years"), dtype=np.float64)
        return np.asarray(self.per_decade ** ((age - self.reference_years) / 10.0))

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls(1.4), cls(0.8, reference_years=40.0))


@register_driver
@dataclass(frozen=True)
class MpaEmax(Driver):
    """``1 + emax * AUC / (ec50 + AUC)`` on MPA AUC0-12: a multiplier that reads PK exposure."""

    emax: float
    ec50_mg_h_per_l: float
    drug: str = "mmf"

    @property
    def inputs(self) -> Inputs:
        return Inputs(exposure=frozenset({self.drug}))

    def multiplier(self, iv: Intervals) -> FloatArray:
        auc = iv.steady_state_auc(self.drug, 12.0)
        return 1.0 + self.emax * auc / (self.ec50_mg_h_per_l + auc)

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls(2.0, 30.0),)


@register_driver
@dataclass(frozen=True)
class AgeByExposure(Driver):
    """Both at once: an exposure effect that grows with age."""

    per_mg_h_per_l_per_decade: float

    @property
    def inputs(self) -> Inputs:
        return Inputs(exposure=frozenset({"mmf"}), covariates=frozenset({"age_years"}))

    def multiplier(self, iv: Intervals) -> FloatArray:
        slope = self.per_mg_h_per_l_per_decade * np.asarray(iv.covariate("age_years")) / 10.0
        return np.exp(slope * (iv.steady_state_auc("mmf", 12.0) - 45.0))

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls(0.004),)


@register_driver
@dataclass(frozen=True)
class AgeAfterDay(Driver):
    """A covariate effect that starts on a day: reads a covariate and time."""

    day: float
    per_decade: float = 1.3

    @property
    def inputs(self) -> Inputs:
        return Inputs(covariates=frozenset({"age_years"}), time=True)

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        return np.array([self.day]) if t0 < self.day < t1 else np.empty(0)

    def multiplier(self, iv: Intervals) -> FloatArray:
        age = np.asarray(iv.covariate("age_years"), dtype=np.float64)
        after = np.where(iv.starts >= self.day, 1.0, 0.0)
        return np.asarray(self.per_decade ** (after * (age - 50.0) / 10.0))

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls(150.0),)  # a day no base-scenario driver breaks on


@register_driver
@dataclass(frozen=True)
class AgeByDose(Driver):
    """A dose effect that grows with age: reads a covariate and a drug's current dose."""

    drug: str = "prednisone"

    @property
    def inputs(self) -> Inputs:
        return Inputs(covariates=frozenset({"age_years"}), doses=frozenset({self.drug}))

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        days = np.asarray(plan.schedule(self.drug).change_days, dtype=np.float64)
        return days[(days > t0) & (days < t1)]

    def multiplier(self, iv: Intervals) -> FloatArray:
        age = np.asarray(iv.covariate("age_years"), dtype=np.float64)
        return np.exp(age / 1000.0 * iv.dose(self.drug) / 10.0)

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls("prednisone"), cls("mmf"))


def test_a_driver_of_the_patient_and_the_plan_passes_the_shortcut_checks() -> None:
    """Its own breakpoints and drugs join the shared templates (a review found a template
    missing them: shared across MMF plans, cut at the wrong days)."""
    for driver in (*AgeAfterDay.examples(), *AgeByDose.examples()):
        check_driver(driver)


def test_new_drivers_register_themselves() -> None:
    assert {"AgeLogLinear", "MpaEmax", "AgeByExposure"} <= set(DRIVERS)
    assert AgeLogLinear(1.4).inputs.patient_specific and AgeLogLinear(1.4).inputs.per_dose


def test_a_covariate_driver_passes_the_shortcut_checks_unchanged() -> None:
    for driver in AgeLogLinear.examples():
        check_driver(driver)


def test_an_exposure_driver_passes_the_shortcut_checks_unchanged() -> None:
    for driver in (*MpaEmax.examples(), *AgeByExposure.examples()):
        check_driver(driver)


def test_a_third_drug_added_through_the_python_api_is_given_and_exported() -> None:
    """A drug with a fixed regimen and no PK model: every patient takes it until they
    leave, its doses are in the dosing records, and nothing else changes (its schedule
    draws no random numbers: common random numbers hold)."""
    scenario = load_scenario(BASE)
    duration = scenario.treatment.duration_days
    hcq = Drug.fixed("hydroxychloroquine", "Hydroxychloroquine", Schedule.constant(400.0, 400, 2))
    with_hcq = simulate_cohort(scenario, 40, seed=4, drugs=[hcq])
    without = simulate_cohort(scenario, 40, seed=4)
    pd.testing.assert_frame_equal(with_hcq.patients, without.patients)
    pd.testing.assert_frame_equal(with_hcq.events, without.events)
    assert [d.name for d in with_hcq.drugs] == ["prednisone", "mmf", "hydroxychloroquine"]

    dosing = nonmem_dosing(with_hcq, 0, "S")
    mine = dosing[dosing["DRUG"] == "HYDROXYCHLOROQUINE"]
    assert len(mine) == len(with_hcq.patients)  # one constant segment each
    for (pid, exit_day, status), rec in zip(
        with_hcq.patients[["patient_id", "exit_day", "status"]].itertuples(index=False),
        mine.itertuples(),
        strict=True,
    ):
        last = duration if status == "completed" else min(int(exit_day) + 1, duration)
        assert pid == rec.ID and rec.AMT == 200.0 and rec.II == 0.5
        assert 400.0 * last == rec.AMT * (rec.ADDL + 1)  # every dose up to the day of exit
    others = dosing[dosing["DRUG"] != "HYDROXYCHLOROQUINE"].reset_index(drop=True)
    pd.testing.assert_frame_equal(others, nonmem_dosing(without, 0, "S"))

    ex = sdtm_ex(with_hcq, 0, "S")
    assert set(ex["EXTRT"]) == {"PREDNISONE", "MYCOPHENOLATE MOFETIL", "HYDROXYCHLOROQUINE"}
    assert (ex.loc[ex["EXTRT"] == "HYDROXYCHLOROQUINE", "EXDOSFRQ"] == "BID").all()


def test_a_drug_name_is_a_lower_case_identifier_and_unique() -> None:
    with pytest.raises(ValueError, match="lower-case identifier"):
        Drug.fixed("Hydroxy Chloroquine", "HCQ", Schedule.constant(400.0, 10))
    scenario = load_scenario(BASE)
    twin = Drug.fixed("mmf", "MMF again", Schedule.constant(500.0, 10))
    with pytest.raises(ValueError, match="share a name"):
        simulate_cohort(scenario, 2, seed=1, drugs=[twin])


def test_a_subclass_does_not_take_over_its_parents_scenario_name() -> None:
    from sim.hazards import CurrentDose, driver_from

    @register_driver
    @dataclass(frozen=True)
    class SteeperDose(CurrentDose):
        @classmethod
        def examples(cls) -> Sequence[Driver]:
            return (cls(2.0),)

    scenario = load_scenario(BASE)
    made = [driver_from(m) for ae in scenario.adverse_events.values() for m in ae.multipliers]
    assert not any(isinstance(d, SteeperDose) for d in made)


def test_an_action_name_is_registered_once_with_a_known_aeacn() -> None:
    from sim.actions import DoseAction, MmfWithdrawal, register_action

    class Twin(MmfWithdrawal):
        name = "mmf_stop"

    with pytest.raises(ValueError, match="already"):
        register_action(Twin)

    class Odd(DoseAction):
        name, done, aeacn, drug = "mmf_odd", "mmf_odded", "DOSE ODD", "mmf"

        def change(self, schedule, day, setting):  # type: ignore[no-untyped-def]
            return None

    with pytest.raises(ValueError, match="aeacn"):
        register_action(Odd)


def test_templates_are_kept_by_end_of_follow_up_and_doses_per_day() -> None:
    """A cache asked for another end of follow-up, or a plan of MMF at another number of
    doses a day, computes afresh (a review found the 100-day template reused at 364)."""
    from sim.hazards import HazardGrid, TemplateCache
    from tests.hazard_checks import base_parts, fresh, one_plan, patients

    scenario, ctx = base_parts()
    mpa, cov = patients(scenario, 1, np.random.default_rng(9))
    plan = one_plan(ctx, ctx.prednisone(45.0), ctx.planned_mmf, mpa, cov, 0)
    shared = TemplateCache(ctx.hazards, "mmf", ctx.mmf_levels, ctx.planned_mmf.doses_per_day)
    short = HazardGrid(ctx.hazards, plan, 100.0, shared)
    long = HazardGrid(ctx.hazards, plan, 364.0, shared)
    assert short.starts[-1] < 100.0 and long.starts[-1] > 100.0
    np.testing.assert_allclose(long.cum, fresh(ctx.hazards, plan).cum, rtol=1e-12)
    tid = Schedule(ctx.planned_mmf.change_days, ctx.planned_mmf.doses_mg_per_day, 364, 3)
    plan3 = one_plan(ctx, ctx.prednisone(45.0), tid, mpa, cov, 0)
    assert shared.template(plan3, 364.0).level_col is None  # no lookup at 3 doses a day
    assert shared.template(plan, 364.0).level_col is not None
