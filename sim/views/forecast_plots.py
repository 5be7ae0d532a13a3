"""The forecast's figures: enrolment seen then predicted, each site's rate before and after
the data, and the chance of finishing against the sites added.

Each function takes what a forecast folder holds (the enrolment table, ``summary.json``'s
entries) and the scenario, and returns a Figure. Trial time is in days from
``recruitment.start_date``, shown as dates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sim.trial.milestones import DEFAULT_LEVEL, check_level, interval_label, level_quantiles
from sim.views.figure_style import (
    COLOURS,
    INNER_BAND,
    FloatArray,
    MissingData,
    date_axis,
    legend,
    new_figure,
    recruitment_of,
    set_title,
    to_dates,
    vline,
)

if TYPE_CHECKING:
    from sim.scenario import Scenario

__all__ = ["forecast_enrolment", "predicted_counts", "site_rates", "sites_curve"]


def predicted_counts(
    enrolments: pd.DataFrame, replicates: Sequence[int], grid: FloatArray
) -> FloatArray:
    """Each replicate's cumulative enrolment (observed and predicted) on the trial days ``grid``.

    Parameters
    ----------
    enrolments : DataFrame
        ``replicate``, ``trial_day`` of every enrolment (a forecast's ``enrolments``).
    replicates : sequence of int
        The replicates, one row each (a replicate with no enrolment is a row of zeros).
    grid : ndarray
        Trial days.
    """
    by_rep = {
        r: np.sort(g.to_numpy(dtype=float)) for r, g in enrolments.groupby("replicate")["trial_day"]
    }
    counts = np.zeros((len(replicates), grid.size))
    for i, r in enumerate(replicates):
        days = by_rep.get(r)
        if days is not None:
            counts[i] = np.searchsorted(days, grid, side="right")
    return counts


def forecast_enrolment(
    enrolments: pd.DataFrame,
    summary: Mapping[str, Any],
    scenario: Scenario,
    level: float = DEFAULT_LEVEL,
) -> Figure:
    """Enrolment seen up to the cut-off, then the predicted median with 50 % and ``level`` bands.

    The observed cumulative enrolment (black steps) runs from the start date to the
    as-of date; from there each replicate's enrolment is counted on every day to the
    deadline, and the median and the central 50 % and ``level`` (default 90 %) of
    replicates are drawn as a fan. The target, the as-of date and the deadlines are
    lines.

    Parameters
    ----------
    enrolments : DataFrame
        ``replicate, number, trial_day`` of every replicate's enrolments (the forecast's
        ``enrolments``, ``forecast_enrolment.csv``); those on or before the as-of day are
        the observed ones, the same in every replicate.
    summary : mapping
        The forecast's summary (``as_of_day``, ``replicates``).
    scenario : Scenario
        For the start date, target and deadlines.
    level : float
        The outer band (default 0.9).
    """
    check_level(level)
    rec = recruitment_of(scenario)
    as_of = float(summary["as_of_day"])
    n = int(summary["replicates"])
    first = enrolments[enrolments["replicate"] == enrolments["replicate"].min()]
    seen = np.sort(first.loc[first["trial_day"] <= as_of, "trial_day"].to_numpy(dtype=float))
    end = max(rec.deadline_day, as_of + 1)
    grid = np.arange(math.floor(as_of), math.ceil(end) + 1.0)
    counts = predicted_counts(enrolments, range(n), grid)
    fig, axes = new_figure(
        1,
        1,
        f"{scenario.label}: enrolment seen to {summary.get('as_of', '')} and predicted "
        f"({n} replicates; bands {interval_label(level)} and 50 %)",
        wide=1.6,
    )
    ax = axes[0, 0]
    x = to_dates(rec.start_date, grid)
    for band, alpha in ((level, 0.18), (INNER_BAND, 0.35)):
        lo, hi = np.quantile(counts, level_quantiles(band), axis=0)
        ax.fill_between(
            x, lo, hi, step="post", color=COLOURS["main"], alpha=alpha, lw=0,
            label=f"{interval_label(band)} of replicates",
        )  # fmt: skip
    ax.step(
        x,
        np.median(counts, axis=0),
        where="post",
        color=COLOURS["main"],
        linewidth=1.6,
        label="predicted median",
    )
    ax.step(
        to_dates(rec.start_date, np.concatenate(([0.0], seen, [as_of]))),
        np.concatenate((np.arange(seen.size + 1), [seen.size])),
        where="post",
        color=COLOURS["observed"],
        linewidth=1.8,
        label=f"observed ({seen.size})",
    )
    ax.axhline(
        rec.target_enrolled,
        color=COLOURS["target"],
        linestyle=":",
        linewidth=1.2,
        label=f"target {rec.target_enrolled}",
    )
    vline(ax, float(to_dates(rec.start_date, [as_of])[0]), f"as of {summary.get('as_of', '')}",
          "observed", ":")  # fmt: skip
    if rec.enrolment_deadline is not None:
        vline(ax, mdates.date2num(rec.enrolment_deadline), "enrolment deadline", style="-.")
    vline(ax, mdates.date2num(rec.deadline), f"deadline {rec.deadline}")
    date_axis(ax)
    ax.set_ylim(0, rec.target_enrolled * 1.08)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("patients enrolled")
    legend(ax, "upper left")
    return fig


def site_rates(sites: Sequence[Mapping[str, Any]], level: float = DEFAULT_LEVEL) -> Figure:
    """Each site's screening rate before the data (prior) and after (posterior).

    People screened per month: the mean (dot) and the central ``level`` interval
    (bar) of the prior (grey) and of the posterior (blue), one row per site; the
    label gives the count the posterior is based on.

    Parameters
    ----------
    sites : sequence of mapping
        The forecast summary's ``sites`` entries (``name``, ``count``, ``counts``,
        ``updated``, ``prior`` and ``posterior`` with ``mean_per_month``,
        ``low_per_month``, ``high_per_month``).
    level : float
        The intervals' level, for the title.
    """
    if not sites:
        raise MissingData("the scenario has no sites")
    fig, axes = new_figure(
        1,
        1,
        f"screening rate per site: prior and posterior, mean and {interval_label(level)} interval",
        wide=1.3,
    )
    ax = axes[0, 0]
    for row, site in enumerate(sites):
        y = len(sites) - 1 - row
        for key, offset, colour in (("prior", 0.15, "0.55"), ("posterior", -0.15, COLOURS["main"])):
            belief = site[key]
            mean, lo, hi = (
                belief[k] for k in ("mean_per_month", "low_per_month", "high_per_month")
            )
            ax.plot([lo, hi], [y + offset] * 2, color=colour, linewidth=3, solid_capstyle="butt",
                    label=key if row == 0 else None)  # fmt: skip
            ax.plot([mean], [y + offset], "o", color=colour, markersize=5)
    for row, site in enumerate(sites):
        data = f"{site['count']} {site['counts']}" if site.get("updated") else "not yet open"
        ax.text(0.01, len(sites) - 1 - row + 0.32, f"{site['name']} ({data})",
                transform=ax.get_yaxis_transform(), fontsize="small", va="bottom")  # fmt: skip
    ax.set_yticks([])
    ax.set_ylim(-0.5, len(sites) - 0.5 + 0.25)
    ax.set_xlim(left=0)
    ax.set_xlabel("people screened per month")
    legend(ax, "upper right")
    return fig


def sites_curve(
    curve: Sequence[Mapping[str, Any]],
    aim: float,
    needed: int | None = None,
    delay_days: float | None = None,
) -> Figure:
    """P(completing by the deadline) against the number of sites added (like the prior).

    Each point is the share of the search's replicates completing, with +/- 2 Monte
    Carlo SE; the aim (``aim``, 0.8) is a line, the sites needed a marker.

    Parameters
    ----------
    curve : sequence of mapping
        ``extra_sites``, ``probability``, ``mcse``, ``replicates`` (the summary's
        ``sites_curve``).
    aim : float
        The probability the search aims for.
    needed : int, optional
        The fewest added sites reaching it.
    delay_days : float, optional
        Days after the as-of date an added site opens (``recruitment.new_site_delay_days``),
        for the axis label.
    """
    if not curve:
        raise MissingData("the forecast searched no added sites")
    k = np.array([c["extra_sites"] for c in curve], dtype=float)
    p = np.array([c["probability"] for c in curve], dtype=float)
    se = np.array([c["mcse"] for c in curve], dtype=float)
    n = int(curve[0]["replicates"])
    fig, axes = new_figure(
        1, 1, f"P(completing by the deadline) against sites added ({n} replicates each)"
    )
    ax = axes[0, 0]
    ax.errorbar(k, p, yerr=2 * se, fmt="o-", color=COLOURS["main"], capsize=3,
                label="probability, +/- 2 MCSE")  # fmt: skip
    ax.axhline(aim, color=COLOURS["target"], linestyle=":", label=f"aim {aim:.0%}")
    if needed is not None and needed in k:
        ax.plot([needed], [p[list(k).index(needed)]], "s", color=COLOURS["deadline"],
                markersize=9, fillstyle="none", label=f"sites needed: {needed}")  # fmt: skip
    ax.set_xticks(k)
    opening = "" if delay_days is None else f", opening {delay_days:g} days after the as-of date"
    ax.set_xlabel(f"sites added (like the prior{opening})")
    ax.set_ylabel("P(target reached and last visit by the deadline)")
    ax.set_ylim(0, 1.02)
    set_title(ax, "the chance of finishing on time")
    legend(ax, "lower right")
    return fig
