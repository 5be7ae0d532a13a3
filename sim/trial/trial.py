"""Recruitment: sites screen people inside the SimPy trial; milestones with dates.

Each site opens on its activation day (fixed, or drawn uniformly) and screens
people as a Poisson process whose rate is the site's ``screening_rate_per_month``
(optionally changed from given days by multipliers). Under ``poisson_gamma``
each site's rate is first drawn from a Gamma distribution with that mean and
shape :math:`\alpha` (Anisimov & Fedorov 2007). Screened people come from the
population model; eligible ones are enrolled and start treatment that day (the
cohort model), until the target is reached (screening then stops everywhere), a
site reaches its cap, or the enrolment deadline passes.

Screened people are keyed by site and by their order at that site (person
``1,000,000 x site + k``), so every person's random streams are the same
whatever the other sites do.

Re-forecasting from observed enrolment is in :mod:`sim.forecast`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from sim.collector import young_collections_only
from sim.draws import THRESHOLD_SLOTS
from sim.errors import DosesimError
from sim.population import (
    People,
    draw_people,
    eligibility_probability,
    first_blocks,
    screening_criteria,
)
from sim.scenario import Scenario
from sim.site_rates import SiteRate
from sim.streams import stream
from sim.trial.batching import prepare_blocks
from sim.trial.cohort import Cohort, CohortResult, cohort_result
from sim.trial.context import context_for
from sim.trial.sites import (
    PERSONS_PER_SITE,
    SiteProcesses,
    draw_sites,
    extra_site,
    recruitment_settings,
)

_OBSERVED_PERSON = 999_000_000
_MAX_STAND_IN_DRAWS = 100_000


@dataclass(frozen=True)
class TrialResult:
    """One replicate of the whole trial: recruitment plus the cohort.

    Attributes
    ----------
    milestones : dict
        First/last patient in and last patient last visit (trial day and date),
        screened, enrolled, per-site enrolment and opening day, screen failures by criterion,
        ``target_reached`` and ``completed_by_deadline``.
    enrolment : pandas.DataFrame
        ``patient_id, site, trial_day, person`` for each enrolled patient (built on use).
    cohort : CohortResult or None
        The cohort model's tables (``patients``, ``events``, ``screened``, ...);
        None when simulated with ``tables=False``.
    """

    milestones: dict[str, Any]
    enrolment_rows: list[tuple[str, float, int]]
    """``(site, trial_day, person)`` of each enrolled patient, in enrolment order."""
    cohort: CohortResult | None
    outcomes: dict[str, Any]
    """Per-patient outcome arrays (see ``Cohort.outcomes``), always present."""

    @property
    def enrolment(self) -> pd.DataFrame:
        """``patient_id, site, trial_day, person`` of each enrolled patient."""
        return pd.DataFrame(
            [
                {"patient_id": i + 1, "site": site, "trial_day": day, "person": person}
                for i, (site, day, person) in enumerate(self.enrolment_rows)
            ],
            columns=["patient_id", "site", "trial_day", "person"],
        )

    @property
    def patients(self) -> pd.DataFrame:
        """One row per enrolled patient (see :func:`sim.simulate_cohort`)."""
        return self._tables().patients

    @property
    def events(self) -> pd.DataFrame:
        """The event log, in trial time."""
        return self._tables().events

    def _tables(self) -> CohortResult:
        if self.cohort is None:
            raise DosesimError("this replicate was simulated without tables (tables=False)")
        return self.cohort


def require_eligibility(scenario: Scenario) -> None:
    """A clear error when nobody screened can be eligible (the closed-form probability is 0).

    Raises
    ------
    DosesimError
        Naming the scenario (as modified by ``--set``, if it was).
    """
    population = scenario.population
    if population is None:
        return
    if eligibility_probability(population, scenario.eligibility) <= 0.0:
        raise DosesimError(
            f"{scenario.label}: nobody screened can be eligible (the eligibility probability "
            "of [population] under [eligibility] is 0); check [eligibility]"
        )


def _milestones(
    scenario: Scenario,
    recruitment: SiteProcesses,
    outcomes: dict[str, Any],
    enrolment_days: Sequence[float],
    patients_simulated: bool,
) -> dict[str, Any]:
    rec = recruitment_settings(scenario)
    start = rec.start_date
    n = len(enrolment_days)
    duration = scenario.treatment.duration_days
    screened = recruitment.screened_counts()
    out: dict[str, Any] = {
        "screened": sum(screened),
        "enrolled": n,
        "target_reached": recruitment.reached()
        if recruitment.per_arm
        else n >= rec.target_enrolled,
    }
    fpi = min(enrolment_days) if n else math.nan
    lpi = max(enrolment_days) if n else math.nan
    if patients_simulated and n:
        lplv = float((outcomes["enrol_day"] + outcomes["exit_day"]).max())
    else:
        lplv = lpi + duration if n else math.nan
    for key, day in (
        ("first_patient_in", fpi),
        ("last_patient_in", lpi),
        ("last_patient_last_visit", lplv),
    ):
        out[f"{key}_day"] = day
        out[f"{key}_date"] = trial_date(start, day)
    out["completed_by_deadline"] = bool(out["target_reached"] and n and lplv <= rec.deadline_day)
    criteria = screening_criteria(scenario.eligibility)
    counts = np.zeros(len(criteria), dtype=np.int64)
    for source, n in zip(recruitment.sources, screened, strict=True):
        counts = counts + source.failures(n)
    out["screen_failures"] = {c: int(n) for c, n in zip(criteria, counts, strict=True) if n}
    out["enrolled_per_site"] = {
        site.name: recruitment.site_enrolled[i] for i, site in enumerate(rec.sites)
    }
    return out


def trial_date(start: date, day: float) -> date | None:
    """The calendar date of trial day ``day`` (whole days from the start date)."""
    if not math.isfinite(day):
        return None
    return start + timedelta(days=math.floor(day))


def simulate_trial(
    scenario: Scenario,
    seed: int,
    replicate: int = 0,
    simulate_patients: bool = True,
    tables: bool = True,
) -> TrialResult:
    """Simulate one replicate of the trial: site activation, screening, enrolment, the cohort.

    Parameters
    ----------
    scenario : Scenario
        Needs ``[recruitment]``, ``[population]``, and for the cohort
        ``[exposure]`` and ``[dropout]``.
    seed : int
        The run's seed (>= 0).
    replicate : int
        Which replicate's streams to use.
    simulate_patients : bool
        False: recruitment only (the last visit is then the last enrolment plus
        the treatment duration).
    tables : bool
        False: skip building the per-patient tables (``outcomes`` and
        ``milestones`` are still there); the replicate runner's fast path.

    Returns
    -------
    TrialResult
    """
    return simulate_replicate(scenario, seed, replicate, simulate_patients, tables=tables)


def simulate_trials(
    scenario: Scenario,
    seed: int,
    replicates: Sequence[int],
    tables: Collection[int] = (),
    batch: int = 64,
) -> Iterator[TrialResult]:
    """:func:`simulate_trial` for each of ``replicates`` in turn (the same results), faster.

    The first block of people of every site, and their first event times, are
    computed for ``batch`` replicates at once: a replicate of 20 patients
    otherwise pays numpy's per-call costs on arrays of a few dozen rows.

    Parameters
    ----------
    scenario : Scenario
    seed : int
        The run's seed (>= 0).
    replicates : sequence of int
        Which replicates (each once), in the order they are yielded.
    tables : collection of int
        The replicates whose per-patient tables are built (``tables=True``).
    batch : int
        Replicates whose first blocks are computed together (memory: about
        90 kB per replicate and site).
    """
    rec = recruitment_settings(scenario)
    if len(set(replicates)) != len(replicates):
        raise ValueError("simulate_trials takes each replicate once")
    # (with arms, each block is prepared for the arm of each patient, as they enrol)
    ahead = len(context_for(scenario).hazards) <= THRESHOLD_SLOTS and not scenario.arms
    for at in range(0, len(replicates), batch):
        group = replicates[at : at + batch]
        sources = [
            (r, i, stream(seed, "replicate", r, "site_population", i), PERSONS_PER_SITE * i)
            for r in group
            for i in range(len(rec.sites))
        ]
        blocks = first_blocks(scenario, [(rng, first) for _, _, rng, first in sources])
        prepared = prepare_blocks(context_for(scenario), blocks) if ahead else [None] * len(blocks)
        drawn: dict[int, list[tuple[int, np.random.Generator, People, Any]]] = {}
        for (r, i, rng, _), block, prep in zip(sources, blocks, prepared, strict=True):
            drawn.setdefault(r, []).append((i, rng, block, prep))
        for r in group:
            yield simulate_replicate(scenario, seed, r, True, tables=r in tables, first=drawn[r])


@young_collections_only()  # a full collection walks every object: sim.collector
def simulate_replicate(
    scenario: Scenario,
    seed: int,
    replicate: int,
    simulate_patients: bool,
    *,
    posteriors: Sequence[SiteRate] | None = None,
    start_day: float = 0.0,
    observed: Sequence[tuple[int, float]] = (),
    extra_sites: int = 0,
    tables: bool = True,
    first: Sequence[tuple[int, np.random.Generator, People, Any]] = (),
) -> TrialResult:
    """One replicate of the trial, from the design stage or from a re-forecast's as-of day.

    Parameters
    ----------
    scenario, seed, replicate, simulate_patients
        As :func:`simulate_trial`.
    posteriors : sequence of SiteRate, optional
        Each site's opening day and rate to draw from (default: the priors).
    start_day : float
        Trial day the simulation starts (a re-forecast's as-of day).
    observed : sequence of (site index, trial day)
        Enrolments already seen: placed in the cohort on their days.
    extra_sites : int
        Sites added at a re-forecast (the average prior, opening after the delay).
    tables : bool
        Build the per-patient tables.
    first : sequence, optional
        Sites' first blocks of people drawn ahead (:func:`simulate_trials`).
    """
    rec = recruitment_settings(scenario)
    cohort = Cohort(scenario, seed, replicate, patients=simulate_patients, log=tables)
    for _, _, block, prepared in first:  # sites' first blocks drawn ahead (simulate_trials)
        if prepared is not None:
            cohort.adopt(block, prepared)
    sites = draw_sites(scenario, seed, replicate, posteriors)
    specs = list(rec.sites)
    for j in range(extra_sites):
        spec, draw = extra_site(scenario, seed, replicate, j, start_day)
        specs.append(spec)
        sites.append(draw)
    before = [0] * len(specs)
    enrolment: list[tuple[int, float, int]] = []
    if observed:
        population = scenario.population
        assert population is not None
        for j, (site_index, day) in enumerate(observed):
            rng = stream(seed, "replicate", replicate, "observed", j)
            keyed = population.has_height or bool(population.conditions)
            for k in range(_MAX_STAND_IN_DRAWS):  # an eligible draw stands in for the patient
                # each try draws the person's own covariates afresh too (height, conditions)
                own = (
                    stream(seed, "replicate", replicate, "observed", j, k) if k and keyed else None
                )
                person = draw_people(
                    population, scenario.eligibility, rng, [_OBSERVED_PERSON + j], own
                )
                if person.eligible[0]:
                    break
            else:
                raise DosesimError(
                    f"{scenario.source or scenario.name}: {_MAX_STAND_IN_DRAWS:,} people drawn "
                    "from [population] and none eligible; the observed patients cannot be "
                    "represented: check [population.prevalence] and [eligibility]"
                )
            before[site_index] += 1
            enrolment.append((site_index, day, _OBSERVED_PERSON + j))
            if simulate_patients:
                cohort.enrol(person, 0, day, site=site_index)
    recruitment = SiteProcesses(
        cohort,
        sites,
        specs,
        start_day,
        before,
        simulate_patients=simulate_patients,
        first={i: (rng, block) for i, rng, block, _ in first},
    )
    cohort.env.run()
    enrolment += recruitment.enrolled
    if tables:
        screened = [block.candidate(row) for block, row in recruitment.screened_people()]
        result: CohortResult | None = cohort_result(cohort, screened)
    else:
        result = None
    outcomes = cohort.outcomes()
    names = [s.name for s in specs]
    rows = [(names[s], d, person) for s, d, person in sorted(enrolment, key=lambda x: x[1])]
    days = [d for _, d, _ in enrolment]
    milestones = _milestones(scenario, recruitment, outcomes, days, simulate_patients)
    milestones["enrolled_per_site"] = {
        name: int(recruitment.site_enrolled[i]) for i, name in enumerate(names)
    }
    milestones["site_opened_day"] = {
        name: max(sites[i].activation_day, start_day) for i, name in enumerate(names)
    }
    return TrialResult(milestones, rows, result, outcomes)
