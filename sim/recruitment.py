r"""Recruitment: sites screen people inside the SimPy trial; milestones; re-forecasting.

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

Re-forecasting: after :math:`k_i` enrolments in :math:`\tau_i` days at site
:math:`i` with eligibility probability :math:`p`, the screening rate's
conjugate posterior is :math:`\mathrm{Gamma}(\alpha + k_i, \beta + p\,\tau_i)`
(with screening counts, :math:`\mathrm{Gamma}(\alpha + s_i, \beta + \tau_i)`); the
rest of the trial is simulated from the as-of date with rates drawn from it.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import DosesimError
from sim.model import CohortResult, _Cohort, _result, person_extras
from sim.population import Candidate, draw_candidate, eligibility_probability
from sim.scenario import DAYS_PER_MONTH, RecruitmentSettings, Scenario, Site
from sim.streams import stream

__all__ = [
    "ForecastResult",
    "Observed",
    "TrialResult",
    "forecast",
    "read_observed",
    "simulate_trial",
    "site_posteriors",
]

PERSONS_PER_SITE = 1_000_000
_OBSERVED_PERSON = 999_000_000


@dataclass(frozen=True)
class SiteDraw:
    """One replicate's realisation of a site: when it opens and how fast it screens."""

    activation_day: float
    rate_per_day: float


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
        ``patient_id, site, trial_day`` for each enrolled patient.
    cohort : CohortResult or None
        The cohort model's tables (``patients``, ``events``, ``screened``, ...);
        None when simulated with ``tables=False``.
    """

    milestones: dict[str, Any]
    enrolment: pd.DataFrame
    cohort: CohortResult | None
    outcomes: dict[str, Any]
    """Per-patient outcome arrays (see ``_Cohort.outcomes``), always present."""

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


def _require(scenario: Scenario) -> RecruitmentSettings:
    if scenario.recruitment is None:
        raise DosesimError(
            f"{scenario.source or scenario.name}: the scenario has no [recruitment] table"
        )
    return scenario.recruitment


def _draw_site(
    site: Site, rec: RecruitmentSettings, rng: np.random.Generator, shape: float, rate: float
) -> SiteDraw:
    """Activation, then the rate (Gamma(shape, rate) per day under poisson_gamma)."""
    u = rng.random()
    if site.activation_day is not None:
        activation = site.activation_day
    else:
        lo, hi = site.activation_day_min, site.activation_day_max
        assert lo is not None and hi is not None
        activation = lo + u * (hi - lo)
    mean = site.screening_rate_per_month / DAYS_PER_MONTH
    if rec.rate_model == "poisson":
        return SiteDraw(activation, mean)
    return SiteDraw(activation, float(rng.gamma(shape, 1.0 / rate)))


def _prior(site: Site, rec: RecruitmentSettings) -> tuple[float, float]:
    """The Gamma prior (shape, rate per day) of a site's screening rate."""
    alpha = rec.rate_shape if rec.rate_shape is not None else math.inf
    mean = site.screening_rate_per_month / DAYS_PER_MONTH
    return alpha, alpha / mean


def _next_arrival(t: float, e: float, rate: float, site: Site) -> float:
    """The time after ``t`` at which the site's cumulative intensity has grown by ``e``."""
    edges = [c.from_day for c in site.rate_changes if c.from_day > t]
    mults = [c.multiplier for c in site.rate_changes]
    days = [c.from_day for c in site.rate_changes]

    def factor(x: float) -> float:
        i = int(np.searchsorted(days, x, side="right"))
        return 1.0 if i == 0 else mults[i - 1]

    now = t
    for edge in [*edges, math.inf]:
        r = rate * factor(now)
        if r > 0 and now + e / r <= edge:
            return now + e / r
        if edge == math.inf:
            return math.inf
        e -= r * (edge - now)
        now = edge
    return math.inf  # pragma: no cover


@dataclass
class _Recruitment:
    """The site processes of one replicate, enrolling into a cohort (or only counting)."""

    cohort: _Cohort
    sites: list[SiteDraw]
    site_specs: list[Site]
    start_day: float = 0.0
    enrolled_before: list[int] = field(default_factory=list)
    simulate_patients: bool = True
    screened: list[tuple[int, float, Candidate]] = field(default_factory=list)
    enrolled: list[tuple[int, float, int]] = field(default_factory=list)
    stopped: bool = False

    def __post_init__(self) -> None:
        rec = _require(self.cohort.scenario)
        self.target = rec.target_enrolled
        self.last_day = rec.enrolment_deadline_day
        self.site_enrolled = list(self.enrolled_before) or [0] * len(self.sites)
        self.total = sum(self.site_enrolled)
        if self.total >= self.target:
            self.stopped = True
        for i in range(len(self.sites)):
            self.cohort.env.process(self._site(i))

    def _site(self, i: int) -> Any:
        env = self.cohort.env
        draw, spec = self.sites[i], self.site_specs[i]
        population = self.cohort.scenario.population
        assert population is not None
        opens = max(draw.activation_day, self.start_day)
        arrivals = self.cohort.stream("arrivals", i)
        people = self.cohort.stream("site_population", i)  # this site's people, in turn
        t, k = opens, 0
        while True:
            t = _next_arrival(t, float(arrivals.standard_exponential()), draw.rate_per_day, spec)
            if t > self.last_day:
                return
            yield env.timeout(t - env.now)
            if self.stopped:
                return
            if spec.cap is not None and self.site_enrolled[i] >= spec.cap:
                return
            person = PERSONS_PER_SITE * i + k
            k += 1
            c = draw_candidate(population, self.cohort.scenario.eligibility, people, person)
            extras = person_extras(people)  # always drawn: keeps each person's block aligned
            self.screened.append((i, t, c))
            if not c.eligible:
                continue
            self.site_enrolled[i] += 1
            self.total += 1
            self.enrolled.append((i, t, person))
            if self.simulate_patients:
                self.cohort.enrol(c, t, extras)
            if self.total >= self.target:
                self.stopped = True


def _draw_sites(
    scenario: Scenario,
    seed: int,
    replicate: int,
    posteriors: Sequence[tuple[float, float]] | None = None,
) -> list[SiteDraw]:
    rec = _require(scenario)
    draws = []
    for i, site in enumerate(rec.sites):
        shape, rate = posteriors[i] if posteriors is not None else _prior(site, rec)
        rng = stream(seed, "replicate", replicate, "site", i)
        draws.append(_draw_site(site, rec, rng, shape, rate))
    return draws


def _milestones(
    scenario: Scenario,
    recruitment: _Recruitment,
    outcomes: dict[str, Any],
    enrolment_days: Sequence[float],
    patients_simulated: bool,
) -> dict[str, Any]:
    rec = _require(scenario)
    start = rec.start_date
    n = len(enrolment_days)
    duration = scenario.treatment.duration_days
    out: dict[str, Any] = {
        "screened": len(recruitment.screened),
        "enrolled": n,
        "target_reached": n >= rec.target_enrolled,
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
    failures: dict[str, int] = {}
    for _, _, c in recruitment.screened:
        for reason in c.failed:
            failures[reason] = failures.get(reason, 0) + 1
    out["screen_failures"] = failures
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
    return _simulate(scenario, seed, replicate, simulate_patients, tables=tables)


def _simulate(
    scenario: Scenario,
    seed: int,
    replicate: int,
    simulate_patients: bool,
    *,
    posteriors: Sequence[tuple[float, float]] | None = None,
    start_day: float = 0.0,
    observed: Observed | None = None,
    extra_sites: int = 0,
    tables: bool = True,
) -> TrialResult:
    rec = _require(scenario)
    cohort = _Cohort(scenario, seed, replicate, patients=simulate_patients)
    sites = _draw_sites(scenario, seed, replicate, posteriors)
    specs = list(rec.sites)
    for j in range(extra_sites):
        spec, draw = _extra_site(scenario, seed, replicate, j, start_day)
        specs.append(spec)
        sites.append(draw)
    before = [0] * len(specs)
    enrolment: list[tuple[int, float, int]] = []
    if observed is not None:
        population = scenario.population
        assert population is not None
        for j, (site_index, day) in enumerate(observed.enrolments):
            rng = stream(seed, "replicate", replicate, "observed", j)
            while True:  # someone who was enrolled: an eligible draw from the population
                c = draw_candidate(population, scenario.eligibility, rng, _OBSERVED_PERSON + j)
                if c.eligible:
                    break
            before[site_index] += 1
            enrolment.append((site_index, day, c.person))
            if simulate_patients:
                cohort.enrol(c, day, person_extras(rng))
    recruitment = _Recruitment(
        cohort, sites, specs, start_day, before, simulate_patients=simulate_patients
    )
    cohort.env.run()
    enrolment += recruitment.enrolled
    screened = [c for _, _, c in recruitment.screened]
    result = _result(cohort, screened) if tables else None
    outcomes = cohort.outcomes()
    names = [s.name for s in specs]
    table = pd.DataFrame(
        [
            {"patient_id": i + 1, "site": names[s], "trial_day": d, "person": person}
            for i, (s, d, person) in enumerate(sorted(enrolment, key=lambda x: x[1]))
        ],
        columns=["patient_id", "site", "trial_day", "person"],
    )
    days = [d for _, d, _ in enrolment]
    milestones = _milestones(scenario, recruitment, outcomes, days, simulate_patients)
    milestones["enrolled_per_site"] = {
        name: int(recruitment.site_enrolled[i]) for i, name in enumerate(names)
    }
    milestones["site_opened_day"] = {
        name: max(sites[i].activation_day, start_day) for i, name in enumerate(names)
    }
    return TrialResult(milestones, table, result, outcomes)


def _extra_site(
    scenario: Scenario, seed: int, replicate: int, j: int, start_day: float
) -> tuple[Site, SiteDraw]:
    """A site added at a re-forecast: the scenario's average prior, opening after the delay."""
    rec = _require(scenario)
    mean_per_month = float(np.mean([s.screening_rate_per_month for s in rec.sites]))
    opens = start_day + rec.new_site_delay_days
    spec = Site(
        name=f"added site {j + 1}", activation_day=opens, screening_rate_per_month=mean_per_month
    )
    rng = stream(seed, "replicate", replicate, "extra_site", j)
    return spec, _draw_site(spec, rec, rng, *_prior(spec, rec))


# ---------------------------------------------------------------------------
# Observed enrolment and the re-forecast
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """Enrolment seen so far, in trial days.

    Attributes
    ----------
    as_of_day : float
        The trial day of the as-of date.
    enrolments : list of (site index, trial day)
    screened : dict
        Site index -> number screened, for sites whose screening is known.
    """

    as_of_day: float
    enrolments: list[tuple[int, float]]
    screened: dict[int, int]


def read_observed(
    source: str | Path | pd.DataFrame | None, scenario: Scenario, as_of: date
) -> Observed:
    """Read observed enrolment: a CSV with one row per patient, ``site,enrolled_date``.

    An optional ``screened_date`` column adds screened people: a row with a
    screened date and no enrolled date is a screen failure. Dates are
    ``YYYY-MM-DD``. Every problem names its line.

    Raises
    ------
    DosesimError
        Not a CSV, missing columns, unknown site, a date that does not parse,
        is before the start date or after the as-of date.
    """
    rec = _require(scenario)
    start = rec.start_date
    if as_of < start:
        raise DosesimError(f"--as-of {as_of}: before the trial start date {start}")
    as_of_day = float((as_of - start).days)
    if source is None:
        return Observed(as_of_day, [], {})
    name = "<table>" if isinstance(source, pd.DataFrame) else str(source)
    rows = _rows(source, name)
    names = [s.name for s in rec.sites]
    problems: list[str] = []
    enrolments: list[tuple[int, float]] = []
    screened: dict[int, int] = {}
    has_screened = "screened_date" in rows[0][1] if rows else False
    for line, row in rows:
        site = (row.get("site") or "").strip()
        if site not in names:
            close = difflib.get_close_matches(site, names, n=1)
            hint = f'; did you mean "{close[0]}"?' if close else f"; sites: {', '.join(names)}"
            problems.append(
                f"{name}: line {line}: site {site!r} is not a site of the scenario{hint}"
            )
            continue
        i = names.index(site)
        got: dict[str, date | None] = {}
        for col in ("enrolled_date", "screened_date"):
            text = (row.get(col) or "").strip()
            if not text:
                got[col] = None
                continue
            try:
                d = date.fromisoformat(text)
            except ValueError:
                problems.append(f"{name}: line {line}: {col} {text!r} is not a date (YYYY-MM-DD)")
                got[col] = None
                continue
            if d < start:
                problems.append(f"{name}: line {line}: {col} {d} is before the start date {start}")
            elif d > as_of:
                problems.append(f"{name}: line {line}: {col} {d} is after the as-of date {as_of}")
            got[col] = d
        enrolled, screened_on = got["enrolled_date"], got["screened_date"]
        if (
            enrolled is None
            and screened_on is None
            and not any(p.startswith(f"{name}: line {line}:") for p in problems)
        ):
            problems.append(f"{name}: line {line}: needs an enrolled_date (or a screened_date)")
        if enrolled and screened_on and screened_on > enrolled:
            problems.append(f"{name}: line {line}: screened_date is after enrolled_date")
        if enrolled is not None:
            enrolments.append((i, float((enrolled - start).days)))
        if has_screened and (screened_on is not None or enrolled is not None):
            screened[i] = screened.get(i, 0) + 1
    if problems:
        raise DosesimError("\n".join(problems))
    return Observed(as_of_day, sorted(enrolments, key=lambda x: x[1]), screened)


def _rows(source: str | Path | pd.DataFrame, name: str) -> list[tuple[int, dict[str, str]]]:
    if isinstance(source, pd.DataFrame):
        frame = source.astype(str).replace({"nan": "", "NaT": "", "None": ""})
        header = list(frame.columns)
        records = frame.to_dict("records")
        lines = [(i + 2, {str(k): str(v) for k, v in r.items()}) for i, r in enumerate(records)]
    else:
        try:
            text = Path(source).read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise DosesimError(f"{name}: no such file") from None
        except (UnicodeDecodeError, IsADirectoryError):
            raise DosesimError(f"{name}: not a CSV file (not UTF-8 text)") from None
        if "\x00" in text:
            raise DosesimError(f"{name}: not a CSV file")
        try:
            reader = csv.DictReader(io.StringIO(text))
            header = list(reader.fieldnames or [])
            lines = [(reader.line_num, {k: v or "" for k, v in r.items() if k}) for r in reader]
        except csv.Error as exc:
            raise DosesimError(f"{name}: not a valid CSV file ({exc})") from None
    missing = [c for c in ("site", "enrolled_date") if c not in header]
    if missing:
        raise DosesimError(
            f"{name}: line 1: missing column(s) {', '.join(missing)}; "
            "expected a header with site,enrolled_date (and optionally screened_date)"
        )
    return lines


def site_posteriors(scenario: Scenario, observed: Observed) -> list[tuple[float, float]]:
    """Each site's screening-rate distribution (Gamma shape, rate per day) given the data.

    Sites with observed rows get the conjugate posterior; exposure runs from the
    site's activation (for a drawn activation, the middle of its range, but not
    after its first observation) to the as-of date. Sites without rows keep the
    prior. Under ``poisson`` the rate is known and stays as given.
    """
    rec = _require(scenario)
    population = scenario.population
    assert population is not None
    p = eligibility_probability(population, scenario.eligibility)
    out = []
    for i, site in enumerate(rec.sites):
        alpha, beta = _prior(site, rec)
        days = [d for s, d in observed.enrolments if s == i]
        if rec.rate_model == "poisson" or (not days and i not in observed.screened):
            out.append((alpha, beta))
            continue
        if site.activation_day is not None:
            opened = site.activation_day
        else:
            assert site.activation_day_min is not None and site.activation_day_max is not None
            opened = (site.activation_day_min + site.activation_day_max) / 2
            if days:
                opened = min(opened, min(days))
        tau = max(observed.as_of_day - opened, 0.0)
        if i in observed.screened:
            out.append((alpha + observed.screened[i], beta + tau))
        else:
            out.append((alpha + len(days), beta + p * tau))
    return out


@dataclass(frozen=True)
class ForecastResult:
    """A re-forecast: per-replicate milestones, their summary, and the sites needed.

    Attributes
    ----------
    replicates : pandas.DataFrame
        One row per replicate: ``last_patient_in_day``,
        ``last_patient_last_visit_day``, ``target_reached``, ``completed_by_deadline``.
    summary : dict
        Medians and 80 % / 95 % intervals of the last-patient-in and last-visit
        dates, and the probabilities.
    posteriors : list of (shape, rate per day)
        Each site's screening-rate distribution used.
    sites_needed : int or None
        Fewest added sites (like the prior) giving at least 80 % probability of
        completing by the deadline; None if more than ``max_extra_sites``.
    sites_needed_probability : float
    """

    replicates: pd.DataFrame
    summary: dict[str, Any]
    posteriors: list[tuple[float, float]]
    sites_needed: int | None
    sites_needed_probability: float


def _forecast_rows(
    scenario: Scenario,
    observed: Observed,
    posteriors: list[tuple[float, float]],
    seed: int,
    extra_sites: int,
    first: int,
    last: int,
) -> list[dict[str, Any]]:
    """Milestones of replicates ``first .. last - 1`` of a forecast (one task of a pool)."""
    rows = []
    for r in range(first, last):
        trial = _simulate(
            scenario,
            seed,
            r,
            True,
            posteriors=posteriors,
            start_day=observed.as_of_day,
            observed=observed,
            extra_sites=extra_sites,
            tables=False,
        )
        m = trial.milestones
        rows.append(
            {
                "replicate": r,
                "enrolled": m["enrolled"],
                "last_patient_in_day": m["last_patient_in_day"],
                "last_patient_last_visit_day": m["last_patient_last_visit_day"],
                "target_reached": m["target_reached"],
                "completed_by_deadline": m["completed_by_deadline"],
            }
        )
    return rows


def _run_replicates(
    scenario: Scenario,
    observed: Observed,
    posteriors: list[tuple[float, float]],
    replicates: int,
    seed: int,
    extra_sites: int,
    workers: int = 1,
) -> pd.DataFrame:
    """Each replicate draws from its own streams, so any number of workers gives the same rows."""
    args = (scenario, observed, posteriors, seed, extra_sites)
    if workers <= 1:
        return pd.DataFrame(_forecast_rows(*args, 0, replicates))
    from concurrent.futures import ProcessPoolExecutor

    size = max(1, -(-replicates // (4 * workers)))
    bounds = [(a, min(a + size, replicates)) for a in range(0, replicates, size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(_forecast_rows, *zip(*[(*args, a, b) for a, b in bounds], strict=True))
        return pd.DataFrame([row for part in parts for row in part])


def forecast(
    scenario: Scenario,
    observed: str | Path | pd.DataFrame | Observed | None,
    as_of: date,
    replicates: int,
    seed: int,
    max_extra_sites: int = 10,
    search_replicates: int | None = None,
    workers: int = 1,
) -> ForecastResult:
    """Forecast the rest of the trial from the enrolment seen so far.

    Parameters
    ----------
    scenario : Scenario
    observed : CSV path, DataFrame, Observed or None
        Enrolment so far (see :func:`read_observed`); None for a design-stage
        forecast from ``as_of``.
    as_of : datetime.date
        Data cut-off; the simulation continues from this day.
    replicates : int
        Replicate trials (>= 1).
    seed : int
    max_extra_sites : int
        Largest number of added sites tried when searching for the sites needed.
    search_replicates : int, optional
        Replicates per step of that search (default: ``min(replicates, 200)``).
    workers : int
        Local worker processes; the results do not depend on it.
    """
    if replicates < 1:
        raise DosesimError(f"replicates must be >= 1, got {replicates}")
    obs = observed if isinstance(observed, Observed) else read_observed(observed, scenario, as_of)
    rec = _require(scenario)
    posteriors = site_posteriors(scenario, obs)
    table = _run_replicates(scenario, obs, posteriors, replicates, seed, 0, workers)
    summary = _summary(scenario, table, obs)
    needed: int | None = None
    prob = float(table["completed_by_deadline"].mean())
    n_search = search_replicates or min(replicates, 200)
    if prob < 0.8:
        for extra in range(1, max_extra_sites + 1):
            trial = _run_replicates(scenario, obs, posteriors, n_search, seed, extra, workers)
            prob = float(trial["completed_by_deadline"].mean())
            if prob >= 0.8:
                needed = extra
                break
    else:
        needed = 0
    summary["deadline"] = rec.deadline
    return ForecastResult(table, summary, posteriors, needed, prob)


def _summary(scenario: Scenario, table: pd.DataFrame, obs: Observed) -> dict[str, Any]:
    rec = _require(scenario)
    out: dict[str, Any] = {
        "replicates": len(table),
        "as_of_day": obs.as_of_day,
        "observed_enrolled": len(obs.enrolments),
        "probability_target_reached": float(table["target_reached"].mean()),
        "probability_completed_by_deadline": float(table["completed_by_deadline"].mean()),
    }
    for key in ("last_patient_in", "last_patient_last_visit"):
        days = table[f"{key}_day"].to_numpy(dtype=float)
        days = days[np.isfinite(days)]
        if days.size == 0:
            out[key] = None
            continue
        q = np.percentile(days, [2.5, 10, 50, 90, 97.5])
        out[key] = {
            "median": trial_date(rec.start_date, q[2]),
            "interval_80": (trial_date(rec.start_date, q[1]), trial_date(rec.start_date, q[3])),
            "interval_95": (trial_date(rec.start_date, q[0]), trial_date(rec.start_date, q[4])),
        }
    return out
