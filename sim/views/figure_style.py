"""The figures' shared style: panel sizes, colours by role, axes of weeks or dates, fans.

Every figure of :mod:`sim.views.plots`, :mod:`sim.views.recruitment_plots` and
:mod:`sim.views.exposure_plots` (its population figure) is drawn with these, so that
they read as one set.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, Literal

import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.errors import DosesimError
from sim.trial.milestones import (
    interval_label,
    level_quantiles,
)

if TYPE_CHECKING:
    from sim.runner import RunResult
    from sim.scenario import RecruitmentSettings, Scenario


FloatArray = npt.NDArray[np.float64]

COLOURS = {
    "main": "C0",
    "window": "C2",
    "deadline": "C3",
    "target": "0.25",
    "observed": "black",
    "typical": "black",
    "spread": "0.85",
}
"""The colour of each role, shared by the planner's figures."""

PANEL_IN = (5.4, 3.5)  # width, height of one panel, inches
INNER_BAND = 0.5  # the fans' inner band: the middle half
WEEK_TICKS = (0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52)
Corner = Literal["best", "upper left", "upper right", "lower right"]


#: Fixed margins, inches: room for tick and axis labels, panel titles and the suptitle.
MARGIN_IN = {
    "left": 0.9,
    "right": 0.3,
    "bottom": 0.75,
    "top": 0.45,
    "line": 0.22,
    "wgap": 0.9,
    "hgap": 0.8,
}


def new_figure(
    nrows: int, ncols: int, title: str, wide: float = 1.0, **kwargs: Any
) -> tuple[Figure, Any]:
    """A figure of ``nrows`` x ``ncols`` gridded panels of one size, laid out by fixed margins.

    ``wide`` widens every panel (calendar axes need room). The margins are fixed
    in inches (:data:`MARGIN_IN`, the suptitle's lines counted) rather than
    computed by matplotlib's constrained layout, which measures every text
    again at each save: the report's figures render in about half the time
    (``benchmarks/README.md``).
    """
    m = MARGIN_IN
    panel_w, panel_h = PANEL_IN[0] * wide, PANEL_IN[1]
    top = m["top"] + m["line"] * (title.count("\n") + 1)
    width = m["left"] + ncols * panel_w + (ncols - 1) * m["wgap"] + m["right"]
    height = m["bottom"] + nrows * panel_h + (nrows - 1) * m["hgap"] + top
    fig = Figure(figsize=(width, height))
    grid = {
        "left": m["left"] / width,
        "right": 1 - m["right"] / width,
        "bottom": m["bottom"] / height,
        "top": 1 - top / height,
        "wspace": m["wgap"] / panel_w,
        "hspace": m["hgap"] / panel_h,
    }
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw=grid, **kwargs)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize="small")
    fig.suptitle(title, fontsize="medium", y=1 - 0.12 / height, va="top")
    return fig, axes


def set_title(ax: Axes, text: str) -> None:
    ax.set_title(text, loc="left", fontsize="small")


def to_dates(start: date, days: npt.ArrayLike) -> FloatArray:
    """Matplotlib date numbers of trial days (days from ``start``)."""
    return np.asarray(mdates.date2num(start) + np.asarray(days, dtype=float), dtype=float)


def date_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def week_axis(ax: Axes, end_week: float) -> None:
    ax.set_xlim(0, end_week)
    ax.set_xticks([w for w in WEEK_TICKS if w <= end_week] or [0, end_week])
    ax.set_xlabel("week from first dose")


def vline(ax: Axes, x: float, label: str, role: str = "deadline", style: str = "--") -> None:
    ax.axvline(x, color=COLOURS[role], linestyle=style, linewidth=1.2, label=label)


def fan(ax: Axes, x: FloatArray, values: FloatArray, label: str, level: float) -> None:
    """Median with the central ``level`` band and the 50 % band over the rows of ``values``.

    NaN (a row not observed at that x) is left out; an x with no value is not drawn.
    """
    seen = np.isfinite(values).any(axis=0)
    x, values = x[seen], values[:, seen]
    # Without NaN the NaN-aware quantiles are the plain ones, bit for bit, and these take
    # a tenth of the time on wide arrays (a year of concentrations: benchmarks/README.md)
    complete = not np.isnan(values).any()
    quantile = np.quantile if complete else np.nanquantile
    median = np.median if complete else np.nanmedian
    for band, alpha in ((level, 0.18), (INNER_BAND, 0.35)):
        lo, hi = quantile(values, level_quantiles(band), axis=0)
        name = interval_label(band)
        ax.fill_between(x, lo, hi, color=COLOURS["main"], alpha=alpha, lw=0, label=f"{name} band")
    ax.plot(x, median(values, axis=0), color=COLOURS["main"], linewidth=1.6, label=label)


def legend(ax: Axes, loc: Corner = "best") -> None:
    ax.legend(fontsize="x-small", loc=loc)


class MissingData(DosesimError):
    """A figure's input is legitimately absent (e.g. the run kept no patients).

    The report shows a note saying so in the figure's place.
    """


def kept_table(result: RunResult, table: str) -> pd.DataFrame:
    """A kept per-patient table, or :class:`MissingData` when the run kept none."""
    frame = result.kept.get(table)
    if frame is None or frame.empty:
        raise MissingData(
            f"the run has no kept {table!r} table: run with --keep-patients 1 or more "
            "(keep_patients in the API) to plot per-patient results"
        )
    return frame


def recruitment_of(scenario: Scenario) -> RecruitmentSettings:
    if scenario.recruitment is None:
        raise MissingData(f"{scenario.name}: the scenario has no [recruitment] table")
    return scenario.recruitment


# -- dose schedules ---------------------------------------------------------
