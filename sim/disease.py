"""The disease: each patient's FVC % predicted over time, its measurements, the primary analysis.

For patient :math:`i` at day :math:`t` (days from the first dose), the true FVC is

.. math::  F_i(t) = F_{i,0} + s_i\\,t / 365.25 + E_i(t) - \\sum_{j: t_j \\le t} D_j,

with :math:`F_{i,0}` the screened baseline, :math:`s_i \\sim N(\\bar s, \\sigma_s^2)` the
natural slope (pp/year; by subtype), :math:`D_j \\sim U(D_{\\min}, D_{\\max})` the loss at
each flare :math:`t_j` (an adverse event the model names), and :math:`E_i` the treatment
effect, which approaches its target :math:`T_i(t)` with half-time :math:`\\tau`:
:math:`dE/dt = k\\,(T - E)`, :math:`k = \\ln 2/\\tau`,
:math:`E_i(0) = 0`, solved exactly over each stretch where :math:`T` is constant. The target
is

.. math::  T_i(t) = E_{\\max}^{MMF} \\frac{a_i(t)^h}{a_i(t)^h + EC_{50}^h}
    + E_{\\max}^{GC} \\frac{d(t)}{d(t) + ED_{50}},

with :math:`a_i(t)` the patient's steady-state MPA AUC0-12 at the MMF dose of day ``t``
(proportional to the dose) and :math:`d(t)` the glucocorticoid dose (mg/day). After a
patient leaves treatment both doses are 0 and the effect wanes with the same half-time.
A measurement adds :math:`N(0, \\sigma_e^2)`, independently at each visit.

The slope, the measurement errors and the flare losses come from the stream
``("replicate", r, "disease", person)`` in that order: adding the disease model changes
no other draw. Peripheral Treg (``[disease.treg]``) follow the same equations with a drawn
baseline and no flares, from the stream ``("replicate", r, "treg", person)``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from sim.disease_schema import DiseaseSettings, Estimand, Marker
from sim.errors import DosesimError
from sim.schedule import Schedule

__all__ = [
    "FvcPatient",
    "analyse",
    "analyse_mixed",
    "effect_at",
    "exposure_steps",
    "patient_fvc",
    "patient_marker",
]

FloatArray = npt.NDArray[np.float64]
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class FvcPatient:
    """What the FVC of one patient depends on.

    Attributes
    ----------
    baseline_pct : float
        Screened FVC, % predicted.
    mmf : Schedule or None
        MMF as given (mg/day; truncated at exit); None without MMF.
    glucocorticoid : Schedule
        Prednisone as given (mg/day).
    auc_per_mg : float
        Steady-state MPA AUC0-12 (mg*h/L) per mg/day of MMF: the patient's own.
    status : str
        ``completed``, ``withdrawn``, ``died`` or ``discontinued``.
    exit_day : float
        Day of exit (the end of treatment for those who completed).
    flare_days : tuple of float
        Days of the adverse events that lower FVC (``flare_events``), in order.
    rescue_day : float
        Day of the first rescue (``rescue_events``), or inf.
    conditions : frozenset of str
        The patient's conditions (for the natural course by subtype).
    steps : tuple of lists, optional
        :func:`exposure_steps` of ``mmf`` and ``glucocorticoid``, if already known.
    """

    baseline_pct: float
    mmf: Schedule | None
    glucocorticoid: Schedule
    auc_per_mg: float
    status: str
    exit_day: float
    flare_days: tuple[float, ...] = ()
    rescue_day: float = math.inf
    conditions: frozenset[str] = frozenset()
    steps: Steps | None = None


Steps = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]
"""The days where a patient's doses change, and the MMF and glucocorticoid doses (mg/day)
from each of them on: what every marker's effect target reads of the schedules."""


def exposure_steps(mmf: Schedule | None, glucocorticoid: Schedule) -> Steps:
    """The breakpoints (days, from 0) of a patient's doses and the doses on each stretch.

    Computed once per pair of schedules and shared by every marker (and by the patients
    on the same schedules: :mod:`sim.trial.fvc` keeps them by schedule).
    """
    schedules = [s for s in (mmf, glucocorticoid) if s is not None]
    cuts = sorted({0, *(d for s in schedules for d in (*s.change_days, s.end_day))})
    mmf_mg = tuple(_dose_on(mmf, day) for day in cuts) if mmf is not None else (0.0,) * len(cuts)
    gc_mg = tuple(_dose_on(glucocorticoid, day) for day in cuts)
    return tuple(float(c) for c in cuts), mmf_mg, gc_mg


def _targets(fvc: Marker, p: FvcPatient) -> tuple[Sequence[float], list[float]]:
    """The breakpoints (days) and the effect target on each stretch after them."""
    cuts, mmf_mg, gc_mg = p.steps or exposure_steps(p.mmf, p.glucocorticoid)
    e_mmf = fvc.mmf_effect_max_pp if p.mmf is not None else 0.0
    e_gc, ed50 = fvc.gc_effect_max_pp, fvc.gc_ed50_mg
    h, ec50_h = fvc.mpa_hill, fvc.mpa_ec50_mg_h_per_l**fvc.mpa_hill
    targets = []
    for mmf_dose, gc_dose in zip(mmf_mg, gc_mg, strict=True):
        target = 0.0
        if e_mmf:
            auc = p.auc_per_mg * mmf_dose
            if auc > 0:
                target += e_mmf * auc**h / (auc**h + ec50_h)
        if e_gc:
            target += e_gc * gc_dose / (gc_dose + ed50)
        targets.append(target)
    return cuts, targets


def _dose_on(schedule: Schedule, day: int) -> float:
    """The dose of a whole day (plain Python: a few per patient, numpy's overhead dominates)."""
    if not 0 <= day < schedule.end_day:
        return 0.0
    return schedule.doses_mg_per_day[bisect.bisect_right(schedule.change_days, day) - 1]


def effect_at(
    days: npt.ArrayLike, cuts: Sequence[float], targets: Sequence[float], half_time_days: float
) -> FloatArray:
    """The treatment effect at ``days``: first-order approach to a piecewise-constant target.

    Parameters
    ----------
    days : array_like
        Days from the first dose (>= 0).
    cuts, targets : list of float
        The target is ``targets[j]`` from ``cuts[j]`` to the next cut (the last to the end);
        ``cuts[0]`` is 0.
    half_time_days : float
        The half-time of the approach, days.
    """
    t = np.asarray(days, dtype=float)
    out = _effects(t.ravel().tolist(), cuts, targets, half_time_days)
    return np.array(out, dtype=float).reshape(t.shape)


def _effects(
    days: Sequence[float], cuts: Sequence[float], targets: Sequence[float], half_time_days: float
) -> list[float]:
    """:func:`effect_at` on a list (plain Python: a few cuts and visits per patient, where
    numpy's per-call overhead would dominate)."""
    k = math.log(2.0) / half_time_days
    at_cut = [0.0]  # the effect at each cut, then from the cut before each day
    for j in range(1, len(cuts)):
        before, width = targets[j - 1], cuts[j] - cuts[j - 1]
        at_cut.append(before + (at_cut[-1] - before) * math.exp(-k * width))
    out = []
    for day in days:
        i = bisect.bisect_right(cuts, day) - 1
        out.append(targets[i] + (at_cut[i] - targets[i]) * math.exp(-k * (day - cuts[i])))
    return out


def _stopped_mmf_day(mmf: Schedule | None) -> float:
    """The day MMF stopped for good (its last stretch at 0 before the end), or inf."""
    if mmf is None or not mmf.doses_mg_per_day or mmf.doses_mg_per_day[-1] > 0:
        return math.inf
    if max(mmf.doses_mg_per_day) == 0:
        return math.inf  # never given: not an intercurrent event
    return float(mmf.change_days[-1])


def patient_fvc(
    settings: DiseaseSettings,
    p: FvcPatient,
    slope_z: float,
    errors: FloatArray,
    drop_u: FloatArray | None = None,
) -> tuple[FloatArray, float]:
    """One patient's measured FVC at each visit (NaN where there is none) and their change
    from baseline at the landmark as the estimand counts it (NaN: not evaluable).

    Parameters
    ----------
    settings : DiseaseSettings
    p : FvcPatient
    slope_z : float
        The patient's standard normal for the natural slope.
    errors : array of float
        Standard normals, one per visit, for the measurement errors.
    drop_u : array of float, optional
        Uniforms on [0, 1), one per flare, for the FVC lost at each (pp).
    """
    fvc = settings.fvc
    mean, sd = fvc.natural_slope_pp_per_year, fvc.slope_sd_pp_per_year
    for name, subtype in fvc.subtypes.items():
        if name in p.conditions:
            mean = subtype.natural_slope_pp_per_year
            if subtype.slope_sd_pp_per_year is not None:
                sd = subtype.slope_sd_pp_per_year
            break
    drops: list[tuple[float, float]] = []
    if p.flare_days:
        u = np.zeros(len(p.flare_days)) if drop_u is None else np.asarray(drop_u, dtype=float)
        low, high = fvc.flare_drop_min_pp, fvc.flare_drop_max_pp
        drops = [(d, low + (high - low) * float(x)) for d, x in zip(p.flare_days, u, strict=True)]
    return patient_marker(
        fvc, settings.estimand, p, p.baseline_pct, mean + sd * slope_z, errors, drops
    )


def patient_marker(
    marker: Marker,
    estimand: Estimand,
    p: FvcPatient,
    baseline: float,
    slope_pp_per_year: float,
    errors: FloatArray,
    drops: Sequence[tuple[float, float]] = (),
    composite: bool = True,
) -> tuple[FloatArray, float]:
    """One patient's measured marker at each visit (NaN where the estimand has none) and
    the change from baseline at the landmark as the estimand counts it (NaN: not evaluable).

    Parameters
    ----------
    marker : Marker
        The model (``[disease.fvc]`` or ``[disease.treg]``).
    estimand : Estimand
    p : FvcPatient
        The patient's schedules, exposure, exit and intercurrent events.
    baseline : float
        The true value at day 0.
    slope_pp_per_year : float
        The patient's natural slope.
    errors : array of float
        Standard normals, one per visit.
    drops : sequence of (float, float)
        (day, loss) pairs: the true value is lower by the loss from that day on.
    composite : bool
        Whether the estimand's composite strategies apply (their declared changes are
        on the primary endpoint's scale, FVC % predicted): False for a second endpoint,
        whose change is then missing after a death or a rescue they would count.
    """
    days = [7.0 * w for w in marker.visit_weeks]
    cuts, targets = _targets(marker, p)
    effects = _effects(days, cuts, targets, marker.onset_half_time_days)
    # the last day measured: the exit for death and withdrawal; while on treatment, also
    # the exit of one who discontinued and the day MMF stopped for good, whichever is first
    last = p.exit_day if p.status in ("died", "withdrawn") else math.inf
    if estimand.discontinuation == "while_on_treatment":
        if p.status == "discontinued":
            last = min(last, p.exit_day)
        last = min(last, _stopped_mmf_day(p.mmf))
    until = p.rescue_day if estimand.rescue == "hypothetical" else math.inf  # (exclusive)
    sd, per_day = marker.measurement_sd_pp, slope_pp_per_year
    measured = []
    # plain Python over a few visits; the operations in the order of the equations
    for day, effect, error in zip(days, effects, np.asarray(errors).tolist(), strict=True):
        true = baseline + per_day * day / DAYS_PER_YEAR + effect
        for flare_day, loss in drops:
            if day >= flare_day:
                true -= loss
        measured.append(true + sd * error if day <= last and day < until else math.nan)
    landmark = marker.visit_weeks.index(marker.landmark_week)
    change = measured[landmark] - measured[0]
    if composite:  # failures count as the declared changes (the primary endpoint's scale)
        died_before = p.status == "died" and p.exit_day <= days[landmark]
        if died_before and estimand.death == "composite":
            change = estimand.death_change_pp
        elif estimand.rescue == "composite" and p.rescue_day <= days[landmark]:
            change = estimand.rescue_change_pp if math.isfinite(measured[0]) else math.nan
    return np.array(measured), change


def analyse(
    changes: npt.ArrayLike,
    settings: DiseaseSettings,
    arms: npt.ArrayLike | None = None,
    arm_names: tuple[str, ...] = (),
    prefix: str = "fvc",
) -> dict[str, float]:
    """The analysis of one replicate's endpoint: the change at the landmark.

    One arm: the mean change over the evaluable patients, its ``1 - alpha`` confidence
    interval and the two-sided one-sample t-test against ``null_change_pp`` (FVC; 0 for
    other endpoints). With arms, each arm's mean, and Welch's t-test of each arm against
    the first (``diff_<arm>_*``); ``<prefix>_significant`` is then the first comparison's.

    Returns
    -------
    dict
        ``<prefix>_evaluable``, ``_change_mean``, ``_ci_low``, ``_ci_high``, ``_p_value``,
        ``_significant`` (1.0 or 0.0; 0 when it cannot be tested), with ``prefix`` ``fvc``
        for the primary endpoint (and ``treg`` for the Treg one).
    """
    a = settings.analysis
    null = a.null_change_pp if prefix == "fvc" else 0.0
    x = np.asarray(changes, dtype=float)
    out: dict[str, float] = {f"{prefix}_evaluable": float(np.isfinite(x).sum())}
    if arms is None or not arm_names:
        est = _one_sample(x[np.isfinite(x)], null, a.alpha)
        out.update({f"{prefix}_{k}": v for k, v in est.items()})
        return out
    group = np.asarray(arms)
    ref = x[(group == 0) & np.isfinite(x)]
    out[f"{prefix}_change_mean"] = float(ref.mean()) if ref.size else math.nan
    first = True
    for i, name in enumerate(arm_names):
        xi = x[(group == i) & np.isfinite(x)]
        out[f"arm_{name}_{prefix}_change_mean"] = float(xi.mean()) if xi.size else math.nan
        out[f"arm_{name}_{prefix}_evaluable"] = float(xi.size)
        if i == 0:
            continue
        est = _welch(xi, ref, a.alpha)
        out.update({f"diff_{name}_{prefix}_{k}": v for k, v in est.items()})
        if first:
            out.update({f"{prefix}_{k}": v for k, v in est.items() if k != "change_mean"})
            first = False
    return out


UNTESTABLE = {"change_mean": math.nan, "ci_low": math.nan, "ci_high": math.nan,
              "p_value": math.nan, "significant": 0.0}  # fmt: skip
"""An analysis that cannot be made (too few patients): not significant."""


def _t_result(est: float, se: float, df: float, null: float, alpha: float) -> dict[str, float]:
    """An estimate with its ``1 - alpha`` interval and two-sided p-value on a t reference."""
    q = float(stats.t.ppf(1 - alpha / 2, df))
    p = float(2 * stats.t.sf(abs(est - null) / se, df)) if se > 0 else math.nan
    return {"change_mean": est, "ci_low": est - q * se, "ci_high": est + q * se,
            "p_value": p, "significant": float(p < alpha)}  # fmt: skip


def _one_sample(x: FloatArray, null: float, alpha: float) -> dict[str, float]:
    n = x.size
    if n < 2:
        return {**UNTESTABLE, "change_mean": float(x.mean()) if n else math.nan}
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(n))
    return _t_result(mean, se, n - 1, null, alpha)


def _welch(x: FloatArray, y: FloatArray, alpha: float) -> dict[str, float]:
    if x.size < 2 or y.size < 2:
        return dict(UNTESTABLE)
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    diff, se = float(x.mean() - y.mean()), math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1)) if se > 0 else 1.0
    return _t_result(diff, se, df, 0.0, alpha)


def analyse_mixed(
    visits: dict[int, npt.ArrayLike],
    settings: DiseaseSettings,
    arms: npt.ArrayLike | None = None,
    arm_names: tuple[str, ...] = (),
) -> dict[str, float]:
    """The primary analysis by a linear mixed model of every visit's change (MAR).

    ``visits`` maps each visit week to the patients' measured FVC (NaN: missing), week 0
    the baseline. The model: change = visit (by arm) + slope x centred baseline + a
    random intercept per patient + error (statsmodels ``MixedLM``, REML). The estimate is
    the landmark visit's mean change (one arm; the test against ``null_change_pp``) or
    the difference of each arm from the first at the landmark (:func:`analyse`'s columns).
    """
    import warnings

    import pandas as pd

    try:
        import statsmodels.formula.api as smf
    except ImportError:
        raise DosesimError(
            '[disease.analysis] method = "mixed_model" needs statsmodels: '
            "pip install 'dosesim[analysis]'"
        ) from None

    a, fvc = settings.analysis, settings.fvc
    base = np.asarray(visits[0], dtype=float)
    group = np.zeros(base.size, dtype=int) if arms is None else np.asarray(arms, dtype=int)
    rows = [
        (i, w, int(group[i]), base[i], float(np.asarray(visits[w], dtype=float)[i]) - base[i])
        for w in fvc.visit_weeks[1:]
        for i in range(base.size)
        if math.isfinite(base[i]) and math.isfinite(float(np.asarray(visits[w])[i]))
    ]
    data = pd.DataFrame(rows, columns=["patient", "week", "arm", "baseline", "change"])
    landmark = data["week"] == fvc.landmark_week
    out: dict[str, float] = {"fvc_evaluable": float(landmark.sum())}
    if data["patient"].nunique() < 3 or landmark.sum() < 2:
        out.update({f"fvc_{k}": v for k, v in UNTESTABLE.items()})
        return out
    data["baseline_c"] = data["baseline"] - data["baseline"].mean()
    data["cell"] = data["week"].astype(str) + "_" + data["arm"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes on small replicates
        fit = smf.mixedlm("change ~ 0 + C(cell) + baseline_c", data, groups=data["patient"]).fit(
            reml=True
        )
    names = list(fit.params.index)
    # a t reference with (patients at the landmark - 1) degrees of freedom, in place of the
    # Kenward-Roger ones statsmodels does not give: a Wald z would be liberal in small trials
    df = max(float(landmark.sum()) - 1.0, 1.0)

    def estimate(weights: dict[str, float], null: float) -> dict[str, float]:
        w = np.array([weights.get(n, 0.0) for n in names])
        cov = fit.cov_params().to_numpy()
        est = float(w @ fit.params.to_numpy())
        se = math.sqrt(float(w @ cov @ w))
        return _t_result(est, se, df, null, a.alpha)

    cell = f"C(cell)[{fvc.landmark_week}_0]"
    if not arm_names:
        out.update({f"fvc_{k}": v for k, v in estimate({cell: 1.0}, a.null_change_pp).items()})
        return out
    first = True
    for i, name in enumerate(arm_names[1:], start=1):
        other = f"C(cell)[{fvc.landmark_week}_{i}]"
        est = estimate({other: 1.0, cell: -1.0}, 0.0) if other in names else UNTESTABLE
        out.update({f"diff_{name}_fvc_{k}": v for k, v in est.items()})
        if first:
            out.update({f"fvc_{k}": v for k, v in est.items() if k != "change_mean"})
            out["fvc_change_mean"] = estimate({cell: 1.0}, 0.0)["change_mean"]
            first = False
    return out
