"""Schedules from a drug's course of steps (``[drugs.<name>]``), for one patient.

A course (:class:`sim.regimen_schema.DrugRegimen`) is resolved for a patient's body
first: every step's dose becomes mg (:func:`course_doses`), so patients with the
same resolved doses share one schedule. :func:`build_course` then lays the steps
out in days, as pure arithmetic (decimal, like a pharmacist's):

- a step starts on the day the level before it ends (day 0 for the first);
- ``dose`` sets a level for ``days`` (or until ``until_day``, or to the end);
- ``hold`` makes the current level last ``days`` from the day it was reached, or
  until ``until_day``;
- ``taper`` lowers the level every ``every_days`` by ``step_mg`` or by
  ``step_percent`` (rounded half up to ``round_to_mg``; a rounding that would not
  lower the dose lowers it by one unit), never below ``floor_mg``; the floor level
  lasts ``every_days`` unless a step follows;
- ``titrate`` moves the level by ``step_mg`` every ``every_days`` towards its target
  and stays there;
- ``table`` gives a published table's doses, one per period (by weight band or not);
- ``pulse`` gives the dose on single days (every ``every_days``, ``count`` times, or
  on the listed days) with nothing between; the level after it is zero;
- ``maintenance`` sets a level to the end of treatment.

After the last step the last level continues to the end of treatment. Nothing is
given from ``duration_days`` on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from sim.regimen_schema import (
    DoseStep,
    HoldStep,
    MaintenanceStep,
    PulseStep,
    TableStep,
    TaperStep,
    TitrateStep,
)
from sim.schedule import Schedule, build_schedules, from_changes, typed_decimal

if TYPE_CHECKING:
    from sim.regimen_schema import DrugRegimen, RegimenStep, WeightBand
    from sim.scenario_schema import Scenario

__all__ = [
    "Body",
    "band_dose_mg",
    "body_surface_area_m2",
    "build_course",
    "build_regimen",
    "course_doses",
    "scenario_schedules",
]


class Body(NamedTuple):
    """What a dose rule may read of a patient.

    Attributes
    ----------
    weight_kg : float
        Body weight, kg.
    height_cm : float
        Height, cm (NaN when unknown: a dose per m2 then cannot be computed).
    """

    weight_kg: float
    height_cm: float = math.nan


def body_surface_area_m2(weight_kg: float, height_cm: float, formula: str = "mosteller") -> float:
    """Body surface area, m2.

    ``mosteller``: :math:`\\sqrt{H \\cdot W / 3600}` (Mosteller RD, N Engl J Med
    1987;317:1098). ``du_bois``: :math:`0.007184\\,W^{0.425} H^{0.725}` (Du Bois D,
    Du Bois EF, Arch Intern Med 1916;17:863). ``W`` in kg, ``H`` in cm.

    Parameters
    ----------
    weight_kg : float
        Body weight, kg (> 0).
    height_cm : float
        Height, cm (> 0).
    formula : str
        ``mosteller`` or ``du_bois``.
    """
    if not (weight_kg > 0 and height_cm > 0):
        raise ValueError(
            f"body surface area needs weight and height > 0, got {weight_kg} kg, {height_cm} cm"
        )
    if formula == "mosteller":
        return math.sqrt(height_cm * weight_kg / 3600.0)
    if formula == "du_bois":
        return 0.007184 * weight_kg**0.425 * height_cm**0.725
    raise ValueError(f"unknown body-surface-area formula {formula!r}")


B = TypeVar("B", bound="WeightBand")


def band_dose_mg(bands: Sequence[WeightBand], weight_kg: float) -> float:
    """The dose of the band a weight falls in, mg (each edge belongs where it says)."""
    return float(_band(bands, weight_kg).mg)


def _band(bands: Sequence[B], weight_kg: float) -> B:
    for band in bands:
        low, high = band.lower, band.upper
        if low is not None and not (weight_kg >= low[0] if low[1] else weight_kg > low[0]):
            continue
        if high is not None and not (weight_kg <= high[0] if high[1] else weight_kg < high[0]):
            continue
        return band
    raise ValueError(f"no weight band holds {weight_kg} kg")  # validation tiles the line


def _round(regimen: DrugRegimen, raw: Decimal) -> float:
    """A computed dose: rounded half up to the regimen's unit, then within its caps."""
    dose = _round_plain(regimen, raw)
    if regimen.max_mg is not None:
        dose = min(dose, regimen.max_mg)
    if regimen.min_mg is not None:
        dose = max(dose, regimen.min_mg)
    return dose


StepDose = float | tuple[float, ...] | None
"""A step's dose resolved for a patient: mg, a table's doses (mg), or None."""


def step_dose_mg(regimen: DrugRegimen, step: RegimenStep, body: Body) -> StepDose:
    """A step's dose for this body, mg per administration day (None: the step sets none).

    A stated ``mg`` or band dose is given as stated; a dose per kg or per m2 is rounded
    half up to ``round_to_mg`` and then held within ``min_mg``/``max_mg``.
    """
    if isinstance(step, TableStep):
        if step.mg is not None:
            return tuple(float(x) for x in step.mg)
        assert step.weight_bands is not None
        return tuple(float(x) for x in _band(step.weight_bands, body.weight_kg).mg)
    mg = getattr(step, "mg", None)
    if mg is not None:
        return float(mg)
    bands = getattr(step, "weight_bands", None)
    if bands is not None:
        return float(_band(bands, body.weight_kg).mg)
    per_kg = getattr(step, "mg_per_kg", None)
    if per_kg is not None:
        return _round(regimen, typed_decimal(per_kg) * typed_decimal(body.weight_kg))
    per_m2 = getattr(step, "mg_per_m2", None)
    if per_m2 is not None:
        if math.isnan(body.height_cm):
            raise ValueError("a dose per m2 needs the patient's height")
        bsa = body_surface_area_m2(body.weight_kg, body.height_cm, regimen.bsa_formula)
        return _round(regimen, typed_decimal(per_m2) * typed_decimal(bsa))
    return None


def course_doses(regimen: DrugRegimen, body: Body) -> tuple[StepDose, ...]:
    """Every step's dose for this body, mg (None for steps without one).

    Two patients with the same tuple get the same schedule: it is the key patients
    share schedules by.
    """
    return tuple(step_dose_mg(regimen, step, body) for step in regimen.course)


def _percent_step(regimen: DrugRegimen, dose: float, percent: float) -> float:
    lowered = _round_plain(regimen, typed_decimal(dose) * (1 - typed_decimal(percent) / 100))
    if lowered >= dose:  # rounding would keep the dose: one unit lower
        assert regimen.round_to_mg is not None
        lowered = float(typed_decimal(dose) - typed_decimal(regimen.round_to_mg))
    return lowered


def _round_plain(regimen: DrugRegimen, raw: Decimal) -> float:
    if regimen.round_to_mg is None:
        return float(raw)
    unit = typed_decimal(regimen.round_to_mg)
    return float((raw / unit).quantize(Decimal(1), rounding=ROUND_HALF_UP) * unit)


def build_course(
    regimen: DrugRegimen, doses: tuple[StepDose, ...], duration_days: int, first_step: int = 0
) -> Schedule:
    """The schedule of a course whose step doses are resolved (:func:`course_doses`).

    Parameters
    ----------
    regimen : DrugRegimen
        The drug's ``[drugs.<name>]`` table.
    doses : tuple
        Each step's dose, mg per administration day (a table's: a tuple of them).
    duration_days : int
        End of treatment (exclusive), days from the first dose.
    first_step : int
        Start from this step (a restart of the course), as if it were the first.

    Returns
    -------
    Schedule
        Daily dose, mg/day, with the regimen's ``doses_per_day``.
    """
    changes: list[tuple[int, float]] = []
    dose = 0.0
    level_start, level_end = 0, 0
    steps = regimen.course[first_step:]
    for step, step_mg in zip(steps, doses[first_step:], strict=True):
        if isinstance(step, HoldStep):
            if step.days is not None:
                level_end = level_start + step.days
            else:
                assert step.until_day is not None
                level_end = max(step.until_day, level_start)
        elif isinstance(step, TableStep):
            assert isinstance(step_mg, tuple)
            day = level_end
            for mg, days in zip(step_mg, step.periods(len(step_mg)), strict=True):
                dose, level_start, level_end = mg, day, day + days
                changes.append((day, dose))
                day = level_end
        elif isinstance(step, DoseStep | MaintenanceStep):
            assert isinstance(step_mg, float)
            dose, level_start = step_mg, level_end
            changes.append((level_start, dose))
            if isinstance(step, DoseStep) and step.days is not None:
                level_end = level_start + step.days
            elif isinstance(step, DoseStep) and step.until_day is not None:
                level_end = max(step.until_day, level_start)
            else:
                level_end = duration_days
        elif isinstance(step, TaperStep):
            day = level_end
            floor = step.floor_mg
            while dose > floor and day < duration_days:
                if step.step_mg is not None:
                    dose = float(typed_decimal(dose) - typed_decimal(step.step_mg))
                else:
                    assert step.step_percent is not None
                    dose = _percent_step(regimen, dose, step.step_percent)
                dose = max(dose, floor)
                changes.append((day, dose))
                level_start, level_end = day, day + step.every_days
                day = level_end
        elif isinstance(step, TitrateStep):
            assert isinstance(step_mg, float)
            day = level_end
            while dose != step_mg and day < duration_days:
                if step_mg > dose:
                    dose = min(float(typed_decimal(dose) + typed_decimal(step.step_mg)), step_mg)
                else:
                    dose = max(float(typed_decimal(dose) - typed_decimal(step.step_mg)), step_mg)
                changes.append((day, dose))
                level_start, level_end = day, day + step.every_days
                day = level_end
        else:
            assert isinstance(step, PulseStep) and isinstance(step_mg, float)
            start = level_end
            for d in step.pulse_days():
                changes.append((start + d, step_mg))
                changes.append((start + d + 1, 0.0))
            dose, level_start, level_end = 0.0, start, start + step.length_days
    # nothing before the course's first dose (a course that starts later)
    return from_changes([(0, 0.0), *changes], duration_days, regimen.doses_per_day)


def planned_course(
    regimen: DrugRegimen, doses: tuple[StepDose, ...], duration_days: int
) -> Schedule:
    """The course as planned from day 0: :func:`build_course`, or none for a rescue drug
    (given only when an action adds it)."""
    if regimen.rescue:
        return Schedule.constant(0.0, duration_days, regimen.doses_per_day)
    return build_course(regimen, doses, duration_days)


def build_regimen(regimen: DrugRegimen, body: Body, duration_days: int) -> Schedule:
    """A patient's schedule of a drug's course: :func:`build_course` of :func:`course_doses`.

    Parameters
    ----------
    regimen : DrugRegimen
        The drug's ``[drugs.<name>]`` table.
    body : Body
        The patient's weight (kg) and height (cm).
    duration_days : int
        End of treatment (exclusive), days from the first dose.
    """
    return build_course(regimen, course_doses(regimen, body), duration_days)


def scenario_schedules(
    scenario: Scenario, body: Body, start_mg_per_kg: float | None = None
) -> dict[str, Schedule]:
    """Every drug's schedule for one patient: prednisone, MMF, then the ``[drugs]`` tables.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario (one arm's, for a scenario with arms).
    body : Body
        The patient's weight (kg) and height (cm).
    start_mg_per_kg : float, optional
        Overrides the prednisone mg/kg start dose.
    """
    out = build_schedules(scenario, body.weight_kg, start_mg_per_kg)
    duration = scenario.treatment.duration_days
    for name, regimen in scenario.drugs.items():
        out[name] = planned_course(regimen, course_doses(regimen, body), duration)
    if "prednisone" in scenario.drugs:  # the glucocorticoid first, as everywhere
        out = {"prednisone": out.pop("prednisone"), **out}
    return out
