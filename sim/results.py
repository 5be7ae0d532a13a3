"""Summaries of simulated results, with the intervals a planner reads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sim.model import CohortResult

__all__ = ["cohort_summary", "format_cohort_summary"]


def cohort_summary(result: CohortResult) -> dict[str, Any]:
    """Key figures of one cohort: steroid burden, retention, exits, adverse events, screening.

    Returns
    -------
    dict
        ``patients``; ``cumulative_prednisone_mg_week52`` (``n``, ``median``, ``p5``,
        ``p95`` over patients on study at week 52); ``completed_fraction``;
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
    return {
        "patients": n,
        "cumulative_prednisone_mg_week52": {
            "n": int(week52.size),
            "median": float(week52.median()) if week52.size else float("nan"),
            "p5": float(np.percentile(week52, 5)) if week52.size else float("nan"),
            "p95": float(np.percentile(week52, 95)) if week52.size else float("nan"),
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
        f"(5-95 %: {burden['p5']:,.1f}-{burden['p95']:,.1f}; "
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
