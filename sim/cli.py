"""The ``dosesim`` command (``python -m sim`` is the same).

Bad input (a scenario, an option, a file) is reported as one line per problem
on stderr with exit status 2 and no traceback; ``dosesim check`` exits 1 when a
schedule differs from its golden file.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from sim import __version__
from sim.errors import DosesimError, Problem, ScenarioError

__all__ = ["main"]

EXIT_OK, EXIT_CHANGED, EXIT_BAD_INPUT = 0, 1, 2


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number > 0")
    return value


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be >= {minimum}")
        return value

    return parse


_positive_int = _whole_number(1)
_seed = _whole_number(0)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dosesim",
        description=(
            "Simulate trials that pair a glucocorticoid taper with a steroid-sparing "
            "drug. A planning tool, not a dosing aid for individual patients."
        ),
    )
    parser.add_argument("--version", action="version", version=f"dosesim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    overrides = argparse.ArgumentParser(add_help=False)
    overrides.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario value, e.g. prednisone.start_mg_per_kg=0.5 "
        "(repeatable; the value is read as TOML)",
    )

    p = sub.add_parser(
        "validate",
        parents=[overrides],
        help="check scenario files and report every problem",
        description="Check scenario files; print each one's name and hash, or every problem.",
    )
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    p.add_argument(
        "--resolved",
        action="store_true",
        help="print each resolved scenario as TOML (extends merged, every value explicit)",
    )

    p = sub.add_parser(
        "schedule",
        parents=[overrides],
        help="print the dose schedules a scenario prescribes for one patient",
        description="Print each drug's schedule for a patient of the given weight.",
    )
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--weight-kg", type=_positive_float, required=True, metavar="W")
    p.add_argument(
        "--csv",
        metavar="PATH",
        help="also write drug,start_day,end_day,dose_mg_per_day,cumulative_mg "
        "(one row per constant-dose segment, end_day exclusive)",
    )

    p = sub.add_parser(
        "exposure",
        parents=[overrides],
        help="PK exposure of the typical patient (and optionally a population) over the schedule",
        description=(
            "Steady-state exposure per constant-dose segment for the typical patient of the "
            "given weight (prednisolone unbound, MPA), optionally a concentration-time figure, "
            "and with --patients the between-patient spread of MPA AUC0-12 at the target dose."
        ),
    )
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--weight-kg", type=_positive_float, required=True, metavar="W")
    p.add_argument(
        "--plot", metavar="PATH", help="write the concentration-time figure (PNG, PDF, SVG)"
    )
    p.add_argument(
        "--csv",
        metavar="PATH",
        help="write drug,start_day,end_day,dose_mg_per_day,auc_tau_mg_h_per_l,"
        "auc_24h_mg_h_per_l,c_avg_mg_per_l,c_max_mg_per_l,c_min_mg_per_l",
    )
    p.add_argument(
        "--patients",
        type=_positive_int,
        metavar="N",
        help="also draw N patients of this weight (needs --seed)",
    )
    p.add_argument("--seed", type=_seed, metavar="S", help="seed for --patients")

    p = sub.add_parser(
        "cohort",
        parents=[overrides],
        help="simulate one cohort: screening, dosing, adverse events, exits",
        description=(
            "Simulate one replicate of the cohort model (all patients enrolled on day 0) and "
            "write patients.csv and events.csv; prints steroid burden, retention, exits and "
            "adverse events."
        ),
    )
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--patients", type=_positive_int, required=True, metavar="N")
    p.add_argument("--seed", type=_seed, required=True, metavar="S")
    p.add_argument(
        "--out", metavar="DIR", help="folder for patients.csv and events.csv (default results/NAME)"
    )

    p = sub.add_parser(
        "forecast",
        parents=[overrides],
        help="forecast last patient in and last visit, from the enrolment seen so far",
        description=(
            "Simulate the rest of the trial from --as-of: each site's screening rate gets its "
            "conjugate Gamma posterior from the observed enrolment (sites without data keep "
            "the prior). Reports last-patient-in and last-visit dates (median, 80 % and 95 % "
            "intervals), the probability of completing by the deadline, and how many more "
            "sites like the prior would give 80 %. Without --observed: the design-stage "
            "forecast."
        ),
    )
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument(
        "--observed",
        metavar="CSV",
        help="one row per enrolled patient: site,enrolled_date (optionally screened_date)",
    )
    p.add_argument("--as-of", type=_date, metavar="YYYY-MM-DD", help="data cut-off date")
    p.add_argument("--replicates", type=_positive_int, default=500, metavar="N")
    p.add_argument("--seed", type=_seed, default=1, metavar="S", help="seed (default 1)")
    p.add_argument(
        "--out", metavar="DIR", help="write forecast_replicates.csv and report.html here"
    )
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N")

    p = sub.add_parser(
        "run",
        parents=[overrides],
        help="simulate many replicate trials into a results folder",
        description=(
            "Simulate replicate trials (recruitment and cohort) and write the results folder: "
            "replicates.csv, summary.json, manifest.json, and for the first K replicates "
            "patients.csv, events.csv, dosing_nonmem.csv, ex.csv, ae.csv, ds.csv. Results are "
            "identical for any --workers or --scheduler."
        ),
    )
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--replicates", type=_positive_int, default=1000, metavar="N")
    p.add_argument("--seed", type=_seed, default=1, metavar="S", help="seed (default 1)")
    p.add_argument("--out", metavar="DIR", help="results folder (default results/NAME)")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://host:8786")
    p.add_argument(
        "--keep-patients",
        default="100",
        metavar="K|all",
        help="per-patient tables for the first K replicates (default 100)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "compare",
        parents=[overrides],
        help="compare scenarios run with the same seed: paired differences to the first",
        description=(
            "Run every scenario with the same seed (common random numbers) and print, per "
            "key metric, each scenario's mean with its Monte Carlo SE and the mean paired "
            "difference to the first scenario with its paired 95 % interval (and the "
            "unpaired one for reference). With one scenario and --vary KEY=V1,V2,...: a "
            "one-way sweep, the first value the reference. --set applies to every scenario."
        ),
    )
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    p.add_argument(
        "--vary",
        metavar="KEY=V1,V2,...",
        help="with one scenario: one variant per value (read as TOML), "
        "e.g. prednisone.start_mg_per_kg=0.5,0.75,1.0",
    )
    p.add_argument("--replicates", type=_positive_int, default=200, metavar="N")
    p.add_argument("--seed", type=_seed, default=1, metavar="S", help="seed (default 1)")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N")
    p.add_argument(
        "--out", metavar="DIR", help="write comparison.csv and comparison_forest.png here"
    )

    p = sub.add_parser(
        "report",
        help="write the HTML report of a results folder",
        description=(
            "Write one self-contained HTML file (figures embedded, no network needed) for a "
            "results folder of `dosesim run`: scenario, key numbers with intervals, figures, "
            "and the built-in validation checks."
        ),
    )
    p.add_argument("results", metavar="RESULTS_DIR")
    p.add_argument("-o", "--output", metavar="PATH", help="default RESULTS_DIR/report.html")

    p = sub.add_parser(
        "check",
        help="compare scenarios' schedules with their golden CSV files",
        description=(
            "Rebuild each scenario's schedules for reference weights 45, 60, 75, 90 "
            "and 110 kg and compare them with the golden CSVs; exit 1 on any "
            "difference. With no SCENARIO, every scenarios/*.toml is checked."
        ),
    )
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    p.add_argument(
        "--golden-dir",
        metavar="DIR",
        help="folder of golden CSVs (default: schedules/ beside each scenario)",
    )
    p.add_argument("--update", action="store_true", help="rewrite the golden files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 schedules changed, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        handler = {
            "validate": _validate,
            "schedule": _schedule,
            "exposure": _exposure,
            "cohort": _cohort,
            "forecast": _forecast,
            "run": _run,
            "report": _report,
            "compare": _compare,
            "check": _check,
        }
        return handler[args.command](args)
    except DosesimError as exc:
        print(_error_text(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("dosesim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `dosesim ... | head`): stop quietly.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _error_text(exc: DosesimError) -> str:
    if isinstance(exc, ScenarioError):
        lines = [f"error: {p}" for p in exc.problems]
        n = len(exc.problems)
        lines.append(f"dosesim: {n} problem{'s' if n != 1 else ''} found")
        return "\n".join(lines)
    return f"error: {exc}"


def _validate(args: argparse.Namespace) -> int:
    from sim.scenario import load_scenario

    problems: list[Problem] = []
    for path in args.scenarios:
        try:
            scenario = load_scenario(path, args.overrides)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        print(f"ok  {path}  (name {scenario.name}, sha256 {scenario.hash[:12]})")
        if args.resolved:
            print(scenario.to_toml())
    if problems:
        raise ScenarioError(problems)
    return EXIT_OK


def _schedule(args: argparse.Namespace) -> int:
    from sim.fileio import atomic_write_text
    from sim.golden import SCHEDULE_COLUMNS, fmt_number, rows_to_csv, schedule_rows
    from sim.scenario import load_scenario
    from sim.schedule import build_schedules

    scenario = load_scenario(args.scenario, args.overrides)
    schedules = build_schedules(scenario, args.weight_kg)
    print(
        f"{scenario.name} (sha256 {scenario.hash[:12]}): {fmt_number(args.weight_kg)} kg, "
        f"{scenario.treatment.duration_days} days of treatment"
    )
    for drug, schedule in schedules.items():
        per_day = (
            "once daily"
            if schedule.doses_per_day == 1
            else (f"{schedule.doses_per_day} doses a day")
        )
        print(f"\n{drug} ({per_day})")
        print(f"  {'days':>9}  {'weeks':>7}  {'mg/day':>8}  {'cumulative mg':>13}")
        for seg in schedule.segments():
            days = f"{seg.start_day}-{seg.end_day - 1}"
            weeks = f"{seg.start_day // 7 + 1}-{(seg.end_day - 1) // 7 + 1}"
            print(
                f"  {days:>9}  {weeks:>7}  {fmt_number(seg.dose_mg_per_day):>8}"
                f"  {seg.cumulative_mg:>13,.1f}"
            )
    if args.csv:
        atomic_write_text(args.csv, rows_to_csv(schedule_rows(schedules), SCHEDULE_COLUMNS))
        print(f"\nwrote {args.csv}")
    return EXIT_OK


EXPOSURE_COLUMNS = (
    "drug",
    "start_day",
    "end_day",
    "dose_mg_per_day",
    "auc_tau_mg_h_per_l",
    "auc_24h_mg_h_per_l",
    "c_avg_mg_per_l",
    "c_max_mg_per_l",
    "c_min_mg_per_l",
)


def _exposure(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from sim.exposure import (
        DRUG_OF_MOIETY,
        draw_etas,
        mpa_auc0_12_at_target,
        scenario_models,
        segment_exposure,
    )
    from sim.fileio import atomic_write_bytes, atomic_write_text
    from sim.golden import fmt_number, rows_to_csv
    from sim.scenario import load_scenario
    from sim.schedule import build_schedules
    from sim.streams import stream

    if args.patients is not None and args.seed is None:
        raise DosesimError("--patients needs --seed (results must be reproducible)")
    scenario = load_scenario(args.scenario, args.overrides)
    weight = args.weight_kg
    schedules = build_schedules(scenario, weight)
    models = scenario_models(scenario, weight)
    assert scenario.exposure is not None
    print(
        f"{scenario.name} (sha256 {scenario.hash[:12]}): typical {fmt_number(weight)} kg patient, "
        "steady state at each dose"
    )
    rows: list[dict[str, str]] = []
    names = {"prednisolone": "prednisolone (unbound)", "mpa": "mycophenolic acid (MPA)"}
    for moiety, model in models.items():
        schedule = schedules[DRUG_OF_MOIETY[moiety]]
        print(
            f"\n{names[moiety]} from {DRUG_OF_MOIETY[moiety]}: "
            f"half-life {float(model.half_life_h):.1f} h"
        )
        print(
            f"  {'days':>9}  {'mg/day':>7}  {'AUCtau':>8}  {'AUC24h':>8}  {'Cavg':>8}"
            f"  {'Cmax':>8}  {'Cmin':>8}   (AUC mg*h/L, C mg/L)"
        )
        for seg in segment_exposure(model, schedule):
            print(
                f"  {seg['start_day']:>4}-{seg['end_day'] - 1:<4}  "
                f"{fmt_number(seg['dose_mg_per_day']):>7}  {seg['auc_tau_mg_h_per_l']:8.3g}"
                f"  {seg['auc_24h_mg_h_per_l']:8.3g}  {seg['c_avg_mg_per_l']:8.3g}"
                f"  {seg['c_max_mg_per_l']:8.3g}  {seg['c_min_mg_per_l']:8.3g}"
            )
            rows.append({"drug": moiety, **{k: fmt_number(v) for k, v in seg.items()}})
    mpa_pk = scenario.exposure.mpa
    low, high = mpa_pk.auc0_12_window_low_mg_h_per_l, mpa_pk.auc0_12_window_high_mg_h_per_l
    target = mpa_auc0_12_at_target(scenario, models["mpa"])
    print(
        f"\nMPA AUC0-12 at the MMF target ({fmt_number(scenario.mmf.target_g_per_day)} g/day in "
        f"{scenario.mmf.doses_per_day} doses): {float(target):.1f} mg*h/L "
        f"(window {fmt_number(low)}-{fmt_number(high)})"
    )
    if args.patients is not None:
        n = args.patients
        etas = np.array([draw_etas(mpa_pk, stream(args.seed, "pk", "mpa", i)) for i in range(n)])
        auc = mpa_auc0_12_at_target(
            scenario, scenario_models(scenario, weight, {"mpa": etas})["mpa"]
        )
        q5, q50, q95 = np.percentile(auc, [5, 50, 95])
        print(
            f"{n} patients of {fmt_number(weight)} kg (seed {args.seed}): MPA AUC0-12 median "
            f"{q50:.1f} (5-95 %: {q5:.1f}-{q95:.1f}) mg*h/L; below {fmt_number(low)}: "
            f"{np.mean(auc < low):.1%}, within: {np.mean((auc >= low) & (auc <= high)):.1%}, "
            f"above {fmt_number(high)}: {np.mean(auc > high):.1%}"
        )
    if args.csv:
        atomic_write_text(args.csv, rows_to_csv(rows, EXPOSURE_COLUMNS))
        print(f"\nwrote {args.csv}")
    if args.plot:
        from sim.plots import concentration_profiles

        fig = concentration_profiles(
            {
                "prednisolone (unbound), from prednisone": (
                    models["prednisolone"],
                    schedules["prednisone"],
                    "mg/L",
                ),
                "mycophenolic acid, from MMF": (models["mpa"], schedules["mmf"], "mg/L"),
            },
            f"{scenario.name}: typical {fmt_number(weight)} kg patient",
        )
        fmt = Path(args.plot).suffix.lstrip(".").lower() or "png"
        if fmt not in ("png", "pdf", "svg"):
            raise DosesimError(f"--plot {args.plot}: use a .png, .pdf or .svg file name")
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=120)
        atomic_write_bytes(args.plot, buf.getvalue())
        print(f"wrote {args.plot}")
    return EXIT_OK


def _cohort(args: argparse.Namespace) -> int:
    from sim.fileio import atomic_write_text
    from sim.model import simulate_cohort
    from sim.results import cohort_summary, format_cohort_summary
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario, args.overrides)
    result = simulate_cohort(scenario, args.patients, args.seed)
    out = Path(args.out) if args.out else Path("results") / scenario.name
    atomic_write_text(out / "patients.csv", result.patients.to_csv(index=False))
    atomic_write_text(out / "events.csv", result.events.to_csv(index=False))
    print(f"{scenario.name} (sha256 {scenario.hash[:12]}), seed {args.seed}")
    print(format_cohort_summary(cohort_summary(result)))
    print(f"wrote {out / 'patients.csv'} and {out / 'events.csv'}")
    return EXIT_OK


def _forecast(args: argparse.Namespace) -> int:
    from sim.forecast import forecast
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario, args.overrides)
    scenario.require("recruitment", purpose="a forecast")
    rec = scenario.recruitment
    assert rec is not None
    if args.observed is not None and args.as_of is None:
        raise DosesimError("--observed needs --as-of (the data cut-off date)")
    as_of = args.as_of or rec.start_date
    result = forecast(
        scenario, args.observed, as_of, args.replicates, args.seed, workers=args.workers
    )
    lines = _forecast_lines(scenario, args, as_of, result)
    print("\n".join(lines))
    if args.out:
        from sim.fileio import atomic_write_text
        from sim.report import render_page

        out = Path(args.out)
        atomic_write_text(out / "forecast_replicates.csv", result.replicates.to_csv(index=False))
        page = render_page(
            f"dosesim forecast: {scenario.name}",
            html_escape(f"As of {as_of}; {args.replicates} replicates; seed {args.seed}."),
            [("Forecast", "<pre>" + html_escape("\n".join(lines)) + "</pre>")],
            [("Last patient in and last visit", _forecast_figure(scenario, result))],
        )
        atomic_write_text(out / "report.html", page)
        print(f"wrote {out / 'forecast_replicates.csv'} and {out / 'report.html'}")
    return EXIT_OK


def html_escape(text: str) -> str:
    import html

    return html.escape(text)


def _forecast_figure(scenario: Any, result: Any) -> Any:
    """Histograms of the forecast last-patient-in and last-visit days, deadline marked."""
    from matplotlib.figure import Figure

    rec = scenario.recruitment
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, key, label in zip(
        axes,
        ("last_patient_in_day", "last_patient_last_visit_day"),
        ("last patient in", "last patient last visit"),
        strict=True,
    ):
        days = result.replicates[key].dropna()
        ax.hist(days, bins=30, color="C0", alpha=0.8)
        ax.axvline(rec.deadline_day, color="C3", linestyle="--", label=f"deadline {rec.deadline}")
        ax.set_xlabel(f"{label}, trial day (day 0 = {rec.start_date})")
        ax.set_ylabel("replicates")
        ax.legend(fontsize="small")
    return fig


def _forecast_lines(scenario: Any, args: argparse.Namespace, as_of: date, result: Any) -> list[str]:
    from sim.scenario import DAYS_PER_MONTH

    rec = scenario.recruitment
    out: list[str] = []
    s = result.summary
    kind = "design-stage forecast" if args.observed is None else "forecast"
    out.append(
        f"{scenario.name} (sha256 {scenario.hash[:12]}): {kind} as of {as_of}, "
        f"{args.replicates} replicates, seed {args.seed}"
    )
    out.append(
        f"enrolled so far: {s['observed_enrolled']} of {rec.target_enrolled}; "
        f"deadline {rec.deadline}"
    )
    for i, site in enumerate(rec.sites):
        shape, rate = result.posteriors[i]
        mean = shape / rate * DAYS_PER_MONTH
        spread = (
            f", 95 % {_gamma_q(shape, rate, 0.025):.2f}-{_gamma_q(shape, rate, 0.975):.2f}"
            if math.isfinite(shape)
            else " (known rate)"
        )
        out.append(f"  {site.name}: screening rate {mean:.2f} per month{spread}")
    for key, label in (
        ("last_patient_in", "last patient in"),
        ("last_patient_last_visit", "last patient last visit"),
    ):
        q = s[key]
        if q is None:
            out.append(f"{label}: no patient enrolled in any replicate")
            continue
        out.append(
            f"{label}: median {q['median']} (80 %: {q['interval_80'][0]} to "
            f"{q['interval_80'][1]}; 95 %: {q['interval_95'][0]} to {q['interval_95'][1]})"
        )
    out.append(f"P(target of {rec.target_enrolled} reached): {s['probability_target_reached']:.2f}")
    out.append(f"P(last visit by {rec.deadline}): {s['probability_completed_by_deadline']:.2f}")
    if result.sites_needed == 0:
        out.append("no more sites needed for 80 % probability of completing by the deadline")
    elif result.sites_needed is None:
        out.append(
            "more than 10 added sites would be needed for 80 % probability of completing "
            "by the deadline"
        )
    else:
        out.append(
            f"{result.sites_needed} more site(s) like the prior, opening "
            f"{rec.new_site_delay_days:g} days after {as_of}, give "
            f"P(completing by the deadline) = {result.sites_needed_probability:.2f} (>= 0.80)"
        )
    return out


def _gamma_q(shape: float, rate: float, q: float) -> float:
    from scipy.stats import gamma

    from sim.scenario import DAYS_PER_MONTH

    return float(gamma.ppf(q, shape, scale=1.0 / rate)) * DAYS_PER_MONTH


def _run(args: argparse.Namespace) -> int:
    from sim.runner import run
    from sim.scenario import load_scenario

    keep: int | None
    if args.keep_patients == "all":
        keep = None
    else:
        try:
            keep = int(args.keep_patients)
        except ValueError:
            raise DosesimError(
                f"--keep-patients {args.keep_patients!r}: a number or 'all'"
            ) from None
        if keep < 0:
            raise DosesimError(f"--keep-patients {keep}: must be >= 0")
    scenario = load_scenario(args.scenario, args.overrides)
    out = Path(args.out) if args.out else Path("results") / scenario.name
    result = run(
        scenario,
        args.replicates,
        args.seed,
        workers=args.workers,
        scheduler=args.scheduler,
        out=out,
        keep_patients=keep,
        resume=args.resume,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    head = f"{scenario.name} (sha256 {scenario.hash[:12]})"
    print(f"{head}: {args.replicates} replicates, seed {args.seed}")
    print(format_run_summary(result.summary))
    from sim.report import write_report

    report = write_report(out)
    print(f"results in {out}/ (report: {report})")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from sim.report import write_report

    path = write_report(args.results, args.output)
    print(f"wrote {path}")
    return EXIT_OK


def format_run_summary(summary: dict[str, Any]) -> str:
    """A few lines a planner reads first: steroid burden, retention, AEs, timelines."""
    m = summary["metrics"]

    def interval(key: str, fmt: str = ",.0f") -> str:
        e = m[key]
        return f"median {e['median']:{fmt}} (90 %: {e['p5']:{fmt}}-{e['p95']:{fmt}})"

    lines = [
        "steroid burden, per-trial median cumulative prednisone at week 52: "
        + interval("median_cumulative_prednisone_mg_week52")
        + " mg",
        "retention, completed fraction per trial: " + interval("completed_fraction", ".2f"),
    ]
    exits = ", ".join(
        f"{k} {m[k]['mean']:.2f}" for k in ("withdrawn", "died", "discontinued") if k in m
    )
    lines.append(f"exits per trial (mean): {exits}")
    aes = ", ".join(f"{k[3:]} {v['mean']:.2f}" for k, v in m.items() if k.startswith("ae_"))
    lines.append(f"adverse events per trial (mean): {aes}")
    for key, label in (
        ("last_patient_in_date", "last patient in"),
        ("last_patient_last_visit_date", "last patient last visit"),
    ):
        d = summary["dates"].get(key)
        if d:
            lines.append(f"{label}: median {d['median']} (90 %: {d['p5']} to {d['p95']})")
    p = summary["probabilities"]
    lines.append(
        f"P(target reached) {p['target_reached']['p']:.3f} "
        f"(MCSE {p['target_reached']['mcse']:.3f}); "
        f"P(last visit by {summary['deadline']}) {p['completed_by_deadline']['p']:.3f} "
        f"(MCSE {p['completed_by_deadline']['mcse']:.3f})"
    )
    return "\n".join(lines)


def _parse_vary(text: str) -> tuple[str, list[Any]]:
    """``KEY=V1,V2,...`` as the key and its values, each read as TOML like ``--set``."""
    import tomllib

    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key or not rest.strip():
        raise DosesimError(
            f"--vary {text!r}: must be KEY.PATH=V1,V2,..., e.g. prednisone.start_mg_per_kg=0.5,1.0"
        )
    try:
        values = list(tomllib.loads(f"v = [{rest}]")["v"])
    except tomllib.TOMLDecodeError:
        values = []
        for item in rest.split(","):
            if not item.strip():
                raise DosesimError(f"--vary {text!r}: an empty value") from None
            try:
                values.append(tomllib.loads(f"v = {item}")["v"])
            except tomllib.TOMLDecodeError:
                values.append(item.strip())  # a bare word is a string, as with --set
    if not values:
        raise DosesimError(f"--vary {text!r}: give at least one value")
    return key, values


def _compare(args: argparse.Namespace) -> int:
    import io

    from sim.compare import compare, format_comparison, sweep
    from sim.fileio import atomic_write_bytes, atomic_write_text
    from sim.scenario import load_scenario

    if not args.scenarios:
        raise DosesimError("compare: give one or more scenario files")
    if args.vary is not None:
        if len(args.scenarios) > 1:
            raise DosesimError(
                "--vary sweeps one scenario; give one scenario file with it "
                f"(got {len(args.scenarios)})"
            )
        key, values = _parse_vary(args.vary)
        base = load_scenario(args.scenarios[0], args.overrides)
        scenarios = sweep(base, key, values)
    else:
        if len(args.scenarios) < 2:
            raise DosesimError(
                "compare: nothing to compare; give two or more scenarios, or one with --vary"
            )
        problems: list[Problem] = []
        scenarios = []
        for path in args.scenarios:
            try:
                scenarios.append(load_scenario(path, args.overrides))
            except ScenarioError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ScenarioError(problems)
    result = compare(scenarios, args.replicates, args.seed, workers=args.workers)
    print(format_comparison(result))
    if args.out:
        from sim.plots import comparison_forest

        out = Path(args.out)
        atomic_write_text(out / "comparison.csv", result.to_csv())
        buf = io.BytesIO()
        comparison_forest(result).savefig(buf, format="png", dpi=120)
        atomic_write_bytes(out / "comparison_forest.png", buf.getvalue())
        from sim.report import frame_html, render_page

        names = ", ".join(s.name for s in scenarios)
        page = render_page(
            "dosesim comparison",
            html_escape(
                f"Scenarios {names}; {args.replicates} replicates each with seed {args.seed} "
                "(common random numbers). Differences are to the first scenario; the paired "
                "95 % interval uses the per-replicate differences."
            ),
            [("Comparison", frame_html(result.table))],
            [("Paired differences with 95 % intervals", comparison_forest(result))],
        )
        atomic_write_text(out / "report.html", page)
        print(
            f"\nwrote {out / 'comparison.csv'}, {out / 'comparison_forest.png'} "
            f"and {out / 'report.html'}"
        )
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from sim.golden import check_scenario
    from sim.scenario import load_scenario

    files = [Path(p) for p in args.scenarios]
    if not files:
        files = sorted(Path("scenarios").glob("*.toml"))
        if not files:
            raise DosesimError("no scenarios given and no scenarios/*.toml here")
    if args.golden_dir is not None and not Path(args.golden_dir).is_dir() and not args.update:
        raise DosesimError(f"--golden-dir {args.golden_dir}: no such folder")
    problems: list[Problem] = []
    loaded = []
    for f in files:
        try:
            loaded.append((f, load_scenario(f)))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    changed = 0
    for f, scenario in loaded:
        result = check_scenario(scenario, f, args.golden_dir, update=args.update)
        if args.update:
            state = "updated" if result.updated else "unchanged"
            print(f"{state:9} {result.golden_file}")
        elif result.ok:
            print(f"ok        {f}")
        else:
            changed += 1
            print(f"CHANGED   {f}  (golden file {result.golden_file})")
            for line in result.differences:
                print(f"  {line}")
    if changed:
        print(
            f"\n{changed} of {len(loaded)} scenario(s) prescribe schedules that differ from "
            "their golden files. If the change is intended, run `dosesim check --update` "
            "and commit the golden files."
        )
        return EXIT_CHANGED
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
