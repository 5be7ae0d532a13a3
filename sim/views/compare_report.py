"""The comparison's report: what a steering committee reads to choose between protocols.

The page (:func:`render_comparison_report`) opens with a few sentences generated from
the numbers, then: the scenarios and their hashes; each scenario's absolute values
with the spread of single trials; the paired differences to the reference; the
settings that differ between the resolved scenarios; the figures (the planned
schedules side by side, the week-52 steroid burden, the cumulative incidence of
each adverse event, the enrolment fans and the milestone dates overlaid, the
forest of differences); and the manifest. :func:`write_comparison_report` makes
it from a comparison folder (``dosesim report FOLDER``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.compare import Comparison, differing_settings, with_milestones
from sim.results.dictionary import describe
from sim.results.exports import ae_term
from sim.trial.milestones import MILESTONE_METRICS, level_quantiles
from sim.views import compare_plots
from sim.views import report_sections as sections_
from sim.views.compare_plots import metric_label
from sim.views.report import Drawn, draw_figures, render_page, write_page

__all__ = [
    "render_comparison_report",
    "write_comparison_report",
]

#: The metrics the summary sentences speak of, when compared.
_HEADLINE = (
    compare_plots.BURDEN_METRIC,
    "completed_fraction",
    "fvc_change_mean",
    "fvc_significant",
    "completed_by_deadline",
)


#: Units not worth repeating after a label that names them ("patients withdrawn").
_PLAIN_UNITS = ("", "1", "patient", "person", "event")


def _binary(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(finite.size) and bool(np.isin(finite, (0.0, 1.0)).all())


def _number(x: float, unit: str) -> str:
    if not math.isfinite(x):
        return "n/a"
    if unit in ("mg", "day") or abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) >= 1 else f"{x:.2g}"


def _signed(x: float, unit: str) -> str:
    text = _number(x, unit)
    return text if text.startswith("-") or text == "n/a" or x == 0 else "+" + text


def _finite(table: pd.DataFrame, metric: str) -> np.ndarray:
    """The metric's finite per-replicate values (none where the table lacks it)."""
    if metric not in table.columns:
        return np.array([])
    values = np.asarray(table[metric], dtype=float)
    return values[np.isfinite(values)]


def _absolute_cell(x: np.ndarray, metric: str, unit: str, start: date | None, level: float) -> str:
    """One scenario's value of a metric: a share of trials with its MCSE for a yes/no
    outcome, else the mean with the central ``level`` of trials (and a milestone's date)."""
    if not x.size:
        return "n/a"
    if _binary(x):
        p = float(x.mean())
        return f"{100 * p:.0f} % (MCSE {100 * math.sqrt(p * (1 - p) / x.size):.1f})"
    lo, hi = np.quantile(x, level_quantiles(level))
    if unit == "1":  # a share per trial, e.g. of the enrolled who completed
        return f"{100 * x.mean():.0f} % ({100 * lo:.0f} to {100 * hi:.0f} %)"
    text = f"{_number(float(x.mean()), unit)} ({_number(lo, unit)} to {_number(hi, unit)})"
    if metric in MILESTONE_METRICS and start is not None:
        text += f", {(start + timedelta(days=round(float(x.mean())))).isoformat()}"
    return text


def _absolute_html(comparison: Comparison) -> str:
    """Each scenario's mean of every metric, with the central interval over trials."""
    tables = [
        with_milestones(comparison.results[label].replicates, scenario)
        for label, scenario in zip(comparison.scenarios, comparison.definitions, strict=True)
    ]
    starts = [s.recruitment.start_date if s.recruitment else None for s in comparison.definitions]
    rows = []
    for metric in comparison.metrics:
        name, unit = metric_label(metric)
        rows.append(
            [name + ("" if unit in _PLAIN_UNITS else f", {unit}")]
            + [
                _absolute_cell(_finite(t, metric), metric, unit, start, comparison.level)
                for t, start in zip(tables, starts, strict=True)
            ]
        )
    note = (
        f"<p class='note'>Per trial: the mean over {comparison.replicates:,} replicate trials "
        f"and, in brackets, the range of the central {comparison.level_label} of single "
        "trials (what one trial might see). Yes/no outcomes are the share of trials with "
        "its Monte Carlo standard error (percentage points). Milestone days are from each "
        "scenario's start date; the date is that of the mean.</p>"
    )
    return note + sections_.table_html(["metric", *comparison.scenarios], rows)


def _differences_html(comparison: Comparison) -> str:
    """Paired differences to the reference, bold where the interval excludes zero."""
    table = comparison.table
    others = comparison.scenarios[1:]
    if not others:
        return "<p>One scenario: nothing to compare it with.</p>"
    rows, strong = [], set()
    for i, metric in enumerate(comparison.metrics):
        name, unit = metric_label(metric)
        row = [name]
        for j, label in enumerate(others, start=1):
            r = table[(table["metric"] == metric) & (table["scenario"] == label)].iloc[0]
            scale, suffix = (100.0, " pp") if unit == "1" or "0; 1" in _allowed(metric) else (1, "")
            d, lo, hi = (float(r[c]) * scale for c in ("difference", "paired_low", "paired_high"))
            row.append(
                f"{_signed(d, unit)}{suffix} ({_signed(lo, unit)} to {_signed(hi, unit)})"
                if math.isfinite(d)
                else "n/a"
            )
            if math.isfinite(lo) and (lo > 0 or hi < 0):
                strong.add((i, j))
        rows.append(row)
    note = (
        f"<p class='note'>Mean of the per-trial differences to {html.escape(comparison.reference)}"
        f" (same seed: common random numbers) and its paired {comparison.level_label} "
        "confidence interval; bold where the interval excludes zero. Shares in percentage "
        "points (pp). The unpaired (Welch) intervals are in comparison.csv.</p>"
    )
    header = ["metric", *(f"{s} - {comparison.reference}" for s in others)]
    return note + sections_.table_html(header, rows, strong)


def _allowed(metric: str) -> str:
    return describe("replicates", metric)[2]


def _settings_html(comparison: Comparison) -> str:
    found = differing_settings([s.to_dict_json() for s in comparison.definitions])
    if not found:
        return "<p>The resolved scenarios differ only in name: every setting is the same.</p>"

    def text(v: Any) -> str:
        shown = "(not set)" if v is None else str(v)
        return shown if len(shown) <= 60 else shown[:57] + "..."

    rows = [[key, *(text(v) for v in values)] for key, values in found]
    note = (
        f"<p class='note'>{len(found)} settings of the resolved scenarios (every default "
        "filled in) differ; each scenario's full TOML is at the end of the page.</p>"
    )
    return note + sections_.table_html(["setting", *comparison.scenarios], rows)


def _scenarios_html(comparison: Comparison) -> str:
    rows = [
        [label, s.name, s.description[:90], s.hash[:16]]
        for label, s in zip(comparison.scenarios, comparison.definitions, strict=True)
    ]
    return sections_.table_html(["label", "scenario", "description", "sha256 (first 16)"], rows)


def _summary_html(comparison: Comparison) -> str:
    """A sentence per compared scenario: its headline numbers against the reference."""
    ref = comparison.reference
    table = comparison.table
    sentences = [
        f"{len(comparison.scenarios)} scenarios, {comparison.replicates:,} simulated trials "
        f"each with the same random numbers; {ref} is the reference."
    ]
    for label in comparison.scenarios[1:]:
        parts = []
        for metric in (m for m in _HEADLINE if m in comparison.metrics):
            name, unit = metric_label(metric)
            rows = table[table["metric"] == metric].set_index("scenario")
            a, b = float(rows.loc[ref, "mean"]), float(rows.loc[label, "mean"])
            lo, hi = float(rows.loc[label, "paired_low"]), float(rows.loc[label, "paired_high"])
            if not (math.isfinite(a) and math.isfinite(b)):
                continue
            share = unit == "1" or "0; 1" in _allowed(metric)
            shown = [f"{100 * x:.0f} %" if share else _number(x, unit) for x in (b, a)]
            clear = math.isfinite(lo) and (lo > 0 or hi < 0)
            parts.append(
                f"{sections_.lower_first(name)} {shown[0]} against {shown[1]}"
                + ("" if clear else " (no clear difference)")
            )
        if parts:
            sentences.append(f"{label}: " + "; ".join(parts) + ".")
    ae_rows = table[table["metric"].str.startswith("ae_") & (table["scenario"] != ref)]
    clear_aes = ae_rows[(ae_rows["paired_low"] > 0) | (ae_rows["paired_high"] < 0)]
    if len(clear_aes):
        top = clear_aes.loc[clear_aes["difference"].abs().idxmax()]
        sentences.append(
            f"The largest clear difference in adverse events: {ae_term(top['metric'][3:])}, "
            f"{top['difference']:+.2f} events per trial in {top['scenario']}."
        )
    return "<p class='summary'>" + html.escape(" ".join(sentences)) + "</p>"


def _figures(comparison: Comparison) -> list[Drawn]:
    from sim.views.plots import comparison_forest

    level = comparison.level
    candidates: list[tuple[str, Callable[[], Figure]]] = [
        ("Planned schedules", lambda: compare_plots.schedules_side_by_side(comparison)),
        ("Steroid burden at week 52", lambda: compare_plots.overlaid_burden(comparison)),
        ("Cumulative incidence", lambda: compare_plots.overlaid_incidence(comparison, level)),
        ("Enrolment", lambda: compare_plots.overlaid_enrolment(comparison, level)),
        ("Recruitment milestones", lambda: compare_plots.overlaid_milestones(comparison)),
        (
            f"Paired differences with {comparison.level_label} intervals",
            lambda: comparison_forest(comparison),
        ),
    ]
    swept = compare_plots.swept_setting(comparison)
    if swept is not None:  # a one-way sweep: the response to the setting, after the schedules
        key, values = swept
        candidates.insert(
            1,
            (f"Against {key}", lambda: compare_plots.sweep_response(comparison, key, values)),
        )
    return draw_figures(candidates)


def render_comparison_report(
    comparison: Comparison,
    manifest: dict[str, Any] | None = None,
    figures: list[Drawn] | None = None,
) -> str:
    """The comparison's report as one self-contained HTML page.

    Parameters
    ----------
    comparison : Comparison
        With its runs (replicate tables, kept patients and events) and resolved scenarios.
    manifest : dict, optional
        The folder's manifest, for the provenance section.
    figures : list, optional
        Figures already drawn (default: every figure of :mod:`sim.views.compare_plots`).
    """
    names = ", ".join(comparison.scenarios)
    intro = html.escape(
        f"Scenarios {names}; {comparison.replicates:,} replicate trials each with seed "
        f"{comparison.seed} (common random numbers); intervals {comparison.level_label}."
    )
    sections = [
        ("Scenarios", _scenarios_html(comparison)),
        ("Results per scenario", _absolute_html(comparison)),
        (f"Differences to {comparison.reference}", _differences_html(comparison)),
        ("Settings that differ", _settings_html(comparison)),
    ]
    if manifest:
        sections.append(("Manifest", sections_.manifest_html(manifest)))
    toml = "".join(
        f"<details><summary>{html.escape(label)}: the resolved scenario (TOML)</summary>"
        f"<pre>{html.escape(s.to_toml())}</pre></details>"
        for label, s in zip(comparison.scenarios, comparison.definitions, strict=True)
    )
    sections.append(("Scenarios, resolved", toml))
    return render_page(
        f"dosesim comparison: {names}",
        intro,
        sections,
        _figures(comparison) if figures is None else figures,
        summary=_summary_html(comparison),
    )


def write_comparison_report(
    folder: str | Path, out: str | Path | None = None, level: float | None = None
) -> Path:
    """Write ``report.html`` (or ``out``) for a comparison folder; returns its path.

    Parameters
    ----------
    folder : path
        A complete folder of ``dosesim compare`` (checked:
        :func:`sim.results.comparison_files.load_comparison`).
    out : path, optional
        Where to write (default ``folder/report.html``).
    level : float, optional
        The intervals' level (default: the comparison's own).
    """
    from sim.results.comparison_files import load_comparison

    def make() -> str:
        comparison, manifest = load_comparison(folder, level)
        return render_comparison_report(comparison, manifest)

    return write_page(folder, out, make)
