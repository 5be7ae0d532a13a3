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
import pickle
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.collector import young_collections_only
from sim.errors import DosesimError
from sim.fileio import atomic_write_bytes, atomic_write_text
from sim.recruitment import simulate_trials
from sim.scenario import Scenario

__all__ = ["RunResult", "replicate_row", "run"]

CHECKPOINT = ".checkpoint"
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
    for site, n in m["enrolled_per_site"].items():
        row[f"enrolled_site_{site}"] = n
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


def _run_chunk(scenario: Scenario, seed: int, first: int, last: int, keep: int) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------

Chunk = tuple[int, int]


def _in_process(scenario: Scenario, seed: int, chunks: list[Chunk], keep: int) -> Iterator[Any]:
    for first, last in chunks:
        yield _run_chunk(scenario, seed, first, last, keep)


def _process_pool(
    scenario: Scenario, seed: int, chunks: list[Chunk], keep: int, workers: int
) -> Iterator[Any]:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: set[Future[Any]] = set()
        queue = list(chunks)
        while queue or pending:
            while queue and len(pending) < 2 * workers:  # bounded: memory stays flat
                first, last = queue.pop(0)
                pending.add(pool.submit(_run_chunk, scenario, seed, first, last, keep))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()


def _dask(
    scenario: Scenario, seed: int, chunks: list[Chunk], keep: int, scheduler: Any
) -> Iterator[Any]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise DosesimError(
            "--scheduler needs dask.distributed: pip install 'dosesim[dask]'"
        ) from None
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        scattered = client.scatter(scenario, broadcast=True)
        futures = [
            client.submit(_run_chunk, scattered, seed, first, last, keep, pure=False)
            for first, last in chunks
        ]
        for future in as_completed(futures):
            yield future.result()
            future.release()
    finally:
        if not isinstance(scheduler, Client):
            client.close()


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


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


def _chunks(replicates: int, size: int) -> list[Chunk]:
    return [(a, min(a + size, replicates)) for a in range(0, replicates, size)]


def _identity(
    scenario: Scenario, replicates: int, seed: int, keep: int, size: int
) -> dict[str, Any]:
    return {
        "scenario_hash": scenario.hash,
        "scenario_name": scenario.name,
        "seed": seed,
        "replicates": replicates,
        "keep_patients": keep,
        "chunk_size": size,
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
        Results folder; nothing is written without it.
    keep_patients : int or None
        Keep per-patient tables for the first K replicates (None: all).
    resume : bool
        Continue an interrupted run in ``out`` (same scenario, seed and settings).
    progress : bool
        Show a progress bar on stderr.
    chunk_size : int, optional
        Replicates per task (default: about 8 tasks per worker, 10 to 200 each).
    """
    if replicates < 1:
        raise DosesimError(f"replicates must be >= 1, got {replicates}")
    if seed < 0:
        raise DosesimError(f"seed must be >= 0, got {seed}")
    scenario.require("recruitment", "population", "exposure", "dropout", purpose="a run")
    keep = replicates if keep_patients is None else max(0, min(keep_patients, replicates))
    lanes = 1 if scheduler is None and workers <= 1 else max(workers, 2)
    size = chunk_size or int(min(200, max(10, math.ceil(replicates / (8 * lanes)))))
    chunks = _chunks(replicates, size)
    identity = _identity(scenario, replicates, seed, keep, size)
    started = datetime.now(UTC)
    folder = Path(out) if out is not None else None
    done: dict[int, dict[str, Any]] = {}
    if folder is not None:
        finished = _prepare(folder, identity, resume)
        done = {a: {"first": a, "last": b} for a, b in chunks if a in finished}
    todo = [c for c in chunks if c[0] not in done]
    if scheduler is not None:
        stream: Iterable[Any] = _dask(scenario, seed, todo, keep, scheduler)
    elif workers > 1:
        stream = _process_pool(scenario, seed, todo, keep, workers)
    else:
        stream = _in_process(scenario, seed, todo, keep)
    bar = _progress(replicates, sum(c["last"] - c["first"] for c in done.values()), progress)
    try:
        for result in stream:
            if folder is not None:
                _checkpoint(folder, result)
                done[result["first"]] = {"first": result["first"], "last": result["last"]}
            else:
                done[result["first"]] = result
            bar(result["last"] - result["first"])
    finally:
        bar(0, close=True)
    parts = (
        (_load_chunk(folder, first) for first, _ in chunks)
        if folder is not None
        else (done[first] for first, _ in chunks)
    )
    table, kept = _assemble(parts)
    summary = summarise(table, scenario)
    manifest = _manifest(scenario, identity, started)
    if folder is not None:
        _write_results(folder, table, kept, summary, manifest)
        shutil.rmtree(folder / CHECKPOINT, ignore_errors=True)
    return RunResult(table, summary, folder, kept, manifest)


def _progress(total: int, already: int, show: bool) -> Callable[..., None]:
    if not show:
        return lambda n, close=False: None
    from tqdm import tqdm

    bar = tqdm(total=total, initial=already, unit="replicate", file=sys.stderr, smoothing=0.1)

    def update(n: int, close: bool = False) -> None:
        if n:
            bar.update(n)
        if close:
            bar.close()

    return update


def _prepare(folder: Path, identity: dict[str, Any], resume: bool) -> set[int]:
    """Check the folder; return the first replicates of the chunks a resumed run has."""
    cp = folder / CHECKPOINT
    marker = cp / "run.json"
    if marker.exists():
        previous = json.loads(marker.read_text())
        if not resume:
            raise DosesimError(
                f"{folder}: holds an interrupted run ({previous['scenario_name']}, seed "
                f"{previous['seed']}); continue it with --resume, or delete the folder"
            )
        different = [k for k in identity if previous.get(k) != identity[k]]
        if different:
            what = ", ".join(f"{k} {previous.get(k)!r} (now {identity[k]!r})" for k in different)
            raise DosesimError(f"{folder}: the interrupted run there differs: {what}")
        return {int(f.stem.split("_")[1]) for f in cp.glob("chunk_*.pkl")}
    if resume:
        raise DosesimError(f"{folder}: no interrupted run to resume here")
    cp.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps(identity, sort_keys=True))
    return set()


def _checkpoint(folder: Path, result: dict[str, Any]) -> None:
    path = folder / CHECKPOINT / f"chunk_{result['first']:09d}.pkl"
    atomic_write_bytes(path, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))


def _load_chunk(folder: Path, first: int) -> dict[str, Any]:
    data: dict[str, Any] = pickle.loads(
        (folder / CHECKPOINT / f"chunk_{first:09d}.pkl").read_bytes()
    )
    return data


def _assemble(parts: Iterable[dict[str, Any]]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    rows: list[pd.DataFrame] = []
    kept: dict[str, list[pd.DataFrame]] = {name: [] for name in _KEPT_TABLES}
    for part in parts:
        rows.append(part["rows"])
        for name, frame in part["kept"].items():
            kept[name].append(frame)
    table = pd.concat(rows, ignore_index=True)
    fixed = [c for c in table.columns if not c.startswith(("failed_", "enrolled_site_"))]
    varying = sorted(c for c in table.columns if c not in fixed)
    table = table[fixed + varying]
    for col in varying:
        table[col] = table[col].fillna(0).astype(int)
    return table, {k: pd.concat(v, ignore_index=True) for k, v in kept.items() if v}


# ---------------------------------------------------------------------------
# Summary with Monte Carlo standard errors
# ---------------------------------------------------------------------------

_PROBABILITIES = ("target_reached", "completed_by_deadline")
_DAYS = ("first_patient_in_day", "last_patient_in_day", "last_patient_last_visit_day")


def summarise(table: pd.DataFrame, scenario: Scenario) -> dict[str, Any]:
    """Every numeric metric's mean, median, percentiles and Monte Carlo SE; probabilities.

    The Monte Carlo SE is that of the mean over replicates, sd / sqrt(n); for a
    probability, sqrt(p (1 - p) / n).
    """
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
        entry = {
            "n": int(values.size),
            "mean": float(values.mean()),
            "mcse": float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else None,
            **{
                f"p{p}" if p != 50 else "median": float(v)
                for p, v in zip(SUMMARY_PERCENTILES, q, strict=True)
            },
        }
        metrics[col] = entry
    probabilities = {}
    for col in _PROBABILITIES:
        p = float(table[col].mean())
        probabilities[col] = {"p": p, "mcse": math.sqrt(p * (1 - p) / n)}
    rec = scenario.recruitment
    dates: dict[str, Any] = {}
    if rec is not None:
        for col in _DAYS:
            if col in metrics:
                m = metrics[col]
                dates[col.removesuffix("_day") + "_date"] = {
                    k: _date(rec.start_date, m[k]) for k in ("p5", "p25", "median", "p75", "p95")
                }
    return {
        "replicates": n,
        "deadline": rec.deadline.isoformat() if rec else None,
        "probabilities": probabilities,
        "dates": dates,
        "metrics": metrics,
    }


def _date(start: date, day: float) -> str:
    from datetime import timedelta

    return (start + timedelta(days=math.floor(day))).isoformat()


# ---------------------------------------------------------------------------
# The results folder
# ---------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("dosesim", "numpy", "scipy", "simpy", "pandas", "pydantic", "tqdm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def _manifest(scenario: Scenario, identity: dict[str, Any], started: datetime) -> dict[str, Any]:
    return {
        **identity,
        "scenario": json.loads(scenario.model_dump_json(exclude_none=True)),
        "scenario_source": scenario.source,
        "versions": _versions(),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "time_seconds": round(time.time() - started.timestamp(), 3),
    }


def _write_results(
    folder: Path,
    table: pd.DataFrame,
    kept: dict[str, pd.DataFrame],
    summary: dict[str, Any],
    manifest: dict[str, Any],
) -> None:
    files: dict[str, pd.DataFrame] = {"replicates": table, **kept}
    for name, frame in files.items():
        atomic_write_text(folder / f"{name}.csv", _csv(frame))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        for name, frame in files.items():
            import io

            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            atomic_write_bytes(folder / f"{name}.parquet", buf.getvalue())
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    atomic_write_text(
        folder / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    )
