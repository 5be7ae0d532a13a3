"""SDTM datasets with dates: DM, and EX, AE, DS completed with ISO 8601 ``--DTC`` dates,
dictionary terms and the variables SDTM names; SUPPDS for the model's exit reasons and
SUPPAE for the action taken with each study drug.

:mod:`sim.results.exports` makes the study-day tables of a replicate; this module
adds what needs the scenario:

* dates: a patient's first dose is on the calendar day of enrolment,
  ``recruitment.start_date + floor(enrol_day)`` (``RFSTDTC``), and study day ``d``
  is ``RFSTDTC + d - 1``. Without ``[recruitment]`` (or a start date) the ``--DTC``
  columns are empty;
* ``AEDECOD``/``AEBODSYS``: MedDRA preferred terms and system organ classes from
  :data:`AE_DICTIONARY`, **the project's choice of terms** for the model's events
  (not a coding by a MedDRA-licensed coder); an event it does not name keeps its
  readable term and the body system ``NOT CODED``. ``AESER`` from the same table;
* ``AESEV``: :data:`AE_SEVERITY`, the project's declared default severity of each event
  (not graded by the model), except that an event the patient died of or left the study
  for is ``SEVERE`` (:func:`ae_severity`); empty for an event it does not name;
* SUPPAE: ``AEACN1``, ``AEACN2``, ... of :func:`sim.results.exports.sdtm_ae` (the action
  taken with each drug, :mod:`sim.results.ae_actions`) move from AE to SUPPAE, one record
  per event and drug (:func:`suppae`);
  ``AEENDY``/``AEENDTC`` where the model knows the end: the day of death of a fatal
  event (otherwise the model does not follow an event's resolution: empty);
* DM, one row per subject: ``RFSTDTC``, ``RFENDTC`` (the day of exit), ``SITEID``
  (the site's index, ``sites.csv``), ``AGE``/``AGEU``, ``SEX``, ``ARMCD``/``ARM``/
  ``ACTARMCD``/``ACTARM`` (``TRT`` and the scenario's description without arms),
  ``DTHFL``/``DTHDTC``;
* DS: ``DSCAT`` (``DISPOSITION EVENT``), ``DSSTDTC``; the non-standard ``DSREAS``
  moves to SUPPDS (``QNAM = "DSREAS"``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import pandas as pd

from sim.drugs import Drug
from sim.results.exports import usubjid
from sim.scenario import Scenario
from sim.trial.cohort import CohortResult

__all__ = [
    "AE_DICTIONARY",
    "AE_SEVERITY",
    "DM_COLUMNS",
    "SDTM_LABELS",
    "SDTM_TABLES",
    "ae_severity",
    "dated",
    "sdtm_dm",
    "suppae",
    "suppds",
    "xpt_bytes",
]

AE_DICTIONARY: dict[str, tuple[str, str, str]] = {
    "serious_infection": ("Infection", "Infections and infestations", "Y"),
    "gi_intolerance": ("Gastrointestinal disorder", "Gastrointestinal disorders", "N"),
    "leukopenia": ("Leukopenia", "Blood and lymphatic system disorders", "N"),
    "hyperglycaemia": ("Hyperglycaemia", "Metabolism and nutrition disorders", "N"),
    "ild_flare": ("Interstitial lung disease", "Respiratory, thoracic and mediastinal disorders",
                  "Y"),
    "ild_relapse": ("Interstitial lung disease", "Respiratory, thoracic and mediastinal disorders",
                    "N"),
}  # fmt: skip
"""The model's event -> (MedDRA preferred term, system organ class, serious Y/N): the
project's choice (a serious infection is serious by definition; an acute exacerbation
of ILD is life-threatening, 39 % fatal; a relapse treated as an outpatient is not)."""

AE_SEVERITY: dict[str, str] = {
    "serious_infection": "SEVERE",  # serious: treated in hospital or intravenously
    "gi_intolerance": "MODERATE",  # diarrhoea, vomiting, pain: enough to lower the MMF dose
    "leukopenia": "MODERATE",  # WBC < 2.5 x 10^9/L (CTCAE grade 2 or worse): MMF held
    "hyperglycaemia": "MODERATE",  # steroid-induced, needing treatment (CTCAE grade 2)
    "ild_flare": "SEVERE",  # acute exacerbation: life-threatening, 39 % fatal
    "ild_relapse": "MODERATE",  # treated as an outpatient by raising prednisone again
}
"""The model's event -> its default CDISC ``AESEV`` (``MILD``, ``MODERATE``, ``SEVERE``):
**the project's choice, not data**. The model does not grade events; each default is the
intensity the event's definition in the scenarios implies (comments), read with the
CTCAE grades where one applies. :func:`ae_severity` makes an event the patient died of
or left the study for ``SEVERE`` whatever its default."""


def ae_severity(event: str, ended_study: bool) -> str:
    """``AESEV`` of an adverse event: ``SEVERE`` if the patient died of it or left the study
    for it (``ended_study``), else its default in :data:`AE_SEVERITY`, else empty."""
    return "SEVERE" if ended_study else AE_SEVERITY.get(event, "")


DM_COLUMNS = [
    "STUDYID", "DOMAIN", "USUBJID", "SUBJID", "RFSTDTC", "RFENDTC", "SITEID", "AGE", "AGEU",
    "SEX", "ARMCD", "ARM", "ACTARMCD", "ACTARM", "DTHFL", "DTHDTC",
]  # fmt: skip


def _first_dose_dates(result: CohortResult, scenario: Scenario) -> dict[int, dt.date | None]:
    rec = scenario.recruitment
    start = rec.start_date if rec is not None else None
    p = result.patients
    return {
        int(pid): None if start is None else start + dt.timedelta(days=math.floor(day))
        for pid, day in zip(p["patient_id"], p["enrol_day"], strict=True)
    }


def _dtc(first: dt.date | float | None, study_day: float) -> str:
    """The ISO 8601 date of ``study_day`` (1 = the first dose); empty without dates."""
    if not isinstance(first, dt.date) or not math.isfinite(study_day):
        return ""
    return (first + dt.timedelta(days=int(study_day) - 1)).isoformat()


def dated(
    tables: dict[str, pd.DataFrame],
    result: CohortResult,
    replicate: int,
    scenario: Scenario,
) -> dict[str, pd.DataFrame]:
    """EX, AE and DS with their ``--DTC`` dates and SDTM variables (module docstring)."""
    study = scenario.registry_id or scenario.name
    by_patient = _first_dose_dates(result, scenario)
    firsts = {usubjid(study, replicate, pid): d for pid, d in by_patient.items()}
    out = dict(tables)
    ex = tables["ex"].copy()
    first = ex["USUBJID"].map(firsts)
    ex.insert(
        ex.columns.get_loc("EXSTDY"),
        "EXSTDTC",
        [_dtc(f, d) for f, d in zip(first, ex["EXSTDY"], strict=True)],
    )
    ex.insert(
        ex.columns.get_loc("EXENDY"),
        "EXENDTC",
        [_dtc(f, d) for f, d in zip(first, ex["EXENDY"], strict=True)],
    )
    out["ex"] = ex
    ae = tables["ae"].copy()
    event = ae["AEDECOD"].astype(str)
    coded = [AE_DICTIONARY.get(e) for e in event]
    ae["AEDECOD"] = [c[0] if c else t for c, t in zip(coded, ae["AETERM"], strict=True)]
    ae.insert(ae.columns.get_loc("AEDECOD") + 1, "AEBODSYS",
              [c[1] if c else "NOT CODED" for c in coded])  # fmt: skip
    ended = _ended_study(ae, event, result, study, replicate)
    ae.insert(ae.columns.get_loc("AEBODSYS") + 1, "AESEV",
              [ae_severity(e, x) for e, x in zip(event, ended, strict=True)])  # fmt: skip
    ae.insert(ae.columns.get_loc("AESEV") + 1, "AESER", [c[2] if c else "" for c in coded])
    first = ae["USUBJID"].map(firsts)
    ae.insert(ae.columns.get_loc("AESTDY"), "AESTDTC",
              [_dtc(f, d) for f, d in zip(first, ae["AESTDY"], strict=True)])  # fmt: skip
    fatal = ae["AEOUT"] == "FATAL"
    end = ae["AESTDY"].where(fatal)  # a fatal event ends with the death, on its day
    ae["AEENDTC"] = [_dtc(f, d) for f, d in zip(first, end, strict=True)]
    # whole days where known, else empty: as text, the checkpoints' columns are of one type
    # (a number in the CSV and in the transport file)
    ae["AEENDY"] = [str(int(d)) if d == d else "" for d in end]
    per_drug = [f"AEACN{i}" for i in range(1, len(result.drugs) + 1)]
    out["suppae"] = suppae(ae, result.drugs)
    out["ae"] = ae.drop(columns=per_drug)
    ds = tables["ds"].copy()
    ds.insert(ds.columns.get_loc("DSTERM"), "DSCAT", "DISPOSITION EVENT")
    first = ds["USUBJID"].map(firsts)
    ds.insert(ds.columns.get_loc("DSSTDY"), "DSSTDTC",
              [_dtc(f, d) for f, d in zip(first, ds["DSSTDY"], strict=True)])  # fmt: skip
    out["suppds"] = suppds(ds)
    out["ds"] = ds.drop(columns="DSREAS")
    out["dm"] = sdtm_dm(result, replicate, scenario, by_patient)
    return out


def _ended_study(
    ae: pd.DataFrame, event: pd.Series, result: CohortResult, study: str, replicate: int
) -> list[bool]:
    """Whether the patient died of each adverse event or left the study for it: it is their
    last event and the reason of their early exit (an exit happens at its event)."""
    p = result.patients
    reason = {
        usubjid(study, replicate, int(pid)): str(r)
        for pid, status, r in zip(p["patient_id"], p["status"], p["exit_reason"], strict=True)
        if status != "completed"
    }
    last = ae["AESEQ"] == ae.groupby("USUBJID")["AESEQ"].transform("max")
    return list(last & (ae["USUBJID"].map(reason).fillna("") == event))


def suppae(ae: pd.DataFrame, drugs: Sequence[Drug]) -> pd.DataFrame:
    """SUPPAE: the action taken with each drug at each adverse event, one record per event
    and drug in ``drugs``' order: ``QNAM`` ``AEACN1``, ``AEACN2``, ... (the columns of
    :func:`sim.results.exports.sdtm_ae`), ``QLABEL`` ``"Action Taken with <EXTRT>"`` (the
    drug's label where EX's name would pass 40 characters)."""
    columns = ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QVAL",
               "QORIG"]  # fmt: skip
    labels = [_qlabel(drug) for drug in drugs]
    rows = [
        (study, "AE", subject, "AESEQ", str(seq), f"AEACN{i}", label, str(value), "DERIVED")
        for study, subject, seq, *values in zip(
            ae["STUDYID"], ae["USUBJID"], ae["AESEQ"],
            *(ae[f"AEACN{i}"] for i in range(1, len(drugs) + 1)), strict=True,
        )
        for i, (label, value) in enumerate(zip(labels, values, strict=True), start=1)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _qlabel(drug: Drug) -> str:
    label = f"Action Taken with {drug.treatment}"
    return label if len(label) <= 40 else f"Action Taken with {drug.label}"[:40]


def suppds(ds: pd.DataFrame) -> pd.DataFrame:
    """SUPPDS: the model's exit reason of each early exit (``QNAM = "DSREAS"``)."""
    early = ds[ds["DSREAS"].fillna("").astype(str) != ""]
    return pd.DataFrame(
        {
            "STUDYID": early["STUDYID"],
            "RDOMAIN": "DS",
            "USUBJID": early["USUBJID"],
            "IDVAR": "DSSEQ",
            "IDVARVAL": early["DSSEQ"].astype(str),
            "QNAM": "DSREAS",
            "QLABEL": "Reason for Disposition Event",
            "QVAL": early["DSREAS"].astype(str),
            "QORIG": "DERIVED",
        }
    ).reset_index(drop=True)


def sdtm_dm(
    result: CohortResult,
    replicate: int,
    scenario: Scenario,
    firsts: dict[int, dt.date | None] | None = None,
) -> pd.DataFrame:
    """DM: one row per subject (module docstring); ``firsts``: each patient's first-dose
    date, if already known."""
    study = scenario.registry_id or scenario.name
    if firsts is None:
        firsts = _first_dose_dates(result, scenario)
    arms = {a.name: (a.label or a.name) for a in scenario.arms}
    rows = []
    p = result.patients
    for _, r in p.iterrows():
        pid = int(r["patient_id"])
        first = firsts[pid]
        exit_day = float(r["exit_day"])
        end_study_day = math.floor(exit_day) + (0 if r["status"] == "completed" else 1)
        arm = str(r["arm"]) if "arm" in p.columns else "TRT"
        label = arms.get(arm, scenario.description or scenario.name)
        died = r["status"] == "died"
        rows.append(
            (
                study,
                "DM",
                usubjid(study, replicate, pid),
                f"{pid:04d}",
                _dtc(first, 1),
                _dtc(first, end_study_day),
                f"{int(r['person']) // 1_000_000:03d}",
                math.floor(float(r["age_years"])),
                "YEARS",
                str(r["sex"]),
                arm[:20].upper(),
                label[:200],
                arm[:20].upper(),
                label[:200],
                "Y" if died else "",
                _dtc(first, end_study_day) if died else "",
            )
        )
    out = pd.DataFrame(rows, columns=DM_COLUMNS)
    return out.astype({"AGE": "int64"})


SDTM_TABLES = ("dm", "ex", "ae", "ds", "suppae", "suppds")
"""The SDTM datasets of a run (CSV always; SAS transport with ``--xpt``)."""

SDTM_LABELS: dict[str, str] = {
    "STUDYID": "Study Identifier", "DOMAIN": "Domain Abbreviation",
    "USUBJID": "Unique Subject Identifier", "SUBJID": "Subject Identifier for the Study",
    "RFSTDTC": "Subject Reference Start Date/Time", "RFENDTC": "Subject Reference End Date/Time",
    "SITEID": "Study Site Identifier", "AGE": "Age", "AGEU": "Age Units", "SEX": "Sex",
    "ARMCD": "Planned Arm Code", "ARM": "Description of Planned Arm",
    "ACTARMCD": "Actual Arm Code", "ACTARM": "Description of Actual Arm",
    "DTHFL": "Subject Death Flag", "DTHDTC": "Date/Time of Death",
    "EXSEQ": "Sequence Number", "EXTRT": "Name of Treatment", "EXDOSE": "Dose",
    "EXDOSU": "Dose Units", "EXDOSFRQ": "Dosing Frequency per Interval",
    "EXROUTE": "Route of Administration", "EXSTDTC": "Start Date/Time of Treatment",
    "EXSTDY": "Study Day of Start of Treatment", "EXENDTC": "End Date/Time of Treatment",
    "EXENDY": "Study Day of End of Treatment", "EXADJ": "Reason for Dose Adjustment",
    "AESEQ": "Sequence Number", "AETERM": "Reported Term for the Adverse Event",
    "AEDECOD": "Dictionary-Derived Term", "AEBODSYS": "Body System or Organ Class",
    "AESEV": "Severity/Intensity", "AESER": "Serious Event",
    "AESTDTC": "Start Date/Time of Adverse Event",
    "AESTDY": "Study Day of Start of Adverse Event",
    "AEACN": "Action Taken with Study Treatment", "AEOUT": "Outcome of Adverse Event",
    "AEENDTC": "End Date/Time of Adverse Event", "AEENDY": "Study Day of End of Adverse Event",
    "DSSEQ": "Sequence Number", "DSCAT": "Category for Disposition Event",
    "DSTERM": "Reported Term for the Disposition Event",
    "DSDECOD": "Standardized Disposition Term", "DSSTDTC": "Start Date/Time of Disposition Event",
    "DSSTDY": "Study Day of Start of Disposition Event",
    "RDOMAIN": "Related Domain Abbreviation", "IDVAR": "Identifying Variable",
    "IDVARVAL": "Identifying Variable Value", "QNAM": "Qualifier Variable Name",
    "QLABEL": "Qualifier Variable Label", "QVAL": "Data Value", "QORIG": "Origin",
}  # fmt: skip
"""SDTM variable labels (at most 40 characters, the transport format's limit)."""


#: Columns the CSV files carry for convenience that are not variables of the domain:
#: the subject's arm is DM's ``ARM``, so EX, AE and DS leave it out of their XPT files.
CONVENIENCE_COLUMNS = {"ex": ("ARM",), "ae": ("ARM",), "ds": ("ARM",)}


def xpt_bytes(name: str, frame: pd.DataFrame) -> bytes:
    """An SDTM table as a SAS transport v5 file (the ``xpt`` extra: pyreadstat), with the
    variable labels of :data:`SDTM_LABELS` and the dataset named after the domain; the
    CSV's :data:`CONVENIENCE_COLUMNS` (not SDTM variables of the domain) are left out."""
    import os
    import tempfile

    try:
        import pyreadstat
    except ImportError:
        from sim.errors import DosesimError

        raise DosesimError("--xpt needs pyreadstat: pip install 'dosesim[xpt]'") from None
    table = frame.drop(columns=[c for c in CONVENIENCE_COLUMNS.get(name, ()) if c in frame])
    for column in table.columns:  # numbers with gaps (AEENDY) as numbers, the rest as text
        if table[column].dtype == object:
            numeric = pd.to_numeric(table[column], errors="coerce")
            if numeric.notna().sum() == table[column].notna().sum() and column.endswith("DY"):
                table[column] = numeric
            else:
                table[column] = table[column].fillna("").astype(str)
    labels = {c: SDTM_LABELS.get(c, c) for c in table.columns}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.xpt")
        pyreadstat.write_xport(table, path, table_name=name.upper(), column_labels=labels,
                               file_format_version=5)  # fmt: skip
        with open(path, "rb") as f:
            return f.read()
