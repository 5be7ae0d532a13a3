"""The comparison's figures: each scenario's distributions overlaid, and the schedules side by side.

Every function takes a :class:`~sim.compare.Comparison` (its runs, with the
``patients`` and ``events`` tables of the kept replicates, and its resolved
scenarios) and returns a Figure; one colour per scenario (``C0``, ``C1``, ...,
in the comparison's order, the reference first) throughout. Trial time is in
days from each scenario's ``recruitment.start_date``, shown as dates; a
patient's time in days from the first dose, shown in weeks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.results.dictionary import describe
from sim.results.exports import ae_term
from sim.schedule import Schedule
from sim.survival import aalen_johansen
from sim.trial.milestones import DEFAULT_LEVEL, check_level, interval_label, level_quantiles
from sim.views.figure_style import (
    INNER_BAND,
    FloatArray,
    MissingData,
    date_axis,
    kept_table,
    legend,
    new_figure,
    set_title,
    to_dates,
    week_axis,
)
from sim.views.plots import cif_line, first_event_incidence
from sim.views.recruitment_plots import enrolment_counts

if TYPE_CHECKING:
    from sim.compare import Comparison
    from sim.scenario import Scenario

__all__ = [
    "metric_label",
    "overlaid_burden",
    "overlaid_enrolment",
    "overlaid_incidence",
    "overlaid_milestones",
    "schedules_side_by_side",
    "sweep_response",
    "swept_setting",
]

#: The per-patient column of the steroid burden the comparison overlays.
BURDEN_COLUMN = "cumulative_prednisone_mg_week52"
#: The per-trial metric overlaid beside it.
BURDEN_METRIC = "median_cumulative_prednisone_mg_week52"


_ARM_STYLES = ("-", "--", ":", "-.")


def metric_label(metric: str) -> tuple[str, str]:
    """A metric's readable label and unit (from the data dictionary), e.g.
    ``("Median cumulative prednisone at week 52", "mg")``."""
    if metric.startswith("ae_"):
        return f"{ae_term(metric[3:])}: events per trial", "event"
    label, unit, _ = describe("replicates", metric)
    return label[:1].upper() + label[1:], unit


def _panels(n: int, max_columns: int, title: str, **kwargs: Any) -> tuple[Figure, Any]:
    """A figure of ``n`` panels in rows of at most ``max_columns``; the unused cells of
    the last row hidden."""
    ncols = min(max_columns, n)
    fig, axes = new_figure(math.ceil(n / ncols), ncols, title, **kwargs)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def _colour(k: int) -> str:
    return f"C{k % 10}"


def _step_hist(ax: Axes, values: FloatArray, bins: FloatArray, colour: str, label: str) -> None:
    """A histogram as an outline (so that several read on one axis), as shares of the total."""
    weights = np.full(values.size, 1.0 / values.size) if values.size else None
    ax.hist(
        values, bins=bins.tolist(), weights=weights, histtype="step", color=colour, linewidth=1.6,
        label=label,
    )  # fmt: skip


def overlaid_burden(comparison: Comparison) -> Figure:
    """Cumulative prednisone at week 52, each scenario's distribution overlaid.

    Left: over the kept patients on study at week 52, the share of patients by
    cumulative dose (mg; one outline per scenario, dashed line at its median).
    Right: over all replicate trials, the share of trials by the trial's median
    patient (``median_cumulative_prednisone_mg_week52``).

    Raises
    ------
    MissingData
        No scenario reports the week-52 dose (no glucocorticoid, or no kept patients).
    """
    per_patient = {}
    for label, result in comparison.results.items():
        try:
            patients = kept_table(result, "patients")
        except MissingData:
            continue
        if BURDEN_COLUMN in patients.columns:
            x = patients[BURDEN_COLUMN].to_numpy(dtype=float)
            per_patient[label] = x[np.isfinite(x)]
    per_trial = {
        label: result.replicates[BURDEN_METRIC].to_numpy(dtype=float)
        for label, result in comparison.results.items()
        if BURDEN_METRIC in result.replicates.columns
    }
    per_trial = {k: v[np.isfinite(v)] for k, v in per_trial.items()}
    if not any(v.size for v in per_patient.values()):
        raise MissingData("no scenario has a kept patient on prednisone at week 52")
    fig, axes = new_figure(1, 2, "cumulative prednisone at week 52, by scenario")
    for ax, data, what in (
        (axes[0, 0], per_patient, "patients"),
        (axes[0, 1], per_trial, "trials"),
    ):
        pooled = np.concatenate([v for v in data.values() if v.size] or [np.zeros(1)])
        bins = np.histogram_bin_edges(pooled, bins=min(40, max(10, int(math.sqrt(pooled.size)))))
        for k, label in enumerate(comparison.scenarios):
            values = data.get(label, np.array([]))
            if not values.size:
                continue
            median = float(np.median(values))
            _step_hist(ax, values, bins, _colour(k), f"{label}: median {median:,.0f} mg")
            ax.axvline(median, color=_colour(k), linestyle="--", linewidth=1)
        ax.set_ylabel(f"share of {what}")
        legend(ax, "best")
    axes[0, 0].set_xlabel("cumulative prednisone at week 52, mg (one patient)")
    set_title(axes[0, 0], "patients on study at week 52 (kept replicates)")
    axes[0, 1].set_xlabel("the trial's median patient at week 52, mg")
    set_title(axes[0, 1], f"trials ({comparison.replicates} replicates each)")
    return fig


def overlaid_incidence(comparison: Comparison, level: float = DEFAULT_LEVEL) -> Figure:
    """Cumulative incidence of each adverse event (one panel each), every scenario overlaid.

    Aalen-Johansen over each scenario's kept patients
    (:func:`sim.views.plots.first_event_incidence`: leaving first competes,
    completing censors), with pointwise ``level`` bands (delta method). The last
    panel is leaving the study for any reason (completion censors).
    """
    from scipy.special import ndtri

    z = float(ndtri(0.5 + check_level(level) / 2))
    tables = {}
    for label, result in comparison.results.items():
        try:
            tables[label] = (kept_table(result, "patients"), kept_table(result, "events"))
        except MissingData:
            continue
    if not tables:
        raise MissingData("no scenario kept patients: compare with --keep-patients 1 or more")
    names = list(
        dict.fromkeys(
            c.removeprefix("ae_") for p, _ in tables.values() for c in p.columns if c[:3] == "ae_"
        )
    )
    panels = [*names, "(leaving the study)"]
    fig, axes = _panels(
        len(panels),
        2,
        f"cumulative incidence by scenario (Aalen-Johansen, kept patients; pointwise "
        f"{interval_label(level)} bands)",
        sharey=True,
    )
    end = max(float(p["exit_day"].max()) for p, _ in tables.values())
    for k, label in enumerate(comparison.scenarios):
        if label not in tables:
            continue
        patients, events = tables[label]
        found = first_event_incidence(patients, events, [n for n in names if f"ae_{n}" in patients])
        left = (patients["status"] != "completed").to_numpy()
        found["(leaving the study)"] = aalen_johansen(
            patients["exit_day"].to_numpy(dtype=float), left.astype(int), 1
        )
        for i, name in enumerate(panels):
            if name in found:
                cif_line(axes.flat[i], found[name], end, label, _colour(k), z)
    for i, ax in enumerate(axes.flat[: len(panels)]):
        week_axis(ax, end / 7.0)
        ax.set_ylim(bottom=0)
        set_title(ax, panels[i] if i == len(panels) - 1 else ae_term(panels[i]))
        if ax.get_lines():
            legend(ax, "upper left")
    for row in axes:
        row[0].set_ylabel("cumulative incidence")
    return fig


def overlaid_enrolment(comparison: Comparison, level: float = DEFAULT_LEVEL) -> Figure:
    """Cumulative enrolment on calendar dates: each scenario's median with its 50 % band
    (and its ``level`` band as dotted edges), over the kept replicates; targets and
    deadlines as lines in the scenario's colour."""
    check_level(level)
    fig, axes = new_figure(
        1,
        1,
        f"cumulative enrolment by scenario (kept replicates): median, {interval_label(INNER_BAND)}"
        f" band, {interval_label(level)} band dotted",
        wide=1.6,
    )
    ax = axes[0, 0]
    drawn = 0
    top = 0
    for k, (label, scenario) in enumerate(
        zip(comparison.scenarios, comparison.definitions, strict=True)
    ):
        rec = scenario.recruitment
        try:
            grid, counts = enrolment_counts(comparison.results[label], scenario)
        except MissingData:
            continue
        assert rec is not None
        x = to_dates(rec.start_date, grid)
        colour = _colour(k)
        lo, hi = np.quantile(counts, level_quantiles(INNER_BAND), axis=0)
        ax.fill_between(x, lo, hi, color=colour, alpha=0.2, lw=0)
        for edge in np.quantile(counts, level_quantiles(level), axis=0):
            ax.plot(x, edge, color=colour, linestyle=":", linewidth=0.9)
        ax.plot(x, np.median(counts, axis=0), color=colour, linewidth=1.6, label=label)
        ax.axhline(rec.target_enrolled, color=colour, linestyle="-.", linewidth=0.9)
        ax.axvline(to_dates(rec.deadline, [0])[0], color=colour, linestyle="--", linewidth=1)
        top = max(top, rec.target_enrolled)
        drawn += 1
    if not drawn:
        raise MissingData("no scenario kept patients with recruitment")
    ax.plot([], [], color="0.3", linestyle="-.", label="target")
    ax.plot([], [], color="0.3", linestyle="--", label="deadline")
    date_axis(ax)
    ax.set_ylim(0, top * 1.1)
    ax.set_ylabel("patients enrolled")
    legend(ax, "upper left")
    return fig


def overlaid_milestones(comparison: Comparison) -> Figure:
    """When each scenario reaches its target and finishes, as cumulative shares of trials.

    Left: the share of all replicate trials that have reached the enrolment target by
    each date (a curve that levels off below 1: the trials that never reach it).
    Right: the share that have had the last patient's last visit by each date.
    Deadlines dashed, in the scenario's colour.
    """
    fig, axes = new_figure(1, 2, "recruitment milestones by scenario (all replicates)", wide=1.1)
    drawn = 0
    for k, (label, scenario) in enumerate(
        zip(comparison.scenarios, comparison.definitions, strict=True)
    ):
        table = comparison.results[label].replicates
        rec = scenario.recruitment
        if rec is None or "target_reached" not in table.columns:
            continue
        reached = table["target_reached"].astype(bool).to_numpy()
        n = len(table)
        for ax, column in (
            (axes[0, 0], "last_patient_in_day"),
            (axes[0, 1], "last_patient_last_visit_day"),
        ):
            days = np.sort(table[column].to_numpy(dtype=float)[reached])
            days = days[np.isfinite(days)]
            share = np.arange(1, days.size + 1) / n
            if days.size:
                ax.step(
                    to_dates(rec.start_date, days),
                    share,
                    where="post",
                    color=_colour(k),
                    linewidth=1.6,
                    label=f"{label}: {share[-1]:.0%} by the end",
                )
            ax.axvline(to_dates(rec.deadline, [0])[0], color=_colour(k), ls="--", lw=1)
        drawn += 1
    if not drawn:
        raise MissingData("no scenario has recruitment")
    set_title(axes[0, 0], "target reached (share of trials)")
    set_title(axes[0, 1], "last patient's last visit (share of trials)")
    for ax in axes.flat:
        date_axis(ax)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("share of trials")
        legend(ax, "upper left")
    return fig


def schedules_side_by_side(
    scenarios: Comparison | Sequence[Scenario],
    labels: Sequence[str] | None = None,
    weights_kg: Sequence[float] = (50, 70, 90),
) -> Figure:
    """The planned daily doses of each scenario (columns) and drug (rows), on shared axes.

    Each panel shows the scenario's (and each arm's) planned daily dose of the drug
    for the ``weights_kg`` (kg; 170 cm where a dose is per m2), weights with the same
    schedule sharing one line (in the colour of the lightest of them, the same in
    every panel; each arm in a line style of its own); the legend gives the total
    over the course (mg).
    No adverse events, no dose modifications.

    Parameters
    ----------
    scenarios : Comparison or sequence of Scenario
        A comparison (its resolved scenarios and labels), or scenarios.
    labels : sequence of str, optional
        Column titles (default: the comparison's labels, or the scenarios' names).
    weights_kg : sequence of float
        Body weights, kg.
    """
    from sim.arms import arm_scenarios
    from sim.compare import Comparison
    from sim.regimens import Body, scenario_schedules

    if isinstance(scenarios, Comparison):
        definitions = list(scenarios.definitions)
        labels = list(labels or scenarios.scenarios)
    else:
        definitions = list(scenarios)
        labels = list(labels or [s.name for s in definitions])
    if len(labels) != len(definitions) or not definitions:
        raise ValueError("give one label per scenario, and at least one scenario")
    plans = []
    for scenario in definitions:
        arms = arm_scenarios(scenario)
        names = [a.name for a in scenario.arms] or [""]
        plans.append(
            [
                (name, {w: scenario_schedules(arm, Body(float(w), 170.0)) for w in weights_kg})
                for name, arm in zip(names, arms, strict=True)
            ]
        )
    drugs = list(
        dict.fromkeys(d for plan in plans for _, by_w in plan for by in by_w.values() for d in by)
    )
    end_week = max(a.treatment.duration_days for s in definitions for a in arm_scenarios(s))
    fig, axes = new_figure(
        len(drugs),
        len(plans),
        f"planned daily doses by scenario (weights {', '.join(f'{w:g}' for w in weights_kg)} kg)",
        sharey="row",
    )
    for j, (label, plan) in enumerate(zip(labels, plans, strict=True)):
        for i, drug in enumerate(drugs):
            ax = axes[i][j]
            lines = 0
            for a, (name, by_w) in enumerate(plan):
                groups: dict[Schedule, list[float]] = {}
                for w, by in by_w.items():
                    if drug in by:
                        groups.setdefault(by[drug], []).append(w)
                for schedule, weights in groups.items():
                    arm = f"{name}, " if name else ""
                    ax.stairs(
                        schedule.doses_mg_per_day,
                        np.append(schedule.change_days, schedule.end_day) / 7.0,
                        baseline=None,
                        # a weight keeps its colour in every panel; an arm, its line style
                        color=_colour(list(weights_kg).index(weights[0])),
                        linestyle=_ARM_STYLES[a % len(_ARM_STYLES)],
                        linewidth=1.4,
                        label=f"{arm}{', '.join(f'{w:g}' for w in weights)} kg: "
                        f"{schedule.total_mg:,.0f} mg",
                    )
                    lines += 1
            week_axis(ax, end_week / 7.0)
            ax.set_ylim(bottom=0)
            ax.set_ylabel(f"{drug}, mg/day")
            set_title(ax, f"{label}: {drug}")
            if lines:
                legend(ax, "upper right")
            else:
                ax.text(0.5, 0.5, "not given", ha="center", transform=ax.transAxes)
    return fig


#: The metrics :func:`sweep_response` draws by default, where compared: the steroid, the
#: harms, the disease and the timelines a protocol variant trades against each other.
RESPONSE_METRICS = (
    BURDEN_METRIC,
    "ae_serious_infection",
    "ae_hyperglycaemia",
    "ae_ild_relapse",
    "fvc_change_mean",
    "completed_by_deadline",
)


def swept_setting(comparison: Comparison) -> tuple[str, list[float]] | None:
    """The one numeric setting the comparison's scenarios differ in, and its values.

    None unless every pair of resolved scenarios differs in exactly one setting (name and
    description aside; :func:`sim.views.compare_report.differing_settings`), with a number
    in each: a one-way sweep (``--vary``) or hand-made variants of one number.
    """
    from sim.compare import differing_settings

    found = differing_settings([s.to_dict_json() for s in comparison.definitions])
    if len(found) != 1:
        return None
    key, values = found[0]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    return key, [float(v) for v in values]


def sweep_response(
    comparison: Comparison, key: str, values: Sequence[float], metrics: Sequence[str] | None = None
) -> Figure:
    """Each metric's mean over trials against the swept setting, with its ``level`` interval.

    One panel per metric (default :data:`RESPONSE_METRICS` that were compared): the mean
    over the replicate trials of each scenario (one per value of ``key``) with the t
    interval of the mean (``mean +/- t * MCSE``, the comparison's level), joined in
    the order of the values. The paired differences are in the forest.

    Parameters
    ----------
    comparison : Comparison
    key : str
        The swept setting's key path (e.g. ``prednisone.start_mg_per_kg``).
    values : sequence of float
        Its value in each scenario, in the comparison's order.
    metrics : sequence of str, optional
        Which metrics (default: :data:`RESPONSE_METRICS` present).
    """
    from scipy.stats import t as student_t

    chosen = [
        m for m in (metrics if metrics is not None else RESPONSE_METRICS) if m in comparison.metrics
    ]
    if not chosen:
        raise MissingData("none of the metrics was compared")
    if len(values) != len(comparison.scenarios):
        raise ValueError("give one value per scenario")
    fig, axes = _panels(
        len(chosen),
        3,
        f"against {key} ({comparison.replicates} replicates each; bars: "
        f"{comparison.level_label} interval of the mean)",
    )
    order = np.argsort(values, kind="stable")
    x = np.asarray(values, dtype=float)[order]
    table = comparison.table
    for ax, metric in zip(axes.flat, chosen, strict=False):
        rows = table[table["metric"] == metric].set_index("scenario")
        mean = rows.loc[comparison.scenarios, "mean"].to_numpy(dtype=float)[order]
        se = rows.loc[comparison.scenarios, "mcse"].to_numpy(dtype=float)[order]
        n = rows.loc[comparison.scenarios, "n"].to_numpy(dtype=float)[order]
        q = student_t.ppf(0.5 + comparison.level / 2, np.maximum(n - 1, 1))
        ax.errorbar(x, mean, yerr=np.where(np.isfinite(se), q * se, 0), fmt="o-",
                    color="C0", capsize=3)  # fmt: skip
        label, unit = metric_label(metric)
        set_title(ax, label)
        ax.set_ylabel({"1": "share"}.get(unit, unit))
        ax.set_xticks(x)
        ax.set_xlabel(key.rsplit(".", 1)[-1])
    return fig
