r"""Re-forecasting a recruiting trial from the enrolment seen so far.

Each site that has been open during the observed period gets the posterior of
its screening rate (and, for a drawn activation, of its opening day) given its
own count :math:`k_i` and exposure, :math:`k_i = 0` included: after
:math:`k_i` enrolments in :math:`\tau_i` open days with eligibility probability
:math:`p`, :math:`\lambda_i \sim \mathrm{Gamma}(\alpha + k_i, \beta + p\,\tau_i)`
(with screening counts, :math:`\mathrm{Gamma}(\alpha + s_i, \beta + \tau_i)`);
:mod:`sim.site_rates` has the general case. A site not yet open keeps its prior
and its activation rule. The rest of the trial is simulated from the as-of
date with rates drawn from the posteriors (:mod:`sim.trial.trial`), and the
milestones are summarised as a planner reads them (:mod:`sim.trial.milestones`).
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from sim.errors import DosesimError
from sim.executors import DEFAULT_CONNECT_TIMEOUT_S, Executor, chunks_of
from sim.fileio import read_regular_file
from sim.population import eligibility_probability
from sim.scenario import Scenario
from sim.site_rates import SiteRate
from sim.trial.milestones import DEFAULT_LEVEL, check_level, level_quantiles, recruitment_milestones
from sim.trial.sites import recruitment_settings
from sim.trial.trial import require_eligibility, simulate_replicate

__all__ = [
    "ENROLMENT_COLUMNS",
    "SEARCH_PROBABILITY",
    "SITES_CURVE_COLUMNS",
    "ForecastResult",
    "Observed",
    "forecast",
    "read_observed",
    "site_posteriors",
]

_OBSERVED_BYTES = 100 << 20  # far above any trial's enrolment log

#: The probability of completing by the deadline the sites search aims for.
SEARCH_PROBABILITY = 0.8


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
    first_seen : dict
        Site index -> the trial day of its first observed row (screened or enrolled).
    has_data : bool
        False for "no data given" (a design-stage forecast from the as-of date:
        every site keeps its prior); True when observations were read, even if
        nobody was enrolled (then every open site learns from its zero).
    """

    as_of_day: float
    enrolments: list[tuple[int, float]]
    screened: dict[int, int]
    first_seen: dict[int, float] = field(default_factory=dict)
    has_data: bool = True
    warnings: tuple[str, ...] = ()
    """What a planner may mean but should know (e.g. more enrolled than the target)."""


def read_observed(
    source: str | Path | pd.DataFrame | None, scenario: Scenario, as_of: date
) -> Observed:
    """Read observed enrolment: a CSV with one row per patient, ``site,enrolled_date``.

    An optional ``screened_date`` column adds screened people: a row with a
    screened date and no enrolled date is a screen failure. Dates are
    ``YYYY-MM-DD``. A file with the header and no rows means nobody was enrolled
    (every site open by the as-of date then learns from its zero); ``None``
    means no data (every site keeps its prior). Every problem names its line.

    Raises
    ------
    DosesimError
        Not a CSV, missing columns, unknown site, a date that does not parse,
        is before the start date or after the as-of date, or is before the site
        can have opened (its activation day, or the start of its activation range).
    """
    rec = recruitment_settings(scenario)
    start = rec.start_date
    if as_of < start:
        raise DosesimError(f"--as-of {as_of}: before the trial start date {start}")
    if as_of > rec.deadline:
        raise DosesimError(
            f"--as-of {as_of}: after the deadline {rec.deadline}; nothing is left to forecast"
        )
    as_of_day = float((as_of - start).days)
    if source is None:
        return Observed(as_of_day, [], {}, {}, has_data=False)
    name = "<table>" if isinstance(source, pd.DataFrame) else str(source)
    header, rows = _rows(source, name)
    names = [s.name for s in rec.sites]
    problems: list[str] = []
    enrolments: list[tuple[int, float]] = []
    lines_of: list[int] = []  # the CSV line of each enrolment
    screened: dict[int, int] = {}
    first_seen: dict[int, float] = {}
    has_screened = "screened_date" in header
    if has_screened:  # screening is known for every site: one with no row screened nobody
        screened = {i: 0 for i in range(len(rec.sites))}
    closes = rec.enrolment_deadline or rec.deadline
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
        spec = rec.sites[i]
        opens = spec.activation_day if spec.activation_day is not None else spec.activation_day_min
        assert opens is not None
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
            elif (d - start).days < opens:
                problems.append(
                    f"{name}: line {line}: {col} {d} is before site {site!r} can have opened "
                    f"(trial day {opens:g} in the scenario)"
                )
            elif d > closes:
                problems.append(
                    f"{name}: line {line}: {col} {d} is after the enrolment deadline {closes}"
                )
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
            lines_of.append(line)
            cap = spec.cap
            if cap is not None and sum(1 for s, _ in enrolments if s == i) == cap + 1:
                problems.append(
                    f"{name}: line {line}: site {site!r} has more enrolments than its cap ({cap})"
                )
        if has_screened and (screened_on is not None or enrolled is not None):
            screened[i] = screened.get(i, 0) + 1
        seen = [float((d - start).days) for d in (enrolled, screened_on) if d is not None]
        if seen:
            first_seen[i] = min([first_seen.get(i, math.inf), *seen])
    if problems:
        raise DosesimError("\n".join(problems))
    warnings: list[str] = []
    if len(enrolments) > rec.target_enrolled:
        by_day = sorted(range(len(enrolments)), key=lambda j: enrolments[j][1])
        beyond = sorted(lines_of[j] for j in by_day[rec.target_enrolled :])
        shown = ", ".join(str(n) for n in beyond[:5]) + (", ..." if len(beyond) > 5 else "")
        warnings.append(
            f"{name}: {len(enrolments)} enrolments, more than the target of "
            f"{rec.target_enrolled} (beyond it: line {shown}): the target is reached; the "
            "forecast is of the last visits only"
        )
    ordered = sorted(enrolments, key=lambda x: x[1])
    return Observed(as_of_day, ordered, screened, first_seen, warnings=tuple(warnings))


def _rows(
    source: str | Path | pd.DataFrame, name: str
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The CSV's header and its rows, each with its line number."""
    if isinstance(source, pd.DataFrame):
        frame = source.astype(str).replace({"nan": "", "NaT": "", "None": ""})
        header = list(frame.columns)
        records = frame.to_dict("records")
        lines = [(i + 2, {str(k): str(v) for k, v in r.items()}) for i, r in enumerate(records)]
    else:
        try:
            text = read_regular_file(source, _OBSERVED_BYTES).decode("utf-8-sig")
        except UnicodeDecodeError:
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
    return header, lines


def site_posteriors(scenario: Scenario, observed: Observed) -> list[SiteRate]:
    """What is believed of each site's opening day and screening rate given the data.

    Every site that may have been open before the as-of day learns from its own
    count and exposure, a count of 0 included (:mod:`sim.site_rates`): its
    exposure runs from its opening to the as-of day (or the enrolment deadline,
    if earlier), or to the day its cap was filled. A site that cannot have
    opened yet keeps its prior and activation rule. Screened counts (a
    ``screened_date`` column, then known for every site) are used when known,
    enrolments otherwise. With ``observed.has_data`` false every site keeps its
    prior.
    """
    rec = recruitment_settings(scenario)
    population = scenario.population
    assert population is not None
    if not observed.has_data:
        return [SiteRate.prior(site, rec) for site in rec.sites]
    p = eligibility_probability(population, scenario.eligibility)
    out = []
    for i, site in enumerate(rec.sites):
        days = sorted(d for s, d in observed.enrolments if s == i)
        until = min(observed.as_of_day, rec.enrolment_deadline_day)  # no screening after it
        if site.cap is not None and len(days) >= site.cap:
            until = min(until, days[site.cap - 1])  # screening stopped when the cap was filled
        if i in observed.screened:
            count, factor, screened = observed.screened[i], 1.0, True
        else:
            count, factor, screened = len(days), p, False
        out.append(
            SiteRate.posterior(
                site, rec, count, factor, until, observed.first_seen.get(i), screened
            )
        )
    return out


@dataclass(frozen=True)
class ForecastResult:
    """A re-forecast: per-replicate milestones, their summary, and the sites needed.

    Attributes
    ----------
    replicates : pandas.DataFrame
        One row per replicate: ``enrolled``, ``last_patient_in_day``,
        ``last_patient_last_visit_day``, ``target_reached``, ``completed_by_deadline``.
    summary : dict
        ``as_of``, ``observed_enrolled``, ``level``, the milestones
        (:func:`sim.trial.milestones.milestone_summary`), each site's prior and
        posterior screening rate in people per month (``sites``), the added-sites
        search (``sites_needed``, ``sites_needed_probability``, ``sites_curve`` as
        records of :attr:`sites_curve`).
    posteriors : list of SiteRate
        Each site's opening day and screening rate as used.
    sites_needed : int or None
        Fewest added sites (like the prior) giving at least 80 % probability of
        completing by the deadline; None if more than ``max_extra_sites``.
    sites_needed_probability : float
        That probability, from the search's replicates.
    enrolments : pandas.DataFrame
        Every replicate's enrolments, observed and predicted: ``replicate``, ``number``
        (1, 2, ... in order of enrolment), ``trial_day`` (days from the start date),
        ``site`` (the site's name).
    sites_curve : pandas.DataFrame
        P(completing by the deadline) against the number of added sites:
        ``extra_sites`` (0, 1, ...), ``replicates``, ``probability``, ``mcse``; 0 and
        every step of the search, and two steps past the sites needed (within
        ``max_extra_sites``), on the search's replicates (the first of the forecast's
        for 0: the same trials).
    """

    replicates: pd.DataFrame
    summary: dict[str, Any]
    posteriors: list[SiteRate]
    sites_needed: int | None
    sites_needed_probability: float
    enrolments: pd.DataFrame = field(default_factory=pd.DataFrame)
    sites_curve: pd.DataFrame = field(default_factory=pd.DataFrame)


#: Columns of :attr:`ForecastResult.enrolments` and of ``forecast_enrolment.csv``.
ENROLMENT_COLUMNS = ("replicate", "number", "trial_day", "site")
#: Columns of :attr:`ForecastResult.sites_curve` and of ``forecast_sites.csv``.
SITES_CURVE_COLUMNS = ("extra_sites", "replicates", "probability", "mcse")
#: Steps the added-sites curve goes past the sites needed.
CURVE_BEYOND = 2


def _forecast_rows(
    scenario: Scenario,
    observed: Observed,
    posteriors: list[SiteRate],
    seed: int,
    extra_sites: int,
    first: int,
    last: int,
) -> list[dict[str, Any]]:
    """Milestones of replicates ``first .. last - 1`` of a forecast (one task of an executor)."""
    rows = []
    for r in range(first, last):
        trial = simulate_replicate(
            scenario,
            seed,
            r,
            True,
            posteriors=posteriors,
            start_day=observed.as_of_day,
            observed=observed.enrolments if observed is not None else (),
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
                "enrolments": [(day, site) for site, day, _ in trial.enrolment_rows],
            }
        )
    return rows


def _run_replicates(
    executor: Executor,
    scenario: Scenario,
    observed: Observed,
    posteriors: list[SiteRate],
    replicates: int,
    seed: int,
    extra_sites: int,
    tick: Callable[[int], None],
) -> pd.DataFrame:
    """Each replicate draws from its own streams, so any executor gives the same rows."""
    size = max(1, min(50, -(-replicates // (4 * executor.lanes))))
    args = (scenario, observed, posteriors, seed, extra_sites)
    rows: list[dict[str, Any]] = []
    for part in executor.map(_forecast_rows, args, chunks_of(replicates, size)):
        rows.extend(part)
        tick(len(part))
    return pd.DataFrame(rows).sort_values("replicate", ignore_index=True)


def _enrolments(table: pd.DataFrame) -> pd.DataFrame:
    """The long table of every replicate's enrolments (:data:`ENROLMENT_COLUMNS`)."""
    rows = [
        (r, k, day, site)
        for r, seen in zip(table["replicate"], table["enrolments"], strict=True)
        for k, (day, site) in enumerate(sorted(seen, key=lambda e: e[0]), start=1)
    ]
    return pd.DataFrame(rows, columns=list(ENROLMENT_COLUMNS))


def _curve_row(extra: int, completed: pd.Series) -> dict[str, Any]:
    n = len(completed)
    p = float(completed.mean())
    return {
        "extra_sites": extra,
        "replicates": n,
        "probability": p,
        "mcse": math.sqrt(p * (1 - p) / n) if n else math.nan,
    }


def forecast(
    scenario: Scenario,
    observed: str | Path | pd.DataFrame | Observed | None,
    as_of: date,
    replicates: int,
    seed: int,
    max_extra_sites: int = 10,
    search_replicates: int | None = None,
    workers: int = 1,
    scheduler: Any = None,
    level: float = DEFAULT_LEVEL,
    progress: bool = False,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> ForecastResult:
    """Forecast the rest of the trial from the enrolment seen so far.

    Parameters
    ----------
    scenario : Scenario
    observed : CSV path, DataFrame, Observed or None
        Enrolment so far (see :func:`read_observed`); None for a design-stage
        forecast from ``as_of`` (every site keeps its prior).
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
    scheduler : str or distributed.Client, optional
        A Dask scheduler (address or client); the results do not depend on it.
    level : float
        The central interval of the summaries (default 0.9).
    progress : bool
        Show progress bars (``tqdm.auto``: a widget in notebooks).
    connect_timeout_s : float
        Seconds to wait for a Dask scheduler given by address.
    """
    from sim.progress import progress_bar

    if replicates < 1:
        raise DosesimError(f"replicates must be >= 1, got {replicates}")
    level = check_level(level)
    obs = observed if isinstance(observed, Observed) else read_observed(observed, scenario, as_of)
    rec = recruitment_settings(scenario)
    require_eligibility(scenario)
    posteriors = site_posteriors(scenario, obs)
    with Executor(workers, scheduler, connect_timeout_s, install=(scenario,)) as executor:
        with progress_bar(replicates, "forecast", progress) as tick:
            table = _run_replicates(executor, scenario, obs, posteriors, replicates, seed, 0, tick)
        enrolments = _enrolments(table)
        table = table.drop(columns="enrolments")
        prob = float(table["completed_by_deadline"].mean())
        needed: int | None = 0 if prob >= SEARCH_PROBABILITY else None
        n_search = search_replicates or min(replicates, 200)
        # replicate r with no added site is the forecast's replicate r: the same trial
        curve = [_curve_row(0, table["completed_by_deadline"].iloc[:n_search])]
        found_prob = prob
        last = min(max_extra_sites, (max_extra_sites if needed is None else needed) + CURVE_BEYOND)
        with progress_bar(n_search * last, "sites search", progress) as tick:
            for extra in range(1, max_extra_sites + 1):
                if needed is not None and extra > min(max_extra_sites, needed + CURVE_BEYOND):
                    break
                trial = _run_replicates(
                    executor, scenario, obs, posteriors, n_search, seed, extra, tick
                )
                curve.append(_curve_row(extra, trial["completed_by_deadline"]))
                if needed is None:
                    found_prob = curve[-1]["probability"]
                    if found_prob >= SEARCH_PROBABILITY:
                        needed = extra
        prob = found_prob
    summary = {
        "as_of": as_of.isoformat(),
        "as_of_day": obs.as_of_day,
        "observed_enrolled": len(obs.enrolments),
        "observed": obs.has_data,
        "replicates": len(table),
        "level": level,
        "max_extra_sites": max_extra_sites,
        "search_replicates": n_search,
        "milestones": recruitment_milestones(table, rec, level),
        "sites": [_site_summary(i, belief, level) for i, belief in enumerate(posteriors)],
        "search_probability": SEARCH_PROBABILITY,
        "sites_needed": needed,
        "sites_needed_probability": prob,
        "sites_curve": curve,
    }
    sites_curve = pd.DataFrame(curve, columns=list(SITES_CURVE_COLUMNS))
    return ForecastResult(table, summary, posteriors, needed, prob, enrolments, sites_curve)


def _site_summary(index: int, belief: SiteRate, level: float) -> dict[str, Any]:
    """A site's prior and posterior screening rate, people per month, with the interval."""
    low_q, high_q = level_quantiles(level)
    entry: dict[str, Any] = {
        "index": index,
        "name": belief.name,
        "count": belief.count,
        "counts": "screened" if belief.screened else "enrolled",
        "updated": belief.updated,
        "known_rate": belief.known_rate,
    }
    for key, prior in (("prior", True), ("posterior", False)):
        low, high = belief.quantiles_per_month([low_q, high_q], prior=prior)
        entry[key] = {
            "mean_per_month": belief.mean_per_month(prior=prior),
            "low_per_month": low,
            "high_per_month": high,
        }
    if belief.opening.known:
        entry["opened_day"] = belief.opening.lo
    else:
        entry["opened_day_median"] = belief.opening.quantile(0.5)
    return entry
