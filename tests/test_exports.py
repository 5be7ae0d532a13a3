"""Exports: NONMEM dose records and SDTM EX, AE, DS rows from one replicate's cohort."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import CohortResult, Schedule, load_scenario, simulate_cohort
from sim.actions import ACTIONS, Adjustment, exadj_words
from sim.drugs import MMF, PREDNISONE, Drug
from sim.results.ae_actions import MULTIPLE, NOT_APPLICABLE, overall_action
from sim.results.exports import (
    AEACN_ORDER,
    EXADJ_MAX,
    ae_term,
    nonmem_dosing,
    nonmem_id,
    sdtm_ae,
    sdtm_ds,
    sdtm_ex,
    usubjid,
)
from tests.conftest import BASE

STUDY = "NCT05129410"
REPLICATE = 3
DRUGS = ("prednisone", "mmf")
NONMEM_DRUG = {"PREDNISONE": "prednisone", "MMF": "mmf"}
EXTRT_DRUG = {"PREDNISONE": "prednisone", "MYCOPHENOLATE MOFETIL": "mmf"}
NOT_AE = {
    "enrolled",
    *(action.done for action in ACTIONS.values()),  # mmf_reduced, mmf_held, ...
    "completed",
    "withdrawn",
    "died",
    "discontinued",
}

# Adverse events about ten times as often as in the base scenario, and leukopenia
# may also stop MMF, so that every kind of action and exit occurs in 40 patients.
HIGH_AE: dict[str, Any] = {
    "adverse_events.serious_infection.baseline_per_year": 1.0,
    "adverse_events.gi_intolerance.baseline_per_year": 2.0,
    "adverse_events.leukopenia.baseline_per_year": 1.5,
    "adverse_events.hyperglycaemia.baseline_per_year": 0.5,
    "adverse_events.ild_flare.baseline_per_year": 0.8,
    "adverse_events.leukopenia.actions": [
        {
            "action": "mmf_hold",
            "days": 14,
            "resume_reduce_by_g_per_day": 0.5,
            "floor_g_per_day": 1.0,
        },
        {"action": "mmf_stop", "probability": 0.3},
    ],
    "dropout.withdrawal_per_year": 0.3,
    "dropout.death_per_year": 0.1,
}


@pytest.fixture(scope="module")
def cohort() -> CohortResult:
    """One replicate of 40 patients with frequent adverse events and actions."""
    result = simulate_cohort(load_scenario(BASE, HIGH_AE), 40, seed=2, replicate=REPLICATE)
    events = set(result.events["event"])
    # the fixture is only useful if every kind of action and exit happened
    assert {"mmf_reduced", "mmf_held", "mmf_stopped", "prednisone_reescalated"} <= events
    assert {"completed", "withdrawn", "died", "discontinued"} <= events
    return result


@pytest.fixture(scope="module")
def tables(cohort: CohortResult) -> dict[str, pd.DataFrame]:
    """The four export tables of :func:`cohort`."""
    return {
        "nonmem": nonmem_dosing(cohort, REPLICATE, STUDY),
        "ex": sdtm_ex(cohort, REPLICATE, STUDY),
        "ae": sdtm_ae(cohort, REPLICATE, STUDY),
        "ds": sdtm_ds(cohort, REPLICATE, STUDY),
    }


def _subject(patient_id: int) -> str:
    return usubjid(STUDY, REPLICATE, patient_id)


def _term(event: str) -> str:
    """The adverse event's term inside EXADJ's sentence."""
    return ae_term(event).lower()


def _hand_built(
    schedules: dict[int, dict[str, Schedule]],
    events: Sequence[tuple[int, float, str, str]] = (),
    adjustments: Sequence[tuple[Any, ...]] = (),
    patients: Sequence[tuple[int, str, float, str]] = (),
    drugs: tuple[Drug, ...] = (PREDNISONE, MMF),
) -> CohortResult:
    """A CohortResult from hand-written rows (every patient enrolled on trial day 0).

    ``events`` are ``(patient_id, day, event, detail)``; ``adjustments``
    ``(patient_id, drug, day, "<event>: <action>"[, event_day[, started]])``;
    ``patients`` ``(patient_id, status, exit_day, exit_reason)``.
    """
    log = pd.DataFrame(
        [(day, pid, day, event, detail) for pid, day, event, detail in events],
        columns=["trial_day", "patient_id", "day", "event", "detail"],
    ).sort_values(["trial_day", "patient_id"], kind="stable", ignore_index=True)
    return CohortResult(
        patients=pd.DataFrame(
            list(patients), columns=["patient_id", "status", "exit_day", "exit_reason"]
        ),
        events=log,
        screened=pd.DataFrame(),
        adjustments=pd.DataFrame(
            [
                Adjustment(*a[:4], a[3].split(": ")[1], a[3].split(": ")[0], *a[4:])
                for a in adjustments
            ],
            columns=[f.name for f in fields(Adjustment)],
        ),
        schedules=schedules,
        drugs=drugs,
    )


def _daily_from_nonmem(records: pd.DataFrame, end_day: int) -> np.ndarray:
    """Daily dose (mg/day) on days ``0 .. end_day - 1`` from one drug's dose records."""
    daily = np.zeros(end_day)
    for r in records.itertuples():
        times = r.TIME + np.arange(r.ADDL + 1) * r.II
        # a whole number of II per day: k * II lands on day floor(k * II) up to rounding
        np.add.at(daily, np.floor(times + 1e-9).astype(int), r.AMT)
    return daily


# ---------------------------------------------------------------------------
# NONMEM
# ---------------------------------------------------------------------------


def test_nonmem_columns_ids_and_order(tables: dict[str, pd.DataFrame]) -> None:
    nm = tables["nonmem"]
    cols = ["ID", "TIME", "EVID", "AMT", "II", "ADDL", "CMT", "DRUG", "REP", "USUBJID"]
    assert list(nm.columns) == cols
    assert (nm["EVID"] == 1).all() and (nm["CMT"] == 1).all() and (nm["REP"] == REPLICATE).all()
    assert (nm["AMT"] > 0).all() and (nm["ADDL"] >= 0).all()
    assert set(nm["DRUG"]) == {"PREDNISONE", "MMF"}
    pid = nm["USUBJID"].str[-4:].astype(int)
    assert (nm["ID"] == REPLICATE * 10000 + pid).all()
    ordered = nm.sort_values(["ID", "TIME", "DRUG"], ignore_index=True)
    pd.testing.assert_frame_equal(nm, ordered)


def test_nonmem_ids_stay_unique_when_replicates_are_concatenated(cohort: CohortResult) -> None:
    both = pd.concat([nonmem_dosing(cohort, r, STUDY) for r in (0, 1, 12)], ignore_index=True)
    pairs = both[["ID", "USUBJID"]].drop_duplicates()
    assert pairs["ID"].is_unique and pairs["USUBJID"].is_unique
    assert len(pairs) == 3 * len(cohort.schedules)
    assert nonmem_id(12, 7) == 120007


def test_nonmem_records_reproduce_each_patients_cumulative_dose(
    cohort: CohortResult, tables: dict[str, pd.DataFrame]
) -> None:
    nm = tables["nonmem"]
    total = (nm["AMT"] * (nm["ADDL"] + 1)).groupby([nm["USUBJID"], nm["DRUG"]]).sum()
    for pid, schedules in cohort.schedules.items():
        for drug, label in (("prednisone", "PREDNISONE"), ("mmf", "MMF")):
            expected = schedules[drug].total_mg
            got = total.get((_subject(pid), label), 0.0)
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-9), (pid, drug)


def test_nonmem_time_ii_addl_reproduce_the_daily_dose_every_day(
    cohort: CohortResult, tables: dict[str, pd.DataFrame]
) -> None:
    nm = tables["nonmem"]
    for pid, schedules in cohort.schedules.items():
        for label, drug in NONMEM_DRUG.items():
            schedule = schedules[drug]
            mine = nm[(nm["USUBJID"] == _subject(pid)) & (nm["DRUG"] == label)]
            assert (mine["II"] == 1 / schedule.doses_per_day).all()
            daily = _daily_from_nonmem(mine, schedule.end_day)
            np.testing.assert_allclose(daily, schedule.daily_doses(), rtol=1e-12, atol=1e-9)


def test_nonmem_hand_built_taper_hold_and_three_times_daily() -> None:
    """Zero-dose segments give no record; TID doses are a third of the daily dose 1/3 day apart."""
    pred = Schedule((0, 3, 5), (30.0, 20.0, 0.0), 7)
    mmf = Schedule((0, 2, 4), (1500.0, 0.0, 3000.0), 6, doses_per_day=3)
    result = _hand_built({7: {"prednisone": pred, "mmf": mmf}})
    nm = nonmem_dosing(result, 2, "S")
    rows = list(nm[["ID", "TIME", "EVID", "AMT", "ADDL", "CMT", "DRUG"]].itertuples(index=False))
    assert rows == [
        (20007, 0, 1, 500.0, 5, 1, "MMF"),
        (20007, 0, 1, 30.0, 2, 1, "PREDNISONE"),
        (20007, 3, 1, 20.0, 1, 1, "PREDNISONE"),
        (20007, 4, 1, 1000.0, 5, 1, "MMF"),
    ]
    assert list(nm["II"]) == pytest.approx([1 / 3, 1.0, 1.0, 1 / 3])
    assert set(nm["USUBJID"]) == {"S-R0002-0007"}
    np.testing.assert_allclose(
        _daily_from_nonmem(nm[nm["DRUG"] == "MMF"], 6), mmf.daily_doses(), rtol=1e-12
    )


def test_nonmem_id_rejects_patient_ids_that_would_collide() -> None:
    with pytest.raises(ValueError, match="patient_id 10000"):
        nonmem_id(0, 10000)
    result = _hand_built(
        {1: {"prednisone": Schedule.constant(5.0, 3), "mmf": Schedule.constant(0, 3)}}
    )
    with pytest.raises(ValueError, match="replicate"):
        nonmem_dosing(result, -1, STUDY)


# ---------------------------------------------------------------------------
# EX
# ---------------------------------------------------------------------------


def test_ex_columns_and_sequence(tables: dict[str, pd.DataFrame]) -> None:
    ex = tables["ex"]
    assert list(ex.columns) == [
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "EXSEQ",
        "EXTRT",
        "EXDOSE",
        "EXDOSU",
        "EXDOSFRQ",
        "EXROUTE",
        "EXSTDY",
        "EXENDY",
        "EXADJ",
    ]
    assert (ex["DOMAIN"] == "EX").all() and (ex["STUDYID"] == STUDY).all()
    assert (ex["EXDOSU"] == "mg").all() and (ex["EXROUTE"] == "ORAL").all()
    assert set(ex["EXTRT"]) == {"PREDNISONE", "MYCOPHENOLATE MOFETIL"}
    freq = ex.groupby("EXTRT")["EXDOSFRQ"].unique()
    assert list(freq["PREDNISONE"]) == ["QD"] and list(freq["MYCOPHENOLATE MOFETIL"]) == ["BID"]
    for _, mine in ex.groupby("USUBJID"):
        assert list(mine["EXSEQ"]) == list(range(1, len(mine) + 1))
        assert mine["EXSTDY"].is_monotonic_increasing
    assert (ex["EXDOSE"] == 0).any()  # interruptions are kept


def test_ex_intervals_tile_treatment_and_give_the_cumulative_dose(
    cohort: CohortResult, tables: dict[str, pd.DataFrame]
) -> None:
    ex = tables["ex"]
    for pid, schedules in cohort.schedules.items():
        for label, drug in EXTRT_DRUG.items():
            schedule = schedules[drug]
            n = schedule.doses_per_day
            mine = ex[(ex["USUBJID"] == _subject(pid)) & (ex["EXTRT"] == label)]
            start, end = mine["EXSTDY"].to_numpy(), mine["EXENDY"].to_numpy()
            assert start[0] == 1 and end[-1] == schedule.end_day
            assert (end >= start).all()
            np.testing.assert_array_equal(start[1:], end[:-1] + 1)  # no gap, no overlap
            days = end - start + 1
            total = float((mine["EXDOSE"].to_numpy() * n * days).sum())
            assert total == pytest.approx(schedule.total_mg, rel=1e-12, abs=1e-9)
            daily = np.repeat(mine["EXDOSE"].to_numpy() * n, days)
            np.testing.assert_allclose(daily, schedule.daily_doses(), rtol=1e-12)


def test_every_adjustment_that_took_effect_appears_as_an_exadj(
    cohort: CohortResult, tables: dict[str, pd.DataFrame]
) -> None:
    ex = tables["ex"]
    label = {"prednisone": "PREDNISONE", "mmf": "MYCOPHENOLATE MOFETIL"}
    adj = cohort.adjustments
    assert set(adj["drug"]) == {"prednisone", "mmf"}
    assert len(adj) > 50
    exits = cohort.patients.set_index("patient_id")
    shown = 0
    for a in adj.itertuples():
        end = cohort.schedules[a.patient_id][a.drug].end_day
        if a.day >= end:
            # the patient left on the whole day before the change: it never took effect
            assert math.floor(exits.loc[a.patient_id, "exit_day"]) + 1 == a.day
            continue
        rows = ex[
            (ex["USUBJID"] == _subject(a.patient_id))
            & (ex["EXTRT"] == label[a.drug])
            & (ex["EXSTDY"] == a.day + 1)
        ]
        assert len(rows) == 1
        sentence = f"{exadj_words(a.action, a.started)}: {_term(a.event)}"
        assert sentence in rows["EXADJ"].iloc[0].split("; ")
        shown += 1
    assert shown > 50
    assert ex["EXADJ"].str.len().max() <= EXADJ_MAX


def test_every_exadj_is_an_adjustment_or_the_end_of_a_hold(
    cohort: CohortResult, tables: dict[str, pd.DataFrame]
) -> None:
    ex = tables["ex"]
    adj = cohort.adjustments
    made = {
        (_subject(a.patient_id), a.day + 1, f"{exadj_words(a.action, a.started)}: {_term(a.event)}")
        for a in adj.itertuples()
    }
    held = {_term(a.event) for a in adj.itertuples() if a.action == "mmf_hold"}
    resumptions = 0
    for row in ex[ex["EXADJ"] != ""].itertuples():
        for reason in row.EXADJ.split("; "):
            if reason.startswith("Resumed after interruption for "):
                resumptions += 1
                assert reason.removeprefix("Resumed after interruption for ") in held
                assert row.EXTRT == "MYCOPHENOLATE MOFETIL" and row.EXDOSE > 0
                previous = ex[(ex["USUBJID"] == row.USUBJID) & (ex["EXSEQ"] < row.EXSEQ)]
                previous = previous[previous["EXTRT"] == row.EXTRT].iloc[-1]
                assert previous["EXDOSE"] == 0 and previous["EXENDY"] == row.EXSTDY - 1
            else:
                assert (row.USUBJID, row.EXSTDY, reason) in made
    assert resumptions > 10


def test_ex_without_adverse_events_has_one_row_per_segment_and_no_exadj() -> None:
    calm = {
        "adverse_events": {},
        "disease": {"remove": True},
        "dropout": {"withdrawal_per_year": 0.0, "death_per_year": 0.0},
    }
    result = simulate_cohort(load_scenario(BASE, calm), 5, seed=1)
    ex = sdtm_ex(result, 0, STUDY)
    assert (ex["EXADJ"] == "").all()
    n_segments = sum(len(s.segments()) for d in result.schedules.values() for s in d.values())
    assert len(ex) == n_segments


def test_ex_hand_built_hold_resumption_and_reduction_during_titration() -> None:
    """A hold and its resumption carry EXADJ; a reduction on an unchanged dose splits the row."""
    pred = Schedule((0, 28), (60.0, 55.0), 60)
    # leukopenia hold on day 10 for 14 days, resumed at 1.5 g/day
    held = Schedule((0, 10, 24), (2000.0, 0.0, 1500.0), 60, doses_per_day=2)
    # GI intolerance on day 4 lowers the ceiling to 1.5 g/day during titration
    reduced = Schedule((0, 14), (1000.0, 1500.0), 40, doses_per_day=2)
    result = _hand_built(
        {
            1: {"prednisone": pred, "mmf": held},
            2: {"prednisone": pred.truncated(40), "mmf": reduced},
        },
        adjustments=[
            (2, "mmf", 4, "gi_intolerance: mmf_reduce"),
            (1, "mmf", 10, "leukopenia: mmf_hold"),
        ],
    )
    ex = sdtm_ex(result, 0, "S")
    cols = ["USUBJID", "EXSEQ", "EXTRT", "EXDOSE", "EXDOSFRQ", "EXSTDY", "EXENDY", "EXADJ"]
    mmf, pred_ = "MYCOPHENOLATE MOFETIL", "PREDNISONE"
    assert [tuple(r) for r in ex[cols].itertuples(index=False)] == [
        ("S-R0000-0001", 1, mmf, 1000.0, "BID", 1, 10, ""),
        ("S-R0000-0001", 2, pred_, 60.0, "QD", 1, 28, ""),
        ("S-R0000-0001", 3, mmf, 0.0, "BID", 11, 24, "Drug interrupted: leukopenia"),
        ("S-R0000-0001", 4, mmf, 750.0, "BID", 25, 60, "Resumed after interruption for leukopenia"),
        ("S-R0000-0001", 5, pred_, 55.0, "QD", 29, 60, ""),
        ("S-R0000-0002", 1, mmf, 500.0, "BID", 1, 4, ""),
        ("S-R0000-0002", 2, pred_, 60.0, "QD", 1, 28, ""),
        ("S-R0000-0002", 3, mmf, 500.0, "BID", 5, 14, "Dose reduced: gastrointestinal intolerance"),
        ("S-R0000-0002", 4, mmf, 750.0, "BID", 15, 40, ""),
        ("S-R0000-0002", 5, pred_, 55.0, "QD", 29, 40, ""),
    ]


def test_ex_hold_then_stop_has_no_resumption() -> None:
    """MMF held on day 5 and stopped the same day: two zero rows, no resumption."""
    mmf = Schedule((0, 5), (2000.0, 0.0), 30, doses_per_day=2)
    result = _hand_built(
        {1: {"prednisone": Schedule.constant(10.0, 30), "mmf": mmf}},
        adjustments=[(1, "mmf", 5, "leukopenia: mmf_hold"), (1, "mmf", 5, "leukopenia: mmf_stop")],
    )
    ex = sdtm_ex(result, 0, "S")
    rows = ex[ex["EXTRT"] == "MYCOPHENOLATE MOFETIL"][["EXDOSE", "EXSTDY", "EXENDY", "EXADJ"]]
    assert [tuple(r) for r in rows.itertuples(index=False)] == [
        (1000.0, 1, 5, ""),
        (0.0, 6, 30, "Drug interrupted: leukopenia; Drug withdrawn: leukopenia"),
    ]


def test_exadj_of_many_reasons_on_one_day_is_cut_to_the_transport_limit() -> None:
    """Ten events reduce MMF on one day: their sentences joined pass 200 characters."""
    events = ["ild_flare", "ild_relapse", "gi_intolerance", "serious_infection"]
    events += [f"very_long_adverse_event_name_{i}" for i in range(6)]
    mmf = Schedule((0, 5), (2000.0, 1500.0), 30, doses_per_day=2)
    result = _hand_built(
        {1: {"prednisone": Schedule.constant(10.0, 30), "mmf": mmf}},
        adjustments=[(1, "mmf", 5, f"{e}: mmf_reduce", 4.5) for e in events],
    )
    twice = [sdtm_ex(result, 0, "S")["EXADJ"].iloc[2] for _ in range(2)]
    assert twice[0] == twice[1]  # deterministic
    assert len(twice[0]) == EXADJ_MAX and twice[0].endswith("...")
    assert twice[0].startswith(
        "Dose reduced: acute exacerbation of interstitial lung disease; "
        "Dose reduced: relapse of interstitial lung disease; "
    )


# ---------------------------------------------------------------------------
# AE
# ---------------------------------------------------------------------------


def test_ae_records_match_the_event_log_one_to_one(
    cohort: CohortResult, tables: dict[str, pd.DataFrame]
) -> None:
    ae = tables["ae"]
    assert list(ae.columns) == [
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "AESEQ",
        "AETERM",
        "AEDECOD",
        "AESTDY",
        "AEACN",
        "AEOUT",
        "AEACN1",
        "AEACN2",
    ]
    events = cohort.events[~cohort.events["event"].isin(NOT_AE)]
    assert len(ae) == len(events) > 100
    for pid, mine in events.groupby("patient_id"):
        got = ae[ae["USUBJID"] == _subject(int(pid))]
        assert list(got["AESEQ"]) == list(range(1, len(mine) + 1))
        assert list(got["AEDECOD"]) == list(mine["event"])
        assert list(got["AESTDY"]) == [math.floor(d) + 1 for d in mine["day"]]
    assert set(ae["AEACN1"]) | set(ae["AEACN2"]) >= set(AEACN_ORDER)
    assert MULTIPLE in set(ae["AEACN"])
    terms = dict(zip(ae["AEDECOD"], ae["AETERM"], strict=True))
    assert terms["serious_infection"] == "Serious infection"


def test_ae_outcome_is_fatal_exactly_for_deaths_from_an_adverse_event(
    cohort: CohortResult, tables: dict[str, pd.DataFrame]
) -> None:
    ae, p = tables["ae"], cohort.patients
    died_of_ae = p[(p["status"] == "died") & (p["exit_reason"] != "death")]
    fatal = ae[ae["AEOUT"] == "FATAL"]
    assert len(died_of_ae) > 0
    assert sorted(fatal["USUBJID"]) == sorted(_subject(i) for i in died_of_ae["patient_id"])
    assert list(fatal["AEDECOD"]) == list(died_of_ae.sort_values("patient_id")["exit_reason"])
    assert set(ae["AEOUT"]) == {"FATAL", "UNKNOWN"}
    # the fatal event is each such patient's last
    last = ae.groupby("USUBJID")["AESEQ"].max()
    assert list(fatal["AESEQ"]) == list(last[fatal["USUBJID"]])
    assert (fatal["AEACN"] == "DRUG WITHDRAWN").all()


def test_ae_action_taken_hand_built() -> None:
    """Each drug's action is what the event's actions did to it (matched by the event's
    time, not its day); AEACN their one value, else MULTIPLE; an exit withdraws."""
    end = {"prednisone": Schedule.constant(10.0, 40), "mmf": Schedule.constant(2000.0, 40, 2)}
    # patient 1: MMF held on day 11, stopped on day 13; left on day 20 (as given: to day 20)
    held = {
        "prednisone": Schedule.constant(10.0, 21),
        "mmf": Schedule((0, 11), (2000.0, 0.0), 21, 2),
    }
    # patient 6: prednisone over after day 9, MMF held from day 16 for 14 days
    tapered = {
        "prednisone": Schedule((0, 10), (10.0, 0.0), 40),
        "mmf": Schedule((0, 16, 30), (2000.0, 0.0, 2000.0), 40, 2),
    }
    events = [
        (1, 0.0, "enrolled", ""),
        (1, 5.5, "gi_intolerance", ""),
        (1, 5.5, "mmf_reduced", "MMF at most 1500 mg/day from day 6 (gi_intolerance)"),
        (1, 7.2, "hyperglycaemia", ""),
        (1, 10.1, "serious_infection", ""),
        (1, 10.1, "mmf_held", "MMF held for 14 days from day 11 (serious_infection)"),
        (1, 12.3, "leukopenia", ""),
        (1, 12.3, "mmf_held", "MMF held for 14 days from day 13 (leukopenia)"),
        (1, 12.3, "mmf_stopped", "MMF stopped from day 13 (leukopenia)"),
        (1, 20.7, "ild_flare", ""),
        (1, 20.7, "died", "ild_flare"),
        (2, 0.0, "enrolled", ""),
        (2, 3.0, "ild_flare", ""),
        (2, 3.0, "prednisone_reescalated", "prednisone 60 mg/day from day 4 (ild_flare)"),
        (2, 8.4, "gi_intolerance", ""),
        (2, 8.4, "discontinued", "gi_intolerance"),
        (3, 0.0, "enrolled", ""),
        (3, 4.2, "serious_infection", ""),
        (3, 4.2, "withdrawn", "serious_infection"),
        (4, 0.0, "enrolled", ""),
        (4, 2.5, "hyperglycaemia", ""),
        (4, 9.9, "withdrawn", "withdrawal"),
        (5, 0.0, "enrolled", ""),
        (5, 3.3, "serious_infection", ""),
        (5, 3.3, "mmf_held", "MMF held for 14 days from day 4 (serious_infection)"),
        (5, 30.0, "died", "death"),
        (6, 0.0, "enrolled", ""),
        (6, 15.0, "leukopenia", ""),
        (6, 15.0, "mmf_held", "MMF held for 14 days from day 16 (leukopenia)"),
        (6, 20.0, "hyperglycaemia", ""),
        (7, 0.0, "enrolled", ""),
        (7, 5.2, "gi_intolerance", ""),
        (7, 5.2, "mmf_reduced", "MMF at most 1500 mg/day from day 6 (gi_intolerance)"),
        (7, 5.8, "gi_intolerance", ""),  # the same whole day, no action
    ]
    adjustments = [
        (1, "mmf", 6, "gi_intolerance: mmf_reduce", 5.5),
        (1, "mmf", 11, "serious_infection: mmf_hold", 10.1),
        (1, "mmf", 13, "leukopenia: mmf_hold", 12.3),
        (1, "mmf", 13, "leukopenia: mmf_stop", 12.3),
        (2, "prednisone", 4, "ild_flare: prednisone_reescalate", 3.0),
        (5, "mmf", 4, "serious_infection: mmf_hold", 3.3),
        (6, "mmf", 16, "leukopenia: mmf_hold", 15.0),
        (7, "mmf", 6, "gi_intolerance: mmf_reduce", 5.2),
    ]
    schedules = {i: end for i in range(2, 8)} | {1: held, 6: tapered}
    result = _hand_built(schedules, events=events, adjustments=adjustments)
    ae = sdtm_ae(result, 0, "S")
    cols = ["USUBJID", "AESEQ", "AEDECOD", "AESTDY", "AEACN", "AEOUT", "AEACN1", "AEACN2"]
    dnc, dr, di, dw = "DOSE NOT CHANGED", "DOSE REDUCED", "DRUG INTERRUPTED", "DRUG WITHDRAWN"
    na, many = NOT_APPLICABLE, MULTIPLE
    assert [tuple(r) for r in ae[cols].itertuples(index=False)] == [
        ("S-R0000-0001", 1, "gi_intolerance", 6, many, "UNKNOWN", dnc, dr),
        ("S-R0000-0001", 2, "hyperglycaemia", 8, dnc, "UNKNOWN", dnc, dnc),
        ("S-R0000-0001", 3, "serious_infection", 11, many, "UNKNOWN", dnc, di),
        # MMF's last dose was on day 10, but the event's actions stopped it
        ("S-R0000-0001", 4, "leukopenia", 13, many, "UNKNOWN", dnc, dw),
        # died of it: prednisone withdrawn; MMF no longer given
        ("S-R0000-0001", 5, "ild_flare", 21, dw, "FATAL", dw, na),
        ("S-R0000-0002", 1, "ild_flare", 4, many, "UNKNOWN", "DOSE INCREASED", dnc),
        ("S-R0000-0002", 2, "gi_intolerance", 9, dw, "UNKNOWN", dw, dw),
        ("S-R0000-0003", 1, "serious_infection", 5, dw, "UNKNOWN", dw, dw),
        ("S-R0000-0004", 1, "hyperglycaemia", 3, dnc, "UNKNOWN", dnc, dnc),
        ("S-R0000-0005", 1, "serious_infection", 4, many, "UNKNOWN", dnc, di),
        # prednisone over: the one drug given was interrupted; a hold is still on MMF
        ("S-R0000-0006", 1, "leukopenia", 16, di, "UNKNOWN", na, di),
        ("S-R0000-0006", 2, "hyperglycaemia", 21, dnc, "UNKNOWN", na, dnc),
        ("S-R0000-0007", 1, "gi_intolerance", 6, many, "UNKNOWN", dnc, dr),
        ("S-R0000-0007", 2, "gi_intolerance", 6, dnc, "UNKNOWN", dnc, dnc),
    ]
    assert list(ae["AETERM"])[4] == "Acute exacerbation of interstitial lung disease"


def test_a_switch_and_a_rescue_hand_built() -> None:
    """A switch withdraws its drug and starts another (DOSE NOT CHANGED, as an add); EX
    says both in words; a drug not yet given is NOT APPLICABLE."""
    cyc = Drug.fixed("cyclophosphamide", "Cyclophosphamide", Schedule.constant(0.0, 30))
    pred = Schedule.constant(10.0, 30)
    switched = {
        "prednisone": pred,
        "mmf": Schedule((0, 7), (2000.0, 0.0), 30, 2),
        "cyclophosphamide": Schedule((0, 7), (0.0, 100.0), 30),
    }
    rescued = {
        "prednisone": pred,
        "mmf": Schedule.constant(2000.0, 30, 2),
        "cyclophosphamide": Schedule((0, 11), (0.0, 100.0), 30),
    }
    result = _hand_built(
        {1: switched, 2: rescued},
        events=[
            (1, 6.5, "leukopenia", ""),
            (1, 6.5, "drug_switched", "mmf stopped, cyclophosphamide started"),
            (2, 4.0, "hyperglycaemia", ""),
            (2, 10.5, "ild_relapse", ""),
            (2, 10.5, "drug_added", "cyclophosphamide added"),
        ],
        adjustments=[
            (1, "mmf", 7, "leukopenia: switch", 6.5),
            (1, "cyclophosphamide", 7, "leukopenia: switch", 6.5, True),
            (2, "cyclophosphamide", 11, "ild_relapse: add", 10.5),
        ],
        drugs=(PREDNISONE, MMF, cyc),
    )
    ae = sdtm_ae(result, 0, "S")
    cols = ["USUBJID", "AEDECOD", "AEACN", "AEACN1", "AEACN2", "AEACN3"]
    dnc = "DOSE NOT CHANGED"
    assert [tuple(r) for r in ae[cols].itertuples(index=False)] == [
        ("S-R0000-0001", "leukopenia", MULTIPLE, dnc, "DRUG WITHDRAWN", dnc),
        ("S-R0000-0002", "hyperglycaemia", dnc, dnc, dnc, NOT_APPLICABLE),
        ("S-R0000-0002", "ild_relapse", dnc, dnc, dnc, dnc),
    ]
    ex = sdtm_ex(result, 0, "S")
    said = ex.loc[ex["EXADJ"] != "", ["USUBJID", "EXTRT", "EXSTDY", "EXADJ"]]
    assert [tuple(r) for r in said.itertuples(index=False)] == [
        ("S-R0000-0001", "CYCLOPHOSPHAMIDE", 8, "Started in place of another drug: leukopenia"),
        ("S-R0000-0001", "MYCOPHENOLATE MOFETIL", 8, "Switched to another drug: leukopenia"),
        (
            "S-R0000-0002",
            "CYCLOPHOSPHAMIDE",
            12,
            "Rescue therapy: relapse of interstitial lung disease",
        ),
    ]


def _on(schedule: Schedule | None, day: int) -> bool:
    """Whether ``schedule`` gives a dose on some day up to ``day`` and on some day from it."""
    if schedule is None:
        return False
    dosed = np.flatnonzero(schedule.daily_doses() > 0)
    return bool(dosed.size) and dosed[0] <= day <= dosed[-1]


def _check_drug_actions(result: CohortResult, ae: pd.DataFrame) -> int:
    """Each AE's per-drug actions and AEACN, recomputed plainly from the log, the
    adjustments and the daily doses; returns how many AEs had a dose action."""
    rank = {a: i for i, a in enumerate(AEACN_ORDER)}
    adj, ev = result.adjustments, result.events
    events = ev[~ev["event"].isin(NOT_AE)].sort_values("patient_id", kind="stable")
    assert len(events) == len(ae)
    acted = 0
    for (pid, t, name), row in zip(
        events[["patient_id", "day", "event"]].itertuples(index=False),
        ae.itertuples(index=False),
        strict=True,
    ):
        assert row.USUBJID.endswith(f"-{pid:04d}") and name == row.AEDECOD
        mine = adj[(adj["patient_id"] == pid) & (adj["event"] == name) & (adj["event_day"] == t)]
        exits = ev[(ev["patient_id"] == pid) & (ev["day"] == t) & (ev["detail"] == name)]
        left = exits["event"].isin(["withdrawn", "died", "discontinued"]).any()
        acted += len(mine) > 0
        values = []
        for i, drug in enumerate(result.drugs, start=1):
            value = getattr(row, f"AEACN{i}")
            on = _on(result.schedules[pid].get(drug.name), math.floor(t))
            on_it = mine[mine["drug"] == drug.name]
            if left:
                assert value == ("DRUG WITHDRAWN" if on else NOT_APPLICABLE)
            elif len(on_it):
                ranks = [
                    rank[ACTIONS[a].started_aeacn if s else ACTIONS[a].aeacn]
                    for a, s in zip(on_it["action"], on_it["started"], strict=True)
                ]
                assert value == AEACN_ORDER[max(ranks)]
            else:
                assert value == ("DOSE NOT CHANGED" if on else NOT_APPLICABLE)
            values.append(value)
        given = set(values) - {NOT_APPLICABLE}
        # MULTIPLE exactly when the actions with the drugs given differ
        assert (row.AEACN == MULTIPLE) == (len(given) > 1)
        if len(given) == 1:
            assert given.pop() == row.AEACN
        if len(set(mine["drug"])) == 1:  # actions on one drug: the others were not changed
            touched = [d.name for d in result.drugs].index(mine["drug"].iloc[0])
            others = set(values[:touched] + values[touched + 1 :])
            assert others <= {"DOSE NOT CHANGED", NOT_APPLICABLE}
            assert row.AEACN in {values[touched], MULTIPLE}
    return acted


def test_each_drugs_action_is_what_the_events_actions_did_to_it(
    cohort: CohortResult, tables: dict[str, pd.DataFrame]
) -> None:
    assert _check_drug_actions(cohort, tables["ae"]) > 20


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    gi=st.sampled_from([0.5, 3.0]),
    stop=st.sampled_from([0.0, 0.5]),
)
def test_drug_actions_follow_the_adjustments_in_any_cohort(
    seed: int, gi: float, stop: float
) -> None:
    """Any cohort (MMF stopped after leukopenia or not: later events NOT APPLICABLE)."""
    overrides: dict[str, Any] = {
        **HIGH_AE,
        "adverse_events.gi_intolerance.baseline_per_year": gi,
        "adverse_events.leukopenia.actions": [
            {"action": "mmf_hold", "days": 14},
            {"action": "mmf_stop", "probability": stop},
        ],
    }
    result = simulate_cohort(load_scenario(BASE, overrides), 8, seed=seed)
    _check_drug_actions(result, sdtm_ae(result, 0, STUDY))
    assert (sdtm_ex(result, 0, STUDY)["EXADJ"].str.len() <= EXADJ_MAX).all()


@given(st.lists(st.sampled_from([*AEACN_ORDER, NOT_APPLICABLE]), max_size=5))
def test_aeacn_is_the_one_action_or_multiple(values: list[str]) -> None:
    given_ = set(values) - {NOT_APPLICABLE}
    expected = given_.pop() if len(given_) == 1 else (MULTIPLE if given_ else NOT_APPLICABLE)
    assert overall_action(values) == expected
    assert overall_action(reversed(values)) == expected  # whatever the drugs' order


# ---------------------------------------------------------------------------
# DS
# ---------------------------------------------------------------------------


def test_ds_one_row_per_patient_with_the_right_decode(
    cohort: CohortResult, tables: dict[str, pd.DataFrame]
) -> None:
    ds, p = tables["ds"], cohort.patients
    assert list(ds.columns) == [
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "DSSEQ",
        "DSTERM",
        "DSDECOD",
        "DSSTDY",
        "DSREAS",
    ]
    assert len(ds) == len(p) and ds["USUBJID"].is_unique and (ds["DSSEQ"] == 1).all()
    decode = {
        "completed": "COMPLETED",
        "withdrawn": "WITHDRAWAL BY SUBJECT",
        "died": "DEATH",
        "discontinued": "ADVERSE EVENT",
    }
    merged = ds.set_index("USUBJID").loc[[_subject(i) for i in p["patient_id"]]]
    assert list(merged["DSDECOD"]) == [decode[s] for s in p["status"]]
    assert list(merged["DSREAS"]) == list(p["exit_reason"])
    expected_day = [
        364 if s == "completed" else math.floor(d) + 1
        for s, d in zip(p["status"], p["exit_day"], strict=True)
    ]
    assert list(merged["DSSTDY"]) == expected_day
    # the disposition day is the last EX day of the subject
    last_ex = tables["ex"].groupby("USUBJID")["EXENDY"].max()
    assert (merged["DSSTDY"] == last_ex[merged.index]).all()


def test_ds_hand_built_terms() -> None:
    def sched(end: int) -> dict[str, Schedule]:
        return {
            "prednisone": Schedule.constant(10.0, end),
            "mmf": Schedule.constant(2000.0, end, 2),
        }

    result = _hand_built(
        {1: sched(60), 2: sched(21), 3: sched(10), 4: sched(9)},
        patients=[
            (1, "completed", 60.0, ""),
            (2, "died", 20.7, "ild_flare"),
            (3, "withdrawn", 9.9, "withdrawal"),
            (4, "discontinued", 8.4, "gi_intolerance"),
        ],
    )
    ds = sdtm_ds(result, 1, "S")
    cols = ["USUBJID", "DSTERM", "DSDECOD", "DSSTDY", "DSREAS"]
    assert [tuple(r) for r in ds[cols].itertuples(index=False)] == [
        ("S-R0001-0001", "Completed study treatment", "COMPLETED", 60, ""),
        (
            "S-R0001-0002",
            "Died of acute exacerbation of interstitial lung disease",
            "DEATH",
            21,
            "ild_flare",
        ),
        ("S-R0001-0003", "Withdrew from the study", "WITHDRAWAL BY SUBJECT", 10, "withdrawal"),
        (
            "S-R0001-0004",
            "Stopped study treatment for gastrointestinal intolerance",
            "ADVERSE EVENT",
            9,
            "gi_intolerance",
        ),
    ]
    bad = _hand_built({1: sched(5)}, patients=[(1, "ongoing", 5.0, "")])
    with pytest.raises(ValueError, match="ongoing"):
        sdtm_ds(bad, 0, "S")


# ---------------------------------------------------------------------------
# Across tables
# ---------------------------------------------------------------------------


def test_usubjid_is_consistent_across_the_four_tables(
    cohort: CohortResult, tables: dict[str, pd.DataFrame]
) -> None:
    expected = {_subject(i) for i in cohort.patients["patient_id"]}
    assert all(re.fullmatch(rf"{STUDY}-R0003-\d{{4}}", s) for s in expected)
    assert set(tables["ds"]["USUBJID"]) == expected
    assert set(tables["ex"]["USUBJID"]) == expected
    assert set(tables["nonmem"]["USUBJID"]) == expected  # everyone took prednisone
    assert set(tables["ae"]["USUBJID"]) <= expected


def test_an_empty_cohort_gives_empty_tables_with_their_columns() -> None:
    result = simulate_cohort(load_scenario(BASE), 0, seed=1)
    for export in (nonmem_dosing, sdtm_ex, sdtm_ae, sdtm_ds):
        table = export(result, 0, STUDY)
        assert table.empty and len(table.columns) >= 8, export.__name__


def test_units_are_attached_as_metadata(tables: dict[str, pd.DataFrame]) -> None:
    assert tables["nonmem"].attrs["units"] == {"TIME": "day", "AMT": "mg", "II": "day"}
    assert tables["ex"].attrs["units"]["EXDOSE"] == "mg"
