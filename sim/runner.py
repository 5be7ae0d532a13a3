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
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from sim.collector import young_collections_only
from sim.errors import DosesimError
from sim.executors import DEFAULT_CONNECT_TIMEOUT_S, Chunk, Executor, LostExecutor, chunks_of
from sim.progress import progress_bar
from sim.results.checkpoint import Checkpoint
from sim.results.folder import CHECKPOINT, ResultsFolder, environment
from sim.results.summaries import summarise
from sim.results.tables import (
    KEPT_TABLES,
    WRITTEN_TABLES,
    assemble,
    concat_tables,
    csv_text,
    kept_tables,
    numbered,
    replicate_row,
    sites_table,
)
from sim.scenario import Scenario
from sim.trial.milestones import DEFAULT_LEVEL, check_level
from sim.trial.trial import require_eligibility, simulate_trials

__all__ = [
    "CHECKPOINT",
    "RunResult",
    "provenance",
    "replicate_row",
    "run",
    "sites_table",
    "summarise",
]


def _run_chunk(
    scenario: Scenario,
    seed: int,
    keep: int,
    first: int,
    last: int,
    names: tuple[str, ...] = KEPT_TABLES,
) -> dict[str, Any]:
    """Replicates ``first`` .. ``last - 1``: their rows and, for those below ``keep``, the
    tables ``names`` (of :data:`KEPT_TABLES`)."""
    rows = []
    kept: dict[str, list[pd.DataFrame]] = {name: [] for name in KEPT_TABLES}
    replicates = range(first, last)
    with young_collections_only():  # a full collection walks every object: sim.collector
        trials = simulate_trials(scenario, seed, replicates, range(keep))
        for r, trial in zip(replicates, trials, strict=True):
            rows.append(replicate_row(scenario, r, trial))
            if r < keep:
                for name, table in kept_tables(scenario, r, trial, names).items():
                    kept[name].append(table)
    return {
        "first": first,
        "last": last,
        "rows": pd.DataFrame(rows),  # compact: memory stays flat as replicates grow
        "kept": {k: concat_tables(v) for k, v in kept.items() if v},
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
    xpt: bool = False,
    kept_names: Sequence[str] = KEPT_TABLES,
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
        process writes it at a time (:mod:`sim.results.folder`).
    keep_patients : int or None
        Keep per-patient tables for the first K replicates (None: all).
    kept_names : sequence of str
        Which per-patient tables to keep (default all of :data:`KEPT_TABLES`); without
        ``out`` a caller that draws only from ``patients`` and ``events`` (``dosesim
        compare``) saves building the SDTM and NONMEM tables. A results folder always
        holds them all.
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
    xpt : bool
        Also write the SDTM tables as SAS transport v5 files (``dm.xpt``, ``ex.xpt``,
        ``ae.xpt``, ``ds.xpt``, ``suppae.xpt``, ``suppds.xpt``; the ``xpt`` extra, pyreadstat).

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
    names = tuple(kept_names) if out is None else KEPT_TABLES
    unknown = sorted(set(names) - set(KEPT_TABLES))
    if unknown:
        raise DosesimError(f"kept_names: {', '.join(unknown)} not among {', '.join(KEPT_TABLES)}")
    with Executor(workers, scheduler, connect_timeout_s, install=(scenario,)) as executor:
        default_size = int(min(200, max(10, math.ceil(replicates / (8 * executor.lanes)))))
        size = chunk_size or default_size
        if out is None:
            parts: dict[int, dict[str, Any]] = {}
            chunks = chunks_of(replicates, size)
            with progress_bar(replicates, "run", progress) as tick:
                for result in _stream(executor, scenario, seed, keep, names, chunks):
                    parts[result["first"]] = result
                    tick(result["last"] - result["first"])
            table, kept = assemble(parts[first] for first, _ in chunks)
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
                folder, executor, scenario, seed, keep, size, chunk_size, resume, level, progress,
                xpt,
            )  # fmt: skip


def _stream(
    executor: Executor,
    scenario: Scenario,
    seed: int,
    keep: int,
    names: tuple[str, ...],
    chunks: list[Chunk],
) -> Iterator[dict[str, Any]]:
    task = _run_chunk if names == KEPT_TABLES else partial(_run_chunk, names=names)
    with closing(executor.map(task, (scenario, seed, keep), chunks)) as results:
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
    xpt: bool = False,
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
            for result in _stream(executor, scenario, seed, keep, KEPT_TABLES, todo):
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
    table, kept = assemble(checkpoint.load(first) for first, _ in chunks)
    kept = numbered(kept, scenario)
    summary = summarise(table, scenario, level)
    folder.begin()
    _write_results(folder, table, kept, summary, scenario, xpt)
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
            for name in WRITTEN_TABLES
            if (folder.path / f"{name}.csv").exists()
        }
    except (OSError, ValueError) as exc:
        raise DosesimError(f"{folder.path}: a results file is damaged ({exc})") from None
    return RunResult(table, summarise(table, scenario, level), folder.path, kept, manifest)


# ---------------------------------------------------------------------------
# The results folder
# ---------------------------------------------------------------------------


def _write_results(
    folder: ResultsFolder,
    table: pd.DataFrame,
    kept: dict[str, pd.DataFrame],
    summary: dict[str, Any],
    scenario: Scenario,
    xpt: bool = False,
) -> None:
    files: dict[str, pd.DataFrame] = {"replicates": table, "sites": sites_table(scenario), **kept}
    for name, frame in files.items():
        folder.write_text(f"{name}.csv", csv_text(frame))
    if xpt:
        from sim.results.sdtm import SDTM_TABLES, xpt_bytes

        for name in SDTM_TABLES:
            if name in kept:
                folder.write_bytes(f"{name}.xpt", xpt_bytes(name, kept[name]))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        from sim.results.dictionary import parquet_bytes

        for name, frame in files.items():
            folder.write_bytes(f"{name}.parquet", parquet_bytes(name, frame))
    folder.write_text("summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
