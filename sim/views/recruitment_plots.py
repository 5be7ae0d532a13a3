"""Recruitment figures: the enrolment fan with the observed enrolment, and the milestone dates.

Trial time is in days from ``recruitment.start_date``; the axes show calendar dates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sim.trial.milestones import (
    DEFAULT_LEVEL,
    censored_quantile,
    interval_label,
    level_quantiles,
)
from sim.views.figure_style import (
    COLOURS,
    FloatArray,
    date_axis,
    fan,
    kept_table,
    legend,
    new_figure,
    recruitment_of,
    set_title,
    to_dates,
    vline,
)

if TYPE_CHECKING:
    from sim.runner import RunResult
    from sim.scenario import Scenario


def enrolment_counts(
    result: RunResult, scenario: Scenario, *later_days: float
) -> tuple[FloatArray, FloatArray]:
    """Each kept replicate's cumulative enrolment on every trial day.

    Parameters
    ----------
    result : RunResult
        A run with per-patient tables kept (``enrol_day`` of each patient).
    scenario : Scenario
        The run's scenario: the grid runs from day 0 to the deadline (or the last
        enrolment, or any of ``later_days``, whichever is last).
    *later_days : float
        Further days the grid must reach (e.g. the last observed enrolment).

    Returns
    -------
    grid : ndarray
        Trial days ``0, 1, ..``.
    counts : ndarray
        One row per kept replicate (in replicate order): patients enrolled by each
        day. A kept replicate that enrolled no one is a row of zeros.
    """
    rec = recruitment_of(scenario)
    patients = kept_table(result, "patients")
    table = result.replicates
    kept = set(patients["replicate"])
    # kept replicates that enrolled no one have no patient rows but count as 0
    kept |= set(table.loc[(table["enrolled"] == 0) & (table["replicate"] < max(kept)), "replicate"])
    by_rep = patients.groupby("replicate")["enrol_day"]
    last = max(rec.deadline_day, float(patients["enrol_day"].max()), *later_days)
    grid = np.arange(0.0, math.ceil(last) + 1.0)
    counts = np.zeros((len(kept), grid.size))
    for i, r in enumerate(sorted(kept)):
        if r in by_rep.groups:
            days = np.sort(by_rep.get_group(r).to_numpy(dtype=float))
            counts[i] = np.searchsorted(days, grid, side="right")
    return grid, counts


def enrolment_fan(
    result: RunResult,
    scenario: Scenario,
    observed: Iterable[date | str] | None = None,
    level: float = DEFAULT_LEVEL,
) -> Figure:
    """Cumulative enrolment against calendar date: median, 50 % and ``level`` bands over replicates.

    Each kept replicate's enrolment (from each patient's ``enrol_day``) is counted
    on every trial day; the fan is the median and the central 50 % and
    ``level`` (default 90 %) bands of those counts. The target
    (``recruitment.target_enrolled``) is a horizontal line, the deadline (and
    the enrolment deadline, if set) vertical lines, and ``observed``
    enrolment, when given, a black step line.

    Parameters
    ----------
    result : RunResult
        A run with per-patient tables kept (``keep_patients >= 1``; the more
        replicates kept, the smoother the fan).
    scenario : Scenario
        The run's scenario, for the start date, target and deadlines.
    observed : iterable of date or ISO date str, optional
        The date each patient enrolled so far (e.g. the ``enrolled_date`` column
        of the observed-enrolment CSV).
    level : float
        The outer band (default 0.9).
    """
    rec = recruitment_of(scenario)
    seen = [] if observed is None else list(observed)
    obs_days = np.array([])
    if seen:
        stamps = pd.to_datetime(pd.Series(seen).astype(str))
        obs_days = np.sort((stamps - pd.Timestamp(rec.start_date)).dt.days.to_numpy(dtype=float))
    grid, counts = enrolment_counts(result, scenario, *obs_days[-1:])
    fig, axes = new_figure(
        1,
        1,
        f"{scenario.label}: cumulative enrolment ({len(counts)} kept replicates; bands "
        f"{interval_label(level)} and 50 %)",
        wide=1.6,
    )
    ax = axes[0, 0]
    fan(ax, to_dates(rec.start_date, grid), counts, "median", level)
    ax.axhline(
        rec.target_enrolled,
        color=COLOURS["target"],
        linestyle=":",
        linewidth=1.2,
        label=f"target {rec.target_enrolled}",
    )
    if rec.enrolment_deadline is not None:
        vline(ax, mdates.date2num(rec.enrolment_deadline), "enrolment deadline", style=":")
    vline(ax, mdates.date2num(rec.deadline), f"deadline {rec.deadline}")
    if obs_days.size:
        ax.step(
            to_dates(rec.start_date, np.concatenate(([0.0], obs_days))),
            np.arange(obs_days.size + 1),
            where="post",
            color=COLOURS["observed"],
            linewidth=1.6,
            label=f"observed ({obs_days.size})",
        )
    date_axis(ax)
    ax.set_ylim(0, rec.target_enrolled * 1.08)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("patients enrolled")
    legend(ax, "upper left")
    return fig


def milestone_dates(
    result: RunResult | pd.DataFrame, scenario: Scenario, level: float = DEFAULT_LEVEL
) -> Figure:
    """When the target is reached and the last visit done, with the misses shown apart.

    Top: the day the target is reached, over the replicates that reach it by
    the enrolment deadline (histogram, calendar dates), with the quantiles of
    the time to target over **all** replicates (median and the central
    ``level`` interval; a quantile later than the enrolment deadline is said
    so); beside it, a bar of the replicates that never reach the target. Bottom:
    the last patient's last visit among the replicates that reach the target,
    with its median and interval and the deadline. The title gives the
    probabilities of reaching the target and of completing by the deadline
    with their Monte Carlo SE.

    Parameters
    ----------
    result : RunResult or DataFrame
        A run (per-patient tables are not needed) or a table of replicates with
        ``target_reached``, ``last_patient_in_day`` and ``last_patient_last_visit_day``
        (a forecast's ``replicates``).
    scenario : Scenario
        The scenario, for the start date and deadlines.
    level : float
        The central interval (default 0.9).
    """
    rec = recruitment_of(scenario)
    table = result if isinstance(result, pd.DataFrame) else result.replicates
    n = len(table)
    reached = table["target_reached"].astype(bool).to_numpy()
    lpi = table["last_patient_in_day"].to_numpy(dtype=float)
    lplv = table["last_patient_last_visit_day"].to_numpy(dtype=float)
    end = rec.enrolment_deadline or rec.deadline
    label = interval_label(level)

    def share(flags: npt.NDArray[np.bool_]) -> str:
        p = float(flags.mean()) if n else math.nan
        mcse = math.sqrt(p * (1 - p) / n) if n else math.nan
        return f"{100 * p:.0f} % (MCSE {100 * mcse:.1f} %)"

    completed = table["completed_by_deadline"].astype(bool).to_numpy()
    fig, axes = new_figure(
        2,
        2,
        f"{scenario.label}: {n} replicates; target of {rec.target_enrolled} reached by {end} "
        f"in {share(reached)}, last visit by {rec.deadline} in {share(completed)}",
        wide=0.9,
        width_ratios=(7, 1),
    )
    low_q, high_q = level_quantiles(level)
    time_to_target = np.where(reached, lpi, math.inf)
    unconditional = {
        "median": censored_quantile(time_to_target, 0.5),
        f"{100 * low_q:g} %": censored_quantile(time_to_target, low_q),
        f"{100 * high_q:g} %": censored_quantile(time_to_target, high_q),
    }
    rows = (
        (
            lpi[reached],
            f"day the target is reached ({int(reached.sum())} replicates)",
            "not reached",
        ),
        (lplv[reached], "last visit, replicates reaching the target", "target not reached"),
    )
    for row, (days, title, missed) in enumerate(rows):
        ax, bar = axes[row]
        days = days[np.isfinite(days)]
        if days.size:
            x = to_dates(rec.start_date, days)
            ax.hist(x, bins="auto", color=COLOURS["main"], alpha=0.75, edgecolor="white")
        if row == 0:
            for name, day in unconditional.items():
                if math.isfinite(day):
                    style = "-" if name == "median" else "-."
                    text = mdates.num2date(float(to_dates(rec.start_date, [day])[0])).date()
                    x_day = float(to_dates(rec.start_date, [day])[0])
                    vline(ax, x_day, f"{name} of all replicates {text}", "target", style)
                elif not math.isnan(day):
                    ax.plot([], [], " ", label=f"{name} of all replicates: later than {end}")
            if rec.enrolment_deadline is not None:
                vline(ax, mdates.date2num(rec.enrolment_deadline), "enrolment deadline", style=":")
        elif days.size:
            lo, med, hi = np.quantile(to_dates(rec.start_date, days), [low_q, 0.5, high_q])
            vline(ax, float(med), f"median {mdates.num2date(med).date()}", "target")
            ax.axvspan(lo, hi, color=COLOURS["main"], alpha=0.08, label=f"{label} interval")
        vline(ax, mdates.date2num(rec.deadline), f"deadline {rec.deadline}")
        ax.set_ylabel("replicates")
        set_title(ax, title)
        legend(ax, "upper left")
        date_axis(ax)
        misses = int(n - reached.sum())
        bar.bar([0], [misses], color="0.6", width=0.6)
        bar.set_xticks([0], [f"{missed}\nby {end}"], fontsize="x-small")
        bar.set_xlim(-0.6, 0.6)
        bar.set_ylim(0, max(1, misses) * 1.25)
        text = f"{misses}\n({100 * misses / n:.0f} %)" if n else "0"
        bar.text(0, misses, text, ha="center", va="bottom", fontsize="x-small")
        set_title(bar, "never reached")
    return fig
