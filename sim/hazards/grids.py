"""Hazard grids: every hazard of a patient over a plan, their cumulative hazards and crossing times.

:class:`HazardGrid` holds one patient's piecewise-constant rates on the union of
their drivers' breakpoints; :func:`plan_grids` computes many patients on a few
plans at once from the shared templates (:mod:`sim.hazards.templates`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from sim.exposure import OralOneCompartment
from sim.hazards.drivers import Driver, Hazard, RateOverflow, check_rates
from sim.hazards.plan import FloatArray, Intervals, Plan
from sim.hazards.templates import TemplateCache

__all__ = ["HazardGrid", "cumulative_hazards", "plan_grids"]


def _grid(
    hazards: Sequence[Hazard], plan: Plan, t0: float, t1: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    cuts = [np.array([t0, t1])] + [h.breakpoints(plan, t0, t1) for h in hazards]
    edges = np.unique(np.concatenate(cuts))
    starts, ends = edges[:-1], edges[1:]
    iv = Intervals(plan, starts, ends)
    rates = np.vstack([h.rate_on(iv) for h in hazards])
    if not np.all(np.isfinite(rates) & (rates >= 0)):  # one check for every driver
        bad = [h.name for h, r in zip(hazards, rates, strict=True) if not np.all(np.isfinite(r))]
        raise RateOverflow(f"hazard(s) {', '.join(bad)} gave a rate that is not finite")
    return starts, ends, rates


class HazardGrid:
    """Every hazard of a patient over a whole plan: piecewise-constant rates, cumulative hazard.

    Built once per plan (from day 0, so the cumulative hazard includes the
    history); a plan change from day d leaves the cumulative hazard before d as
    it was, so absolute thresholds on this scale stay valid across changes.
    """

    starts: FloatArray
    ends: FloatArray
    rates: FloatArray
    cum: FloatArray

    def __init__(
        self,
        hazards: Sequence[Hazard],
        plan: Plan,
        t1: float,
        shared: TemplateCache | None = None,
        extra: dict[int, Driver] | None = None,
        pk_levels: FloatArray | None = None,
    ) -> None:
        """Parameters: the hazards, the plan, the end of follow-up ``t1`` (days), optionally
        ``shared`` (plan templates shared between patients, :class:`TemplateCache`),
        ``extra``: one more driver per hazard index (e.g. a patient's windows of raised
        risk), whose breakpoints split the shared grid, and ``pk_levels``: the patient's
        own multipliers at the cache's level doses
        (:meth:`TemplateCache.level_multipliers`), looked up instead of computed again.
        """
        own: list[int] = []
        checked = False  # rates checked finite and >= 0 but for an overflow
        if shared is not None and shared.hazards is not hazards:
            shared.check(hazards)  # raises
        if shared is None or shared.parts.windows:
            starts, ends, rates = _grid(hazards, plan, 0.0, t1)
            widths = ends - starts
            split = starts.tolist()
        else:
            tpl = shared.template(plan, t1)
            starts, ends, widths, rates, own = tpl.starts, tpl.ends, tpl.widths, tpl.rates, tpl.own
            split = tpl.starts_list
            if own:
                rates = rates.copy()  # the template's rows are shared: never written
                if pk_levels is not None and tpl.level_col is not None:
                    # an own multiplier reads nothing but the interval's level dose; both
                    # factors were checked finite and >= 0, so only their product's
                    # overflow is left to check (on the cumulative hazard, below)
                    rates[own] = tpl.own_rates * pk_levels.take(tpl.level_col, 1)
                    checked = True
                else:
                    known = _level_doses(shared, plan, tpl.level_doses)
                    iv = Intervals(plan, starts, ends, known)
                    for j, i in enumerate(own):
                        rates[i] *= shared.parts.own_multiplier(j, iv)
        if extra:
            cuts = {t for d in extra.values() for t in d.breakpoints(plan, 0.0, t1).tolist()}
            cuts.difference_update(split)
            if cuts:
                new = sorted(cuts.union(split))
                rates = rates.take([bisect.bisect_right(split, x) - 1 for x in new], 1)
                starts, ends = np.array(new), np.array([*new[1:], t1])
                widths = ends - starts
            else:
                rates = rates.copy()
            iv = Intervals(plan, starts, ends)
            for i, driver in extra.items():
                rates[i] *= driver.multiplier(iv)
        if extra or (own and not checked):
            check_rates(rates)
        cum = np.zeros((len(hazards), starts.size + 1))
        np.add.accumulate(rates * widths, 1, out=cum[:, 1:])  # what np.cumsum does
        if checked and not math.isfinite(cum[:, -1].sum()):
            raise RateOverflow("a hazard gave a rate that is not finite")
        self._set(starts, ends, rates, cum)

    def _set(
        self, starts: FloatArray, ends: FloatArray, rates: FloatArray, cum: FloatArray
    ) -> None:
        self.starts, self.ends, self.rates, self.cum = starts, ends, rates, cum

    @classmethod
    def of_arrays(
        cls, starts: FloatArray, ends: FloatArray, rates: FloatArray, cum: FloatArray
    ) -> HazardGrid:
        """A grid from arrays already computed (one patient's slice of :func:`plan_grids`)."""
        grid = object.__new__(cls)
        grid._set(starts, ends, rates, cum)
        return grid

    def at(self, t: float) -> FloatArray:
        """Each hazard's cumulative hazard from day 0 to ``t``."""
        j = min(max(int(self.starts.searchsorted(t, side="right")) - 1, 0), self.starts.size - 1)
        return self.cum[:, j] + self.rates[:, j] * max(t - self.starts[j], 0.0)

    def crossing_one(self, k: int, target: float) -> float:
        """:meth:`crossing` for hazard ``k`` alone (the same arithmetic)."""
        cum = self.cum[k]
        idx = int(cum[1:].searchsorted(target, side="left"))  # cum[1:] never decreases
        if idx >= self.starts.size:
            return math.inf
        return self.starts.item(idx) + (target - cum.item(idx)) / self.rates.item(k, idx)

    def crossing(self, targets: FloatArray) -> FloatArray:
        """When each hazard's cumulative hazard reaches its target (``inf`` if never)."""
        starts, rates, cum = self.starts, self.rates, self.cum
        n = starts.size
        # how many intervals end below each target: the crossing is in the next one
        idx = np.add.reduce(cum[:, 1:] < targets[:, None], 1).tolist()
        times = []
        for h, i in enumerate(idx):  # a few hazards: plain floats beat numpy's overhead
            if i >= n:
                times.append(math.inf)
                continue
            rate = rates.item(h, i)
            if not rate > 0:  # only for a target of 0 on a zero rate: numpy's 0/0
                return _crossing(starts, rates, cum, targets)
            times.append(starts.item(i) + (targets.item(h) - cum.item(h, i)) / rate)
        return np.array(times)


def _crossing(
    starts: FloatArray, rates: FloatArray, cum: FloatArray, targets: FloatArray
) -> FloatArray:
    """Crossing times: rates ``([P,] H, I)``, cum ``([P,] H, I + 1)``, targets ``([P,] H)``;
    starts ``(I,)``, or ``(P, I)`` for patients on grids of their own."""
    n = starts.shape[-1]
    idx = (cum[..., 1:] < targets[..., None]).sum(axis=-1)
    j = np.minimum(idx, n - 1).ravel()
    cells = np.arange(j.size)
    rate = rates.reshape(-1, n)[cells, j]
    before = cum.reshape(-1, n + 1)[cells, j]
    if starts.ndim == 1:
        at = starts[j]
    else:  # one row of starts per patient, shared by their hazards
        at = starts[cells // targets.shape[-1], j]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        times = at + (targets.ravel() - before) / rate
    return np.where(idx < n, times.reshape(idx.shape), np.inf)


def plan_grids(
    hazards: Sequence[Hazard],
    plans: Sequence[Plan],
    group: npt.NDArray[np.int64],
    pk: Mapping[str, OralOneCompartment],
    covariates: Mapping[str, Any],
    t1: float,
    shared: TemplateCache,
    targets: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Many patients at once, each on one of a few plans: rates, cumulative hazards, crossings.

    Patient ``p`` follows ``plans[group[p]]``; the plans share the schedules whose
    exposure the patients' own parts read (they differ in others, e.g. prednisone by
    start dose). Each plan's intervals come from its shared template, padded to a
    common width with empty intervals at ``t1`` (zero width, zero rate), so every
    patient is computed in the same numpy operations.

    Parameters
    ----------
    hazards : sequence of Hazard
        Without windows (those are patient-specific breakpoints).
    plans : sequence of Plan
    group : array of int, shape (P,)
    pk : mapping of str to OralOneCompartment
        By drug: the patients' exposure models as arrays of shape ``(P, 1)``.
    covariates : mapping of str to array
        By name: the patients' covariates as arrays of shape ``(P, 1)``.
    t1 : float
        End of follow-up, days.
    shared : TemplateCache
        The templates of ``hazards``.
    targets : array, shape (P, hazards)
        Each hazard's threshold on the cumulative hazard from day 0.

    Returns
    -------
    starts, ends : array, shape (P, intervals)
    rates : array, shape (P, hazards, intervals)
    cum : array, shape (P, hazards, intervals + 1)
    times : array, shape (P, hazards)
        When each hazard of each patient reaches its target (``inf`` if never).
    """
    shared.check(hazards)
    parts = shared.parts
    if parts.windows:
        raise ValueError("plan_grids does not take hazards with windows")
    common = [*parts.split_drugs, *([shared.level_drug] if shared.level_drug else [])]
    for drug in common:
        first = plans[0].schedules.get(drug)
        if any(plan.schedules.get(drug) is not first for plan in plans):
            raise ValueError(f"plan_grids takes plans with one {drug.upper()} schedule")
    templates = [shared.template(plan, t1) for plan in plans]
    width = max(t.starts.size for t in templates)
    starts_g = np.full((len(plans), width), float(t1))
    ends_g = starts_g.copy()
    rates_g = np.zeros((len(plans), len(hazards), width))
    level_g = np.zeros((len(plans), width))  # no dose on the padding (at t1)
    for g, tpl in enumerate(templates):
        size = tpl.starts.size
        starts_g[g, :size], ends_g[g, :size], rates_g[g, :, :size] = tpl.starts, tpl.ends, tpl.rates
        level_g[g, :size] = tpl.level_doses
    starts, ends, rates = starts_g[group], ends_g[group], rates_g[group]
    levels = level_g[group]
    own = templates[0].own
    if own and parts.own_plan_drivers:  # patient parts read the plan: plan by plan
        for g in range(len(plans)):
            rows = np.flatnonzero(group == g)
            if not rows.size:
                continue
            mine = Plan(
                plans[g].schedules,
                {drug: model.part(rows) for drug, model in pk.items()},
                {name: np.asarray(value)[rows] for name, value in covariates.items()},
            )
            iv = Intervals(mine, starts[rows], ends[rows], _level_doses(shared, mine, levels[rows]))
            for j, i in enumerate(own):
                part = rates[rows, i, :] * parts.own_multiplier(j, iv)
                rates[rows, i, :] = part
        check_rates(rates)
    elif own:  # a function of the patients' own and of doses the plans share
        plan = Plan(plans[0].schedules, pk, covariates)
        iv = Intervals(plan, starts, ends, _level_doses(shared, plan, levels))
        for j, i in enumerate(own):
            rates[:, i, :] *= parts.own_multiplier(j, iv)
        check_rates(rates)
    cum = np.zeros((group.size, len(hazards), width + 1))
    np.cumsum(rates * (ends - starts)[:, None, :], axis=2, out=cum[:, :, 1:])
    return starts, ends, rates, cum, _crossing(starts, rates, cum, targets)


def _level_doses(
    shared: TemplateCache, plan: Plan, doses: FloatArray
) -> dict[str, FloatArray] | None:
    """The level drug's doses on the intervals, already known from the templates."""
    drug = shared.level_drug
    return {drug: doses} if drug is not None and drug in plan.schedules else None


def cumulative_hazards(
    hazards: Sequence[Hazard], plan: Plan, t0: float, t: npt.ArrayLike
) -> FloatArray:
    """Each hazard's cumulative hazard from ``t0`` to each time in ``t`` (shape hazards x times)."""
    times = np.atleast_1d(np.asarray(t, dtype=np.float64))
    t1 = float(times.max())
    if t1 <= t0:
        return np.zeros((len(hazards), times.size))
    starts, ends, rates = _grid(hazards, plan, t0, t1)
    cum = np.concatenate(
        (np.zeros((len(hazards), 1)), np.cumsum(rates * (ends - starts), axis=1)), axis=1
    )
    idx = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, starts.size - 1)
    within = np.clip(times - starts[idx], 0.0, None)
    out = cum[:, idx] + rates[:, idx] * within
    return np.where(times > t0, out, 0.0)
