"""The data dictionary of a results folder: every column of every CSV file, described.

``dictionary.csv`` (written beside the files by :meth:`sim.results.folder.ResultsFolder.complete`)
has one row per file and column: ``file, column, label, type, unit, allowed``. The
type is read off the file as written (``integer``, ``number``, ``text``); the label,
unit and allowed values come from :data:`COLUMNS` (exact names, file by file or for
every file) and :data:`PATTERNS` (the columns a scenario names: an adverse event, a
screen-failure criterion, an arm, a visit week, a drug, ...). A column nothing
describes is labelled ``(undescribed)``; the tests keep there being none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from sim.endpoints import ENDPOINTS, TRIAL_ENDPOINTS

__all__ = [
    "COLUMNS",
    "DICTIONARY_COLUMNS",
    "PATTERNS",
    "UNDESCRIBED",
    "describe",
    "dictionary",
    "parquet_bytes",
]

DICTIONARY_COLUMNS = ("file", "column", "label", "type", "unit", "allowed")
UNDESCRIBED = "(undescribed)"

Entry = tuple[str, str, str]  # label, unit, allowed values

_EXITS = "completed; withdrawn; died; discontinued"
_AEACN_DRUG = (
    "DOSE NOT CHANGED; DOSE INCREASED; DOSE REDUCED; DRUG INTERRUPTED; DRUG WITHDRAWN; "
    "NOT APPLICABLE"
)
_ANY: dict[str, Entry] = {
    "replicate": ("replicate trial (0-based)", "", ""),
    "REP": ("replicate trial (0-based)", "", ""),
    "patient_id": ("patient, in order of enrolment in the replicate (1-based)", "", ""),
    "USUBJID": ("unique subject id: STUDYID-Rreplicate-patient", "", ""),
    "STUDYID": ("study identifier (registry id or scenario name)", "", ""),
    "DOMAIN": ("SDTM domain", "", "EX; AE; DS; DM"),
    "arm": ("randomised arm", "", "the scenario's [[arms]] names"),
    "ARM": ("randomised arm", "", "the scenario's [[arms]] names (1.. in NONMEM files)"),
}
COLUMNS: dict[str, dict[str, Entry]] = {
    "patients": {
        "person": ("screened person's index at their site (1,000,000 x site + k)", "", ""),
        "enrol_day": ("day of enrolment, from the trial start", "day", ""),
        "sex": ("sex", "", "F; M"),
        "age_years": ("age at screening", "year", ""),
        "weight_kg": ("body weight at screening", "kg", ""),
        "height_cm": ("height at screening", "cm", ""),
        "fvc_percent": ("FVC at screening", "% predicted", ""),
        "fvc_change": (
            "FVC change from baseline at the landmark, as the estimand counts it",
            "% predicted",
            "",
        ),
        "treg_change": ("Treg change from baseline at its landmark", "% of CD4+", ""),
        "status": ("how the patient left", "", _EXITS),
        "exit_day": ("day of exit (end of treatment if completed), from the first dose", "day", ""),
        "exit_reason": ("the adverse event or dropout that ended follow-up", "", ""),
    },
    "events": {
        "trial_day": ("day from the trial start", "day", ""),
        "day": ("day from the patient's first dose", "day", ""),
        "event": ("what happened: enrolled, an adverse event, an action, an exit", "", ""),
        "detail": ("the event's detail (dose change, reason)", "", ""),
    },
    "replicates": {
        "screened": ("people screened", "person", ""),
        "enrolled": ("patients enrolled", "patient", ""),
        "screen_failures": ("people screened who were not eligible", "person", ""),
        "target_reached": ("target enrolment reached by the enrolment deadline", "", "0; 1"),
        "completed_by_deadline": ("target reached and last visit by the deadline", "", "0; 1"),
        # the milestones a comparison adds (sim.trial.milestones.milestone_columns)
        "target_day_capped": (
            "day the target is reached, the enrolment deadline's if never (restricted mean)",
            "day",
            "",
        ),
        "last_patient_in_day_if_reached": (
            "day of the last patient in, trials reaching the target",
            "day",
            "",
        ),
        "last_patient_last_visit_day_if_reached": (
            "day of the last patient's last visit, trials reaching the target",
            "day",
            "",
        ),
        "completed": ("patients who completed", "patient", ""),
        "withdrawn": ("patients withdrawn", "patient", ""),
        "died": ("patients who died", "patient", ""),
        "discontinued": ("patients who discontinued", "patient", ""),
        "completed_fraction": ("share of the enrolled who completed", "1", "0-1"),
        "patient_years": ("patient-years on study", "year", ""),
    },
    "sites": {
        "index": ("site index (enrolled_site_<index>)", "", ""),
        "name": ("site name", "", ""),
        "activation_day": ("day the site opens, from the trial start (fixed)", "day", ""),
        "activation_day_min": ("earliest opening day (uniform)", "day", ""),
        "activation_day_max": ("latest opening day (uniform)", "day", ""),
        "screening_rate_per_month": ("people screened per month (prior mean)", "1/month", ""),
        "cap": ("most patients the site may enrol", "patient", ""),
    },
    "dosing_nonmem": {
        "ID": ("subject: replicate x 10000 + patient", "", ""),
        "TIME": ("start of the constant-dose stretch, from the first dose", "day", ""),
        "EVID": ("event type", "", "1 dose"),
        "AMT": ("dose per administration", "mg", ""),
        "II": ("interval between administrations", "day", ""),
        "ADDL": ("additional administrations", "", ""),
        "CMT": ("dosing compartment", "", "1"),
        "DRUG": ("the drug", "", "PREDNISONE; MMF; a [drugs] name"),
    },
    "nonmem": {
        "ID": ("subject, 1..N over the file (nonmem_ids.csv)", "", ""),
        "TIME": ("time from the patient's first dose", "h", ""),
        "EVID": ("event type", "", "0 observation; 1 dose"),
        "AMT": ("dose per administration (0 on observations)", "mg", ""),
        "CMT": (
            "compartment: drug i's depot 2i+1, its central 2i+2; disease endpoints after",
            "",
            "",
        ),
        "II": ("interval between administrations (0 without additional doses)", "h", ""),
        "ADDL": ("additional administrations", "", ""),
        "SS": ("steady-state flag", "", "0"),
        "RATE": ("infusion rate (0: bolus)", "mg/h", "0"),
        "DV": ("observation: concentration; FVC; Treg (0 on doses)", "mg/L; % predicted; %", ""),
        "MDV": ("missing dependent variable", "", "0 observation; 1 dose"),
        "DVID": ("what DV observes: 1.. each drug's moiety concentration, then FVC, Treg", "", ""),
        "WT": ("body weight at baseline", "kg", ""),
        "AGE": ("age at baseline", "year", ""),
        "SEX": ("sex", "", "1 female; 0 male"),
        "FVC0": ("FVC at screening", "% predicted", ""),
        "PID": ("the cohort's patient id", "", ""),
    },
    "nonmem_ids": {
        "ID": ("subject of nonmem.csv", "", ""),
        "PID": ("the cohort's patient id", "", ""),
    },
    "dm": {
        "SUBJID": ("subject identifier for the study (the patient id)", "", ""),
        "RFSTDTC": ("reference start date: the first dose", "ISO 8601 date", ""),
        "RFENDTC": ("reference end date: the day of exit or the last dose", "ISO 8601 date", ""),
        "SITEID": ("study site (the site's index, sites.csv)", "", ""),
        "AGE": ("age at screening", "year", ""),
        "AGEU": ("age units", "", "YEARS"),
        "SEX": ("sex", "", "F; M"),
        "ARMCD": ("planned arm code", "", "TRT; the [[arms]] names, upper case"),
        "ACTARMCD": ("actual arm code", "", "as ARMCD"),
        "ACTARM": ("description of actual arm", "", ""),
        "DTHFL": ("subject death flag", "", "Y; empty"),
        "DTHDTC": ("date of death", "ISO 8601 date", ""),
    },
    "suppae": {
        "RDOMAIN": ("related domain", "", "AE"),
        "IDVAR": ("identifying variable", "", "AESEQ"),
        "IDVARVAL": ("identifying variable value: the AE record's AESEQ", "", ""),
        "QNAM": ("qualifier variable name: AEACNi, the i-th study drug", "", "AEACN1; AEACN2; ..."),
        "QLABEL": ("qualifier variable label: Action Taken with <EXTRT>", "", ""),
        "QVAL": ("the action taken with that drug at the event", "", _AEACN_DRUG),
        "QORIG": ("origin", "", "DERIVED"),
    },
    "suppds": {
        "RDOMAIN": ("related domain", "", "DS"),
        "IDVAR": ("identifying variable", "", "DSSEQ"),
        "IDVARVAL": ("identifying variable value", "", ""),
        "QNAM": ("qualifier variable name", "", "DSREAS"),
        "QLABEL": ("qualifier variable label", "", ""),
        "QVAL": ("the model's exit reason: the adverse event, withdrawal or death", "", ""),
        "QORIG": ("origin", "", "DERIVED"),
    },
    "ex": {
        "EXSTDTC": ("start date of the interval", "ISO 8601 date", ""),
        "EXENDTC": ("end date of the interval", "ISO 8601 date", ""),
        "EXSEQ": ("sequence number", "", ""),
        "EXTRT": ("treatment", "", ""),
        "EXDOSE": ("daily dose", "mg", ""),
        "EXDOSU": ("dose unit", "", "mg"),
        "EXDOSFRQ": ("dosing frequency", "", "QD; BID; TID; QID; QnH"),
        "EXROUTE": ("route", "", "ORAL; INTRAVENOUS; SUBCUTANEOUS"),
        "EXSTDY": ("study day of start (day 1 = first dose)", "day", ""),
        "EXENDY": ("study day of end", "day", ""),
        "EXADJ": (
            "reason for the dose adjustment: the action and the adverse event, e.g. Dose "
            "reduced: leukopenia (empty: start of treatment or a step of the plan)",
            "",
            "",
        ),
    },
    "ae": {
        "AESEQ": ("sequence number", "", ""),
        "AETERM": ("reported term", "", ""),
        "AEDECOD": ("dictionary-derived term (MedDRA PT; the project's choice of terms)", "", ""),
        "AESTDY": ("study day of onset", "day", ""),
        "AEACN": (
            "action taken with study treatment: the drugs' one action, or MULTIPLE "
            "(each drug's in suppae.csv)",
            "",
            f"{_AEACN_DRUG}; MULTIPLE",
        ),
        "AESEV": (
            "severity: the project's default for the event (not graded by the model); "
            "SEVERE if the patient died of it or left the study for it; empty: no default",
            "",
            "MILD; MODERATE; SEVERE; empty",
        ),
        "AEOUT": ("outcome", "", "FATAL; UNKNOWN"),
        "AEBODSYS": ("system organ class (MedDRA; the project's choice of terms)", "", ""),
        "AESER": ("serious event", "", "Y; N"),
        "AESTDTC": ("date of onset", "ISO 8601 date", ""),
        "AEENDTC": ("end date where known (a fatal event: the death)", "ISO 8601 date", ""),
        "AEENDY": ("study day of the end where known", "day", ""),
    },
    "ds": {
        "DSSEQ": ("sequence number", "", ""),
        "DSTERM": ("reported term for the disposition event", "", ""),
        "DSDECOD": ("standardised disposition term", "", ""),
        "DSSTDY": ("study day of the disposition event", "day", ""),
        "DSCAT": ("category", "", "DISPOSITION EVENT"),
        "DSSTDTC": ("date of the disposition event", "ISO 8601 date", ""),
    },
    "forecast_replicates": {
        "enrolled": ("patients enrolled by the enrolment deadline", "patient", ""),
        "last_patient_in_day": ("day of the last enrolment, from the trial start", "day", ""),
        "last_patient_last_visit_day": ("day of the last visit, from the trial start", "day", ""),
        "target_reached": ("target reached by the enrolment deadline", "", "0; 1"),
        "completed_by_deadline": ("target reached and last visit by the deadline", "", "0; 1"),
    },
    "forecast_enrolment": {
        "number": ("the enrolment's number in the replicate, in order (1-based)", "", ""),
        "trial_day": (
            "day of enrolment, from the trial start (on or before the as-of day: observed)",
            "day",
            "",
        ),
        "site": ("the site's name", "", "the scenario's [[recruitment.sites]] names"),
    },
    "forecast_sites": {
        "extra_sites": ("sites added like the prior, opening after the as-of date", "site", ""),
        "replicates": ("replicates simulated with that many added sites", "", ""),
        "probability": ("P(target reached and last visit by the deadline)", "1", "0-1"),
        "mcse": ("Monte Carlo standard error of the probability", "1", ""),
    },
    "comparison": {
        "scenario": ("scenario (or variant) name", "", ""),
        "metric": ("the metric compared (a replicates.csv column)", "", ""),
        "n": ("replicates with a value", "", ""),
        "mean": ("mean over replicates", "the metric's", ""),
        "mcse": ("Monte Carlo standard error of the mean", "the metric's", ""),
        "n_pairs": ("replicates with a value in both scenarios", "", ""),
        "difference": ("mean paired difference from the reference scenario", "the metric's", ""),
        "difference_se": ("standard error of the paired difference", "the metric's", ""),
        "paired_low": ("paired interval, low end", "the metric's", ""),
        "paired_high": ("paired interval, high end", "the metric's", ""),
        "unpaired_difference": ("difference of the means", "the metric's", ""),
        "unpaired_low": ("unpaired (Welch) interval, low end", "the metric's", ""),
        "unpaired_high": ("unpaired (Welch) interval, high end", "the metric's", ""),
        "level": ("interval level", "1", ""),
    },
}
"""Exact column names, by file (without ``.csv``); :data:`_ANY` holds those of every file."""

_ANALYSIS = {
    "evaluable": ("patients with a change at the landmark", "patient"),
    "change_mean": ("mean change from baseline at the landmark", "{unit}"),
    "ci_low": ("confidence interval of the change, low end", "{unit}"),
    "ci_high": ("confidence interval of the change, high end", "{unit}"),
    "p_value": ("two-sided p-value", "1"),
    "significant": ("significant at alpha", ""),
}
_UNIT = {"fvc": "% predicted", "treg": "% of CD4+"}
_NAME = {"fvc": "FVC", "treg": "Treg"}


def _analysis(m: re.Match[str]) -> Entry:
    label, unit = _ANALYSIS[m["what"]]
    allowed = "0; 1" if m["what"] == "significant" else ""
    return f"{_NAME[m['marker']]}: {label}", unit.format(unit=_UNIT[m["marker"]]), allowed


PATTERNS: tuple[tuple[str, re.Pattern[str], object], ...] = (
    ("", re.compile(r"^ae_(?P<x>\w+)$"), lambda m: (f"{m['x']} events", "event", "")),
    ("", re.compile(r"^failed_(?P<x>\w+)$"),
     lambda m: (f"people screened who failed {m['x']}", "person", "")),
    ("", re.compile(r"^enrolled_site_(?P<x>\d+)$"),
     lambda m: (f"patients enrolled at site {m['x']} (sites.csv)", "patient", "")),
    ("", re.compile(r"^(?P<key>first_patient_in|last_patient_in|last_patient_last_visit)_day$"),
     lambda m: (f"{m['key'].replace('_', ' ')}, day from the trial start", "day", "")),
    ("", re.compile(r"^(?P<key>first_patient_in|last_patient_in|last_patient_last_visit)_date$"),
     lambda m: (f"{m['key'].replace('_', ' ')}, date", "ISO 8601 date", "")),
    ("", re.compile(rf"^(?P<marker>fvc|treg)_(?P<what>{'|'.join(_ANALYSIS)})$"), _analysis),
    ("", re.compile(r"^(?P<marker>fvc|treg)_week(?P<w>\d+)$"),
     lambda m: (f"{_NAME[m['marker']]} measured at week {m['w']} (empty: not measured)",
                _UNIT[m["marker"]], "")),
    ("", re.compile(r"^(?:median_)?cumulative_(?P<d>[a-z0-9_]+?)_mg(?:_week(?P<w>\d+))?$"),
     lambda m: (f"{'median over patients of ' if m.string.startswith('median_') else ''}"
                f"cumulative {m['d']}" + (f" at week {m['w']}" if m["w"] else " on study"),
                "mg", "")),
    ("", re.compile(r"^(?:median_)?days_(?P<d>[a-z0-9_]+?)_at_or_above_(?P<x>[0-9_]+)mg$"),
     lambda m: (f"days of {m['d']} at or above {m['x'].replace('_', '.')} mg/day", "day", "")),
)  # fmt: skip
"""(file or "" for any, pattern, entry from the match) for the columns a scenario names."""

_ARMS = re.compile(r"^arm_(.+)_enrolled$")
_PER_SCENARIO = re.compile(r"^scenario\d+_")


def describe(file: str, column: str, arms: Iterable[str] = ()) -> Entry:
    """(label, unit, allowed values) of ``column`` of ``file`` (without ``.csv``).

    Parameters
    ----------
    file : str
        The file's name without its extension, e.g. ``"patients"`` (a comparison's
        ``scenario2_patients`` is described as ``patients``).
    column : str
        The column's name.
    arms : iterable of str
        The scenario's arm names, for the ``arm_<arm>_*`` and ``diff_<arm>_*`` columns.
    """
    file = _PER_SCENARIO.sub("", file)  # a comparison's scenario<k>_<table>: as <table>
    found = COLUMNS.get(file, {}).get(column) or _ANY.get(column)
    if found:
        return found
    endpoint = ENDPOINTS.get(column) or TRIAL_ENDPOINTS.get(column)
    if endpoint is not None:
        return endpoint.label, endpoint.unit, ""
    for where, pattern, entry in PATTERNS:
        if where in ("", file):
            m = pattern.match(column)
            if m:
                return entry(m)  # type: ignore[operator]
    for arm in arms:
        for kind, what in (("arm", "arm {a}: "), ("diff", "arm {a} minus the reference: ")):
            prefix = f"{kind}_{arm}_"
            if column.startswith(prefix):
                label, unit, allowed = describe("replicates", column.removeprefix(prefix))
                if label != UNDESCRIBED:
                    return what.format(a=arm) + label, unit, "" if kind == "diff" else allowed
    return UNDESCRIBED, "", ""


def _type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    return "text"


def dictionary(folder: Path, files: Iterable[str], arms: Iterable[str] = ()) -> pd.DataFrame:
    """The dictionary of the CSV ``files`` of ``folder`` (:data:`DICTIONARY_COLUMNS`).

    Each file's types are read from its first 10,000 rows as written; the arms, from the
    ``arm_<name>_enrolled`` columns of the replicate table (and ``arms``).
    """
    arm_names = set(arms)
    rows = []
    frames = {}
    for name in sorted(files):
        if name.endswith(".csv"):
            frames[name] = pd.read_csv(folder / name, nrows=10_000, low_memory=False)
            # the arms, from the columns every arm has (arm_<name>_enrolled)
            arm_names |= {m[1] for c in frames[name].columns if (m := _ARMS.match(str(c)))}
    for name, frame in frames.items():
        stem = name.removesuffix(".csv")
        for column in frame.columns:
            label, unit, allowed = describe(stem, str(column), sorted(arm_names))
            rows.append((name, column, label, _type(frame[column]), unit, allowed))
    return pd.DataFrame(rows, columns=list(DICTIONARY_COLUMNS))


def parquet_bytes(name: str, frame: pd.DataFrame) -> bytes:
    """``frame`` as Parquet (the ``parquet`` extra, pyarrow), each column's label, unit and
    allowed values in its field metadata (``label``, ``unit``, ``allowed``)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    arms = {m[1] for c in frame.columns if (m := _ARMS.match(str(c)))}
    fields = []
    for f in table.schema:
        label, unit, allowed = describe(name, f.name, sorted(arms))
        fields.append(f.with_metadata({"label": label, "unit": unit, "allowed": allowed}))
    table = table.cast(pa.schema(fields, metadata=table.schema.metadata))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()
