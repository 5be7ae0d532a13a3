"""Exports: NONMEM dose records and SDTM EX, AE, DS rows from one replicate's cohort."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim import CohortResult, Schedule, load_scenario, simulate_cohort
from sim.results.exports import (
    AEACN_ORDER,
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
    "mmf_reduced",
    "mmf_held",
    "mmf_stopped",
    "prednisone_reescalated",
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


def _hand_built(
    schedules: dict[int, dict[str, Schedule]],
    events: Sequence[tuple[int, float, str, str]] = (),
    adjustments: Sequence[tuple[int, str, int, str]] = (),
    patients: Sequence[tuple[int, str, float, str]] = (),
) -> CohortResult:
    """A CohortResult from hand-written rows (every patient enrolled on trial day 0).

    ``events`` are ``(patient_id, day, event, detail)``; ``adjustments``
    ``(patient_id, drug, day, reason)``; ``patients`` ``(patient_id, status,
    exit_day, exit_reason)``.
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
            [(*a, a[3].split(": ")[-1]) for a in adjustments],  # the action's name
            columns=["patient_id", "drug", "day", "reason", "action"],
        ),
        schedules=schedules,
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
        assert a.reason in rows["EXADJ"].iloc[0].split("; ")
        shown += 1
    assert shown > 50


def test_every_exadj_is_an_adjustment_or_the_end_of_a_hold(
    cohort: CohortResult, tables: dict[str, pd.DataFrame]
) -> None:
    ex = tables["ex"]
    adj = cohort.adjustments
    made = {(_subject(a.patient_id), a.day + 1, a.reason) for a in adj.itertuples()}
    resumptions = 0
    for row in ex[ex["EXADJ"] != ""].itertuples():
        for reason in row.EXADJ.split("; "):
            if reason.endswith(", resumed"):
                resumptions += 1
                assert reason.endswith(": mmf_hold, resumed")
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
        ("S-R0000-0001", 3, mmf, 0.0, "BID", 11, 24, "leukopenia: mmf_hold"),
        ("S-R0000-0001", 4, mmf, 750.0, "BID", 25, 60, "leukopenia: mmf_hold, resumed"),
        ("S-R0000-0001", 5, pred_, 55.0, "QD", 29, 60, ""),
        ("S-R0000-0002", 1, mmf, 500.0, "BID", 1, 4, ""),
        ("S-R0000-0002", 2, pred_, 60.0, "QD", 1, 28, ""),
        ("S-R0000-0002", 3, mmf, 500.0, "BID", 5, 14, "gi_intolerance: mmf_reduce"),
        ("S-R0000-0002", 4, mmf, 750.0, "BID", 15, 40, ""),
        ("S-R0000-0002", 5, pred_, 55.0, "QD", 29, 40, ""),
    ]


def test_ex_hold_then_stop_has_no_resumption() -> None:
    """MMF held on day 5 and stopped the same day: two zero rows, no ', resumed'."""
    mmf = Schedule((0, 5), (2000.0, 0.0), 30, doses_per_day=2)
    result = _hand_built(
        {1: {"prednisone": Schedule.constant(10.0, 30), "mmf": mmf}},
        adjustments=[(1, "mmf", 5, "leukopenia: mmf_hold"), (1, "mmf", 5, "leukopenia: mmf_stop")],
    )
    ex = sdtm_ex(result, 0, "S")
    rows = ex[ex["EXTRT"] == "MYCOPHENOLATE MOFETIL"][["EXDOSE", "EXSTDY", "EXENDY", "EXADJ"]]
    assert [tuple(r) for r in rows.itertuples(index=False)] == [
        (1000.0, 1, 5, ""),
        (0.0, 6, 30, "leukopenia: mmf_hold; leukopenia: mmf_stop"),
    ]


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
    ]
    events = cohort.events[~cohort.events["event"].isin(NOT_AE)]
    assert len(ae) == len(events) > 100
    for pid, mine in events.groupby("patient_id"):
        got = ae[ae["USUBJID"] == _subject(int(pid))]
        assert list(got["AESEQ"]) == list(range(1, len(mine) + 1))
        assert list(got["AEDECOD"]) == list(mine["event"])
        assert list(got["AESTDY"]) == [math.floor(d) + 1 for d in mine["day"]]
    assert set(ae["AEACN"]) == set(AEACN_ORDER)
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
    """AEACN is the most severe action at the event's time; an exit caused by it withdraws."""
    end = {"prednisone": Schedule.constant(10.0, 40), "mmf": Schedule.constant(2000.0, 40, 2)}
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
        (1, 20.7, "prednisone_reescalated", "prednisone 60 mg/day from day 21 (ild_flare)"),
        (1, 20.7, "died", "ild_flare"),
        (2, 0.0, "enrolled", ""),
        (2, 3.0, "ild_flare", ""),
        (2, 3.0, "prednisone_reescalated", "prednisone 60 mg/day from day 4 (ild_flare)"),
        (2, 8.4, "gi_intolerance", ""),
        (2, 8.4, "discontinued", "gi_intolerance"),
        (3, 0.0, "enrolled", ""),
        (3, 4.2, "serious_infection", ""),
        (3, 4.2, "mmf_held", "MMF held for 14 days from day 5 (serious_infection)"),
        (3, 4.2, "withdrawn", "serious_infection"),
        (4, 0.0, "enrolled", ""),
        (4, 2.5, "hyperglycaemia", ""),
        (4, 9.9, "withdrawn", "withdrawal"),
        (5, 0.0, "enrolled", ""),
        (5, 3.3, "serious_infection", ""),
        (5, 3.3, "mmf_held", "MMF held for 14 days from day 4 (serious_infection)"),
        (5, 30.0, "died", "death"),
    ]
    result = _hand_built({i: end for i in range(1, 6)}, events=events)
    ae = sdtm_ae(result, 0, "S")
    cols = ["USUBJID", "AESEQ", "AEDECOD", "AESTDY", "AEACN", "AEOUT"]
    assert [tuple(r) for r in ae[cols].itertuples(index=False)] == [
        ("S-R0000-0001", 1, "gi_intolerance", 6, "DOSE REDUCED", "UNKNOWN"),
        ("S-R0000-0001", 2, "hyperglycaemia", 8, "DOSE NOT CHANGED", "UNKNOWN"),
        ("S-R0000-0001", 3, "serious_infection", 11, "DRUG INTERRUPTED", "UNKNOWN"),
        ("S-R0000-0001", 4, "leukopenia", 13, "DRUG WITHDRAWN", "UNKNOWN"),
        ("S-R0000-0001", 5, "ild_flare", 21, "DRUG WITHDRAWN", "FATAL"),
        ("S-R0000-0002", 1, "ild_flare", 4, "DOSE INCREASED", "UNKNOWN"),
        ("S-R0000-0002", 2, "gi_intolerance", 9, "DRUG WITHDRAWN", "UNKNOWN"),
        ("S-R0000-0003", 1, "serious_infection", 5, "DRUG WITHDRAWN", "UNKNOWN"),
        ("S-R0000-0004", 1, "hyperglycaemia", 3, "DOSE NOT CHANGED", "UNKNOWN"),
        ("S-R0000-0005", 1, "serious_infection", 4, "DRUG INTERRUPTED", "UNKNOWN"),
    ]
    assert list(ae["AETERM"])[4] == "Acute exacerbation of interstitial lung disease"


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
