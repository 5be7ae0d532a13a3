"""What every replicate of one scenario shares: hazards, planned schedules, and their caches."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import sim.drug_actions  # noqa: F401  (registers the dose actions for any drug)
from sim.actions import Change, DoseAction, Setting, dose_action, reachable_doses
from sim.drugs import Drug, scenario_drugs
from sim.exposure import OralOneCompartment
from sim.hazards import Hazard, Plan, TemplateCache
from sim.memo import IdentityCache
from sim.regimens import Body, course_doses, planned_course
from sim.scenario import Scenario
from sim.schedule import Schedule, build_mmf, build_prednisone_from_start, prednisone_start_mg

WITHDRAWAL, DEATH = "withdrawal", "death"
"""The names of the dropout hazards (and exit reasons)."""


class TrialContext:
    """What every replicate of one scenario shares: hazards, plans, and their caches.

    Built once per scenario object (scenarios are immutable) and kept, so the
    schedules of each start dose and their hazard grids are computed once per
    worker process, not once per replicate. Cached values depend only on the
    scenario, so results do not depend on what was cached before.
    """

    def __init__(self, scenario: Scenario, extra_drugs: Sequence[Drug] = ()) -> None:
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
        # each event's actions: a DoseAction, or the scenario's entry of an exit (leave)
        self.actions = [
            tuple(dose_action(a) or a for a in scenario.adverse_events[n].actions)
            if n in scenario.adverse_events
            else ()
            for n in (h.name for h in self.hazards)
        ]
        self.raise_after = dropout.death_raised_after
        self.drugs = (*scenario_drugs(scenario), *extra_drugs)
        names = [d.name for d in self.drugs]
        #: the drugs this scenario (arm) gives: an action on another does nothing
        self.given_names = frozenset(names)
        if len(set(names)) != len(names):
            raise ValueError(f"two drugs share a name: {', '.join(names)}")
        # no [mmf] table: a schedule of none, which the hazards read as no MPA
        self.planned_mmf = (
            Schedule.constant(0.0, self.duration, 2)
            if scenario.mmf is None
            else build_mmf(scenario.mmf, self.duration)
        )
        #: the schedules every patient starts on but prednisone's (which depends on weight)
        self.fixed: dict[str, Schedule] = {"mmf": self.planned_mmf}
        for drug in extra_drugs:
            if drug.schedule is None:
                raise ValueError(f"drug {drug.name!r}: an added drug needs a fixed schedule")
            # given within the treatment period, like every drug of the protocol
            schedule = drug.schedule
            if schedule.end_day > self.duration:
                schedule = schedule.truncated(self.duration)
            self.fixed[drug.name] = schedule
        # PK multipliers are computed for everyone at these doses, then looked up
        self.mmf_levels = reachable_doses("mmf", self.planned_mmf, self.actions)
        self.shared_grids = TemplateCache(
            self.hazards, "mmf", self.mmf_levels, self.planned_mmf.doses_per_day
        )
        self._prednisone: dict[float, Schedule] = {}
        self._start_mg: dict[tuple[float, float | None], float] = {}
        self._mmf_only = list(self.fixed) == ["mmf"] and not scenario.drugs
        #: the [drugs] tables' schedules by the resolved doses of their courses
        self._declared: dict[tuple[object, ...], dict[str, Schedule]] = {}
        self.reads_height = any(r.uses("mg_per_m2") for r in scenario.drugs.values())
        #: no [drugs] tables and the [prednisone] shorthand: a patient's plan is its start dose's
        self.plain = not scenario.drugs and scenario.prednisone is not None
        self._week52: IdentityCache[float] = IdentityCache(4096)
        self._changes: IdentityCache[tuple[Change | None]] = IdentityCache(50_000)

    def schedules(
        self, prednisone: Schedule, declared: Mapping[str, Schedule] | None = None
    ) -> dict[str, Schedule]:
        """A patient's planned schedules by drug, in the order of :attr:`drugs`
        (``declared``: the patient's schedules of the ``[drugs]`` tables, :meth:`declared`)."""
        if self._mmf_only:
            return {"prednisone": prednisone, "mmf": self.planned_mmf}
        out = {"prednisone": prednisone, "mmf": self.planned_mmf}
        if declared:
            out.update(declared)
        out.update(self.fixed)
        return out

    def planned(
        self, declared: tuple[object, ...], start_mg: float
    ) -> tuple[dict[str, Schedule], float]:
        """A patient's planned schedules with their ``[drugs]`` tables (their
        :meth:`declared_key`), and the start dose of their glucocorticoid (a
        ``[drugs.prednisone]`` course's first dose)."""
        schedules = self.schedules(self.prednisone(start_mg), self.declared(declared) or None)
        if self.scenario.prednisone is None:  # the course's first dose (after IV pulses, say)
            doses = schedules["prednisone"].doses_mg_per_day
            start_mg = next((d for d in doses if d > 0), 0.0)
        return schedules, start_mg

    def declared_key(self, weight_kg: float, height_cm: float) -> tuple[object, ...]:
        """What the ``[drugs]`` schedules of a patient depend on: their courses' doses."""
        if not self.scenario.drugs:
            return ()
        body = Body(weight_kg, height_cm)
        return tuple(course_doses(r, body) for r in self.scenario.drugs.values())

    def declared(self, key: tuple[object, ...]) -> dict[str, Schedule]:
        """The ``[drugs]`` schedules of a :meth:`declared_key` (one object per key)."""
        made = self._declared.get(key)
        if made is None:
            made = {
                name: planned_course(regimen, doses, self.duration)  # type: ignore[arg-type]
                for (name, regimen), doses in zip(self.scenario.drugs.items(), key, strict=True)
            }
            if len(self._declared) > 100_000:
                self._declared.clear()
            self._declared[key] = made
        return made

    def plan(
        self,
        prednisone: Schedule,
        mmf: Schedule | None = None,
        pk: dict[str, OralOneCompartment] | None = None,
        covariates: dict[str, float] | None = None,
        declared: Mapping[str, Schedule] | None = None,
    ) -> Plan:
        """What the hazards read: the planned schedules with these prednisone and MMF ones."""
        schedules = self.schedules(prednisone, declared)
        if mmf is not None:
            schedules["mmf"] = mmf
        return Plan(schedules, pk or {}, covariates or {})

    def prednisone(self, start_mg: float) -> Schedule:
        """The planned prednisone schedule of a start dose (one object per dose); with a
        ``[drugs.prednisone]`` course, a placeholder its course replaces (:meth:`schedules`)."""
        schedule = self._prednisone.get(start_mg)
        if schedule is None:
            regimen = self.scenario.prednisone
            schedule = (
                Schedule.constant(0.0, self.duration)
                if regimen is None
                else build_prednisone_from_start(regimen, start_mg, self.duration)
            )
            self._prednisone[start_mg] = schedule
        return schedule

    def start_mg(self, weight_kg: float, start_mg_per_kg: float) -> float:
        """The prednisone start dose (mg/day) of a weight and drawn mg/kg (NaN: the protocol's)."""
        per_kg = None if math.isnan(start_mg_per_kg) else start_mg_per_kg
        key = (weight_kg, per_kg)  # never NaN in a key: NaN != NaN
        mg = self._start_mg.get(key)
        if mg is None:
            regimen = self.scenario.prednisone
            mg = 0.0 if regimen is None else prednisone_start_mg(regimen, weight_kg, per_kg)
            if len(self._start_mg) > 100_000:
                self._start_mg.clear()
            self._start_mg[key] = mg
        return mg

    def dose_action(
        self,
        action: DoseAction,
        weight_kg: float,
        schedules: Mapping[str, Schedule],
        day: int,
        height_cm: float = math.nan,
    ) -> Change | None:
        """:func:`apply_dose_action`, remembered: the same change on the same plan gives the
        same schedule object, so patients on it share its hazard grid."""
        source = schedules[action.drug]
        patient = (
            action.patient_key(weight_kg, self.start_mg, height_cm)
            if action.reads_patient
            else None
        )
        if action.reads_drugs:  # its change reads other drugs' schedules too
            read = (action, source, *(schedules[d] for d in action.reads_drugs))
            key: tuple[object, ...] = (*map(id, read), day, patient)
        else:
            read = (action, source)
            key = (id(action), id(source), day, patient)  # as IdentityCache.get builds it
        remembered = self._changes.lookup(key, read)
        if remembered is None:
            # the body only for an action that says it reads the patient (a NaN otherwise:
            # an action reading it undeclared would share schedules between patients)
            weight = weight_kg if action.reads_patient else math.nan
            height = height_cm if action.reads_patient else math.nan
            setting = Setting(self.scenario, weight, self.duration, height, schedules)
            change = action.change(source, day, setting)
            remembered = self._changes.store(key, read, (change,))
        return remembered[0]

    def week52_mg(self, schedule: Schedule) -> float:
        """Cumulative prednisone (mg) over the first 52 weeks of a schedule."""
        mg = self._week52.get_one(schedule)
        if mg is None:
            mg = self._week52.put_one(schedule, float(schedule.cumulative(7 * 52)))
        return mg  # (once per patient and replicate: the cache's fast path)


_CONTEXTS: IdentityCache[TrialContext] = IdentityCache(16)


def context_for(scenario: Scenario, extra_drugs: Sequence[Drug] = ()) -> TrialContext:
    """The context of a scenario object (and of drugs added to it through the Python API).

    Built once per object and kept: a worker process holds one copy of the scenario
    (:class:`sim.executors.Executor` installs it when the worker starts; Dask ships it
    once per worker), so its caches fill once per worker, not once per task.
    """
    if not extra_drugs:  # once per replicate: the cache's fast path
        ctx = _CONTEXTS.get_one(scenario)
        if ctx is None:
            ctx = _CONTEXTS.put_one(scenario, TrialContext(scenario))
        return ctx
    ctx = _CONTEXTS.get((scenario, *extra_drugs))
    if ctx is None:
        ctx = _CONTEXTS.put((scenario, *extra_drugs), TrialContext(scenario, extra_drugs))
    return ctx
