"""Endpoints: what is measured of each patient and of each replicate trial, by name.

An :class:`Endpoint` is one column of the patients table (a value per patient,
with its label and unit); a :class:`TrialEndpoint` is one column of the
replicate rows (a value per replicate trial, from the patients' values). The
patients table, the replicate rows, the comparison's default metrics and the
report's labels read the registries (:data:`ENDPOINTS`, :data:`TRIAL_ENDPOINTS`)
instead of naming outcomes themselves; adding one is :func:`register_endpoint`
or :func:`register_trial_endpoint` (``docs/contributing.md``).

Patient values read a :class:`PatientRecord`: the patient's schedules by drug as
given (truncated at exit), the exit, their exposure models and the context's
caches. The built-in endpoints are the steroid burden at the landmark weeks and
overall, time at or above 20 mg/day, the first day at or below 7.5 mg/day, the
MMF dose intensity, MPA exposure, and the clearances behind them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sim.schedule import Schedule

if TYPE_CHECKING:
    from sim.exposure import OralOneCompartment
    from sim.scenario import Scenario

__all__ = [
    "ENDPOINTS",
    "LANDMARK_WEEKS",
    "TRIAL_ENDPOINTS",
    "Endpoint",
    "PatientRecord",
    "TrialEndpoint",
    "register_endpoint",
    "register_trial_endpoint",
]

#: The weeks from the first dose at which the cumulative prednisone dose is reported.
LANDMARK_WEEKS = (4, 12, 24, 52)


def stop_day(status: str, exit_day: float, duration_days: int) -> int | None:
    """The first day without dosing of a patient who left early (their doses of the day of
    exit were taken); None for one who completed or is still on study."""
    if status in ("", "completed"):
        return None
    return min(math.floor(exit_day) + 1, duration_days)


@dataclass
class PatientRecord:
    """What an endpoint may read of one patient at the end of their follow-up.

    Attributes
    ----------
    planned : mapping of str to Schedule
        By drug: the schedules as they stood at exit (as given before it).
    exit_day : float
        Days from the first dose to the exit (or the end of treatment).
    status : str
        ``completed``, ``withdrawn``, ``died`` or ``discontinued``.
    duration_days : int
        The protocol's treatment duration.
    start_mg : float
        The prednisone start dose, mg/day.
    scenario : Scenario
    models : callable
        ``models(moiety)``: the patient's exposure model of ``"mpa"`` or
        ``"prednisolone"`` (built on first use).
    planned_by_protocol : mapping of str to Schedule
        By drug: the protocol's plan before any modification (for dose intensity).
    """

    planned: Mapping[str, Schedule]
    exit_day: float
    status: str
    duration_days: int
    start_mg: float
    scenario: Scenario
    models: Callable[[str], OralOneCompartment]
    planned_by_protocol: Mapping[str, Schedule]
    _given: dict[str, Schedule] = field(default_factory=dict)

    def given(self, drug: str) -> Schedule:
        """The drug's schedule as given: as planned up to the day of exit (inclusive)."""
        schedule = self._given.get(drug)
        if schedule is None:
            stop = stop_day(self.status, self.exit_day, self.duration_days)
            schedule = self.planned[drug] if stop is None else self.planned[drug].truncated(stop)
            self._given[drug] = schedule
        return schedule


class OnStudy(Protocol):
    """What the lean path reads of a patient (``sim.trial.patient.Patient`` has it)."""

    @property
    def schedules(self) -> Mapping[str, Schedule]: ...
    @property
    def exit_day(self) -> float: ...
    @property
    def status(self) -> str: ...


class Caches(Protocol):
    """The per-scenario caches the lean path may use (``sim.trial.context.TrialContext``)."""

    def week52_mg(self, schedule: Schedule) -> float: ...


@dataclass(frozen=True)
class Endpoint:
    """A per-patient endpoint: a column of the patients table.

    Attributes
    ----------
    name : str
        The column's name (units in the name).
    label : str
        For tables and figures.
    unit : str
        E.g. ``"mg"``, ``"day"``, ``"1"`` for a ratio.
    value : callable
        ``value(record) -> float``: NaN where it is not observed (e.g. a landmark
        after the patient left).
    lean : callable, optional
        ``lean(patients, caches) -> list of float``: the same values of many patients
        computed cheaply on the replicate runner's lean path (no tables, no records),
        for the endpoints that trial endpoints read; without it, records are made.
    """

    name: str
    label: str
    unit: str
    value: Callable[[PatientRecord], float]
    lean: Callable[[Sequence[OnStudy], Caches], list[float]] | None = None


@dataclass(frozen=True)
class TrialEndpoint:
    """A per-replicate endpoint: a column of the replicate rows, from patients' values.

    Attributes
    ----------
    name, label, unit : str
    of : str
        The patient endpoint it summarises (its lean values).
    statistic : callable
        From the patients' finite values (an array, perhaps empty) to one number.
    compared_rank : float or None
        Where ``dosesim compare`` shows it among its default metrics (lowest first);
        None: not by default.
    """

    name: str
    label: str
    unit: str
    of: str
    statistic: Callable[[np.ndarray], float]
    compared_rank: float | None = None


#: Per-patient endpoints, in the order of the patients table's columns.
ENDPOINTS: dict[str, Endpoint] = {}
#: Per-replicate endpoints, in the order of the replicate rows' columns.
TRIAL_ENDPOINTS: dict[str, TrialEndpoint] = {}
_SUMMARISED: list[str] = []
"""The patient endpoints that trial endpoints summarise (kept by registration)."""


def register_endpoint(endpoint: Endpoint) -> Endpoint:
    """Add a patient endpoint (a column of the patients table, after the built-in ones)."""
    ENDPOINTS[endpoint.name] = endpoint
    return endpoint


def register_trial_endpoint(endpoint: TrialEndpoint) -> TrialEndpoint:
    """Add a replicate endpoint (a column of the replicate rows)."""
    if endpoint.of not in ENDPOINTS:
        raise ValueError(f"{endpoint.name}: no patient endpoint {endpoint.of!r} to summarise")
    TRIAL_ENDPOINTS[endpoint.name] = endpoint
    _SUMMARISED[:] = dict.fromkeys(e.of for e in TRIAL_ENDPOINTS.values())
    return endpoint


def lean_values(
    patients: Sequence[OnStudy], caches: Caches | None, record: Callable[[Any], PatientRecord]
) -> dict[str, np.ndarray]:
    """The values of every patient endpoint a trial endpoint reads, by name: by its
    ``lean`` function, else from each patient's ``record(patient)``. No patients
    (recruitment simulated alone): empty arrays, and ``caches`` is not read."""
    if not patients:
        return {name: np.zeros(0) for name in _SUMMARISED}
    out = {}
    for name in _SUMMARISED:
        endpoint = ENDPOINTS[name]
        if endpoint.lean is not None:
            assert caches is not None
            values = endpoint.lean(patients, caches)
        else:
            values = [endpoint.value(record(p)) for p in patients]
        out[name] = np.array(values, dtype=float)
    return out


def compared_by_default() -> list[str]:
    """The trial endpoints ``dosesim compare`` shows by default, in order."""
    ranked = [e for e in TRIAL_ENDPOINTS.values() if e.compared_rank is not None]
    return [e.name for e in sorted(ranked, key=lambda e: e.compared_rank or 0.0)]


def trial_values(values: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Every trial endpoint of one replicate from its patients' lean values."""
    finite: dict[str, np.ndarray] = {}
    out = {}
    for name, endpoint in TRIAL_ENDPOINTS.items():
        x = finite.get(endpoint.of)
        if x is None:
            x = values[endpoint.of]
            x = finite[endpoint.of] = x[np.isfinite(x)]
        out[name] = endpoint.statistic(x)
    return out


# -- the built-in endpoints ---------------------------------------------------


def _week52_lean(patients: Sequence[OnStudy], caches: Caches) -> list[float]:
    """Cumulative prednisone at week 52 from the context's cache: up to a landmark the
    patient reached, the plan is what was given."""
    week52 = caches.week52_mg
    return [week52(p.schedules["prednisone"]) if p.exit_day >= 364 else math.nan for p in patients]


def _landmark(week: int) -> Endpoint:
    day = 7 * week

    def value(r: PatientRecord) -> float:
        return float(r.given("prednisone").cumulative(day)) if r.exit_day >= day else math.nan

    return Endpoint(
        f"cumulative_prednisone_mg_week{week}",
        f"cumulative prednisone at week {week}",
        "mg",
        value,
        _week52_lean if week == 52 else None,
    )


def _first_at_or_below(r: PatientRecord) -> float:
    """From the first dose on (a course may start later, e.g. after IV pulses)."""
    daily = r.given("prednisone").daily_doses()
    given = np.flatnonzero(daily > 0)
    first = int(given[0]) if given.size else 0
    low = np.flatnonzero(daily[first:] <= 7.5)
    return first + int(low[0]) if low.size else math.nan


def _dose_intensity(r: PatientRecord) -> float:
    given = r.given("mmf")
    planned = r.planned_by_protocol["mmf"].cumulative(given.end_day)
    return given.total_mg / planned if planned > 0 else math.nan


def _mpa_auc(r: PatientRecord) -> float:
    from sim.exposure import mpa_auc0_12_at_target

    return float(mpa_auc0_12_at_target(r.scenario, r.models("mpa")))


for _endpoint in (
    Endpoint(
        "prednisone_start_mg_per_day", "prednisone start dose", "mg/day", lambda r: r.start_mg
    ),
    *(_landmark(w) for w in LANDMARK_WEEKS),
    Endpoint(
        "cumulative_prednisone_mg",
        "cumulative prednisone on study",
        "mg",
        lambda r: r.given("prednisone").total_mg,
    ),
    Endpoint(
        "days_at_or_above_20mg",
        "days at or above 20 mg/day of prednisone",
        "day",
        lambda r: int((r.given("prednisone").daily_doses() >= 20).sum()),
    ),
    Endpoint(
        "first_day_at_or_below_7_5mg",
        "first day at or below 7.5 mg/day of prednisone",
        "day",
        _first_at_or_below,
    ),
    Endpoint("mmf_dose_intensity", "MMF dose intensity (given / planned)", "1", _dose_intensity),
    Endpoint("mpa_auc0_12_mg_h_per_l", "MPA AUC0-12 at the target dose", "mg*h/L", _mpa_auc),
    Endpoint(
        "mpa_cl_l_per_h",
        "MPA apparent clearance",
        "L/h",
        lambda r: float(r.models("mpa").cl_l_per_h),  # type: ignore[arg-type]
    ),
    Endpoint(
        "prednisolone_cl_l_per_h",
        "prednisolone apparent clearance",
        "L/h",
        lambda r: float(r.models("prednisolone").cl_l_per_h),  # type: ignore[arg-type]
    ),
):
    register_endpoint(_endpoint)


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else math.nan


def _median(x: np.ndarray) -> float:
    # statistics: numpy's cost is overhead on a few dozen values
    return float(statistics.median(x.tolist())) if x.size else math.nan


for _trial_endpoint in (
    TrialEndpoint(
        "mean_cumulative_prednisone_mg_week52",
        "mean cumulative prednisone at week 52",
        "mg",
        "cumulative_prednisone_mg_week52",
        _mean,
        compared_rank=1,
    ),
    TrialEndpoint(
        "median_cumulative_prednisone_mg_week52",
        "median cumulative prednisone at week 52",
        "mg",
        "cumulative_prednisone_mg_week52",
        _median,
        compared_rank=0,
    ),
):
    register_trial_endpoint(_trial_endpoint)
