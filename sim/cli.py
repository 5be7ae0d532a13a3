"""The ``dosesim`` command (``python -m sim`` is the same).

Bad input (a scenario, an option, a file) is reported as one line per problem
on stderr with exit status 2 and no traceback; ``dosesim check`` exits 1 when a
schedule differs from its golden file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

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
        handler = {"validate": _validate, "schedule": _schedule, "check": _check}
        return handler[args.command](args)
    except DosesimError as exc:
        print(_error_text(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("dosesim: interrupted", file=sys.stderr)
        return 130


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
