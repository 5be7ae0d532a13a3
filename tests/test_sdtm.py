"""SDTM datasets with dates: the rules they follow, and their SAS transport round trip."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from sim.results.ae_actions import MULTIPLE, NOT_APPLICABLE
from sim.results.exports import AEACN_ORDER, EXADJ_MAX, ae_term
from sim.results.sdtm import (
    AE_DICTIONARY,
    AE_SEVERITY,
    CONVENIENCE_COLUMNS,
    SDTM_LABELS,
    SDTM_TABLES,
    ae_severity,
)
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


def test_suppae_holds_each_drugs_action_and_aeacn_sums_them_up(folder: Path) -> None:
    """SDTMIG, several study treatments: AEACN1, AEACN2 in SUPPAE; AEACN the one value
    or MULTIPLE; AE itself has no per-drug variable."""
    ae, supp = _csv(folder, "ae"), _csv(folder, "suppae")
    assert not [c for c in ae.columns if re.fullmatch(r"AEACN\d+", c)]
    assert set(supp["RDOMAIN"]) == {"AE"} and set(supp["IDVAR"]) == {"AESEQ"}
    assert set(supp["QORIG"]) == {"DERIVED"}
    assert supp["QNAM"].str.len().max() <= 8 and supp["QLABEL"].str.len().max() <= 40
    labels = dict(zip(supp["QNAM"], supp["QLABEL"], strict=True))
    assert labels == {
        "AEACN1": "Action Taken with PREDNISONE",
        "AEACN2": "Action Taken with MYCOPHENOLATE MOFETIL",
    }
    assert set(supp["QVAL"]) <= {*AEACN_ORDER, NOT_APPLICABLE}
    # one record per AE record and drug, each pointing at an AE record
    keys = supp[["USUBJID", "IDVARVAL", "QNAM"]]
    assert not keys.duplicated().any()
    records = set(zip(ae["USUBJID"], ae["AESEQ"], strict=True))
    assert set(zip(supp["USUBJID"], supp["IDVARVAL"], strict=True)) == records
    assert len(supp) == 2 * len(ae)
    wide = supp.pivot(index=["USUBJID", "IDVARVAL"], columns="QNAM", values="QVAL")
    acn = ae.set_index(["USUBJID", "AESEQ"])["AEACN"]
    multiple = 0
    for key, values in wide.iterrows():
        given = set(values) - {NOT_APPLICABLE}
        if len(given) > 1:
            assert acn[key] == MULTIPLE
            multiple += 1
        else:
            assert acn[key] == (given.pop() if given else NOT_APPLICABLE)
    assert multiple > 0 and (acn != MULTIPLE).any()


def test_severity_is_the_declared_default_or_severe_for_an_event_that_ended_the_study(
    folder: Path,
) -> None:
    ae, ds, supp = _csv(folder, "ae"), _csv(folder, "ds"), _csv(folder, "suppds")
    assert set(AE_SEVERITY.values()) <= {"MILD", "MODERATE", "SEVERE"}
    assert set(AE_SEVERITY) == set(AE_DICTIONARY)  # every coded event has a default
    event_of = {ae_term(e): e for e in AE_DICTIONARY}
    reason = dict(zip(supp["USUBJID"], supp["QVAL"], strict=True))  # early exits
    last = ae.groupby("USUBJID")["AESEQ"].transform(lambda s: s.astype(int).max()).astype(str)
    ended = 0
    for row, is_last in zip(ae.itertuples(index=False), last == ae["AESEQ"], strict=True):
        event = event_of[row.AETERM]
        left = bool(is_last) and reason.get(row.USUBJID) == event
        ended += left
        severity = row.AESEV
        assert severity == ("SEVERE" if left else AE_SEVERITY[event]), row
        if row.AEOUT == "FATAL":
            assert left and severity == "SEVERE"
    assert ended > (ae["AEOUT"] == "FATAL").sum() > 0  # withdrawals too
    assert set(ds["DSDECOD"]) >= {"DEATH", "WITHDRAWAL BY SUBJECT"}
    assert ae_severity("an_event_without_default", False) == ""
    assert ae_severity("an_event_without_default", True) == "SEVERE"
    assert ae_severity("hyperglycaemia", False) == "MODERATE"


def test_exadj_is_a_readable_sentence_within_the_transport_limit(folder: Path) -> None:
    ex = _csv(folder, "ex")
    said = ex.loc[ex["EXADJ"] != "", "EXADJ"]
    assert len(said) > 10 and said.str.len().max() <= EXADJ_MAX
    sentence = re.compile(r"^(Resumed after interruption for [a-z].*|[A-Z][a-z -]+: [a-z].*)$")
    for text in said:
        for part in text.split("; "):
            assert sentence.match(part), part
            assert "_" not in part  # the readable term, not the model's name


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
        # the arm is DM's variable: the other domains' CSV carry it for convenience only
        csv = csv.drop(columns=list(CONVENIENCE_COLUMNS.get(name, ())))
        assert list(xpt.columns) == list(csv.columns), name
        assert name == "dm" or "ARM" not in xpt.columns
        for column in csv.columns:
            a, b = xpt[column], csv[column]
            if pd.api.types.is_numeric_dtype(a):
                b = pd.to_numeric(b.replace("", "nan"))
                pd.testing.assert_series_equal(a.astype(float), b.astype(float), check_names=False)
            else:
                assert list(a.fillna("")) == [str(v) for v in b], (name, column)
