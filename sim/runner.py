"""Replicates at scale: chunks on any executor, a checkpoint per chunk, one results folder.

``run`` simulates ``replicates`` whole trials (recruitment plus cohort). Replicate
``r`` draws only from its own streams (seed, "replicate", r, ...: the children of
``SeedSequence(seed)`` under that spawn key), so a replicate's result does not
depend on where or in which order it ran. Replicates are sent in chunks to the
executor (this process, a local process pool, or a Dask cluster) and come back
as one compact row each, plus per-patient tables for the first ``keep_patients``
replicates. Each finished chunk is written to ``<out>/.checkpoint/`` atomically;
``resume=True`` runs only the missing chunks. The final files are assembled in
replicate order, so they are byte-identical however they were computed.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.checkpoint import Checkpoint
from sim.collector import young_collections_only
from sim.errors import DosesimError
from sim.executors import DEFAULT_CONNECT_TIMEOUT_S, Chunk, Executor, LostExecutor, chunks_of
from sim.folders import CHECKPOINT, ResultsFolder, environment
from sim.milestones import DEFAULT_LEVEL, check_level, level_quantiles, recruitment_milestones
from sim.progress import progress_bar
from sim.recruitment import require_eligibility, simulate_trials
from sim.scenario import Scenario

__all__ = [
    "CHECKPOINT",
    "RunResult",
    "provenance",
    "replicate_row",
    "run",
    "sites_table",
    "summarise",
]

SUMMARY_PERCENTILES = (5, 25, 50, 75, 95)
_KEPT_TABLES = ("patients", "events", "dosing_nonmem", "ex", "ae", "ds")


def replicate_row(scenario: Scenario, replicate: int, trial: Any) -> dict[str, Any]:
    """The compact summary of one replicate: milestones, exits, steroid burden, AE counts."""
    m = trial.milestones
    o = trial.outcomes
    n = len(o["status"])
    row: dict[str, Any] = {
        "replicate": replicate,
        "screened": m["screened"],
        "enrolled": m["enrolled"],
        "screen_failures": m["screened"] - m["enrolled"],
    }
    for key in ("first_patient_in", "last_patient_in", "last_patient_last_visit"):
        day = m[f"{key}_day"]
        row[f"{key}_day"] = round(float(day), 6) if math.isfinite(day) else math.nan
        row[f"{key}_date"] = m[f"{key}_date"].isoformat() if m[f"{key}_date"] else ""
    row["target_reached"] = int(m["target_reached"])
    row["completed_by_deadline"] = int(m["completed_by_deadline"])
    for status in ("completed", "withdrawn", "died", "discontinued"):
        row[status] = o["status"].count(status)
    row["completed_fraction"] = row["completed"] / n if n else math.nan
    row["patient_years"] = float(o["exit_day"].sum()) / 365.25
    week52 = o["cumulative_prednisone_mg_week52"]
    week52 = week52[np.isfinite(week52)]
    row["mean_cumulative_prednisone_mg_week52"] = float(week52.mean()) if week52.size else math.nan
    row["median_cumulative_prednisone_mg_week52"] = (  # statistics: numpy's cost is overhead
        float(statistics.median(week52.tolist())) if week52.size else math.nan
    )
    for name in sorted(scenario.adverse_events):
        row[f"ae_{name}"] = int(o[f"ae_{name}"].sum())
    for criterion, n in sorted(m["screen_failures"].items()):
        row[f"failed_{criterion}"] = n
    for i, n in enumerate(m["enrolled_per_site"].values()):  # by index: names are not identifiers
        row[f"enrolled_site_{i}"] = n
    return row


def _kept_tables(scenario: Scenario, replicate: int, trial: Any) -> dict[str, pd.DataFrame]:
    from sim import exports

    study = scenario.registry_id or scenario.name
    cohort = trial.cohort
    patients = cohort.patients.copy()
    patients.insert(0, "replicate", replicate)
    events = cohort.events.copy()
    events.insert(0, "replicate", replicate)
    return {
        "patients": patients,
        "events": events,
        "dosing_nonmem": exports.nonmem_dosing(cohort, replicate, study),
        "ex": exports.sdtm_ex(cohort, replicate, study),
        "ae": exports.sdtm_ae(cohort, replicate, study),
        "ds": exports.sdtm_ds(cohort, replicate, study),
    }


def _run_chunk(scenario: Scenario, seed: int, keep: int, first: int, last: int) -> dict[str, Any]:
    """Replicates ``first`` .. ``last - 1``: their rows and, for those below ``keep``, tables."""
    rows = []
    kept: dict[str, list[pd.DataFrame]] = {name: [] for name in _KEPT_TABLES}
    replicates = range(first, last)
    with young_collections_only():  # a full collection walks every object: sim.collector
        trials = simulate_trials(scenario, seed, replicates, range(keep))
        for r, trial in zip(replicates, trials, strict=True):
            rows.append(replicate_row(scenario, r, trial))
            if r < keep:
                for name, table in _kept_tables(scenario, r, trial).items():
                    kept[name].append(table)
    return {
        "first": first,
        "last": last,
        "rows": pd.DataFrame(rows),  # compact: memory stays flat as replicates grow
        "kept": {k: pd.concat(v, ignore_index=True) for k, v in kept.items() if v},
    }


@dataclass
class RunResult:
    """What a run produced.

    Attributes
    ----------
    replicates : pandas.DataFrame
        One row per replicate (``replicates.csv``).
    summary : dict
        Every key metric with mean, median, percentiles and Monte Carlo SE
        (``summary.json``).
    out : Path or None
        The results folder, if one was written.
    kept : dict of DataFrame
        Per-patient tables of the kept replicates.
    manifest : dict
        Seed, settings, versions and times (``manifest.json``).
    """

    replicates: pd.DataFrame
    summary: dict[str, Any]
    out: Path | None = None
    kept: dict[str, pd.DataFrame] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    def _repr_html_(self) -> str:
        from sim.display import run_html

        return run_html(self)


def _identity(scenario: Scenario, replicates: int, seed: int, keep: int) -> dict[str, Any]:
    """What a run's results are of: a folder holding another identity is not mixed with it."""
    return {
        "scenario_hash": scenario.hash,
        "scenario_name": scenario.name,
        "overrides": list(scenario.overrides),
        "seed": seed,
        "replicates": replicates,
        "keep_patients": keep,
    }


def provenance(scenario: Scenario, command_line: Sequence[str] | None) -> dict[str, Any]:
    """Where a result came from: the command line, overrides and scenario files read."""
    return {
        "command_line": list(command_line) if command_line is not None else None,
        "overrides": list(scenario.overrides),
        "scenario_files": [{"path": path, "sha256": digest} for path, digest in scenario.files],
        "scenario_source": scenario.source,
    }


def run(
    scenario: Scenario,
    replicates: int,
    seed: int,
    workers: int = 1,
    scheduler: Any = None,
    out: str | os.PathLike[str] | None = None,
    keep_patients: int | None = 100,
    resume: bool = False,
    progress: bool = False,
    chunk_size: int | None = None,
    level: float = DEFAULT_LEVEL,
    overwrite: bool = False,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    command_line: Sequence[str] | None = None,
) -> RunResult:
    """Simulate ``replicates`` whole trials and summarise them.

    Parameters
    ----------
    scenario : Scenario
        Needs every table of the trial model (recruitment, population, exposure, dropout).
    replicates : int
        Number of replicate trials (>= 1).
    seed : int
        The run's seed (>= 0). Results are identical for any workers or executor.
    workers : int
        Local worker processes (1: in this process).
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (``tcp://host:port``) or client; overrides ``workers``.
    out : path, optional
        Results folder; nothing is written without it. A folder holding another
        command's results, or another run's (scenario, overrides, seed,
        replicates, kept patients), is refused unless ``overwrite``; one
        process writes it at a time (:mod:`sim.folders`).
    keep_patients : int or None
        Keep per-patient tables for the first K replicates (None: all).
    resume : bool
        Continue an interrupted run in ``out`` (the same run only).
    progress : bool
        Show a progress bar (``tqdm.auto``: a widget in notebooks).
    chunk_size : int, optional
        Replicates per task (default: about 8 tasks per worker, 10 to 200 each;
        a resumed run keeps the chunks it started with).
    level : float
        The central interval of the summary (default 0.9: 5th to 95th percentile).
    overwrite : bool
        Remove whatever results ``out`` holds first.
    connect_timeout_s : float
        Seconds to wait for a Dask scheduler given by address; an unreachable
        one is an error before anything is written.
    command_line : sequence of str, optional
        The command that asked for this run, recorded in the manifest.

    Raises
    ------
    DosesimError
        Bad arguments, a folder that holds other results or is being written
        by another process, an unreachable or vanished Dask scheduler.
    """
    if replicates < 1:
        raise DosesimError(f"replicates must be >= 1, got {replicates}")
    if seed < 0:
        raise DosesimError(f"seed must be >= 0, got {seed}")
    if resume and overwrite:
        raise DosesimError("--resume continues a run and --overwrite removes it: give one")
    if out is None and resume:
        raise DosesimError("resume needs the results folder of the interrupted run (out)")
    level = check_level(level)
    scenario.require("recruitment", "population", "exposure", "dropout", purpose="a run")
    require_eligibility(scenario)
    keep = replicates if keep_patients is None else max(0, min(keep_patients, replicates))
    identity = _identity(scenario, replicates, seed, keep)
    with Executor(workers, scheduler, connect_timeout_s) as executor:
        default_size = int(min(200, max(10, math.ceil(replicates / (8 * executor.lanes)))))
        size = chunk_size or default_size
        if out is None:
            parts: dict[int, dict[str, Any]] = {}
            chunks = chunks_of(replicates, size)
            with progress_bar(replicates, "run", progress) as tick:
                for result in _stream(executor, scenario, seed, keep, chunks):
                    parts[result["first"]] = result
                    tick(result["last"] - result["first"])
            table, kept = _assemble(parts[first] for first, _ in chunks)
            summary = summarise(table, scenario, level)
            manifest = {
                **identity,
                "identity": identity,
                **provenance(scenario, command_line),
                **executor.describe(),
                **environment(),
            }
            return RunResult(table, summary, None, kept, manifest)
        folder = ResultsFolder(
            out,
            "run",
            identity,
            overwrite=overwrite,
            provenance={**provenance(scenario, command_line), **executor.describe()},
            scenario=scenario.to_dict_json(),
        )
        with folder:
            return _run_into(
                folder, executor, scenario, seed, keep, size, chunk_size, resume, level, progress
            )


def _stream(
    executor: Executor, scenario: Scenario, seed: int, keep: int, chunks: list[Chunk]
) -> Iterator[dict[str, Any]]:
    with closing(executor.map(_run_chunk, (scenario, seed, keep), chunks)) as results:
        yield from results


def _run_into(
    folder: ResultsFolder,
    executor: Executor,
    scenario: Scenario,
    seed: int,
    keep: int,
    size: int,
    chunk_size: int | None,
    resume: bool,
    level: float,
    progress: bool,
) -> RunResult:
    path = folder.path
    replicates = folder.identity["replicates"]
    checkpoint = Checkpoint(path)
    if resume and folder.completed():
        # the run finished; only what follows it was interrupted (removing the checkpoint,
        # writing the report)
        checkpoint.remove()
        return _finished(folder, scenario, level)
    size, finished = checkpoint.open(
        folder.identity, scenario.to_dict_json(), resume, size, chunk_size
    )
    chunks = chunks_of(replicates, size)
    todo = [c for c in chunks if c[0] not in finished]
    already = sum(b - a for a, b in chunks if a in finished)
    done_now = 0
    try:
        with progress_bar(replicates, "run", progress) as tick:
            tick(already)
            for result in _stream(executor, scenario, seed, keep, todo):
                checkpoint.save(result)
                done_now += 1
                tick(result["last"] - result["first"])
    except LostExecutor as exc:
        if not finished and not done_now:  # nothing to resume: a plain retry must not be refused
            checkpoint.remove()
            raise DosesimError(f"{exc}; no replicate had finished: run the command again") from None
        n_kept = len(finished) + done_now
        raise DosesimError(
            f"{exc}; {n_kept} finished chunk(s) of {len(chunks)} are kept: add --resume to the "
            "same command to continue"
        ) from None
    except BaseException:
        if not finished and not done_now:  # nothing to resume: a plain retry must not be refused
            checkpoint.remove()
        raise
    table, kept = _assemble(checkpoint.load(first) for first, _ in chunks)
    summary = summarise(table, scenario, level)
    folder.begin()
    _write_results(folder, table, kept, summary, scenario)
    manifest = folder.complete({"scenario": scenario.to_dict_json(), "chunk_size": size})
    checkpoint.remove()
    return RunResult(table, summary, path, kept, manifest)


def _finished(folder: ResultsFolder, scenario: Scenario, level: float) -> RunResult:
    """A run already written in ``folder`` (complete, its files as recorded), read back."""
    manifest = folder.completed()
    assert manifest is not None
    try:
        table = pd.read_csv(folder.path / "replicates.csv")
        kept = {
            name: pd.read_csv(folder.path / f"{name}.csv")
            for name in _KEPT_TABLES
            if (folder.path / f"{name}.csv").exists()
        }
    except (OSError, ValueError) as exc:
        raise DosesimError(f"{folder.path}: a results file is damaged ({exc})") from None
    return RunResult(table, summarise(table, scenario, level), folder.path, kept, manifest)


def _assemble(parts: Iterable[dict[str, Any]]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    rows: list[pd.DataFrame] = []
    kept: dict[str, list[pd.DataFrame]] = {name: [] for name in _KEPT_TABLES}
    for part in parts:
        rows.append(part["rows"])
        for name, frame in part["kept"].items():
            kept[name].append(frame)
    table = pd.concat(rows, ignore_index=True)
    fixed = [c for c in table.columns if not c.startswith(("failed_", "enrolled_site_"))]
    failed = sorted(c for c in table.columns if c.startswith("failed_"))
    per_site = sorted(
        (c for c in table.columns if c.startswith("enrolled_site_")),
        key=lambda c: int(c.removeprefix("enrolled_site_")),
    )
    varying = per_site + failed
    table = table[fixed + varying]
    for col in varying:
        table[col] = table[col].fillna(0).astype(int)
    return table, {k: pd.concat(v, ignore_index=True) for k, v in kept.items() if v}


# ---------------------------------------------------------------------------
# Summary with Monte Carlo standard errors
# ---------------------------------------------------------------------------

_PROBABILITIES = ("target_reached", "completed_by_deadline")


def summarise(
    table: pd.DataFrame, scenario: Scenario, level: float = DEFAULT_LEVEL
) -> dict[str, Any]:
    """Every numeric metric's mean, median, percentiles and Monte Carlo SE; the milestones.

    The Monte Carlo SE is that of the mean over replicates, sd / sqrt(n); for a
    probability, sqrt(p (1 - p) / n). ``low`` and ``high`` bound the central
    ``level`` interval of the replicates (also ``p5`` ... ``p95``). The
    recruitment milestones are summarised as a planner reads them
    (:func:`sim.milestones.milestone_summary`): the day the target is reached,
    last patient in and last visit among the replicates that reach it, and
    the number enrolled by the enrolment deadline.
    """
    level = check_level(level)
    low_q, high_q = level_quantiles(level)
    n = len(table)
    metrics: dict[str, Any] = {}
    for col in table.columns:
        if col == "replicate" or col.endswith("_date") or col in _PROBABILITIES:
            continue
        values = table[col].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        q = np.percentile(values, SUMMARY_PERCENTILES)
        low, high = np.quantile(values, [low_q, high_q])
        entry = {
            "n": int(values.size),
            "mean": float(values.mean()),
            "mcse": float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else None,
            **{
                f"p{p}" if p != 50 else "median": float(v)
                for p, v in zip(SUMMARY_PERCENTILES, q, strict=True)
            },
            "low": float(low),
            "high": float(high),
        }
        metrics[col] = entry
    probabilities = {}
    for col in _PROBABILITIES:
        p = float(table[col].mean())
        probabilities[col] = {"p": p, "mcse": math.sqrt(p * (1 - p) / n)}
    rec = scenario.recruitment
    milestones = None
    if rec is not None:
        milestones = recruitment_milestones(table, rec, level)
    return {
        "replicates": n,
        "level": level,
        "deadline": rec.deadline.isoformat() if rec else None,
        "probabilities": probabilities,
        "milestones": milestones,
        "metrics": metrics,
    }


# ---------------------------------------------------------------------------
# The results folder
# ---------------------------------------------------------------------------


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def sites_table(scenario: Scenario) -> pd.DataFrame:
    """The scenario's sites by index: what the ``enrolled_site_<index>`` columns refer to."""
    rec = scenario.recruitment
    rows = [
        {
            "index": i,
            "name": site.name,
            "activation_day": site.activation_day,
            "activation_day_min": site.activation_day_min,
            "activation_day_max": site.activation_day_max,
            "screening_rate_per_month": site.screening_rate_per_month,
            "cap": site.cap,
        }
        for i, site in enumerate(rec.sites if rec is not None else [])
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "index",
            "name",
            "activation_day",
            "activation_day_min",
            "activation_day_max",
            "screening_rate_per_month",
            "cap",
        ],
    )


def _write_results(
    folder: ResultsFolder,
    table: pd.DataFrame,
    kept: dict[str, pd.DataFrame],
    summary: dict[str, Any],
    scenario: Scenario,
) -> None:
    files: dict[str, pd.DataFrame] = {"replicates": table, "sites": sites_table(scenario), **kept}
    for name, frame in files.items():
        folder.write_text(f"{name}.csv", _csv(frame))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        for name, frame in files.items():
            import io

            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            folder.write_bytes(f"{name}.parquet", buf.getvalue())
    folder.write_text("summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
