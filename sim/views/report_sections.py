"""Sections of the run report a committee reads first: the executive summary, the contents,
adverse-event incidence, screen failures and enrolment by site.

Each function takes the summary (:func:`sim.results.summaries.summarise`) and, where it
needs patients, the kept per-patient table, and returns an HTML fragment (empty when
its input is absent).
"""

from __future__ import annotations

import html
import re
from typing import Any

import numpy as np
import pandas as pd

from sim.results.exports import ae_term
from sim.scenario import Scenario

__all__ = [
    "ae_incidence_html",
    "contents_html",
    "executive_summary",
    "h2",
    "heading_id",
    "lower_first",
    "manifest_html",
    "milestone_rows",
    "readable",
    "screening_html",
    "sites_html",
    "table_html",
]

_ACRONYMS = {"fvc": "FVC", "mda5": "MDA5"}


def readable(name: str) -> str:
    """A screen-failure criterion as words, e.g. ``anti_mda5_positive`` -> ``Anti MDA5
    positive`` (adverse events have their own terms: :func:`sim.results.exports.ae_term`)."""
    text = " ".join(_ACRONYMS.get(w, w) for w in name.split("_"))
    return text[:1].upper() + text[1:]


def lower_first(text: str) -> str:
    """``text`` with its first letter lower-cased, unless it begins an acronym (FVC)."""
    return text if text[1:2].isupper() else text[:1].lower() + text[1:]


def _pct(p: float) -> str:
    return f"{100 * p:.0f} %"


def executive_summary(scenario: Scenario, summary: dict[str, Any]) -> str:
    """Three to five sentences from the numbers: recruitment, steroid, retention, the
    disease where modelled, and the most frequent adverse event."""
    m = summary["metrics"]
    probs = summary.get("probabilities", {})
    n = summary.get("replicates", 0)
    level = f"{100 * summary.get('level', 0.9):g} %"
    sentences = []
    rec = scenario.recruitment
    if rec is not None and "target_reached" in probs:
        sentences.append(
            f"In {n:,} simulated trials the target of {rec.target_enrolled} patients is reached "
            f"by the enrolment deadline in {_pct(probs['target_reached']['p'])} of trials, and "
            f"the last patient's last visit falls by {rec.deadline.isoformat()} in "
            f"{_pct(probs['completed_by_deadline']['p'])}."
        )
    burden = m.get("median_cumulative_prednisone_mg_week52")
    if burden:
        sentences.append(
            f"The median patient takes {burden['median']:,.0f} mg of prednisone by week 52 "
            f"({level} of trials: {burden['low']:,.0f} to {burden['high']:,.0f} mg)."
        )
    done = m.get("completed_fraction")
    if done:
        exits = ", ".join(
            f"{m[k]['mean']:.1f} {k}" for k in ("withdrawn", "died", "discontinued") if k in m
        )
        sentences.append(
            f"{_pct(done['median'])} of a trial's patients complete treatment (median); per "
            f"trial on average {exits}."
        )
    fvc = m.get("fvc_change_mean")
    if fvc:
        power = probs.get("fvc_significant")
        tail = (
            f"; the primary analysis is significant in {_pct(power['p'])} of trials (its power)"
            if power
            else ""
        )
        sentences.append(
            f"The mean change in FVC from baseline at the landmark is {fvc['median']:+.1f} "
            f"points ({level}: {fvc['low']:+.1f} to {fvc['high']:+.1f}){tail}."
        )
    aes = {k[3:]: v["mean"] for k, v in m.items() if re.fullmatch(r"ae_[a-z0-9_]+", k)}
    if aes:
        top = max(aes, key=aes.__getitem__)
        name = ae_term(top)
        sentences.append(
            f"The most frequent adverse event is {lower_first(name)}, "
            f"{aes[top]:.1f} events per trial."
        )
    return "<p class='summary'>" + html.escape(" ".join(sentences)) + "</p>"


def table_html(
    header: list[str], rows: list[list[Any]], strong: set[tuple[int, int]] | None = None
) -> str:
    """A report table: floats to three significant digits (whole numbers from 100),
    anything else as text; the cells ``(row, column)`` of ``strong`` in bold."""
    strong = strong or set()

    def cell(v: Any, bold: bool) -> str:
        if isinstance(v, float):  # three significant digits, whole numbers from 100
            v = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        text = html.escape(str(v))
        return f"<td><strong>{text}</strong></td>" if bold else f"<td>{text}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(cell(v, (i, j) in strong) for j, v in enumerate(row)) + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def heading_id(heading: str) -> str:
    """The ``id`` of a section heading, e.g. ``Scenario, resolved`` -> ``scenario-resolved``."""
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def h2(heading: str) -> str:
    """A section heading with its :func:`heading_id` (what :func:`contents_html` links to)."""
    return f"<h2 id='{heading_id(heading)}'>{html.escape(heading)}</h2>"


def contents_html(headings: list[str]) -> str:
    """A table of contents linking to the page's section headings (:func:`h2`)."""
    items = "".join(
        f"<li><a href='#{heading_id(h)}'>{html.escape(h)}</a></li>" for h in headings if h
    )
    return f"<nav><ol class='contents'>{items}</ol></nav>"


def ae_incidence_html(patients: pd.DataFrame | None) -> str:
    """Each adverse event's incidence over the kept patients: patients with at least one
    (%) and events per patient-year on study."""
    if patients is None or patients.empty or "exit_day" not in patients:
        return ""
    years = float(patients["exit_day"].sum()) / 365.25
    rows = []
    for column in sorted(c for c in patients.columns if c.startswith("ae_")):
        counts = patients[column].to_numpy(dtype=float)
        rows.append(
            [ae_term(column[3:]), f"{100 * float(np.mean(counts > 0)):.1f} %",
             f"{counts.sum() / years:.3f}" if years > 0 else "-", f"{int(counts.sum()):,}"]
        )  # fmt: skip
    if not rows:
        return ""
    about = (
        f"<p class='note'>Over the {len(patients):,} patients of the kept replicates "
        f"({years:,.0f} patient-years on study).</p>"
    )
    header = ["adverse event", "patients with >= 1", "events per patient-year", "events"]
    return about + table_html(header, rows)


def screening_html(summary: dict[str, Any]) -> str:
    """Screen failures by criterion, per trial (mean and median)."""
    m = summary["metrics"]
    rows = [
        [readable(k.removeprefix("failed_")), f"{v['mean']:.1f}", f"{v['median']:.0f}"]
        for k, v in sorted(m.items())
        if k.startswith("failed_")
    ]
    if not rows:
        return ""
    screened = m.get("screened")
    about = (
        f"<p class='note'>People screened per trial: mean {screened['mean']:.1f}. A person can "
        "fail several criteria.</p>"
        if screened
        else ""
    )
    return about + table_html(["criterion failed", "people per trial (mean)", "median"], rows)


def sites_html(scenario: Scenario, summary: dict[str, Any]) -> str:
    """Patients enrolled per trial at each site (mean and interval)."""
    m = summary["metrics"]
    rec = scenario.recruitment
    sites = rec.sites if rec is not None else []
    rows = []
    for i, site in enumerate(sites):
        e = m.get(f"enrolled_site_{i}")
        if e is not None:
            rows.append([site.name, f"{e['mean']:.1f}", f"{e['low']:.0f} to {e['high']:.0f}"])
    if not rows:
        return ""
    level = f"{100 * summary.get('level', 0.9):g} % interval"
    return table_html(["site", "enrolled per trial (mean)", level], rows)


def manifest_html(manifest: dict[str, Any]) -> str:
    """The provenance a reader checks: command line, seed, replicates, level, executor,
    package versions, and every file with its sha256."""
    keys = ("command_line", "seed", "replicates", "level", "executor", "workers", "started")
    rows = [[k.replace("_", " "), _shown(manifest[k])] for k in keys if k in manifest]
    versions = manifest.get("packages") or manifest.get("versions") or {}
    if isinstance(versions, dict):
        rows += [[f"{name} version", str(v)] for name, v in sorted(versions.items())]
    files = [[name, digest[:16]] for name, digest in sorted(manifest.get("files", {}).items())]
    return (
        table_html(["", "value"], rows)
        + "<p class='note'>Files of the folder and their sha256 (first 16 of 64; "
        "manifest.json has them whole):</p>" + table_html(["file", "sha256"], files)
    )


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def milestone_rows(m: dict[str, Any]) -> list[list[Any]]:
    """The milestone summary (:func:`sim.trial.milestones.recruitment_milestones`) as table
    rows: what, then the low, median and high dates."""

    def when(entry: dict[str, Any] | None) -> str:
        if entry is None:
            return "-"
        return f"later than {m['enrolment_deadline']}" if entry["later"] else str(entry["date"])

    rows: list[list[Any]] = [
        [
            "day the target is reached, all replicates (not reached counts as later)",
            when(m["time_to_target"]["low"]),
            when(m["time_to_target"]["median"]),
            when(m["time_to_target"]["high"]),
        ]
    ]
    for key, name in (
        ("last_patient_in", "last patient in"),
        ("last_patient_last_visit", "last patient last visit"),
    ):
        e = m[key]
        rows.append(
            [
                f"{name}, the {e['n']} replicates reaching the target",
                when(e["low"]),
                when(e["median"]),
                when(e["high"]),
            ]
        )
    e = m["enrolled"]
    rows.append([f"enrolled by {m['enrolment_deadline']}", e["low"], e["median"], e["high"]])
    return rows
