"""Dose actions for any drug of the scenario: reduce, hold, stop, restart, switch, add.

Each wraps its scenario entry (``action = "hold"``, ``drug = "cyclophosphamide"``, ...)
and registers under its name (:data:`sim.actions.ACTIONS`). A course is rebuilt for
the patient's body (:mod:`sim.regimens`) from the day of the action on; doses are mg
per administration day. Importing :mod:`sim.actions` registers them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sim.actions import Change, DoseAction, Setting, register_action
from sim.regimens import Body, build_course, course_doses
from sim.scenario_schema import DrugAdd, DrugHold, DrugReduce, DrugRestart, DrugStop, DrugSwitch
from sim.schedule import Schedule, build_prednisone_from_start, typed_decimal

__all__ = ["DrugAddition", "DrugInterruption", "DrugReduction", "DrugRestarting", "DrugSwitching"]


def _zero(days: int, per_day: int) -> Schedule:
    return Schedule.constant(0.0, days, per_day) if days > 0 else Schedule((), (), 0, per_day)


class _OfEntryDrug(DoseAction):
    """An action on the drug its entry names."""

    def __init__(self, entry: Any) -> None:
        super().__init__(entry)
        self.drug = str(entry.drug)


class _StartsACourse(_OfEntryDrug):
    """An action that lays a course out for the patient's body: its change depends on
    their weight and height."""

    reads_patient = True

    def patient_key(
        self,
        weight_kg: float,
        start_mg: Callable[[float, float], float],
        height_cm: float = math.nan,
    ) -> Any:
        return _body_key(weight_kg, height_cm)


def _body_key(weight_kg: float, height_cm: float) -> tuple[float, float]:
    # no height: -1, not NaN (NaN != NaN: a key with it would never be found again)
    return (weight_kg, -1.0 if math.isnan(height_cm) else height_cm)


def _ceiling(top: float, by_mg: float | None, by_percent: float | None, floor: float) -> float:
    if by_mg is not None:
        return max(top - by_mg, floor)
    assert by_percent is not None
    return max(float(typed_decimal(top) * (1 - typed_decimal(by_percent) / 100)), floor)


@register_action
class DrugReduction(_OfEntryDrug):
    """The drug's ceiling from the day on drops by ``by_mg`` (or ``by_percent``) from the
    highest dose still planned, not below ``floor_mg``."""

    name, done, aeacn = "reduce", "dose_reduced", "DOSE REDUCED"
    exadj = "Dose reduced"
    entry: DrugReduce

    def change(self, schedule: Schedule, day: int, setting: Setting) -> Change | None:
        tail = schedule.tail(day)
        top = max(tail.doses_mg_per_day, default=0.0)
        e = self.entry
        cap = _ceiling(top, e.by_mg, e.by_percent, e.floor_mg)
        if cap >= top:
            return None
        capped = schedule.splice(day, tail.capped_at(cap))
        return Change(self.drug, capped, f"{self.drug} at most {cap:g} mg/day")

    def ceiling_cuts(self) -> list[tuple[float, float]]:
        return [] if self.entry.by_mg is None else [(self.entry.by_mg, self.entry.floor_mg)]


@register_action
class DrugInterruption(_OfEntryDrug):
    """No dose for ``days``, then the plan resumes, its ceiling lowered by
    ``resume_reduce_by_mg`` (not below ``floor_mg``)."""

    name, done, aeacn = "hold", "dose_held", "DRUG INTERRUPTED"
    exadj = "Drug interrupted"
    interrupts = True
    entry: DrugHold

    def change(self, schedule: Schedule, day: int, setting: Setting) -> Change | None:
        tail = schedule.tail(day)
        if max(tail.doses_mg_per_day, default=0.0) == 0:
            return None  # nothing planned to hold
        held = min(self.entry.days, tail.end_day)
        resumed = tail.tail(held)
        by = self.entry.resume_reduce_by_mg
        if by > 0 and resumed.end_day > 0:
            top = max(resumed.doses_mg_per_day)
            resumed = resumed.capped_at(min(max(top - by, self.entry.floor_mg), top))
        new_tail = _zero(held, tail.doses_per_day).splice(held, resumed)
        detail = f"{self.drug} held for {held} days"
        return Change(self.drug, schedule.splice(day, new_tail), detail)

    def ceiling_cuts(self) -> list[tuple[float, float]]:
        by = self.entry.resume_reduce_by_mg
        return [(by, self.entry.floor_mg)] if by > 0 else []


@register_action
class DrugWithdrawal(_OfEntryDrug):
    """No dose of the drug from the day on."""

    name, done, aeacn = "stop", "drug_stopped", "DRUG WITHDRAWN"
    exadj = "Drug withdrawn"
    entry: DrugStop

    def change(self, schedule: Schedule, day: int, setting: Setting) -> Change | None:
        if max(schedule.tail(day).doses_mg_per_day, default=0.0) == 0:
            return None
        stopped = _zero(setting.duration_days - day, schedule.doses_per_day)
        return Change(self.drug, schedule.splice(day, stopped), f"{self.drug} stopped")


def _course_from(setting: Setting, drug: str, step: int, day: int) -> Schedule:
    """A drug's ``[drugs]`` course from step ``step``, laid out from ``day`` to the end."""
    regimen = setting.scenario.drugs[drug]
    doses = course_doses(regimen, Body(setting.weight_kg, setting.height_cm))
    return build_course(regimen, doses, setting.duration_days - day, first_step=step)


@register_action
class DrugRestarting(_StartsACourse):
    """The drug restarts: its course from step ``at_step``, or at ``mg`` (prednisone's
    taper again from ``mg``; another drug at ``mg`` to the end)."""

    name, done, aeacn = "restart", "drug_restarted", "DOSE INCREASED"
    exadj = "Drug restarted"
    entry: DrugRestart

    def change(self, schedule: Schedule, day: int, setting: Setting) -> Change | None:
        left = setting.duration_days - day
        e = self.entry
        if e.at_step is not None:
            new_tail = _course_from(setting, self.drug, e.at_step, day)
            what = f"from step {e.at_step} of its course"
        elif self.drug == "prednisone" and setting.scenario.prednisone is not None:
            assert e.mg is not None
            new_tail = build_prednisone_from_start(setting.scenario.prednisone, e.mg, left)
            what = f"at {e.mg:g} mg/day, tapered again"
        else:
            assert e.mg is not None
            new_tail = Schedule.constant(e.mg, left, schedule.doses_per_day)
            what = f"at {e.mg:g} mg/day"
        return Change(self.drug, schedule.splice(day, new_tail), f"{self.drug} restarted {what}")

    def patient_key(
        self,
        weight_kg: float,
        start_mg: Callable[[float, float], float],
        height_cm: float = math.nan,
    ) -> Any:
        if self.entry.at_step is None:
            return None  # a stated dose: the same for everyone
        return super().patient_key(weight_kg, start_mg, height_cm)


@register_action
class DrugSwitching(_StartsACourse):
    """The drug stops; ``to``'s course starts from its first step the same day."""

    name, done, aeacn = "switch", "drug_switched", "DRUG WITHDRAWN"
    exadj, started_exadj = "Switched to another drug", "Started in place of another drug"
    entry: DrugSwitch

    def __init__(self, entry: Any) -> None:
        super().__init__(entry)
        self.reads_drugs = (str(entry.to),)

    def change(self, schedule: Schedule, day: int, setting: Setting) -> Change | None:
        assert setting.schedules is not None
        to = self.entry.to
        target = setting.schedules[to]
        stopped = schedule.splice(day, _zero(setting.duration_days - day, schedule.doses_per_day))
        started = target.splice(day, _course_from(setting, to, 0, day))
        detail = f"{self.drug} stopped, {to} started"
        return Change(self.drug, stopped, detail, more=((to, started),))


@register_action
class DrugAddition(_StartsACourse):
    """The drug's course starts from its first step (a rescue), unless the patient is
    already on it."""

    name, done, aeacn = "add", "drug_added", "DOSE NOT CHANGED"
    exadj = "Rescue therapy"
    entry: DrugAdd

    def change(self, schedule: Schedule, day: int, setting: Setting) -> Change | None:
        if max(schedule.tail(day).doses_mg_per_day, default=0.0) > 0:
            return None  # on it already
        started = schedule.splice(day, _course_from(setting, self.drug, 0, day))
        return Change(self.drug, started, f"{self.drug} added")
