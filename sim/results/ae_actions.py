"""The action taken with each study drug at an adverse event: SDTM ``AEACN`` and SUPPAE.

The SDTMIG's convention for several study treatments: each drug's action is a
supplemental qualifier (SUPPAE ``QNAM = "AEACN1"``, ``"AEACN2"``, ... by the drug's
order), and ``AEACN`` is their one value when they agree, else ``"MULTIPLE"``. A drug's
action is read off what the event's protocol actions did to it (the dose modifications
of ``CohortResult.adjustments`` with the event's name and time; each action class says
what it does, :mod:`sim.actions`), whether the event made the patient leave, and whether
the patient was on the drug at the time (its realised schedule).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import sim.drug_actions  # noqa: F401  (registers the dose actions for any drug)
from sim.actions import ACTIONS, AEACN_ORDER
from sim.schedule import Schedule
from sim.trial.cohort import CohortResult

__all__ = ["MULTIPLE", "NOT_APPLICABLE", "drug_actions", "overall_action"]

NOT_APPLICABLE = "NOT APPLICABLE"
"""CDISC AEACN for a drug the patient was not on at the event (not started, or finished)."""
MULTIPLE = "MULTIPLE"
"""AEACN when the study drugs' actions differ (SDTMIG: each drug's action in SUPPAE)."""


def _dosed_days(schedule: Schedule) -> tuple[int, int] | None:
    """The first and the last whole day ``schedule`` gives a dose on (days from the first
    dose); None if it never does."""
    dosed = [(s.start_day, s.end_day - 1) for s in schedule.segments() if s.dose_mg_per_day > 0]
    return (dosed[0][0], dosed[-1][1]) if dosed else None


def _taken_with(result: CohortResult) -> dict[tuple[int, str, float, str], int]:
    """``(patient_id, event, event_day, drug) -> i``: the event's actions took
    ``AEACN_ORDER[i]`` with the drug, the most severe of them (the action classes say what
    each does to its own drug and to a drug it starts, :mod:`sim.actions`)."""
    rank = {a: i for i, a in enumerate(AEACN_ORDER)}
    out: dict[tuple[int, str, float, str], int] = {}
    adj = result.adjustments
    for pid, drug, action, event, t, started in zip(
        adj["patient_id"], adj["drug"], adj["action"], adj["event"], adj["event_day"],
        adj["started"], strict=True,
    ):  # fmt: skip
        cls = ACTIONS[str(action)]
        i = rank[cls.started_aeacn if started else cls.aeacn]
        key = (int(pid), str(event), float(t), str(drug))
        out[key] = max(out.get(key, i), i)
    return out


def drug_actions(
    result: CohortResult,
    patient_ids: Iterable[int],
    events: Iterable[str],
    days: Iterable[float],
    left: Iterable[bool],
) -> list[tuple[str, ...]]:
    """The CDISC action taken with each drug of ``result.drugs`` at each adverse event.

    Parameters
    ----------
    result : CohortResult
    patient_ids, events, days, left : iterables of one value per adverse event
        The patient, the event's name, its time (days from the first dose, the event
        log's ``day``), and whether it made the patient leave (an exit row whose reason
        is the event).

    Returns
    -------
    list of tuple of str
        Per event, per drug in the order of ``result.drugs``:

        * ``DRUG WITHDRAWN`` if the event made the patient leave (dosing ends for good)
          and they were on the drug;
        * else the most severe action its dose actions took with the drug
          (:data:`AEACN_ORDER`: the class's ``aeacn``, or its ``started_aeacn`` for a
          drug it started);
        * else ``DOSE NOT CHANGED`` if the patient was on the drug: it was given on a day
          from its first dose to its last, both inclusive, holds included, as realised
          (``result.schedules``), and the event's whole day is one of those days;
        * else :data:`NOT_APPLICABLE` (not started yet, finished, stopped, or a drug
          their arm does not give).
    """
    taken = _taken_with(result)
    spans: dict[tuple[int, str], tuple[int, int] | None] = {}
    out = []
    for pid, event, t, gone in zip(patient_ids, events, days, left, strict=True):
        pid, event, t = int(pid), str(event), float(t)
        values = []
        for drug in result.drugs:
            if (pid, drug.name) not in spans:
                schedule = result.schedules.get(pid, {}).get(drug.name)
                spans[pid, drug.name] = None if schedule is None else _dosed_days(schedule)
            span = spans[pid, drug.name]
            on = span is not None and span[0] <= math.floor(t) <= span[1]
            i = taken.get((pid, event, t, drug.name))
            if gone and (on or i is not None):
                values.append("DRUG WITHDRAWN")
            elif i is not None:
                values.append(AEACN_ORDER[i])
            else:
                values.append(AEACN_ORDER[0] if on else NOT_APPLICABLE)
        out.append(tuple(values))
    return out


def overall_action(values: Iterable[str]) -> str:
    """AEACN from the drugs' actions (:func:`drug_actions`): the one action when every drug
    the patient was on had it, :data:`MULTIPLE` when they differ (SDTMIG), and
    :data:`NOT_APPLICABLE` when they were on none."""
    given = set(values) - {NOT_APPLICABLE}
    if not given:
        return NOT_APPLICABLE
    return given.pop() if len(given) == 1 else MULTIPLE
