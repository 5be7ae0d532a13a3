"""Dose actions: the protocol's reactions to an adverse event, one class per kind.

A scenario's ``[[adverse_events.<name>.actions]]`` entry (its schema is in
:mod:`sim.scenario_schema`) says which action and with what parameters; the
class registered under its ``action`` name (:data:`ACTIONS`) says what it does:

- :meth:`DoseAction.change`: the new schedule of :attr:`DoseAction.drug` from a day on;
- :meth:`DoseAction.ceiling_cuts`: the cuts of a dose ceiling it can make, from which
  :func:`reachable_doses` finds every dose a patient can be on;
- :attr:`DoseAction.done`: its name in the event log; :attr:`DoseAction.aeacn`: the
  CDISC action taken with its drug; :attr:`DoseAction.exadj`: EX's words for it;
  :attr:`DoseAction.interrupts`: whether the drug restarts after it (a hold).

Dose modifications carry their action's name (:class:`Adjustment`), so that no
export reads it back out of a text.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np

from sim.scenario import Leave, MmfHold, MmfReduce, PrednisoneReescalate, Scenario
from sim.schedule import Schedule, build_prednisone

__all__ = [
    "ACTIONS",
    "AEACN_ORDER",
    "Adjustment",
    "Change",
    "DoseAction",
    "apply_dose_action",
    "dose_action",
    "exadj_words",
    "reachable_doses",
    "register_action",
    "taken_actions",
]


@dataclass(frozen=True)
class Change:
    """A dose action's effect: ``drug``'s new schedule (from the action's day on), described;
    ``more``: other drugs' new schedules (a switch starts one)."""

    drug: str
    schedule: Schedule
    detail: str
    more: tuple[tuple[str, Schedule], ...] = ()


@dataclass(frozen=True)
class Adjustment:
    """A dose modification of one patient: the new dosing of ``drug`` runs from ``day``.

    ``reason`` (``"<event>: <action>"``) is the log's short form; ``action`` is the action's
    name (a key of :data:`ACTIONS`), ``event`` the adverse event's and ``event_day`` its
    time (days from the first dose, the event log's ``day``), so that the exports find the
    AE record it answers (AEACN) and word EXADJ without reading the text back; ``started``:
    ``drug`` is one the action started besides its own (a switch's new drug).
    """

    patient_id: int
    drug: str
    day: int
    reason: str
    action: str = ""
    event: str = ""
    event_day: float = math.nan
    started: bool = False


class Setting(NamedTuple):
    """What an action may read besides the schedule: the scenario and the patient."""

    scenario: Scenario
    weight_kg: float
    duration_days: int
    height_cm: float = float("nan")
    schedules: Mapping[str, Schedule] | None = None
    """The patient's schedules of every drug (for an action that :attr:`reads_drugs`)."""


class DoseAction(ABC):
    """One kind of dose modification, wrapping its scenario entry (its parameters).

    Subclasses set the class attributes and give :meth:`change` (and
    :meth:`ceiling_cuts` if they lower a dose ceiling), then register with
    :func:`register_action`.
    """

    #: The scenario's ``action`` name, e.g. ``"mmf_reduce"``.
    name: ClassVar[str]
    #: The event log's name of the modification, e.g. ``"mmf_reduced"``.
    done: ClassVar[str]
    #: CDISC AEACN (action taken with study treatment) for its drug, e.g. ``"DOSE REDUCED"``.
    aeacn: ClassVar[str]
    #: EXADJ's words for it, before the event's term: ``"Dose reduced"`` makes
    #: ``"Dose reduced: leukopenia"``; empty: its :attr:`aeacn`, capitalised.
    exadj: ClassVar[str] = ""
    #: CDISC AEACN for a drug its change starts besides its own (:attr:`Change.more`, a
    #: switch's new drug): not given at the event, its dose was not changed (as an ``add``).
    started_aeacn: ClassVar[str] = "DOSE NOT CHANGED"
    #: EXADJ's words for a drug its change starts besides its own.
    started_exadj: ClassVar[str] = "Started"
    #: The drug whose schedule it changes (a class attribute, or the entry's ``drug``).
    drug: str
    #: Other drugs whose current schedules its change reads (a switch: the new drug).
    reads_drugs: tuple[str, ...] = ()
    #: Whether the drug restarts after it (a hold): EXADJ marks the restart.
    interrupts: ClassVar[bool] = False
    #: Whether its change depends on the patient (:meth:`patient_key`).
    reads_patient: ClassVar[bool] = False

    def __init__(self, entry: Any) -> None:
        self.entry = entry
        #: Chance that the action is taken when its event happens.
        self.probability = float(entry.probability)

    @abstractmethod
    def change(self, schedule: Schedule, day: int, setting: Setting) -> Change | None:
        """The drug's new schedule from ``day`` on, or None when no dose changes."""

    def ceiling_cuts(self) -> list[tuple[float, float]]:
        """``(by_mg, floor_mg)`` for each cut of the dose ceiling it can make."""
        return []

    def patient_key(
        self,
        weight_kg: float,
        start_mg: Callable[[float, float], float],
        height_cm: float = float("nan"),
    ) -> Any:
        """What of the patient its change depends on (for an action that
        :attr:`reads_patient`), so that patients alike share the changed schedule;
        ``start_mg(weight_kg, mg_per_kg)`` rounds a prednisone start dose as the protocol
        does."""
        return None


#: The action classes by their scenario names.
ACTIONS: dict[str, type[DoseAction]] = {}
A = TypeVar("A", bound=type[DoseAction])

AEACN_ORDER = (
    "DOSE NOT CHANGED",
    "DOSE INCREASED",
    "DOSE REDUCED",
    "DRUG INTERRUPTED",
    "DRUG WITHDRAWN",
)
"""CDISC AEACN values from least to most severe; an event with several actions on one drug
gets the last for that drug (``sim.results.ae_actions.drug_actions``). An action's
:attr:`~DoseAction.aeacn` is one."""


def exadj_words(action: str, started: bool = False) -> str:
    """EXADJ's words for a modification by the action named ``action`` (a key of
    :data:`ACTIONS`) of its own drug, or of a drug it ``started``."""
    cls = ACTIONS[action]
    return cls.started_exadj if started else cls.exadj or cls.aeacn.capitalize()


def register_action(cls: A) -> A:
    """Register a dose action class under its :attr:`~DoseAction.name` (a class decorator)."""
    name = cls.__dict__.get("name")
    if not name:
        raise ValueError(f"{cls.__name__} names no action (its own class attribute name)")
    if ACTIONS.get(name, cls) is not cls:
        raise ValueError(f"the action {name!r} is already {ACTIONS[name].__name__}")
    for value in (cls.aeacn, cls.started_aeacn):
        if value not in AEACN_ORDER:
            raise ValueError(f"{cls.__name__}: aeacn {value!r} is not one of {AEACN_ORDER}")
    ACTIONS[name] = cls
    return cls


def _lower_ceiling(tail: Schedule, by_g: float, floor_g: float) -> tuple[float, float]:
    """The highest dose still planned and the ceiling a cut by ``by_g`` gives (mg/day)."""
    top = max(tail.doses_mg_per_day, default=0.0)
    return top, max(top - 1000 * by_g, 1000 * floor_g)


@register_action
class MmfReduction(DoseAction):
    """The MMF ceiling from the day on drops by ``by_g_per_day`` from the highest dose
    still planned, not below ``floor_g_per_day``."""

    name, done, aeacn, drug = "mmf_reduce", "mmf_reduced", "DOSE REDUCED", "mmf"
    exadj = "Dose reduced"
    entry: MmfReduce

    def change(self, schedule: Schedule, day: int, setting: Setting) -> Change | None:
        tail = schedule.tail(day)
        top, cap = _lower_ceiling(tail, self.entry.by_g_per_day, self.entry.floor_g_per_day)
        if cap >= top:
            return None
        capped = schedule.splice(day, tail.capped_at(cap))
        return Change(self.drug, capped, f"MMF at most {cap:g} mg/day")

    def ceiling_cuts(self) -> list[tuple[float, float]]:
        return [(1000 * self.entry.by_g_per_day, 1000 * self.entry.floor_g_per_day)]


@register_action
class MmfInterruption(DoseAction):
    """No MMF for ``days``, then the plan resumes, its ceiling lowered by
    ``resume_reduce_by_g_per_day`` (not below the floor)."""

    name, done, aeacn, drug = "mmf_hold", "mmf_held", "DRUG INTERRUPTED", "mmf"
    exadj = "Drug interrupted"
    interrupts = True
    entry: MmfHold

    def change(self, schedule: Schedule, day: int, setting: Setting) -> Change | None:
        tail = schedule.tail(day)
        held = min(self.entry.days, tail.end_day)
        resumed = tail.tail(held)
        by = self.entry.resume_reduce_by_g_per_day
        if by > 0 and resumed.end_day > 0:
            top, cap = _lower_ceiling(resumed, by, self.entry.floor_g_per_day)
            resumed = resumed.capped_at(min(cap, top))
        new_tail = Schedule._derived((0,), (0.0,), held, tail.doses_per_day).splice(held, resumed)
        return Change(self.drug, schedule.splice(day, new_tail), f"MMF held for {held} days")

    def ceiling_cuts(self) -> list[tuple[float, float]]:
        by = self.entry.resume_reduce_by_g_per_day
        return [(1000 * by, 1000 * self.entry.floor_g_per_day)] if by > 0 else []


@register_action
class MmfWithdrawal(DoseAction):
    """No MMF from the day on."""

    name, done, aeacn, drug = "mmf_stop", "mmf_stopped", "DRUG WITHDRAWN", "mmf"
    exadj = "Drug withdrawn"

    def change(self, schedule: Schedule, day: int, setting: Setting) -> Change | None:
        days_left = setting.duration_days - day
        stopped = Schedule._derived((0,), (0.0,), days_left, schedule.doses_per_day)
        return Change(self.drug, schedule.splice(day, stopped), "MMF stopped")


@register_action
class PrednisoneRestart(DoseAction):
    """Prednisone restarts at ``start_mg_per_kg`` and tapers again by the protocol's stages."""

    name, done, aeacn, drug = (
        "prednisone_reescalate", "prednisone_reescalated", "DOSE INCREASED", "prednisone"
    )  # fmt: skip
    exadj = "Dose re-escalated"
    reads_patient = True
    entry: PrednisoneReescalate

    def change(self, schedule: Schedule, day: int, setting: Setting) -> Change | None:
        regimen = setting.scenario.prednisone
        assert regimen is not None  # validation: re-escalation needs the [prednisone] table
        new_tail = build_prednisone(
            regimen,
            setting.weight_kg,
            setting.duration_days - day,
            start_mg_per_kg=self.entry.start_mg_per_kg,
        )
        detail = f"prednisone {new_tail.doses_mg_per_day[0]:g} mg/day, tapered again"
        return Change(self.drug, schedule.splice(day, new_tail), detail)

    def patient_key(
        self,
        weight_kg: float,
        start_mg: Callable[[float, float], float],
        height_cm: float = float("nan"),
    ) -> Any:
        # the weight matters only through the (rounded) start dose
        return start_mg(weight_kg, self.entry.start_mg_per_kg)


def dose_action(entry: Any) -> DoseAction | None:
    """The dose action of a scenario's action entry (None for ``leave``: an exit)."""
    if isinstance(entry, Leave):
        return None
    return ACTIONS[entry.action](entry)


def taken_actions(
    actions: Sequence[Any], draws: Sequence[float] | np.ndarray
) -> tuple[str | None, list[Any]]:
    """Which of an event's actions happen: each with its probability, one uniform each.

    Returns the exit status if a ``leave`` happens (leaving makes every dose change
    moot, so none is returned with it), else None and the dose actions in order.
    """
    taken = [a for a, u in zip(actions, draws, strict=True) if u < a.probability]
    for action in taken:
        if isinstance(action, Leave):
            return action.status, []
    return None, taken


def apply_dose_action(
    action: Any,
    scenario: Scenario,
    weight_kg: float,
    schedules: Mapping[str, Schedule],
    day: int,
) -> Change | None:
    """A dose action's change from ``day`` on (the protocol's reaction to an event).

    Parameters
    ----------
    action : DoseAction or a scenario action entry
    scenario : Scenario
    weight_kg : float
    schedules : mapping of str to Schedule
        The patient's schedules by drug.
    day : int
        The first day of the new dosing (days from the first dose).

    Returns
    -------
    Change or None
        None when the action changes no dose (an MMF reduction already at its
        floor; ``leave``, an exit).
    """
    if not isinstance(action, DoseAction):
        made = dose_action(action)
        if made is None:
            return None  # leaving is an exit, not a dose change
        action = made
    setting = Setting(scenario, weight_kg, scenario.treatment.duration_days)
    return action.change(schedules[action.drug], day, setting)


def reachable_doses(
    drug: str, planned: Schedule, actions: Sequence[Sequence[Any]], most: int = 64
) -> list[float]:
    """The doses (mg/day) of ``drug`` a patient can be on: the plan's, none, and those
    that the actions' cuts of the dose ceiling reach, breadth first, ``most`` at most."""
    cuts: list[tuple[float, float]] = []
    for action in (a for event in actions for a in event):
        if isinstance(action, DoseAction) and action.drug == drug:
            cuts += action.ceiling_cuts()
    levels = {0.0, *planned.doses_mg_per_day}
    todo = sorted(levels)
    while todo:
        top = todo.pop(0)  # breadth first: the doses a few reductions reach come first
        for by, floor in cuts:
            cap = max(top - by, floor)
            if cap < top and cap not in levels and len(levels) < most:
                levels.add(cap)
                todo.append(cap)
    return sorted(levels)
