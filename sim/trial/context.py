"""What every replicate of one scenario shares: hazards, planned schedules, and their caches."""

from __future__ import annotations

import math
import pickle
from typing import Any

from sim.actions import apply_dose_action, reachable_mmf_doses
from sim.exposure import OralOneCompartment
from sim.hazards import (
    Hazard,
    Plan,
    TemplateCache,
)
from sim.scenario import (
    PrednisoneReescalate,
    Scenario,
)
from sim.schedule import (
    Schedule,
    build_mmf,
    build_prednisone_from_start,
    prednisone_start_mg,
)

WITHDRAWAL, DEATH = "withdrawal", "death"
"""The names of the dropout hazards (and exit reasons)."""


class TrialContext:
    """What every replicate of one scenario shares: hazards, plans, and their caches.

    Built once per scenario object (scenarios are immutable) and kept, so the
    schedules of each start dose and their hazard grids are computed once per
    worker process, not once per replicate. Cached values depend only on the
    scenario, so results do not depend on what was cached before.
    """

    def __init__(self, scenario: Scenario) -> None:
        scenario.require("exposure", "dropout", purpose="the cohort model")
        dropout = scenario.dropout
        assert dropout is not None and scenario.exposure is not None
        self.scenario = scenario
        self.duration = scenario.treatment.duration_days
        self.ae_names = sorted(scenario.adverse_events)
        self.hazards = [
            *(Hazard.from_adverse_event(n, scenario.adverse_events[n]) for n in self.ae_names),
            Hazard(WITHDRAWAL, dropout.withdrawal_per_year),
            Hazard(DEATH, dropout.death_per_year),
        ]
        # dropout hazards are known by position, never by name
        self.withdrawal_index, self.death_index = len(self.hazards) - 2, len(self.hazards) - 1
        self.actions = [
            tuple(scenario.adverse_events[n].actions) if n in scenario.adverse_events else ()
            for n in (h.name for h in self.hazards)
        ]
        self.raise_after = dropout.death_raised_after
        self.planned_mmf = build_mmf(scenario.mmf, self.duration)
        # PK multipliers are computed for everyone at these doses, then looked up
        self.mmf_levels = reachable_mmf_doses(self.planned_mmf, self.actions)
        self.shared_grids = TemplateCache(self.hazards, "mmf", self.mmf_levels)
        self._prednisone: dict[float, Schedule] = {}
        self._start_mg: dict[tuple[float, float | None], float] = {}
        self._week52: dict[int, tuple[Schedule, float]] = {}
        self._actions: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}

    def plan(
        self,
        prednisone: Schedule,
        mmf: Schedule,
        pk: dict[str, OralOneCompartment] | None = None,
        covariates: dict[str, float] | None = None,
    ) -> Plan:
        """What the hazards read: the schedules by drug, and the patient's PK and covariates."""
        return Plan({"prednisone": prednisone, "mmf": mmf}, pk or {}, covariates or {})

    def prednisone(self, start_mg: float) -> Schedule:
        """The planned prednisone schedule of a start dose (one object per dose)."""
        schedule = self._prednisone.get(start_mg)
        if schedule is None:
            schedule = build_prednisone_from_start(
                self.scenario.prednisone, start_mg, self.duration
            )
            self._prednisone[start_mg] = schedule
        return schedule

    def start_mg(self, weight_kg: float, start_mg_per_kg: float) -> float:
        """The prednisone start dose (mg/day) of a weight and drawn mg/kg (NaN: the protocol's)."""
        per_kg = None if math.isnan(start_mg_per_kg) else start_mg_per_kg
        key = (weight_kg, per_kg)  # never NaN in a key: NaN != NaN
        mg = self._start_mg.get(key)
        if mg is None:
            mg = prednisone_start_mg(self.scenario.prednisone, weight_kg, per_kg)
            if len(self._start_mg) > 100_000:
                self._start_mg.clear()
            self._start_mg[key] = mg
        return mg

    def dose_action(
        self, action: Any, weight_kg: float, prednisone: Schedule, mmf: Schedule, day: int
    ) -> tuple[Schedule, Schedule, str, str] | None:
        """:func:`apply_dose_action`, remembered: the same change on the same plan gives the
        same schedule object, so patients on it share its hazard grid."""
        reescalate = isinstance(action, PrednisoneReescalate)
        source = prednisone if reescalate else mmf
        # a re-escalation depends on the weight only through its (rounded) start dose
        restart = self.start_mg(weight_kg, action.start_mg_per_kg) if reescalate else None
        key = (id(action), id(source), day, restart)
        entry = self._actions.get(key)
        if entry is None or entry[0] is not source or entry[1] is not action:
            change = apply_dose_action(action, self.scenario, weight_kg, prednisone, mmf, day)
            result = (
                None if change is None else (change[0] if reescalate else change[1], *change[2:])
            )
            if len(self._actions) >= 50_000:
                self._actions.clear()
            entry = (source, action, result)
            self._actions[key] = entry
        result = entry[2]
        if result is None:
            return None
        changed, drug, detail = result
        if reescalate:
            return changed, mmf, drug, detail
        return prednisone, changed, drug, detail

    def week52_mg(self, schedule: Schedule) -> float:
        """Cumulative prednisone (mg) over the first 52 weeks of a schedule."""
        entry = self._week52.get(id(schedule))
        if entry is None or entry[0] is not schedule:
            entry = (schedule, float(schedule.cumulative(7 * 52)))
            if len(self._week52) > 4096:
                self._week52.clear()
            self._week52[id(schedule)] = entry
        return entry[1]


_CONTEXTS: dict[int, tuple[Scenario, TrialContext]] = {}
_CONTEXTS_BY_CONTENT: dict[bytes, TrialContext] = {}


def context_for(scenario: Scenario) -> TrialContext:
    """The scenario's context: by object, else by content.

    A worker process receives a new copy of the scenario with every task (it is
    pickled), so contexts are also found by the pickled content: the caches fill
    once per worker, not once per task.
    """
    entry = _CONTEXTS.get(id(scenario))
    if entry is None or entry[0] is not scenario:
        content = pickle.dumps(scenario)
        ctx = _CONTEXTS_BY_CONTENT.get(content)
        if ctx is None:
            if len(_CONTEXTS_BY_CONTENT) >= 8:
                _CONTEXTS_BY_CONTENT.clear()
            ctx = _CONTEXTS_BY_CONTENT[content] = TrialContext(scenario)
        if len(_CONTEXTS) >= 64:
            _CONTEXTS.clear()
        entry = (scenario, ctx)
        _CONTEXTS[id(scenario)] = entry
    return entry[1]
