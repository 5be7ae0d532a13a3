"""The template cache: each plan's intervals and plan-only rates, computed once and shared.

Patients on the same schedules share the breakpoints and every rate that
depends only on the plan; the rows of hazards whose drivers read something of
the patient's own (their PK, a covariate) hold the plan's part, for each patient
to multiply by their own part. Which part is which, where a template must split
and by which schedules it is keyed all follow from the drivers' declared
:class:`~sim.hazards.drivers.Inputs` (:class:`HazardParts`); nothing here names a
drug or a driver class.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from sim.hazards.drivers import Driver, Hazard, check_rates, sorted_edges
from sim.hazards.plan import FloatArray, Intervals, Plan
from sim.memo import IdentityCache
from sim.schedule import Schedule

__all__ = ["HazardParts", "PlanTemplate", "TemplateCache"]

_SHARED_GRIDS_MAX = 20_000


@dataclass(frozen=True)
class HazardParts:
    """What the drivers of a list of hazards declare, as the template cache uses it.

    Attributes
    ----------
    plan_parts : tuple of Hazard
        Each hazard with only its drivers that read the plan alone.
    own : list of int
        The hazards (rows) with a driver that reads the patient's own PK or covariates.
    own_drivers : tuple of tuple of Driver
        For each of ``own``, those drivers, in order.
    plan_drugs : tuple of str
        The drugs whose schedules the plan parts read: a template's key.
    split_drugs : tuple of str
        The drugs whose exposure the patient parts read: templates split where their
        doses change.
    covariates : tuple of str
        The covariates the patient parts read.
    windows : bool
        Whether a hazard reads windows of the patient's history (no sharing then).
    per_dose : bool
        Whether every patient part is a function of the current dose of ``level_drug``
        and of covariates alone, so it can be looked up by dose.
    own_plan_drivers : tuple of Driver
        The patient-part drivers that also read the plan (a dose, past doses, time):
        their breakpoints join every template's, the drugs they read its key, and
        :func:`~sim.hazards.grids.plan_grids` computes them plan by plan.
    """

    plan_parts: tuple[Hazard, ...]
    own: list[int]
    own_drivers: tuple[tuple[Driver, ...], ...]
    plan_drugs: tuple[str, ...]
    split_drugs: tuple[str, ...]
    covariates: tuple[str, ...]
    windows: bool
    per_dose: bool
    own_plan_drivers: tuple[Driver, ...] = ()

    @classmethod
    def of(cls, hazards: Sequence[Hazard], level_drug: str | None = None) -> HazardParts:
        """Read the declarations of every driver of ``hazards``."""

        def own_driver(d: Driver) -> bool:
            return d.inputs.patient_specific and not d.inputs.patient_windows

        own = [
            i for i, h in enumerate(hazards) if any(d.inputs.patient_specific for d in h.drivers)
        ]
        own_drivers = tuple(tuple(d for d in hazards[i].drivers if own_driver(d)) for i in own)
        plan_parts = tuple(
            Hazard(h.name, h.baseline_per_year, tuple(d for d in h.drivers if not own_driver(d)))
            for h in hazards
        )
        plan_drugs = {drug for h in plan_parts for d in h.drivers for drug in d.inputs.plan_drugs}
        mine = [d.inputs for ds in own_drivers for d in ds]
        split = {drug for i in mine for drug in i.exposure}
        # a patient part that also reads the plan: its breakpoints and drugs are the plan's
        own_plan = tuple(
            d for ds in own_drivers for d in ds if d.inputs.doses or d.inputs.dose_history
            or d.inputs.time
        )  # fmt: skip
        plan_drugs.update(drug for d in own_plan for drug in d.inputs.doses | d.inputs.dose_history)
        return cls(
            plan_parts=plan_parts,
            own=own,
            own_drivers=own_drivers,
            plan_drugs=tuple(sorted(plan_drugs)),
            split_drugs=tuple(sorted(split)),
            covariates=tuple(sorted({c for i in mine for c in i.covariates})),
            windows=any(d.inputs.patient_windows for h in hazards for d in h.drivers),
            per_dose=all(i.per_dose and i.exposure <= {level_drug} for i in mine),
            own_plan_drivers=own_plan,
        )

    def own_multiplier(self, j: int, iv: Intervals) -> FloatArray:
        """The product of the multipliers of row ``own[j]`` that read the patient's own."""
        m: Any = None
        for d in self.own_drivers[j]:
            m = d.multiplier(iv) if m is None else m * d.multiplier(iv)
        return np.asarray(1.0 if m is None else m, dtype=np.float64)


class PlanTemplate(NamedTuple):
    """A plan's intervals and the plan's part of every rate, shared by the patients on it."""

    starts: FloatArray
    ends: FloatArray
    widths: FloatArray
    """``ends - starts``, days."""
    rates: FloatArray
    """The plan's part of each hazard's rate on each interval, per day (hazards x intervals)."""
    own: list[int]
    """The hazards (rows) that a patient's own part multiplies."""
    level_doses: FloatArray
    """The dose of the cache's level drug on each interval (mg/day; zeros without one)."""
    starts_list: list[float]
    """``starts`` as floats, for merging with other breakpoints."""
    own_rates: FloatArray
    """``rates[own]``."""
    level_col: npt.NDArray[np.intp] | None
    """Each interval's level dose as a column of the cache's doses (None: not all are)."""


class _PlanRates(NamedTuple):
    """The plan's part of every rate on the plan parts' breakpoints (no split yet)."""

    starts: list[float]
    ends: FloatArray
    rates: FloatArray


class TemplateCache:
    """Plan templates of one list of hazards, shared by every patient of a scenario.

    Parameters
    ----------
    hazards : sequence of Hazard
        The list the templates serve (the very object: grids check it).
    level_drug : str, optional
        The drug at whose doses the patients' own multipliers are looked up
        (:meth:`level_multipliers`), e.g. ``"mmf"``.
    levels : sequence of float
        Those doses (mg/day): every dose a patient can be on.
    level_doses_per_day : int, optional
        The level drug's administrations per day at which the levels hold; a plan
        with another frequency is computed afresh.
    """

    def __init__(
        self,
        hazards: Sequence[Hazard],
        level_drug: str | None = None,
        levels: Sequence[float] = (),
        level_doses_per_day: int | None = None,
    ) -> None:
        self.hazards = hazards
        self.level_doses_per_day = level_doses_per_day
        self.parts = HazardParts.of(hazards, level_drug)
        self.level_drug = level_drug
        self.level_column = {dose: j for j, dose in enumerate(levels)}
        self._keyed = (
            *self.parts.plan_drugs,
            *(d for d in self.parts.split_drugs if d not in self.parts.plan_drugs),
            *(
                [level_drug]
                if level_drug is not None
                and level_drug not in self.parts.plan_drugs
                and level_drug not in self.parts.split_drugs
                else []
            ),
        )
        # by the schedules each reads (and the end of follow-up)
        self._templates: IdentityCache[PlanTemplate] = IdentityCache(_SHARED_GRIDS_MAX)
        self._plan_rates: IdentityCache[_PlanRates] = IdentityCache(_SHARED_GRIDS_MAX)
        self._keyed_of = _getter(self._keyed)
        self._rated_of = _getter(self.parts.plan_drugs)

    def check(self, hazards: Sequence[Hazard]) -> None:
        """Refuse another list of hazards than the one the cache serves."""
        if hazards is not self.hazards:
            raise ValueError("a cache of plan templates serves one list of hazards")

    def template(self, plan: Plan, t1: float) -> PlanTemplate:
        """A plan's intervals, plan-only rates and level doses, computed once and shared.

        The plan parts are computed once per schedule of the drugs they read, then
        split where the doses of the drugs whose exposure the patient parts read
        change (a dose change of those costs no new rates).
        """
        try:
            schedules = self._keyed_of(plan.schedules)
        except KeyError:
            schedules = _schedules_of(plan, self._keyed)  # raises the plan's own message
        key = (*map(id, schedules), t1)
        cached = self._templates.lookup(key, schedules)
        if cached is not None:
            return cached
        parts = self.parts
        base = self._rates_of(plan, t1)
        # a few dozen points: sorted lists and bisect beat numpy's per-call overhead
        split = base.starts
        if parts.own and parts.split_drugs:
            cuts = {
                float(d)
                for drug in parts.split_drugs
                for d in plan.schedules[drug].change_days
                if 0 < d < t1
            }.difference(split)
            if cuts:
                split = sorted(cuts.union(split))
        if split is base.starts:
            rates = base.rates
        else:
            rates = base.rates.take([bisect.bisect_right(base.starts, x) - 1 for x in split], 1)
        level = [0.0] * len(split)
        lookup = True  # the level doses hold at the levels' administrations per day
        if self.level_drug is not None and self.level_drug in plan.schedules:
            leveled = plan.schedules[self.level_drug]
            days, doses, end = leveled.change_days, leveled.doses_mg_per_day, leveled.end_day
            per_day = self.level_doses_per_day
            lookup = per_day is None or leveled.doses_per_day == per_day
            level = [
                doses[bisect.bisect_right(days, x) - 1] if 0 <= x < end else 0.0 for x in split
            ]
        starts = np.array(split)
        ends = np.array([*split[1:], t1])
        level_col = None
        if parts.own and (
            self.level_drug is None or self.level_drug not in plan.schedules or lookup
        ):
            cols = [self.level_column.get(dose, -1) for dose in level]
            if -1 not in cols:  # else the patient part is computed afresh
                level_col = np.array(cols, dtype=np.intp)
        own_rates = rates.take(parts.own, 0)
        level_arr = np.array(level, dtype=float)
        tpl = PlanTemplate(
            starts, ends, ends - starts, rates, parts.own, level_arr, split, own_rates, level_col
        )
        return self._templates.store(key, schedules, tpl)

    def templates(self) -> list[PlanTemplate]:
        """The templates cached so far (for tests and diagnostics)."""
        return self._templates.values()

    def _rates_of(self, plan: Plan, t1: float) -> _PlanRates:
        """The plan's part of every rate, on the breakpoints of the plan parts' drivers."""
        try:
            schedules = self._rated_of(plan.schedules)
        except KeyError:
            schedules = _schedules_of(plan, self.parts.plan_drugs)  # raises the plan's message
        key = (*map(id, schedules), t1)
        cached = self._plan_rates.lookup(key, schedules)
        if cached is not None:
            return cached
        parts = self.parts
        # only the drugs the declarations name: a driver reading another fails loudly
        declared = Plan(dict(zip(parts.plan_drugs, schedules, strict=True)))
        edges = sorted_edges(
            (0.0, t1),
            *(h.breakpoints(declared, 0.0, t1) for h in parts.plan_parts),
            *(d.breakpoints(declared, 0.0, t1) for d in parts.own_plan_drivers),
        )
        starts, ends = edges[:-1], edges[1:]
        iv = Intervals(declared, starts, ends)
        plan_parts = parts.plan_parts
        rates = np.vstack([h.rate_on(iv) for h in plan_parts])
        check_rates(rates)
        return self._plan_rates.store(key, schedules, _PlanRates(starts.tolist(), ends, rates))

    def level_multipliers(self, plan: Plan) -> FloatArray | None:
        """Patients' own multipliers at each level dose, to be looked up by the grids.

        Parameters
        ----------
        plan : Plan
            With the patients' PK models and covariates as arrays of shape ``(P, 1)``
            (and the level drug's schedule, for its doses per day).

        Returns
        -------
        array of shape (P, own rows, level doses), or None
            In the order of the templates' ``own`` rows; None when there are no level
            doses, no own rows, the patient parts are not functions of the level dose
            and covariates alone (:attr:`HazardParts.per_dose`), or a multiplier is not
            finite and >= 0 at some dose (which may never be reached: the grids then
            compute it and refuse it only where it is). The intervals' times are NaN:
            a driver that computed with them, against its declaration, would give NaN
            and no lookup.
        """
        parts, levels = self.parts, list(self.level_column)
        if not levels or not parts.own or parts.windows or not parts.per_dose:
            return None
        n = _patients(plan)
        doses = np.broadcast_to(np.asarray(levels, dtype=np.float64), (n, len(levels)))
        times = np.full(doses.shape, np.nan)  # not read by drivers of the dose alone
        assert self.level_drug is not None
        iv = Intervals(plan, times, times, {self.level_drug: doses})
        out = np.empty((n, len(parts.own), len(levels)))
        for j in range(len(parts.own)):
            out[:, j, :] = parts.own_multiplier(j, iv)
        if not (np.isfinite(out).all() and out.min(initial=0.0) >= 0):
            return None  # computed afresh where reached, and refused there as before
        return out


def _schedules_of(plan: Plan, drugs: tuple[str, ...]) -> tuple[Schedule, ...]:
    """The plan's schedules of these drugs (a clear error for a drug the plan lacks)."""
    try:
        return tuple([plan.schedules[d] for d in drugs])
    except KeyError:
        for d in drugs:
            plan.schedule(d)  # raises the plan's own message
        raise  # pragma: no cover


def _getter(drugs: tuple[str, ...]) -> Callable[[Mapping[str, Schedule]], tuple[Schedule, ...]]:
    """A fast ``lambda schedules: tuple(schedules[d] for d in drugs)``."""
    if len(drugs) == 1:
        one = drugs[0]
        return lambda schedules: (schedules[one],)
    return itemgetter(*drugs) if drugs else (lambda schedules: ())


def _patients(plan: Plan) -> int:
    """How many patients a plan's PK models and covariates describe (arrays of ``(P, 1)``)."""
    for value in (*(np.asarray(m.cl_l_per_h) for m in plan.pk.values()), *plan.covariates.values()):
        return int(np.shape(value)[0])
    raise ValueError("a plan with the patients' models or covariates is needed")
