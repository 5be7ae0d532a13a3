"""One replicate's cohort as the tables the field reads: NONMEM dose records and SDTM EX, AE, DS.

Pure functions from a :class:`~sim.trial.cohort.CohortResult` (with the replicate
index and the study id) to pandas DataFrames; writing them is the caller's
job. They are meant for the first few kept replicates, one replicate at a
time; tables of several replicates concatenate without clashes because the
subject keys carry the replicate:

* ``USUBJID`` is ``f"{study_id}-R{replicate:04d}-{patient_id:04d}"`` in every
  table, e.g. ``NCT05129410-R0003-0017``;
* the NONMEM ``ID`` is ``replicate * 10000 + patient_id`` (:func:`nonmem_id`),
  an integer unique across replicates as long as a replicate has fewer than
  10,000 patients (checked).

Time: the simulator counts days from the patient's first dose, day 0 being the
first whole day of treatment. NONMEM ``TIME`` keeps that clock (days). SDTM
study days start at 1 on the first dose, so whole day ``d`` is study day
``d + 1``, and an event at ``day`` (a float) falls on study day
``floor(day) + 1``. Doses are in mg; the units of each table's numeric columns
are also in ``DataFrame.attrs["units"]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

import sim.drug_actions  # noqa: F401  (registers the dose actions for any drug)
from sim.actions import ACTIONS, AEACN_ORDER, exadj_words
from sim.results.ae_actions import drug_actions, overall_action
from sim.schedule import Schedule
from sim.trial.cohort import CohortResult

__all__ = [
    "AEACN_ORDER",
    "EXADJ_MAX",
    "ID_PER_REPLICATE",
    "ae_term",
    "nonmem_dosing",
    "nonmem_id",
    "sdtm_ae",
    "sdtm_ds",
    "sdtm_ex",
    "usubjid",
]

ID_PER_REPLICATE = 10_000
"""NONMEM ``ID = replicate * ID_PER_REPLICATE + patient_id``."""
EXADJ_MAX = 200
"""The longest ``EXADJ`` (characters): the SAS transport v5 limit of a text value."""

NONMEM_COLUMNS = ["ID", "TIME", "EVID", "AMT", "II", "ADDL", "CMT", "DRUG", "REP", "USUBJID"]
EX_COLUMNS = [
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
AE_COLUMNS = [
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
DS_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "DSSEQ", "DSTERM", "DSDECOD", "DSSTDY", "DSREAS"]

_FREQUENCY = {1: "QD", 2: "BID", 3: "TID", 4: "QID"}

_EXITS = ("completed", "withdrawn", "died", "discontinued")
_EARLY_EXITS = ("withdrawn", "died", "discontinued")

_AE_TERMS = {
    "serious_infection": "Serious infection",
    "gi_intolerance": "Gastrointestinal intolerance",
    "leukopenia": "Leukopenia",
    "hyperglycaemia": "Hyperglycaemia",
    "ild_flare": "Acute exacerbation of interstitial lung disease",
    "ild_relapse": "Relapse of interstitial lung disease",
}
_DSDECOD = {
    "completed": "COMPLETED",
    "withdrawn": "WITHDRAWAL BY SUBJECT",
    "died": "DEATH",
    "discontinued": "ADVERSE EVENT",
}
_RESUMED = "Resumed after interruption for {term}"


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------


def usubjid(study_id: str, replicate: int, patient_id: int) -> str:
    """The unique subject id: ``f"{study_id}-R{replicate:04d}-{patient_id:04d}"``."""
    return f"{study_id}-R{replicate:04d}-{patient_id:04d}"


def nonmem_id(replicate: int, patient_id: int) -> int:
    """The NONMEM ``ID`` of a patient: ``replicate * 10000 + patient_id``.

    Parameters
    ----------
    replicate : int
        Replicate index, >= 0.
    patient_id : int
        The cohort's patient id, 1 .. 9999.

    Raises
    ------
    ValueError
        If ``patient_id`` is outside 1 .. 9999, where IDs of two replicates
        would collide.
    """
    if not 0 < patient_id < ID_PER_REPLICATE:
        raise ValueError(
            f"patient_id {patient_id} must be in 1 .. {ID_PER_REPLICATE - 1} for a NONMEM ID "
            f"unique across replicates"
        )
    return int(replicate) * ID_PER_REPLICATE + int(patient_id)


def _check_replicate(replicate: int) -> None:
    if int(replicate) != replicate or replicate < 0:
        raise ValueError(f"replicate must be a whole number >= 0, got {replicate!r}")


def _study_day(day: float) -> int:
    """SDTM study day of the whole day containing ``day`` (days from the first dose)."""
    return math.floor(day) + 1


def _frequency(doses_per_day: int) -> str:
    """CDISC frequency term for ``doses_per_day`` administrations a day (QD, BID, TID, QID)."""
    if doses_per_day in _FREQUENCY:
        return _FREQUENCY[doses_per_day]
    return f"Q{24 / doses_per_day:g}H"


def _frame(
    rows: list[dict[str, object]], columns: list[str], units: dict[str, str]
) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=columns)
    out.attrs["units"] = units
    return out


# ---------------------------------------------------------------------------
# NONMEM
# ---------------------------------------------------------------------------


def nonmem_dosing(result: CohortResult, replicate: int, study_id: str) -> pd.DataFrame:
    """NONMEM-style dose records, one per constant-dose segment of each realised schedule.

    Each non-zero segment ``[start_day, end_day)`` of a patient's prednisone or
    MMF schedule (after every dose modification, truncated at exit) becomes one
    dose record with additional doses: the first administration at ``TIME`` and
    ``ADDL`` more every ``II`` days, so the record gives
    ``(end_day - start_day) * doses_per_day`` administrations of ``AMT`` mg.
    Zero-dose segments (holds, a stopped drug) give no record: the gap
    between records is the interruption.

    Parameters
    ----------
    result : CohortResult
        One replicate of the cohort model.
    replicate : int
        The replicate's index (>= 0), for ``ID``, ``REP`` and ``USUBJID``.
    study_id : str
        Study identifier used in ``USUBJID`` (e.g. ``"NCT05129410"``).

    Returns
    -------
    pandas.DataFrame
        Columns ``ID, TIME, EVID, AMT, II, ADDL, CMT, DRUG`` then ``REP,
        USUBJID``, sorted by ``ID, TIME, DRUG``:

        * ``ID``: ``replicate * 10000 + patient_id`` (:func:`nonmem_id`),
          unique across replicates when their tables are concatenated;
        * ``TIME``: start of the segment, days from the patient's first dose;
        * ``EVID``: 1 (dose);
        * ``AMT``: dose per administration, mg (daily dose / doses per day);
        * ``II``: interdose interval, days (1 / doses per day);
        * ``ADDL``: additional doses in the segment,
          ``(end_day - start_day) * doses_per_day - 1``;
        * ``CMT``: 1, the depot (absorption) compartment of either drug's
          model; select one drug with ``DRUG`` before fitting;
        * ``DRUG``: ``PREDNISONE`` or ``MMF``;
        * ``REP``: the replicate; ``USUBJID``: as in the SDTM tables.

    Notes
    -----
    ``sum(AMT * (ADDL + 1))`` over a patient's records of one drug is the
    schedule's ``total_mg`` exactly (up to float rounding of ``AMT``).
    """
    _check_replicate(replicate)
    rows: list[dict[str, object]] = []
    for pid, schedules in sorted(result.schedules.items()):
        nid, subject = nonmem_id(replicate, pid), usubjid(study_id, replicate, pid)
        for drug in result.drugs:
            schedule = schedules[drug.name]
            n = schedule.doses_per_day
            for seg in schedule.segments():
                if seg.dose_mg_per_day <= 0:
                    continue
                rows.append(
                    {
                        "ID": nid,
                        "TIME": seg.start_day,
                        "EVID": 1,
                        "AMT": seg.dose_mg_per_day / n,
                        "II": 1.0 / n,
                        "ADDL": (seg.end_day - seg.start_day) * n - 1,
                        "CMT": 1,
                        "DRUG": drug.nonmem_name,
                        "REP": int(replicate),
                        "USUBJID": subject,
                    }
                )
    out = _frame(rows, NONMEM_COLUMNS, {"TIME": "day", "AMT": "mg", "II": "day"})
    out = out.astype(
        {"ID": "int64", "TIME": "int64", "EVID": "int64", "AMT": "float64", "II": "float64"}
    ).astype({"ADDL": "int64", "CMT": "int64", "REP": "int64"})
    return out.sort_values(["ID", "TIME", "DRUG"], kind="stable", ignore_index=True)


# ---------------------------------------------------------------------------
# EX
# ---------------------------------------------------------------------------


def _in_text(event: str) -> str:
    """An adverse event's readable term inside a sentence: :func:`ae_term`, lower case."""
    return ae_term(event).lower()


def _at_most(text: str, n: int = EXADJ_MAX) -> str:
    """``text`` cut to ``n`` characters, its end marked ``...`` when cut."""
    return text if len(text) <= n else text[: n - 3] + "..."


Reason = tuple[str, str, bool]  # EXADJ's sentence, the adverse event, whether a hold


def _adjustment_reasons(result: CohortResult) -> dict[tuple[int, str], dict[int, list[Reason]]]:
    """``(patient_id, drug) -> {day: [(sentence, event, interrupts), ...]}`` in the order the
    adjustments were made: the sentence is the action's words (:func:`sim.actions.exadj_words`)
    and the event's term, e.g. ``"Dose reduced: leukopenia"``; ``interrupts``: a hold."""
    out: dict[tuple[int, str], dict[int, list[Reason]]] = {}
    adj = result.adjustments
    for pid, drug, day, action, event, started in zip(
        adj["patient_id"], adj["drug"], adj["day"], adj["action"], adj["event"],
        adj["started"], strict=True,
    ):  # fmt: skip
        reasons = out.setdefault((int(pid), str(drug)), {}).setdefault(int(day), [])
        action, event, started = str(action), str(event), bool(started)
        words = exadj_words(action, started)
        entry = (f"{words}: {_in_text(event)}", event, ACTIONS[action].interrupts and not started)
        if entry not in reasons:
            reasons.append(entry)
    return out


def _resumptions(schedule: Schedule, by_day: dict[int, list[Reason]]) -> dict[int, str]:
    """``day -> sentence`` for the days a drug restarts after a hold.

    A hold starting on day ``d`` leaves the dose at 0 from ``d``; it resumes on
    the first later change day if the dose there is above 0 (no resumption if
    the drug was stopped, or treatment ended, during the hold). Overlapping
    holds make one zero run: its resumption is credited to the last hold.
    """
    out: dict[int, tuple[int, str]] = {}
    days = np.asarray(schedule.change_days, dtype=np.int64)
    for day in sorted(by_day):
        for _, event, interrupts in by_day[day]:
            if not interrupts or day >= schedule.end_day:
                continue
            if schedule.dose_at(day) != 0:
                continue
            later = days[days > day]
            if later.size and schedule.dose_at(int(later[0])) > 0:
                resume = int(later[0])
                if resume not in out or out[resume][0] <= day:
                    out[resume] = (day, _RESUMED.format(term=_in_text(event)))
    return {resume: reason for resume, (_, reason) in out.items()}


def _intervals(schedule: Schedule, split_days: Iterable[int]) -> list[tuple[int, int, float]]:
    """``(start_day, end_day, dose_mg_per_day)`` intervals: the schedule's segments, split
    also on ``split_days`` inside the schedule."""
    cuts = {d for d in split_days if 0 < d < schedule.end_day}
    bounds = sorted(cuts.union(schedule.change_days))
    ends = [*bounds[1:], schedule.end_day]
    return [(s, e, schedule.dose_at(s)) for s, e in zip(bounds, ends, strict=True)]


def sdtm_ex(result: CohortResult, replicate: int, study_id: str) -> pd.DataFrame:
    """SDTM EX-like exposure records: one per constant-dose interval of each drug.

    Each patient's realised prednisone and MMF schedules are tiled, without gaps
    or overlaps, from study day 1 to the last treatment day; zero-dose intervals
    that an adjustment explains (an MMF hold, MMF stopped) are kept as records with
    ``EXDOSE`` 0, and other days without a dose (before a course starts, between
    pulses, a drug of another arm) have no record.

    ``EXADJ`` gives the reason for a dose adjustment of ``result.adjustments`` as a
    sentence, the action's words (:attr:`sim.actions.DoseAction.exadj`) and the adverse
    event's readable term (:func:`ae_term`), e.g. ``"Dose reduced: gastrointestinal
    intolerance"``, on the interval that starts on the adjustment's day. Rules:

    * An interval starts on every adjustment day inside the schedule, even where
      the dose that day is unchanged (a lowered ceiling that only bites at the
      next titration step; a hold while MMF is already at 0). Every adjustment
      that took effect therefore appears once; two records in a row may have
      the same dose.
    * The interval on which a drug restarts after a hold is part of that
      adjustment and says so (``"Resumed after interruption for leukopenia"``),
      whether it resumes at the planned dose or a lower one. So an empty
      ``EXADJ`` means the interval is the
      start of treatment or a step of the plan in force (a taper or titration
      step, including the steps of a re-started taper).
    * Several reasons on one day are joined with ``"; "`` (each once), the whole
      cut to :data:`EXADJ_MAX` characters (ending ``...`` if cut).
    * An adjustment on or after the day the drug's schedule ends (the patient
      left on the same whole day) never took effect and does not appear.

    Parameters
    ----------
    result : CohortResult
        One replicate of the cohort model.
    replicate : int
        The replicate's index (>= 0).
    study_id : str
        ``STUDYID`` and the prefix of ``USUBJID``.

    Returns
    -------
    pandas.DataFrame
        ``STUDYID, DOMAIN ("EX"), USUBJID, EXSEQ`` (1.. per subject, in order
        of ``EXSTDY`` then ``EXTRT``), ``EXTRT`` (``PREDNISONE``,
        ``MYCOPHENOLATE MOFETIL``), ``EXDOSE`` (mg per administration),
        ``EXDOSU`` (``mg``), ``EXDOSFRQ`` (``QD``, ``BID``, ``TID``, ``QID``),
        ``EXROUTE`` (``ORAL``), ``EXSTDY`` and ``EXENDY`` (study days, first
        and last inclusive: whole days ``start_day .. end_day - 1`` are study
        days ``start_day + 1 .. end_day``), ``EXADJ``.
    """
    _check_replicate(replicate)
    reasons = _adjustment_reasons(result)
    rows: list[dict[str, object]] = []
    for pid, schedules in sorted(result.schedules.items()):
        subject = usubjid(study_id, replicate, pid)
        for drug in result.drugs:
            schedule = schedules[drug.name]
            by_day = reasons.get((pid, drug.name), {})
            resumed = _resumptions(schedule, by_day)
            n = schedule.doses_per_day
            for start, end, dose in _intervals(schedule, [*by_day, *resumed]):
                adj = [sentence for sentence, _, _ in by_day.get(start, [])]
                if start in resumed:
                    adj.append(resumed[start])
                if dose == 0 and not adj:
                    continue  # not given and nothing to explain: before a course starts,
                    # between pulses, a drug of another arm, a rescue never added
                rows.append(
                    {
                        "STUDYID": study_id,
                        "DOMAIN": "EX",
                        "USUBJID": subject,
                        "EXSEQ": 0,
                        "EXTRT": drug.treatment,
                        "EXDOSE": dose / n,
                        "EXDOSU": "mg",
                        "EXDOSFRQ": _frequency(n),
                        "EXROUTE": drug.route,
                        "EXSTDY": start + 1,
                        "EXENDY": end,
                        "EXADJ": _at_most("; ".join(adj)),
                    }
                )
    out = _frame(rows, EX_COLUMNS, {"EXDOSE": "mg", "EXSTDY": "day", "EXENDY": "day"})
    out = out.astype({"EXDOSE": "float64", "EXSTDY": "int64", "EXENDY": "int64"})
    out = out.sort_values(["USUBJID", "EXSTDY", "EXTRT"], kind="stable", ignore_index=True)
    out["EXSEQ"] = out.groupby("USUBJID").cumcount().astype("int64") + 1
    return out


# ---------------------------------------------------------------------------
# AE
# ---------------------------------------------------------------------------


def ae_term(event: str) -> str:
    """A readable AETERM for an adverse event's name, e.g. ``Serious infection``."""
    return _AE_TERMS.get(event, event.replace("_", " ").capitalize())


def sdtm_ae(result: CohortResult, replicate: int, study_id: str) -> pd.DataFrame:
    """SDTM AE-like records: one per adverse event occurrence in ``result.events``.

    An adverse event row is any event that is not ``enrolled``, an action or an
    exit. An exit row (``discontinued``, ``withdrawn`` or ``died``) that follows it
    for the same patient at the same ``day`` with this event as reason means the
    event made the patient leave. The dose modifications it caused are those of
    ``result.adjustments`` with its name and time (``event``, ``event_day``).

    ``AEACN1``, ``AEACN2``, ... (**non-standard**; :mod:`sim.results.sdtm` moves them
    to SUPPAE) give the action taken with each drug of ``result.drugs`` in order
    (:func:`drug_actions`). ``AEACN`` (action taken with study treatment) is their one
    value when every drug the patient was on had the same, else ``MULTIPLE``
    (:func:`overall_action`), as the SDTMIG asks for several study treatments.

    ``AEOUT`` is ``FATAL`` when the patient died of this event (exit ``died``
    with this event as reason) and ``UNKNOWN`` otherwise: the model does not
    follow an event's resolution, so "recovered" and "not recovered" cannot
    be told apart.

    Parameters
    ----------
    result, replicate, study_id
        As :func:`sdtm_ex`.

    Returns
    -------
    pandas.DataFrame
        ``STUDYID, DOMAIN ("AE"), USUBJID, AESEQ`` (1.. per subject in time
        order), ``AETERM`` (readable), ``AEDECOD`` (the model's event name),
        ``AESTDY`` (study day of onset, ``floor(day) + 1``), ``AEACN``,
        ``AEOUT``, then ``AEACN1 .. AEACNn``. Rows in the order of ``USUBJID, AESEQ``.
    """
    _check_replicate(replicate)
    # within a patient the log is in time order (stable sort of the creation order)
    ev = result.events.sort_values("patient_id", kind="stable", ignore_index=True)
    event = ev["event"].astype(str)
    detail = ev["detail"].fillna("").astype(str)
    pid = ev["patient_id"]
    done = [action.done for action in ACTIONS.values()]  # as registered
    is_ae = ~event.isin([*done, *_EXITS, "enrolled"])
    group = is_ae.astype("int64").groupby(pid).cumsum()
    ae_name = event.where(is_ae).groupby(pid).ffill()
    ae_day = ev["day"].where(is_ae).groupby(pid).ffill()
    follows = ~is_ae & (group > 0) & (ev["day"] == ae_day)
    caused_exit = follows & event.isin(_EARLY_EXITS) & (detail == ae_name)
    fatal = caused_exit & (event == "died")
    keys = [pid, group]
    per_event = pd.DataFrame(
        {
            "left": caused_exit.groupby(keys).transform("any"),
            "fatal": fatal.groupby(keys).transform("any"),
        }
    )[is_ae]
    aes = ev[is_ae]
    n = len(aes)
    actions = drug_actions(result, aes["patient_id"], aes["event"], aes["day"], per_event["left"])
    subjects = [usubjid(study_id, replicate, int(p)) for p in aes["patient_id"]]
    out = pd.DataFrame(
        {
            "STUDYID": [study_id] * n,
            "DOMAIN": ["AE"] * n,
            "USUBJID": subjects,
            "AESEQ": aes.groupby("patient_id").cumcount().to_numpy(dtype=np.int64) + 1,
            "AETERM": [ae_term(e) for e in aes["event"]],
            "AEDECOD": aes["event"].astype(str).to_numpy(),
            "AESTDY": np.floor(aes["day"].to_numpy(dtype=np.float64)).astype(np.int64) + 1,
            "AEACN": [overall_action(values) for values in actions],
            "AEOUT": np.where(per_event["fatal"].to_numpy(dtype=bool), "FATAL", "UNKNOWN"),
            **{
                f"AEACN{i + 1}": [values[i] for values in actions] for i in range(len(result.drugs))
            },
        },
        columns=[*AE_COLUMNS, *(f"AEACN{i + 1}" for i in range(len(result.drugs)))],
    )
    out.attrs["units"] = {"AESTDY": "day"}
    return out


# ---------------------------------------------------------------------------
# DS
# ---------------------------------------------------------------------------


def _ds_term(status: str, reason: str) -> str:
    cause = "" if reason in ("", "withdrawal", "death") else ae_term(reason).lower()
    if status == "completed":
        return "Completed study treatment"
    if status == "withdrawn":
        return f"Withdrew after {cause}" if cause else "Withdrew from the study"
    if status == "died":
        return f"Died of {cause}" if cause else "Died"
    if status == "discontinued":
        return f"Stopped study treatment for {cause}" if cause else "Stopped study treatment"
    raise ValueError(f"unknown patient status {status!r}")


def sdtm_ds(result: CohortResult, replicate: int, study_id: str) -> pd.DataFrame:
    """SDTM DS-like disposition records: one per patient.

    Parameters ``result``, ``replicate`` and ``study_id`` as :func:`sdtm_ex`.

    Returns
    -------
    pandas.DataFrame
        ``STUDYID, DOMAIN ("DS"), USUBJID, DSSEQ`` (1), ``DSTERM`` (readable),
        ``DSDECOD`` (``COMPLETED``, ``WITHDRAWAL BY SUBJECT``, ``DEATH``, or
        ``ADVERSE EVENT`` for a discontinuation), ``DSSTDY`` (study day of the
        disposition: ``floor(exit_day) + 1`` for an early exit, the day it
        happened; for a completer the last treatment day, i.e. the last day of
        the longer schedule, which is the treatment duration in days), and
        ``DSREAS``, **a non-standard extension**: the model's exit reason
        (the adverse event's name, ``withdrawal``, ``death``, or empty for
        completers). Ordered by ``USUBJID``.

    Raises
    ------
    ValueError
        On a patient status the model does not produce.
    """
    _check_replicate(replicate)
    rows: list[dict[str, object]] = []
    p = result.patients
    if len(p):
        for pid, status, exit_day, reason in zip(
            p["patient_id"], p["status"], p["exit_day"], p["exit_reason"], strict=True
        ):
            pid, status = int(pid), str(status)
            reason = "" if pd.isna(reason) else str(reason)
            if status not in _DSDECOD:
                raise ValueError(f"patient {pid}: unknown status {status!r}")
            if status == "completed":
                day = max(s.end_day for s in result.schedules[pid].values())
            else:
                day = _study_day(float(exit_day))
            rows.append(
                {
                    "STUDYID": study_id,
                    "DOMAIN": "DS",
                    "USUBJID": usubjid(study_id, replicate, pid),
                    "DSSEQ": 1,
                    "DSTERM": _ds_term(status, reason),
                    "DSDECOD": _DSDECOD[status],
                    "DSSTDY": day,
                    "DSREAS": reason,
                }
            )
    out = _frame(rows, DS_COLUMNS, {"DSSTDY": "day"})
    out = out.astype({"DSSEQ": "int64", "DSSTDY": "int64"})
    return out.sort_values("USUBJID", kind="stable", ignore_index=True)
