"""The ``dosesim`` command (``python -m sim`` is the same).

Bad input (a scenario, an option, a file, an occupied results folder) is
reported as one line per problem on stderr with exit status 2 and no
traceback; ``dosesim check`` exits 1 when a schedule differs from its golden
file; Ctrl-C exits 130 and SIGTERM 143, each after stopping the workers.

This module imports only the standard library and :mod:`sim.errors` at import
time: ``dosesim --help`` and ``--version`` answer without loading numpy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from sim import __version__
from sim.errors import DosesimError, Problem, ScenarioError, Terminated

__all__ = ["main"]

EXIT_OK, EXIT_CHANGED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143

#: Defaults shown in the help and used by the handlers.
DEFAULT_INTERVAL_PERCENT = 90.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0  # = sim.executors.DEFAULT_CONNECT_TIMEOUT_S (checked by a test)

_EPILOG = (
    "Every command is described with examples in README.md, and the model (every "
    "equation, default and source) in docs/model.md, both in the dosesim repository. "
    "A planning tool, not a dosing aid for individual patients."
)


#: The bounds every numeric option is checked against (the help states them).
LIMITS = {
    "weight_kg": (1.0, 500.0),
    "patients": (1, 1_000_000),
    "exposure_patients": (1, 10_000_000),
    "replicates": (1, 1_000_000),
    "seed": (0, 2**63 - 1),
    "workers": (1, 256),
    "connect_timeout_s": (0.1, 3600.0),
}


def _number_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number from ``low`` to ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:  # NaN fails too
            raise argparse.ArgumentTypeError(f"{text!r} must be from {low:g} to {high:g}")
        return value

    return parse


def _whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``minimum`` to ``maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{text!r} must be from {minimum} to {maximum:,}")
        return value

    return parse


_weight_kg = _number_in(*LIMITS["weight_kg"])
_connect_timeout = _number_in(*LIMITS["connect_timeout_s"])
_patients = _whole_number(*LIMITS["patients"])  # type: ignore[arg-type]
_exposure_patients = _whole_number(*LIMITS["exposure_patients"])  # type: ignore[arg-type]
_replicates = _whole_number(*LIMITS["replicates"])  # type: ignore[arg-type]
_seed = _whole_number(*LIMITS["seed"])  # type: ignore[arg-type]
_workers = _whole_number(*LIMITS["workers"])  # type: ignore[arg-type]


def _percent(text: str) -> float:
    """``--interval``: a percent in (0, 100), returned as a fraction."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1.0 <= value < 100.0:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a percent from 1 to below 100, e.g. 90 (not 0.9)"
        )
    return value / 100.0


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
            "drug: dose schedules, exposure, adverse events, retention, recruitment "
            "timelines. A planning tool, not a dosing aid for individual patients."
        ),
        epilog=_EPILOG,
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
        "(repeatable; the value is read as TOML; none by default). A scenario changed "
        "this way is labelled as modified and gets results folders of its own",
    )
    interval = argparse.ArgumentParser(add_help=False)
    interval.add_argument(
        "--interval",
        type=_percent,
        default=DEFAULT_INTERVAL_PERCENT / 100.0,
        metavar="PERCENT",
        help="the central interval reported over replicates (or patients), in percent "
        f"(default {DEFAULT_INTERVAL_PERCENT:g}: the 5th to the 95th percentile)",
    )
    executor = argparse.ArgumentParser(add_help=False)
    executor.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="local worker processes, 1-256; results are identical for any number (default 1)",
    )
    executor.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing Dask cluster, e.g. tcp://host:8786 (needs "
        "pip install 'dosesim[dask]'; overrides --workers; default: not used)",
    )
    executor.add_argument(
        "--connect-timeout",
        type=_connect_timeout,
        default=DEFAULT_CONNECT_TIMEOUT_S,
        metavar="SECONDS",
        help="give up on a --scheduler that does not answer within this time, before "
        f"anything is written (default {DEFAULT_CONNECT_TIMEOUT_S:g})",
    )
    executor.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (default: a bar on stderr when it is a terminal)",
    )

    def folder_options(p: argparse.ArgumentParser, kind: str, default: str) -> None:
        p.add_argument(
            "--out",
            metavar="DIR",
            help=f"results folder (default {default}); a folder holding other results is "
            "refused unless --overwrite",
        )
        p.add_argument(
            "--overwrite",
            action="store_true",
            help=f"first remove the results the folder holds (of any dosesim command) and "
            f"write this {kind}'s (default: refuse an occupied folder)",
        )

    p = sub.add_parser(
        "validate",
        parents=[overrides],
        help="check scenario files and report every problem",
        description="Check scenario files; print each one's name and hash, or every problem.",
        epilog=_EPILOG,
    )
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario TOML files")
    p.add_argument(
        "--resolved",
        action="store_true",
        help="also print each resolved scenario as TOML (extends merged, every value "
        "explicit; default: off)",
    )

    p = sub.add_parser(
        "schedule",
        parents=[overrides],
        help="print the dose schedules a scenario prescribes for one patient",
        description="Print each drug's schedule for a patient of the given weight.",
        epilog=_EPILOG,
    )
    p.add_argument("scenario", metavar="SCENARIO", help="a scenario TOML file")
    p.add_argument(
        "--weight-kg", type=_weight_kg, required=True, metavar="W", help="body weight, 1-500 kg"
    )
    p.add_argument(
        "--csv",
        metavar="PATH",
        help="also write drug,start_day,end_day,dose_mg_per_day,cumulative_mg "
        "(one row per constant-dose segment, end_day exclusive; default: not written)",
    )

    p = sub.add_parser(
        "exposure",
        parents=[overrides, interval],
        help="PK exposure of the typical patient (and optionally a population) over the schedule",
        description=(
            "Steady-state exposure per constant-dose segment for the typical patient of the "
            "given weight (prednisolone unbound, MPA), optionally a concentration-time figure, "
            "and with --patients the between-patient spread of MPA AUC0-12 at the target dose."
        ),
        epilog=_EPILOG,
    )
    p.add_argument("scenario", metavar="SCENARIO", help="a scenario TOML file")
    p.add_argument(
        "--weight-kg", type=_weight_kg, required=True, metavar="W", help="body weight, 1-500 kg"
    )
    p.add_argument(
        "--plot",
        metavar="PATH",
        help="write the concentration-time figure (PNG, PDF, SVG; default: not written)",
    )
    p.add_argument(
        "--csv",
        metavar="PATH",
        help="write drug,start_day,end_day,dose_mg_per_day,auc_tau_mg_h_per_l,"
        "auc_24h_mg_h_per_l,c_avg_mg_per_l,c_max_mg_per_l,c_min_mg_per_l (default: not written)",
    )
    p.add_argument(
        "--patients",
        type=_exposure_patients,
        metavar="N",
        help="also draw N patients of this weight, up to 10,000,000 (needs --seed; default: none)",
    )
    p.add_argument("--seed", type=_seed, metavar="S", help="seed for --patients (no default)")

    p = sub.add_parser(
        "cohort",
        parents=[overrides, interval],
        help="simulate one cohort: screening, dosing, adverse events, exits",
        description=(
            "Simulate one replicate of the cohort model (all patients enrolled on day 0) and "
            "write patients.csv, events.csv and manifest.json; prints steroid burden, "
            "retention, exits and adverse events."
        ),
        epilog=_EPILOG,
    )
    p.add_argument("scenario", metavar="SCENARIO", help="a scenario TOML file")
    p.add_argument(
        "--patients",
        type=_patients,
        required=True,
        metavar="N",
        help="patients to enrol, 1-1,000,000",
    )
    p.add_argument("--seed", type=_seed, required=True, metavar="S", help="the seed (>= 0)")
    folder_options(p, "cohort", "results/NAME/cohort")

    p = sub.add_parser(
        "forecast",
        parents=[overrides, interval, executor],
        help="forecast when the target is reached and the last visit done, from the enrolment "
        "seen so far",
        description=(
            "Simulate the rest of the trial from --as-of: every site open during the observed "
            "period gets the posterior of its screening rate from its own enrolment (none "
            "included); a site not yet open keeps its prior. Reports the probability of "
            "reaching the target by the enrolment deadline, the day it is reached, last "
            "patient in and last visit among the replicates that reach it, the number "
            "enrolled, and how many more sites like the prior would give 80 % probability of "
            "completing by the deadline. Without --observed: the design-stage forecast."
        ),
        epilog=_EPILOG,
    )
    p.add_argument("scenario", metavar="SCENARIO", help="a scenario TOML file")
    p.add_argument(
        "--observed",
        metavar="CSV",
        help="one row per enrolled patient: site,enrolled_date (optionally screened_date); "
        "default: none, every site keeps its prior",
    )
    p.add_argument(
        "--as-of",
        type=_date,
        metavar="YYYY-MM-DD",
        help="data cut-off date (default: the scenario's start date)",
    )
    p.add_argument(
        "--replicates",
        type=_replicates,
        default=500,
        metavar="N",
        help="replicate trials to simulate, up to 1,000,000 (default 500)",
    )
    p.add_argument(
        "--search-replicates",
        type=_replicates,
        metavar="N",
        help="replicates per step of the added-sites search (default: min(--replicates, 200))",
    )
    p.add_argument("--seed", type=_seed, default=1, metavar="S", help="the seed (default 1)")
    folder_options(p, "forecast", "results/NAME/forecast-ASOF")

    p = sub.add_parser(
        "run",
        parents=[overrides, interval, executor],
        help="simulate many replicate trials into a results folder",
        description=(
            "Simulate replicate trials (recruitment and cohort) and write the results folder: "
            "replicates.csv, sites.csv, summary.json, manifest.json, report.html, and for the "
            "first K replicates patients.csv, events.csv, dosing_nonmem.csv, ex.csv, ae.csv, "
            "ds.csv. Results are identical for any --workers or --scheduler."
        ),
        epilog=_EPILOG,
    )
    p.add_argument("scenario", metavar="SCENARIO", help="a scenario TOML file")
    p.add_argument(
        "--replicates",
        type=_replicates,
        default=1000,
        metavar="N",
        help="replicate trials to simulate, up to 1,000,000 (default 1000)",
    )
    p.add_argument("--seed", type=_seed, default=1, metavar="S", help="the seed (default 1)")
    folder_options(p, "run", "results/NAME/run")
    p.add_argument(
        "--keep-patients",
        default="100",
        metavar="K|all",
        help="per-patient tables for the first K replicates, 0-1,000,000 or all (default 100)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in the folder (the same run only; default: off)",
    )

    p = sub.add_parser(
        "compare",
        parents=[overrides, interval, executor],
        help="compare scenarios run with the same seed: paired differences to the first",
        description=(
            "Run every scenario with the same seed (common random numbers) and print, per "
            "key metric, each scenario's mean with its Monte Carlo SE and the mean paired "
            "difference to the first scenario with its paired interval (and the unpaired "
            "one for reference). With one scenario and --vary KEY=V1,V2,...: a one-way "
            "sweep, the first value the reference. --set applies to every scenario."
        ),
        epilog=_EPILOG,
    )
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenario TOML files")
    p.add_argument(
        "--vary",
        metavar="KEY=V1,V2,...",
        help="with one scenario: one variant per value (read as TOML), "
        "e.g. prednisone.start_mg_per_kg=0.5,0.75,1.0 (default: none)",
    )
    p.add_argument(
        "--replicates",
        type=_replicates,
        default=200,
        metavar="N",
        help="replicate trials to simulate, up to 1,000,000 (default 200)",
    )
    p.add_argument("--seed", type=_seed, default=1, metavar="S", help="the seed (default 1)")
    folder_options(p, "comparison", "results/NAME/compare, or results/NAME/compare-vary-KEY")

    p = sub.add_parser(
        "report",
        parents=[interval],
        help="write the HTML report of a results folder of dosesim run",
        description=(
            "Write one self-contained HTML file (figures embedded, no network needed) for a "
            "results folder of `dosesim run`: scenario, key numbers with intervals, figures, "
            "and the built-in validation checks. The folder's files are checked against "
            "their sha256 in manifest.json first."
        ),
        epilog=_EPILOG,
    )
    p.add_argument("results", metavar="RESULTS_DIR", help="a folder written by dosesim run")
    p.add_argument(
        "-o", "--output", metavar="PATH", help="where to write (default RESULTS_DIR/report.html)"
    )

    p = sub.add_parser(
        "check",
        help="compare scenarios' schedules with their golden CSV files",
        description=(
            "Rebuild each scenario's schedules for reference weights 45, 60, 75, 90 "
            "and 110 kg and compare them with the golden CSVs; exit 1 on any "
            "difference. With no SCENARIO, every scenarios/*.toml is checked."
        ),
        epilog=_EPILOG,
    )
    p.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help="scenario files (default scenarios/*.toml)"
    )
    p.add_argument(
        "--golden-dir",
        metavar="DIR",
        help="folder of golden CSVs (default: schedules/ beside each scenario)",
    )
    p.add_argument(
        "--update", action="store_true", help="rewrite the golden files (default: only compare)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 schedules changed, 2 bad input).

    Ctrl-C gives 130 and SIGTERM 143, after the workers have been stopped and
    what was finished has been checkpointed.
    """
    args = _parser().parse_args(argv)
    args.command_line = ["dosesim", *(sys.argv[1:] if argv is None else argv)]
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
    }[args.command]
    from sim.executors import terminate_on_sigterm

    try:
        with terminate_on_sigterm():
            return handler(args)
    except DosesimError as exc:
        print(_error_text(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("dosesim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("dosesim: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        # The reader went away (e.g. `dosesim ... | head`): stop quietly.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


#: Problems printed at most; the rest are counted (a 40,000-key typo is one message).
MAX_PROBLEMS_SHOWN = 50


def _error_text(exc: DosesimError) -> str:
    if isinstance(exc, ScenarioError):
        lines = [f"error: {p}" for p in exc.problems[:MAX_PROBLEMS_SHOWN]]
        n = len(exc.problems)
        if n > MAX_PROBLEMS_SHOWN:
            lines.append(f"error: ... and {n - MAX_PROBLEMS_SHOWN} more problems like these")
        lines.append(f"dosesim: {n} problem{'s' if n != 1 else ''} found")
        return "\n".join(lines)
    return f"error: {exc}"


def _show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _head(scenario: Any) -> str:
    """The first words of every command's output: the scenario, marked if modified."""
    return f"{scenario.label} (sha256 {scenario.hash[:12]})"


def _folder(args: argparse.Namespace, kind: str, scenario: Any, detail: str | None = None) -> Path:
    from sim.folders import default_folder

    if args.out:
        return Path(args.out)
    return default_folder(kind, scenario.name, scenario.overrides, detail)


def _provenance(args: argparse.Namespace, scenario: Any) -> dict[str, Any]:
    from sim.runner import provenance

    return provenance(scenario, args.command_line)


def _validate(args: argparse.Namespace) -> int:
    from sim.scenario import load_scenario

    problems: list[Problem] = []
    for path in args.scenarios:
        try:
            scenario = load_scenario(path, args.overrides)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        print(f"ok  {path}  (name {scenario.label}, sha256 {scenario.hash[:12]})")
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
        f"{_head(scenario)}: {fmt_number(args.weight_kg)} kg, "
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
    print(f"{_head(scenario)}: typical {fmt_number(weight)} kg patient, steady state at each dose")
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
        # one block of draws from one stream: a million patients in a fraction of a second
        etas = draw_etas(mpa_pk, stream(args.seed, "exposure_patients", "mpa"), size=n)
        auc = mpa_auc0_12_at_target(
            scenario, scenario_models(scenario, weight, {"mpa": etas})["mpa"]
        )
        from sim.milestones import interval_label, level_quantiles

        q_low, q_high = level_quantiles(args.interval)
        q5, q50, q95 = np.quantile(auc, [q_low, 0.5, q_high])
        print(
            f"{n} patients of {fmt_number(weight)} kg (seed {args.seed}): MPA AUC0-12 median "
            f"{q50:.1f} ({interval_label(args.interval)}: {q5:.1f}-{q95:.1f}) mg*h/L; "
            f"below {fmt_number(low)}: "
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
            f"{scenario.label}: typical {fmt_number(weight)} kg patient",
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
    from sim.folders import ResultsFolder
    from sim.model import simulate_cohort
    from sim.results import cohort_summary, format_cohort_summary
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario, args.overrides)
    out = _folder(args, "cohort", scenario)
    identity = {
        "scenario_hash": scenario.hash,
        "scenario_name": scenario.name,
        "overrides": list(scenario.overrides),
        "seed": args.seed,
        "patients": args.patients,
    }
    provenance = {**_provenance(args, scenario), "executor": "this process", "workers": 1}
    data = scenario.to_dict_json()
    with ResultsFolder(out, "cohort", identity, args.overwrite, provenance, data) as folder:
        result = simulate_cohort(scenario, args.patients, args.seed)
        folder.begin()
        folder.write_text("patients.csv", result.patients.to_csv(index=False))
        folder.write_text("events.csv", result.events.to_csv(index=False))
        folder.complete({"scenario": scenario.to_dict_json()})
    print(f"{_head(scenario)}, seed {args.seed}")
    print(format_cohort_summary(cohort_summary(result, args.interval)))
    print(f"wrote {out / 'patients.csv'} and {out / 'events.csv'}")
    return EXIT_OK


def _forecast(args: argparse.Namespace) -> int:
    from sim.executors import Executor, connected
    from sim.folders import ResultsFolder, sha256_file
    from sim.forecast import forecast, read_observed
    from sim.recruitment import require_eligibility
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario, args.overrides)
    scenario.require("recruitment", "population", purpose="a forecast")
    rec = scenario.recruitment
    assert rec is not None
    if args.observed is not None and args.as_of is None:
        raise DosesimError("--observed needs --as-of (the data cut-off date)")
    as_of = args.as_of or rec.start_date
    require_eligibility(scenario)  # before any folder is made
    observed = read_observed(args.observed, scenario, as_of)  # bad data: before any folder
    for warning in observed.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    out = _folder(args, "forecast", scenario, as_of.isoformat())
    identity = {
        "scenario_hash": scenario.hash,
        "scenario_name": scenario.name,
        "overrides": list(scenario.overrides),
        "seed": args.seed,
        "replicates": args.replicates,
        "as_of": as_of.isoformat(),
        "observed_sha256": sha256_file(args.observed) if args.observed else None,
        "search_replicates": args.search_replicates,
    }
    provenance = {**_provenance(args, scenario), "observed": args.observed}
    # the scheduler must answer before the folder is touched
    with connected(args.scheduler, args.connect_timeout) as scheduler:
        executor = Executor(args.workers, scheduler)
        provenance.update(executor.describe() if scheduler is None else _on_dask(scheduler))
        data = scenario.to_dict_json()
        with ResultsFolder(out, "forecast", identity, args.overwrite, provenance, data) as folder:
            result = forecast(
                scenario,
                observed,
                as_of,
                args.replicates,
                args.seed,
                search_replicates=args.search_replicates,
                workers=args.workers,
                scheduler=scheduler,
                level=args.interval,
                progress=_show_progress(args),
                connect_timeout_s=args.connect_timeout,
            )
            _write_forecast(folder, args, scenario, as_of, result)
    print(f"wrote {out}/ (forecast_replicates.csv, summary.json, report.html)")
    return EXIT_OK


def _on_dask(client: Any) -> dict[str, Any]:
    """The manifest's description of a connected Dask client."""
    from sim.executors import Executor

    with Executor(scheduler=client) as executor:
        return executor.describe()


def _write_forecast(
    folder: Any, args: argparse.Namespace, scenario: Any, as_of: date, result: Any
) -> None:
    """Print the forecast and write its folder: replicates, summary, report, manifest."""
    from sim.plots import milestone_dates
    from sim.report import render_page
    from sim.results import format_forecast

    source = f" from {args.observed}" if args.observed else " (no observed data)"
    head = (
        f"{_head(scenario)}: {'forecast' if args.observed else 'design-stage forecast'} "
        f"as of {as_of}{source}, {args.replicates} replicates, seed {args.seed}"
    )
    lines = [head, *format_forecast(scenario, result)]
    print("\n".join(lines))
    folder.begin()
    folder.write_text(
        "forecast_replicates.csv", result.replicates.to_csv(index=False, lineterminator="\n")
    )
    folder.write_text("summary.json", _json(result.summary))
    figure = milestone_dates(result.replicates, scenario, args.interval)
    page = render_page(
        f"dosesim forecast: {scenario.label}",
        _html(f"As of {as_of}; {args.replicates} replicates; seed {args.seed}."),
        [("Forecast", "<pre>" + _html("\n".join(lines)) + "</pre>")],
        [("Recruitment milestones", figure)],
    )
    folder.write_text("report.html", page)
    folder.complete({"scenario": scenario.to_dict_json()})


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def _html(text: str) -> str:
    import html

    return html.escape(text)


def _keep(text: str) -> int | None:
    if text == "all":
        return None
    try:
        keep = int(text)
    except ValueError:
        raise DosesimError(f"--keep-patients {text!r}: a number or 'all'") from None
    if not 0 <= keep <= LIMITS["replicates"][1]:
        raise DosesimError(f"--keep-patients {keep}: must be from 0 to 1,000,000, or 'all'")
    return keep


def _run(args: argparse.Namespace) -> int:
    from sim.report import write_report
    from sim.results import format_run_summary
    from sim.runner import run
    from sim.scenario import load_scenario

    keep = _keep(args.keep_patients)
    scenario = load_scenario(args.scenario, args.overrides)
    out = _folder(args, "run", scenario)
    result = run(
        scenario,
        args.replicates,
        args.seed,
        workers=args.workers,
        scheduler=args.scheduler,
        out=out,
        keep_patients=keep,
        resume=args.resume,
        progress=_show_progress(args),
        level=args.interval,
        overwrite=args.overwrite,
        connect_timeout_s=args.connect_timeout,
        command_line=args.command_line,
    )
    print(f"{_head(scenario)}: {args.replicates} replicates, seed {args.seed}")
    print(format_run_summary(result.summary))
    report = write_report(out, level=args.interval)
    print(f"results in {out}/ (report: {report})")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from sim.report import write_report

    path = write_report(args.results, args.output, level=args.interval)
    print(f"wrote {path}")
    return EXIT_OK


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
    from sim.compare import compare, sweep
    from sim.executors import Executor, connected
    from sim.folders import ResultsFolder, default_folder
    from sim.scenario import load_scenario

    if not args.scenarios:
        raise DosesimError("compare: give one or more scenario files")
    detail = None
    if args.vary is not None:
        if len(args.scenarios) > 1:
            raise DosesimError(
                "--vary sweeps one scenario; give one scenario file with it "
                f"(got {len(args.scenarios)})"
            )
        key, values = _parse_vary(args.vary)
        base = load_scenario(args.scenarios[0], args.overrides)
        scenarios = sweep(base, key, values)
        detail = f"vary-{key}"
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
        base = scenarios[0]
    out = (
        Path(args.out) if args.out else default_folder("compare", base.name, base.overrides, detail)
    )
    identity = {
        "scenario_hashes": [s.hash for s in scenarios],
        "scenario_names": [s.name for s in scenarios],
        "overrides": list(base.overrides),
        "seed": args.seed,
        "replicates": args.replicates,
    }
    provenance = {
        "command_line": args.command_line,
        "overrides": list(base.overrides),
        "scenario_files": [
            {"path": path, "sha256": digest} for s in scenarios for path, digest in s.files
        ],
    }
    with connected(args.scheduler, args.connect_timeout) as scheduler:
        executor = Executor(args.workers, scheduler)
        provenance.update(executor.describe() if scheduler is None else _on_dask(scheduler))
        with ResultsFolder(out, "compare", identity, args.overwrite, provenance) as folder:
            result = compare(
                scenarios,
                args.replicates,
                args.seed,
                workers=args.workers,
                scheduler=scheduler,
                level=args.interval,
                progress=_show_progress(args),
                connect_timeout_s=args.connect_timeout,
            )
            _write_comparison(folder, args, base, scenarios, result)
    print(
        f"\nwrote {out / 'comparison.csv'}, {out / 'comparison_forest.png'} "
        f"and {out / 'report.html'}"
    )
    return EXIT_OK


def _write_comparison(
    folder: Any, args: argparse.Namespace, base: Any, scenarios: list[Any], result: Any
) -> None:
    """Print the comparison and write its folder: table, forest figure, report, manifest."""
    import io

    from sim.compare import format_comparison
    from sim.plots import comparison_forest
    from sim.report import frame_html, render_page

    if base.overrides:
        print(f"every scenario modified by --set {'; '.join(base.overrides)}")
    print(format_comparison(result))
    folder.begin()
    folder.write_text("comparison.csv", result.to_csv())
    forest = comparison_forest(result)
    buf = io.BytesIO()
    forest.savefig(buf, format="png", dpi=110)
    folder.write_bytes("comparison_forest.png", buf.getvalue())
    names = ", ".join(s.label for s in scenarios)
    intro = (
        f"Scenarios {names}; {args.replicates} replicates each with seed {args.seed} (common "
        "random numbers). Differences are to the first scenario; the paired "
        f"{result.level_label} interval uses the per-replicate differences."
    )
    page = render_page(
        "dosesim comparison",
        _html(intro),
        [("Comparison", frame_html(result.table))],
        [(f"Paired differences with {result.level_label} intervals", forest)],
    )
    folder.write_text("report.html", page)
    folder.complete({"scenarios": [s.to_dict_json() for s in scenarios]})


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
