"""The ``dosesim`` command (``python -m sim`` is the same).

Bad input (a scenario, an option, a file, an occupied results folder) is
reported as one line per problem on stderr with exit status 2 and no
traceback; ``dosesim check`` exits 1 when a schedule differs from its golden
file; Ctrl-C exits 130 and SIGTERM 143, each after stopping the workers.

This module is the parser; :mod:`sim.commands` holds the handlers. Both import only
the standard library and :mod:`sim.errors` at import time: ``dosesim --help`` and
``--version`` answer without loading numpy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sim import __version__
from sim.command_support import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    LIMITS,
)
from sim.commands import HANDLERS
from sim.errors import DosesimError, ScenarioError, Terminated

__all__ = ["main"]


#: Defaults shown in the help and used by the handlers.
DEFAULT_INTERVAL_PERCENT = 90.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0  # = sim.executors.DEFAULT_CONNECT_TIMEOUT_S (checked by a test)

_EPILOG = (
    "Every command is described with examples in README.md, and the model (every "
    "equation, default and source) in docs/model.md, both in the dosesim repository. "
    "A planning tool, not a dosing aid for individual patients."
)


def _in_range(
    convert: Callable[[str], Any], kind: str, low: Any, high: Any
) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)`` (a number, or a whole number) from low to high."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not low <= value <= high:  # NaN fails too
            shown = f"{low:g} to {high:g}" if convert is float else f"{low} to {high:,}"
            raise argparse.ArgumentTypeError(f"{text!r} must be from {shown}")
        return value

    return parse


def _number_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number from ``low`` to ``high``."""
    return _in_range(float, "a number", low, high)


def _whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``minimum`` to ``maximum``."""
    return _in_range(int, "a whole number", minimum, maximum)


_weight_kg = _number_in(*LIMITS["weight_kg"])
_height_cm = _number_in(*LIMITS["height_cm"])
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

    def command(
        name: str, parents: list[argparse.ArgumentParser], help: str, description: str
    ) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, parents=parents, help=help, description=description, epilog=_EPILOG
        )

    def scenario(p: argparse.ArgumentParser) -> None:
        p.add_argument("scenario", metavar="SCENARIO", help="a scenario TOML file")

    def scenarios(p: argparse.ArgumentParser, nargs: str) -> None:
        p.add_argument("scenarios", nargs=nargs, metavar="SCENARIO", help="scenario TOML files")

    def scenario_and_weight(p: argparse.ArgumentParser) -> None:
        scenario(p)
        p.add_argument(
            "--weight-kg", type=_weight_kg, required=True, metavar="W", help="body weight, 1-500 kg"
        )

    def replicates(p: argparse.ArgumentParser, default: int) -> None:
        p.add_argument(
            "--replicates",
            type=_replicates,
            default=default,
            metavar="N",
            help=f"replicate trials to simulate, up to 1,000,000 (default {default})",
        )

    def seed(p: argparse.ArgumentParser) -> None:
        p.add_argument("--seed", type=_seed, default=1, metavar="S", help="the seed (default 1)")

    p = command(
        "validate",
        [overrides],
        "check scenario files and report every problem",
        "Check scenario files; print each one's name and hash, or every problem.",
    )
    scenarios(p, "+")
    p.add_argument(
        "--resolved",
        action="store_true",
        help="also print each resolved scenario as TOML (extends merged, every value "
        "explicit; default: off)",
    )

    p = command(
        "schedule",
        [overrides],
        "print the dose schedules a scenario prescribes for one patient",
        "Print each drug's schedule for a patient of the given weight.",
    )
    scenario_and_weight(p)
    p.add_argument(
        "--height-cm",
        type=_height_cm,
        metavar="H",
        help="height, 50-250 cm, for doses per m2 of body surface area (default: none;"
        " needed when a drug is dosed per m2)",
    )
    p.add_argument(
        "--csv",
        metavar="PATH",
        help="also write [arm,]drug,start_day,end_day,dose_mg_per_day,cumulative_mg "
        "(one row per constant-dose segment, end_day exclusive; default: not written)",
    )

    p = command(
        "exposure",
        [overrides, interval],
        "PK exposure of the typical patient (and optionally a population) over the schedule",
        (
            "Steady-state exposure per constant-dose segment for the typical patient of the "
            "given weight (prednisolone unbound, MPA), optionally a concentration-time figure, "
            "and with --patients the between-patient spread of MPA AUC0-12 at the target dose."
        ),
    )
    scenario_and_weight(p)
    p.add_argument(
        "--plot",
        metavar="PATH",
        help="write the concentration-time figure (PNG, PDF, SVG; default: not written): "
        "the typical patient's curves or, with --patients, each drug's median and 50 %% and "
        "--interval bands over the first 500 patients with the typical patient on top, and "
        "the histogram of all N patients' MPA AUC0-12 against the window",
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

    p = command(
        "cohort",
        [overrides, interval],
        "simulate one cohort: screening, dosing, adverse events, exits",
        (
            "Simulate one replicate of the cohort model (all patients enrolled on day 0) and "
            "write patients.csv, events.csv and manifest.json; prints steroid burden, "
            "retention, exits and adverse events."
        ),
    )
    scenario(p)
    p.add_argument(
        "--patients",
        type=_patients,
        required=True,
        metavar="N",
        help="patients to enrol, 1-1,000,000",
    )
    p.add_argument("--seed", type=_seed, required=True, metavar="S", help="the seed (>= 0)")
    folder_options(p, "cohort", "results/NAME/cohort")

    p = command(
        "forecast",
        [overrides, interval, executor],
        "forecast when the target is reached and the last visit done, from the enrolment "
        "seen so far",
        (
            "Simulate the rest of the trial from --as-of: every site open during the observed "
            "period gets the posterior of its screening rate from its own enrolment (none "
            "included); a site not yet open keeps its prior. Reports the probability of "
            "reaching the target by the enrolment deadline, the day it is reached, last "
            "patient in and last visit among the replicates that reach it, the number "
            "enrolled, and how many more sites like the prior would give 80 % probability of "
            "completing by the deadline. Without --observed: the design-stage forecast."
        ),
    )
    scenario(p)
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
    replicates(p, 500)
    p.add_argument(
        "--search-replicates",
        type=_replicates,
        metavar="N",
        help="replicates per step of the added-sites search (default: min(--replicates, 200))",
    )
    seed(p)
    folder_options(p, "forecast", "results/NAME/forecast-ASOF")

    p = command(
        "run",
        [overrides, interval, executor],
        "simulate many replicate trials into a results folder",
        (
            "Simulate replicate trials (recruitment and cohort) and write the results folder: "
            "replicates.csv, sites.csv, summary.json, manifest.json, report.html, and for the "
            "first K replicates patients.csv, events.csv, nonmem.csv (with nonmem_ids.csv), "
            "dosing_nonmem.csv, dm.csv, ex.csv, ae.csv, ds.csv, suppae.csv, suppds.csv; "
            "dictionary.csv describes every column. Results are identical for any --workers "
            "or --scheduler."
        ),
    )
    scenario(p)
    replicates(p, 1000)
    seed(p)
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
    p.add_argument(
        "--xpt",
        action="store_true",
        help="also write the SDTM tables (dm, ex, ae, ds, suppae, suppds) as SAS transport v5 .xpt "
        "files (the xpt extra; default: off)",
    )

    p = command(
        "power",
        [overrides, interval, executor],
        "power and precision of the primary analysis against the sample size",
        (
            "For each total sample size, simulate whole trials (recruitment, dosing, exits, "
            "the disease model) with that target and print the power of the primary analysis "
            "([disease.analysis]) with its Monte Carlo SE, the CI half-width, the evaluable "
            "patients and P(complete by the deadline); --out writes power.csv. Needs a "
            "[disease] table."
        ),
    )
    scenario(p)
    p.add_argument(
        "--n", required=True, metavar="N1,N2,...", help="total sample sizes, e.g. 10,15,20,30"
    )
    replicates(p, 1000)
    seed(p)
    p.add_argument(
        "--alpha", type=float, default=None, metavar="A",
        help="significance level (default: [disease.analysis] alpha)",
    )  # fmt: skip
    p.add_argument(
        "--target-power", type=float, default=None, metavar="P",
        help="also print the smallest n on the grid reaching this power (default: none)",
    )  # fmt: skip
    p.add_argument("--out", metavar="DIR", help="write power.csv there (default: not written)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing power.csv (default: off)"
    )

    p = command(
        "compare",
        [overrides, interval, executor],
        "compare scenarios run with the same seed: paired differences to the first",
        (
            "Run every scenario with the same seed (common random numbers) and print, per "
            "key metric, each scenario's mean with its Monte Carlo SE and the mean paired "
            "difference to the first scenario with its paired interval (and the unpaired "
            "one for reference). With one scenario and --vary KEY=V1,V2,...: a one-way "
            "sweep, the first value the reference. --set applies to every scenario. Writes "
            "comparison.csv, each scenario's replicates and kept patients, and report.html "
            "(absolute values, differences, differing settings, overlaid distributions, "
            "schedules side by side); dosesim report makes the report again."
        ),
    )
    scenarios(p, "*")
    p.add_argument(
        "--vary",
        metavar="KEY=V1,V2,...",
        help="with one scenario: one variant per value (read as TOML), "
        "e.g. prednisone.start_mg_per_kg=0.5,0.75,1.0 (default: none)",
    )
    replicates(p, 200)
    seed(p)
    folder_options(p, "comparison", "results/NAME/compare, or results/NAME/compare-vary-KEY")
    p.add_argument(
        "--keep-patients",
        type=_whole_number(0, 100_000),
        default=100,
        metavar="K",
        help="keep the patients and events of the first K replicates of each scenario for "
        "the report's distributions, 0-100,000 (default 100); no compared number depends on it",
    )

    p = command(
        "report",
        [interval],
        "write the HTML report of a results folder of dosesim run or compare",
        (
            "Write one self-contained HTML file (figures embedded, no network needed) for a "
            "results folder of `dosesim run` (scenario, key numbers with intervals, figures, "
            "the built-in validation checks) or of `dosesim compare` (each scenario's values, "
            "paired differences, differing settings, overlaid figures). The folder's files "
            "are checked against their sha256 in manifest.json first."
        ),
    )
    p.add_argument(
        "results", metavar="RESULTS_DIR", help="a folder written by dosesim run or compare"
    )
    p.add_argument(
        "-o", "--output", metavar="PATH", help="where to write (default RESULTS_DIR/report.html)"
    )

    p = sub.add_parser(
        "check",
        help="compare scenarios' schedules with their golden CSV files",
        description=(
            "Rebuild each scenario's schedules for reference weights 45, 60, 75, 90 "
            "and 110 kg (45, 55, 62.5, 75 and 90 kg, and 160 and 175 cm where a dose is "
            "per m2, for scenarios with arms or [drugs], every arm) and compare them with "
            "the golden CSVs; exit 1 on any difference. With no SCENARIO, every "
            "scenarios/*.toml is checked."
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
    handler = HANDLERS[args.command]
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


def console() -> None:
    """The ``dosesim`` command (and ``python -m sim``): :func:`main`, then exit with its status.

    After Ctrl-C, SIGTERM or a dead worker, the workers have been stopped and reaped and
    what was finished is checkpointed; the process then leaves at once, without the
    interpreter's exit hooks: the process pool's management thread, which they join, can
    block for good on the pipe of a worker killed mid-message.
    """
    from sim.executors import pool_abandoned

    code = main()
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED) or pool_abandoned():
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
