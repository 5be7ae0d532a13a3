"""The forecast's report: when will recruitment finish, and what would it take to finish on time?

Made from the forecast folder's files (``forecast_replicates.csv``,
``forecast_enrolment.csv``, ``summary.json``, the manifest with the resolved
scenario), so ``dosesim report`` can make it again: a few sentences from the
numbers, the milestones on dates, each site's screening rate before and after
the data, P(completing by the deadline) against the sites added, the manifest,
and the figures (enrolment seen then predicted, the site rates, the sites curve,
the milestone dates).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from sim.errors import DosesimError
from sim.fileio import check_regular_file
from sim.results.folder import read_manifest, verify_files
from sim.scenario import Scenario
from sim.trial.milestones import interval_label
from sim.views import forecast_plots
from sim.views import report_sections as sections_
from sim.views.recruitment_plots import milestone_dates
from sim.views.report import draw_figures, frame_html, render_page, write_page

__all__ = ["ForecastFiles", "load_forecast", "render_forecast_report", "write_forecast_report"]

ForecastFiles = tuple[Scenario, dict[str, Any], pd.DataFrame, pd.DataFrame, dict[str, Any]]
"""What a forecast folder holds: scenario, summary, replicates, enrolments, manifest."""


def load_forecast(folder: str | Path) -> ForecastFiles:
    """Read a complete forecast folder (every file's sha256 checked).

    Raises
    ------
    DosesimError
        Not a forecast's folder, an unfinished one, one of an earlier dosesim without the
        enrolment table, or a file changed since.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("command") != "forecast":
        raise DosesimError(f"{folder}: not a results folder of dosesim forecast")
    if manifest.get("status") != "complete":
        raise DosesimError(f"{folder}: the forecast that writes this folder did not finish")
    verify_files(folder, manifest)
    if "forecast_enrolment.csv" not in manifest.get("files", {}):
        raise DosesimError(
            f"{folder}: written by an earlier dosesim without forecast_enrolment.csv; run "
            "dosesim forecast again to make its report"
        )
    try:
        scenario = Scenario.model_validate_json(json.dumps(manifest["scenario"]))
        scenario = scenario.with_provenance((), tuple(manifest.get("overrides", [])))
        summary = json.loads(check_regular_file(folder / "summary.json").read_text())
        replicates = pd.read_csv(check_regular_file(folder / "forecast_replicates.csv"))
        enrolments = pd.read_csv(check_regular_file(folder / "forecast_enrolment.csv"))
    except (KeyError, TypeError, ValueError, pd.errors.ParserError) as exc:
        raise DosesimError(
            f"{folder}: a forecast file is damaged ({type(exc).__name__}: {exc})"
        ) from None
    return scenario, summary, replicates, enrolments, manifest


def _pct(p: float) -> str:
    return f"{100 * p:.0f} %"


def _summary_html(scenario: Scenario, s: dict[str, Any]) -> str:
    m = s["milestones"]
    level = interval_label(float(s["level"]))
    ttt = m["time_to_target"]
    end = m["enrolment_deadline"]

    def when(e: dict[str, Any]) -> str:
        return f"later than {end}" if e["later"] else str(e["date"])

    seen = (
        f"As of {s['as_of']}, {s['observed_enrolled']} of {m['target']} patients are enrolled."
        if s.get("observed")
        else f"A design-stage forecast from {s['as_of']} (no enrolment observed)."
    )
    sentences = [
        seen,
        f"In {s['replicates']:,} simulated continuations the target is reached by {end} in "
        f"{_pct(m['target_reached']['p'])}; the median date it is reached is "
        f"{when(ttt['median'])} ({level}: {when(ttt['low'])} to {when(ttt['high'])}).",
        f"The last patient's last visit falls by {m['deadline']} in "
        f"{_pct(m['completed_by_deadline']['p'])} of continuations.",
    ]
    needed = s.get("sites_needed")
    aim = _pct(float(s.get("search_probability", 0.8)))
    if needed == 0:
        sentences.append(f"No site needs adding for a {aim} chance of finishing on time.")
    elif needed is None:
        sentences.append(
            f"No number of added sites tried (up to {s.get('max_extra_sites')}) gives a "
            f"{aim} chance of finishing on time."
        )
    else:
        sentences.append(
            f"Adding {needed} site(s) like the prior gives a "
            f"{_pct(float(s['sites_needed_probability']))} chance of finishing on time "
            f"(aim {aim})."
        )
    return "<p class='summary'>" + html.escape(" ".join(sentences)) + "</p>"


def _milestones_html(s: dict[str, Any]) -> str:
    from sim.trial.milestones import level_quantiles

    m = s["milestones"]
    low, high = (f"{100 * q:g} %" for q in level_quantiles(float(s["level"])))
    probs = [
        [f"P(target reached by {m['enrolment_deadline']})",
         f"{m['target_reached']['p']:.3f}", f"{m['target_reached']['mcse']:.3f}"],
        [f"P(target reached and last visit by {m['deadline']})",
         f"{m['completed_by_deadline']['p']:.3f}", f"{m['completed_by_deadline']['mcse']:.3f}"],
    ]  # fmt: skip
    return sections_.table_html(
        ["milestone", low, "median", high], sections_.milestone_rows(m)
    ) + sections_.table_html(["probability", "estimate", "MCSE"], probs)


def _sites_html(s: dict[str, Any]) -> str:
    def belief(b: dict[str, Any]) -> str:
        return f"{b['mean_per_month']:.2f} ({b['low_per_month']:.2f} to {b['high_per_month']:.2f})"

    rows = []
    for site in s["sites"]:
        opened = (
            f"day {site['opened_day']:g}"
            if "opened_day" in site
            else f"median day {site.get('opened_day_median', math.nan):.0f}"
        )
        basis = f"{site['count']} {site['counts']}" if site.get("updated") else "not yet open"
        rows.append([site["name"], basis, opened, belief(site["prior"]), belief(site["posterior"])])
    level = interval_label(float(s["level"]))
    note = (
        f"<p class='note'>People screened per month: the mean and the {level} interval, "
        "before the data (prior) and given each site's own count and time open (posterior; "
        "a site not yet open keeps its prior).</p>"
    )
    return note + sections_.table_html(["site", "data", "opened", "prior", "posterior"], rows)


def _curve_html(s: dict[str, Any]) -> str:
    curve = s.get("sites_curve") or []
    if not curve:
        return "<p>No added sites were tried.</p>"
    frame = pd.DataFrame(curve)[["extra_sites", "replicates", "probability", "mcse"]]
    frame["probability"] = frame["probability"].map(lambda p: f"{p:.3f}")
    frame["mcse"] = frame["mcse"].map(lambda p: f"{p:.3f}")
    frame.columns = ["sites added", "replicates", "P(completing by the deadline)", "MCSE"]
    return frame_html(frame)


def render_forecast_report(
    scenario: Scenario,
    summary: dict[str, Any],
    replicates: pd.DataFrame,
    enrolments: pd.DataFrame,
    manifest: dict[str, Any] | None = None,
) -> str:
    """The forecast's report as one self-contained HTML page.

    Parameters
    ----------
    scenario : Scenario
    summary : dict
        The forecast's summary (``summary.json``).
    replicates : DataFrame
        ``forecast_replicates.csv``.
    enrolments : DataFrame
        ``forecast_enrolment.csv``: every replicate's enrolments.
    manifest : dict, optional
        The folder's manifest, for the provenance section.
    """
    level = float(summary["level"])
    rec = scenario.recruitment
    delay = rec.new_site_delay_days if rec is not None else None
    candidates: list[tuple[str, Callable[[], Figure]]] = [
        (
            "Enrolment: seen, then predicted",
            lambda: forecast_plots.forecast_enrolment(enrolments, summary, scenario, level),
        ),
        (
            "Sites: prior and posterior rates",
            lambda: forecast_plots.site_rates(summary["sites"], level),
        ),
        (
            "Finishing on time against sites added",
            lambda: forecast_plots.sites_curve(
                summary.get("sites_curve") or [],
                float(summary.get("search_probability", 0.8)),
                summary.get("sites_needed"),
                delay,
            ),
        ),
        ("Recruitment milestones", lambda: milestone_dates(replicates, scenario, level)),
    ]
    figures = draw_figures(candidates)
    sections = [
        ("Milestones", _milestones_html(summary)),
        ("Sites: screening rates", _sites_html(summary)),
        ("Added sites", _curve_html(summary)),
    ]
    if manifest:
        sections.append(("Manifest", sections_.manifest_html(manifest)))
    sections.append(
        (
            "Scenario, resolved",
            "<details><summary>The resolved scenario (TOML)</summary>"
            f"<pre>{html.escape(scenario.to_toml())}</pre></details>",
        )
    )
    source = "observed enrolment" if summary.get("observed") else "no observed enrolment"
    intro = html.escape(
        f"{scenario.label}: forecast as of {summary['as_of']} from {source}; "
        f"{summary['replicates']:,} replicates; intervals {interval_label(level)}; scenario "
        f"sha256 {scenario.hash[:16]}."
    )
    return render_page(
        f"dosesim forecast: {scenario.label}",
        intro,
        sections,
        figures,
        summary=_summary_html(scenario, summary),
    )


def write_forecast_report(
    folder: str | Path, out: str | Path | None = None, level: float | None = None
) -> Path:
    """Write ``report.html`` (or ``out``) for a forecast folder; returns its path.

    Parameters
    ----------
    folder : path
        A complete folder of ``dosesim forecast``.
    out : path, optional
        Where to write (default ``folder/report.html``).
    level : float, optional
        Must be the forecast's own level if given: the site intervals were computed at it.
    """

    def make() -> str:
        scenario, summary, replicates, enrolments, manifest = load_forecast(folder)
        if level is not None and not math.isclose(level, float(summary["level"])):
            raise DosesimError(
                f"{folder}: the forecast's intervals are {interval_label(summary['level'])}; "
                "run dosesim forecast again with --interval for another level"
            )
        return render_forecast_report(scenario, summary, replicates, enrolments, manifest)

    return write_page(folder, out, make)
