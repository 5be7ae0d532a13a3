r"""Recruitment milestones as a planner reads them, and the interval convention.

A planner asks "when will we have our target?". Replicates that never reach
the target by the enrolment deadline have no such day; pooling their last
enrolment with the others (as a plain "last patient in" does) gives dates that
are not that answer. So the milestones are summarised in three parts:

* :math:`P(\text{target reached by the enrolment deadline})`, with its Monte
  Carlo SE;
* the **time to target** over all replicates, a replicate that does not reach
  the target counting as "later than the enrolment deadline". Its quantile
  :math:`q` exists (is a day) only while :math:`q` is below the share that
  reached the target; above it, the quantile is "later than the deadline";
* last patient in and last patient last visit **among the replicates that
  reach the target**, and the number enrolled by the enrolment deadline as a
  distribution of its own.

Every interval is the central ``level`` interval of the replicates (the
``(1 - level)/2`` and ``(1 + level)/2`` quantiles, numpy's linear rule);
:data:`DEFAULT_LEVEL` is 90 %, and every command takes ``--interval``.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from sim.errors import DosesimError

if TYPE_CHECKING:
    from sim.scenario import RecruitmentSettings

__all__ = [
    "DEFAULT_LEVEL",
    "MILESTONE_METRICS",
    "censored_quantile",
    "check_level",
    "interval_label",
    "level_quantiles",
    "milestone_columns",
    "milestone_summary",
    "recruitment_milestones",
]

#: The default central interval: 90 % of replicates (eventPred's ``pilevel``).
DEFAULT_LEVEL = 0.90


def check_level(level: float) -> float:
    """``level`` as a fraction in (0, 1), or a clear error.

    Raises
    ------
    DosesimError
        Outside (0, 1).
    """
    if not (isinstance(level, int | float) and 0.0 < float(level) < 1.0):
        raise DosesimError(f"interval level {level!r}: must be a fraction in (0, 1), e.g. 0.9")
    return float(level)


def level_quantiles(level: float) -> tuple[float, float]:
    """The lower and upper quantiles, as fractions, of the central ``level`` interval.

    Rounded to 12 decimals, so that 0.9 gives exactly 0.05 and 0.95 (``(1 - 0.9) / 2``
    is 0.04999999999999999 in floating point, which would move a quantile between
    two tied neighbours).
    """
    level = check_level(level)
    return round((1.0 - level) / 2.0, 12), round((1.0 + level) / 2.0, 12)


def interval_label(level: float) -> str:
    """``0.9`` -> ``"90 %"``; ``0.975`` -> ``"97.5 %"``."""
    return f"{100.0 * check_level(level):g} %"


def censored_quantile(values: npt.ArrayLike, q: float) -> float:
    """The ``q`` quantile of ``values`` where ``inf`` means "later than anything observed".

    The linear rule of :func:`numpy.quantile` (position :math:`h = (n - 1) q`
    between the order statistics :math:`x_{\\lfloor h \\rfloor}` and
    :math:`x_{\\lceil h \\rceil}`); ``inf`` when the upper one is ``inf`` (the
    quantile is then later than the censoring day), NaN for no values.
    """
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0:
        return math.nan
    h = (x.size - 1) * q
    lo, hi = math.floor(h), math.ceil(h)
    if not math.isfinite(x[hi]):
        return math.inf
    return float(x[lo] + (h - lo) * (x[hi] - x[lo]))


def _day(start: date, day: float) -> dict[str, Any]:
    """A trial day as a JSON entry: the day, its date, or "later" for ``inf``."""
    if math.isinf(day) and day > 0:
        return {"day": None, "date": None, "later": True}
    if not math.isfinite(day):
        return {"day": None, "date": None, "later": False}
    return {
        "day": float(day),
        "date": (start + timedelta(days=math.floor(day))).isoformat(),
        "later": False,
    }


def _days_summary(days: npt.NDArray[np.float64], start: date, level: float) -> dict[str, Any]:
    low_q, high_q = level_quantiles(level)
    finite = days[np.isfinite(days)]
    if finite.size == 0:
        return {"n": 0, "median": None, "low": None, "high": None}
    lo, med, hi = np.quantile(finite, [low_q, 0.5, high_q])
    return {
        "n": int(finite.size),
        "median": _day(start, float(med)),
        "low": _day(start, float(lo)),
        "high": _day(start, float(hi)),
    }


def _probability(flags: pd.Series) -> dict[str, Any]:
    n = len(flags)
    p = float(flags.mean()) if n else math.nan
    return {"p": p, "mcse": math.sqrt(p * (1 - p) / n) if n else math.nan, "n": n}


def milestone_summary(
    table: pd.DataFrame,
    start_date: date,
    target: int,
    enrolment_deadline: date,
    deadline: date,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """Recruitment milestones over replicates, as a planner reads them.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per replicate with ``enrolled``, ``target_reached`` (0/1),
        ``last_patient_in_day``, ``last_patient_last_visit_day`` (trial days)
        and ``completed_by_deadline`` (0/1).
    start_date : datetime.date
        Trial day 0.
    target : int
        The enrolment target.
    enrolment_deadline, deadline : datetime.date
        The last day of enrolment, and the day the last visit should be done by.
    level : float
        The central interval, a fraction (default 0.9).

    Returns
    -------
    dict
        ``level``; ``target_reached`` and ``completed_by_deadline`` (``p``,
        ``mcse``, ``n``); ``time_to_target`` over all replicates (``median``,
        ``low``, ``high``, each ``{"day", "date", "later"}`` with ``later``
        true when the quantile is later than the enrolment deadline);
        ``last_patient_in`` and ``last_patient_last_visit`` over the replicates
        that reach the target (``n``, ``median``, ``low``, ``high``);
        ``enrolled`` by the enrolment deadline (``mean``, ``median``, ``low``,
        ``high``, ``p_target``).
    """
    level = check_level(level)
    low_q, high_q = level_quantiles(level)
    reached = table["target_reached"].astype(bool).to_numpy()
    lpi = table["last_patient_in_day"].to_numpy(dtype=float)
    lplv = table["last_patient_last_visit_day"].to_numpy(dtype=float)
    time_to_target = np.where(reached, lpi, math.inf)
    enrolled = table["enrolled"].to_numpy(dtype=float)
    if enrolled.size:  # counts: the interval's ends are counts that occurred
        e_lo, e_hi = np.quantile(enrolled, [low_q, high_q], method="inverted_cdf")
        e_med, e_mean = float(np.median(enrolled)), float(enrolled.mean())
    else:
        e_lo = e_med = e_hi = e_mean = math.nan
    return {
        "level": level,
        "replicates": len(table),
        "target": int(target),
        "enrolment_deadline": enrolment_deadline.isoformat(),
        "deadline": deadline.isoformat(),
        "target_reached": _probability(table["target_reached"].astype(float)),
        "completed_by_deadline": _probability(table["completed_by_deadline"].astype(float)),
        "time_to_target": {
            key: _day(start_date, censored_quantile(time_to_target, q))
            for key, q in (("low", low_q), ("median", 0.5), ("high", high_q))
        },
        "last_patient_in": _days_summary(lpi[reached], start_date, level),
        "last_patient_last_visit": _days_summary(lplv[reached], start_date, level),
        "enrolled": {
            "mean": e_mean,
            "median": float(e_med),
            "low": float(e_lo),
            "high": float(e_hi),
            "p_target": float(np.mean(enrolled >= target)) if enrolled.size else math.nan,
        },
    }


def recruitment_milestones(
    table: pd.DataFrame, rec: RecruitmentSettings, level: float = DEFAULT_LEVEL
) -> dict[str, Any]:
    """:func:`milestone_summary` with the calendar, target and deadlines of ``[recruitment]``."""
    return milestone_summary(
        table,
        rec.start_date,
        rec.target_enrolled,
        rec.enrolment_deadline or rec.deadline,
        rec.deadline,
        level,
    )


#: Per-replicate milestone metrics that compare well (see :func:`milestone_columns`).
MILESTONE_METRICS = (
    "target_day_capped",
    "last_patient_in_day_if_reached",
    "last_patient_last_visit_day_if_reached",
)


def milestone_columns(table: pd.DataFrame, enrolment_deadline_day: float) -> pd.DataFrame:
    """Per-replicate milestones that can be averaged and paired without misleading.

    ``target_day_capped``: the trial day the target is reached, or the
    enrolment deadline's day for a replicate that does not reach it; its mean
    is the restricted mean time to target. ``last_patient_in_day_if_reached``
    and ``last_patient_last_visit_day_if_reached``: those days for a replicate
    that reaches the target, NaN otherwise (a paired comparison then uses the
    replicates where both scenarios reach it). Days from the start date.

    Parameters
    ----------
    table : pandas.DataFrame
        Replicate rows with ``target_reached``, ``last_patient_in_day`` and
        ``last_patient_last_visit_day``.
    enrolment_deadline_day : float
        The trial day enrolment closes.
    """
    reached = table["target_reached"].astype(bool).to_numpy()
    lpi = table["last_patient_in_day"].to_numpy(dtype=float)
    lplv = table["last_patient_last_visit_day"].to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "target_day_capped": np.where(reached, lpi, enrolment_deadline_day),
            "last_patient_in_day_if_reached": np.where(reached, lpi, np.nan),
            "last_patient_last_visit_day_if_reached": np.where(reached, lplv, np.nan),
        },
        index=table.index,
    )
