"""Scenario comparison with common random numbers: paired differences to a reference.

Every scenario is run with the same seed, so replicate ``r`` of each scenario
draws from the same random streams wherever the scenarios share structure
(common random numbers). For each metric the per-replicate differences
``d_r = x_r - x_ref,r`` to the first scenario are then paired: their mean is the
difference, and the paired interval at level L (default 90 %, as every
interval dosesim prints)

    mean(d) +/- t_{(1 + L)/2, n-1} * sd(d) / sqrt(n)

is usually much narrower than the unpaired (Welch) interval on the two means,
which is reported for reference. A scenario compared with itself has
differences of exactly zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from sim.endpoints import compared_by_default
from sim.errors import DosesimError, Problem, ScenarioError
from sim.executors import DEFAULT_CONNECT_TIMEOUT_S
from sim.runner import RunResult, run
from sim.scenario import Scenario, scenario_from_dict
from sim.trial.milestones import (
    DEFAULT_LEVEL,
    MILESTONE_METRICS,
    check_level,
    interval_label,
    milestone_columns,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_METRICS",
    "Comparison",
    "compare",
    "default_metric_names",
    "default_metrics",
    "differing_settings",
    "sweep",
    "sweep_name",
    "tabulate",
    "with_milestones",
]

#: Per-patient tables a comparison keeps (for its report's overlaid figures).
KEPT_FOR_REPORT = ("patients", "events")
#: Replicates whose patients a comparison keeps by default (as ``dosesim run``).
DEFAULT_KEEP = 100

_EXIT_METRICS = ("completed_fraction", "withdrawn", "died", "discontinued")
#: The disease side of the trade-off, when the scenarios model it: the per-trial mean
#: change at the landmark, the share of significant replicates (power), Treg's change.
_DISEASE_METRICS = ("fvc_change_mean", "fvc_significant", "fvc_evaluable", "treg_change_mean")
#: The milestones are those of :func:`sim.trial.milestones.milestone_columns`: a replicate that
#: never reaches the target does not lend its last enrolment to "last patient in".
_TRIAL_METRICS = (*MILESTONE_METRICS, "target_reached", "completed_by_deadline")


def default_metric_names() -> tuple[str, ...]:
    """Metrics compared by default, in order: the trial endpoints compared by default
    (:func:`sim.endpoints.compared_by_default`, as registered now), the exits, the disease
    (FVC change, power, evaluable patients, Treg change: where modelled), then (after
    every ``ae_*`` column, see :func:`default_metrics`) the milestones."""
    return (*compared_by_default(), *_EXIT_METRICS, *_DISEASE_METRICS, *_TRIAL_METRICS)


#: :func:`default_metric_names` when this module was imported (the built-in endpoints).
DEFAULT_METRICS = default_metric_names()

#: The columns of :attr:`Comparison.table`.
COLUMNS = (
    "scenario",
    "metric",
    "n",
    "mean",
    "mcse",
    "n_pairs",
    "difference",
    "difference_se",
    "paired_low",
    "paired_high",
    "unpaired_difference",
    "unpaired_low",
    "unpaired_high",
    "level",
)


@dataclass
class Comparison:
    """Scenarios run with the same seed, and their metrics compared with the first.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per scenario and metric (columns :data:`COLUMNS`): ``n`` finite
        replicates, their ``mean`` and its Monte Carlo SE ``mcse``; ``n_pairs``
        replicates where both this scenario and the first have a value;
        ``difference``, the mean of the paired per-replicate differences to the
        first scenario, its SE ``difference_se`` and t interval
        ``paired_low``-``paired_high``; ``unpaired_difference`` (the
        difference of the two means over all finite replicates) with its Welch
        t interval ``unpaired_low``-``unpaired_high``; ``level``, the
        intervals' confidence level. Units are the metric's own (mg, days,
        counts per trial, fractions).
    scenarios : list of str
        Scenario labels in order; the first is the reference. A repeated name
        gets `` (2)``, `` (3)``, ... so labels are unique.
    metrics : list of str
        The metrics compared, in order.
    replicates : int
        Replicates per scenario.
    seed : int
        The seed every scenario was run with.
    results : dict of str to RunResult
        Each scenario's run (per-replicate rows in ``.replicates``; the ``patients``
        and ``events`` tables of the first kept replicates in ``.kept``), by label.
    level : float
        The intervals' confidence level.
    definitions : list of Scenario
        The resolved scenarios, in the order of ``scenarios`` (for schedules, dates and
        the settings that differ).
    """

    table: pd.DataFrame
    scenarios: list[str]
    metrics: list[str]
    replicates: int
    seed: int
    results: dict[str, RunResult] = field(default_factory=dict)
    level: float = DEFAULT_LEVEL
    definitions: list[Scenario] = field(default_factory=list)

    @property
    def level_label(self) -> str:
        """The intervals' level as printed, e.g. ``90 %``."""
        return interval_label(self.level)

    @property
    def reference(self) -> str:
        """The label of the first scenario, the one every difference is taken to."""
        return self.scenarios[0]

    def to_csv(self) -> str:
        """The table as CSV text (``\\n`` line ends, full float precision)."""
        text: str = self.table.to_csv(index=False, lineterminator="\n")
        return text


def default_metrics(tables: Sequence[pd.DataFrame]) -> list[str]:
    """The default metrics present in any of ``tables``, with every ``ae_*`` column.

    Parameters
    ----------
    tables : sequence of DataFrame
        Per-replicate tables (``RunResult.replicates``).
    """
    columns: set[str] = set()
    for table in tables:
        columns.update(str(c) for c in table.columns)
    aes = sorted(c for c in columns if c.startswith("ae_"))
    head = [m for m in (*compared_by_default(), *_EXIT_METRICS, *_DISEASE_METRICS) if m in columns]
    tail = [m for m in _TRIAL_METRICS if m in columns]
    return head + aes + tail


def with_milestones(table: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """The replicate table with :data:`sim.trial.milestones.MILESTONE_METRICS` added."""
    rec = scenario.recruitment
    if rec is None or "target_reached" not in table.columns:
        return table
    return pd.concat([table, milestone_columns(table, rec.enrolment_deadline_day)], axis=1)


def _labels(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _values(table: pd.DataFrame, metric: str) -> pd.Series:
    """The metric per replicate as floats indexed by replicate (NaN where absent)."""
    index = pd.Index(table["replicate"].to_numpy(), name="replicate")
    if metric not in table.columns:
        return pd.Series(np.nan, index=index, dtype=float)
    values = pd.to_numeric(table[metric], errors="coerce").to_numpy(dtype=float, copy=True)
    values[~np.isfinite(values)] = np.nan
    return pd.Series(values, index=index, dtype=float)


def _t_half_width(se: float, df: float, level: float) -> float:
    if not math.isfinite(se) or not df > 0:
        return math.nan
    if se == 0.0:
        return 0.0
    return float(student_t.ppf(0.5 + level / 2, df)) * se


def _stats(x: pd.Series, ref: pd.Series, level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """Mean and MCSE of ``x``; paired and unpaired differences of ``x`` to ``ref``."""
    xs = x.dropna().to_numpy()
    rs = ref.dropna().to_numpy()
    n = int(xs.size)
    mean = float(xs.mean()) if n else math.nan
    mcse = float(xs.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    pairs = pd.concat([x, ref], axis=1, join="inner").dropna()
    d = (pairs.iloc[:, 0] - pairs.iloc[:, 1]).to_numpy()
    n_pairs = int(d.size)
    diff = float(d.mean()) if n_pairs else math.nan
    d_se = float(d.std(ddof=1) / math.sqrt(n_pairs)) if n_pairs > 1 else math.nan
    half = _t_half_width(d_se, n_pairs - 1, level)
    # Welch: each mean's own variance; Welch-Satterthwaite degrees of freedom.
    m = int(rs.size)
    if n > 1 and m > 1:
        vx, vr = float(xs.var(ddof=1)) / n, float(rs.var(ddof=1)) / m
        u_se = math.sqrt(vx + vr)
        u_df = (vx + vr) ** 2 / (vx**2 / (n - 1) + vr**2 / (m - 1)) if u_se > 0 else math.inf
        u_half = _t_half_width(u_se, u_df, level)
        u_diff = mean - float(rs.mean())
    else:
        u_half = u_diff = math.nan
    return {
        "n": n,
        "mean": mean,
        "mcse": mcse,
        "n_pairs": n_pairs,
        "difference": diff,
        "difference_se": d_se,
        "paired_low": diff - half,
        "paired_high": diff + half,
        "unpaired_difference": u_diff,
        "unpaired_low": u_diff - u_half,
        "unpaired_high": u_diff + u_half,
        "level": level,
    }


def compare(
    scenarios: Sequence[Scenario],
    replicates: int,
    seed: int,
    workers: int = 1,
    metrics: Sequence[str] | None = None,
    scheduler: Any = None,
    level: float = DEFAULT_LEVEL,
    progress: bool = False,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    keep_patients: int = DEFAULT_KEEP,
) -> Comparison:
    """Run every scenario with the same seed and compare each metric with the first.

    Parameters
    ----------
    scenarios : sequence of Scenario
        Two or more runnable scenarios (one is allowed: its differences are zero);
        the first is the reference.
    replicates : int
        Replicate trials per scenario (>= 2 for intervals).
    seed : int
        The seed every scenario is run with (>= 0): common random numbers.
    workers : int
        Local worker processes per run (1: in this process).
    metrics : sequence of str, optional
        Columns of the per-replicate table to compare (default
        :func:`default_metrics`). A metric a scenario lacks is NaN for it.
    scheduler : str or distributed.Client, optional
        A Dask scheduler (address or client) to run on instead of local workers.
    level : float
        Confidence level of the intervals (default 0.9).
    progress : bool
        Show a progress bar per scenario.
    connect_timeout_s : float
        Seconds to wait for a Dask scheduler given by address.
    keep_patients : int
        Keep the ``patients`` and ``events`` tables of the first K replicates of each
        scenario (default 100), for the report's distributions; no number compared
        depends on it.

    Returns
    -------
    Comparison

    Notes
    -----
    Replicate ``r`` of scenario ``s`` is paired with replicate ``r`` of the
    first scenario; a pair where either value is NaN (e.g. no patient reached
    week 52) is dropped. With ``d_r`` the paired differences,
    ``difference = mean(d)`` and the paired interval is
    ``mean(d) +/- t_{(1 + level)/2, n-1} sd(d) / sqrt(n)``.
    """
    if not scenarios:
        raise DosesimError("compare needs at least one scenario")
    level = check_level(level)
    labels = _labels([s.name for s in scenarios])
    results: dict[str, RunResult] = {}
    for label, scenario in zip(labels, scenarios, strict=True):
        results[label] = run(
            scenario,
            replicates,
            seed,
            workers=workers,
            scheduler=scheduler,
            keep_patients=keep_patients,
            level=level,
            progress=progress,
            connect_timeout_s=connect_timeout_s,
            kept_names=KEPT_FOR_REPORT,
        )
    return tabulate(scenarios, list(results.values()), seed, metrics, level)


def tabulate(
    scenarios: Sequence[Scenario],
    runs: Sequence[RunResult],
    seed: int,
    metrics: Sequence[str] | None = None,
    level: float = DEFAULT_LEVEL,
) -> Comparison:
    """The comparison of runs already made (one per scenario, the same seed and replicates).

    :func:`compare` runs the scenarios and calls this; ``dosesim report`` calls it on
    the replicate tables a comparison folder holds, so a report can be made again at
    another level without running anything.

    Parameters
    ----------
    scenarios : sequence of Scenario
        The scenarios, the reference first.
    runs : sequence of RunResult
        Their runs, in the same order.
    seed : int
        The seed they were run with.
    metrics : sequence of str, optional
        As in :func:`compare`.
    level : float
        Confidence level of the intervals.
    """
    level = check_level(level)
    labels = _labels([s.name for s in scenarios])
    results = dict(zip(labels, runs, strict=True))
    tables = [with_milestones(r.replicates, s) for r, s in zip(runs, scenarios, strict=True)]
    chosen = list(metrics) if metrics is not None else default_metrics(tables)
    if metrics is not None:
        known = {str(c) for t in tables for c in t.columns}
        unknown = [m for m in chosen if m not in known]
        if unknown:
            raise DosesimError(
                f"unknown metric(s): {', '.join(unknown)}; the replicate table has "
                + ", ".join(sorted(known))
            )
    rows = []
    for metric in chosen:
        ref = _values(tables[0], metric)
        for label, table in zip(labels, tables, strict=True):
            rows.append(
                {"scenario": label, "metric": metric, **_stats(_values(table, metric), ref, level)}
            )
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    replicates = len(runs[0].replicates) if runs else 0
    return Comparison(
        frame, labels, chosen, replicates, seed, results, level, definitions=list(scenarios)
    )


def sweep_name(key: str, value: Any) -> str:
    """A variant's name: the key's last part and the value, e.g. ``start_mg_per_kg=0.5``."""
    leaf = key.rsplit(".", 1)[-1]
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return f"{leaf}={text}"


def sweep(base: Scenario, key: str, values: Sequence[Any]) -> list[Scenario]:
    """One variant of ``base`` per value of ``key``: a one-way sweep.

    Parameters
    ----------
    base : Scenario
        The resolved scenario to vary.
    key : str
        A key path as in ``--set``, e.g. ``prednisone.start_mg_per_kg``.
    values : sequence
        The values, in order (Python values; parse command-line text as TOML first).

    Returns
    -------
    list of Scenario
        Named by :func:`sweep_name`, e.g. ``start_mg_per_kg=0.5``; the first is
        the reference of a :func:`compare`.

    Raises
    ------
    ScenarioError
        If a variant is not a valid scenario (the message names the key and value).
    DosesimError
        If ``values`` is empty or repeats a value.
    """
    if not values:
        raise DosesimError(f"--vary {key}: give at least one value")
    names = [sweep_name(key, v) for v in values]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DosesimError(f"--vary {key}: repeated value(s): {', '.join(repeated)}")
    source = base.source or base.name
    data = base.to_dict()
    variants: list[Scenario] = []
    problems: list[Problem] = []
    for value, name in zip(values, names, strict=True):
        try:
            variant = scenario_from_dict(data, {key: value, "name": name}, source=source)
            # the variant is named by its value; what it records is the base's provenance
            variants.append(variant.with_provenance(base.files, base.overrides))
        except ScenarioError as exc:
            # the override is a sweep value, not a --set: say so
            problems.extend(
                replace(p, file="--vary") if p.file == "--set" else p for p in exc.problems
            )
    if problems:
        raise ScenarioError(problems)
    return variants


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for k, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{k}]")
    else:
        yield prefix, value


def differing_settings(scenarios: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The key paths whose values differ between resolved scenarios, in first-seen order.

    Parameters
    ----------
    scenarios : list of dict
        Resolved scenarios (``Scenario.to_dict_json()``).

    Returns
    -------
    list of (str, list)
        ``(key path, [value in each scenario])``: a table's entries by dotted path, a
        list of tables by index (``sites[0].name``); ``None`` where a scenario lacks
        the key. ``name`` and ``description`` are left out (they always differ).
    """
    flat = [dict(_flatten(s)) for s in scenarios]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    out = []
    for key in keys:
        if key in ("name", "description"):
            continue
        values = [f.get(key) for f in flat]
        if any(v != values[0] for v in values[1:]):
            out.append((key, values))
    return out
