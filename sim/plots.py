"""Matplotlib figures. Each function takes data and returns a Figure; no pyplot global state."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from sim.exposure import HOURS_PER_DAY, OralOneCompartment, concentration, daily_auc
from sim.schedule import Schedule

if TYPE_CHECKING:
    from sim.compare import Comparison

__all__ = ["comparison_forest", "concentration_profiles"]

_STYLE = {"linewidth": 0.9}


def concentration_profiles(
    curves: dict[str, tuple[OralOneCompartment, Schedule, str]],
    title: str,
    zoom_days: tuple[float, float] = (26.0, 31.0),
) -> Figure:
    """Concentration-time curves of each drug: the whole course, and a few days close up.

    Parameters
    ----------
    curves : dict
        ``{label: (model, schedule, concentration label)}``, one row per drug.
    title : str
        Figure title.
    zoom_days : (float, float)
        Days shown in the close-up column (default around the day-28 dose changes).
    """
    fig = Figure(figsize=(11, 3.2 * len(curves)), layout="constrained")
    axes = fig.subplots(len(curves), 2, squeeze=False, width_ratios=(2.2, 1))
    for row, (label, (model, schedule, unit)) in enumerate(curves.items()):
        per_day = max(48, 24 * schedule.doses_per_day)
        end = max(schedule.end_day, 1)
        t_h = np.linspace(0, end * HOURS_PER_DAY, end * per_day + 1)
        c = concentration(model, schedule, t_h)
        full, zoom = axes[row]
        full.plot(
            t_h / HOURS_PER_DAY, c, color="C0", alpha=0.35, linewidth=0.5, label="concentration"
        )
        daily_mean = daily_auc(model, schedule) / HOURS_PER_DAY
        full.step(
            np.arange(end + 1),
            np.append(daily_mean, daily_mean[-1:]),
            where="post",
            color="C1",
            linewidth=1.4,
            label="daily average",
        )
        if row == 0:
            full.legend(loc="upper right", fontsize="small")
        full.set_xlabel("day from first dose")
        full.set_ylabel(unit)
        full.set_title(label, loc="left")
        full.set_xlim(0, end)
        lo, hi = zoom_days
        tz = np.linspace(lo * HOURS_PER_DAY, hi * HOURS_PER_DAY, 2000)
        zoom.plot(tz / HOURS_PER_DAY, concentration(model, schedule, tz), **_STYLE)
        for d in schedule.change_days:
            if lo <= d <= hi:
                zoom.axvline(d, color="0.6", linestyle=":", linewidth=0.8)
        zoom.set_xlabel("day (close-up; dotted: dose change)")
        zoom.set_xlim(lo, hi)
        for ax in (full, zoom):
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def comparison_forest(
    comparison: Comparison, metrics: Sequence[str] | None = None, columns: int = 3
) -> Figure:
    """A forest plot of each scenario's paired difference to the first, one panel per metric.

    Each panel has one row per scenario after the first: the mean paired
    difference (dot) with its paired 95 % interval (thick line) and, for
    reference, the unpaired 95 % interval (thin grey line); a dashed line marks zero.

    Parameters
    ----------
    comparison : Comparison
        From :func:`sim.compare.compare`.
    metrics : sequence of str, optional
        The metrics to show, in order (default: all of ``comparison.metrics``).
    columns : int
        Panels per row of the grid.
    """
    chosen = list(metrics) if metrics is not None else list(comparison.metrics)
    others = comparison.scenarios[1:]
    ncols = max(1, min(columns, len(chosen)))
    nrows = max(1, math.ceil(len(chosen) / ncols))
    height = max(1.6, 0.9 + 0.32 * len(others))
    fig = Figure(figsize=(4.2 * ncols, height * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    table = comparison.table
    y = np.arange(len(others))[::-1]
    for i, ax in enumerate(axes.flat):
        if i >= len(chosen):
            ax.set_axis_off()
            continue
        metric = chosen[i]
        rows = table[table["metric"] == metric].set_index("scenario").reindex(others)
        ax.hlines(y, rows["unpaired_low_95"], rows["unpaired_high_95"], color="0.7", linewidth=1.0)
        ax.hlines(y, rows["paired_low_95"], rows["paired_high_95"], color="C0", linewidth=2.2)
        ax.plot(rows["difference"], y, "o", color="C0", markersize=4)
        ax.axvline(0.0, color="0.3", linestyle="--", linewidth=0.8)
        ax.set_yticks(y, others if i % ncols == 0 else [""] * len(others))
        ax.set_ylim(-0.7, len(others) - 0.3)
        ax.set_title(metric, loc="left", fontsize="small")
        ax.tick_params(labelsize="small")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"difference to {comparison.reference} ({comparison.replicates} replicates, seed "
        f"{comparison.seed}); blue: paired 95 %, grey: unpaired 95 %",
        fontsize="medium",
    )
    return fig
