"""The disease model on a cohort's patients: their FVC (and Treg) measurements and changes.

Computed after the patients' follow-up, from their schedules as given, their own MPA
model and the flares and rescues that happened to them (:mod:`sim.disease`). The FVC
draws of a patient come from the stream ``("replicate", r, "disease", person)`` (the
slope, the measurement errors, then one uniform per flare); the Treg draws from
``("replicate", r, "treg", person)`` (the baseline, the slope, the errors).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from sim.disease import FvcPatient, Steps, exposure_steps, patient_fvc, patient_marker
from sim.exposure import mpa_auc0_12_at_target
from sim.scenario import Scenario
from sim.schedule import Schedule
from sim.trial.patient import Patient


class Cohort(Protocol):
    """What the FVC columns read of a cohort (:class:`sim.trial.cohort.Cohort`)."""

    scenario: Scenario
    ctxs: list[Any]
    fvc_values: dict[int, dict[str, float]]

    def given(self, p: Patient) -> dict[str, Schedule]: ...

    def stream(self, *path: int | str) -> np.random.Generator: ...


__all__ = [
    "disease_event_names",
    "fvc_columns",
    "fvc_outcomes",
    "fvc_values",
    "patient_fvc_values",
]


def disease_event_names(scenario: Scenario) -> frozenset[str]:
    """The adverse events the disease model reads: its flares and the estimand's rescues."""
    disease = scenario.disease
    if disease is None:
        return frozenset()
    return frozenset(disease.fvc.flare_events) | frozenset(disease.estimand.rescue_events)


def fvc_columns(cohort: Cohort) -> list[str]:
    """The patients table's disease columns: FVC per visit and its change, then Treg's."""
    disease = cohort.scenario.disease
    if disease is None:
        return []
    out = [*(f"fvc_week{w}" for w in disease.fvc.visit_weeks), "fvc_change"]
    if disease.treg is not None:
        out += [*(f"treg_week{w}" for w in disease.treg.visit_weeks), "treg_change"]
    return out


def fvc_values(cohort: Cohort, p: Patient) -> dict[str, float]:
    """The patient's disease columns (:func:`fvc_columns`), computed once per cohort."""
    found = cohort.fvc_values.get(p.patient_id)
    if found is None:
        found = cohort.fvc_values[p.patient_id] = patient_fvc_values(cohort, p)
    return found


def fvc_outcomes(cohort: Cohort, patients: Sequence[Patient]) -> dict[str, Any]:
    """Every disease column over ``patients``, as arrays (for the replicate's analysis)."""
    values = [fvc_values(cohort, p) for p in patients]
    return {key: np.array([v[key] for v in values], dtype=float) for key in fvc_columns(cohort)}


@functools.lru_cache(maxsize=4096)
def _steps(mmf: Schedule | None, glucocorticoid: Schedule) -> Steps:
    """:func:`sim.disease.exposure_steps`, shared by the patients on equal schedules (those
    who complete the same planned course, in every replicate): schedules are immutable
    values, so the cache changes no number (a seam for speed only)."""
    return exposure_steps(mmf, glucocorticoid)


def patient_fvc_values(cohort: Cohort, p: Patient) -> dict[str, float]:
    """One patient's disease columns (:func:`fvc_columns`)."""
    disease = cohort.scenario.disease
    assert disease is not None
    ctx = cohort.ctxs[p.arm]
    given = cohort.given(p)
    mmf_table = ctx.scenario.mmf
    auc_per_mg = 0.0
    if mmf_table is not None:
        auc = float(np.asarray(mpa_auc0_12_at_target(ctx.scenario, p.mpa)).reshape(-1)[0])
        auc_per_mg = auc / (1000.0 * mmf_table.target_g_per_day)
    flares = disease.fvc.flare_events
    rescues = disease.estimand.rescue_events
    events = p.disease_events
    mmf = given["mmf"] if mmf_table is not None else None
    glucocorticoid = given["prednisone"]
    steps = _steps(mmf, glucocorticoid)
    people, row = p.people, p.row
    names = people.condition_names
    patient = FvcPatient(
        baseline_pct=float(people.fvc_percent[row]),
        mmf=mmf,
        glucocorticoid=glucocorticoid,
        auc_per_mg=auc_per_mg,
        status=p.status,
        exit_day=p.exit_day,
        flare_days=tuple(day for name, day in events if name in flares),
        rescue_day=min((day for name, day in events if name in rescues), default=math.inf),
        conditions=frozenset(
            c for c in disease.fvc.subtypes if c in names and people.conditions[row, names.index(c)]
        ),
        steps=steps,
    )
    person = int(p.people.person[p.row])
    rng = cohort.stream("disease", person)
    fvc = disease.fvc
    slope_z = float(rng.standard_normal())
    errors = rng.standard_normal(len(fvc.visit_weeks))
    drop_u = rng.random(len(patient.flare_days)) if patient.flare_days else None
    measured, change = patient_fvc(disease, patient, slope_z, errors, drop_u)
    out = {f"fvc_week{w}": float(v) for w, v in zip(fvc.visit_weeks, measured, strict=True)}
    out["fvc_change"] = change
    treg = disease.treg
    if treg is not None:
        rng = cohort.stream("treg", person)
        baseline = max(
            treg.baseline_mean_pct + treg.baseline_sd_pct * float(rng.standard_normal()),
            treg.baseline_min_pct,
        )
        slope = treg.natural_slope_pp_per_year + treg.slope_sd_pp_per_year * float(
            rng.standard_normal()
        )
        errors = rng.standard_normal(len(treg.visit_weeks))
        measured, change = patient_marker(
            treg, disease.estimand, patient, baseline, slope, errors, composite=False
        )
        out |= {f"treg_week{w}": float(v) for w, v in zip(treg.visit_weeks, measured, strict=True)}
        out["treg_change"] = change
    return out
