"""Per-drug dose columns of the patients table: cumulative doses at landmarks, days above.

The built-in endpoints (:mod:`sim.endpoints`) give prednisone's landmarks at weeks 4,
12, 24 and 52 and its days at or above 20 mg/day. These columns give the rest:

- for the ``[drugs]`` tables, the cumulative dose at weeks 4, 12, 24, 52 and every 26
  weeks after (within treatment), and at exit;
- with ``[treatment] landmark_weeks``, every drug's cumulative dose at those weeks
  (and at exit), instead of the default weeks;
- with ``[treatment] days_at_or_above_mg``, the days on study each drug was at or above
  the dose given for it.

A landmark the patient left before is empty (NaN), as for the built-in landmarks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from sim.endpoints import ENDPOINTS
from sim.scenario import Scenario
from sim.schedule import Schedule
from sim.trial.patient import Patient


class Cohort(Protocol):
    """What these columns read of a cohort (:class:`sim.trial.cohort.Cohort`)."""

    scenario: Scenario
    drugs: tuple[Any, ...]
    ctxs: list[Any]

    def given(self, p: Patient) -> dict[str, Schedule]: ...


__all__ = ["DoseColumn", "cohort_dose_columns", "dose_columns", "dose_value", "dose_values"]

DEFAULT_WEEKS = (4, 12, 24, 52, *range(78, 523, 26))
"""The landmarks of the ``[drugs]`` tables when the scenario declares none."""


class DoseColumn(NamedTuple):
    """One column: ``drug``'s cumulative dose at ``day`` (None: at exit), or its days at or
    above ``mg`` (``kind = "days"``)."""

    name: str
    drug: str
    day: int | None
    mg: float | None = None


def _mg_name(mg: float) -> str:
    text = str(int(mg)) if float(mg).is_integer() else repr(float(mg))
    return text.replace(".", "_")


def dose_columns(scenario: Scenario, drugs: Sequence[str], longest_days: int) -> list[DoseColumn]:
    """The dose columns of a trial whose drugs are ``drugs`` and whose longest treatment
    lasts ``longest_days``."""
    treatment = scenario.treatment
    declared = treatment.landmark_weeks
    out: list[DoseColumn] = []
    for drug in drugs:
        if declared is None and drug in ("prednisone", "mmf"):
            continue  # the built-in endpoints, unchanged
        weeks = DEFAULT_WEEKS if declared is None else declared
        for week in weeks:
            name = f"cumulative_{drug}_mg_week{week}"
            if 7 * week <= longest_days and name not in ENDPOINTS:
                out.append(DoseColumn(name, drug, 7 * week))
        if f"cumulative_{drug}_mg" not in ENDPOINTS:
            out.append(DoseColumn(f"cumulative_{drug}_mg", drug, None))
    for drug, mg in (treatment.days_at_or_above_mg or {}).items():
        name = f"days_{drug}_at_or_above_{_mg_name(mg)}mg"
        out.append(DoseColumn(name, drug, None, mg))
    return out


def dose_value(column: DoseColumn, given: Schedule, left_day: float | None) -> float:
    """A column's value for a patient's schedule as given; ``left_day``: the day they left
    (None for those who completed)."""
    if column.mg is not None:
        return float(
            sum(s.end_day - s.start_day for s in given.segments() if s.dose_mg_per_day >= column.mg)
        )
    if column.day is None:
        return given.total_mg
    if left_day is not None and left_day < column.day:
        return math.nan
    return float(given.cumulative(column.day))


def cohort_dose_columns(cohort: Cohort) -> list[DoseColumn]:
    """The dose columns of a cohort's patients table (its drugs, its longest arm)."""
    if not cohort.ctxs:
        return []
    names = [d.name for d in cohort.drugs if d.schedule is None]
    return dose_columns(cohort.scenario, names, max(c.duration for c in cohort.ctxs))


def dose_values(cohort: Cohort, p: Patient, columns: list[DoseColumn]) -> dict[str, float]:
    """A patient's values of the dose columns."""
    left = None if p.status in ("", "completed") else p.exit_day
    given = cohort.given(p)
    return {c.name: dose_value(c, given[c.drug], left) for c in columns}
