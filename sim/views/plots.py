"""Matplotlib figures. Each function takes data and returns a Figure; no pyplot global state.

The planner's figures (issue 7) take the public results objects: a
:class:`~sim.runner.RunResult` (with per-patient tables kept for some
replicates), plus the :class:`~sim.scenario.Scenario` where dates, windows or
the protocol are needed. They share one style: panels of one size, a light
grid, :data:`COLOURS` for each role (median and bands, window, deadline,
target, observed), weeks from the first dose or calendar dates on the x axis.
Save one with ``fig.savefig("x.png")``; no backend needs to be chosen.

Time inside a patient's course is in days (weeks on the axes) from the first
dose; trial time is in days from ``recruitment.start_date``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.errors import DosesimError
from sim.schedule import Schedule, build_schedules
from sim.survival import CumulativeIncidence, aalen_johansen
from sim.trial.context import DEATH, WITHDRAWAL
from sim.trial.milestones import (
    DEFAULT_LEVEL,
    check_level,
    interval_label,
)
from sim.views.exposure_plots import (
    auc_window_histogram,
    concentration_profiles,
    population_profiles,
)
from sim.views.figure_style import (
    COLOURS,
    MissingData,
    fan,
    kept_table,
    legend,
    new_figure,
    set_title,
    vline,
    week_axis,
)
from sim.views.recruitment_plots import enrolment_fan, milestone_dates

if TYPE_CHECKING:
    from sim.compare import Comparison
    from sim.runner import RunResult
    from sim.scenario import Scenario

__all__ = [
    "COLOURS",
    "CumulativeIncidence",
    "aalen_johansen",
    "comparison_forest",
    "concentration_profiles",
    "cumulative_incidence",
    "cumulative_prednisone",
    "dose_schedules",
    "enrolment_fan",
    "first_event_incidence",
    "milestone_dates",
    "mpa_auc_distribution",
    "population_profiles",
    "prednisone_by_week",
]

FloatArray = npt.NDArray[np.float64]


def comparison_forest(
    comparison: Comparison, metrics: Sequence[str] | None = None, columns: int = 3
) -> Figure:
    """A forest plot of each scenario's paired difference to the first, one panel per metric.

    Each panel has one row per scenario after the first: the mean paired
    difference (dot) with its paired interval (thick line) and, for
    reference, the unpaired interval (thin grey line), both at the
    comparison's level (default 90 %); a dashed line marks zero.

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
        ax.hlines(y, rows["unpaired_low"], rows["unpaired_high"], color="0.7", linewidth=1.0)
        ax.hlines(y, rows["paired_low"], rows["paired_high"], color="C0", linewidth=2.2)
        ax.plot(rows["difference"], y, "o", color="C0", markersize=4)
        ax.axvline(0.0, color="0.3", linestyle="--", linewidth=0.8)
        ax.set_yticks(y, others if i % ncols == 0 else [""] * len(others))
        ax.set_ylim(-0.7, len(others) - 0.3)
        ax.set_title(metric, loc="left", fontsize="small")
        ax.tick_params(labelsize="small")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"difference to {comparison.reference} ({comparison.replicates} replicates, seed "
        f"{comparison.seed}); blue: paired {comparison.level_label}, grey: unpaired "
        f"{comparison.level_label}",
        fontsize="medium",
    )
    return fig


# ---------------------------------------------------------------------------
# The planner's figures (issue 7): one style for all
# ---------------------------------------------------------------------------


def dose_schedules(
    scenario: Scenario, weights_kg: Sequence[float] = (45, 60, 75, 90, 110)
) -> Figure:
    """The protocol's planned daily doses: prednisone for several body weights, and MMF.

    Step plots of the daily dose (mg/day) against weeks from the first dose, as
    :func:`sim.build_schedules` gives them (no adverse events, no dose
    modifications). Weights with the same prednisone schedule (a capped start
    dose) share one line; its legend gives the start dose (mg/day) and the total
    over the course (mg).

    Parameters
    ----------
    scenario : Scenario
        A validated scenario (only its protocol tables are used).
    weights_kg : sequence of float
        Body weights, kg (> 0).
    """
    if len(weights_kg) == 0:
        raise ValueError("weights_kg: give at least one body weight")
    if scenario.arms or scenario.drugs or scenario.mmf is None or scenario.prednisone is None:
        return _schedules_by_arm_and_drug(scenario, weights_kg)
    groups: dict[Schedule, list[float]] = {}
    for w in weights_kg:
        groups.setdefault(build_schedules(scenario, float(w))["prednisone"], []).append(w)
    mmf = build_schedules(scenario, float(weights_kg[0]))["mmf"]
    fig, axes = new_figure(1, 2, f"{scenario.label}: planned daily doses", width_ratios=(1.4, 1))
    pred_ax, mmf_ax = axes[0]
    for i, (schedule, weights) in enumerate(groups.items()):
        label = (
            f"{', '.join(f'{w:g}' for w in weights)} kg: start "
            f"{schedule.doses_mg_per_day[0]:g} mg/day, total {schedule.total_mg:,.0f} mg"
        )
        _stairs(pred_ax, schedule, f"C{i % 10}", 1.6, label)
    mmf_ax.stairs(
        mmf.doses_mg_per_day,
        np.append(mmf.change_days, mmf.end_day) / 7.0,
        baseline=None,
        color=COLOURS["main"],
        linewidth=1.6,
        label=f"every weight, {mmf.doses_per_day} doses a day; total {mmf.total_mg / 1000:,.0f} g",
    )
    for ax, drug in ((pred_ax, "prednisone"), (mmf_ax, "MMF")):
        week_axis(ax, scenario.treatment.duration_days / 7.0)
        ax.set_ylim(bottom=0)
        ax.set_ylabel(f"{drug}, mg/day")
        set_title(ax, drug)
        legend(ax, "upper right" if drug == "prednisone" else "lower right")
    return fig


def _stairs(ax: Axes, schedule: Schedule, colour: str, width: float, label: str) -> None:
    """A schedule's daily dose as a step line against weeks."""
    ax.stairs(
        schedule.doses_mg_per_day,
        np.append(schedule.change_days, schedule.end_day) / 7.0,
        baseline=None,
        color=colour,
        linewidth=width,
        label=label,
    )


def _schedules_by_arm_and_drug(scenario: Scenario, weights_kg: Sequence[float]) -> Figure:
    """One panel per arm (rows) and drug (columns): each weight's planned daily dose;
    doses per m2 at 170 cm (the middle of the adult range)."""
    from sim.arms import arm_scenarios
    from sim.regimens import Body, scenario_schedules

    arms = arm_scenarios(scenario)
    names = [a.name for a in scenario.arms] or [""]
    plans = [
        {w: scenario_schedules(arm, Body(float(w), 170.0)) for w in weights_kg} for arm in arms
    ]
    drugs = list(dict.fromkeys(d for plan in plans for by in plan.values() for d in by))
    title = f"{scenario.label}: planned daily doses (170 cm where a dose is per m2)"
    fig, axes = new_figure(len(arms), len(drugs), title)
    for i, (name, plan) in enumerate(zip(names, plans, strict=True)):
        for j, drug in enumerate(drugs):
            ax = axes[i][j]
            groups: dict[Schedule, list[float]] = {}
            for w, by in plan.items():
                if drug in by:
                    groups.setdefault(by[drug], []).append(w)
            for k, (schedule, weights) in enumerate(groups.items()):
                label = (
                    f"{', '.join(f'{w:g}' for w in weights)} kg: total {schedule.total_mg:,.0f} mg"
                )
                _stairs(ax, schedule, f"C{k % 10}", 1.4, label)
            week_axis(ax, max(a.treatment.duration_days for a in arms) / 7.0)
            ax.set_ylim(bottom=0)
            ax.set_ylabel(f"{drug}, mg/day")
            set_title(ax, f"{name}: {drug}" if name else drug)
            if groups:
                legend(ax, "upper right")
            else:
                ax.text(0.5, 0.5, "not given in this arm", ha="center", transform=ax.transAxes)
    return fig


# -- cumulative prednisone --------------------------------------------------

_FREQUENCY = {"QD": 1.0, "BID": 2.0, "TID": 3.0, "QID": 4.0}


def _per_day(frequency: str) -> float:
    """Administrations a day of a CDISC frequency (``QD`` .. ``QID``, ``Q<h>H``)."""
    if frequency in _FREQUENCY:
        return _FREQUENCY[frequency]
    if frequency.startswith("Q") and frequency.endswith("H"):
        return 24.0 / float(frequency[1:-1])
    raise DosesimError(f"EX: unknown EXDOSFRQ {frequency!r}")


def prednisone_by_week(result: RunResult, treatment: str = "PREDNISONE") -> pd.DataFrame:
    """Each kept patient's cumulative prednisone at the end of every week, from SDTM EX.

    Rebuilt from the kept ``ex`` table (``EXDOSE`` mg per administration times
    administrations a day, over study days ``EXSTDY`` .. ``EXENDY`` inclusive):
    the value at week ``w`` is the total of days ``0 .. 7 w - 1`` from the first
    dose, mg. As in the patients table's ``cumulative_prednisone_mg_week<w>``, it
    is NaN once the patient is off study (``exit_day < 7 w``).

    Parameters
    ----------
    result : RunResult
        A run with per-patient tables kept (``keep_patients >= 1``).

    Returns
    -------
    pandas.DataFrame
        Index ``(replicate, patient_id)`` as in the patients table; columns the
        weeks ``0 .. W`` (int), W the last whole week of treatment; values mg.
    """
    patients = kept_table(result, "patients")
    ex = kept_table(result, "ex")
    ex = ex[ex["EXTRT"] == treatment]
    if ex.empty:
        raise MissingData(f"no kept patient was given {treatment.lower()}")
    keys = ex["USUBJID"].str.rsplit("-", n=2, expand=True)  # <study>-R<rep>-<patient>
    index = pd.MultiIndex.from_frame(patients[["replicate", "patient_id"]])
    row = index.get_indexer(
        pd.MultiIndex.from_arrays([keys[1].str[1:].astype(int), keys[2].astype(int)])
    )
    if (row < 0).any():
        raise DosesimError("EX has subjects that are not in the patients table")
    exit_day = patients["exit_day"].to_numpy(dtype=float)
    last_day = int(max(ex["EXENDY"].max(), math.floor(exit_day.max())))
    daily = np.zeros((len(index), last_day + 1))
    dose = ex["EXDOSE"].to_numpy(dtype=float) * ex["EXDOSFRQ"].map(_per_day).to_numpy(dtype=float)
    # study days s .. e (inclusive) are whole days s - 1 .. e - 1 from the first dose
    np.add.at(daily, (row, ex["EXSTDY"].to_numpy() - 1), dose)
    np.add.at(daily, (row, ex["EXENDY"].to_numpy()), -dose)
    before = np.concatenate((np.zeros((len(index), 1)), np.cumsum(np.cumsum(daily, 1), 1)), 1)
    weeks = np.arange(last_day // 7 + 1)
    out = before[:, 7 * weeks]
    out[exit_day[:, None] < 7 * weeks[None, :]] = np.nan
    return pd.DataFrame(out, index=index, columns=pd.Index(weeks, name="week"))


def cumulative_prednisone(
    result: RunResult, level: float = DEFAULT_LEVEL, treatment: str = "PREDNISONE"
) -> Figure:
    """Cumulative prednisone by week (median, 50 % and ``level`` bands) and its spread at the end.

    Left: over the kept patients on study at each week (:func:`prednisone_by_week`),
    the median cumulative dose (mg) with the 50 % and the central ``level``
    (default 90 %) bands. Right: the histogram over patients of the dose at the
    last whole week (week 52 for a 364-day course), with its median.

    Parameters
    ----------
    result : RunResult
        A run with per-patient tables kept (``keep_patients >= 1``).
    level : float
        The outer band (default 0.9).
    treatment : str
        The glucocorticoid's EXTRT (``PREDNISOLONE`` for a course labelled so).
    """
    weekly = prednisone_by_week(result, treatment)
    patients = kept_table(result, "patients")
    if "arm" in patients.columns:
        return _cumulative_prednisone_by_arm(weekly, patients["arm"].to_numpy())
    weeks = weekly.columns.to_numpy(dtype=float)
    values = weekly.to_numpy(dtype=float)
    last = int(weeks[-1])
    n_reps = weekly.index.get_level_values("replicate").nunique()
    fig, axes = new_figure(
        1,
        2,
        f"cumulative prednisone: {len(weekly)} patients of {n_reps} kept replicates "
        "(each week: patients on study)",
        width_ratios=(1.3, 1),
    )
    by_week, end = axes[0]
    fan(by_week, weeks, values, "median", level)
    week_axis(by_week, weeks[-1])
    by_week.set_ylim(bottom=0)
    by_week.set_ylabel("cumulative prednisone, mg")
    set_title(by_week, "by week")
    legend(by_week, "upper left")
    final = values[:, -1][np.isfinite(values[:, -1])]
    if final.size:
        end.hist(final, bins="auto", color=COLOURS["main"], alpha=0.75, edgecolor="white")
        vline(end, float(np.median(final)), f"median {np.median(final):,.0f} mg", "main")
        legend(end, "upper right")
    else:
        end.text(0.5, 0.5, f"no patient on study at week {last}", ha="center", va="center")
    end.set_xlabel(f"cumulative prednisone at week {last}, mg")
    end.set_ylabel("patients")
    set_title(end, f"at week {last} ({final.size} patients on study)")
    return fig


def _cumulative_prednisone_by_arm(weekly: pd.DataFrame, arms: np.ndarray) -> Figure:
    """:func:`cumulative_prednisone` with one colour per arm: medians and 50 % bands by
    week, and the histograms at the last week overlaid."""
    weeks = weekly.columns.to_numpy(dtype=float)
    values = weekly.to_numpy(dtype=float)
    last = int(weeks[-1])
    fig, axes = new_figure(
        1, 2, f"cumulative prednisone by arm: {len(weekly)} kept patients", width_ratios=(1.3, 1)
    )
    by_week, end = axes[0]
    for k, arm in enumerate(dict.fromkeys(arms.tolist())):
        rows = values[arms == arm]
        colour = f"C{k % 10}"
        seen = np.isfinite(rows).any(axis=0)
        if seen.any():
            lo, hi = np.nanquantile(rows[:, seen], [0.25, 0.75], axis=0)
            by_week.fill_between(weeks[seen], lo, hi, color=colour, alpha=0.2, lw=0)
            median = np.nanmedian(rows[:, seen], axis=0)
            by_week.plot(weeks[seen], median, color=colour, linewidth=1.6, label=f"{arm}: median")
        final = rows[:, -1][np.isfinite(rows[:, -1])]
        if final.size:
            end.hist(final, bins="auto", color=colour, alpha=0.5, label=f"{arm} ({final.size})")
            end.axvline(float(np.median(final)), color=colour, linestyle="--", linewidth=1)
    week_axis(by_week, weeks[-1])
    by_week.set_ylim(bottom=0)
    by_week.set_ylabel("cumulative prednisone, mg")
    set_title(by_week, "by week (median and 50 % band, patients on study)")
    legend(by_week, "upper left")
    end.set_xlabel(f"cumulative prednisone at week {last}, mg")
    end.set_ylabel("patients")
    set_title(end, f"at week {last} (dashed: each arm's median)")
    legend(end, "upper right")
    return fig


# -- MPA exposure -------------------------------------------------------------


def mpa_auc_distribution(result: RunResult, scenario: Scenario) -> Figure:
    """Histogram of the kept patients' MPA AUC0-12 at the MMF target dose, against the window.

    The target window ``[exposure.mpa.auc0_12_window_low_mg_h_per_l, ..._high_...]``
    is shaded; the legend gives the share of patients below, within and above it.

    Parameters
    ----------
    result : RunResult
        A run with per-patient tables kept (column ``mpa_auc0_12_mg_h_per_l``, mg*h/L).
    scenario : Scenario
        The run's scenario, for the window (needs ``[exposure]``).
    """
    if scenario.exposure is None:
        raise MissingData(f"{scenario.name}: the scenario has no [exposure] table")
    mpa = scenario.exposure.mpa
    low, high = mpa.auc0_12_window_low_mg_h_per_l, mpa.auc0_12_window_high_mg_h_per_l
    auc = kept_table(result, "patients")["mpa_auc0_12_mg_h_per_l"].to_numpy(dtype=float)
    auc = auc[np.isfinite(auc)]
    if auc.size == 0:
        raise MissingData(f"{scenario.name}: no kept patient takes MMF")
    fig, axes = new_figure(
        1, 1, f"{scenario.label}: MPA AUC0-12 at the MMF target dose ({auc.size} patients)"
    )
    auc_window_histogram(axes[0, 0], auc, low, high)
    return fig


# -- competing risks ----------------------------------------------------------


def cif_line(
    ax: Axes, ci: CumulativeIncidence, end: float, label: str, colour: str, z: float
) -> None:
    """A CIF against weeks (time in days), with its pointwise band +/- ``z`` SE, up to ``end``;
    the legend gives ``label`` and the incidence at the end."""
    x = np.append(ci.time, max(end, ci.time[-1])) / 7.0
    y = np.append(ci.estimate, ci.estimate[-1])
    se = np.append(ci.standard_error, ci.standard_error[-1])
    lo, hi = np.clip(y - z * se, 0, 1), np.clip(y + z * se, 0, 1)
    ax.fill_between(x, lo, hi, step="post", color=colour, alpha=0.12, linewidth=0)
    ax.step(x, y, where="post", color=colour, linewidth=1.5, label=f"{label} ({y[-1]:.1%})")


def _exit_cause(status: str, reason: str) -> str:
    return status if reason in ("", WITHDRAWAL, DEATH) else f"{status}: {reason}"


def first_event_incidence(
    patients: pd.DataFrame, events: pd.DataFrame, names: Sequence[str]
) -> dict[str, CumulativeIncidence]:
    """The cumulative incidence of the first occurrence of each adverse event ``names``.

    Aalen-Johansen over the patients (time in days from the first dose): leaving the
    study before the event (any exit but completion) competes with it; completing the
    course censors.

    Parameters
    ----------
    patients : DataFrame
        Kept patients: ``replicate``, ``patient_id``, ``exit_day`` (day), ``status``.
    events : DataFrame
        Their events: ``replicate``, ``patient_id``, ``event``, ``day``.
    names : sequence of str
        Adverse-event names (``event`` values).
    """
    key = ["replicate", "patient_id"]
    p = patients.set_index(key)
    exit_day = p["exit_day"].to_numpy(dtype=float)
    left = (p["status"] != "completed").to_numpy()
    first = (
        events[events["event"].isin(names)]
        .groupby([*key, "event"])["day"]
        .min()
        .unstack("event")
        .reindex(index=p.index, columns=list(names))
    )
    out = {}
    for name in names:
        t_first = first[name].to_numpy(dtype=float)
        had = np.isfinite(t_first)
        out[name] = aalen_johansen(
            np.where(had, t_first, exit_day), np.where(had, 1, np.where(left, 2, 0)), 1
        )
    return out


def cumulative_incidence(result: RunResult, level: float = DEFAULT_LEVEL) -> Figure:
    """Cumulative incidence of each adverse event and of each reason for leaving (Aalen-Johansen).

    Over the kept patients (pooled across kept replicates), time in days from the
    first dose, shown in weeks, with pointwise ``level`` confidence bands
    (default 90 %; delta method, normal quantile):

    * left: the first occurrence of each adverse event; leaving the study first
      (withdrawal, death, discontinuation) is a competing event, completing the
      course censors;
    * right: leaving the study by status and, for an exit an adverse event caused,
      that event; the causes compete with each other, completion censors.

    Each curve is :func:`aalen_johansen`, not 1 - Kaplan-Meier, which would
    overstate the incidence by counting patients who left as still at risk.

    Parameters
    ----------
    result : RunResult
        A run with per-patient tables kept (``patients`` with ``ae_<name>``
        columns, ``exit_day`` and ``status``; ``events``).
    level : float
        Confidence level of the pointwise bands.
    """
    from scipy.special import ndtri

    z = float(ndtri(0.5 + check_level(level) / 2))
    patients = kept_table(result, "patients")
    events = kept_table(result, "events")
    key = ["replicate", "patient_id"]
    p = patients.set_index(key)
    exit_day = p["exit_day"].to_numpy(dtype=float)
    left = (p["status"] != "completed").to_numpy()
    names = [c.removeprefix("ae_") for c in patients.columns if c.startswith("ae_")]
    incidence = first_event_incidence(patients, events, names)
    end = float(exit_day.max())
    n_reps = patients["replicate"].nunique()
    fig, axes = new_figure(
        1,
        2,
        f"cumulative incidence (Aalen-Johansen), {len(p)} patients of {n_reps} kept "
        f"replicates; bands: pointwise {interval_label(level)}",
        sharey=True,
    )
    ae_ax, exit_ax = axes[0]
    for i, (name, ci) in enumerate(incidence.items()):
        cif_line(ae_ax, ci, end, name, f"C{i % 10}", z)
    labels = [_exit_cause(s, r) for s, r in zip(p["status"], p["exit_reason"], strict=True)]
    kinds = sorted({x for x, gone in zip(labels, left, strict=True) if gone})
    code = np.array(
        [kinds.index(x) + 1 if gone else 0 for x, gone in zip(labels, left, strict=True)]
    )
    for k, kind in enumerate(kinds, start=1):
        cif_line(exit_ax, aalen_johansen(exit_day, code, k), end, kind, f"C{(k - 1) % 10}", z)
    if not kinds:
        exit_ax.text(0.5, 0.5, "every patient completed", ha="center", va="center")
    for ax, text in (
        (ae_ax, "first adverse event of each type (competing: leaving)"),
        (exit_ax, "leaving the study, by reason (completion censors)"),
    ):
        week_axis(ax, end / 7.0)
        ax.set_ylim(bottom=0)
        set_title(ax, text)
        if ax.get_lines():
            legend(ax, "upper left")
    ae_ax.set_ylabel("cumulative incidence")
    return fig


# -- recruitment and milestones ----------------------------------------------
