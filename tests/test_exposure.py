"""Exposure: published anchors for the typical patient, variability, cohorts, the command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import ScenarioError, Schedule, build_schedules, load_scenario
from sim.cli import main
from sim.exposure import (
    OralOneCompartment,
    concentration,
    cumulative_auc,
    daily_auc,
    draw_etas,
    mpa_auc0_12_at_target,
    pk_model,
    scenario_models,
    steady_state,
)
from sim.exposure_batch import (
    ScheduleBatch,
    batch_cumulative_auc,
    batch_steady_state,
    concentration_by_patient,
    cumulative_auc_by_patient,
)
from sim.streams import stream
from tests.conftest import BASE, SCENARIOS

SCENARIO = load_scenario(BASE)
assert SCENARIO.exposure is not None
MPA_PK = SCENARIO.exposure.mpa
PRED_PK = SCENARIO.exposure.prednisolone


def test_typical_mpa_auc0_12_at_1g_twice_daily_matches_autoimmune_data() -> None:
    """Published autoimmune AUC0-12 at about 1 g bid: AAV median 50.6 (Chaigne 2014); lupus
    nephritis at 750 mg bid 45-63 (J Pharm Health Care Sci 2022): parameters.md section 1c.
    The typical patient must lie within 45-80 mg*h/L."""
    mpa = pk_model(MPA_PK, 70.0)
    auc = float(mpa_auc0_12_at_target(SCENARIO, mpa))
    assert 45.0 <= auc <= 80.0
    # the same number from first principles: 1000 mg x 0.739 x 0.941 / CL
    assert auc == pytest.approx(1000 * 0.739 * 0.941 / MPA_PK.cl_l_per_h, rel=1e-12)


def test_typical_prednisolone_half_life_is_2_to_4_hours() -> None:
    """Prednisolone plasma half-life 2-4 h (label, parameters.md section 2), 70 kg patient."""
    assert 2.0 <= float(pk_model(PRED_PK, 70.0).half_life_h) <= 4.0


def test_weight_scaling_of_prednisolone() -> None:
    """CL ~ (W/70)^0.75 and V ~ W/70 (Bouazza 2025): t1/2 ~ (W/70)^0.25."""
    light, heavy = pk_model(PRED_PK, 35.0), pk_model(PRED_PK, 140.0)
    assert float(heavy.cl_l_per_h) / float(light.cl_l_per_h) == pytest.approx(4**0.75)
    assert float(heavy.half_life_h) / float(light.half_life_h) == pytest.approx(4**0.25)


def test_dose_dependent_bioavailability() -> None:
    """F = (dose / 28.67 mg)^-0.28: AUC per mg falls as the dose rises (Bouazza 2025; Frey
    1986 saw AUC after 0.8 mg/kg less than 4x that after 0.2 mg/kg)."""
    m = pk_model(PRED_PK, 70.0)
    ratio = float(
        steady_state(m, 56.0).auc_24h_mg_h_per_l / steady_state(m, 14.0).auc_24h_mg_h_per_l
    )
    assert ratio == pytest.approx(4 ** (1 - 0.28))
    assert ratio < 4
    assert float(m.absorbed_mg(28.67)) == pytest.approx(28.67 * 1.0056)
    assert float(m.absorbed_mg(0.0)) == 0.0


def test_between_patient_cv_of_mpa_auc_matches_the_configured_cv() -> None:
    """Over 10,000 patients (each from its own stream) the CV of AUC0-12 is within 10 %
    (relative) of cv_cl: AUC is proportional to 1/CL, and a log-normal's CV is kept under
    inversion. The sampling SE of the CV at n = 10,000 is about 0.003, far inside 10 %."""
    n = 10_000
    etas = np.array([draw_etas(MPA_PK, stream(2024, "pk", "mpa", i)) for i in range(n)])
    auc = mpa_auc0_12_at_target(SCENARIO, pk_model(MPA_PK, 70.0, etas))
    cv = auc.std(ddof=1) / auc.mean()
    assert abs(cv / MPA_PK.cv_cl - 1) < 0.10
    # and the median patient is the typical patient (log-normal median = theta)
    typical = float(mpa_auc0_12_at_target(SCENARIO, pk_model(MPA_PK, 70.0)))
    assert np.median(auc) == pytest.approx(typical, rel=0.03)


def test_a_patients_draws_depend_only_on_their_own_stream() -> None:
    a = draw_etas(MPA_PK, stream(7, "pk", "mpa", 3))
    b = draw_etas(MPA_PK, stream(7, "pk", "mpa", 3))
    c = draw_etas(MPA_PK, stream(7, "pk", "mpa", 4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (2,)


def test_streams_are_addressed_not_sequential() -> None:
    forward = [stream(1, "x", i).random() for i in range(5)]
    backward = [stream(1, "x", i).random() for i in reversed(range(5))]
    assert forward == backward[::-1]
    assert stream(1, "x", 0).random() != stream(2, "x", 0).random()
    assert stream(1, "x", 0).random() != stream(1, "y", 0).random()
    with pytest.raises(ValueError, match="seed"):
        stream(-1, "x")
    with pytest.raises(ValueError, match="stream keys"):
        stream(1, -3)


def test_daily_auc_reaches_steady_state() -> None:
    m = pk_model(PRED_PK, 60.0)
    pred = build_schedules(SCENARIO, 60.0)["prednisone"]
    daily = daily_auc(m, pred)
    assert daily.shape == (364,)
    assert daily[20] == pytest.approx(float(steady_state(m, 60.0).auc_24h_mg_h_per_l), rel=1e-6)
    assert daily[300] == pytest.approx(float(steady_state(m, 7.5).auc_24h_mg_h_per_l), rel=1e-6)


def test_scenario_without_exposure_is_a_clear_error(minimal: dict) -> None:
    from sim import scenario_from_dict
    from sim.errors import DosesimError

    with pytest.raises(DosesimError, match=r"needs a \[exposure\] table"):
        scenario_models(scenario_from_dict(minimal), 60.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("exposure.mpa.cl_l_per_h=0", "exposure.mpa.cl_l_per_h = 0: must be > 0"),
        ("exposure.prednisolone.v_l=-235", "exposure.prednisolone.v_l = -235: must be > 0"),
        ("exposure.mpa.cv_cl=2.5", "exposure.mpa.cv_cl = 2.5: must be <= 2"),
        ("exposure.mpa.cv_v=-0.1", "exposure.mpa.cv_v = -0.1: must be >= 0"),
        ("exposure.mpa.bioavailability=1.2", "exposure.mpa.bioavailability = 1.2: must be <= 1"),
        ("exposure.prednisolone.lag_h=-1", "exposure.prednisolone.lag_h = -1: must be >= 0"),
        ("exposure.mpa.ka_per_h=nan", "exposure.mpa.ka_per_h = nan: must be a finite number"),
        ("exposure.mpa.f_dose_exponent=-0.3", "exposure.mpa.f_reference_dose_mg: required when"),
        (
            "exposure.mpa.auc0_12_window_high_mg_h_per_l=20",
            "auc0_12_window_high_mg_h_per_l = 20.0: must be above",
        ),
        ("exposure.mpa.cl_l_per_hr=10", 'did you mean "cl_l_per_h"'),
    ],
)
def test_bad_pk_parameters_are_scenario_errors(override: str, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario(BASE, [override])
    assert message in str(err.value)


# ---------------------------------------------------------------------------
# Whole cohorts, vectorised
# ---------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    weights=st.lists(st.floats(40, 130).map(lambda w: round(w, 1)), min_size=1, max_size=12),
    seed=st.integers(0, 2**32),
    t_day=st.floats(0, 400),
)
def test_cohort_computation_equals_patient_by_patient(
    weights: list[float], seed: int, t_day: float
) -> None:
    w = np.array(weights)
    etas = np.array([draw_etas(PRED_PK, stream(seed, "pk", i)) for i in range(len(w))])
    models = pk_model(PRED_PK, w, etas)
    scheds = [build_schedules(SCENARIO, x)["prednisone"] for x in w]
    batch = ScheduleBatch.from_schedules(scheds)
    t_h = t_day * 24
    together = batch_cumulative_auc(models, batch, t_h)
    ss = batch_steady_state(models, batch)
    row = 0
    for i, sched in enumerate(scheds):
        one = pk_model(PRED_PK, float(w[i]), etas[i])
        assert together[i] == pytest.approx(cumulative_auc(one, sched, [t_h])[0], rel=1e-12)
        n = len(sched.change_days)
        alone = steady_state(one, np.array(sched.doses_mg_per_day), 1)
        np.testing.assert_allclose(ss.c_max_mg_per_l[row : row + n], alone.c_max_mg_per_l)
        row += n


def test_cohort_with_mixed_doses_per_day() -> None:
    bid = Schedule.constant(2000.0, 10, doses_per_day=2)
    qd = Schedule.constant(2000.0, 10, doses_per_day=1)
    m = OralOneCompartment(cl_l_per_h=np.array([10.0, 10.0]), v_l=260.0, ka_per_h=1.5, lag_h=0.4)
    batch = ScheduleBatch.from_schedules([bid, qd])
    ss = batch_steady_state(m, batch)
    np.testing.assert_allclose(ss.auc_24h_mg_h_per_l, [200.0, 200.0])
    assert ss.c_max_mg_per_l[1] > ss.c_max_mg_per_l[0]  # once daily peaks higher


@st.composite
def _courses(draw: st.DrawFn) -> tuple[Schedule, OralOneCompartment, np.ndarray]:
    """A schedule (zero doses and long lags included), patients on it, and times: some
    random, some exactly when a dose starts to be absorbed."""
    lengths = draw(st.lists(st.integers(1, 30), min_size=1, max_size=6))
    doses = draw(st.lists(st.sampled_from([0.0, 2.5, 10.0, 60.0, 1000.0]),
                          min_size=len(lengths), max_size=len(lengths)))  # fmt: skip
    per_day = draw(st.integers(1, 3))
    changes = tuple(int(x) for x in np.cumsum([0, *lengths[:-1]]))
    schedule = Schedule(changes, tuple(doses), sum(lengths), doses_per_day=per_day)
    n = draw(st.integers(1, 5))
    positive = st.floats(0.05, 5.0)
    cl = np.array(draw(st.lists(st.floats(0.5, 100.0), min_size=n, max_size=n)))
    v = np.array(draw(st.lists(st.floats(5.0, 500.0), min_size=n, max_size=n)))
    shared_lag = draw(st.booleans())
    lag: float | np.ndarray = (
        draw(st.floats(0.0, 30.0)) if shared_lag
        else np.array(draw(st.lists(st.floats(0.0, 30.0), min_size=n, max_size=n)))
    )  # fmt: skip
    model = OralOneCompartment(
        cl_l_per_h=cl, v_l=v, ka_per_h=draw(positive), lag_h=lag,
        dose_factor=draw(st.floats(0.1, 1.0)),
        f_reference_dose_mg=28.67, f_dose_exponent=draw(st.sampled_from([0.0, -0.28])),
    )  # fmt: skip
    end_h = schedule.end_day * 24.0
    times = draw(st.lists(st.floats(-5.0, end_h + 100.0), min_size=1, max_size=40))
    tau = 24.0 / per_day
    on_doses = np.arange(0.0, end_h + tau, tau) + float(np.atleast_1d(lag)[0])
    return schedule, model, np.concatenate([np.sort(times), on_doses])


def _patient(model: OralOneCompartment, i: int) -> OralOneCompartment:
    """Patient ``i`` of a model whose parameters may each be per patient or shared."""
    one = {name: np.broadcast_to(getattr(model, name), np.shape(model.cl_l_per_h))[i].item()
           for name in ("cl_l_per_h", "v_l", "ka_per_h", "lag_h")}  # fmt: skip
    return model.replaced(**one)


@settings(max_examples=150, deadline=None)
@given(course=_courses())
def test_concentration_and_auc_by_patient_equal_the_one_patient_forms(
    course: tuple[Schedule, OralOneCompartment, np.ndarray],
) -> None:
    """The segment-carrying forms against the plain sums over segments, patient by
    patient: equal to rounding. Both lose digits in the difference of the two
    exponential sums, whose size is the train's coefficient :math:`c = f D k_a / (V (k_a
    - k))` (much more than the concentration in a tail), so the tolerance is relative to
    it; where ka is within 0.1 % of k, c is huge and the tolerance with it."""
    schedule, model, t_h = course
    together = concentration_by_patient(model, schedule, t_h)
    areas = cumulative_auc_by_patient(model, schedule, t_h)
    assert together.shape == areas.shape == (np.size(model.cl_l_per_h), t_h.size)
    doses = np.array(schedule.doses_mg_per_day) / schedule.doses_per_day
    n_doses = schedule.end_day * schedule.doses_per_day
    for i in range(together.shape[0]):
        one = _patient(model, i)
        k, ka = (float(x) for x in one.rate_constants())
        rel = 1e-6 if abs(ka - k) < 1e-3 * ka else 1e-10
        coef = float(np.max(one.absorbed_mg(doses))) * ka / (float(one.v_l) * abs(ka - k))
        for got, plain, scale in (
            (together[i], concentration(one, schedule, t_h), coef),
            (areas[i], cumulative_auc(one, schedule, t_h), coef * n_doses * (1 / k + 1 / ka)),
        ):
            np.testing.assert_allclose(got, plain, rtol=0, atol=rel * scale)


def test_by_patient_forms_of_an_empty_schedule_and_bad_shapes() -> None:
    model = pk_model(MPA_PK, 70.0, np.zeros((3, 2)))
    empty = Schedule((), (), 0)
    np.testing.assert_array_equal(concentration_by_patient(model, empty, [1.0, 2.0]), 0.0)
    assert concentration_by_patient(model, empty, [1.0, 2.0]).shape == (3, 2)
    with pytest.raises(ValueError, match="1-D"):
        concentration_by_patient(model, Schedule.constant(1.0, 2), np.ones((2, 2)))


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def test_exposure_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path, png = tmp_path / "e.csv", tmp_path / "fig" / "e.png"
    args = ["exposure", str(BASE), "--weight-kg", "70", "--csv", str(csv_path), "--plot", str(png)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "half-life 3.0 h" in out and "half-life 17.0 h" in out
    assert "MPA AUC0-12 at the MMF target (2 g/day in 2 doses): 65.6 mg*h/L" in out
    lines = csv_path.read_text().splitlines()
    assert lines[0] == (
        "drug,start_day,end_day,dose_mg_per_day,auc_tau_mg_h_per_l,auc_24h_mg_h_per_l,"
        "c_avg_mg_per_l,c_max_mg_per_l,c_min_mg_per_l"
    )
    assert sum(line.startswith("prednisolone,") for line in lines) == 12
    assert sum(line.startswith("mpa,") for line in lines) == 3
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_exposure_command_population(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["exposure", str(BASE), "--weight-kg", "70", "--patients", "2000", "--seed", "5"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first  # same seed, same numbers
    assert "2000 patients of 70 kg (seed 5): MPA AUC0-12 median" in first


def test_exposure_command_population_plot_draws_the_printed_patients(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--plot changes no printed number, and the figure is of the very patients printed:
    the MPA AUC0-12 of all N from the stream ("exposure_patients", "mpa"), the bands over
    the first of them (their prednisolone effects from a stream of their own)."""
    import sim.views.exposure_plots as exposure_plots

    calls: list[tuple[dict, np.ndarray]] = []
    original = exposure_plots.population_profiles

    def recorded(curves: dict, auc: np.ndarray, *args: object, **kwargs: object) -> object:
        calls.append((curves, np.asarray(auc)))
        return original(curves, auc, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(exposure_plots, "population_profiles", recorded)
    args = ["exposure", str(BASE), "--weight-kg", "70", "--patients", "2000", "--seed", "5"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    png = tmp_path / "pk.png"
    assert main([*args, "--plot", str(png)]) == 0
    assert capsys.readouterr().out == printed + f"wrote {png}\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    ((curves, auc),) = calls
    mpa_etas = draw_etas(MPA_PK, stream(5, "exposure_patients", "mpa"), size=2000)
    expected = mpa_auc0_12_at_target(SCENARIO, pk_model(MPA_PK, 70.0, mpa_etas))
    np.testing.assert_array_equal(auc, expected)
    assert f"MPA AUC0-12 median {np.median(expected):.1f} " in printed
    (_, pred, _), (_, mpa, _) = curves.values()
    np.testing.assert_array_equal(mpa.cl_l_per_h, pk_model(MPA_PK, 70.0, mpa_etas[:500]).cl_l_per_h)
    pred_etas = draw_etas(PRED_PK, stream(5, "exposure_patients", "prednisolone"), size=500)
    np.testing.assert_array_equal(pred.cl_l_per_h, pk_model(PRED_PK, 70.0, pred_etas).cl_l_per_h)


def test_exposure_command_plot_without_patients_is_the_typical_patient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sim.views.exposure_plots as exposure_plots

    def refused(*args: object, **kwargs: object) -> object:
        raise AssertionError("the population figure without --patients")

    monkeypatch.setattr(exposure_plots, "population_profiles", refused)
    png = tmp_path / "pk.png"
    assert main(["exposure", str(BASE), "--weight-kg", "70", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--patients", "10"], "--patients needs --seed"),
        (["--plot", "x.gif"], "use a .png, .pdf or .svg"),
    ],
)
def test_exposure_command_bad_options(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = [str(tmp_path / e) if e.endswith(".gif") else e for e in extra]
    assert main(["exposure", str(BASE), "--weight-kg", "70", *extra]) == 2
    assert message in capsys.readouterr().err


def test_every_shipped_scenario_has_exposure() -> None:
    for f in SCENARIOS.glob("*.toml"):
        assert load_scenario(f).exposure is not None, f.name
