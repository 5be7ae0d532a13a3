"""The SimPy trial: one process per enrolled patient, event-driven.

A patient process sleeps until the next thing the plan did not foresee: an
adverse event, withdrawal, death, or the end of treatment. Planned dose
changes need no wake-up: the schedules already hold them. At each wake-up the
time of the next event of every hazard is solved exactly over the rest of the
plan (:mod:`sim.hazards`); hazards that did not fire keep their residual
Exp(1) threshold (a time change that is exact whatever the plan does next), the
one that fired draws a new one from its own stream. An event's actions change
the plan from the next whole day on (the day's doses were already taken).

Random numbers come from named streams (:mod:`sim.streams`) addressed by seed,
replicate, stream name and person, so results do not depend on processing
order. A change to an adverse event's parameters leaves every patient's
covariates, PK and hazard thresholds as they were; adding, removing or renaming
an adverse event shifts the first thresholds of the hazards after it (they are
taken in hazard order), so common random numbers hold between scenarios with
the same set of adverse events.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from sim.errors import DosesimError
from sim.exposure import etas_from_normals, mpa_auc0_12_at_target, pk_model
from sim.hazards import Hazard, HazardGrid, Plan, Windows
from sim.population import Candidate, draw_candidate, require_population, screening_criteria
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
    build_mmf,
    build_prednisone,
    build_prednisone_from_start,
    prednisone_start_mg,
)
from sim.streams import stream

__all__ = [
    "DEATH",
    "LANDMARK_WEEKS",
    "WITHDRAWAL",
    "CohortResult",
    "EventRecord",
    "apply_dose_action",
    "person_extras",
    "screen_people",
    "simulate_cohort",
    "taken_actions",
]

LANDMARK_WEEKS = (4, 12, 24, 52)
PK_NORMALS = 4
"""Standard normal draws per person for PK random effects: (CL, V) of MPA, then prednisolone."""
THRESHOLD_SLOTS = 16
"""Exp(1) draws per person for the first threshold of each hazard (in hazard order)."""


def person_extras(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The draws every screened person takes after their covariates, eligible or not.

    Always the same count, so each person's block of draws starts at the same place
    in their site's stream whatever the eligibility rules or outcomes: the PK normals
    and one Exp(1) slot per hazard.
    """
    return rng.standard_normal(PK_NORMALS), rng.standard_exponential(THRESHOLD_SLOTS)


WITHDRAWAL, DEATH = "withdrawal", "death"
_MAX_SCREENED_PER_ENROLLED = 1000


@dataclass(frozen=True)
class EventRecord:
    """One line of the event log.

    Attributes
    ----------
    trial_day : float
        Days from the trial start.
    patient_id : int
    day : float
        Days from the patient's first dose.
    event : str
        ``enrolled``, an adverse event's name, an action (``mmf_reduced``,
        ``mmf_held``, ``mmf_stopped``, ``prednisone_reescalated``), or an exit
        (``completed``, ``withdrawn``, ``died``, ``discontinued``).
    detail : str
    """

    trial_day: float
    patient_id: int
    day: float
    event: str
    detail: str


@dataclass(frozen=True)
class Adjustment:
    """A dose modification: the new dosing runs from ``day`` (the reason becomes EXADJ)."""

    patient_id: int
    drug: str
    day: int
    reason: str


@dataclass
class _Patient:
    patient_id: int
    candidate: Candidate
    enrol_day: float
    prednisone: Schedule
    mmf: Schedule
    planned_mmf: Schedule
    mpa: Any
    prednisolone: Any
    start_mg: float
    ae_counts: dict[str, int]
    thresholds: np.ndarray = field(default_factory=lambda: np.empty(0))
    death_windows: list[tuple[float, float]] = field(default_factory=list)
    exit_day: float = math.nan
    status: str = ""
    exit_reason: str = ""


@dataclass(frozen=True)
class CohortResult:
    """One replicate of the cohort model.

    Attributes
    ----------
    patients : pandas.DataFrame
        One row per enrolled patient (see ``simulate_cohort``).
    events : pandas.DataFrame
        The event log: ``trial_day, patient_id, day, event, detail``.
    screened : pandas.DataFrame
        One row per screened person: ``person, eligible, failed`` and covariates.
    adjustments : pandas.DataFrame
        Dose modifications: ``patient_id, drug, day, reason``.
    schedules : dict
        ``patient_id -> {"prednisone": Schedule, "mmf": Schedule}`` as given
        (truncated at exit).
    """

    patients: pd.DataFrame
    events: pd.DataFrame
    screened: pd.DataFrame
    adjustments: pd.DataFrame
    schedules: dict[int, dict[str, Schedule]]


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
        new_tail = Schedule.constant(0.0, held, tail.doses_per_day).splice(held, resumed)
        return prednisone, mmf.splice(day, new_tail), "mmf", f"MMF held for {held} days"
    if isinstance(action, MmfStop):
        stopped = Schedule.constant(0.0, duration - day, mmf.doses_per_day)
        return prednisone, mmf.splice(day, stopped), "mmf", "MMF stopped"
    if not isinstance(action, PrednisoneReescalate):
        return None  # leaving is an exit, not a dose change
    new_tail = build_prednisone(
        scenario.prednisone, weight_kg, duration - day, start_mg_per_kg=action.start_mg_per_kg
    )
    detail = f"prednisone {new_tail.doses_mg_per_day[0]:g} mg/day, tapered again"
    return prednisone.splice(day, new_tail), mmf, "prednisone", detail


class _Cohort:
    """The SimPy environment and everything shared by one replicate's patients."""

    def __init__(
        self, scenario: Scenario, seed: int, replicate: int, patients: bool = True
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.replicate = replicate
        self.env = simpy.Environment()
        self.log: list[EventRecord] = []
        self.adjustments: list[Adjustment] = []
        self.patients: list[_Patient] = []
        self.duration = scenario.treatment.duration_days
        self.ae_names = sorted(scenario.adverse_events)
        if not patients:  # recruitment only: nobody is treated
            return
        scenario.require("exposure", "dropout", purpose="the cohort model")
        dropout = scenario.dropout
        assert dropout is not None
        self.hazards = [
            *(Hazard.from_adverse_event(n, scenario.adverse_events[n]) for n in self.ae_names),
            Hazard(WITHDRAWAL, dropout.withdrawal_per_year),
            Hazard(DEATH, dropout.death_per_year),
        ]
        # dropout hazards are known by position, never by name
        self.withdrawal_index, self.death_index = len(self.hazards) - 2, len(self.hazards) - 1
        self._prednisone_cache: dict[float, Schedule] = {}
        self._shared_grids: dict[tuple[int, int], Any] = {}
        self.planned_mmf = build_mmf(scenario.mmf, self.duration)

    def stream(self, *path: int | str) -> np.random.Generator:
        return stream(self.seed, "replicate", self.replicate, *path)

    # -- enrolment --------------------------------------------------------
    def enrol(
        self,
        candidate: Candidate,
        enrol_day: float,
        extras: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Enrol an eligible candidate: their process starts on trial day ``enrol_day``.

        ``extras`` are the person's PK normals and hazard thresholds from
        :func:`person_extras` (default: drawn from a stream of their own).
        """
        s = self.scenario
        assert s.exposure is not None
        pid = len(self.patients) + 1
        start = prednisone_start_mg(s.prednisone, candidate.weight_kg, candidate.start_mg_per_kg)
        pred = self._prednisone_cache.get(start)
        if pred is None:
            pred = build_prednisone_from_start(s.prednisone, start, self.duration)
            self._prednisone_cache[start] = pred
        if extras is None:
            extras = person_extras(self.stream("person", candidate.person))
        normals, thresholds = extras
        mpa_eta = etas_from_normals(s.exposure.mpa, normals[:2])
        pred_eta = etas_from_normals(s.exposure.prednisolone, normals[2:4])
        patient = _Patient(
            patient_id=pid,
            candidate=candidate,
            enrol_day=float(enrol_day),
            prednisone=pred,
            mmf=self.planned_mmf,
            planned_mmf=self.planned_mmf,
            mpa=pk_model(s.exposure.mpa, candidate.weight_kg, mpa_eta),
            prednisolone=pk_model(s.exposure.prednisolone, candidate.weight_kg, pred_eta),
            start_mg=start,
            ae_counts=dict.fromkeys(self.ae_names, 0),
            thresholds=thresholds,
        )
        self.patients.append(patient)
        self.env.process(self._run(patient))

    # -- the patient process ----------------------------------------------
    def _record(self, p: _Patient, day: float, event: str, detail: str = "") -> None:
        self.log.append(EventRecord(p.enrol_day + day, p.patient_id, day, event, detail))

    def _hazards_for(self, p: _Patient) -> list[Hazard]:
        if not p.death_windows:
            return self.hazards
        raise_ = self.scenario.dropout.death_raised_after  # type: ignore[union-attr]
        assert raise_ is not None
        death = self.hazards[-1].with_driver(Windows(tuple(p.death_windows), raise_.multiplier))
        return [*self.hazards[:-1], death]

    def _run(self, p: _Patient) -> Any:
        env = self.env
        yield env.timeout(max(p.enrol_day - env.now, 0.0))  # enrolment may happen mid-run
        self._record(
            p,
            0.0,
            "enrolled",
            f"weight {p.candidate.weight_kg} kg, prednisone {p.start_mg:g} mg/day",
        )
        person = p.candidate.person
        # Each hazard fires when its cumulative hazard from day 0 reaches a target: an
        # Exp(1) draw, then one more Exp(1) each time it fires. First draws come from the
        # person's block (one slot per hazard, in hazard order); later ones from a stream
        # per hazard and occurrence.
        n = len(self.hazards)
        targets = p.thresholds[:n].copy()
        if n > targets.size:
            more = self.stream("hazards", person).standard_exponential(n - targets.size)
            targets = np.concatenate((targets, more))
        fired = [0] * len(self.hazards)
        t, end = 0.0, float(self.duration)
        grid = HazardGrid(
            self._hazards_for(p), Plan(p.prednisone, p.mmf, p.mpa), end, self._shared_grids
        )
        while True:
            times = grid.crossing(targets)
            k = int(np.argmin(times))
            t_next = float(times[k])
            if not t_next < end:
                yield env.timeout(end - t)
                self._exit(p, end, "completed", "")
                return
            fired[k] += 1
            name = self.hazards[k].name
            targets[k] += self.stream("hazard", name, person, fired[k]).standard_exponential()
            yield env.timeout(t_next - t)
            t = t_next
            if k == self.withdrawal_index:
                self._exit(p, t, "withdrawn", WITHDRAWAL)
                return
            if k == self.death_index:
                self._exit(p, t, "died", DEATH)
                return
            p.ae_counts[name] += 1
            self._record(p, t, name)
            before = (p.prednisone, p.mmf, len(p.death_windows))
            status = self._act(p, name, t)
            if status:
                self._exit(p, t, status, name)
                return
            if (p.prednisone, p.mmf, len(p.death_windows)) != before:
                # the plan changed from the next day on: the cumulative hazard up to
                # now is unchanged, so the targets stay valid on the new grid
                grid = HazardGrid(self._hazards_for(p), Plan(p.prednisone, p.mmf, p.mpa), end)

    def _exit(self, p: _Patient, day: float, status: str, reason: str) -> None:
        p.exit_day, p.status, p.exit_reason = day, status, reason
        self._record(p, day, status, reason)
        if status != "completed":
            stop = min(math.floor(day) + 1, self.duration)
            p.prednisone = p.prednisone.truncated(stop)
            p.mmf = p.mmf.truncated(stop)

    # -- the protocol's reactions -----------------------------------------
    def _act(self, p: _Patient, name: str, t: float) -> str:
        """Apply an event's actions in order; returns an exit status, or ''."""
        s = self.scenario
        ae = s.adverse_events[name]
        raise_ = s.dropout.death_raised_after if s.dropout else None
        if raise_ is not None and raise_.event == name:
            p.death_windows.append((t, t + raise_.days))
        if not ae.actions:
            return ""
        draws = self.stream("actions", name, p.candidate.person, p.ae_counts[name]).random(
            len(ae.actions)
        )
        day = math.floor(t) + 1  # today's doses were taken
        status, taken = taken_actions(ae.actions, draws)
        if status is not None:
            return status
        for action in taken:
            if day >= self.duration:
                continue  # no dosing left to change
            change = apply_dose_action(action, s, p.candidate.weight_kg, p.prednisone, p.mmf, day)
            if change is not None:
                p.prednisone, p.mmf, drug, detail = change
                self._adjust(p, drug, day, f"{name}: {action.action}", detail, t)
        return ""

    def _adjust(self, p: _Patient, drug: str, day: int, reason: str, detail: str, t: float) -> None:
        self.adjustments.append(Adjustment(p.patient_id, drug, day, reason))
        event = {
            "mmf_reduce": "mmf_reduced",
            "mmf_hold": "mmf_held",
            "mmf_stop": "mmf_stopped",
            "prednisone_reescalate": "prednisone_reescalated",
        }[reason.split(": ", 1)[1]]
        self._record(p, t, event, f"{detail} from day {day} ({reason.split(':')[0]})")

    # -- results ----------------------------------------------------------
    def outcomes(self) -> dict[str, Any]:
        """Per-patient outcomes as arrays, straight from the model (no tables).

        ``enrol_day``, ``exit_day``, ``status`` and ``cumulative_prednisone_mg_week52``
        (NaN for those who left before), and ``ae_<name>`` counts.
        """
        ps = self.patients
        week52 = 7 * 52
        out: dict[str, Any] = {
            "enrol_day": np.array([p.enrol_day for p in ps], dtype=float),
            "exit_day": np.array([p.exit_day for p in ps], dtype=float),
            "status": [p.status for p in ps],
            "cumulative_prednisone_mg_week52": np.array(
                [p.prednisone.cumulative(week52) if p.exit_day >= week52 else math.nan for p in ps],
                dtype=float,
            ),
        }
        for name in self.ae_names:
            out[f"ae_{name}"] = np.array([p.ae_counts[name] for p in ps], dtype=int)
        return out

    def patient_columns(self) -> list[str]:
        """The columns of the patients table, in order (also when it has no rows)."""
        return [
            "patient_id", "person", "enrol_day", "sex", "age_years", "weight_kg",
            "fvc_percent", "prednisone_start_mg_per_day",
            *(f"cumulative_prednisone_mg_week{w}" for w in LANDMARK_WEEKS),
            "cumulative_prednisone_mg", "days_at_or_above_20mg", "first_day_at_or_below_7_5mg",
            "mmf_dose_intensity", "mpa_auc0_12_mg_h_per_l", "mpa_cl_l_per_h",
            "prednisolone_cl_l_per_h", *(f"ae_{n}" for n in self.ae_names),
            "status", "exit_day", "exit_reason",
        ]  # fmt: skip

    def patient_rows(self) -> list[dict[str, Any]]:
        rows = []
        for p in self.patients:
            pred, mmf = p.prednisone, p.mmf
            daily = pred.daily_doses()
            row: dict[str, Any] = {
                "patient_id": p.patient_id,
                "person": p.candidate.person,
                "enrol_day": p.enrol_day,
                "sex": "F" if p.candidate.female else "M",
                "age_years": p.candidate.age_years,
                "weight_kg": p.candidate.weight_kg,
                "fvc_percent": p.candidate.fvc_percent,
                "prednisone_start_mg_per_day": p.start_mg,
            }
            for week in LANDMARK_WEEKS:
                day = 7 * week
                row[f"cumulative_prednisone_mg_week{week}"] = (
                    pred.cumulative(day) if p.exit_day >= day else math.nan
                )
            row["cumulative_prednisone_mg"] = pred.total_mg
            row["days_at_or_above_20mg"] = int((daily >= 20).sum())
            low = np.flatnonzero(daily <= 7.5)
            row["first_day_at_or_below_7_5mg"] = int(low[0]) if low.size else math.nan
            planned = p.planned_mmf.cumulative(mmf.end_day)
            row["mmf_dose_intensity"] = mmf.total_mg / planned if planned > 0 else math.nan
            row["mpa_auc0_12_mg_h_per_l"] = float(mpa_auc0_12_at_target(self.scenario, p.mpa))
            row["mpa_cl_l_per_h"] = float(p.mpa.cl_l_per_h)
            row["prednisolone_cl_l_per_h"] = float(p.prednisolone.cl_l_per_h)
            for name in self.ae_names:
                row[f"ae_{name}"] = p.ae_counts[name]
            row["status"] = p.status
            row["exit_day"] = p.exit_day
            row["exit_reason"] = p.exit_reason
            rows.append(row)
        return rows


Extras = tuple[np.ndarray, np.ndarray]


def screen_people(
    scenario: Scenario, n_patients: int, seed: int, replicate: int = 0
) -> tuple[list[Candidate], list[tuple[Candidate, Extras]]]:
    """Screen people in turn until ``n_patients`` are eligible (all at one site).

    Each person takes a fixed block of draws from the site's stream: covariates,
    then :func:`person_extras`. Returns everyone screened, and the eligible with
    their extras (PK normals and hazard thresholds) for enrolment.
    """
    population = require_population(scenario)
    screened: list[Candidate] = []
    enrolled: list[tuple[Candidate, Extras]] = []
    limit = _MAX_SCREENED_PER_ENROLLED * max(n_patients, 1)
    person = 0
    site_stream = stream(seed, "replicate", replicate, "site_population", 0)
    while len(enrolled) < n_patients:
        if person >= limit:
            raise DosesimError(
                f"{scenario.source or scenario.name}: screened {person} people and found only "
                f"{len(enrolled)} eligible; check [population.prevalence] and [eligibility]"
            )
        c = draw_candidate(population, scenario.eligibility, site_stream, person)
        extras = person_extras(site_stream)
        screened.append(c)
        if c.eligible:
            enrolled.append((c, extras))
        person += 1
    return screened, enrolled


def simulate_cohort(
    scenario: Scenario,
    n_patients: int,
    seed: int,
    enrolment_days: Sequence[float] | None = None,
    replicate: int = 0,
) -> CohortResult:
    """Simulate one replicate of the cohort: screening, treatment, adverse events, exits.

    Parameters
    ----------
    scenario : Scenario
        Needs ``[population]``, ``[exposure]`` and ``[dropout]`` tables.
    n_patients : int
        Patients to enrol (people are screened until this many are eligible).
    seed : int
        The run's seed (>= 0).
    enrolment_days : sequence of float, optional
        Trial day of each patient's enrolment (first dose); default all 0.
    replicate : int
        Replicate index: selects the replicate's random streams.

    Returns
    -------
    CohortResult
        ``patients`` has one row per enrolled patient with ``patient_id``,
        covariates, ``prednisone_start_mg_per_day``,
        ``cumulative_prednisone_mg_week4/12/24/52`` (empty when the patient left
        before that week ended), ``cumulative_prednisone_mg`` (at exit),
        ``days_at_or_above_20mg``, ``first_day_at_or_below_7_5mg``,
        ``mmf_dose_intensity`` (taken / planned over the time on study),
        ``mpa_auc0_12_mg_h_per_l`` (at the target dose), ``ae_<name>`` counts,
        ``status`` (completed, withdrawn, died, discontinued), ``exit_day``
        and ``exit_reason``.
    """
    if not isinstance(n_patients, int | np.integer) or n_patients < 0:
        raise DosesimError(f"n_patients must be a whole number >= 0, got {n_patients!r}")
    days = [0.0] * n_patients if enrolment_days is None else [float(d) for d in enrolment_days]
    if len(days) != n_patients:
        raise DosesimError(f"{len(days)} enrolment days given for {n_patients} patients")
    if any(not (math.isfinite(d) and d >= 0) for d in days):
        raise DosesimError("enrolment days must be finite and >= 0")
    cohort = _Cohort(scenario, seed, replicate)
    screened, enrolled = screen_people(scenario, n_patients, seed, replicate)
    for (candidate, extras), day in zip(enrolled, days, strict=True):
        cohort.enrol(candidate, day, extras)
    cohort.env.run()
    return _result(cohort, screened)


def _result(cohort: _Cohort, screened: list[Candidate]) -> CohortResult:
    patients = pd.DataFrame(cohort.patient_rows(), columns=cohort.patient_columns())
    events = pd.DataFrame(
        [vars(e) for e in cohort.log], columns=["trial_day", "patient_id", "day", "event", "detail"]
    ).sort_values(["trial_day", "patient_id"], kind="stable", ignore_index=True)
    criteria = screening_criteria(cohort.scenario.eligibility)
    screened_df = pd.DataFrame(
        [
            {
                "person": c.person,
                "eligible": c.eligible,
                "failed": ";".join(c.failed),
                "sex": "F" if c.female else "M",
                "age_years": c.age_years,
                "weight_kg": c.weight_kg,
                "fvc_percent": c.fvc_percent,
                **{f"fails_{k}": k in c.failed for k in criteria},
            }
            for c in screened
        ]
    )
    adjustments = pd.DataFrame(
        [vars(a) for a in cohort.adjustments], columns=["patient_id", "drug", "day", "reason"]
    )
    schedules = {p.patient_id: {"prednisone": p.prednisone, "mmf": p.mmf} for p in cohort.patients}
    return CohortResult(patients, events, screened_df, adjustments, schedules)
