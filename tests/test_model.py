"""The cohort model: dosing, actions, exits, reproducibility and common random numbers."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import build_schedules, load_scenario, simulate_cohort
from sim.cli import main
from sim.errors import DosesimError
from sim.population import PeopleSource
from sim.streams import stream
from sim.trial import cohort as model
from sim.trial.cohort import screen_people
from tests.conftest import BASE, REPO

SCENARIO = load_scenario(BASE)

NO_HAZARDS: dict[str, Any] = {
    "adverse_events": {},
    "disease": {"remove": True},  # (its flares and rescues are adverse events)
    "dropout": {"withdrawal_per_year": 0.0, "death_per_year": 0.0},
}
SIXTY_KG: dict[str, Any] = {
    "population.female_fraction": 1.0,
    "population.weight_median_female_kg": 60.0,
    "population.weight_cv": 0.0,
}


def test_without_hazards_everyone_gets_the_builders_schedule() -> None:
    result = simulate_cohort(load_scenario(BASE, NO_HAZARDS), 300, seed=3)
    p = result.patients
    assert (p["status"] == "completed").all() and (p["exit_day"] == 364).all()
    assert set(result.events["event"]) == {"enrolled", "completed"}
    for row in p.itertuples():
        built = build_schedules(SCENARIO, row.weight_kg)
        assert result.schedules[row.patient_id] == built
        assert row.cumulative_prednisone_mg == built["prednisone"].total_mg
        assert row.mmf_dose_intensity == 1.0


def test_without_hazards_a_60kg_patient_gets_7892_5_mg_by_week_52() -> None:
    scenario = load_scenario(BASE, {**NO_HAZARDS, **SIXTY_KG})
    p = simulate_cohort(scenario, 50, seed=1).patients
    assert (p["weight_kg"] == 60.0).all()
    assert (p["cumulative_prednisone_mg_week52"] == 7892.5).all()
    assert (p["cumulative_prednisone_mg_week4"] == 1680.0).all()
    assert (p["days_at_or_above_20mg"] == 140).all()  # days 0-139 at 60 ... 20 mg/day
    assert (p["first_day_at_or_below_7_5mg"] == 245).all()


def test_screening_records_every_failed_criterion() -> None:
    result = simulate_cohort(SCENARIO, 200, seed=11)
    s = result.screened
    assert s["eligible"].sum() == 200 and s["eligible"].iloc[-1]
    failed = s[~s["eligible"]]
    assert (failed["failed"] != "").all()
    multi = failed["failed"].str.count(";") >= 1
    assert multi.any()  # some fail several criteria, all recorded
    for row in failed.itertuples():
        names = set(row.failed.split(";"))
        flagged = {c.removeprefix("fails_") for c in s.columns if c.startswith("fails_")}
        assert names == {c for c in flagged if getattr(row, f"fails_{c}")}
    assert (result.patients["person"].to_numpy() == s.loc[s["eligible"], "person"].to_numpy()).all()


def _screen_one_by_one(n: int, seed: int, limit: int) -> tuple[int, list[tuple[int, int]]]:
    """The reference for screen_people: one person at a time (rows counted, eligible persons)."""
    source = PeopleSource(SCENARIO, stream(seed, "replicate", 0, "site_population", 0), 0)
    found: list[tuple[int, int]] = []
    while len(found) < n and source.count < limit:
        block, row = source.next()
        if block.eligible[row]:
            found.append((int(block.person[row]), row))
    return source.count, found


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 400), seed=st.integers(0, 2**32))
def test_screening_by_blocks_stops_at_the_last_eligible_needed(n: int, seed: int) -> None:
    source, enrolled = screen_people(SCENARIO, n, seed)
    count, found = _screen_one_by_one(n, seed, 10**9)
    assert source.count == count and len(source.screened()) == count
    assert [(int(b.person[r]), r) for b, r in enrolled] == found


@pytest.mark.parametrize("n", [7, 150])  # the limit falls inside the first, the third block
def test_screening_gives_up_after_its_limit(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "_MAX_SCREENED_PER_ENROLLED", 1)  # n people for n patients
    count, found = _screen_one_by_one(n, 5, n)
    assert count == n and len(found) < n  # the reference gives up too
    with pytest.raises(DosesimError, match=f"screened {n} people and found only {len(found)} "):
        screen_people(SCENARIO, n, 5)


def test_enrolling_all_at_once_equals_one_by_one() -> None:
    enrolled = screen_people(SCENARIO, 300, 8)[1]
    days = [float(d % 50) for d in range(len(enrolled))]
    together = model.Cohort(SCENARIO, 8, 0)
    together.enrol_all(enrolled, days)
    apart = model.Cohort(SCENARIO, 8, 0)
    for (block, row), day in zip(enrolled, days, strict=True):
        apart.enrol(block, row, day)
    for cohort in (together, apart):
        cohort.env.run()
    # (as tables: a missing FVC is a NaN, which equals no other NaN in a dict)
    rows = [pd.DataFrame(c.patient_rows()) for c in (together, apart)]
    pd.testing.assert_frame_equal(rows[0], rows[1])
    assert together.log == apart.log


def test_same_seed_same_tables_in_an_independent_process(tmp_path: Path) -> None:
    """Two independent runs (this process and a fresh one) give identical tables."""
    here = simulate_cohort(SCENARIO, 150, seed=42)
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "sim", "cohort", str(BASE), "--patients", "150", "--seed", "42",
         "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "patients.csv").read_text() == here.patients.to_csv(index=False)
    assert (out / "events.csv").read_text() == here.events.to_csv(index=False)
    other = simulate_cohort(SCENARIO, 150, seed=43)
    assert not other.patients.equals(here.patients)


def test_changing_one_adverse_event_leaves_covariates_and_pk_unchanged() -> None:
    """Common random numbers: covariates and PK come from their own streams."""
    cols = ["person", "sex", "age_years", "weight_kg", "fvc_percent", "mpa_cl_l_per_h",
            "prednisolone_cl_l_per_h", "prednisone_start_mg_per_day"]  # fmt: skip
    a = simulate_cohort(SCENARIO, 400, seed=5).patients
    changed = load_scenario(BASE, {"adverse_events.gi_intolerance.baseline_per_year": 0.6})
    b = simulate_cohort(changed, 400, seed=5).patients
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert b["ae_gi_intolerance"].sum() > a["ae_gi_intolerance"].sum()
    # patients the change did not touch (no GI event either way) keep their whole history
    untouched = (a["ae_gi_intolerance"] == 0) & (b["ae_gi_intolerance"] == 0)
    assert untouched.mean() > 0.3
    other_ae = ["ae_hyperglycaemia", "ae_serious_infection", "ae_leukopenia"]
    same = (a.loc[untouched, other_ae] == b.loc[untouched, other_ae]).all(axis=1)
    assert same.mean() > 0.95


def test_reescalation_restarts_the_taper_the_next_day() -> None:
    flare_only = {
        "adverse_events": {
            "ild_flare": {
                "baseline_per_year": 3.0,
                "actions": [{"action": "prednisone_reescalate", "start_mg_per_kg": 1.0}],
            }
        },
        "dropout": {"withdrawal_per_year": 0.0, "death_per_year": 0.0},
        "disease": {"remove": True},
        **SIXTY_KG,
    }
    result = simulate_cohort(load_scenario(BASE, flare_only), 40, seed=9)
    ev = result.events
    flares = ev[ev["event"] == "ild_flare"]
    assert len(flares) > 20
    for row in flares.itertuples():
        day = math.floor(row.day) + 1
        if day >= 364:
            continue
        pred = result.schedules[row.patient_id]["prednisone"]
        assert pred.dose_at(day) == 60.0
        later = flares[(flares.patient_id == row.patient_id) & (flares.day > row.day)]
        if day + 27 < 364 and (later.empty or later.day.min() >= day + 28):
            assert pred.dose_at(day + 27) == 60.0
    adj = result.adjustments
    assert set(adj["reason"]) == {"ild_flare: prednisone_reescalate"}


def _check_invariants(scenario_overrides: dict[str, Any], seed: int) -> None:
    scenario = load_scenario(BASE, scenario_overrides)
    result = simulate_cohort(scenario, 60, seed=seed)
    target = scenario.mmf.target_g_per_day * 1000
    ev = result.events
    for row in result.patients.itertuples():
        pred = result.schedules[row.patient_id]["prednisone"]
        mmf = result.schedules[row.patient_id]["mmf"]
        # no dose after exit (doses of the exit day itself were taken)
        stop = min(math.floor(row.exit_day) + 1, 364)
        assert pred.end_day <= stop and mmf.end_day <= stop
        assert pred.dose_at(stop) == 0 and mmf.dose_at(stop) == 0
        # cumulative dose never decreases; MMF within [0, target]
        for s in (pred, mmf):
            assert (np.diff(s.cumulative(np.arange(s.end_day + 1))) >= 0).all()
        assert min(mmf.doses_mg_per_day) >= 0 and max(mmf.doses_mg_per_day) <= target
        # events in time order, nothing after the exit
        mine = ev[ev["patient_id"] == row.patient_id]
        assert mine["day"].is_monotonic_increasing
        assert mine["day"].iloc[-1] == row.exit_day
        assert mine["event"].iloc[-1] == row.status
    # a hold ends when its rule says: zero for `days`, then MMF again
    hold_days = {
        name: next((a.days for a in ae.actions if a.action == "mmf_hold"), None)
        for name, ae in scenario.adverse_events.items()
    }
    adj = result.adjustments
    for row in adj[adj["reason"].str.endswith("mmf_hold")].itertuples():
        mmf = result.schedules[row.patient_id]["mmf"]
        days = hold_days[row.reason.split(":")[0]]
        assert days is not None
        later = adj[(adj.patient_id == row.patient_id) & (adj.day > row.day) & (adj.drug == "mmf")]
        end = row.day + days
        if end < mmf.end_day and (later.empty or later.day.min() > end):
            assert (mmf.daily_doses()[row.day : end] == 0).all()
            assert mmf.dose_at(end) > 0


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    infection=st.floats(0.0, 3.0),
    gi=st.floats(0.0, 3.0),
    leukopenia=st.floats(0.0, 2.0),
)
def test_invariants_hold_over_generated_scenarios(
    seed: int, infection: float, gi: float, leukopenia: float
) -> None:
    _check_invariants(
        {
            "adverse_events.serious_infection.baseline_per_year": infection,
            "adverse_events.gi_intolerance.baseline_per_year": gi,
            "adverse_events.leukopenia.baseline_per_year": leukopenia,
        },
        seed,
    )


def test_enrolment_days_shift_trial_time_only() -> None:
    a = simulate_cohort(SCENARIO, 20, seed=2)
    b = simulate_cohort(SCENARIO, 20, seed=2, enrolment_days=[10.0 * i for i in range(20)])
    cols = ["day", "event", "detail", "patient_id"]
    ea = a.events.sort_values(["patient_id", "day"], kind="stable")[cols].reset_index(drop=True)
    eb = b.events.sort_values(["patient_id", "day"], kind="stable")[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(ea, eb)
    first = b.events.groupby("patient_id")["trial_day"].min()
    assert (first.to_numpy() == 10.0 * np.arange(20)).all()


def test_bad_arguments_are_clear_errors(minimal: dict[str, Any]) -> None:
    from sim import scenario_from_dict

    with pytest.raises(DosesimError, match="enrolment days"):
        simulate_cohort(SCENARIO, 3, seed=1, enrolment_days=[0.0, 1.0])
    with pytest.raises(DosesimError, match="needs a"):
        simulate_cohort(scenario_from_dict(minimal), 3, seed=1)
    impossible = load_scenario(BASE, {"population.prevalence.cancer": 1.0})
    with pytest.raises(DosesimError, match="eligible"):
        simulate_cohort(impossible, 1, seed=1)


def test_cohort_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c"
    assert main(["cohort", str(BASE), "--patients", "200", "--seed", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cumulative prednisone at week 52: median" in text
    assert "completed:" in text and "serious_infection" in text
    patients = pd.read_csv(out / "patients.csv")
    required = [
        "patient_id",
        "weight_kg",
        "prednisone_start_mg_per_day",
        "cumulative_prednisone_mg_week4",
        "cumulative_prednisone_mg_week12",
        "cumulative_prednisone_mg_week24",
        "cumulative_prednisone_mg_week52",
        "cumulative_prednisone_mg",
        "days_at_or_above_20mg",
        "first_day_at_or_below_7_5mg",
        "mmf_dose_intensity",
        "mpa_auc0_12_mg_h_per_l",
        "ae_serious_infection",
        "ae_gi_intolerance",
        "ae_leukopenia",
        "ae_hyperglycaemia",
        "ae_ild_flare",
        "status",
        "exit_day",
        "exit_reason",
    ]
    for col in required:
        assert col in patients.columns, col
    assert len(patients) == 200
    events = pd.read_csv(out / "events.csv")
    assert list(events.columns) == ["trial_day", "patient_id", "day", "event", "detail"]


def _only(ae: dict[str, Any], **dropout: Any) -> dict[str, Any]:
    return {
        "adverse_events": ae,
        "disease": {"remove": True},
        "dropout": {"withdrawal_per_year": 0.0, "death_per_year": 0.0, **dropout},
        **SIXTY_KG,
    }


def test_mmf_stop_and_reduce_change_the_rest_of_the_plan() -> None:
    stop = _only({"x": {"baseline_per_year": 2.0, "actions": [{"action": "mmf_stop"}]}})
    result = simulate_cohort(load_scenario(BASE, stop), 30, seed=4)
    stops = result.events[result.events["event"] == "x"]
    assert len(stops) > 10
    for row in stops.itertuples():
        mmf = result.schedules[row.patient_id]["mmf"]
        day = math.floor(row.day) + 1
        assert (mmf.daily_doses()[day:] == 0).all()  # nothing from the next day on

    reduce = _only(
        {
            "x": {
                "baseline_per_year": 1.0,
                "actions": [{"action": "mmf_reduce", "by_g_per_day": 0.5, "floor_g_per_day": 1.0}],
            }
        }
    )
    result = simulate_cohort(load_scenario(BASE, reduce), 60, seed=6)
    events = result.events[result.events["event"] == "x"]
    assert len(events) > 20
    for row in result.patients.itertuples():
        mine = events[events["patient_id"] == row.patient_id]
        effective = int((np.floor(mine["day"]) + 1 < 364).sum())
        mmf = result.schedules[row.patient_id]["mmf"]
        # each event lowers the ceiling by 500 mg/day from 2000, never below 1000
        assert mmf.doses_mg_per_day[-1] == max(2000 - 500 * effective, 1000)


def test_death_is_raised_only_after_the_named_event() -> None:
    """Death rate x1000 for 30 days after an infection, almost nil otherwise: nearly every
    death falls inside such a window."""
    overrides = _only(
        {"serious_infection": {"baseline_per_year": 1.0}},
        death_per_year=0.005,
        death_raised_after={"event": "serious_infection", "multiplier": 1000.0, "days": 30.0},
    )
    result = simulate_cohort(load_scenario(BASE, overrides), 600, seed=8)
    ev = result.events
    deaths = ev[ev["event"] == "died"]
    assert len(deaths) > 50
    inside = 0
    for row in deaths.itertuples():
        infections = ev[(ev.patient_id == row.patient_id) & (ev.event == "serious_infection")]
        inside += bool(
            ((row.day - infections["day"] >= 0) & (row.day - infections["day"] < 30)).any()
        )
    assert inside / len(deaths) > 0.95


def test_mmf_stop_keeps_the_dosing_frequency() -> None:
    """Stopping MMF must not rewrite the doses already given (three times daily here)."""
    overrides = {
        **_only({"x": {"baseline_per_year": 3.0, "actions": [{"action": "mmf_stop"}]}}),
        "mmf.doses_per_day": 3,
    }
    result = simulate_cohort(load_scenario(BASE, overrides), 20, seed=2)
    assert all(s["mmf"].doses_per_day == 3 for s in result.schedules.values())
