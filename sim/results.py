"""Summaries of simulated results as the commands print them, with the intervals a planner reads.

Every interval is the central ``level`` interval (default 90 %,
:data:`sim.milestones.DEFAULT_LEVEL`), and every line says which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim.milestones import DEFAULT_LEVEL, format_milestones, interval_label, level_quantiles
from sim.model import CohortResult

if TYPE_CHECKING:
    from sim.forecast import ForecastResult
    from sim.scenario import Scenario

__all__ = ["cohort_summary", "format_cohort_summary", "format_forecast", "format_run_summary"]


def cohort_summary(result: CohortResult, level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """Key figures of one cohort: steroid burden, retention, exits, adverse events, screening.

    Parameters
    ----------
    result : CohortResult
    level : float
        The central interval over patients (default 0.9).

    Returns
    -------
    dict
        ``patients``; ``level``; ``cumulative_prednisone_mg_week52`` (``n``,
        ``median``, ``low``, ``high`` over patients on study at week 52); ``completed_fraction``;
        ``exits`` (count by status); ``patient_years`` (time on study);
        ``adverse_events`` (per name: ``patients_with`` fraction, ``events``,
        ``per_patient_year``); ``screened``; ``screen_failures`` (count by criterion).
    """
    p = result.patients
    n = len(p)
    week52 = p["cumulative_prednisone_mg_week52"].dropna() if n else pd.Series(dtype=float)
    years = float(p["exit_day"].sum()) / 365.25 if n else 0.0
    ae_cols = [c for c in p.columns if c.startswith("ae_")]
    screened = result.screened
    failures = {
        c.removeprefix("fails_"): int(screened[c].sum())
        for c in screened.columns
        if c.startswith("fails_")
    }
    low_q, high_q = level_quantiles(level)
    return {
        "patients": n,
        "level": level,
        "cumulative_prednisone_mg_week52": {
            "n": int(week52.size),
            "median": float(week52.median()) if week52.size else float("nan"),
            "low": float(np.quantile(week52, low_q)) if week52.size else float("nan"),
            "high": float(np.quantile(week52, high_q)) if week52.size else float("nan"),
        },
        "completed_fraction": float((p["status"] == "completed").mean()) if n else float("nan"),
        "exits": {k: int(v) for k, v in p["status"].value_counts().items()} if n else {},
        "patient_years": years,
        "adverse_events": {
            c.removeprefix("ae_"): {
                "patients_with": float((p[c] > 0).mean()) if n else float("nan"),
                "events": int(p[c].sum()),
                "per_patient_year": float(p[c].sum()) / years if years else float("nan"),
            }
            for c in ae_cols
        },
        "screened": len(screened),
        "screen_failures": failures,
    }


def format_cohort_summary(summary: dict[str, Any]) -> str:
    """The summary as a few readable lines."""
    n = summary["patients"]
    burden = summary["cumulative_prednisone_mg_week52"]
    lines = [
        f"{n} patients enrolled of {summary['screened']} screened "
        f"({summary['patient_years']:.1f} patient-years on study)",
        f"cumulative prednisone at week 52: median {burden['median']:,.1f} mg "
        f"({interval_label(summary['level'])}: {burden['low']:,.1f}-{burden['high']:,.1f}; "
        f"n = {burden['n']} on study at week 52)",
        f"completed: {summary['completed_fraction']:.1%}; exits: "
        + ", ".join(f"{k} {v}" for k, v in sorted(summary["exits"].items())),
        "adverse events (patients with >= 1; events per patient-year):",
    ]
    for name, ae in summary["adverse_events"].items():
        lines.append(f"  {name:<22} {ae['patients_with']:6.1%}  {ae['per_patient_year']:.3f}")
    if summary["screen_failures"]:
        lines.append(
            "screen failures by criterion: "
            + ", ".join(f"{k} {v}" for k, v in summary["screen_failures"].items())
        )
    return "\n".join(lines)


def format_run_summary(summary: dict[str, Any]) -> str:
    """A few lines a planner reads first: steroid burden, retention, AEs, recruitment milestones."""
    m = summary["metrics"]
    label = interval_label(summary["level"])

    def interval(key: str, fmt: str = ",.0f") -> str:
        e = m.get(key)
        if e is None:
            return "no value in any replicate"
        return f"median {e['median']:{fmt}} ({label}: {e['low']:{fmt}}-{e['high']:{fmt}})"

    lines = [
        "steroid burden, per-trial median cumulative prednisone at week 52: "
        + interval("median_cumulative_prednisone_mg_week52")
        + " mg",
        "retention, completed fraction per trial: " + interval("completed_fraction", ".2f"),
    ]
    exits = ", ".join(
        f"{k} {m[k]['mean']:.2f}" for k in ("withdrawn", "died", "discontinued") if k in m
    )
    lines.append(f"exits per trial (mean): {exits}")
    aes = ", ".join(f"{k[3:]} {v['mean']:.2f}" for k, v in m.items() if k.startswith("ae_"))
    lines.append(f"adverse events per trial (mean): {aes}")
    if summary.get("milestones"):
        lines += format_milestones(summary["milestones"], "trials")
    return "\n".join(lines)


def format_forecast(scenario: Scenario, result: ForecastResult) -> list[str]:
    """The lines ``dosesim forecast`` prints after its first: sites, milestones, sites needed."""
    from sim.forecast import SEARCH_PROBABILITY
    from sim.site_rates import exposure_days

    rec = scenario.recruitment
    assert rec is not None
    s = result.summary
    label = interval_label(s["level"])
    out = [
        f"enrolled so far: {s['observed_enrolled']} of {rec.target_enrolled}; intervals are "
        f"{label} of replicates",
        f"screening rate per site, people screened per month: mean ({label} interval)",
    ]
    for entry, belief in zip(s["sites"], result.posteriors, strict=True):
        prior, post = entry["prior"], entry["posterior"]
        head = f"  site {entry['index']} {entry['name']}: "
        if belief.known_rate:
            out.append(head + f"known rate {prior['mean_per_month']:.2f} (poisson)")
            continue
        text = (
            f"prior {prior['mean_per_month']:.2f} ({prior['low_per_month']:.2f}-"
            f"{prior['high_per_month']:.2f})"
        )
        if not belief.updated:
            why = "not open by the as-of date" if s.get("observed", True) else "no observed data"
            out.append(head + text + f"; {why}: prior kept")
            continue
        what = "screened" if belief.screened else "enrolled"
        if belief.opening.known:
            days = exposure_days(belief.site, belief.opening.lo, belief.exposure_until_day)
            seen = f"{belief.count} {what} in {days:,.0f} days open"
        else:
            seen = (
                f"{belief.count} {what}; opened about day "
                f"{belief.opening.quantile(0.5):,.0f} (posterior median)"
            )
        out.append(
            head
            + text
            + f"; posterior {post['mean_per_month']:.2f} ({post['low_per_month']:.2f}-"
            + f"{post['high_per_month']:.2f}) from {seen}"
        )
    out += format_milestones(s["milestones"], "replicates")
    target = f"P(completing by the deadline) >= {SEARCH_PROBABILITY:.2f}"
    if result.sites_needed == 0:
        out.append(f"no more sites needed for {target}")
    elif result.sites_needed is None:
        tried = s.get("max_extra_sites", 10)
        out.append(f"no number of added sites tried (up to {tried}) gives {target}")
    else:
        p = result.sites_needed_probability
        out.append(
            f"{result.sites_needed} more site(s) like the prior, opening "
            f"{rec.new_site_delay_days:g} days after {s['as_of']}, give P(completing by the "
            f"deadline) = {p:.2f} (>= {SEARCH_PROBABILITY:.2f})"
        )
    return out
