"""Closed-form PK against a numerical ODE solution, and steady-state theory.

Reference: the one-compartment oral model with lag as two linear ODEs,
gut' = -ka gut (doses added to gut at t_dose + lag), central' = ka gut - k central,
C = central / V, solved by scipy.integrate.solve_ivp (DOP853, rtol 1e-10) between
dose events. Steady-state results are the textbook superposition identities
(e.g. Gibaldi & Perrier, Pharmacokinetics, 2nd ed., ch. 3): accumulation
R = 1 / (1 - exp(-k tau)) and AUC_tau,ss = F D / CL.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from sim import Schedule, load_scenario
from sim.exposure import (
    HOURS_PER_DAY,
    OralOneCompartment,
    concentration,
    cumulative_auc,
    pk_model,
    steady_state,
    steady_state_window_auc,
)
from tests.conftest import BASE

SCENARIO = load_scenario(BASE)
assert SCENARIO.exposure is not None
MPA = pk_model(SCENARIO.exposure.mpa, 70.0)
PRED = pk_model(SCENARIO.exposure.prednisolone, 70.0)  # with dose-dependent F

# Multi-dose schedules with a dose change, each drug as the protocol gives it.
MMF_SCHEDULE = Schedule((0, 3), (1000.0, 2000.0), end_day=5, doses_per_day=2)
PRED_SCHEDULE = Schedule((0, 2), (60.0, 40.0), end_day=4, doses_per_day=1)


def _ode_reference(
    model: OralOneCompartment, schedule: Schedule, t_eval_h: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Concentration (mg/L) and cumulative AUC (mg*h/L) at t_eval_h by solving the ODEs."""
    k = float(model.k_per_h)
    ka = float(model.ka_per_h)
    v = float(model.v_l)
    lag = float(model.lag_h)
    events: list[tuple[float, float]] = []
    tau = HOURS_PER_DAY / schedule.doses_per_day
    for day in range(schedule.end_day):
        per_admin = schedule.dose_at(day) / schedule.doses_per_day
        for j in range(schedule.doses_per_day):
            events.append(
                (day * HOURS_PER_DAY + j * tau + lag, float(model.absorbed_mg(per_admin)))
            )

    def rhs(_t: float, y: np.ndarray) -> list[float]:
        gut, central, _auc = y
        return [-ka * gut, ka * gut - k * central, central / v]

    state = np.zeros(3)
    t_now = 0.0
    conc = np.empty_like(t_eval_h)
    auc = np.empty_like(t_eval_h)
    bounds = [e[0] for e in events] + [float(t_eval_h.max()) + 1.0]
    amounts = [e[1] for e in events] + [0.0]
    for t_next, amount in zip(bounds, amounts, strict=True):
        inside = (t_eval_h >= t_now) & (t_eval_h < t_next)
        if t_next > t_now:
            sol = solve_ivp(
                rhs,
                (t_now, t_next),
                state,
                method="DOP853",
                rtol=1e-10,
                atol=1e-16,
                dense_output=True,
            )
            if inside.any():
                values = sol.sol(t_eval_h[inside])
                conc[inside] = values[1] / v
                auc[inside] = values[2]
            state = sol.y[:, -1].copy()
        state[0] += amount
        t_now = t_next
    return conc, auc


@pytest.mark.parametrize(
    ("model", "schedule"),
    [(MPA, MMF_SCHEDULE), (PRED, PRED_SCHEDULE)],
    ids=["mpa", "prednisolone"],
)
def test_closed_form_matches_ode_solution(model: OralOneCompartment, schedule: Schedule) -> None:
    """Concentrations within 1e-6 relative, across a dose change and with a lag; AUC too."""
    t = np.linspace(0.05, schedule.end_day * HOURS_PER_DAY + 36, 977)
    ode_c, ode_auc = _ode_reference(model, schedule, t)
    c = concentration(model, schedule, t)
    auc = cumulative_auc(model, schedule, t)
    big = ode_c > 1e-6 * ode_c.max()  # skip points inside the first lag (both exactly 0)
    assert big.sum() > 900
    np.testing.assert_allclose(c[big], ode_c[big], rtol=1e-6)
    np.testing.assert_array_equal(c[~big] < 1e-9 * ode_c.max(), True)
    np.testing.assert_allclose(auc[big], ode_auc[big], rtol=1e-6)


def test_cumulative_auc_is_the_integral_of_concentration() -> None:
    """Closed-form AUC across a dose change equals adaptive quadrature of the closed-form C
    (breakpoints at each absorption start, where C has a kink)."""
    kinks = [d * 12.0 + 0.4 for d in range(10)]
    previous, total = 0.0, 0.0
    for end in (0.3, 7.0, 30.0, 61.0, 80.0, 119.0, 150.0):
        inner = [k for k in kinks if previous < k < end]
        piece, _err = quad(
            lambda t: concentration(MPA, MMF_SCHEDULE, [t])[0],
            previous,
            end,
            points=inner or None,
            limit=200,
            epsabs=1e-13,
            epsrel=1e-12,
        )
        total += piece
        previous = end
        assert cumulative_auc(MPA, MMF_SCHEDULE, [end])[0] == pytest.approx(
            total, rel=1e-9, abs=1e-12
        )


def test_total_auc_is_dose_over_clearance() -> None:
    """Long after the last dose, AUC(0, inf) = f * total dose / CL."""
    auc_inf = cumulative_auc(MPA, MMF_SCHEDULE, [1e5])[0]
    expected = float(MPA.absorbed_mg(1.0)) * MMF_SCHEDULE.total_mg / float(MPA.cl_l_per_h)
    assert auc_inf == pytest.approx(expected, rel=1e-12)


def test_accumulation_ratio() -> None:
    """With absorption much faster than elimination, the trough after n doses is the
    single-dose trough times (1 - exp(-n k tau)) / (1 - exp(-k tau)), the steady-state
    accumulation R = 1 / (1 - exp(-k tau))."""
    fast = OralOneCompartment(cl_l_per_h=10.6, v_l=260.0, ka_per_h=60.0, lag_h=0.0)
    k, tau = float(fast.k_per_h), 12.0
    many = Schedule.constant(2000.0, 60, doses_per_day=2)
    one = Schedule.constant(2000.0, 1, doses_per_day=2).splice(1, Schedule.constant(0.0, 59))
    single = concentration(fast, Schedule((0,), (1000.0,), 1, 1), [tau - 1e-9])[0]
    for n in (1, 2, 5, 20):
        trough = concentration(fast, many, [n * tau - 1e-9])[0]
        expected = single * (1 - np.exp(-n * k * tau)) / (1 - np.exp(-k * tau))
        assert trough == pytest.approx(expected, rel=1e-9)
    ss = steady_state(fast, 2000.0, 2)
    assert float(ss.c_min_mg_per_l) == pytest.approx(single / (1 - np.exp(-k * tau)), rel=1e-9)
    assert one.total_mg == 2000.0


@pytest.mark.parametrize(("model", "per_day"), [(MPA, 2), (PRED, 1), (MPA, 3)])
def test_superposition_converges_to_the_steady_state_closed_form(
    model: OralOneCompartment, per_day: int
) -> None:
    """After many half-lives of constant dosing the superposed profile is the closed form."""
    dose = 1500.0 if model is MPA else 30.0
    days = 60
    s = Schedule.constant(dose, days, doses_per_day=per_day)
    tau = HOURS_PER_DAY / per_day
    start = (days - 2) * HOURS_PER_DAY
    t = start + np.linspace(0, tau, 20_001)
    c = concentration(model, s, t)
    ss = steady_state(model, dose, per_day)
    assert c.max() == pytest.approx(float(ss.c_max_mg_per_l), rel=1e-7)
    # the trough is where the next dose starts to be absorbed, at the lag time
    trough = concentration(model, s, [start + float(model.lag_h)])[0]
    assert trough == pytest.approx(float(ss.c_min_mg_per_l), rel=1e-9)
    assert c.min() >= trough * (1 - 1e-12)
    t_peak = t[np.argmax(c)] - start
    assert t_peak == pytest.approx(float(ss.t_max_h), abs=tau / 20_000 * 1.01)
    auc_tau = np.diff(cumulative_auc(model, s, [start, start + tau]))[0]
    assert auc_tau == pytest.approx(float(ss.auc_tau_mg_h_per_l), rel=1e-10)
    assert float(ss.c_avg_mg_per_l) == pytest.approx(auc_tau / tau, rel=1e-10)
    assert float(ss.auc_24h_mg_h_per_l) == pytest.approx(auc_tau * per_day, rel=1e-10)
    # the steady-state AUC over a window after a dose, for windows of any length
    for window in (0.1, 5.0, 12.0, 30.0):
        direct = np.diff(cumulative_auc(model, s, [start, start + window]))[0]
        closed = float(steady_state_window_auc(model, dose, per_day, window))
        assert closed == pytest.approx(direct, rel=1e-9)


def test_ka_equal_to_k_is_handled() -> None:
    """ka = k is a removable singularity of the closed form: the limit (f D k / V) u e^{-k u}."""
    m = OralOneCompartment(cl_l_per_h=2.0, v_l=10.0, ka_per_h=0.2, lag_h=0.0)
    u = np.array([1.0, 5.0, 20.0])
    c = concentration(m, Schedule((0,), (100.0,), 1), u)
    np.testing.assert_allclose(c, 100 * 0.2 / 10 * u * np.exp(-0.2 * u), rtol=1e-6)
