"""The disease model on a cohort's patients: their FVC measurements and changes.

Computed after the patients' follow-up, from their schedules as given and their own
MPA model (:mod:`sim.disease`); each patient's draws come from the stream
``("replicate", r, "disease", person)``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from sim.disease import FvcPatient, patient_fvc
from sim.exposure import mpa_auc0_12_at_target
from sim.scenario import Scenario
from sim.schedule import Schedule
from sim.trial.patient import Patient


class Cohort(Protocol):
    """What the FVC columns read of a cohort (:class:`sim.trial.cohort.Cohort`)."""

    scenario: Scenario
    ctxs: list[Any]

    def given(self, p: Patient) -> dict[str, Schedule]: ...

    def stream(self, *path: int | str) -> np.random.Generator: ...


__all__ = ["fvc_columns", "patient_fvc_values"]


def fvc_columns(cohort: Cohort) -> list[str]:
    """The patients table's FVC columns: a measurement per visit, then the change."""
    disease = cohort.scenario.disease
    if disease is None:
        return []
    return [*(f"fvc_week{w}" for w in disease.fvc.visit_weeks), "fvc_change"]


def patient_fvc_values(cohort: Cohort, p: Patient) -> dict[str, float]:
    """One patient's FVC columns (:func:`fvc_columns`)."""
    disease = cohort.scenario.disease
    assert disease is not None
    ctx = cohort.ctxs[p.arm]
    given = cohort.given(p)
    mmf_table = ctx.scenario.mmf
    auc_per_mg = 0.0
    if mmf_table is not None:
        auc = float(np.asarray(mpa_auc0_12_at_target(ctx.scenario, p.mpa)).reshape(-1)[0])
        auc_per_mg = auc / (1000.0 * mmf_table.target_g_per_day)
    patient = FvcPatient(
        baseline_pct=float(p.people.fvc_percent[p.row]),
        mmf=given["mmf"] if mmf_table is not None else None,
        glucocorticoid=given["prednisone"],
        auc_per_mg=auc_per_mg,
        status=p.status,
        exit_day=p.exit_day,
    )
    rng = cohort.stream("disease", int(p.people.person[p.row]))
    visits = len(disease.fvc.visit_weeks)
    slope_z = float(rng.standard_normal())
    errors = rng.standard_normal(visits)
    measured, change = patient_fvc(disease, patient, slope_z, errors)
    out = {f"fvc_week{w}": float(v) for w, v in zip(disease.fvc.visit_weeks, measured, strict=True)}
    out["fvc_change"] = change
    return out
