"""Matplotlib figures. Each function takes data and returns a Figure; no pyplot global state."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from sim.exposure import HOURS_PER_DAY, OralOneCompartment, concentration, daily_auc
from sim.schedule import Schedule

__all__ = ["concentration_profiles"]

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
