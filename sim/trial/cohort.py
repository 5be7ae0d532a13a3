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
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd
import simpy

from sim.actions import Adjustment, Change, DoseAction, taken_actions
from sim.arms import Allocator, arm_scenarios
from sim.collector import young_collections_only
from sim.draws import DRAWS_PER_OCCURRENCE, THRESHOLD_SLOTS, event_draws_at
from sim.drugs import MMF, PREDNISONE, Drug
from sim.endpoints import ENDPOINTS, PatientRecord, lean_values
from sim.errors import DosesimError
from sim.exposure import OralOneCompartment, etas_from_normals, pk_model
from sim.hazards import (
    Driver,
    HazardGrid,
    Plan,
    Windows,
)
from sim.population import (
    Candidate,
    People,
    PeopleSource,
    screening_criteria,
)
from sim.scenario import (
    Scenario,
)
from sim.schedule import (
    Schedule,
)
from sim.streams import stream
from sim.trial.batching import PreparedBlock, prepare_blocks
from sim.trial.context import DEATH, WITHDRAWAL, TrialContext, context_for
from sim.trial.dose_columns import DoseColumn, cohort_dose_columns, dose_values
from sim.trial.fvc import disease_event_names, fvc_columns, fvc_outcomes, fvc_values
from sim.trial.patient import MAX_EVENTS_PER_PATIENT, EventRecord, Patient

_MAX_SCREENED_PER_ENROLLED = 1000


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
        Dose modifications, the fields of :class:`sim.actions.Adjustment` (``action`` is
        the name of a :data:`sim.actions.ACTIONS` class).
    schedules : dict
        ``patient_id -> {drug: Schedule}`` as given (truncated at exit), in the order
        of ``drugs``.
    drugs : tuple of Drug
        The drugs of the protocol (:mod:`sim.drugs`); by default the scenario's two.
    """

    patients: pd.DataFrame
    events: pd.DataFrame
    screened: pd.DataFrame
    adjustments: pd.DataFrame
    schedules: dict[int, dict[str, Schedule]]
    drugs: tuple[Drug, ...] = (PREDNISONE, MMF)
    models: dict[int, dict[str, OralOneCompartment]] = field(default_factory=dict)
    """``patient_id -> {moiety: model}``: each patient's exposure models (for the exports)."""


class Cohort:
    """The SimPy environment and everything of one replicate's patients."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        replicate: int,
        patients: bool = True,
        log: bool = True,
        drugs: Sequence[Drug] = (),
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.replicate = replicate
        self.env = simpy.Environment()
        self.keep_log = log
        self.log: list[EventRecord] = []
        self.adjustments: list[Adjustment] = []
        self.patients: list[Patient] = []
        self.duration = scenario.treatment.duration_days
        self.ae_names = sorted(scenario.adverse_events)
        #: the blocks of people prepared in this replicate, by identity (a block's
        #: PreparedBlock is looked up at every enrolment: a plain dict, inline)
        self.arm_scenarios = arm_scenarios(scenario)
        self._prepared: list[dict[int, tuple[People, PreparedBlock]]] = [
            {} for _ in self.arm_scenarios
        ]
        self._prepared0 = self._prepared[0]  # (looked up at every enrolment)
        self.drugs: tuple[Drug, ...] = ()
        self.allocator = Allocator(scenario, self.stream) if scenario.arms else None
        self.ctxs: list[TrialContext] = []
        self._allocated: dict[tuple[int, int], int] = {}
        self.fvc_values: dict[int, dict[str, float]] = {}
        self.disease_events = disease_event_names(scenario)
        if patients:
            self.ctxs = [context_for(arm, drugs) for arm in self.arm_scenarios]
            self.ctx = self.ctxs[0]
            seen: dict[str, Drug] = {}  # every arm's drugs, in order of first appearance
            for c in self.ctxs:
                for d in c.drugs:
                    seen.setdefault(d.name, d)
            self.drugs = tuple(seen.values())
            self.hazards = self.ctx.hazards
        self._drug_names = [d.name for d in self.drugs]

    def stream(self, *path: int | str) -> np.random.Generator:
        return stream(self.seed, "replicate", self.replicate, *path)

    # -- enrolment --------------------------------------------------------
    def _prepare(self, people: People, arm: int = 0) -> PreparedBlock:
        entry = (self._prepared[arm] if arm else self._prepared0).get(id(people))
        if entry is not None and entry[0] is people:
            return entry[1]
        more = None
        n_hazards = len(self.hazards)
        if n_hazards > THRESHOLD_SLOTS:  # more hazards than slots: the rest from streams
            more = np.zeros((len(people), n_hazards - THRESHOLD_SLOTS))
            for r in np.flatnonzero(people.eligible):
                rng = self.stream("hazards", int(people.person[r]))
                more[r] = rng.standard_exponential(n_hazards - THRESHOLD_SLOTS)
        prepared = prepare_blocks(self.ctxs[arm], [people], more)[0]
        self.adopt(people, prepared, arm)
        return prepared

    def adopt(self, people: People, prepared: PreparedBlock, arm: int = 0) -> None:
        """Use ``prepared`` (from :func:`prepare_blocks`) for a block of people."""
        self._prepared[arm][id(people)] = (people, prepared)

    def enrol_all(
        self, enrolled: Sequence[tuple[People, int]], days: Sequence[float] | None = None
    ) -> None:
        """Enrol people ``(block, row)``, each on a trial day (default 0); their blocks
        prepared together.

        The same as :meth:`enrol` one by one (preparation is per person), with
        numpy's per-call costs paid once for all the blocks.
        """
        blocks = list({id(b): b for b, _ in enrolled}.values())
        if blocks and len(self.hazards) <= THRESHOLD_SLOTS and self.allocator is None:
            # (else each block with its streams, or each arm's when it first enrols there)
            for block, prepared in zip(blocks, prepare_blocks(self.ctx, blocks), strict=True):
                self.adopt(block, prepared)
        if days is None:
            days = [0.0] * len(enrolled)
        for (block, row), day in zip(enrolled, days, strict=True):
            self.enrol(block, row, day)

    def _prednisolone(self, p: Patient) -> OralOneCompartment:
        """The prednisolone models of the patient's block: only the tables report them."""
        prep = p.prepared
        if prep.prednisolone is None:
            params = self.scenario.exposure.prednisolone  # type: ignore[union-attr]
            eta = etas_from_normals(params, p.people.pk_normals[:, 2:4])
            prep.prednisolone = pk_model(params, p.people.weight_kg, eta)
        return prep.prednisolone

    def allocate(self, people: People, row: int, site: int) -> int:
        """The arm of eligible person ``row`` of a block enrolled at ``site`` (permuted
        blocks per site and stratum); :meth:`enrol` then uses it."""
        assert self.allocator is not None
        stratum = self.allocator.stratum(
            bool(people.female[row]),
            float(people.age_years[row]),
            float(people.fvc_percent[row]),
            float(people.weight_kg[row]),
        )
        arm = self.allocator.next_arm(site, stratum)
        self._allocated[(id(people), row)] = arm
        return arm

    def enrol(self, people: People, row: int, enrol_day: float, site: int = 0) -> None:
        """Enrol eligible person ``row`` of a block, starting on trial day ``enrol_day``
        (at ``site``: the allocation to arms is by site)."""
        if self.allocator is None:  # one protocol, the scenario's own (most runs)
            arm, ctx = 0, self.ctx
            prep = self._prepare(people)
            start = prep.start_mg.item(row)
            if ctx.plain:
                schedules = ctx.schedules(ctx.prednisone(start))
            else:
                schedules, start = ctx.planned(prep.declared[row], start)
        else:
            arm = self._allocated.pop((id(people), row), -1)
            if arm < 0:  # not allocated before (a cohort without sites)
                arm = self.allocate(people, row, site)
                del self._allocated[(id(people), row)]
            ctx = self.ctxs[arm]
            prep = self._prepare(people, arm)
            schedules, start = ctx.planned(prep.declared[row], prep.start_mg.item(row))
        patient = Patient(
            patient_id=len(self.patients) + 1,
            people=people,
            row=row,
            enrol_day=float(enrol_day),
            schedules=schedules,
            block_mpa=prep.mpa,
            prepared=prep,
            start_mg=start,
            ae_counts=dict.fromkeys(self.ae_names, 0),
            targets=prep.targets[row].copy(),
            first_times=prep.times[row],
            grid_row=prep.index.item(row),
            arm=arm,
        )
        self.patients.append(patient)
        self.env.process(self._run(patient))

    # -- the patient process ----------------------------------------------
    def _record(self, p: Patient, day: float, event: str, detail: str = "") -> None:
        if self.keep_log:
            self.log.append(EventRecord(p.enrol_day + day, p.patient_id, day, event, detail))

    def _windows(self, p: Patient) -> dict[int, Driver] | None:
        """The patient's windows of raised death risk, as a driver of the death hazard."""
        if not p.death_windows:
            return None
        ctx = self.ctxs[p.arm]
        raise_ = ctx.raise_after
        assert raise_ is not None
        return {ctx.death_index: Windows(p.death_windows, raise_.multiplier)}

    def _run(self, p: Patient) -> Any:
        env = self.env
        if p.enrol_day > env.now:  # enrolment may happen mid-run
            yield env.timeout(p.enrol_day - env.now)
        if self.keep_log:
            detail = f"weight {p.weight_kg} kg, prednisone {p.start_mg:g} mg/day"
            self._record(p, 0.0, "enrolled", detail)
        ctx = self.ctxs[p.arm]
        hazards = ctx.hazards
        draws_of, row = p.people.event_draws, p.row
        # Each hazard fires when its cumulative hazard from day 0 reaches a target: an
        # Exp(1) draw, then one more Exp(1) each time it fires (from the person's row for
        # the first occurrences, then from a stream per hazard and occurrence).
        targets = p.targets
        times = p.first_times
        grid: HazardGrid | None = None
        fired = [0] * len(hazards)
        t, end = 0.0, float(ctx.duration)
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
            if name in self.disease_events:  # flares and rescues, for the disease model
                p.disease_events = (*p.disease_events, (name, t))
            self._record(p, t, name)
            before = (p.schedules, len(p.death_windows))
            status = self._act(p, k, t)
            if status:
                self._exit(p, t, status, name)
                return
            if p.schedules is not before[0] or len(p.death_windows) != before[1]:
                # the plan changed from the next day on: the cumulative hazard up to
                # now is unchanged, so the targets stay valid on the new grid
                levels = p.prepared.pk_levels
                names = ctx.shared_grids.parts.covariates
                plan = Plan(p.schedules, {"mmf": p.mpa}, p.covariates(names) if names else {})
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
                    grid = p.prepared.first_grid(p.grid_row)
                    times = times.copy()
                times[k] = grid.crossing_one(k, float(targets[k]))

    def _exit(self, p: Patient, day: float, status: str, reason: str) -> None:
        p.exit_day, p.status, p.exit_reason = day, status, reason
        self._record(p, day, status, reason)

    # -- the protocol's reactions -----------------------------------------
    def _act(self, p: Patient, k: int, t: float) -> str:
        """Apply an event's actions in order; returns an exit status, or ''."""
        ctx = self.ctxs[p.arm]
        name = ctx.hazards[k].name
        raise_ = ctx.raise_after
        if raise_ is not None and raise_.event == name:
            p.death_windows = (*p.death_windows, (t, t + raise_.days))
        actions = ctx.actions[k]
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
            if day >= ctx.duration or action.drug not in ctx.given_names:
                continue  # no dosing left to change, or a drug the arm does not give
            height = p.people.height_cm.item(p.row) if action.reads_patient else math.nan
            change = ctx.dose_action(action, p.weight_kg, p.schedules, day, height)
            if change is not None:
                p.schedules = {**p.schedules, change.drug: change.schedule}  # a new plan
                if change.more:
                    p.schedules.update(change.more)
                if self.keep_log:
                    self._adjust(p, change, day, name, action, t)
        return ""

    def _adjust(
        self, p: Patient, change: Change, day: int, event: str, action: DoseAction, t: float
    ) -> None:
        """Log a dose modification on ``day`` after ``event`` at ``t`` (:class:`Adjustment`)."""
        made = Adjustment(p.patient_id, change.drug, day, f"{event}: {action.name}", action.name,
                          event, t)  # fmt: skip
        # a switch: the drug started the same day
        self.adjustments += [made, *(replace(made, drug=d, started=True) for d, _ in change.more)]
        self._record(p, t, action.done, f"{change.detail} from day {day} ({event})")

    # -- results ----------------------------------------------------------
    def record(self, p: Patient) -> PatientRecord:
        """What the endpoints read of a patient (:mod:`sim.endpoints`)."""
        ctx = self.ctxs[p.arm]

        def models(moiety: str) -> OralOneCompartment:
            return p.mpa if moiety == "mpa" else self._prednisolone(p).row(p.row)

        return PatientRecord(
            planned=p.schedules,
            exit_day=p.exit_day,
            status=p.status,
            duration_days=ctx.duration,
            start_mg=p.start_mg,
            scenario=ctx.scenario,
            models=models,
            planned_by_protocol=ctx.fixed,
        )

    def outcomes(self) -> dict[str, Any]:
        """Per-patient outcomes as arrays, straight from the model (no tables).

        ``enrol_day``, ``exit_day``, ``status``, the lean values of the patient
        endpoints that trial endpoints read (e.g. ``cumulative_prednisone_mg_week52``,
        NaN for those who left before), and ``ae_<name>`` counts.
        """
        ps = self.patients
        out: dict[str, Any] = {
            "enrol_day": np.array([p.enrol_day for p in ps], dtype=float),
            "exit_day": np.array([p.exit_day for p in ps], dtype=float),
            "status": [p.status for p in ps],
            **lean_values(ps, self.ctx if ps else None, self.record),
        }
        if self.allocator is not None:
            out["arm"] = np.array([p.arm for p in ps], dtype=int)
        if self.scenario.disease is not None:  # the measurements, for the analysis
            out.update(fvc_outcomes(self, ps))
        columns = self.dose_columns()
        if columns:  # (for the replicate rows' medians)
            rows = [dose_values(self, p, columns) for p in ps]
            out.update({c.name: np.array([r[c.name] for r in rows]) for c in columns})
        counts = np.array([list(p.ae_counts.values()) for p in ps], dtype=int)
        for j, name in enumerate(self.ae_names):  # ae_counts keep ae_names' order
            out[f"ae_{name}"] = counts[:, j] if ps else np.zeros(0, dtype=int)
        return out

    def given(self, p: Patient) -> dict[str, Schedule]:
        """A patient's schedules as given, for every drug of the trial (none of a drug
        their arm does not give)."""
        ctx = self.ctxs[p.arm]
        given = p.given(ctx.duration)
        if list(given) != self._drug_names:
            given = {
                d.name: given.get(d.name) or Schedule.constant(0.0, ctx.duration)
                for d in self.drugs
            }
        return given

    def dose_columns(self) -> list[DoseColumn]:
        """The per-drug dose columns of the patients table (:mod:`sim.trial.dose_columns`)."""
        return cohort_dose_columns(self)

    def patient_columns(self) -> list[str]:
        """The columns of the patients table, in order (also when it has no rows)."""
        arm = ["arm"] if self.allocator is not None else []
        declared = [c.name for c in self.dose_columns()]
        return [
            "patient_id", "person", *arm, "enrol_day", "sex", "age_years", "weight_kg",
            *(["height_cm"] if any(c.reads_height for c in self.ctxs) else []),
            "fvc_percent", *ENDPOINTS, *declared, *fvc_columns(self),
            *(f"ae_{n}" for n in self.ae_names),
            "status", "exit_day", "exit_reason",
        ]  # fmt: skip

    def patient_rows(self) -> list[dict[str, Any]]:
        rows = []
        columns = self.patient_columns()
        declared = self.dose_columns()
        for p in self.patients:
            c = p.candidate
            record = self.record(p)
            row: dict[str, Any] = {
                "patient_id": p.patient_id,
                "person": c.person,
                "enrol_day": p.enrol_day,
                "sex": "F" if c.female else "M",
                "age_years": c.age_years,
                "weight_kg": c.weight_kg,
                "fvc_percent": c.fvc_percent,
            }
            if self.allocator is not None:
                row["arm"] = self.scenario.arms[p.arm].name
            if "height_cm" in columns:
                row["height_cm"] = float(p.people.height_cm[p.row])
            for name, endpoint in ENDPOINTS.items():
                row[name] = endpoint.value(record)
            if declared:
                row.update(dose_values(self, p, declared))
            if self.scenario.disease is not None:
                row.update(fvc_values(self, p))
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
    drugs: Sequence[Drug] = (),
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
    drugs : sequence of Drug, optional
        Drugs added to the scenario's prednisone and MMF, each at a fixed schedule
        (:meth:`sim.drugs.Drug.fixed`); their doses appear in the schedules and exports.

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
    cohort = Cohort(scenario, seed, replicate, drugs=drugs)
    with young_collections_only():
        source, enrolled = screen_people(scenario, n_patients, seed, replicate)
        cohort.enrol_all(enrolled, days)
        del enrolled  # the patients hold their rows
        cohort.env.run()
        return cohort_result(cohort, [b.candidate(r) for b, r in source.screened()])


def cohort_result(cohort: Cohort, screened: list[Candidate]) -> CohortResult:
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
        [vars(a) for a in cohort.adjustments],
        columns=[f.name for f in fields(Adjustment)],
    )
    if cohort.allocator is not None:  # every table carries the arm
        arm_of = {p.patient_id: cohort.scenario.arms[p.arm].name for p in cohort.patients}
        events.insert(2, "arm", events["patient_id"].map(arm_of))
    schedules = {p.patient_id: cohort.given(p) for p in cohort.patients}
    moieties = {"mpa", "prednisolone"} & {d.moiety for d in cohort.drugs}
    models = {
        p.patient_id: {m: cohort.record(p).models(m) for m in moieties} for p in cohort.patients
    }
    return CohortResult(patients, events, screened_df, adjustments, schedules, cohort.drugs, models)
