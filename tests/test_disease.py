"""The disease model: the effect's exact solution, estimands, common random numbers, power."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sim.cli import main
from sim.disease import FvcPatient, effect_at, patient_fvc
from sim.disease_schema import DiseaseSettings
from sim.scenario import load_scenario
from sim.schedule import Schedule
from sim.trial.cohort import simulate_cohort

BASE = Path(__file__).resolve().parents[1] / "scenarios" / "nct05129410.toml"


def test_the_effect_solves_its_ode_exactly() -> None:
    # dE/dt = k (T(t) - E), T piecewise constant: against an ODE solver
    cuts, targets, half = [0.0, 30.0, 100.0, 250.0], [8.0, 12.0, 0.0, 5.0], 40.0
    k = math.log(2) / half

    def rhs(t: float, e: list[float]) -> list[float]:
        j = int(np.searchsorted(cuts, t, side="right") - 1)
        return [k * (targets[j] - e[0])]

    days = np.array([0.0, 10.0, 30.0, 64.0, 100.0, 180.0, 250.0, 364.0])
    ref = solve_ivp(rhs, (0, 364), [0.0], t_eval=days, max_step=0.5, rtol=1e-10, atol=1e-12)
    assert np.allclose(effect_at(days, cuts, targets, half), ref.y[0], atol=1e-6)


def settings(**estimand: object) -> DiseaseSettings:
    return DiseaseSettings.model_validate(
        {"fvc": {"visit_weeks": [0, 26, 52], "landmark_week": 52}, "estimand": estimand}
    )


def patient(status: str, exit_day: float) -> FvcPatient:
    mmf = Schedule.constant(2000.0, 364, 2).truncated(int(exit_day) + 1)
    return FvcPatient(70.0, mmf, Schedule.constant(10.0, 364), 0.03, status, exit_day)


def test_estimands_on_constructed_patients() -> None:
    z, e = 0.0, np.zeros(3)
    # discontinued on day 100, in follow-up: measured under treatment policy (the effect
    # wanes), not while on treatment
    policy = patient_fvc(settings(), patient("discontinued", 100.0), z, e)
    assert math.isfinite(policy[1])
    measured, change = patient_fvc(
        settings(discontinuation="while_on_treatment"), patient("discontinued", 100.0), z, e
    )
    assert math.isnan(change) and math.isnan(measured[1]) and math.isfinite(measured[0])
    # the patient who completed is measured either way, and improves more than the one who
    # stopped early (the MMF effect waned after day 100)
    done = patient_fvc(settings(), patient("completed", 364.0), z, e)[1]
    assert done > policy[1]
    # death before the landmark: missing while alive, a failure (the declared change) in a
    # composite
    assert math.isnan(patient_fvc(settings(), patient("died", 200.0), z, e)[1])
    comp = settings(death="composite", death_change_pp=-15.0)
    assert patient_fvc(comp, patient("died", 200.0), z, e)[1] == -15.0
    # withdrawal: missing
    assert math.isnan(patient_fvc(settings(), patient("withdrawn", 300.0), z, e)[1])


def test_the_disease_model_changes_no_other_draw() -> None:
    a = simulate_cohort(load_scenario(BASE, ["disease={remove=true}"]), 300, seed=5)
    b = simulate_cohort(load_scenario(BASE), 300, seed=5)
    assert b.patients[a.patients.columns].equals(a.patients)
    assert b.events.equals(a.events)
    # and a change to the treatment effect moves only the FVC columns: every patient's
    # covariates, PK, doses, adverse events and exits stay as they were
    c = simulate_cohort(load_scenario(BASE, ["disease.fvc.mmf_effect_max_pp=5.0"]), 300, seed=5)
    assert c.patients[a.patients.columns].equals(a.patients)
    assert c.events.equals(b.events)
    assert (c.patients["fvc_week0"] == b.patients["fvc_week0"]).all()  # baseline: no effect
    # Treg has its own stream: FVC drawing more normals (another visit) moves no Treg value
    d = simulate_cohort(
        load_scenario(BASE, ["disease.fvc.visit_weeks=[0, 8, 13, 26, 52]"]), 300, seed=5
    )
    assert d.patients["fvc_week0"].equals(b.patients["fvc_week0"])
    assert not d.patients["fvc_week52"].equals(b.patients["fvc_week52"])
    for column in ("treg_week0", "treg_week26", "treg_week52", "treg_change"):
        assert d.patients[column].equals(b.patients[column])
    done = b.patients["status"] == "completed"
    assert (c.patients.loc[done, "fvc_change"] < b.patients.loc[done, "fvc_change"]).all()


def test_relapses_depend_on_treatment_and_cost_fvc() -> None:
    base = simulate_cohort(load_scenario(BASE), 2000, seed=11).patients
    low = simulate_cohort(load_scenario(BASE, ["prednisone.start_mg_per_kg=0.5"]), 2000, seed=11)
    low_p = low.patients
    # the same patients (common random numbers), less steroid, more relapses
    assert (low_p["person"] == base["person"]).all()
    burden = "cumulative_prednisone_mg_week52"
    assert low_p[burden].median() < 0.7 * base[burden].median()
    relapsed = (base["ae_ild_relapse"] > 0).mean(), (low_p["ae_ild_relapse"] > 0).mean()
    assert relapsed[1] > relapsed[0]
    # a relapse costs FVC: 5-10 pp each, and the re-escalation cannot make up for it
    changed = base["fvc_change"].notna()
    by_relapse = base[changed].groupby(base["ae_ild_relapse"][changed] > 0)["fvc_change"].mean()
    assert by_relapse[False] - by_relapse[True] > 5.0


def test_power_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "d.toml"
    scenario.write_text(
        f'extends = "{BASE}"\n[disease.fvc]\nvisit_weeks = [0, 26, 52]\nlandmark_week = 52\n'
    )
    out = tmp_path / "pw"
    args = ["power", str(scenario), "--n", "8,16", "--replicates", "30", "--seed", "3"]
    assert main([*args, "--out", str(out), "--target-power", "0.5", "--quiet"]) == 0
    table = (out / "power.csv").read_text().splitlines()
    assert table[0].startswith("n,power,power_mcse,ci_half_width_median")
    assert [row.split(",")[0] for row in table[1:]] == ["8", "16"]
    assert (out / "power.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert "Power and precision against n" in page and "data:image/png;base64," in page
    assert "smallest n on the grid" in capsys.readouterr().out
    assert main([*args, "--out", str(out), "--quiet"]) == 2  # refuses to overwrite
    assert main(["power", str(scenario), "--n", "8,x", "--seed", "1"]) == 2
    plain = tmp_path / "plain.toml"  # no disease model: nothing to power
    plain.write_text(f'extends = "{BASE}"\ndisease = {{ remove = true }}\n')
    assert main(["power", str(plain), "--n", "8", "--seed", "1", "--replicates", "2"]) == 2


def test_the_mixed_model_is_statsmodels_fitted_directly() -> None:
    import pandas as pd
    import statsmodels.formula.api as smf

    from sim.disease import analyse_mixed

    sc = load_scenario(BASE, ['disease.analysis.method="mixed_model"'])
    assert sc.disease is not None
    p = simulate_cohort(sc, 40, seed=9).patients
    visits = {w: p[f"fvc_week{w}"].to_numpy() for w in (0, 13, 26, 52)}
    got = analyse_mixed(visits, sc.disease)
    # the same model fitted by hand: long data of every post-baseline change
    long = pd.concat(
        [
            pd.DataFrame(
                {
                    "patient": p.index,
                    "week": w,
                    "baseline": p["fvc_week0"],
                    "change": p[f"fvc_week{w}"] - p["fvc_week0"],
                }
            )
            for w in (13, 26, 52)
        ]
    ).dropna()
    long["baseline_c"] = long["baseline"] - long["baseline"].mean()
    long["cell"] = long["week"].astype(str) + "_0"
    fit = smf.mixedlm("change ~ 0 + C(cell) + baseline_c", long, groups=long["patient"]).fit(
        reml=True
    )
    est = fit.params["C(cell)[52_0]"]
    se = fit.bse["C(cell)[52_0]"]
    assert abs(got["fvc_change_mean"] - est) < 1e-8
    from scipy import stats

    q = stats.t.ppf(0.975, got["fvc_evaluable"] - 1)  # the t reference it documents
    assert abs((got["fvc_ci_high"] - got["fvc_ci_low"]) / 2 / q - se) < 1e-8
    # and it agrees with the completers' mean change within its SE
    assert abs(got["fvc_change_mean"] - p["fvc_change"].mean()) < 2 * se


def test_flares_lower_fvc_from_their_day_by_their_drawn_loss() -> None:
    s = DiseaseSettings.model_validate(
        {"fvc": {"visit_weeks": [0, 13, 26, 52], "landmark_week": 52,
                 "flare_drop_min_pp": 4.0, "flare_drop_max_pp": 10.0}}
    )  # fmt: skip
    z, e = 0.3, np.zeros(4)
    calm = patient("completed", 364.0)
    flared = FvcPatient(**{**calm.__dict__, "flare_days": (100.0, 200.0)})
    m0, c0 = patient_fvc(s, calm, z, e)
    m1, c1 = patient_fvc(s, flared, z, e, np.array([0.25, 0.5]))
    # 4 + 6 u: 5.5 from day 100 (weeks 26 and 52), 7.0 more from day 200 (week 52)
    assert np.allclose(m0 - m1, [0.0, 0.0, 5.5, 12.5])
    assert c0 - c1 == pytest.approx(12.5)


def test_rescue_strategies_on_a_constructed_patient() -> None:
    z, e = 0.0, np.zeros(3)
    rescued = FvcPatient(**{**patient("completed", 364.0).__dict__, "rescue_day": 150.0})
    policy = patient_fvc(settings(), rescued, z, e)
    assert np.isfinite(policy[0]).all() and math.isfinite(policy[1])
    # hypothetical: nothing measured from the rescue on (the week-26 visit is day 182)
    measured, change = patient_fvc(settings(rescue="hypothetical"), rescued, z, e)
    assert math.isfinite(measured[0]) and np.isnan(measured[1:]).all() and math.isnan(change)
    # composite: a failure with the declared change; a rescue after the landmark is not one
    comp = settings(rescue="composite", rescue_change_pp=-12.0)
    assert patient_fvc(comp, rescued, z, e)[1] == -12.0
    late = FvcPatient(**{**rescued.__dict__, "rescue_day": 400.0})
    assert patient_fvc(comp, late, z, e)[1] == policy[1]
    # a death before the landmark under a composite death strategy counts as death
    both = settings(rescue="composite", death="composite", death_change_pp=-30.0)
    died = FvcPatient(**{**rescued.__dict__, "status": "died", "exit_day": 200.0})
    assert patient_fvc(both, died, z, e)[1] == -30.0


def test_subtypes_set_the_natural_course() -> None:
    s = DiseaseSettings.model_validate(
        {"fvc": {"visit_weeks": [0, 52], "landmark_week": 52, "mmf_effect_max_pp": 0.0,
                 "natural_slope_pp_per_year": -2.7, "measurement_sd_pp": 0.0,
                 "subtypes": {"extensive_fibrosis": {"natural_slope_pp_per_year": -7.0}}}}
    )  # fmt: skip
    limited = patient("completed", 364.0)
    extensive = FvcPatient(**{**limited.__dict__, "conditions": frozenset({"extensive_fibrosis"})})
    years = 364 / 365.25
    assert patient_fvc(s, limited, 0.0, np.zeros(2))[1] == pytest.approx(-2.7 * years)
    assert patient_fvc(s, extensive, 0.0, np.zeros(2))[1] == pytest.approx(-7.0 * years)
    # the subtype's own SD when it gives one, else the model's (7 by default)
    assert patient_fvc(s, extensive, 1.0, np.zeros(2))[1] == pytest.approx((-7.0 + 7.0) * years)


def test_a_marker_is_a_treatment_effect_with_its_own_baseline() -> None:
    from sim.disease import patient_marker
    from sim.disease_schema import Estimand, TregModel

    treg = TregModel(visit_weeks=[0, 26, 52], landmark_week=52, measurement_sd_pp=0.0,
                     slope_sd_pp_per_year=0.0, gc_effect_max_pp=-0.5)  # fmt: skip
    p = patient("completed", 364.0)  # MMF 2 g/day at 0.03 mg*h/L per mg: AUC 60
    measured, change = patient_marker(treg, Estimand(), p, 7.2, 0.0, np.zeros(3))
    assert measured[0] == 7.2
    target = 1.2 * 60**2 / (60**2 + 20**2) - 0.5 * 10 / (10 + 15)
    expected = effect_at([364.0], [0.0, 364.0], [target, 0.0], 45.0)[0]
    assert change == pytest.approx(expected)


def test_the_disease_tables_must_name_what_the_scenario_has(tmp_path: Path) -> None:
    scenario = tmp_path / "d.toml"
    scenario.write_text(
        f'extends = "{BASE}"\n[disease.fvc]\nvisit_weeks = [0, 52]\nlandmark_week = 52\n'
        'flare_events = ["ild_flaer"]\n'
        "subtypes = { fibrosis = { natural_slope_pp_per_year = -7 } }\n"
        '[disease.estimand]\nrescue_events = ["nope"]\n'
        "[[adverse_events.ild_flare.multipliers]]\n"
        'driver = "covariate_bands"\ncovariate = "bmi"\nedges = [1.0]\nmultipliers = [1.0, 2.0]\n'
    )
    from sim.errors import DosesimError

    with pytest.raises(DosesimError) as info:
        load_scenario(scenario)
    text = str(info.value)
    for where in ("disease.fvc.flare_events[0] = \"ild_flaer\"", "disease.fvc.subtypes.fibrosis",
                  "disease.estimand.rescue_events[0] = \"nope\"",
                  "adverse_events.ild_flare.multipliers[0].covariate = \"bmi\""):  # fmt: skip
        assert where in text, text


def test_estimands_on_a_constructed_cohort_with_a_known_fraction_stopping() -> None:
    # 10 patients, 3 of whom discontinue on day 100 and stay in follow-up; no noise
    s = {"fvc": {"visit_weeks": [0, 26, 52], "landmark_week": 52, "measurement_sd_pp": 0.0,
                 "slope_sd_pp_per_year": 0.0}}  # fmt: skip
    policy = DiseaseSettings.model_validate(s)
    on_treatment = DiseaseSettings.model_validate(
        {**s, "estimand": {"discontinuation": "while_on_treatment"}}
    )
    cohort = [patient("discontinued", 100.0)] * 3 + [patient("completed", 364.0)] * 7
    z, e = 0.0, np.zeros(3)
    stopped = patient_fvc(policy, cohort[0], z, e)[1]
    stayed = patient_fvc(policy, cohort[-1], z, e)[1]
    assert stopped < stayed  # their effect waned after day 100
    from sim.disease import analyse

    tp = analyse([patient_fvc(policy, p, z, e)[1] for p in cohort], policy)
    wot = analyse([patient_fvc(on_treatment, p, z, e)[1] for p in cohort], on_treatment)
    # treatment policy: all ten, the stopped ones included; while on treatment: the seven
    assert tp["fvc_evaluable"] == 10 and wot["fvc_evaluable"] == 7
    assert tp["fvc_change_mean"] == pytest.approx(0.3 * stopped + 0.7 * stayed)
    assert wot["fvc_change_mean"] == pytest.approx(stayed)


def test_composites_count_only_failures_before_the_landmark_and_only_for_fvc() -> None:
    from sim.disease import patient_marker
    from sim.disease_schema import Estimand, TregModel

    z, e = 0.0, np.zeros(3)
    early = DiseaseSettings.model_validate(
        {"fvc": {"visit_weeks": [0, 26, 52], "landmark_week": 26},
         "estimand": {"death": "composite", "rescue": "hypothetical"}}
    )  # fmt: skip
    # rescued on day 100 (hypothetical: missing), died on day 300, after the landmark (day
    # 182): missing, not a death failure
    late_death = FvcPatient(**{**patient("died", 300.0).__dict__, "rescue_day": 100.0})
    assert math.isnan(patient_fvc(early, late_death, z, e)[1])
    died_before = FvcPatient(**{**patient("died", 150.0).__dict__})
    assert patient_fvc(early, died_before, z, e)[1] == -20.0
    # a second endpoint's change is missing where FVC's counts a failure
    treg = TregModel(visit_weeks=[0, 26, 52], landmark_week=52)
    both = Estimand(death="composite", rescue="composite")
    died = patient("died", 200.0)
    assert patient_marker(treg, both, died, 7.2, 0.0, e)[1] == -20.0  # (as FVC would)
    assert math.isnan(patient_marker(treg, both, died, 7.2, 0.0, e, composite=False)[1])


def test_while_on_treatment_stops_at_the_mmf_stop_also_for_those_who_later_left() -> None:
    z, e = 0.0, np.zeros(3)
    s = settings(discontinuation="while_on_treatment")
    stopped = Schedule((0, 50), (2000.0, 0.0), 364, 2).truncated(301)
    for status in ("withdrawn", "died", "completed"):
        p = FvcPatient(70.0, stopped, Schedule.constant(10.0, 364), 0.03, status, 300.0)
        measured, change = patient_fvc(s, p, z, e)
        assert math.isfinite(measured[0]) and np.isnan(measured[1:]).all(), status
        assert math.isnan(change)


def test_the_effect_equals_the_vectorised_formula_bit_for_bit() -> None:
    # the plain-Python path (a few visits per patient) against the equations in numpy
    rng = np.random.default_rng(4)
    for _ in range(50):
        cuts = np.concatenate(([0.0], np.sort(rng.uniform(1, 364, rng.integers(0, 8)))))
        targets = rng.uniform(-5, 15, cuts.size).tolist()
        days = np.sort(rng.uniform(0, 400, 6))
        half = float(rng.uniform(10, 200))
        k = math.log(2.0) / half
        at_cut = [0.0]
        for j in range(1, cuts.size):
            at_cut.append(
                targets[j - 1]
                + (at_cut[-1] - targets[j - 1]) * math.exp(-k * (cuts[j] - cuts[j - 1]))
            )
        i = np.searchsorted(cuts, days, side="right") - 1
        expected = [targets[j] + (at_cut[j] - targets[j]) * math.exp(-k * (d - cuts[j]))
                    for d, j in zip(days.tolist(), i.tolist(), strict=True)]  # fmt: skip
        got = effect_at(days, cuts.tolist(), targets, half)
        assert got.tolist() == expected


def test_arms_with_the_disease_model_show_the_trade_off_per_arm(tmp_path: Path) -> None:
    from sim.runner import run
    from sim.views.report import write_report
    from sim.views.text import format_run_summary

    sc = load_scenario(BASE.parent / "nct05129410_start_dose_arms.toml")
    result = run(sc, 6, seed=2, out=tmp_path / "arms", keep_patients=1)
    rows = result.replicates
    for column in ("arm_high_fvc_change_mean", "arm_low_fvc_change_mean",
                   "diff_low_fvc_change_mean", "diff_low_fvc_p_value"):  # fmt: skip
        assert column in rows.columns, column
    text = format_run_summary(result.summary)
    assert "(arm high)" in text and "primary analysis of low against high" in text
    write_report(tmp_path / "arms")
    page = (tmp_path / "arms" / "report.html").read_text()
    section = page.split("Trade-off: harms and disease control</h2>", 1)[1].split("<h2")[0]
    assert "<td>high</td>" in section and "<td>low</td>" in section
