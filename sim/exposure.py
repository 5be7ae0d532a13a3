r"""Exposure models: one-compartment oral PK turning dose schedules into concentrations and AUC.

The model (for prednisolone from prednisone, and mycophenolic acid from MMF) is
one compartment with first-order absorption and an absorption lag. A dose
``D`` (mg of the administered drug) taken at time :math:`t_d` (h) gives

.. math::

    C(t) = \frac{f\,D\,k_a}{V (k_a - k)}
           \left(e^{-k u} - e^{-k_a u}\right),\qquad u = t - t_d - t_{lag} > 0,

with :math:`k = CL / V` and :math:`f` the mg of active moiety absorbed per mg
given (mass conversion x bioavailability, optionally dose dependent,
:math:`F_{rel} = (D / D_{ref})^{\gamma}`). Doses superpose. Within a
constant-dose segment the doses are a regular train (interval :math:`\tau`),
so the sum over the :math:`m` doses absorbed so far is a geometric series,

.. math::

    \sum_{j<m} e^{-r u_j} = e^{-r u_{m-1}} \frac{1 - e^{-r m \tau}}{1 - e^{-r \tau}},

evaluated per segment, not per dose: concentrations and AUC for a year of
twice-daily dosing cost a few segments, not 728 doses. The cumulative AUC is
the exact integral of the same sum. Steady-state metrics per segment are in
closed form (AUC over the interval is :math:`f D / CL`).

Time is in hours inside this module (``_h`` in names) because PK parameters
are per hour and AUC is in mg*h/L; schedules count whole days (24 h).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sim.schedule import Schedule

if TYPE_CHECKING:
    from sim.scenario import OralPK, Scenario

__all__ = [
    "DRUG_OF_MOIETY",
    "HOURS_PER_DAY",
    "OralOneCompartment",
    "SteadyState",
    "concentration",
    "cumulative_auc",
    "daily_auc",
    "draw_etas",
    "etas_from_normals",
    "mpa_auc0_12_at_target",
    "pk_model",
    "scenario_models",
    "segment_exposure",
    "steady_state",
    "steady_state_window_auc",
]

HOURS_PER_DAY = 24.0
FloatArray = npt.NDArray[np.float64]
ArrayLike = float | npt.ArrayLike

# When ka and k are this close (relatively), ka is moved apart by this much: the
# closed form divides by (ka - k). The error this adds is below 1e-8 relative.
_KA_K_SEPARATION = 1e-8


@dataclass(frozen=True)
class OralOneCompartment:
    """One-compartment oral PK parameters, for one patient or (as arrays) many.

    Parameters
    ----------
    cl_l_per_h : float or array
        Clearance, L/h (> 0). Arrays give one value per patient.
    v_l : float or array
        Volume of distribution, L (> 0).
    ka_per_h : float or array
        First-order absorption rate constant, 1/h (> 0).
    lag_h : float or array
        Absorption lag, h (>= 0).
    dose_factor : float
        mg of the measured moiety absorbed per mg administered: mass
        conversion x bioavailability (MPA from MMF: 0.739 x 0.941).
    f_reference_dose_mg : float, optional
        With ``f_dose_exponent``, a dose-dependent relative bioavailability
        :math:`F_{rel} = (D / D_{ref})^{\\gamma}` per administration.
    f_dose_exponent : float
        :math:`\\gamma`; 0 means no dose dependence.
    """

    cl_l_per_h: ArrayLike
    v_l: ArrayLike
    ka_per_h: ArrayLike
    lag_h: ArrayLike = 0.0
    dose_factor: float = 1.0
    f_reference_dose_mg: float | None = None
    f_dose_exponent: float = 0.0

    @classmethod
    def _unchecked(cls, **fields: object) -> OralOneCompartment:
        """Build without the checks (for values already validated): pk_model's fast path."""
        model = object.__new__(cls)
        defaults = {"lag_h": 0.0, "dose_factor": 1.0, "f_reference_dose_mg": None,
                    "f_dose_exponent": 0.0}  # fmt: skip
        for name, value in {**defaults, **fields}.items():
            object.__setattr__(model, name, value)
        return model

    def replaced(self, **fields: object) -> OralOneCompartment:
        """A copy with some fields replaced, without the checks (values already valid)."""
        model = object.__new__(type(self))
        model.__dict__.update(self.__dict__, **fields)
        return model

    def rows(self, rows: npt.NDArray[np.intp]) -> OralOneCompartment:
        """The models of some patients of a vector model, as ``(len(rows), 1)`` arrays."""
        cl, v = np.asarray(self.cl_l_per_h), np.asarray(self.v_l)
        return self.replaced(cl_l_per_h=cl[rows, None], v_l=v[rows, None])

    def part(self, part: slice | npt.NDArray[np.intp]) -> OralOneCompartment:
        """The models of some patients of a vector model: a run (views) or by index."""
        cl, v = np.asarray(self.cl_l_per_h), np.asarray(self.v_l)
        return self.replaced(cl_l_per_h=cl[part], v_l=v[part])

    def row(self, row: int) -> OralOneCompartment:
        """One patient's model (scalars) from a vector model."""
        cl, v = np.asarray(self.cl_l_per_h), np.asarray(self.v_l)
        return self.replaced(cl_l_per_h=cl.item(row), v_l=v.item(row))

    def __post_init__(self) -> None:
        for name in ("cl_l_per_h", "v_l", "ka_per_h"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if not (np.all(np.isfinite(value)) and np.all(value > 0)):
                raise ValueError(f"{name} must be finite and > 0")
        lag = np.asarray(self.lag_h, dtype=np.float64)
        if not (np.all(np.isfinite(lag)) and np.all(lag >= 0)):
            raise ValueError("lag_h must be finite and >= 0")
        if not (math.isfinite(self.dose_factor) and self.dose_factor > 0):
            raise ValueError("dose_factor must be finite and > 0")

    @property
    def k_per_h(self) -> FloatArray:
        """Elimination rate constant :math:`k = CL/V`, 1/h."""
        return np.asarray(self.cl_l_per_h, dtype=np.float64) / np.asarray(self.v_l)

    @property
    def half_life_h(self) -> FloatArray:
        """Elimination half-life :math:`\\ln 2 / k`, h."""
        return np.log(2.0) / self.k_per_h

    def absorbed_mg(self, dose_mg: ArrayLike) -> FloatArray:
        """mg of the measured moiety absorbed from one administration of ``dose_mg`` mg."""
        d = np.asarray(dose_mg, dtype=np.float64)
        if self.f_reference_dose_mg is None or self.f_dose_exponent == 0:
            return d * self.dose_factor
        safe = np.where(d > 0, d, self.f_reference_dose_mg)
        f_rel = (safe / self.f_reference_dose_mg) ** self.f_dose_exponent
        return np.where(d > 0, d * self.dose_factor * f_rel, 0.0)

    def rate_constants(self) -> tuple[FloatArray, FloatArray]:
        k = self.k_per_h
        ka = np.asarray(self.ka_per_h, dtype=np.float64)
        close = np.abs(ka - k) < _KA_K_SEPARATION * ka
        return k, np.where(close, ka * (1 + _KA_K_SEPARATION), ka)


# ---------------------------------------------------------------------------
# Dose trains: the geometric sums over one segment's doses
# ---------------------------------------------------------------------------


def train_sums(
    t_h: FloatArray,
    start_h: FloatArray,
    tau_h: FloatArray,
    n_doses: FloatArray,
    lag_h: FloatArray,
    rate: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """For doses at ``start_h + j tau_h`` (j < n_doses) absorbed from ``lag_h`` later:
    the number ``m`` absorbing by ``t_h`` and :math:`\\sum_{j<m} e^{-rate\\,(t - t_j - lag)}`."""
    delta = t_h - start_h - lag_h
    m = np.where(delta > 0, np.minimum(n_doses, np.floor(delta / tau_h) + 1), 0.0)
    u_last = delta - np.maximum(m - 1, 0) * tau_h
    # (1 - e^{-r m tau}) / (1 - e^{-r tau}), written with expm1 to keep precision
    ratio = np.expm1(-rate * m * tau_h) / np.expm1(-rate * tau_h)
    s = np.where(m > 0, np.exp(-rate * np.maximum(u_last, 0.0)) * ratio, 0.0)
    return m, s


@dataclass(frozen=True)
class _Trains:
    """Every constant-dose segment as a dose train (arrays broadcast against times)."""

    start_h: FloatArray
    tau_h: FloatArray
    n_doses: FloatArray
    dose_per_admin_mg: FloatArray


def _trains(schedule: Schedule) -> _Trains:
    segs = schedule.segments()
    per_day = schedule.doses_per_day
    start = np.array([s.start_day for s in segs], dtype=np.float64)
    end = np.array([s.end_day for s in segs], dtype=np.float64)
    dose = np.array([s.dose_mg_per_day for s in segs], dtype=np.float64)
    return _Trains(
        start * HOURS_PER_DAY,
        np.full_like(start, HOURS_PER_DAY / per_day),
        (end - start) * per_day,
        dose / per_day,
    )


def _superpose(
    model: OralOneCompartment, trains: _Trains, t_h: FloatArray, integral: bool
) -> FloatArray:
    """Concentration (mg/L) or cumulative AUC from 0 (mg*h/L) at ``t_h``; segments on axis 0."""
    k, ka = model.rate_constants()
    v = np.asarray(model.v_l, dtype=np.float64)
    lag = np.asarray(model.lag_h, dtype=np.float64)
    col = (slice(None), None)
    amount = model.absorbed_mg(trains.dose_per_admin_mg)[col]
    coef = amount * ka / (v * (ka - k))
    args = (t_h[None, :], trains.start_h[col], trains.tau_h[col], trains.n_doses[col], lag)
    m, s_k = train_sums(*args, k)
    _, s_ka = train_sums(*args, ka)
    if integral:
        terms = coef * (m * (1 / k - 1 / ka) - s_k / k + s_ka / ka)
    else:
        terms = coef * (s_k - s_ka)
    return np.asarray(terms.sum(axis=0), dtype=np.float64)


def concentration(model: OralOneCompartment, schedule: Schedule, t_h: ArrayLike) -> FloatArray:
    """Concentration (mg/L) at times ``t_h`` (h from the first dose) for one patient.

    Parameters
    ----------
    model : OralOneCompartment
        One patient's parameters (scalars).
    schedule : Schedule
        Daily doses (mg/day of the administered drug) and doses per day; the
        day's doses are evenly spaced from the start of the day.
    t_h : array_like
        Hours from the first dose.
    """
    t = np.atleast_1d(np.asarray(t_h, dtype=np.float64))
    if schedule.end_day == 0:
        return np.zeros_like(t)
    return _superpose(model, _trains(schedule), t, integral=False)


def cumulative_auc(model: OralOneCompartment, schedule: Schedule, t_h: ArrayLike) -> FloatArray:
    """AUC from the first dose to ``t_h`` (mg*h/L), exact across dose changes.

    The AUC over any interval is a difference: ``auc(t2) - auc(t1)``.
    """
    t = np.atleast_1d(np.asarray(t_h, dtype=np.float64))
    if schedule.end_day == 0:
        return np.zeros_like(t)
    return _superpose(model, _trains(schedule), t, integral=True)


def daily_auc(model: OralOneCompartment, schedule: Schedule) -> FloatArray:
    """AUC over each whole day ``0 .. end_day - 1`` (mg*h/L per day), exact (not steady state)."""
    edges = np.arange(schedule.end_day + 1) * HOURS_PER_DAY
    return np.diff(cumulative_auc(model, schedule, edges))


# ---------------------------------------------------------------------------
# Steady state, in closed form
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SteadyState:
    """Steady-state exposure at a constant dose (each field broadcasts over patients/segments).

    Attributes
    ----------
    auc_tau_mg_h_per_l : array
        AUC over one dosing interval, :math:`f D / CL`, mg*h/L.
    auc_24h_mg_h_per_l : array
        AUC over 24 h, mg*h/L.
    c_avg_mg_per_l : array
        Average concentration, AUC_tau / tau, mg/L.
    c_max_mg_per_l : array
        Peak concentration, mg/L.
    c_min_mg_per_l : array
        Trough (just before absorption of the next dose starts), mg/L.
    t_max_h : array
        Time of the peak after a dose, h (lag included).
    """

    auc_tau_mg_h_per_l: FloatArray
    auc_24h_mg_h_per_l: FloatArray
    c_avg_mg_per_l: FloatArray
    c_max_mg_per_l: FloatArray
    c_min_mg_per_l: FloatArray
    t_max_h: FloatArray


def _ss_profile(
    model: OralOneCompartment, dose_per_admin_mg: FloatArray, tau_h: FloatArray, u_h: FloatArray
) -> FloatArray:
    """Steady-state concentration ``u_h`` after absorption of a dose starts (0 < u <= tau)."""
    k, ka = model.rate_constants()
    coef = model.absorbed_mg(dose_per_admin_mg) * ka / (np.asarray(model.v_l) * (ka - k))
    return np.asarray(
        coef
        * (np.exp(-k * u_h) / -np.expm1(-k * tau_h) - np.exp(-ka * u_h) / -np.expm1(-ka * tau_h))
    )


def steady_state(
    model: OralOneCompartment, dose_mg_per_day: ArrayLike, doses_per_day: ArrayLike = 1
) -> SteadyState:
    """Closed-form steady-state metrics at a constant daily dose.

    With :math:`A = f D` absorbed per administration every :math:`\\tau` h:
    :math:`AUC_\\tau = A / CL`; the profile :math:`u` h after absorption starts is
    :math:`C(u) = \\frac{A k_a}{V(k_a - k)}\\left[\\frac{e^{-ku}}{1-e^{-k\\tau}} -
    \\frac{e^{-k_a u}}{1-e^{-k_a\\tau}}\\right]`, peaking at
    :math:`u^* = \\ln\\frac{k_a (1-e^{-k\\tau})}{k (1-e^{-k_a\\tau})} / (k_a - k)`.

    Parameters
    ----------
    model : OralOneCompartment
        Parameters (scalars or arrays that broadcast with the doses).
    dose_mg_per_day : float or array
        Daily dose of the administered drug, mg/day.
    doses_per_day : int or array
        Administrations per day, evenly spaced.
    """
    daily = np.asarray(dose_mg_per_day, dtype=np.float64)
    per_day = np.asarray(doses_per_day, dtype=np.float64)
    tau = HOURS_PER_DAY / per_day
    per_admin = daily / per_day
    k, ka = model.rate_constants()
    auc_tau = model.absorbed_mg(per_admin) / np.asarray(model.cl_l_per_h)
    u_peak = np.log(ka * -np.expm1(-k * tau) / (k * -np.expm1(-ka * tau))) / (ka - k)
    u_peak = np.clip(u_peak, 0.0, tau)
    c_max = _ss_profile(model, per_admin, tau, u_peak)
    c_min = _ss_profile(model, per_admin, tau, tau)
    shape = np.broadcast_shapes(np.shape(auc_tau), np.shape(c_max))
    return SteadyState(
        auc_tau_mg_h_per_l=np.broadcast_to(auc_tau, shape).astype(np.float64),
        auc_24h_mg_h_per_l=np.broadcast_to(auc_tau * per_day, shape).astype(np.float64),
        c_avg_mg_per_l=np.broadcast_to(auc_tau / tau, shape).astype(np.float64),
        c_max_mg_per_l=np.broadcast_to(c_max, shape).astype(np.float64),
        c_min_mg_per_l=np.broadcast_to(c_min, shape).astype(np.float64),
        t_max_h=np.broadcast_to(u_peak + np.asarray(model.lag_h), shape).astype(np.float64),
    )


def steady_state_window_auc(
    model: OralOneCompartment,
    dose_mg_per_day: ArrayLike,
    doses_per_day: ArrayLike,
    window_h: float,
) -> FloatArray:
    """Steady-state AUC from a dose to ``window_h`` h after it (mg*h/L); e.g. MPA AUC0-12.

    Equals :math:`AUC_\\tau` when ``window_h`` is the dosing interval; for other
    intervals it integrates the periodic steady-state profile exactly.
    """
    if not window_h >= 0:
        raise ValueError(f"window_h must be >= 0, got {window_h}")
    daily = np.asarray(dose_mg_per_day, dtype=np.float64)
    per_day: Any
    if isinstance(doses_per_day, int | float):  # plain numbers: the same sums, fewer calls
        per_day = doses_per_day
        tau: Any = HOURS_PER_DAY / per_day
        whole: Any = math.floor(window_h / tau)
    else:
        per_day = np.asarray(doses_per_day, dtype=np.float64)
        tau = HOURS_PER_DAY / per_day
        whole = np.floor(window_h / tau)
    rest = window_h - whole * tau
    partial = bool(rest) if isinstance(rest, float) else bool(np.any(rest))
    per_admin = daily / per_day
    auc_tau = model.absorbed_mg(per_admin) / np.asarray(model.cl_l_per_h)
    if not partial:  # whole dosing intervals: AUC_tau each, no profile needed
        return np.asarray(whole * auc_tau, dtype=np.float64)
    k, ka = model.rate_constants()
    coef = model.absorbed_mg(per_admin) * ka / (np.asarray(model.v_l) * (ka - k))

    def primitive(u: FloatArray) -> FloatArray:
        # d/du of this is the steady-state profile C(u)
        return np.asarray(
            coef
            * (
                -np.exp(-k * u) / (k * -np.expm1(-k * tau))
                + np.exp(-ka * u) / (ka * -np.expm1(-ka * tau))
            )
        )

    lag = np.mod(np.asarray(model.lag_h, dtype=np.float64), tau)
    # t in [0, min(rest, lag)): still on the previous dose, u = t - lag + tau
    first = np.minimum(rest, lag)
    part = primitive(first - lag + tau) - primitive(tau - lag)
    # t in [lag, rest): on this dose, u = t - lag
    second = np.maximum(rest - lag, 0.0)
    part = part + primitive(second) - primitive(np.zeros_like(second))
    return np.asarray(whole * auc_tau + part, dtype=np.float64)


def segment_exposure(model: OralOneCompartment, schedule: Schedule) -> list[dict[str, float]]:
    """Per constant-dose segment: the dose and the steady-state exposure it would reach.

    Returns rows with keys ``start_day``, ``end_day`` (exclusive),
    ``dose_mg_per_day``, ``auc_tau_mg_h_per_l``, ``auc_24h_mg_h_per_l``,
    ``c_avg_mg_per_l``, ``c_max_mg_per_l``, ``c_min_mg_per_l``.
    """
    segs = schedule.segments()
    doses = np.array([s.dose_mg_per_day for s in segs], dtype=np.float64)
    ss = steady_state(model, doses, schedule.doses_per_day)
    return [
        {
            "start_day": seg.start_day,
            "end_day": seg.end_day,
            "dose_mg_per_day": seg.dose_mg_per_day,
            "auc_tau_mg_h_per_l": float(ss.auc_tau_mg_h_per_l[i]),
            "auc_24h_mg_h_per_l": float(ss.auc_24h_mg_h_per_l[i]),
            "c_avg_mg_per_l": float(ss.c_avg_mg_per_l[i]),
            "c_max_mg_per_l": float(ss.c_max_mg_per_l[i]),
            "c_min_mg_per_l": float(ss.c_min_mg_per_l[i]),
        }
        for i, seg in enumerate(segs)
    ]


# ---------------------------------------------------------------------------
# Parameters from a scenario, and between-patient variability
# ---------------------------------------------------------------------------


def draw_etas(params: OralPK, rng: np.random.Generator, size: int | None = None) -> FloatArray:
    """Random effects on (CL, V): shape ``(2,)`` for one patient, ``(size, 2)`` for many.

    Log-normal with the scenario's CVs: :math:`\\eta \\sim N(0, \\omega^2)`,
    :math:`\\omega^2 = \\ln(1 + CV^2)`, so the individual value
    :math:`\\theta e^{\\eta}` has median :math:`\\theta` and CV ``cv``.
    Always draws both, so a CV of 0 uses the same random numbers as any other CV.
    """
    return etas_from_normals(params, rng.standard_normal(2 if size is None else (size, 2)))


def etas_from_normals(params: OralPK, z: npt.ArrayLike) -> FloatArray:
    """Random effects on (CL, V) from standard normal draws ``z`` (last axis 2)."""
    omega = np.sqrt(np.log1p(np.array([params.cv_cl, params.cv_v]) ** 2))
    return np.asarray(np.asarray(z, dtype=np.float64) * omega, dtype=np.float64)


def pk_model(
    params: OralPK, weight_kg: ArrayLike, etas: npt.ArrayLike | None = None
) -> OralOneCompartment:
    """The PK model of a patient (or patients) of ``weight_kg`` with random effects ``etas``.

    :math:`CL = CL_{70} (W / W_{ref})^{a} e^{\\eta_{CL}}`,
    :math:`V = V_{70} (W / W_{ref})^{b} e^{\\eta_V}`.

    Parameters
    ----------
    params : OralPK
        A drug's ``[exposure.*]`` table.
    weight_kg : float or array
        Body weight, kg.
    etas : array_like, optional
        ``(..., 2)`` random effects on (CL, V) from :func:`draw_etas`; none
        gives the typical patient.
    """
    w = np.asarray(weight_kg, dtype=np.float64) / params.reference_weight_kg
    eta = np.zeros(2) if etas is None else np.asarray(etas, dtype=np.float64)
    cl = params.cl_l_per_h * w**params.cl_weight_exponent * np.exp(eta[..., 0])
    v = params.v_l * w**params.v_weight_exponent * np.exp(eta[..., 1])
    if not (np.all(np.isfinite(cl)) and np.all(np.isfinite(v)) and np.all(w > 0)):
        raise ValueError("weight_kg and random effects must give finite CL and V")
    # positive by construction: the scenario's values were validated at load
    return OralOneCompartment._unchecked(
        cl_l_per_h=cl if np.ndim(cl) else float(cl),
        v_l=v if np.ndim(v) else float(v),
        ka_per_h=params.ka_per_h,
        lag_h=params.lag_h,
        dose_factor=params.mass_factor * params.bioavailability,
        f_reference_dose_mg=params.f_reference_dose_mg,
        f_dose_exponent=params.f_dose_exponent,
    )


DRUG_OF_MOIETY = {"prednisolone": "prednisone", "mpa": "mmf"}
"""Each exposure model's measured moiety and the administered drug whose schedule it follows."""


def scenario_models(
    scenario: Scenario,
    weight_kg: ArrayLike,
    etas: dict[str, npt.ArrayLike] | None = None,
) -> dict[str, OralOneCompartment]:
    """The PK models of a scenario's drugs, ``{"prednisolone": ..., "mpa": ...}``.

    Parameters
    ----------
    scenario : Scenario
        Must have an ``[exposure]`` table.
    weight_kg : float or array
        Body weight(s), kg.
    etas : dict, optional
        Random effects per moiety from :func:`draw_etas`; none gives typical patients.
    """
    scenario.require("exposure", purpose="exposure")
    assert scenario.exposure is not None
    etas = etas or {}
    return {
        "prednisolone": pk_model(
            scenario.exposure.prednisolone, weight_kg, etas.get("prednisolone")
        ),
        "mpa": pk_model(scenario.exposure.mpa, weight_kg, etas.get("mpa")),
    }


def mpa_auc0_12_at_target(scenario: Scenario, mpa: OralOneCompartment) -> FloatArray:
    """Steady-state MPA AUC0-12 (mg*h/L) at the scenario's MMF target dose (NaN without
    an ``[mmf]`` table)."""
    if scenario.mmf is None:
        return np.full_like(steady_state_window_auc(mpa, 1.0, 1, 12.0), np.nan)
    target_mg = scenario.mmf.target_g_per_day * 1000.0
    return steady_state_window_auc(mpa, target_mg, scenario.mmf.doses_per_day, 12.0)
