"""HTML for notebooks: how a scenario, a schedule and a run result show in Jupyter."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sim.trial.milestones import level_quantiles

if TYPE_CHECKING:
    from sim.runner import RunResult
    from sim.scenario import Scenario
    from sim.schedule import Schedule

__all__ = ["run_html", "scenario_html", "schedule_html", "table_html"]

_STYLE = (
    "<style>.dosesim td,.dosesim th{padding:2px 8px;text-align:right}"
    ".dosesim th{text-align:left}.dosesim caption{text-align:left;font-weight:bold}</style>"
)


def _num(x: float) -> str:
    return f"{x:,.1f}" if abs(x) >= 100 else f"{x:.4g}"


def table_html(caption: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(_num(c) if isinstance(c, float) else str(c))}</td>" for c in row
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'{_STYLE}<table class="dosesim"><caption>{html.escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def scenario_html(s: Scenario) -> str:
    """The scenario's key settings and, folded, its resolved TOML."""
    p = s.prednisone
    if p is None:
        course = s.drugs["prednisone"].course
        prednisone = [("prednisone", f"a course of {len(course)} steps ([drugs.prednisone])")]
    else:
        per_kg = p.start_mg_per_kg
        start = f"{per_kg} mg/kg" if per_kg is not None else f"{p.start_mg} mg"
        prednisone = [
            ("prednisone start", f"{start}, cap {p.max_start_mg}, hold {p.initial_hold_days} days"),
            ("taper stages", str(len(p.stages))),
        ]
    rows: list[tuple[str, str]] = [
        ("hash (sha256)", s.hash[:12]),
        ("treatment", f"{s.treatment.duration_days} days"),
        *prednisone,
        (
            "MMF target",
            "none"
            if s.mmf is None
            else f"{s.mmf.target_g_per_day} g/day in {s.mmf.doses_per_day} doses",
        ),
        *((f"drug: {name}", f"{r.route}, {len(r.course)} steps") for name, r in s.drugs.items()),
        *(("arm", f"{a.name} (ratio {a.ratio})") for a in s.arms),
        ("adverse events", ", ".join(sorted(s.adverse_events)) or "none"),
    ]
    if s.recruitment is not None:
        r = s.recruitment
        rows.append(
            (
                "recruitment",
                f"{r.target_enrolled} patients, {len(r.sites)} site(s), {r.start_date} to "
                f"{r.deadline}, {r.rate_model}",
            )
        )
    toml = html.escape(s.to_toml())
    return (
        table_html(f"Scenario {s.name}", ("setting", "value"), rows)
        + f"<details><summary>resolved TOML</summary><pre>{toml}</pre></details>"
    )


def schedule_html(schedule: Schedule) -> str:
    """One row per constant-dose segment."""
    rows = [
        (f"{seg.start_day}-{seg.end_day - 1}", seg.dose_mg_per_day, seg.cumulative_mg)
        for seg in schedule.segments()
    ]
    per_day = "once daily" if schedule.doses_per_day == 1 else f"{schedule.doses_per_day}x daily"
    return table_html(
        f"Schedule ({per_day}, {schedule.end_day} days, {schedule.total_mg:,.1f} mg)",
        ("days", "mg/day", "cumulative mg"),
        rows,
    )


def run_html(result: RunResult) -> str:
    """Key metrics with their intervals and Monte Carlo SE, and the probabilities."""
    s = result.summary
    keys = [
        "median_cumulative_prednisone_mg_week52",
        "completed_fraction",
        "withdrawn",
        "died",
        "discontinued",
        "enrolled",
    ]
    keys += [k for k in s["metrics"] if k.startswith("ae_")]
    level = float(s.get("level", 0.9))
    low, high = (f"{100 * q:g} %" for q in level_quantiles(level))
    rows = [
        (k, m["mean"], m["median"], m["low"], m["high"], m["mcse"] or 0.0)
        for k in keys
        if (m := s["metrics"].get(k)) is not None
    ]
    rows += [(f"P({k})", v["p"], "", "", "", v["mcse"]) for k, v in s["probabilities"].items()]
    return table_html(
        f"{s['replicates']} replicates; {100 * level:g} % intervals",
        ("metric", "mean", "median", low, high, "MCSE"),
        rows,
    )
