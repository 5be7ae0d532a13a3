"""A NONMEM-ready dataset of a replicate: dose and observation records, numbers only.

One row per record, in the layout NONMEM, pharmpy, mrgsolve and rxode2 read
(``docs/model.md``, "Outputs for other tools", gives every column's unit and code):

* ``ID``: the subject, 1..N over the file in the order of replicate then patient
  (:func:`number_subjects`; ``nonmem_ids.csv`` maps it to ``REP``, ``PID`` and
  ``USUBJID``), so that it fits NONMEM's default 5-digit table format;
* ``TIME``: hours from the patient's first dose;
* ``EVID``: 1 dose, 0 observation; ``MDV``: 1 on doses, 0 on observations;
* ``AMT``: mg per administration; ``II``: hours between administrations and
  ``ADDL`` the additional ones of a constant-dose stretch (``II`` 0 when there are
  none); ``SS`` 0; ``RATE`` 0 (oral doses; an intravenous dose is a bolus here);
* ``CMT``: the ``i``-th drug of the trial (from 0) is dosed into its depot
  compartment ``2 i + 1`` and its concentration observed in its central
  compartment ``2 i + 2``; a disease endpoint is observed in compartment
  ``2 k + 1 + j`` after the ``k`` drugs (:func:`compartments`);
* ``DV``: the observation (mg/L for a concentration, % predicted for FVC, % of
  CD4+ for Treg), 0 on doses; ``DVID`` what it is (:func:`observation_types`);
* covariates, constant per patient: ``WT`` (kg), ``AGE`` (years), ``SEX``
  (1 female, 0 male), ``FVC0`` (screened FVC, % predicted), ``ARM`` (1.. in the
  scenario's ``[[arms]]`` order; 1 without arms), ``REP`` and ``PID``.

Observations: each exposure model's concentration before the day's first dose and
``PEAK_HOURS`` after it, on the sampling days (the FVC visits after baseline where
the scenario has a disease model, else :data:`SAMPLING_WEEKS`) while the patient is
on study; the disease endpoints as measured at their visits (a missing measurement
gives no record). At equal times an observation comes before a dose, so a
pre-dose concentration is a trough.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sim.drugs import Drug
from sim.exposure import concentration
from sim.scenario import Scenario
from sim.trial.cohort import CohortResult

__all__ = [
    "DATASET_COLUMNS",
    "PEAK_HOURS",
    "SAMPLING_WEEKS",
    "compartments",
    "nonmem_dataset",
    "number_subjects",
    "observation_types",
]

DATASET_COLUMNS = (
    "ID", "TIME", "EVID", "AMT", "CMT", "II", "ADDL", "SS", "RATE", "DV", "MDV", "DVID",
    "WT", "AGE", "SEX", "FVC0", "ARM", "REP", "PID",
)  # fmt: skip
"""The columns of ``nonmem.csv``, in order."""

SAMPLING_WEEKS = (4, 13, 26, 52)
"""Weeks of the PK samples when the scenario declares no disease visits."""

PEAK_HOURS = 2.0
"""The post-dose sample, hours after the day's first dose (near the MPA and prednisolone
peaks of the base models, t_max about 1-2 h)."""

_ENDPOINTS = (("fvc", "FVC % predicted"), ("treg", "Treg % of CD4+"))


def compartments(drugs: Sequence[Drug]) -> dict[str, tuple[int, int]]:
    """Each drug's (depot, central) compartment numbers: ``2 i + 1`` and ``2 i + 2``."""
    return {d.name: (2 * i + 1, 2 * i + 2) for i, d in enumerate(drugs)}


def observation_types(drugs: Sequence[Drug], scenario: Scenario) -> dict[str, tuple[int, int, str]]:
    """What each ``DVID`` observes: name -> (DVID, CMT, description).

    The concentration of each drug's measured moiety first (in drug order), then the
    disease endpoints the scenario models.
    """
    out: dict[str, tuple[int, int, str]] = {}
    cmts = compartments(drugs)
    for d in drugs:
        if d.moiety is not None and d.moiety not in out:
            out[d.moiety] = (len(out) + 1, cmts[d.name][1], f"{d.moiety} concentration, mg/L")
    disease = scenario.disease
    if disease is not None:
        for j, (key, text) in enumerate(_ENDPOINTS):
            if key == "fvc" or disease.treg is not None:
                out[key] = (len(out) + 1, 2 * len(drugs) + 1 + j, text)
    return out


def _sampling_days(scenario: Scenario) -> list[int]:
    weeks = scenario.disease.fvc.visit_weeks[1:] if scenario.disease else SAMPLING_WEEKS
    return [7 * w for w in weeks]


def nonmem_dataset(result: CohortResult, replicate: int, scenario: Scenario) -> pd.DataFrame:
    """One replicate's records (:data:`DATASET_COLUMNS`; ``ID`` is the patient id until
    :func:`number_subjects` numbers the file's subjects).

    Parameters
    ----------
    result : CohortResult
        One replicate of the cohort model, with each patient's exposure models.
    replicate : int
        The replicate's index (``REP``).
    scenario : Scenario
        The scenario it ran (visits, arms).
    """
    drugs = result.drugs
    cmts = compartments(drugs)
    types = observation_types(drugs, scenario)
    days = _sampling_days(scenario)
    arms = {a.name: i + 1 for i, a in enumerate(scenario.arms)}
    rows: list[tuple[Any, ...]] = []
    patients = result.patients.set_index("patient_id", drop=False)
    for pid, schedules in sorted(result.schedules.items()):
        row = patients.loc[pid]
        exit_day = float(row["exit_day"])
        covariates = (
            float(row["weight_kg"]), float(row["age_years"]), int(row["sex"] == "F"),
            float(row["fvc_percent"]), arms.get(str(row.get("arm", "")), 1), int(replicate),
            int(pid),
        )  # fmt: skip
        for drug in drugs:  # dose records: one per constant-dose stretch
            schedule = schedules[drug.name]
            n = schedule.doses_per_day
            for seg in schedule.segments():
                if seg.dose_mg_per_day <= 0:
                    continue
                addl = (seg.end_day - seg.start_day) * n - 1
                ii = 24.0 / n if addl else 0.0
                amt, depot = seg.dose_mg_per_day / n, cmts[drug.name][0]
                rows.append(
                    (pid, 24.0 * seg.start_day, 1, amt, depot, ii, addl, 0, 0.0, 0.0, 1, 0,
                     *covariates)
                )  # fmt: skip
        models = result.models.get(pid, {})
        for drug in drugs:  # concentrations: trough and peak on the sampling days
            if drug.moiety not in models or drug.moiety not in types:
                continue
            dvid, cmt, _ = types[drug.moiety]
            times = [
                24.0 * d + h for d in days for h in (0.0, PEAK_HOURS) if d + h / 24 <= exit_day
            ]
            if not times:
                continue
            values = concentration(models[drug.moiety], schedules[drug.name], times)
            for t, value in zip(times, values.tolist(), strict=True):
                rows.append((pid, t, 0, 0.0, cmt, 0.0, 0, 0, 0.0, value, 0, dvid, *covariates))
        for key, _ in _ENDPOINTS:  # the disease endpoints as measured
            if key not in types:
                continue
            dvid, cmt, _ = types[key]
            visits = getattr(scenario.disease, key).visit_weeks
            for week in visits:
                value = float(row.get(f"{key}_week{week}", math.nan))
                if math.isfinite(value):
                    rows.append((pid, 168.0 * week, 0, 0.0, cmt, 0.0, 0, 0, 0.0, value, 0, dvid,
                                 *covariates))  # fmt: skip
    out = pd.DataFrame(rows, columns=list(DATASET_COLUMNS))
    ints = ("ID", "EVID", "CMT", "ADDL", "SS", "MDV", "DVID", "SEX", "ARM", "REP", "PID")
    out = out.astype({c: "int64" for c in ints})
    # by subject and time; at one time observations (EVID 0) before doses
    return out.sort_values(["ID", "TIME", "EVID", "CMT"], kind="stable", ignore_index=True)


def number_subjects(frame: pd.DataFrame, study_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The file's dataset with ``ID`` 1..N in the order of (``REP``, ``PID``), and the map
    from ``ID`` to ``REP``, ``PID`` and ``USUBJID`` (:func:`sim.results.exports.usubjid`).
    """
    from sim.results.exports import usubjid

    keys = frame[["REP", "PID"]].drop_duplicates().sort_values(["REP", "PID"], ignore_index=True)
    keys.insert(0, "ID", np.arange(1, len(keys) + 1, dtype=np.int64))
    numbered = frame.drop(columns="ID").merge(keys, on=["REP", "PID"], how="left")
    numbered = numbered[list(DATASET_COLUMNS)].sort_values(
        ["ID", "TIME", "EVID", "CMT"], kind="stable", ignore_index=True
    )
    ids = keys.assign(
        USUBJID=[
            usubjid(study_id, int(r), int(p)) for r, p in zip(keys["REP"], keys["PID"], strict=True)
        ]
    )
    return numbered, ids
