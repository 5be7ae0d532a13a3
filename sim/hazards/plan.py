"""What hazard drivers read: a patient's plan (schedules by drug, PK, covariates) on intervals.

A :class:`Plan` holds, by drug name, the planned schedules (mg/day), the exposure
models of the patients on it, and their covariates. :class:`Intervals` are the
intervals ``[starts, ends)`` (days from the first dose) between the drivers'
breakpoints, with each input computed once on first use and shared by every
driver of every hazard.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from sim.exposure import OralOneCompartment, steady_state_window_auc
from sim.schedule import Schedule

__all__ = ["FloatArray", "Intervals", "Plan"]

FloatArray = npt.NDArray[np.float64]

_NONE: Mapping[str, Any] = MappingProxyType({})

#: The covariates every patient has (:meth:`Intervals.covariate`), as the population draws
#: them; a driver may also read ``height_cm`` (where the population gives heights) and a
#: condition of the population (1.0 or 0.0: :meth:`sim.population.People.covariate`).
COVARIATES = ("age_years", "weight_kg", "female", "fvc_percent")


class Plan(NamedTuple):
    """A patient's (or a group of patients') plan, as the hazard drivers read it (immutable:
    a changed plan is a new one).

    Attributes
    ----------
    schedules : mapping of str to Schedule
        By drug name: the planned (and, before now, realised) daily doses, mg/day.
    pk : mapping of str to OralOneCompartment
        By drug name: the exposure model of the patients (scalars for one patient,
        arrays of shape ``(P, 1)`` for ``P`` patients), for drivers of exposure.
    covariates : mapping of str to float or array
        By name (:data:`COVARIATES`): the patients' values, in the same shapes.
    """

    schedules: Mapping[str, Schedule]
    pk: Mapping[str, OralOneCompartment] = _NONE
    covariates: Mapping[str, Any] = _NONE

    def schedule(self, drug: str) -> Schedule:
        """The schedule of ``drug`` (a clear error when the plan has none)."""
        try:
            return self.schedules[drug]
        except KeyError:
            raise ValueError(
                f"a hazard reads the dose of {drug!r}, which the plan does not give "
                f"(it gives {', '.join(sorted(self.schedules)) or 'none'})"
            ) from None

    def model(self, drug: str) -> OralOneCompartment:
        """The exposure model of ``drug`` (a clear error when the plan has none)."""
        try:
            return self.pk[drug]
        except KeyError:
            raise ValueError(
                f"a hazard reads the exposure of {drug!r}: the plan has no model of it"
            ) from None


class Intervals:
    """Intervals [starts, ends) of a plan, with the drivers' inputs computed once and shared.

    Every driver of every hazard reads the same current doses and exposures on the
    same intervals, so they are computed on first use and kept.

    Parameters
    ----------
    plan : Plan
    starts, ends : array
        Days from the first dose; shape ``(I,)`` for one patient, ``(P, I)`` for many.
    doses : dict of str to array, optional
        Current doses already known (mg/day on each interval), by drug: kept, and
        filled with the doses computed later.
    """

    def __init__(
        self,
        plan: Plan,
        starts: FloatArray,
        ends: FloatArray,
        doses: dict[str, FloatArray] | None = None,
    ) -> None:
        self.plan, self.starts, self.ends = plan, starts, ends
        self._doses: dict[str, FloatArray] = {} if doses is None else doses
        self._auc: dict[tuple[str, float], FloatArray] = {}

    def dose(self, drug: str) -> FloatArray:
        """The current dose of ``drug`` on each interval, mg/day."""
        value = self._doses.get(drug)
        if value is None:
            value = self._doses[drug] = self.plan.schedule(drug).dose_at(self.starts)
        return value

    def steady_state_auc(self, drug: str, window_h: float) -> FloatArray:
        """Steady-state AUC over ``window_h`` hours after a dose, at the current dose (mg*h/L).

        For MMF, the AUC0-12 of MPA (the model ``plan.pk["mmf"]``).
        """
        key = (drug, window_h)
        value = self._auc.get(key)
        if value is None:
            plan = self.plan
            model = plan.pk[drug] if drug in plan.pk else plan.model(drug)  # (a clear error)
            value = self._auc[key] = steady_state_window_auc(
                model, self.dose(drug), plan.schedules[drug].doses_per_day, window_h
            )
        return value

    def covariate(self, name: str) -> Any:
        """The patients' covariate ``name`` (a float, or an array of shape ``(P, 1)``)."""
        try:
            return self.plan.covariates[name]
        except KeyError:
            raise ValueError(
                f"a hazard reads the covariate {name!r}, which the plan does not give"
            ) from None
