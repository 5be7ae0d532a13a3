"""Summaries of replicates: every metric's mean, percentiles, interval and Monte Carlo SE."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sim.scenario import Scenario
from sim.trial.cohort import CohortResult
from sim.trial.milestones import DEFAULT_LEVEL, check_level, level_quantiles, recruitment_milestones

SUMMARY_PERCENTILES = (5, 25, 50, 75, 95)


_PROBABILITIES = ("target_reached", "completed_by_deadline")


def summarise(
    table: pd.DataFrame, scenario: Scenario, level: float = DEFAULT_LEVEL
) -> dict[str, Any]:
    """Every numeric metric's mean, median, percentiles and Monte Carlo SE; the milestones.

    The Monte Carlo SE is that of the mean over replicates, sd / sqrt(n); for a
    probability, sqrt(p (1 - p) / n). ``low`` and ``high`` bound the central
    ``level`` interval of the replicates (also ``p5`` ... ``p95``). The
    recruitment milestones are summarised as a planner reads them
    (:func:`sim.trial.milestones.milestone_summary`): the day the target is reached,
    last patient in and last visit among the replicates that reach it, and
    the number enrolled by the enrolment deadline.
    """
    level = check_level(level)
    low_q, high_q = level_quantiles(level)
    n = len(table)
    metrics: dict[str, Any] = {}
    for col in table.columns:
        if col == "replicate" or col.endswith("_date") or col in _PROBABILITIES:
            continue
        values = table[col].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        q = np.percentile(values, SUMMARY_PERCENTILES)
        low, high = np.quantile(values, [low_q, high_q])
        entry = {
            "n": int(values.size),
            "mean": float(values.mean()),
            "mcse": float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else None,
            **{
                f"p{p}" if p != 50 else "median": float(v)
                for p, v in zip(SUMMARY_PERCENTILES, q, strict=True)
            },
            "low": float(low),
            "high": float(high),
        }
        metrics[col] = entry
    probabilities = {}
    # the primary analysis's power: the share of significant replicates (with a disease model)
    for col in (*_PROBABILITIES, *(c for c in ("fvc_significant",) if c in table.columns)):
        p = float(table[col].mean())
        probabilities[col] = {"p": p, "mcse": math.sqrt(p * (1 - p) / n)}
    rec = scenario.recruitment
    milestones = None
    if rec is not None:
        milestones = recruitment_milestones(table, rec, level)
    arms = {}
    if scenario.arms:  # (only then: summaries without arms are as they were)
        arms["arms"] = {
            "names": [a.name for a in scenario.arms],
            "labels": [a.label or a.name for a in scenario.arms],
            "ratios": [a.ratio for a in scenario.arms],
            "reference": scenario.arms[0].name,
        }
    return {
        "replicates": n,
        "level": level,
        "deadline": rec.deadline.isoformat() if rec else None,
        "probabilities": probabilities,
        "milestones": milestones,
        "metrics": metrics,
        **arms,
    }


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
