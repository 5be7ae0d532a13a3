"""The files of a comparison folder, and reading them back.

``dosesim compare`` writes, beside ``comparison.csv`` and the forest figure, each
scenario's replicate table and the ``patients`` and ``events`` tables of its kept
replicates, numbered in the comparison's order (the reference is 1):

* ``scenario<k>_replicates.csv``: one row per replicate, as a run's ``replicates.csv``;
* ``scenario<k>_patients.csv``, ``scenario<k>_events.csv``: as a run's, for the first
  kept replicates;

and in ``manifest.json`` the resolved scenarios, their labels, the metrics and the
level. :func:`load_comparison` reads them back (every file's sha256 checked) into
the :class:`~sim.compare.Comparison` they came from, so that ``dosesim report``
can make the comparison's report again, at another level if asked, without
running anything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from sim.compare import KEPT_FOR_REPORT, Comparison, tabulate
from sim.errors import DosesimError
from sim.fileio import check_regular_file
from sim.results.folder import ResultsFolder, read_manifest, verify_files
from sim.results.summaries import summarise
from sim.results.tables import csv_text
from sim.runner import RunResult
from sim.scenario import Scenario

__all__ = [
    "SCENARIO_FILE",
    "load_comparison",
    "manifest_extra",
    "scenario_file",
    "write_scenario_tables",
]

#: A scenario's table in a comparison folder: ``scenario<k>_<table>.csv``, k from 1.
SCENARIO_FILE = re.compile(r"^scenario(\d+)_(.+)$")


def scenario_file(k: int, table: str) -> str:
    """The name of scenario ``k``'s (1-based) ``table`` in a comparison folder."""
    return f"scenario{k}_{table}.csv"


def write_scenario_tables(folder: ResultsFolder, comparison: Comparison) -> None:
    """Write each scenario's replicate table and kept ``patients`` and ``events``."""
    for k, label in enumerate(comparison.scenarios, start=1):
        result = comparison.results[label]
        folder.write_text(scenario_file(k, "replicates"), csv_text(result.replicates))
        for name in KEPT_FOR_REPORT:
            if name in result.kept:
                folder.write_text(scenario_file(k, name), csv_text(result.kept[name]))


def manifest_extra(comparison: Comparison) -> dict[str, Any]:
    """What a comparison's manifest records besides identity and provenance: the
    resolved scenarios, their labels, the metrics compared and the level."""
    return {
        "scenarios": [s.to_dict_json() for s in comparison.definitions],
        "scenario_labels": list(comparison.scenarios),
        "metrics": list(comparison.metrics),
        "level": comparison.level,
    }


def load_comparison(
    folder: str | Path, level: float | None = None
) -> tuple[Comparison, dict[str, Any]]:
    """Read a complete comparison folder back into its Comparison, and its manifest.

    Parameters
    ----------
    folder : path
        A folder written by ``dosesim compare``.
    level : float, optional
        The intervals' level (default: the comparison's own).

    Raises
    ------
    DosesimError
        Not a comparison's folder, an unfinished one, one written by a dosesim that did
        not keep the scenarios' tables, or a file changed since.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("command") != "compare":
        raise DosesimError(f"{folder}: not a results folder of dosesim compare")
    if manifest.get("status") != "complete":
        raise DosesimError(
            f"{folder}: the comparison that writes this folder did not finish; run it again"
        )
    verify_files(folder, manifest)
    if scenario_file(1, "replicates") not in manifest.get("files", {}):
        raise DosesimError(
            f"{folder}: written by an earlier dosesim that kept no per-scenario tables; "
            "run dosesim compare again to make its report"
        )
    try:
        data = manifest["scenarios"]
        hashes = manifest["identity"]["scenario_hashes"]
        overrides = tuple(manifest.get("overrides", []))
        scenarios = [
            Scenario.model_validate_json(json.dumps(d)).with_provenance((), overrides) for d in data
        ]
        if [s.hash for s in scenarios] != hashes:
            raise ValueError("the scenarios do not have the hashes the identity records")
        level = float(manifest.get("level", 0.9)) if level is None else level
        runs = []
        for k, scenario in enumerate(scenarios, start=1):
            replicates = _read(folder, scenario_file(k, "replicates"))
            kept = {
                name: _read(folder, scenario_file(k, name))
                for name in KEPT_FOR_REPORT
                if scenario_file(k, name) in manifest["files"]
            }
            summary = summarise(replicates, scenario, level)
            runs.append(RunResult(replicates, summary, folder, kept, manifest))
        comparison = tabulate(scenarios, runs, int(manifest["seed"]), manifest["metrics"], level)
    except (KeyError, TypeError, ValueError, pd.errors.ParserError) as exc:
        raise DosesimError(
            f"{folder}: manifest.json or a scenario's table is damaged "
            f"({type(exc).__name__}: {exc})"
        ) from None
    return comparison, manifest


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(check_regular_file(folder / name), keep_default_na=True)
