r"""Re-forecasting a recruiting trial from the enrolment seen so far.

After :math:`k_i` enrolments in :math:`\tau_i` days at site :math:`i` with
eligibility probability :math:`p`, the screening rate's conjugate posterior is
:math:`\mathrm{Gamma}(\alpha + k_i, \beta + p\,\tau_i)` (with screening counts,
:math:`\mathrm{Gamma}(\alpha + s_i, \beta + \tau_i)`); the rest of the trial is
simulated from the as-of date with rates drawn from it (:mod:`sim.recruitment`).
"""

from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import DosesimError
from sim.population import eligibility_probability
from sim.recruitment import _prior, _require, _simulate, trial_date
from sim.scenario import Scenario

__all__ = ["ForecastResult", "Observed", "forecast", "read_observed", "site_posteriors"]


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
