"""Exposure figures: concentration-time curves of the typical patient or of a population.

``dosesim exposure --plot`` draws :func:`concentration_profiles` (the typical
patient of a weight) or, with ``--patients``, :func:`population_profiles` (the
spread over patients of that weight, and their MPA AUC0-12 against the target
window). Time is in hours inside the PK model and in days from the first dose on
the axes; concentrations are in mg/L, AUC in mg*h/L.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.exposure import HOURS_PER_DAY, OralOneCompartment, concentration, daily_auc
from sim.exposure_batch import concentration_by_patient, cumulative_auc_by_patient
from sim.schedule import Schedule
from sim.trial.milestones import DEFAULT_LEVEL, interval_label, level_quantiles
from sim.views.figure_style import COLOURS, fan, legend, new_figure, set_title, vline

__all__ = [
    "BAND_PATIENTS",
    "auc_window_histogram",
    "concentration_profiles",
    "population_profiles",
]

FloatArray = npt.NDArray[np.float64]

BAND_PATIENTS = 500
"""The patients a population figure draws concentration bands over (the first of them):
enough for the 5th and 95th percentiles (25 patients beyond each), and a year of
concentrations every 30 min for 500 patients takes under a second."""

_STYLE = {"linewidth": 0.9}
_TYPICAL = {"color": COLOURS["typical"], "linewidth": 0.8}


def course_hours(schedule: Schedule) -> FloatArray:
    """The times a whole course is drawn at, h from the first dose, up to the end of the
    schedule: every 30 min, or 24 times a dosing interval with more than two doses a day."""
    per_day = max(48, 24 * schedule.doses_per_day)
    end = max(schedule.end_day, 1)
    return np.linspace(0, end * HOURS_PER_DAY, end * per_day + 1)


def _dose_changes(ax: Axes, schedule: Schedule, lo: float, hi: float) -> None:
    """Dotted lines at the dose changes between days ``lo`` and ``hi``."""
    for d in schedule.change_days:
        if lo <= d <= hi:
            ax.axvline(d, color="0.6", linestyle=":", linewidth=0.8)


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
        end = max(schedule.end_day, 1)
        t_h = course_hours(schedule)
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
        _dose_changes(zoom, schedule, lo, hi)
        zoom.set_xlabel("day (close-up; dotted: dose change)")
        zoom.set_xlim(lo, hi)
        for ax in (full, zoom):
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def auc_window_histogram(ax: Axes, auc: FloatArray, low: float, high: float) -> None:
    """A histogram of AUC values (mg*h/L) against a target window ``[low, high]``.

    The window is shaded, its legend entry gives the share of values below, within
    and above it; a dashed line marks the median.
    """
    below, above = float(np.mean(auc < low)), float(np.mean(auc > high))
    ax.axvspan(
        low,
        high,
        color=COLOURS["window"],
        alpha=0.18,
        label=f"window {low:g}-{high:g}: {1 - below - above:.0%} within "
        f"({below:.0%} below, {above:.0%} above)",
    )
    ax.hist(auc, bins="auto", color=COLOURS["main"], alpha=0.75, edgecolor="white")
    vline(ax, float(np.median(auc)), f"median {np.median(auc):.1f} mg*h/L", "main")
    ax.set_xlim(left=0)
    ax.set_xlabel("MPA AUC0-12, mg*h/L")
    ax.set_ylabel("patients")
    legend(ax, "upper right")


def _patients(model: OralOneCompartment) -> int:
    return int(np.broadcast(np.asarray(model.cl_l_per_h), np.asarray(model.v_l)).size)


def _first(model: OralOneCompartment, n: int) -> OralOneCompartment:
    """The first ``n`` patients of a population model (CL and V as 1-D arrays)."""
    cl, v = np.broadcast_arrays(np.asarray(model.cl_l_per_h), np.asarray(model.v_l))
    return model.replaced(cl_l_per_h=np.atleast_1d(cl)[:n], v_l=np.atleast_1d(v)[:n])


def population_profiles(
    curves: dict[str, tuple[OralOneCompartment, OralOneCompartment, Schedule]],
    mpa_auc0_12_mg_h_per_l: npt.ArrayLike,
    window_mg_h_per_l: tuple[float, float],
    title: str,
    level: float = DEFAULT_LEVEL,
    band_patients: int = BAND_PATIENTS,
    zoom_days: tuple[float, float] = (26.0, 31.0),
) -> Figure:
    """Each drug's concentrations over a population, the typical patient on top, and
    the population's MPA AUC0-12 against its target window.

    One row per drug. Left, the whole course: over the patients, the median daily
    average concentration (mg/L: each day's AUC / 24 h, exact) with its central
    ``level`` band (default 90 %: the 5th to the 95th percentile) and 50 % band
    (:func:`~sim.views.figure_style.fan`), behind them the ``level`` band of the
    concentration every 30 min (grey: how high the peaks and how low the troughs
    go), and the typical patient's daily average (no random effects) on top.
    Right, a few days close up: the median concentration (mg/L) with the same
    bands and the typical patient's curve on top; dotted lines mark dose changes.
    The bands are over the first ``band_patients`` patients of each population
    (the title says how many; the patients are independent draws, so the first
    ones are a random sample). The last row is the histogram of all the patients'
    MPA AUC0-12 at the target dose (:func:`auc_window_histogram`).

    Parameters
    ----------
    curves : dict
        ``{label: (typical, population, schedule)}``, one row per drug: the typical
        patient's model (scalars), the patients' model (1-D arrays of CL, L/h, and
        V, L, one value per patient, as :func:`sim.exposure.pk_model` gives for an
        ``(n, 2)`` array of random effects) and the schedule they all take (mg/day).
    mpa_auc0_12_mg_h_per_l : array_like
        Every patient's steady-state MPA AUC0-12 at the MMF target dose, mg*h/L.
    window_mg_h_per_l : (float, float)
        The target window of MPA AUC0-12, mg*h/L.
    title : str
        The figure's first title line; a second says what the bands are over.
    level : float
        The outer band, a fraction (default 0.9).
    band_patients : int
        At most this many patients of each population are drawn in the bands.
    zoom_days : (float, float)
        Days shown in the close-up column (default around the day-28 dose changes).
    """
    auc = np.asarray(mpa_auc0_12_mg_h_per_l, dtype=np.float64).ravel()
    if not curves or auc.size == 0 or not np.all(np.isfinite(auc)):
        raise ValueError("population_profiles: give drugs and finite AUC values (one at least)")
    if band_patients < 1:
        raise ValueError(f"band_patients must be >= 1, got {band_patients}")
    sizes = {_patients(population) for _, population, _ in curves.values()}
    shown = min(band_patients, *sizes)
    over = f"the first {shown} of" if shown < auc.size else "all"
    fig, axes = new_figure(
        len(curves) + 1,
        2,
        f"{title}\nmedian, 50 % and {interval_label(level)} bands over {over} {auc.size} "
        "patients; black: the typical patient",
        width_ratios=(2.2, 1),
    )
    lo, hi = zoom_days
    tz = np.linspace(lo * HOURS_PER_DAY, hi * HOURS_PER_DAY, 2000)
    for row, (label, (typical, population, schedule)) in enumerate(curves.items()):
        sample = _first(population, shown)
        full, zoom = axes[row]
        # The whole course: a year of concentrations every 30 min fills the panel solid,
        # so its fan is of each day's average (the AUC over the day / 24 h, exact), with
        # the concentrations' outer band behind it.
        end = max(schedule.end_day, 1)
        t_h = course_hours(schedule)
        c_lo, c_hi = np.quantile(
            concentration_by_patient(sample, schedule, t_h), level_quantiles(level), axis=0
        )
        full.fill_between(
            t_h / HOURS_PER_DAY,
            c_lo,
            c_hi,
            color=COLOURS["spread"],
            linewidth=0,
            label=f"concentration, {interval_label(level)} band",
        )
        edges = np.arange(end + 1) * HOURS_PER_DAY
        daily = np.diff(cumulative_auc_by_patient(sample, schedule, edges), axis=1)
        mid_day = np.arange(end, dtype=np.float64) + 0.5
        fan(full, mid_day, daily / HOURS_PER_DAY, "daily average: median", level)
        typical_daily = daily_auc(typical, schedule) / HOURS_PER_DAY
        full.plot(mid_day, typical_daily, label="typical patient", **_TYPICAL)
        full.set_xlim(0, end)
        full.set_xlabel("day from first dose")
        set_title(full, f"{label}: daily average concentration")
        days = tz / HOURS_PER_DAY
        fan(zoom, days, concentration_by_patient(sample, schedule, tz), "median", level)
        zoom.plot(days, concentration(typical, schedule, tz), label="typical patient", **_TYPICAL)
        _dose_changes(zoom, schedule, lo, hi)
        zoom.set_xlim(lo, hi)
        zoom.set_xlabel("day (close-up; dotted: dose change)")
        set_title(zoom, f"concentration, days {lo:g}-{hi:g}")
        for ax in (full, zoom):
            ax.set_ylim(bottom=0)
            ax.set_ylabel("mg/L")
        if row == 0:
            legend(full, "upper right")
    # the histogram spans the last row
    grid = axes[-1, 0].get_subplotspec().get_gridspec()
    for ax in axes[-1]:
        ax.remove()
    hist = fig.add_subplot(grid[-1, :])
    hist.grid(alpha=0.3)
    hist.tick_params(labelsize="small")
    auc_window_histogram(hist, auc, *window_mg_h_per_l)
    hist.set_xlabel("MPA AUC0-12 at the MMF target dose (steady state), mg*h/L")
    set_title(hist, f"MPA AUC0-12 at the MMF target dose: all {auc.size} patients")
    return fig
