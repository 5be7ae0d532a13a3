"""The figure of ``dosesim power``: power and precision against the sample size."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.views.figure_style import COLOURS, legend, new_figure, set_title

__all__ = ["power_figure"]


def power_figure(table: pd.DataFrame, title: str, target: float | None = None) -> Figure:
    """Power (with its 95 % Monte Carlo band) and the CI half-width (median, 5-95 %)
    against the total sample size, with the evaluable patients and P(complete by the
    deadline) beside power.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`sim.power.power_table`'s table.
    title : str
        The figure's title (the scenario).
    target : float, optional
        A target power, drawn as a line.
    """
    n = table["n"].to_numpy(dtype=float)
    fig, axes = new_figure(1, 2, title)
    left, right = axes[0]
    p, se = table["power"].to_numpy(dtype=float), table["power_mcse"].to_numpy(dtype=float)
    left.fill_between(n, p - 1.96 * se, p + 1.96 * se, color=COLOURS["main"], alpha=0.25, lw=0,
                      label="95 % Monte Carlo band")  # fmt: skip
    left.plot(n, p, "o-", color=COLOURS["main"], label="power")
    q = table["p_complete_by_deadline"].to_numpy(dtype=float)
    left.plot(n, q, "s--", color="C1", label="P(complete by the deadline)")
    if target is not None:
        left.axhline(target, color="grey", linestyle=":", label=f"target {target:g}")
    left.set_ylim(0, 1)
    left.set_xlabel("total sample size (target enrolled)")
    left.set_ylabel("probability")
    set_title(left, "power of the primary analysis")
    legend(left, "lower right")
    lo, mid, hi = (
        table[f"ci_half_width_{k}"].to_numpy(dtype=float) for k in ("p5", "median", "p95")
    )
    right.fill_between(n, lo, hi, color=COLOURS["main"], alpha=0.25, lw=0, label="5-95 %")
    right.plot(n, mid, "o-", color=COLOURS["main"], label="median")
    right.set_xlabel("total sample size (target enrolled)")
    right.set_ylabel("CI half-width, FVC % predicted")
    evaluable = table["evaluable_mean"].to_numpy(dtype=float)
    for x, y, e in zip(n, mid, evaluable, strict=True):
        if np.isfinite(y):
            right.annotate(f"{e:.0f}", (x, y), textcoords="offset points", xytext=(0, 6),
                           ha="center", fontsize="x-small")  # fmt: skip
    set_title(right, "precision (labels: mean evaluable patients)")
    legend(right, "upper right")
    return fig
