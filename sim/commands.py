"""The handlers of the ``dosesim`` commands: read the inputs, call the library, write and print.

Each handler takes the parsed arguments (:mod:`sim.cli`) and returns the exit status.
Numerical libraries are imported inside the handlers, so that the parser answers
``--help`` and ``--version`` without them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from sim.command_support import (
    EXIT_CHANGED,
    EXIT_OK,
    LIMITS,
)
from sim.command_support import execution_options as _execution
from sim.command_support import folder_of as _folder
from sim.command_support import scenario_head as _head
from sim.commands_power import power_command
from sim.errors import DosesimError, Problem, ScenarioError


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
    import math

    from sim.arms import arm_scenarios
    from sim.fileio import atomic_write_text
    from sim.golden import SCHEDULE_COLUMNS, fmt_number, rows_to_csv, schedule_rows
    from sim.regimens import Body, scenario_schedules
    from sim.scenario import load_scenario
    from sim.views.text import format_schedules

    scenario = load_scenario(args.scenario, args.overrides)
    height = math.nan if args.height_cm is None else args.height_cm
    arms = arm_scenarios(scenario)
    names = [a.name for a in scenario.arms] or [""]
    if math.isnan(height) and any(r.uses("mg_per_m2") for a in arms for r in a.drugs.values()):
        raise DosesimError(
            f"{scenario.source or scenario.name}: a drug is dosed per m2 of body surface area:"
            " give --height-cm"
        )
    rows: list[dict[str, str]] = []
    body = f"{fmt_number(args.weight_kg)} kg" + (
        "" if math.isnan(height) else f", {fmt_number(height)} cm"
    )
    for name, arm in zip(names, arms, strict=True):
        schedules = scenario_schedules(arm, Body(args.weight_kg, height))
        what = f" arm {name}" if name else ""
        print(f"{_head(scenario)}{what}: {body}, {arm.treatment.duration_days} days of treatment")
        print("\n".join(format_schedules(schedules)))
        rows += [({"arm": name} if name else {}) | row for row in schedule_rows(schedules)]
        if name != names[-1]:
            print()
    if args.csv:
        columns = (("arm",) if scenario.arms else ()) + SCHEDULE_COLUMNS
        atomic_write_text(args.csv, rows_to_csv(rows, columns))
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
    from sim.regimens import Body, build_regimen
    from sim.scenario import load_scenario
    from sim.schedule import build_schedules
    from sim.streams import stream

    if args.patients is not None and args.seed is None:
        raise DosesimError("--patients needs --seed (results must be reproducible)")
    scenario = load_scenario(args.scenario, args.overrides)
    weight = args.weight_kg
    if scenario.mmf is None:
        raise DosesimError(
            f"{scenario.source or scenario.name}: `dosesim exposure` shows prednisolone and MPA,"
            " and this scenario has no [mmf] table (its doses: `dosesim schedule`)"
        )
    schedules = build_schedules(scenario, weight)
    if "prednisone" not in schedules:  # a [drugs.prednisone] course
        course = scenario.drugs["prednisone"]
        days = scenario.treatment.duration_days
        schedules["prednisone"] = build_regimen(course, Body(weight), days)
    models = scenario_models(scenario, weight)
    assert scenario.exposure is not None
    print(f"{_head(scenario)}: typical {fmt_number(weight)} kg patient, steady state at each dose")
    if scenario.arms:
        print("(the scenario's own tables, those of its first arm unless that arm sets them)")
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
        from sim.trial.milestones import interval_label, level_quantiles

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
        from sim.views.exposure_plots import (
            BAND_PATIENTS,
            concentration_profiles,
            population_profiles,
        )

        fmt = Path(args.plot).suffix.lstrip(".").lower() or "png"
        if fmt not in ("png", "pdf", "svg"):
            raise DosesimError(f"--plot {args.plot}: use a .png, .pdf or .svg file name")
        pred_label, mpa_label = (
            "prednisolone (unbound), from prednisone",
            "mycophenolic acid, from MMF",
        )
        if args.patients is None:
            fig = concentration_profiles(
                {
                    pred_label: (models["prednisolone"], schedules["prednisone"], "mg/L"),
                    mpa_label: (models["mpa"], schedules["mmf"], "mg/L"),
                },
                f"{scenario.label}: typical {fmt_number(weight)} kg patient",
            )
        else:
            # The bands' patients are the first of the N: their MPA effects are the rows
            # above; their prednisolone effects come from a stream of their own, so the
            # MPA numbers printed do not depend on --plot.
            shown = min(args.patients, BAND_PATIENTS)
            pred_pk = scenario.exposure.prednisolone
            pred_etas = draw_etas(
                pred_pk, stream(args.seed, "exposure_patients", "prednisolone"), size=shown
            )
            population = scenario_models(
                scenario, weight, {"prednisolone": pred_etas, "mpa": etas[:shown]}
            )
            fig = population_profiles(
                {
                    pred_label: (
                        models["prednisolone"],
                        population["prednisolone"],
                        schedules["prednisone"],
                    ),
                    mpa_label: (models["mpa"], population["mpa"], schedules["mmf"]),
                },
                auc,
                (low, high),
                f"{scenario.label}: {args.patients} patients of {fmt_number(weight)} kg "
                f"(seed {args.seed})",
                level=args.interval,
            )
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=120)
        atomic_write_bytes(args.plot, buf.getvalue())
        print(f"wrote {args.plot}")
    return EXIT_OK


def _cohort(args: argparse.Namespace) -> int:
    from sim.results.folder import ResultsFolder
    from sim.results.summaries import cohort_summary
    from sim.scenario import load_scenario
    from sim.trial.cohort import simulate_cohort
    from sim.views.text import format_cohort_summary

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
    from sim.forecast import forecast, read_observed
    from sim.results.folder import ResultsFolder, sha256_file
    from sim.scenario import load_scenario
    from sim.trial.trial import require_eligibility

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
                **_execution(args, scheduler),
            )
            _write_forecast(folder, args, scenario, as_of, result)
    from sim.views.forecast_report import write_forecast_report

    write_forecast_report(out)
    print(
        f"wrote {out}/ (forecast_replicates.csv, forecast_enrolment.csv, forecast_sites.csv, "
        "summary.json, report.html)"
    )
    return EXIT_OK


def _on_dask(client: Any) -> dict[str, Any]:
    """The manifest's description of a connected Dask client."""
    from sim.executors import Executor

    with Executor(scheduler=client) as executor:
        return executor.describe()


def _write_forecast(
    folder: Any, args: argparse.Namespace, scenario: Any, as_of: date, result: Any
) -> None:
    """Print the forecast and write its folder: replicates, enrolments, the added-sites
    curve, summary, manifest (the report is made from the folder afterwards)."""
    from sim.results.tables import csv_text
    from sim.views.text import format_forecast

    source = f" from {args.observed}" if args.observed else " (no observed data)"
    head = (
        f"{_head(scenario)}: {'forecast' if args.observed else 'design-stage forecast'} "
        f"as of {as_of}{source}, {args.replicates} replicates, seed {args.seed}"
    )
    lines = [head, *format_forecast(scenario, result)]
    print("\n".join(lines))
    folder.begin()
    folder.write_text("forecast_replicates.csv", csv_text(result.replicates))
    folder.write_text("forecast_enrolment.csv", csv_text(result.enrolments))
    folder.write_text("forecast_sites.csv", csv_text(result.sites_curve))
    folder.write_text("summary.json", _json(result.summary))
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
    from sim.runner import run
    from sim.scenario import load_scenario
    from sim.views.report import write_report
    from sim.views.text import format_run_summary

    keep = _keep(args.keep_patients)
    scenario = load_scenario(args.scenario, args.overrides)
    out = _folder(args, "run", scenario)
    result = run(
        scenario,
        args.replicates,
        args.seed,
        out=out,
        keep_patients=keep,
        resume=args.resume,
        overwrite=args.overwrite,
        command_line=args.command_line,
        xpt=args.xpt,
        **_execution(args, args.scheduler),
    )
    print(f"{_head(scenario)}: {args.replicates} replicates, seed {args.seed}")
    print(format_run_summary(result.summary))
    report = write_report(out, level=args.interval)
    print(f"results in {out}/ (report: {report})")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from sim.results.folder import read_manifest
    from sim.views.report import write_report

    manifest = read_manifest(args.results) if Path(args.results).is_dir() else None
    if manifest is not None and manifest.get("command") == "compare":
        from sim.views.compare_report import write_comparison_report

        path = write_comparison_report(args.results, args.output, level=args.interval)
    elif manifest is not None and manifest.get("command") == "forecast":
        from sim.views.forecast_report import write_forecast_report

        path = write_forecast_report(args.results, args.output, level=args.interval)
    else:
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
    from sim.results.folder import ResultsFolder, default_folder
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
        "keep_patients": args.keep_patients,
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
                keep_patients=args.keep_patients,
                **_execution(args, scheduler),
            )
            _write_comparison(folder, args, base, result)
    from sim.views.compare_report import write_comparison_report

    write_comparison_report(out)
    print(
        f"\nwrote {out / 'comparison.csv'}, each scenario's tables, "
        f"{out / 'comparison_forest.png'} and {out / 'report.html'}"
    )
    return EXIT_OK


def _write_comparison(folder: Any, args: argparse.Namespace, base: Any, result: Any) -> None:
    """Print the comparison and write its folder: table, each scenario's replicates and kept
    patients, forest figure, manifest (the report is made from the folder afterwards)."""
    import io

    from sim.results.comparison_files import manifest_extra, write_scenario_tables
    from sim.views.plots import comparison_forest
    from sim.views.text import format_comparison

    if base.overrides:
        print(f"every scenario modified by --set {'; '.join(base.overrides)}")
    print(format_comparison(result))
    folder.begin()
    folder.write_text("comparison.csv", result.to_csv())
    write_scenario_tables(folder, result)
    forest = comparison_forest(result)
    buf = io.BytesIO()
    forest.savefig(buf, format="png", dpi=110)
    folder.write_bytes("comparison_forest.png", buf.getvalue())
    folder.complete(manifest_extra(result))


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


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": _validate,
    "schedule": _schedule,
    "exposure": _exposure,
    "cohort": _cohort,
    "forecast": _forecast,
    "run": _run,
    "report": _report,
    "compare": _compare,
    "check": _check,
    "power": power_command,
}
