"""SDTM datasets with dates: the rules they follow, and their SAS transport round trip."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from sim.results.sdtm import AE_DICTIONARY, SDTM_LABELS, SDTM_TABLES
from tests.conftest import REPO

ARMS = REPO / "scenarios" / "nct05129410_start_dose_arms.toml"
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sdtm") / "run"
    argv = ["run", str(ARMS), "--replicates", "3", "--keep-patients", "3", "--seed", "4",
            "--quiet", "--out", str(out)]  # fmt: skip
    pytest.importorskip("pyreadstat", reason="the xpt extra is not installed")
    assert main([*argv, "--xpt"]) == 0
    return out


def _csv(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{name}.csv", keep_default_na=False, dtype=str)


def test_the_tables_follow_the_sdtm_rules(folder: Path) -> None:
    dm = _csv(folder, "dm")
    patients = pd.read_csv(folder / "patients.csv")
    assert len(dm) == len(patients) and dm["USUBJID"].is_unique  # one row per subject
    for name in SDTM_TABLES:
        table = _csv(folder, name)
        for column in table.columns:
            assert len(column) <= 8 and column.isupper(), (name, column)
            assert len(SDTM_LABELS.get(column, "ARM")) <= 40, column
            if column.endswith("DTC"):
                values = table[column][table[column] != ""]
                assert values.map(lambda v: bool(ISO_DATE.match(v))).all(), (name, column)
            assert table[column].str.len().max() <= 200, (name, column)
    ae = _csv(folder, "ae")
    assert set(ae["AESER"]) <= {"Y", "N"} and (ae["AEBODSYS"] != "").all()
    coded = {pt for pt, _, _ in AE_DICTIONARY.values()}
    assert set(ae["AEDECOD"]) <= coded
    fatal = ae[ae["AEOUT"] == "FATAL"]
    assert (fatal["AEENDY"] == fatal["AESTDY"]).all()
    assert (ae.loc[ae["AEOUT"] != "FATAL", "AEENDY"] == "").all()  # the model does not know
    ds, supp = _csv(folder, "ds"), _csv(folder, "suppds")
    assert "DSREAS" not in ds.columns and set(ds["DSCAT"]) == {"DISPOSITION EVENT"}
    early = ds[ds["DSDECOD"] != "COMPLETED"]
    assert sorted(supp["USUBJID"]) == sorted(early["USUBJID"])
    assert set(supp["QNAM"]) == {"DSREAS"} and set(supp["IDVARVAL"]) == {"1"}
    assert set(dm["ARMCD"]) == {"HIGH", "LOW"}
    assert (dm.loc[dm["DTHFL"] == "Y", "DTHDTC"] != "").all()


def test_dates_are_the_study_days_on_the_calendar(folder: Path) -> None:
    dm = _csv(folder, "dm").set_index("USUBJID")
    start = {s: dt.date.fromisoformat(d) for s, d in dm["RFSTDTC"].items()}
    checks = {
        "ex": [("EXSTDTC", "EXSTDY"), ("EXENDTC", "EXENDY")],
        "ae": [("AESTDTC", "AESTDY")],
        "ds": [("DSSTDTC", "DSSTDY")],
    }
    for name, pairs in checks.items():
        table = _csv(folder, name)
        for dtc, dy in pairs:
            for subject, date, day in zip(table["USUBJID"], table[dtc], table[dy], strict=True):
                expected = start[subject] + dt.timedelta(days=int(day) - 1)
                assert date == expected.isoformat(), (name, subject, dtc)
    # the first dose is the enrolment's calendar day: recruitment.start_date + enrol_day
    patients = pd.read_csv(folder / "patients.csv")
    first = patients.iloc[0]
    subject = f"NCT05129410-R{int(first['replicate']):04d}-{int(first['patient_id']):04d}"
    expected = dt.date(2020, 12, 1) + dt.timedelta(days=int(first["enrol_day"]))
    assert start[subject] == expected


def test_xpt_files_round_trip_with_the_csv_values(folder: Path) -> None:
    for name in SDTM_TABLES:
        xpt = pd.read_sas(folder / f"{name}.xpt", format="xport", encoding="utf-8")
        csv = _csv(folder, name)  # as text: "0001" stays "0001"
        assert list(xpt.columns) == list(csv.columns), name
        for column in csv.columns:
            a, b = xpt[column], csv[column]
            if pd.api.types.is_numeric_dtype(a):
                b = pd.to_numeric(b.replace("", "nan"))
                pd.testing.assert_series_equal(a.astype(float), b.astype(float), check_names=False)
            else:
                assert list(a.fillna("")) == [str(v) for v in b], (name, column)
