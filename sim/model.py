"""The SimPy trial: one process per enrolled patient, event-driven.

A patient process sleeps until the next thing the plan did not foresee: an
adverse event, withdrawal or death. Planned dose changes need no wake-up: the
schedules already hold them; nor does the end of treatment, when nothing comes
before it (the completion is recorded at the end day; nothing waits on a
patient's process). At each wake-up the time of the next event of every
hazard is solved exactly over the rest of the plan (:mod:`sim.hazards`);
hazards that did not fire keep their residual Exp(1) threshold (a time change
that is exact whatever the plan does next), the one that fired draws a new one
from its own stream. An event's actions change
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
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import simpy

from sim.collector import young_collections_only
from sim.errors import DosesimError
from sim.exposure import OralOneCompartment, etas_from_normals, mpa_auc0_12_at_target, pk_model
from sim.hazards import (
    Driver,
    Hazard,
    HazardGrid,
    Plan,
    Windows,
    pk_level_multipliers,
    plan_grids,
    template_cache,
)
from sim.population import (
    DRAWS_PER_OCCURRENCE,
    THRESHOLD_SLOTS,
    Candidate,
    People,
    PeopleSource,
    event_draws_at,
    screening_criteria,
)
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
    "screen_people",
    "simulate_cohort",
    "taken_actions",
]

LANDMARK_WEEKS = (4, 12, 24, 52)
#: More occurrences of one adverse event than this for one patient stop the run with a
#: message: a valid but absurd scenario (a baseline of 1,000 a year times multipliers up
#: to 1,000) would otherwise simulate millions of events, which looks like a hang.
MAX_EVENTS_PER_PATIENT = 10_000


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


@dataclass(eq=False, slots=True)
class _Patient:
    patient_id: int
    people: People
    row: int
    enrol_day: float
    prednisone: Schedule
    mmf: Schedule
    block_mpa: OralOneCompartment
    """The MPA models of the patient's block (arrays): theirs is row ``row``."""
    prepared: _Prepared
    start_mg: float
    ae_counts: dict[str, int]
    targets: np.ndarray
    first_times: np.ndarray
    grid_row: int
    """The patient's row in ``prepared.batch`` (the first grid) and ``prepared.pk_levels``."""
    death_windows: tuple[tuple[float, float], ...] = ()
    exit_day: float = math.nan
    status: str = ""
    exit_reason: str = ""
    _mpa: OralOneCompartment | None = None

    @property
    def mpa(self) -> OralOneCompartment:
        """The patient's MPA model (built on first use: most patients never need it alone)."""
        if self._mpa is None:
            self._mpa = _row_of(self.block_mpa, self.row)
        return self._mpa

    @property
    def candidate(self) -> Candidate:
        return self.people.candidate(self.row)

    @property
    def weight_kg(self) -> float:
        return float(self.people.weight_kg[self.row])

    def _stop_day(self, duration: int) -> int | None:
        """The first day without dosing for a patient who left early; None otherwise."""
        if self.status in ("", "completed"):
            return None
        return min(math.floor(self.exit_day) + 1, duration)

    def prednisone_given_mg(self, duration: int) -> float:
        """Total prednisone taken on study (mg): up to the day of exit, inclusive."""
        stop = self._stop_day(duration)
        if stop is None:
            return self.prednisone.total_mg
        return float(self.prednisone.cumulative(stop))

    def given(self, duration: int) -> tuple[Schedule, Schedule]:
        """The schedules as given: as planned up to the day of exit (inclusive)."""
        stop = self._stop_day(duration)
        if stop is None:
            return self.prednisone, self.mmf
        return self.prednisone.truncated(stop), self.mmf.truncated(stop)


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


def _mmf_levels(planned: Schedule, actions: Sequence[tuple[Any, ...]]) -> list[float]:
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


class _Context:
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
        self.mmf_levels = _mmf_levels(self.planned_mmf, self.actions)
        self.shared_grids = template_cache(self.mmf_levels)
        self._prednisone: dict[float, Schedule] = {}
        self._start_mg: dict[tuple[float, float | None], float] = {}
        self._week52: dict[int, tuple[Schedule, float]] = {}
        self._actions: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}

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


_CONTEXTS: dict[int, tuple[Scenario, _Context]] = {}
_CONTEXTS_BY_CONTENT: dict[bytes, _Context] = {}


def _context(scenario: Scenario) -> _Context:
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
            ctx = _CONTEXTS_BY_CONTENT[content] = _Context(scenario)
        if len(_CONTEXTS) >= 64:
            _CONTEXTS.clear()
        entry = (scenario, ctx)
        _CONTEXTS[id(scenario)] = entry
    return entry[1]


def _rows_of(model: OralOneCompartment, rows: np.ndarray) -> OralOneCompartment:
    """The PK model of some patients of a vector model, as ``(len(rows), 1)`` arrays."""
    cl, v = np.asarray(model.cl_l_per_h), np.asarray(model.v_l)
    return model._replaced(cl_l_per_h=cl[rows, None], v_l=v[rows, None])


def _slice_of(model: OralOneCompartment, part: slice) -> OralOneCompartment:
    """The PK model of a run of patients of a vector model (views)."""
    cl, v = np.asarray(model.cl_l_per_h), np.asarray(model.v_l)
    return model._replaced(cl_l_per_h=cl[part], v_l=v[part])


def _row_of(model: OralOneCompartment, row: int) -> OralOneCompartment:
    """One patient's PK model (scalars) from a vector model."""
    cl, v = np.asarray(model.cl_l_per_h), np.asarray(model.v_l)
    return model._replaced(cl_l_per_h=cl.item(row), v_l=v.item(row))


@dataclass
class _Prepared:
    """A block's eligible people, ready to enrol: start doses, PK, first event times.

    The first crossing of every hazard is computed for the eligible people of
    one or many blocks at once (:func:`prepare_blocks`, :func:`sim.hazards.plan_grids`).
    """

    start_mg: np.ndarray
    mpa: OralOneCompartment
    prednisolone_cl: np.ndarray | None
    targets: np.ndarray
    times: np.ndarray
    batch: tuple[np.ndarray, ...]
    """The eligible people's grids from :func:`sim.hazards.plan_grids`: starts, ends, rates, cum."""
    index: np.ndarray
    """Each person's index into ``batch`` (-1 for the ineligible)."""
    pk_levels: np.ndarray | None = None
    """By ``index``: PK multipliers at the MMF doses (:func:`sim.hazards.pk_level_multipliers`)."""


def prepare_blocks(
    scenario: Scenario, blocks: Sequence[People], more_targets: np.ndarray | None = None
) -> list[_Prepared]:
    """Blocks of people ready to enrol, computed together: start doses, PK, first event times.

    Everything is per person (first crossings on padded plan grids, see
    :func:`sim.hazards.plan_grids`), so blocks computed together or apart are the
    same; together, the per-call costs of numpy are paid once. ``more_targets``:
    the first thresholds of hazards beyond the row's slots (one block only).
    """
    ctx = _context(scenario)
    assert scenario.exposure is not None
    hazards = ctx.hazards
    n_hazards = len(hazards)
    if len(blocks) == 1:
        people = blocks[0]
        weight, per_kg, normals = people.weight_kg, people.start_mg_per_kg, people.pk_normals
        thresholds, eligible = people.thresholds, people.eligible
    else:
        if more_targets is not None:
            raise ValueError("more_targets goes with one block")
        weight = np.concatenate([b.weight_kg for b in blocks])
        per_kg = np.concatenate([b.start_mg_per_kg for b in blocks])
        normals = np.concatenate([b.pk_normals for b in blocks])
        thresholds = np.concatenate([b.thresholds for b in blocks])
        eligible = np.concatenate([b.eligible for b in blocks])
    n = weight.size
    rows = np.flatnonzero(eligible)
    weights, per_kgs = weight.tolist(), per_kg.tolist()
    start_of = {r: ctx.start_mg(weights[r], per_kgs[r]) for r in rows.tolist()}
    start = np.full(n, math.nan)
    start[rows] = list(start_of.values())
    mpa_params = scenario.exposure.mpa
    mpa = pk_model(mpa_params, weight, etas_from_normals(mpa_params, normals[:, :2]))
    targets = thresholds[:, :n_hazards].copy()
    if more_targets is not None:
        targets = np.concatenate((targets, more_targets), axis=1)
    elif n_hazards > THRESHOLD_SLOTS:
        raise ValueError(f"{n_hazards} hazards need more_targets beyond {THRESHOLD_SLOTS} slots")
    times = np.full((n, n_hazards), np.inf)
    batch: tuple[np.ndarray, ...] = ()
    index = np.full(n, -1)
    pk_levels = None
    if rows.size:
        doses = sorted(set(start_of.values()))
        at = {mg: g for g, mg in enumerate(doses)}
        group = np.array([at[mg] for mg in start_of.values()])
        plans = [Plan(ctx.prednisone(mg), ctx.planned_mmf) for mg in doses]
        mpa_rows = _rows_of(mpa, rows)
        starts, ends, rates, cum, first = plan_grids(
            hazards,
            plans,
            group,
            mpa_rows,
            float(ctx.duration),
            ctx.shared_grids,
            targets[rows],
        )
        times[rows] = first
        batch, index[rows] = (starts, ends, rates, cum), np.arange(rows.size)
        pk_plan = Plan(plans[0].prednisone, ctx.planned_mmf, mpa_rows)
        pk_levels = pk_level_multipliers(hazards, pk_plan, ctx.shared_grids)
    out = []
    offset = 0
    for b in blocks:  # each block's rows; the grids stay one batch, indexed by `index`
        end = offset + len(b)
        part = slice(offset, end)
        block_mpa = mpa if len(blocks) == 1 else _slice_of(mpa, part)
        out.append(
            _Prepared(
                start[part],
                block_mpa,
                None,
                targets[part],
                times[part],
                batch,
                index[part],
                pk_levels,
            )
        )
        offset = end
    return out


def _first_grid(p: _Patient) -> HazardGrid:
    """The patient's grid of their first plan, from their block's batch."""
    starts, ends, rates, cum = p.prepared.batch
    j = p.grid_row
    return HazardGrid._of(starts[j], ends[j], rates[j], cum[j])


class _Cohort:
    """The SimPy environment and everything of one replicate's patients."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        replicate: int,
        patients: bool = True,
        log: bool = True,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.replicate = replicate
        self.env = simpy.Environment()
        self.keep_log = log
        self.log: list[EventRecord] = []
        self.adjustments: list[Adjustment] = []
        self.patients: list[_Patient] = []
        self.duration = scenario.treatment.duration_days
        self.ae_names = sorted(scenario.adverse_events)
        self._prepared: dict[int, tuple[People, _Prepared]] = {}
        if patients:
            self.ctx = _context(scenario)
            self.hazards = self.ctx.hazards

    def stream(self, *path: int | str) -> np.random.Generator:
        return stream(self.seed, "replicate", self.replicate, *path)

    # -- enrolment --------------------------------------------------------
    def _prepare(self, people: People) -> _Prepared:
        entry = self._prepared.get(id(people))
        if entry is not None and entry[0] is people:
            return entry[1]
        more = None
        n_hazards = len(self.hazards)
        if n_hazards > THRESHOLD_SLOTS:  # more hazards than slots: the rest from streams
            more = np.zeros((len(people), n_hazards - THRESHOLD_SLOTS))
            for r in np.flatnonzero(people.eligible):
                rng = self.stream("hazards", int(people.person[r]))
                more[r] = rng.standard_exponential(n_hazards - THRESHOLD_SLOTS)
        prepared = prepare_blocks(self.scenario, [people], more)[0]
        self.adopt(people, prepared)
        return prepared

    def adopt(self, people: People, prepared: _Prepared) -> None:
        """Use ``prepared`` (from :func:`prepare_blocks`) for a block of people."""
        self._prepared[id(people)] = (people, prepared)

    def enrol_all(
        self, enrolled: Sequence[tuple[People, int]], days: Sequence[float] | None = None
    ) -> None:
        """Enrol people ``(block, row)``, each on a trial day (default 0); their blocks
        prepared together.

        The same as :meth:`enrol` one by one (preparation is per person), with
        numpy's per-call costs paid once for all the blocks.
        """
        blocks = list({id(b): b for b, _ in enrolled}.values())
        if blocks and len(self.hazards) <= THRESHOLD_SLOTS:  # else each block with its streams
            for block, prepared in zip(blocks, prepare_blocks(self.scenario, blocks), strict=True):
                self.adopt(block, prepared)
        if days is None:
            days = [0.0] * len(enrolled)
        for (block, row), day in zip(enrolled, days, strict=True):
            self.enrol(block, row, day)

    def _prednisolone_cl(self, p: _Patient) -> np.ndarray:
        """Prednisolone CL (L/h) of the patient's block: only the tables report it."""
        prep = p.prepared
        if prep.prednisolone_cl is None:
            params = self.scenario.exposure.prednisolone  # type: ignore[union-attr]
            eta = etas_from_normals(params, p.people.pk_normals[:, 2:4])
            model = pk_model(params, p.people.weight_kg, eta)
            prep.prednisolone_cl = np.asarray(model.cl_l_per_h, dtype=float)
        return prep.prednisolone_cl

    def enrol(self, people: People, row: int, enrol_day: float) -> None:
        """Enrol eligible person ``row`` of a block, starting on trial day ``enrol_day``."""
        prep = self._prepare(people)
        start = prep.start_mg.item(row)
        patient = _Patient(
            patient_id=len(self.patients) + 1,
            people=people,
            row=row,
            enrol_day=float(enrol_day),
            prednisone=self.ctx.prednisone(start),
            mmf=self.ctx.planned_mmf,
            block_mpa=prep.mpa,
            prepared=prep,
            start_mg=start,
            ae_counts=dict.fromkeys(self.ae_names, 0),
            targets=prep.targets[row].copy(),
            first_times=prep.times[row],
            grid_row=prep.index.item(row),
        )
        self.patients.append(patient)
        self.env.process(self._run(patient))

    # -- the patient process ----------------------------------------------
    def _record(self, p: _Patient, day: float, event: str, detail: str = "") -> None:
        if self.keep_log:
            self.log.append(EventRecord(p.enrol_day + day, p.patient_id, day, event, detail))

    def _windows(self, p: _Patient) -> dict[int, Driver] | None:
        """The patient's windows of raised death risk, as a driver of the death hazard."""
        if not p.death_windows:
            return None
        raise_ = self.ctx.raise_after
        assert raise_ is not None
        return {self.ctx.death_index: Windows(p.death_windows, raise_.multiplier)}

    def _run(self, p: _Patient) -> Any:
        env = self.env
        if p.enrol_day > env.now:  # enrolment may happen mid-run
            yield env.timeout(p.enrol_day - env.now)
        if self.keep_log:
            detail = f"weight {p.weight_kg} kg, prednisone {p.start_mg:g} mg/day"
            self._record(p, 0.0, "enrolled", detail)
        hazards, ctx = self.hazards, self.ctx
        draws_of, row = p.people.event_draws, p.row
        # Each hazard fires when its cumulative hazard from day 0 reaches a target: an
        # Exp(1) draw, then one more Exp(1) each time it fires (from the person's row for
        # the first occurrences, then from a stream per hazard and occurrence).
        targets = p.targets
        times = p.first_times
        grid: HazardGrid | None = None
        fired = [0] * len(self.hazards)
        t, end = 0.0, float(self.duration)
        while True:
            k = int(times.argmin())
            t_next = max(float(times[k]), t)  # a rounding hair below now is now
            if not t_next < end:
                # nothing unforeseen before the end of treatment, and nothing in the trial
                # waits on a patient's process: the completion is recorded without sleeping
                self._exit(p, end, "completed", "")
                return
            fired[k] += 1
            name = hazards[k].name
            if fired[k] > MAX_EVENTS_PER_PATIENT:
                raise DosesimError(
                    f"{self.scenario.source or self.scenario.name}: adverse_events.{name} "
                    f"fired {MAX_EVENTS_PER_PATIENT:,} times for one patient before day "
                    f"{t_next:.0f}; rates this high are far outside any trial's: check its "
                    "baseline_per_year and multipliers"
                )
            at = event_draws_at(k, fired[k])
            if at is not None:
                targets[k] -= math.log1p(-draws_of.item(row, at))
            else:
                person = p.people.person.item(row)
                targets[k] += self.stream("hazard", name, person, fired[k]).standard_exponential()
            yield env.timeout(t_next - t)
            t = t_next
            if k == ctx.withdrawal_index:
                self._exit(p, t, "withdrawn", WITHDRAWAL)
                return
            if k == ctx.death_index:
                self._exit(p, t, "died", DEATH)
                return
            p.ae_counts[name] += 1
            self._record(p, t, name)
            before = (p.prednisone, p.mmf, len(p.death_windows))
            status = self._act(p, k, t)
            if status:
                self._exit(p, t, status, name)
                return
            if (p.prednisone, p.mmf, len(p.death_windows)) != before:
                # the plan changed from the next day on: the cumulative hazard up to
                # now is unchanged, so the targets stay valid on the new grid
                plan = Plan(p.prednisone, p.mmf, p.mpa)
                levels = p.prepared.pk_levels
                grid = HazardGrid(
                    hazards,
                    plan,
                    end,
                    ctx.shared_grids,
                    extra=self._windows(p),
                    pk_levels=None if levels is None else levels[p.grid_row],
                )
                times = grid.crossing(targets)
            else:  # same grid, same targets but one: only that hazard's time moves
                if grid is None:
                    grid = _first_grid(p)
                    times = times.copy()
                times[k] = grid.crossing_one(k, float(targets[k]))

    def _exit(self, p: _Patient, day: float, status: str, reason: str) -> None:
        p.exit_day, p.status, p.exit_reason = day, status, reason
        self._record(p, day, status, reason)

    # -- the protocol's reactions -----------------------------------------
    def _act(self, p: _Patient, k: int, t: float) -> str:
        """Apply an event's actions in order; returns an exit status, or ''."""
        name = self.hazards[k].name
        raise_ = self.ctx.raise_after
        if raise_ is not None and raise_.event == name:
            p.death_windows = (*p.death_windows, (t, t + raise_.days))
        actions = self.ctx.actions[k]
        if not actions:
            return ""
        occurrence = p.ae_counts[name]
        at = event_draws_at(k, occurrence)
        if at is not None and len(actions) < DRAWS_PER_OCCURRENCE:  # the threshold, then these
            draws = p.people.event_draws[p.row, at + 1 : at + 1 + len(actions)]
        else:
            person = p.people.person.item(p.row)
            draws = self.stream("actions", name, person, occurrence).random(len(actions))
        day = math.floor(t) + 1  # today's doses were taken
        status, taken = taken_actions(actions, draws.tolist())  # floats, not numpy scalars
        if status is not None:
            return status
        for action in taken:
            if day >= self.duration:
                continue  # no dosing left to change
            change = self.ctx.dose_action(action, p.weight_kg, p.prednisone, p.mmf, day)
            if change is not None:
                p.prednisone, p.mmf, drug, detail = change
                if self.keep_log:
                    self._adjust(p, drug, day, name, action.action, detail, t)
        return ""

    def _adjust(
        self, p: _Patient, drug: str, day: int, event: str, action: str, detail: str, t: float
    ) -> None:
        """Log a dose modification on ``day`` after ``event`` (its reason: 'event: action')."""
        self.adjustments.append(Adjustment(p.patient_id, drug, day, f"{event}: {action}"))
        done = {
            "mmf_reduce": "mmf_reduced",
            "mmf_hold": "mmf_held",
            "mmf_stop": "mmf_stopped",
            "prednisone_reescalate": "prednisone_reescalated",
        }[action]
        self._record(p, t, done, f"{detail} from day {day} ({event})")

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
                [
                    self.ctx.week52_mg(p.prednisone) if p.exit_day >= week52 else math.nan
                    for p in ps
                ],
                dtype=float,
            ),
        }
        counts = np.array([list(p.ae_counts.values()) for p in ps], dtype=int)
        for j, name in enumerate(self.ae_names):  # ae_counts keep ae_names' order
            out[f"ae_{name}"] = counts[:, j] if ps else np.zeros(0, dtype=int)
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
            pred, mmf = p.given(self.duration)
            c = p.candidate
            daily = pred.daily_doses()
            row: dict[str, Any] = {
                "patient_id": p.patient_id,
                "person": c.person,
                "enrol_day": p.enrol_day,
                "sex": "F" if c.female else "M",
                "age_years": c.age_years,
                "weight_kg": c.weight_kg,
                "fvc_percent": c.fvc_percent,
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
            planned = self.ctx.planned_mmf.cumulative(mmf.end_day)
            row["mmf_dose_intensity"] = mmf.total_mg / planned if planned > 0 else math.nan
            row["mpa_auc0_12_mg_h_per_l"] = float(mpa_auc0_12_at_target(self.scenario, p.mpa))
            row["mpa_cl_l_per_h"] = float(p.mpa.cl_l_per_h)  # type: ignore[arg-type]
            row["prednisolone_cl_l_per_h"] = float(self._prednisolone_cl(p)[p.row])
            for name in self.ae_names:
                row[f"ae_{name}"] = p.ae_counts[name]
            row["status"] = p.status
            row["exit_day"] = p.exit_day
            row["exit_reason"] = p.exit_reason
            rows.append(row)
        return rows


def screen_people(
    scenario: Scenario, n_patients: int, seed: int, replicate: int = 0
) -> tuple[PeopleSource, list[tuple[People, int]]]:
    """Screen people in turn until ``n_patients`` are eligible (all at one site).

    Each person takes a fixed row of draws from the site's stream
    (:mod:`sim.population`). Returns the source (everyone screened, in order)
    and the eligible as (block, row) pairs, for enrolment.
    """
    source = PeopleSource(scenario, stream(seed, "replicate", replicate, "site_population", 0), 0)
    enrolled: list[tuple[People, int]] = []
    limit = _MAX_SCREENED_PER_ENROLLED * max(n_patients, 1)
    while len(enrolled) < n_patients:
        if source.count >= limit:
            raise DosesimError(
                f"{scenario.source or scenario.name}: screened {source.count} people and found "
                f"only {len(enrolled)} eligible; check [population.prevalence] and [eligibility]"
            )
        # the rest of the current block, up to the limit, or to the last eligible needed
        block, start = source.rest()
        stop = min(len(block), start + limit - source.count)
        rows = np.flatnonzero(block.eligible[start:stop]) + start
        need = n_patients - len(enrolled)
        if rows.size >= need:
            rows = rows[:need]
            stop = int(rows[-1]) + 1
        source.advance(stop - start)
        enrolled += [(block, row) for row in rows.tolist()]
    return source, enrolled


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
    with young_collections_only():
        source, enrolled = screen_people(scenario, n_patients, seed, replicate)
        cohort.enrol_all(enrolled, days)
        del enrolled  # the patients hold their rows
        cohort.env.run()
        return _result(cohort, [b.candidate(r) for b, r in source.screened()])


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
    schedules = {}
    for p in cohort.patients:
        prednisone, mmf = p.given(cohort.duration)
        schedules[p.patient_id] = {"prednisone": prednisone, "mmf": mmf}
    return CohortResult(patients, events, screened_df, adjustments, schedules)
