"""Exposure of many patients at once: every constant-dose segment in one numpy pass.

The closed forms are those of :mod:`sim.exposure`, applied per segment; the
results equal a loop over patients (``tests/test_exposure.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from sim.exposure import (
    HOURS_PER_DAY,
    FloatArray,
    OralOneCompartment,
    SteadyState,
    steady_state,
    train_sums,
)
from sim.schedule import Schedule


@dataclass(frozen=True)
class ScheduleBatch:
    """Many patients' schedules as flat segment arrays (one row per segment).

    Attributes
    ----------
    patient : int array
        Index of the patient each segment belongs to (0 .. n_patients - 1).
    start_day, end_day : int arrays
        Segment bounds (end exclusive), days from the patient's first dose.
    dose_mg_per_day : float array
        Daily dose over the segment, mg/day.
    doses_per_day : int array
        Administrations per day.
    n_patients : int
    """

    patient: npt.NDArray[np.int64]
    start_day: npt.NDArray[np.int64]
    end_day: npt.NDArray[np.int64]
    dose_mg_per_day: FloatArray
    doses_per_day: npt.NDArray[np.int64]
    n_patients: int

    @classmethod
    def from_schedules(cls, schedules: Sequence[Schedule]) -> ScheduleBatch:
        """Flatten a list of schedules (one per patient)."""
        counts = np.array([len(s.change_days) for s in schedules], dtype=np.int64)
        starts = np.concatenate([s.change_days for s in schedules]).astype(np.int64)
        ends = np.concatenate([(*s.change_days[1:], s.end_day) for s in schedules]).astype(np.int64)
        doses = np.concatenate([s.doses_mg_per_day for s in schedules]).astype(np.float64)
        per_day = np.repeat([s.doses_per_day for s in schedules], counts).astype(np.int64)
        patient = np.repeat(np.arange(len(schedules), dtype=np.int64), counts)
        return cls(patient, starts, ends, doses, per_day, len(schedules))


def _take(value: ArrayLike, idx: npt.NDArray[np.int64]) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    return arr[idx] if arr.ndim else np.full(idx.shape, float(arr))


def _per_segment(models: OralOneCompartment, batch: ScheduleBatch) -> OralOneCompartment:
    idx = batch.patient
    return OralOneCompartment(
        cl_l_per_h=_take(models.cl_l_per_h, idx),
        v_l=_take(models.v_l, idx),
        ka_per_h=_take(models.ka_per_h, idx),
        lag_h=_take(models.lag_h, idx),
        dose_factor=models.dose_factor,
        f_reference_dose_mg=models.f_reference_dose_mg,
        f_dose_exponent=models.f_dose_exponent,
    )


def batch_steady_state(models: OralOneCompartment, batch: ScheduleBatch) -> SteadyState:
    """Steady-state metrics for every segment of every patient, vectorised (one row per segment).

    ``models`` holds per-patient parameter arrays (length ``batch.n_patients``) or scalars.
    """
    return steady_state(_per_segment(models, batch), batch.dose_mg_per_day, batch.doses_per_day)


def batch_cumulative_auc(
    models: OralOneCompartment, batch: ScheduleBatch, t_h: ArrayLike
) -> FloatArray:
    """Each patient's AUC from the first dose to ``t_h`` (mg*h/L), exact; vectorised.

    Parameters
    ----------
    models : OralOneCompartment
        Per-patient parameter arrays (or scalars).
    batch : ScheduleBatch
        The patients' schedules.
    t_h : float or array
        Hours from each patient's first dose: one value, or one per patient.
    """
    seg_model = _per_segment(models, batch)
    t = _take(t_h, batch.patient)
    k, ka = seg_model.rate_constants()
    per_day = batch.doses_per_day.astype(np.float64)
    tau = HOURS_PER_DAY / per_day
    start = batch.start_day.astype(np.float64) * HOURS_PER_DAY
    n = (batch.end_day - batch.start_day).astype(np.float64) * per_day
    amount = seg_model.absorbed_mg(batch.dose_mg_per_day / per_day)
    coef = amount * ka / (np.asarray(seg_model.v_l) * (ka - k))
    lag = np.asarray(seg_model.lag_h, dtype=np.float64)
    m, s_k = train_sums(t, start, tau, n, lag, k)
    _, s_ka = train_sums(t, start, tau, n, lag, ka)
    per_segment = coef * (m * (1 / k - 1 / ka) - s_k / k + s_ka / ka)
    totals = np.bincount(batch.patient, weights=per_segment, minlength=batch.n_patients)
    return np.asarray(totals, dtype=np.float64)


# ---------------------------------------------------------------------------
# A scenario's drugs
# ---------------------------------------------------------------------------
