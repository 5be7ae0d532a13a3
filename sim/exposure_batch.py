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


def _at(table: FloatArray, index: npt.NDArray[np.intp]) -> FloatArray:
    """``table[i, index[i, t]]``: a (patients, segments) table at each time's segment; an
    index of one row is shared by every patient."""
    if index.shape[0] == 1:
        return np.asarray(table[:, index[0]], dtype=np.float64)
    return np.take_along_axis(table, index, axis=1)


def concentration_by_patient(
    models: OralOneCompartment, schedule: Schedule, t_h: ArrayLike
) -> FloatArray:
    r"""Concentrations (mg/L) of many patients taking one schedule: ``(n_patients, len(t_h))``.

    Row ``i`` is :func:`sim.exposure.concentration` of patient ``i`` (to rounding),
    at a cost that does not grow with the schedule's dose changes. Segment ``j``'s
    :math:`n_j` doses, every :math:`\tau` h from :math:`s_j`, are all absorbed by
    :math:`E_j = s_j + (n_j - 1)\tau + t_{lag}`; from then on, for each rate
    :math:`r \in \{k, k_a\}`, its part of the dose-train sum decays as
    :math:`a_{r,j} e^{-r (t - E_j)}`, with
    :math:`a_{r,j} = c_j (1 - e^{-r n_j \tau}) / (1 - e^{-r \tau})` and
    :math:`c_j = f D_j k_a / (V (k_a - k))`. The parts of the segments absorbed by
    :math:`E_j` add up to :math:`A_{r,j} = A_{r,j-1} e^{-r (E_j - E_{j-1})} + a_{r,j}`,
    so for :math:`E_j \le t < E_{j+1}`

    .. math::

        C(t) = A_{k,j} e^{-k (t - E_j)} - A_{k_a,j} e^{-k_a (t - E_j)} + C_{j+1}(t),

    :math:`C_{j+1}` the dose train of the one segment still being absorbed (the
    segments after it start later than :math:`t`).

    Parameters
    ----------
    models : OralOneCompartment
        One value per patient (1-D arrays) or shared (scalars) for each of
        ``cl_l_per_h``, ``v_l``, ``ka_per_h`` and ``lag_h``, as
        :func:`sim.exposure.pk_model` gives for an ``(n, 2)`` array of random effects.
    schedule : Schedule
        The daily doses every patient takes (mg/day of the administered drug).
    t_h : array_like
        Hours from the first dose (1-D).
    """
    return _by_patient(models, schedule, t_h, integral=False)


def cumulative_auc_by_patient(
    models: OralOneCompartment, schedule: Schedule, t_h: ArrayLike
) -> FloatArray:
    r"""AUC from the first dose to ``t_h`` (mg*h/L) of many patients taking one schedule.

    Row ``i`` is :func:`sim.exposure.cumulative_auc` of patient ``i`` (to rounding);
    ``(n_patients, len(t_h))``. The integral of :func:`concentration_by_patient`'s
    sum: with :math:`M_j = \sum_{i \le j} c_i n_i` over the segments wholly absorbed,

    .. math::

        AUC(t) = M_j \left(\frac{1}{k} - \frac{1}{k_a}\right)
                 - \frac{A_{k,j}}{k} e^{-k (t - E_j)}
                 + \frac{A_{k_a,j}}{k_a} e^{-k_a (t - E_j)} + AUC_{j+1}(t).

    Parameters are those of :func:`concentration_by_patient`.
    """
    return _by_patient(models, schedule, t_h, integral=True)


def _by_patient(
    models: OralOneCompartment,
    schedule: Schedule,
    t_h: ArrayLike,
    integral: bool,
    block_values: int = 250_000,
) -> FloatArray:
    """Concentration or cumulative AUC, a block of patients (about ``block_values`` values
    of patients x times) at a time, so that memory stays bounded for a year of times."""
    t = np.atleast_1d(np.asarray(t_h, dtype=np.float64))
    k, ka = models.rate_constants()
    values = [k, ka, np.asarray(models.v_l, np.float64), np.asarray(models.lag_h, np.float64)]
    if any(np.ndim(x) > 1 for x in values) or t.ndim != 1:
        raise ValueError("parameters and t_h must be 1-D arrays or scalars")
    k, ka, v, lag = (
        np.asarray(np.atleast_1d(x), dtype=np.float64)[:, None]
        for x in np.broadcast_arrays(*values)
    )
    out = np.zeros((k.shape[0], t.size))
    if schedule.end_day == 0:
        return out
    segs = ScheduleBatch.from_schedules([schedule])
    per_day = float(schedule.doses_per_day)
    tau = np.full(1, HOURS_PER_DAY / per_day)
    start = segs.start_day * HOURS_PER_DAY
    n_doses = (segs.end_day - segs.start_day) * per_day
    last = start + (n_doses - 1) * tau  # E_j - t_lag
    coef = models.absorbed_mg(segs.dose_mg_per_day / per_day)[None, :] * ka / (v * (ka - k))
    absorbed = []  # A_{r,j} for r = k, ka: (patients, segments)
    for rate in (k, ka):
        acc = coef * np.expm1(-rate * n_doses * tau) / np.expm1(-rate * tau)  # a_{r,j}
        decay = np.exp(-rate * np.diff(last))
        for j in range(1, acc.shape[1]):
            acc[:, j] += acc[:, j - 1] * decay[:, j - 1]
        absorbed.append(acc)
    doses_in = np.cumsum(coef * n_doses, axis=1)  # M_j
    n_segs = last.size
    block = max(1, block_values // t.size)
    for first in range(0, out.shape[0], block):
        p = slice(first, first + block)
        # with one lag for all, the times' places in the schedule are shared: (1, times)
        lag_p = lag[p][:1] if np.all(lag[p] == lag[p][0]) else lag[p]
        since = t[None, :] - lag_p  # hours after the absorption of the first dose begins
        done = np.searchsorted(last, since, side="right") - 1  # segments wholly absorbed
        prev, nxt = np.maximum(done, 0), np.minimum(done + 1, n_segs - 1)
        u = np.maximum(since - last[prev], 0.0)
        tail_k = _at(absorbed[0][p], prev) * np.exp(-k[p] * u)
        tail_ka = _at(absorbed[1][p], prev) * np.exp(-ka[p] * u)
        trains = (t[None, :], start[nxt], tau, n_doses[nxt], lag_p)
        m, s_k = train_sums(*trains, k[p])
        _, s_ka = train_sums(*trains, ka[p])
        if integral:
            inv = 1 / k[p] - 1 / ka[p]
            tails = _at(doses_in[p], prev) * inv - tail_k / k[p] + tail_ka / ka[p]
            current = _at(coef[p], nxt) * (m * inv - s_k / k[p] + s_ka / ka[p])
        else:
            tails, current = tail_k - tail_ka, _at(coef[p], nxt) * (s_k - s_ka)
        out[p] = np.where(done >= 0, tails, 0.0) + np.where(done + 1 < n_segs, current, 0.0)
    return out


# ---------------------------------------------------------------------------
# A scenario's drugs
# ---------------------------------------------------------------------------
