"""Result tables: one compact row per replicate, the kept per-patient tables, the sites.

The rows are what a run keeps of every replicate (memory stays flat as
replicates grow); the kept tables are those of the first replicates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sim.disease import analyse, analyse_mixed
from sim.endpoints import ENDPOINTS, trial_values
from sim.results.nonmem import nonmem_dataset, number_subjects
from sim.results.sdtm import dated
from sim.scenario import Scenario

KEPT_TABLES = (
    "patients", "events", "dosing_nonmem", "nonmem", "dm", "ex", "ae", "ds", "suppae", "suppds"
)  # fmt: skip
"""The per-patient tables of the kept replicates, as each replicate makes them."""
WRITTEN_TABLES = (*KEPT_TABLES, "nonmem_ids")
"""The kept tables a run writes: with the NONMEM dataset's subject map (:func:`numbered`)."""


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
    row.update(trial_values(o))  # sim.endpoints: the steroid burden at week 52, ...
    row.update(_dose_medians(o))
    for name in sorted(scenario.adverse_events):
        row[f"ae_{name}"] = int(o[f"ae_{name}"].sum())
    if scenario.arms:
        row.update(arm_values(scenario, o))
    if scenario.disease is not None and "fvc_change" in o:  # the primary analysis
        row.update(primary_analysis(scenario, o))
    for criterion, n in sorted(m["screen_failures"].items()):
        row[f"failed_{criterion}"] = n
    for i, n in enumerate(m["enrolled_per_site"].values()):  # by index: names are not identifiers
        row[f"enrolled_site_{i}"] = n
    return row


def _dose_medians(outcomes: dict[str, Any]) -> dict[str, float]:
    """The median over patients of each per-drug dose column (:mod:`sim.trial.dose_columns`)."""
    out = {}
    for key, values in outcomes.items():
        if key.startswith(("cumulative_", "days_")) and key not in ENDPOINTS:
            x = np.asarray(values, dtype=float)
            x = x[np.isfinite(x)]
            out[f"median_{key}"] = float(np.median(x)) if x.size else math.nan
    return out


def primary_analysis(scenario: Scenario, outcomes: dict[str, Any]) -> dict[str, float]:
    """The disease model's analyses of one replicate (:mod:`sim.disease`): FVC's as
    ``[disease.analysis]`` says, Treg's (when modelled) by the t-tests."""
    disease = scenario.disease
    assert disease is not None
    names = tuple(a.name for a in scenario.arms)
    arms = outcomes.get("arm")
    if disease.analysis.method == "mixed_model":
        visits = {w: outcomes[f"fvc_week{w}"] for w in disease.fvc.visit_weeks}
        out = analyse_mixed(visits, disease, arms, names)
    else:
        out = analyse(outcomes["fvc_change"], disease, arms, names)
    if "treg_change" in outcomes:  # the second endpoint: its change by the t-tests
        out.update(analyse(outcomes["treg_change"], disease, arms, names, prefix="treg"))
    return out


ARM_METRICS = ("enrolled", "completed_fraction")
"""Per-arm columns besides the trial endpoints and adverse events."""


def arm_values(scenario: Scenario, outcomes: dict[str, Any]) -> dict[str, float]:
    """Each arm's values of one replicate, and each arm's difference from the first arm.

    ``arm_<name>_<metric>`` for the patients of arm ``<name>``: ``enrolled``,
    ``completed_fraction``, every trial endpoint (e.g. the median cumulative prednisone at
    week 52) and ``ae_<event>`` counts; ``diff_<name>_<metric>`` is the arm's value minus
    the first arm's (the reference) in the same replicate, so its distribution over
    replicates is that of the difference a trial of this size would see.
    """
    arms = outcomes.get("arm")
    names = [a.name for a in scenario.arms]
    out: dict[str, float] = {}
    per_arm: list[dict[str, float]] = []
    for i, name in enumerate(names):
        mask = np.zeros(0, dtype=bool) if arms is None else arms == i
        sub = {
            key: (np.asarray(value)[mask] if len(value) == len(mask) else value)
            for key, value in outcomes.items()
            if key != "status"
        }
        status = [s for s, keep in zip(outcomes["status"], mask, strict=True) if keep]
        n = int(mask.sum())
        values: dict[str, float] = {
            "enrolled": n,
            "completed_fraction": status.count("completed") / n if n else math.nan,
        }
        values.update(trial_values(sub))
        values.update(_dose_medians(sub))
        for event in sorted(scenario.adverse_events):
            values[f"ae_{event}"] = float(sub[f"ae_{event}"].sum())
        per_arm.append(values)
        out.update({f"arm_{name}_{k}": v for k, v in values.items()})
    for i, name in enumerate(names[1:], start=1):
        for key, value in per_arm[i].items():
            out[f"diff_{name}_{key}"] = value - per_arm[0][key]
    return out


def kept_tables(
    scenario: Scenario, replicate: int, trial: Any, names: Sequence[str] = KEPT_TABLES
) -> dict[str, pd.DataFrame]:
    """The per-patient tables ``names`` (of :data:`KEPT_TABLES`) of one replicate.

    ``patients`` and ``events`` alone are cheap; the others (NONMEM, SDTM) are built
    only when asked for."""
    from sim.results import exports

    study = scenario.registry_id or scenario.name
    cohort = trial.cohort
    patients = cohort.patients.copy()
    patients.insert(0, "replicate", replicate)
    events = cohort.events.copy()
    events.insert(0, "replicate", replicate)
    if set(names) <= {"patients", "events"}:
        return {n: t for n, t in (("patients", patients), ("events", events)) if n in names}
    tables = {
        "patients": patients,
        "events": events,
        "dosing_nonmem": exports.nonmem_dosing(cohort, replicate, study),
        "nonmem": nonmem_dataset(cohort, replicate, scenario),
        "ex": exports.sdtm_ex(cohort, replicate, study),
        "ae": exports.sdtm_ae(cohort, replicate, study),
        "ds": exports.sdtm_ds(cohort, replicate, study),
    }
    tables = dated(tables, cohort, replicate, scenario)  # dates, DM, SUPPDS: sim.results.sdtm
    if scenario.arms:  # every table carries the arm
        arm_of = dict(zip(patients["patient_id"], patients["arm"], strict=True))
        by_subject = {
            exports.usubjid(study, replicate, int(pid)): arm for pid, arm in arm_of.items()
        }
        for name in ("ex", "ae", "ds"):  # (DM has ARM of its own)
            frame = tables[name]
            frame.insert(3, "ARM", frame["USUBJID"].map(by_subject).astype(object))
        code = {a.name: i + 1 for i, a in enumerate(scenario.arms)}  # NONMEM wants numbers
        nonmem = tables["dosing_nonmem"]
        nonmem["ARM"] = nonmem["USUBJID"].map(by_subject).map(code).astype("int64")
    return tables


def assemble(parts: Iterable[dict[str, Any]]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    rows: list[pd.DataFrame] = []
    kept: dict[str, list[pd.DataFrame]] = {name: [] for name in KEPT_TABLES}
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
    return table, {k: concat_tables(v) for k, v in kept.items() if v}


def numbered(kept: dict[str, pd.DataFrame], scenario: Scenario) -> dict[str, pd.DataFrame]:
    """The kept tables with the NONMEM dataset's subjects numbered 1..N over the file and
    their map (``nonmem_ids``: ``ID, REP, PID, USUBJID``); :mod:`sim.results.nonmem`."""
    if "nonmem" not in kept:
        return kept
    study = scenario.registry_id or scenario.name
    dataset, ids = number_subjects(kept["nonmem"], study)
    return {**kept, "nonmem": dataset, "nonmem_ids": ids}


def concat_tables(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Replicates' tables one after the other. A replicate that enrolled nobody has an
    empty table whose columns have no type; it adds no row, and is left out so that it
    does not turn whole columns into text (a checkpoint would then refuse them)."""
    rows = [f for f in frames if len(f)]
    return pd.concat(rows or frames[:1], ignore_index=True)


# ---------------------------------------------------------------------------


def csv_text(frame: pd.DataFrame) -> str:
    """A table as CSV text, as every results file is written (no index, newline endings)."""
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
