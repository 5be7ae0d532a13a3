"""The planner's report: one self-contained HTML file from a results folder.

Figures are embedded as PNG data, styles inline: the file opens anywhere, with
no network. It shows the scenario (resolved settings, hash, seed), the key
numbers with intervals and Monte Carlo standard errors, the figures, and the
built-in validation checks with their status. The model description it links
to is ``docs/model.md`` in the dosesim repository.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from sim import __version__
from sim.endpoints import TRIAL_ENDPOINTS, compared_by_default
from sim.errors import DosesimError
from sim.fileio import atomic_write_text, check_regular_file
from sim.results.exports import ae_term
from sim.results.folder import MANIFEST, folder_lock, read_manifest, verify_files
from sim.results.summaries import summarise
from sim.runner import RunResult
from sim.scenario import Scenario
from sim.trial.milestones import DEFAULT_LEVEL, interval_label, level_quantiles
from sim.views import report_sections as sections_
from sim.views.figure_style import MissingData

__all__ = [
    "Check",
    "frame_html",
    "load_results",
    "render_page",
    "render_report",
    "validation_checks",
    "write_page",
    "write_report",
]

MODEL_DOC = "docs/model.md"
_TABLES = ("patients", "events", "dosing_nonmem", "ex", "ae", "ds")


@dataclass(frozen=True)
class Check:
    """One built-in validation check: what it compares, and whether it passed.

    Attributes
    ----------
    name : str
    status : str
        ``pass``, ``warn`` or ``fail``.
    detail : str
        The numbers compared.
    """

    name: str
    status: str
    detail: str


def load_results(folder: str | Path, level: float | None = None) -> tuple[Scenario, RunResult]:
    """Read a results folder written by ``dosesim run`` back into a scenario and a RunResult.

    The folder must be a complete run's: its ``manifest.json`` says so, and
    every file it lists has the sha256 recorded there (so no file of another
    command or run can be mixed in). The summary is recomputed from
    ``replicates.csv`` at ``level`` (default: the run's own).

    Raises
    ------
    DosesimError
        Not a run's folder, an incomplete one, or a file changed since.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DosesimError(f"{folder}: no such results folder")
    manifest = read_manifest(folder)
    if manifest is None:
        raise DosesimError(f"{folder}: not a results folder of dosesim run (no {MANIFEST})")
    kind = manifest.get("command", "run")
    if kind != "run":
        raise DosesimError(
            f"{folder}: holds the results of dosesim {kind}; dosesim report reads the folders "
            "of dosesim run and compare (dosesim forecast and power write their own report.html)"
        )
    if manifest.get("status", "complete") != "complete":
        raise DosesimError(
            f"{folder}: the run that writes this folder did not finish (it was stopped, or is "
            "still writing); finish it with dosesim run ... --resume"
        )
    verify_files(folder, manifest)
    try:
        replicates = pd.read_csv(check_regular_file(folder / "replicates.csv"))
        kept = {
            name: pd.read_csv(check_regular_file(folder / f"{name}.csv"), keep_default_na=True)
            for name in _TABLES
            if (folder / f"{name}.csv").exists()
        }
        scenario = Scenario.model_validate_json(json.dumps(manifest["scenario"]))
    except FileNotFoundError as exc:
        raise DosesimError(
            f"{folder}: not a results folder of dosesim run (missing {Path(exc.filename).name})"
        ) from None
    except (KeyError, ValueError, pd.errors.ParserError) as exc:
        raise DosesimError(f"{folder}: a results file is damaged ({exc})") from None
    try:
        files = tuple((f["path"], f["sha256"]) for f in manifest.get("scenario_files", []))
        scenario = scenario.with_provenance(files, tuple(manifest.get("overrides", [])))
        if level is None:
            try:
                level = float(json.loads((folder / "summary.json").read_text())["level"])
            except (OSError, KeyError, TypeError, ValueError):
                level = DEFAULT_LEVEL
        summary = summarise(replicates, scenario, level)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DosesimError(
            f"{folder}: replicates.csv or manifest.json is damaged ({type(exc).__name__}: {exc})"
        ) from None
    return scenario, RunResult(replicates, summary, folder, kept, manifest)


def validation_checks(scenario: Scenario, result: RunResult) -> list[Check]:
    """Checks of this run against closed forms and published anchors.

    * typical MPA AUC0-12 at 1 g twice daily within 45-80 mg*h/L (autoimmune
      data, parameters.md section 1c);
    * typical 70 kg prednisolone half-life within 2-4 h (label);
    * screen-failure fraction across replicates against the closed-form
      eligibility probability, within 4 SE;
    * every replicate present, and Monte Carlo SE of the key means below 5 %
      of their size (otherwise: run more replicates).
    """
    from sim.exposure import pk_model, steady_state_window_auc
    from sim.population import eligibility_probability

    checks: list[Check] = []
    if scenario.exposure is not None:
        mpa = pk_model(scenario.exposure.mpa, 70.0)
        auc = float(steady_state_window_auc(mpa, 2000.0, 2, 12.0))
        checks.append(
            Check(
                "typical MPA AUC0-12 at 1 g twice daily in 45-80 mg*h/L",
                "pass" if 45 <= auc <= 80 else "warn",
                f"{auc:.1f} mg*h/L",
            )
        )
        t_half = float(pk_model(scenario.exposure.prednisolone, 70.0).half_life_h)
        checks.append(
            Check(
                "typical 70 kg prednisolone half-life in 2-4 h",
                "pass" if 2 <= t_half <= 4 else "warn",
                f"{t_half:.2f} h",
            )
        )
    table = result.replicates
    if scenario.population is not None and len(table):
        p = eligibility_probability(scenario.population, scenario.eligibility)
        screened = float(table["screened"].sum())
        eligible = float(table["enrolled"].sum())
        observed = eligible / screened if screened else math.nan
        se = math.sqrt(p * (1 - p) / screened) if screened else math.nan
        ok = screened > 0 and abs(observed - p) <= 4 * se
        checks.append(
            Check(
                "eligible share of screened people = closed-form eligibility probability",
                "pass" if ok else "fail",
                f"{observed:.4f} vs {p:.4f} (4 SE = {4 * se:.4f}; {screened:,.0f} screened)",
            )
        )
    expected = result.summary.get("replicates", len(table))
    checks.append(
        Check(
            "every replicate present, in order",
            "pass" if list(table["replicate"]) == list(range(expected)) else "fail",
            f"{len(table)} of {expected}",
        )
    )
    for key in ("completed_fraction", "median_cumulative_prednisone_mg_week52"):
        m = result.summary["metrics"].get(key)
        if not m or not m.get("mcse"):
            continue
        rel = m["mcse"] / abs(m["mean"]) if m["mean"] else math.inf
        checks.append(
            Check(
                f"Monte Carlo SE of mean {key} below 5 % of the mean",
                "pass" if rel < 0.05 else "warn",
                f"MCSE {m['mcse']:.4g} ({rel:.2%} of {m['mean']:.4g})",
            )
        )
    return checks


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode("ascii")


Drawn = tuple[str, "Figure | str"]
"""A report figure: its title, and the figure or the note that stands in its place."""


def _glucocorticoid(scenario: Scenario) -> str:
    """The EXTRT of the glucocorticoid (the drug named prednisone) of any arm."""
    from sim.arms import arm_scenarios
    from sim.drugs import scenario_drugs

    return scenario_drugs(arm_scenarios(scenario)[0])[0].treatment


def _figures(scenario: Scenario, result: RunResult, level: float) -> list[Drawn]:
    """Every planner figure, or a visible note where its input is legitimately absent.

    Raises
    ------
    DosesimError
        A figure that should be drawable cannot be (a damaged folder).
    """
    from sim.views import plots

    candidates: list[tuple[str, Callable[[], Figure]]] = [
        ("Dose schedules", lambda: plots.dose_schedules(scenario)),
        (
            "Cumulative prednisone",
            lambda: plots.cumulative_prednisone(result, level, _glucocorticoid(scenario)),
        ),
        (
            "MPA AUC0-12 against the target window",
            lambda: plots.mpa_auc_distribution(result, scenario),
        ),
        (
            "Cumulative incidence (Aalen-Johansen)",
            lambda: plots.cumulative_incidence(result, level),
        ),
        ("Enrolment", lambda: plots.enrolment_fan(result, scenario, level=level)),
        (
            "When the target is reached, and the last visit",
            lambda: plots.milestone_dates(result, scenario, level),
        ),
    ]
    return draw_figures(candidates, str(result.out or "the run"))


def draw_figures(
    candidates: Sequence[tuple[str, Callable[[], Figure]]], source: str | None = None
) -> list[Drawn]:
    """Each report figure drawn, or a visible note in its place where its input is
    legitimately absent (:class:`~sim.views.figure_style.MissingData`).

    Parameters
    ----------
    candidates : sequence of (title, draw)
        The figures' titles and the functions that draw them.
    source : str, optional
        The results folder the figures are drawn from: a figure that cannot be drawn
        from it (``KeyError``, ``ValueError``, ``IndexError``) is then a
        :class:`DosesimError` naming it (a damaged folder) instead of the error itself.
    """
    figures: list[Drawn] = []
    for title, draw in candidates:
        try:
            figures.append((title, draw()))
        except MissingData as exc:
            figures.append((title, f"Not drawn: {exc}."))
        except (KeyError, ValueError, IndexError) as exc:
            if source is None:
                raise
            raise DosesimError(
                f"{source}: the figure {title!r} cannot be drawn "
                f"({type(exc).__name__}: {exc}); is a results file damaged?"
            ) from None
    return figures


def _figure_html(figures: list[Drawn]) -> str:
    out = []
    for title, fig in figures:
        out.append(f"<h3>{html.escape(title)}</h3>")
        if isinstance(fig, str):
            out.append(f"<p class='missing'>{html.escape(fig)}</p>")
        else:
            out.append(f"<img alt='{html.escape(title)}' src='data:image/png;base64,{_png(fig)}'>")
    return "".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.4}
h1{font-size:1.6em}
h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.pass{color:#126b1e;font-weight:bold}.warn{color:#9a6700;font-weight:bold}
.fail{color:#b00020;font-weight:bold}img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.85em}.note{color:#555}
.missing{border:1px dashed #b0b0b0;padding:1em;color:#555;background:#fafafa}
.summary{font-size:1.05em;background:#f3f7fb;border-left:4px solid #3b6ea5;padding:.6em 1em}
nav .contents{columns:2;font-size:.95em}details summary{cursor:pointer;color:#3b6ea5}
table{max-width:100%;display:block;overflow-x:auto}
"""


_SELF_CHECK = """<script>
/* Self-check for tests and readers: how many figures decoded, and any script errors. */
window.addEventListener("error", function (e) {
  document.body.dataset.errors = (document.body.dataset.errors || "") + e.message + ";";
});
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var shown = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.dataset.figures = shown + "/" + imgs.length;
  document.body.dataset.width = document.documentElement.scrollWidth;
});
</script>"""


def render_page(
    title: str,
    intro: str,
    sections: list[tuple[str, str]],
    figures: list[Drawn] | None = None,
    summary: str = "",
) -> str:
    """A self-contained page in the report's style: ``sections`` are (heading, HTML body).

    Used for the reports of ``dosesim compare``, ``forecast`` and ``power``. ``summary``
    (HTML) opens the page; a page of three sections or more has a table of contents,
    the figures (their own section) last.
    """
    fig_html = _figure_html(figures or [])
    headings = [h for h, _ in sections] + (["Figures"] if fig_html else [])
    body = "".join(f"{sections_.h2(h)}{b}" for h, b in sections)
    contents = sections_.contents_html(headings) if len(headings) >= 3 else ""
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>{intro} dosesim {__version__}; made {created}. A planning tool, not a dosing aid for
individual patients; the model is described in <code>{MODEL_DOC}</code> of the dosesim
repository.</p>
{summary}{contents}
{body}{sections_.h2("Figures") + fig_html if fig_html else ""}
{_SELF_CHECK}
</body></html>
"""


def frame_html(frame: pd.DataFrame) -> str:
    """A DataFrame as a report table."""
    return sections_.table_html(
        [str(c) for c in frame.columns], frame.astype(object).values.tolist()
    )


def _arms_html(s: dict[str, Any], labels: dict[str, str], low: str, high: str) -> str:
    """Each arm's metrics and each arm's difference from the first, median and interval
    over replicates (the difference within a replicate: what a trial of this size sees)."""
    arms = s["arms"]
    metrics = s["metrics"]
    ref = arms["reference"]
    about = sections_.table_html(
        ["arm", "ratio", "what it is"],
        [
            [n, r, lab]
            for n, r, lab in zip(arms["names"], arms["ratios"], arms["labels"], strict=True)
        ],
    )
    keys = [k for k in labels if f"arm_{ref}_{k}" in metrics]
    keys += sorted(k.removeprefix(f"arm_{ref}_") for k in metrics if k.startswith(f"arm_{ref}_ae_"))
    rows: list[list[Any]] = []
    for key in keys:
        name = labels.get(key, f"{key[3:]} events per trial" if key.startswith("ae_") else key)
        for arm in arms["names"]:
            m = metrics.get(f"arm_{arm}_{key}")
            if m is not None:
                rows.append([name, arm, m["median"], m["low"], m["high"]])
        for arm in arms["names"][1:]:
            m = metrics.get(f"diff_{arm}_{key}")
            if m is not None:
                rows.append([name, f"{arm} - {ref}", m["median"], m["low"], m["high"]])
    return about + sections_.table_html(["metric", "arm or difference", "median", low, high], rows)


_TRADE_OFF_ROWS = (
    ("median_cumulative_prednisone_mg_week52", "median cumulative prednisone at week 52, mg"),
    ("completed_fraction", "completed fraction"),
    ("fvc_change_mean", "mean FVC change at the landmark, % predicted"),
    ("treg_change_mean", "mean Treg change at the landmark, % of CD4+"),
)


def _trade_off_html(s: dict[str, Any], low: str, high: str) -> str:
    """Harms against disease control, per trial or per arm: the trade-off of a protocol.

    Each row is a metric of one replicate trial (median and interval over replicates);
    with arms, a column group per arm (the arm's own patients).
    """
    metrics = s["metrics"]
    arms = s.get("arms")
    groups = [(f"arm_{n}_", n) for n in arms["names"]] if arms else [("", "trial")]
    keys = [k for k in metrics if k.startswith("ae_")]
    rows: list[list[Any]] = []
    events = [(k, f"{ae_term(k[3:])} events") for k in keys]
    for key, what in (*_TRADE_OFF_ROWS[:2], *events, *_TRADE_OFF_ROWS[2:]):
        found = [metrics.get(f"{prefix}{key}") for prefix, _ in groups]
        if all(m is None for m in found):
            continue
        for (_, name), m in zip(groups, found, strict=True):
            if m is not None:
                rows.append([what, name, m["median"], m["low"], m["high"]])
    if not rows:
        return ""
    power = s.get("probabilities", {}).get("fvc_significant")
    note = (
        f"<p>Primary analysis significant in {power['p']:.3f} of the replicates (power; "
        f"MCSE {power['mcse']:.3f}).</p>"
        if power
        else ""
    )
    about = (
        "<p class='note'>What the protocol costs in steroid and harms against what it buys "
        "in disease control, per replicate trial (median and interval over replicates). "
        "Relapses and exacerbations lower FVC and bring rescue therapy (docs/model.md, "
        '"The disease: FVC").</p>'
    )
    return (
        about
        + sections_.table_html(["metric", "arm" if arms else "", "median", low, high], rows)
        + note
    )


def render_report(
    scenario: Scenario,
    result: RunResult,
    figures: list[Drawn] | None = None,
    extra_sections: list[tuple[str, str]] | None = None,
) -> str:
    """The report as one HTML string (figures embedded, no external resources).

    Intervals are at the summary's level (``result.summary["level"]``); a
    figure whose input is absent (no kept patients) has a note in its place.
    """
    s = result.summary
    level = float(s.get("level", DEFAULT_LEVEL))
    label = interval_label(level)
    low_name, high_name = (f"{100 * q:g} %" for q in level_quantiles(level))
    seed = result.manifest.get("seed", "")
    figs = _figures(scenario, result, level) if figures is None else figures
    metrics = s["metrics"]
    key_rows = []
    labels = {
        **{
            n: f"{TRIAL_ENDPOINTS[n].label}, {TRIAL_ENDPOINTS[n].unit}"
            for n in compared_by_default()
        },
        "completed_fraction": "completed fraction",
        "withdrawn": "withdrawn per trial",
        "died": "died per trial",
        "discontinued": "discontinued per trial",
        "enrolled": "enrolled per trial",
        "screened": "screened per trial",
    }

    def cells(m: dict[str, Any]) -> list[Any]:
        return [m["mean"], m["median"], m["low"], m["high"], m["mcse"] or 0.0]

    for key, name in labels.items():
        if key in metrics:
            key_rows.append([name, *cells(metrics[key])])
    for key, m in metrics.items():
        if key.startswith("ae_"):
            key_rows.append([f"{ae_term(key[3:])} events per trial", *cells(m)])
    named = {"fvc_significant": "primary analysis significant (its power)"}
    prob_rows = [
        [named.get(k, k.replace("_", " ")), v["p"], v["mcse"]]
        for k, v in s.get("probabilities", {}).items()
    ]
    milestones = s.get("milestones")
    milestone_html = (
        sections_.table_html(
            ["milestone", low_name, "median", high_name], sections_.milestone_rows(milestones)
        )
        if milestones
        else ""
    )
    checks = validation_checks(scenario, result)
    check_rows = "".join(
        f"<tr><td>{html.escape(c.name)}</td><td class='{c.status}'>{c.status}</td>"
        f"<td>{html.escape(c.detail)}</td></tr>"
        for c in checks
    )
    sections = list(extra_sections or [])
    if s.get("arms"):
        sections.insert(0, ("Arms", _arms_html(s, labels, low_name, high_name)))
    patients = result.kept.get("patients") if result.kept else None
    more = [
        ("Adverse events: incidence", sections_.ae_incidence_html(patients)),
        ("Screen failures", sections_.screening_html(s)),
        ("Enrolment by site", sections_.sites_html(scenario, s)),
    ]
    sections += [(h, b) for h, b in more if b]
    trade_off = _trade_off_html(s, low_name, high_name) if "fvc_change_mean" in metrics else ""
    if trade_off:
        sections.insert(0, ("Trade-off: harms and disease control", trade_off))
    extra = "".join(f"{sections_.h2(t)}{body}" for t, body in sections)
    contents = sections_.contents_html(
        ["Key numbers", "Recruitment milestones", "Figures", *(t for t, _ in sections),
         "Built-in validation checks", "Scenario, resolved"]
    )  # fmt: skip
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    modified = (
        f"<p class='missing'>Modified by --set: {html.escape('; '.join(scenario.overrides))}. "
        "The numbers below are not those of the scenario file as written.</p>"
        if scenario.overrides
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dosesim report: {html.escape(scenario.label)}</title><style>{_CSS}</style></head>
<body>
<h1>dosesim report: {html.escape(scenario.label)}</h1>
<p class="note">{html.escape(scenario.description)}</p>
{modified}
<p>Scenario sha256 <code>{scenario.hash}</code>; seed {html.escape(str(seed))};
{s.get("replicates", len(result.replicates))} replicates; dosesim {__version__}; made {created}.
A planning tool, not a dosing aid for individual patients. The model, every default and its
source are described in <code>{MODEL_DOC}</code> of the dosesim repository.</p>
{sections_.executive_summary(scenario, s)}
{contents}
{sections_.h2("Key numbers")}
<p class="note">Per replicate trial: mean, median and {label} interval over replicates
({low_name} to {high_name}), and the Monte Carlo standard error of the mean.</p>
{sections_.table_html(["metric", "mean", "median", low_name, high_name, "MCSE"], key_rows)}
{sections_.table_html(["probability", "estimate", "MCSE"], prob_rows)}
{sections_.h2("Recruitment milestones")}
<p class="note">A replicate that does not reach the target by the enrolment deadline has no day
the target is reached: it counts as later than the deadline in the first row, and is left out
of the last-patient rows, which describe the replicates that reach the target.</p>
{milestone_html}
<p>Deadline: {html.escape(str(s.get("deadline")))}.</p>
{sections_.h2("Figures")}
{_figure_html(figs) or "<p class='missing'>No figure could be drawn from this folder.</p>"}
{extra}
{sections_.h2("Built-in validation checks")}
<table><thead><tr><th>check</th><th>status</th><th>detail</th></tr></thead>
<tbody>{check_rows}</tbody></table>
{sections_.h2("Scenario, resolved")}
<details><summary>The resolved scenario (TOML), every setting as the run used it</summary>
<pre>{html.escape(scenario.to_toml())}</pre></details>
{_SELF_CHECK}
</body></html>
"""


def write_report(
    folder: str | Path, out: str | Path | None = None, level: float | None = None
) -> Path:
    """Write ``report.html`` (or ``out``) for the results folder of a run; returns its path.

    Parameters
    ----------
    folder : path
        A complete results folder of ``dosesim run`` (checked: :func:`load_results`).
    out : path, optional
        Where to write (default ``folder/report.html``).
    level : float, optional
        The intervals' level (default: the run's own, 0.9 unless it was run otherwise).
    """

    def make() -> str:
        scenario, result = load_results(folder, level)
        return render_report(scenario, result)

    return write_page(folder, out, make)


def write_page(folder: str | Path, out: str | Path | None, make: Callable[[], str]) -> Path:
    """Write the page ``make()`` renders from a results folder to ``out`` (default
    ``folder/report.html``); returns its path. Written into the folder, the folder is
    locked meanwhile (no command writes it while its report is made); written elsewhere,
    the folder is only read (it may be read-only)."""
    if not Path(folder).is_dir():
        raise DosesimError(f"{folder}: no such results folder")
    path = Path(out) if out is not None else Path(folder) / "report.html"
    if out is not None:
        atomic_write_text(path, make())
        return path
    with folder_lock(folder):
        atomic_write_text(path, make())
    return path
