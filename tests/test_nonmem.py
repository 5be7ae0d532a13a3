"""The NONMEM-ready dataset: pharmpy builds a model over it, its layout follows NONMEM's
rules, and its dose records give back every patient's realised schedule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.exposure import concentration
from sim.results.nonmem import (
    DATASET_COLUMNS,
    compartments,
    nonmem_dataset,
    number_subjects,
    observation_types,
)
from sim.scenario import load_scenario
from sim.trial.cohort import simulate_cohort
from tests.conftest import BASE

SCENARIO = load_scenario(BASE)


def dataset(scenario=SCENARIO, n: int = 25, seed: int = 3):  # type: ignore[no-untyped-def]
    result = simulate_cohort(scenario, n, seed=seed)
    frame, ids = number_subjects(nonmem_dataset(result, 0, scenario), "TEST")
    return result, frame, ids


def test_pharmpy_builds_a_one_compartment_model_over_the_dataset(tmp_path: Path) -> None:
    modeling = pytest.importorskip(
        "pharmpy.modeling", reason="pharmpy is not installed (pip install -e '.[test]')"
    )
    result, frame, _ = dataset()
    depot, central = compartments(result.drugs)["prednisone"]
    # one drug: its doses and its concentrations (the other columns as NONMEM reads them)
    one = frame[frame["CMT"].isin([depot, central])]
    path = tmp_path / "prednisone.csv"
    one.to_csv(path, index=False)
    model = modeling.create_basic_pk_model("oral", dataset_path=path)
    # (pharmpy counts the subjects with an observation: not those who left before week 13)
    observed = one.loc[one["EVID"] == 0, "ID"].nunique()
    assert modeling.get_number_of_individuals(model) == observed > 0.8 * len(result.patients)
    assert modeling.get_number_of_observations(model) == int((one["EVID"] == 0).sum())
    doses = modeling.get_doses(model)
    kept = one[one["ID"].isin(one.loc[one["EVID"] == 0, "ID"])]
    assert len(doses) == int((kept["EVID"] == 1).sum()) and (doses > 0).all()
    info = model.datainfo
    assert info.id_column.name == "ID" and info.idv_column.name == "TIME"
    assert info.dv_column.name == "DV"


def test_the_layout_follows_nonmems_rules() -> None:
    result, frame, ids = dataset()
    assert tuple(frame.columns) == DATASET_COLUMNS
    assert all(np.issubdtype(t, np.number) for t in frame.dtypes)  # numbers only
    # subjects numbered 1..N (5 digits), each a contiguous block, time ordered within it
    assert list(ids["ID"]) == list(range(1, len(result.patients) + 1))
    assert frame["ID"].is_monotonic_increasing and frame["ID"].max() <= 99_999
    assert frame.groupby("ID")["TIME"].apply(lambda t: t.is_monotonic_increasing).all()
    assert ids["USUBJID"].is_unique
    dose, obs = frame["EVID"] == 1, frame["EVID"] == 0
    assert (dose | obs).all() and (frame["MDV"] == dose.astype(int)).all()
    assert (frame.loc[dose, "AMT"] > 0).all() and (frame.loc[obs, "AMT"] == 0).all()
    assert ((frame["II"] > 0) == (frame["ADDL"] > 0)).all()
    assert (frame.loc[obs, "DVID"] > 0).all() and (frame.loc[dose, "DVID"] == 0).all()
    # at one time, observations come before doses (a pre-dose sample is a trough)
    for _, group in frame.groupby(["ID", "TIME"]):
        assert group["EVID"].is_monotonic_increasing
    # doses go to the drugs' depots, concentrations to their central compartments
    cmts = compartments(result.drugs)
    assert set(frame.loc[dose, "CMT"]) <= {d for d, _ in cmts.values()}
    types = observation_types(result.drugs, SCENARIO)
    assert set(frame.loc[obs, "DVID"]) == {t[0] for t in types.values()}


def test_concentrations_are_the_patients_own_models() -> None:
    result, frame, ids = dataset(n=8)
    types = observation_types(result.drugs, SCENARIO)
    for _, row in ids.iterrows():
        pid = int(row["PID"])
        mine = frame[frame["ID"] == row["ID"]]
        for drug in result.drugs:
            dvid = types[drug.moiety][0]
            obs = mine[mine["DVID"] == dvid]
            expected = concentration(
                result.models[pid][drug.moiety], result.schedules[pid][drug.name], obs["TIME"]
            )
            np.testing.assert_allclose(obs["DV"], expected, rtol=1e-12)
        # FVC as measured, at its visits
        fvc = mine[mine["DVID"] == types["fvc"][0]]
        patient = result.patients.set_index("patient_id").loc[pid]
        for _, obs_row in fvc.iterrows():
            week = int(obs_row["TIME"] / 168)
            assert obs_row["DV"] == patient[f"fvc_week{week}"]


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    start=st.sampled_from([0.5, 0.75, 1.0]),
    gi=st.sampled_from([0.2, 2.0]),
)
def test_the_doses_give_back_each_realised_schedule(seed: int, start: float, gi: float) -> None:
    scenario = load_scenario(
        BASE,
        [
            f"prednisone.start_mg_per_kg={start}",
            f"adverse_events.gi_intolerance.baseline_per_year={gi}",
        ],
    )
    result, frame, ids = dataset(scenario, n=6, seed=seed)
    cmts = compartments(result.drugs)
    exits = result.patients.set_index("patient_id")["exit_day"]
    for _, row in ids.iterrows():
        pid = int(row["PID"])
        doses = frame[(frame["ID"] == row["ID"]) & (frame["EVID"] == 1)]
        for drug in result.drugs:
            mine = doses[doses["CMT"] == cmts[drug.name][0]]
            total = float((mine["AMT"] * (mine["ADDL"] + 1)).sum())
            assert total == pytest.approx(result.schedules[pid][drug.name].total_mg, rel=1e-12)
        # no administration after the day the patient left (doses are taken through it)
        last = doses["TIME"] + doses["II"] * doses["ADDL"]
        assert (last < 24.0 * (math.floor(exits[pid]) + 1)).all()


def test_a_run_writes_the_dataset_and_its_subject_map(tmp_path: Path) -> None:
    from sim.runner import run

    out = tmp_path / "run"
    run(SCENARIO, 3, seed=2, out=out, keep_patients=2)
    frame = pd.read_csv(out / "nonmem.csv")
    ids = pd.read_csv(out / "nonmem_ids.csv")
    assert list(ids.columns) == ["ID", "REP", "PID", "USUBJID"]
    assert set(frame["ID"]) == set(ids["ID"]) and set(ids["REP"]) == {0, 1}
    patients = pd.read_csv(out / "patients.csv")
    assert len(ids) == len(patients)
