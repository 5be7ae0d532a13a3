"""Dose actions: the protocol's reactions to an adverse event, and the doses they can reach."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sim.scenario import (
    Leave,
    MmfHold,
    MmfReduce,
    MmfStop,
    PrednisoneReescalate,
    Scenario,
)
from sim.schedule import (
    Schedule,
    build_prednisone,
)


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
    action: MmfReduce | MmfHold | MmfStop | PrednisoneReescalate | Leave,
    scenario: Scenario,
    weight_kg: float,
    prednisone: Schedule,
    mmf: Schedule,
    day: int,
) -> tuple[Schedule, Schedule, str, str] | None:
    """A dose action's new schedules from ``day`` on (the protocol's reaction to an event).

    Returns ``(prednisone, mmf, drug changed, description)``, or None when the
    action changes no dose (an MMF reduction already at its floor; ``leave``).

    * ``mmf_reduce``: the MMF ceiling from ``day`` on drops by ``by_g_per_day``
      from the highest dose still planned, not below ``floor_g_per_day``.
    * ``mmf_hold``: no MMF for ``days``, then the plan resumes, its ceiling
      lowered by ``resume_reduce_by_g_per_day`` (not below the floor).
    * ``mmf_stop``: no MMF from ``day`` on.
    * ``prednisone_reescalate``: prednisone restarts at ``start_mg_per_kg`` and
      tapers again by the protocol's stages.
    """
    duration = scenario.treatment.duration_days
    if isinstance(action, MmfReduce):
        tail = mmf.tail(day)
        top = max(tail.doses_mg_per_day, default=0.0)
        cap = max(top - 1000 * action.by_g_per_day, 1000 * action.floor_g_per_day)
        if cap >= top:
            return None
        return (
            prednisone,
            mmf.splice(day, tail.capped_at(cap)),
            "mmf",
            f"MMF at most {cap:g} mg/day",
        )
    if isinstance(action, MmfHold):
        tail = mmf.tail(day)
        held = min(action.days, tail.end_day)
        resumed = tail.tail(held)
        if action.resume_reduce_by_g_per_day > 0 and resumed.end_day > 0:
            top = max(resumed.doses_mg_per_day)
            cap = max(top - 1000 * action.resume_reduce_by_g_per_day, 1000 * action.floor_g_per_day)
            resumed = resumed.capped_at(min(cap, top))
        new_tail = Schedule._derived((0,), (0.0,), held, tail.doses_per_day).splice(held, resumed)
        return prednisone, mmf.splice(day, new_tail), "mmf", f"MMF held for {held} days"
    if isinstance(action, MmfStop):
        stopped = Schedule._derived((0,), (0.0,), duration - day, mmf.doses_per_day)
        return prednisone, mmf.splice(day, stopped), "mmf", "MMF stopped"
    if not isinstance(action, PrednisoneReescalate):
        return None  # leaving is an exit, not a dose change
    new_tail = build_prednisone(
        scenario.prednisone, weight_kg, duration - day, start_mg_per_kg=action.start_mg_per_kg
    )
    detail = f"prednisone {new_tail.doses_mg_per_day[0]:g} mg/day, tapered again"
    return prednisone.splice(day, new_tail), mmf, "prednisone", detail


def reachable_mmf_doses(planned: Schedule, actions: Sequence[tuple[Any, ...]]) -> list[float]:
    """The MMF doses (mg/day) a patient can be on: the plan's, none, and those that the
    actions' caps give (the arithmetic of :func:`apply_dose_action`), caps added up to 64."""
    caps = []
    for action in (a for event in actions for a in event):
        if isinstance(action, MmfReduce):
            caps.append((action.by_g_per_day, action.floor_g_per_day))
        elif isinstance(action, MmfHold) and action.resume_reduce_by_g_per_day > 0:
            caps.append((action.resume_reduce_by_g_per_day, action.floor_g_per_day))
    levels = {0.0, *planned.doses_mg_per_day}
    todo = sorted(levels)
    while todo:
        top = todo.pop(0)  # breadth first: the doses a few reductions reach come first
        for by, floor in caps:
            cap = max(top - 1000 * by, 1000 * floor)
            if cap < top and cap not in levels and len(levels) < 64:
                levels.add(cap)
                todo.append(cap)
    return sorted(levels)
