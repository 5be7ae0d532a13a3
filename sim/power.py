"""Power and precision of the primary analysis against the sample size.

For each total sample size ``n`` the whole trial is simulated (recruitment, dosing,
adverse events, exits, the disease model) with ``recruitment.target_enrolled = n``, and
the primary analysis of every replicate (:func:`sim.disease.analyse`) is summarised:
power (the share of replicates whose analysis is significant; a replicate that cannot
be tested counts as not significant), its Monte Carlo SE, the distribution of the CI
half-width, the evaluable patients and P(the trial completes by the deadline).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import DosesimError
from sim.scenario import Scenario

__all__ = ["POWER_COLUMNS", "power_table", "smallest_n"]

POWER_COLUMNS = (
    "n",
    "power",
    "power_mcse",
    "ci_half_width_median",
    "ci_half_width_p5",
    "ci_half_width_p95",
    "evaluable_mean",
    "p_complete_by_deadline",
    "p_complete_mcse",
    "replicates",
)
"""The columns of ``power.csv``, in order."""


def with_sample_size(scenario: Scenario, n: int, alpha: float | None = None) -> Scenario:
    """The scenario with ``recruitment.target_enrolled = n`` (and the analysis' ``alpha``),
    its primary endpoint alone (no ``[disease.treg]``)."""
    rec = scenario.recruitment
    disease = scenario.disease
    if rec is None or disease is None:
        raise DosesimError(
            f"{scenario.source or scenario.name}: power needs a [recruitment] and a [disease]"
            " table (the primary analysis is the disease model's)"
        )
    update: dict[str, Any] = {"recruitment": rec.model_copy(update={"target_enrolled": int(n)})}
    # the primary endpoint alone: a second endpoint (Treg) draws from its own streams, so
    # leaving it out changes no FVC number and saves its time
    changes: dict[str, Any] = {"treg": None}
    if alpha is not None:
        changes["analysis"] = disease.analysis.model_copy(update={"alpha": float(alpha)})
    update["disease"] = disease.model_copy(update=changes)
    made = scenario.model_copy(update=update)
    return made.with_provenance(scenario.files, scenario.overrides)


def power_table(
    scenario: Scenario,
    ns: Sequence[int],
    replicates: int,
    seed: int,
    alpha: float | None = None,
    run: Callable[..., Any] | None = None,
    **execution: Any,
) -> pd.DataFrame:
    """Power and precision for each sample size (:data:`POWER_COLUMNS`).

    Parameters
    ----------
    scenario : Scenario
        With ``[recruitment]`` and ``[disease]``.
    ns : sequence of int
        Total sample sizes (each >= 2).
    replicates : int
        Replicate trials per sample size.
    seed : int
        The seed; every sample size uses it (common random numbers across sizes).
    alpha : float, optional
        Overrides ``[disease.analysis] alpha``.
    run : callable, optional
        :func:`sim.runner.run` (default); ``execution`` goes to it (``workers``, ``scheduler``,
        ``progress``).
    """
    if run is None:
        from sim.runner import run as run_trials

        run = run_trials
    rows = []
    for n in ns:
        if n < 2:
            raise DosesimError(f"--n {n}: a sample size must be at least 2")
        result = run(with_sample_size(scenario, n, alpha), replicates, seed, keep_patients=0,
                     **execution)  # fmt: skip
        rows.append(_row(n, result.replicates))
    return pd.DataFrame(rows, columns=list(POWER_COLUMNS))


def _row(n: int, table: pd.DataFrame) -> dict[str, float]:
    r = len(table)
    significant = table["fvc_significant"].fillna(0).to_numpy(dtype=float)
    p = float(significant.mean())
    half = ((table["fvc_ci_high"] - table["fvc_ci_low"]) / 2).to_numpy(dtype=float)
    half = half[np.isfinite(half)]
    complete = table["completed_by_deadline"].to_numpy(dtype=float)
    q = float(complete.mean())
    h5, h50, h95 = np.percentile(half, [5, 50, 95]) if half.size else (math.nan,) * 3
    return {
        "n": n,
        "power": p,
        "power_mcse": math.sqrt(p * (1 - p) / r),
        "ci_half_width_median": float(h50),
        "ci_half_width_p5": float(h5),
        "ci_half_width_p95": float(h95),
        "evaluable_mean": float(table["fvc_evaluable"].mean()),
        "p_complete_by_deadline": q,
        "p_complete_mcse": math.sqrt(q * (1 - q) / r),
        "replicates": r,
    }


def smallest_n(table: pd.DataFrame, target: float) -> int | None:
    """The smallest sample size of the table whose power reaches ``target`` (None: none)."""
    reached = table[table["power"] >= target]
    return None if reached.empty else int(reached["n"].min())
