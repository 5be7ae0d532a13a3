"""Piecewise-constant daily dose schedules and the protocol builders that make them.

A :class:`Schedule` is data: sorted integer change days counted from day 0 (the
first dose), the daily dose from each change day on, and the end of treatment.
It answers ``dose_at(day)`` and ``cumulative(day)`` exactly and can be cut at a
day and given a new tail (a dose modification). The builders turn a scenario's
protocol rules into a schedule for one patient; they are pure functions, which
is what ``dosesim check`` relies on.

Time is in days. Day ``d`` is the whole day ``[d, d + 1)``; a dose given on day
``d`` counts towards ``cumulative(d + 1)``.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, NamedTuple, overload

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sim.scenario import MmfRegimen, PrednisoneRegimen, Scenario

__all__ = [
    "Schedule",
    "Segment",
    "build_mmf",
    "build_prednisone",
    "build_prednisone_from_start",
    "build_schedules",
    "prednisone_start_mg",
    "typed_decimal",
]

FloatArray = npt.NDArray[np.float64]


class Segment(NamedTuple):
    """One constant-dose interval of a schedule.

    Attributes
    ----------
    start_day : int
        First day of the interval (inclusive), days from the first dose.
    end_day : int
        Day the interval ends (exclusive).
    dose_mg_per_day : float
        Daily dose over the interval, mg/day.
    cumulative_mg : float
        Total dose taken on days ``0 .. end_day - 1``, mg.
    """

    start_day: int
    end_day: int
    dose_mg_per_day: float
    cumulative_mg: float


@dataclass(frozen=True)
class Schedule:
    """A piecewise-constant daily dose, immutable.

    The dose is ``doses_mg_per_day[i]`` on days ``change_days[i]`` up to (not
    including) the next change day, and zero from ``end_day`` on and before
    day 0. Consecutive equal doses are merged on construction, so two
    schedules that give the same dose every day compare equal.

    Parameters
    ----------
    change_days : tuple of int
        Strictly increasing days (from the first dose) on which the dose
        changes; the first is 0. Empty only when ``end_day`` is 0.
    doses_mg_per_day : tuple of float
        Daily dose from each change day on, mg/day; finite and >= 0.
    end_day : int
        End of treatment (exclusive), days; no dose from this day on.
    doses_per_day : int, optional
        Administrations per day (1 = once daily, 2 = twice daily); the
        daily dose is split evenly between them. Used by exposure models.

    Examples
    --------
    >>> s = Schedule((0, 28), (60.0, 55.0), end_day=42)
    >>> s.dose_at(27), s.dose_at(28), s.cumulative(42)
    (60.0, 55.0, 2450.0)
    """

    change_days: tuple[int, ...]
    doses_mg_per_day: tuple[float, ...]
    end_day: int
    doses_per_day: int = 1

    def __post_init__(self) -> None:
        days = tuple(int(d) for d in self.change_days)
        doses = tuple(float(x) for x in self.doses_mg_per_day)
        end = int(self.end_day)
        if len(days) != len(doses):
            raise ValueError(f"{len(days)} change days but {len(doses)} doses")
        if end < 0:
            raise ValueError(f"end_day {end} must be >= 0")
        if end == 0:
            days, doses = (), ()
        elif not days or days[0] != 0:
            raise ValueError(f"the first change day must be 0, got {days[:1]}")
        if any(b <= a for a, b in itertools.pairwise(days)):
            raise ValueError(f"change days must be strictly increasing: {days}")
        if days and days[-1] >= end:
            raise ValueError(f"change day {days[-1]} is not before end_day {end}")
        bad = [x for x in doses if not (math.isfinite(x) and x >= 0)]
        if bad:
            raise ValueError(f"doses must be finite and >= 0, got {bad[0]}")
        if self.doses_per_day < 1:
            raise ValueError(f"doses_per_day {self.doses_per_day} must be >= 1")
        self._finish(days, doses, end)

    @classmethod
    def _derived(
        cls, days: tuple[int, ...], doses: tuple[float, ...], end: int, doses_per_day: int
    ) -> Schedule:
        """A schedule made from valid ones (a tail, a splice, a cap): no checks again."""
        schedule = object.__new__(cls)
        object.__setattr__(schedule, "doses_per_day", doses_per_day)
        schedule._finish(days, doses, end)
        return schedule

    def _finish(self, days: tuple[int, ...], doses: tuple[float, ...], end: int) -> None:
        if end == 0:
            days, doses = (), ()
        # Merge runs of equal doses so that equal plans compare equal.
        keep = [i for i in range(len(days)) if i == 0 or doses[i] != doses[i - 1]]
        if len(keep) < len(days):
            days = tuple(days[i] for i in keep)
            doses = tuple(doses[i] for i in keep)
        object.__setattr__(self, "change_days", days)
        object.__setattr__(self, "doses_mg_per_day", doses)
        object.__setattr__(self, "end_day", end)

    # The arrays behind the lookups, built on first use: most schedules made along
    # the way (a tail, a splice's parts) are never looked up.
    @functools.cached_property
    def _days(self) -> npt.NDArray[np.int64]:
        return np.array(self.change_days, dtype=np.int64)

    @functools.cached_property
    def _doses(self) -> FloatArray:
        return np.array(self.doses_mg_per_day, dtype=np.float64)

    @functools.cached_property
    def _cum_at_change(self) -> FloatArray:
        """The total before each change day, and at the end."""
        # the same additions, in the same order, as a cumulative sum (a few segments:
        # Python beats numpy's overhead)
        lengths = [b - a for a, b in itertools.pairwise((*self.change_days, self.end_day))]
        doses = self.doses_mg_per_day
        return np.array(
            [0.0, *itertools.accumulate(x * n for x, n in zip(doses, lengths, strict=True))]
        )

    @functools.cached_property
    def _cum_list(self) -> list[float]:
        return self._cum_at_change.tolist()

    # -- constructors -----------------------------------------------------
    @classmethod
    def constant(cls, dose_mg_per_day: float, end_day: int, doses_per_day: int = 1) -> Schedule:
        """A schedule with one dose from day 0 to ``end_day`` (exclusive)."""
        return cls((0,), (dose_mg_per_day,), end_day, doses_per_day)

    # -- queries ----------------------------------------------------------
    @overload
    def dose_at(self, day: float) -> float: ...
    @overload
    def dose_at(self, day: npt.ArrayLike) -> FloatArray: ...
    def dose_at(self, day: float | npt.ArrayLike) -> float | FloatArray:
        """Daily dose in force at ``day`` (mg/day); 0 before day 0 and from ``end_day``.

        Parameters
        ----------
        day : float or array_like
            Days from the first dose; a fractional day falls in the whole day
            that contains it.
        """
        t = np.asarray(day, dtype=np.float64)
        if self.end_day == 0:
            out = np.zeros_like(t)
        else:
            idx = np.searchsorted(self._days, t, side="right") - 1
            out = np.where((t >= 0) & (t < self.end_day), self._doses[np.maximum(idx, 0)], 0.0)
        return float(out) if out.ndim == 0 else out

    @overload
    def cumulative(self, day: float) -> float: ...
    @overload
    def cumulative(self, day: npt.ArrayLike) -> FloatArray: ...
    def cumulative(self, day: float | npt.ArrayLike) -> float | FloatArray:
        """Total dose taken before ``day``, mg.

        For a whole day ``d`` this is the sum of the doses of days
        ``0 .. d - 1``: :math:`C(d) = \\sum_{i<d} \\mathrm{dose}(i)`. Between
        whole days it is linear (the daily dose as a rate), so it is the
        integral of ``dose_at`` from 0 to ``day``.

        Parameters
        ----------
        day : float or array_like
            Days from the first dose; clipped to ``[0, end_day]``.
        """
        if type(day) is float or type(day) is int:  # one day: plain floats, the same sums
            if self.end_day == 0:
                return 0.0
            x = min(max(float(day), 0.0), float(self.end_day))
            days, cum = self.change_days, self._cum_list
            i = max(bisect.bisect_right(days, x) - 1, 0)
            return cum[i] + self.doses_mg_per_day[i] * (x - days[i])
        t = np.minimum(np.maximum(np.asarray(day, dtype=np.float64), 0.0), float(self.end_day))
        if self.end_day == 0:
            out = np.zeros_like(t)
        else:
            idx = np.maximum(np.searchsorted(self._days, t, side="right") - 1, 0)
            out = self._cum_at_change[idx] + self._doses[idx] * (t - self._days[idx])
        return float(out) if out.ndim == 0 else out

    @property
    def total_mg(self) -> float:
        """Total dose over the whole schedule, mg."""
        return float(self._cum_at_change[-1])

    def segments(self) -> tuple[Segment, ...]:
        """The constant-dose intervals, in order, with the cumulative dose at each end."""
        ends = list(self.change_days[1:]) + [self.end_day]
        return tuple(
            Segment(start, end, dose, float(cum))
            for start, end, dose, cum in zip(
                self.change_days,
                ends,
                self.doses_mg_per_day,
                self._cum_at_change[1:],
                strict=True,
            )
        )

    def daily_doses(self) -> FloatArray:
        """The dose of every day ``0 .. end_day - 1`` (mg/day), as an array."""
        lengths = np.diff(np.append(self._days, self.end_day))
        return np.repeat(self._doses, lengths)

    # -- modifications ----------------------------------------------------
    def capped_at(self, max_mg_per_day: float) -> Schedule:
        """The same schedule with every dose above ``max_mg_per_day`` lowered to it."""
        cap = float(max_mg_per_day)
        if not (math.isfinite(cap) and cap >= 0):
            raise ValueError(f"max_mg_per_day must be finite and >= 0, got {max_mg_per_day}")
        return Schedule._derived(
            self.change_days,
            tuple(min(d, cap) for d in self.doses_mg_per_day),
            self.end_day,
            self.doses_per_day,
        )

    def truncated(self, end_day: int) -> Schedule:
        """The same schedule stopped at ``end_day`` (never extended)."""
        end = min(int(end_day), self.end_day)
        if end < 0:
            raise ValueError(f"end_day {end_day} must be >= 0")
        n = sum(1 for d in self.change_days if d < end)  # change days increase
        return Schedule._derived(
            self.change_days[:n], self.doses_mg_per_day[:n], end, self.doses_per_day
        )

    def tail(self, day: int) -> Schedule:
        """The part of the schedule from ``day`` on, re-based so that ``day`` becomes 0."""
        day = _whole_day(day, self.end_day)
        if day == self.end_day:
            return Schedule._derived((), (), 0, self.doses_per_day)
        first = bisect.bisect_right(self.change_days, day) - 1
        days = (0,) + tuple(d - day for d in self.change_days[first + 1 :])
        return Schedule._derived(
            days, self.doses_mg_per_day[first:], self.end_day - day, self.doses_per_day
        )

    def splice(self, day: int, new_tail: Schedule) -> Schedule:
        """Keep this schedule before ``day`` and follow ``new_tail`` from ``day`` on.

        ``new_tail`` is relative: its day 0 is placed on ``day``, and the
        result ends at ``day + new_tail.end_day``. A dose modification on day
        ``d`` is ``s.splice(d, rule(s.tail(d)))``.

        Parameters
        ----------
        day : int
            Whole day, ``0 <= day <= end_day``, on which the new tail starts.
        new_tail : Schedule
            The doses from ``day`` on; its ``doses_per_day`` is kept.
        """
        day = _whole_day(day, self.end_day)
        if not isinstance(new_tail, Schedule):
            raise TypeError(f"new_tail must be a Schedule, got {type(new_tail).__name__}")
        head = self.truncated(day)
        days = head.change_days + tuple(d + day for d in new_tail.change_days)
        doses = head.doses_mg_per_day + new_tail.doses_mg_per_day
        return Schedule._derived(days, doses, day + new_tail.end_day, new_tail.doses_per_day)


def _whole_day(day: int, end_day: int) -> int:
    if int(day) != day or not 0 <= day <= end_day:
        raise ValueError(f"day {day} must be a whole day in 0 .. {end_day}")
    return int(day)


# ---------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------


def typed_decimal(x: float) -> Decimal:
    """The decimal a person typed: 0.55 stays 0.55, not 0.55000000000000004."""
    return Decimal(repr(float(x)))


def prednisone_start_mg(
    regimen: PrednisoneRegimen,
    weight_kg: float,
    start_mg_per_kg: float | None = None,
) -> float:
    """The patient's prednisone start dose, mg/day.

    ``start_mg_per_kg * weight_kg`` (or the fixed ``start_mg``), rounded half
    up to a multiple of ``round_to_mg`` (the tablet increment), then capped at
    ``max_start_mg``. Arithmetic is decimal, so 22.5 mg rounds to 25 mg
    exactly as a pharmacist would round it.

    Parameters
    ----------
    regimen : PrednisoneRegimen
        The scenario's ``prednisone`` table.
    weight_kg : float
        Body weight, kg (> 0).
    start_mg_per_kg : float, optional
        Overrides the regimen's mg/kg start (a patient drawn from a dose
        range, or a re-escalation).
    """
    if not (np.isfinite(weight_kg) and weight_kg > 0):
        raise ValueError(f"weight_kg must be > 0, got {weight_kg}")
    per_kg = start_mg_per_kg if start_mg_per_kg is not None else regimen.start_mg_per_kg
    if per_kg is not None:
        raw = typed_decimal(per_kg) * typed_decimal(weight_kg)
    else:
        assert regimen.start_mg is not None  # guaranteed by validation
        raw = typed_decimal(regimen.start_mg)
    if regimen.round_to_mg is not None:
        inc = typed_decimal(regimen.round_to_mg)
        raw = (raw / inc).quantize(Decimal(1), rounding=ROUND_HALF_UP) * inc
    start = float(raw)
    if regimen.max_start_mg is not None:
        start = min(start, regimen.max_start_mg)
    return start


def build_prednisone(
    regimen: PrednisoneRegimen,
    weight_kg: float,
    duration_days: int,
    start_mg_per_kg: float | None = None,
) -> Schedule:
    """Build a patient's prednisone schedule from the protocol's taper rules.

    The start dose (:func:`prednisone_start_mg`) is given from day 0 for
    ``initial_hold_days``. Stages then follow in order:

    * ``taper``: the first step is taken when the current level ends; each
      step lowers the dose by ``step_mg`` but never below ``floor_mg``; steps
      are ``every_days`` apart. The floor level lasts ``every_days`` unless
      a following stage says otherwise. A taper whose floor is not below the
      current dose changes nothing (a taper never raises the dose).
    * ``hold`` with ``days``: the current level lasts ``days`` from the day
      it was reached. With ``until_day``: it lasts until that day; if the
      taper only reaches this level on or after that day, the hold is over.

    Then ``maintenance_mg_per_day`` (never above the current dose) until the
    end of treatment, or the last level continues if there is none.

    Parameters
    ----------
    regimen : PrednisoneRegimen
        The scenario's ``prednisone`` table.
    weight_kg : float
        Body weight, kg.
    duration_days : int
        End of treatment (exclusive), days from the first dose.
    start_mg_per_kg : float, optional
        Overrides the regimen's mg/kg start.

    Returns
    -------
    Schedule
        Daily prednisone dose, mg/day, once daily.
    """
    dose = prednisone_start_mg(regimen, weight_kg, start_mg_per_kg)
    return build_prednisone_from_start(regimen, dose, duration_days)


def build_prednisone_from_start(
    regimen: PrednisoneRegimen, start_mg: float, duration_days: int
) -> Schedule:
    """The prednisone schedule from a start dose already rounded and capped (mg/day).

    :func:`build_prednisone` is this after :func:`prednisone_start_mg`; patients
    with the same start dose share one schedule.
    """
    dose = float(start_mg)
    changes: list[tuple[int, float]] = [(0, dose)]
    level_start, level_end = 0, regimen.initial_hold_days
    for stage in regimen.stages:
        if stage.kind == "hold":
            if stage.days is not None:
                level_end = level_start + stage.days
            else:
                assert stage.until_day is not None
                level_end = max(stage.until_day, level_start)
            continue
        day = level_end
        while dose > stage.floor_mg and day < duration_days:  # no step after treatment ends
            dose = max(float(typed_decimal(dose) - typed_decimal(stage.step_mg)), stage.floor_mg)
            changes.append((day, dose))
            level_start, level_end = day, day + stage.every_days
            day = level_end
    if regimen.maintenance_mg_per_day is not None:
        changes.append((level_end, min(regimen.maintenance_mg_per_day, dose)))
    return from_changes(changes, duration_days, doses_per_day=1)


def build_mmf(regimen: MmfRegimen, duration_days: int) -> Schedule:
    """Build the MMF schedule: titration steps, then the target dose.

    Parameters
    ----------
    regimen : MmfRegimen
        The scenario's ``mmf`` table (doses in g/day there).
    duration_days : int
        End of treatment (exclusive), days from the first dose.

    Returns
    -------
    Schedule
        Daily MMF dose in **mg/day**, with ``doses_per_day`` administrations.
    """
    changes: list[tuple[int, float]] = []
    day = 0
    for step in regimen.titration:
        changes.append((day, _g_to_mg(step.g_per_day)))
        day += step.days
    changes.append((day, _g_to_mg(regimen.target_g_per_day)))
    return from_changes(changes, duration_days, doses_per_day=regimen.doses_per_day)


def build_schedules(
    scenario: Scenario, weight_kg: float, start_mg_per_kg: float | None = None
) -> dict[str, Schedule]:
    """Both drugs' schedules for one patient: ``{"prednisone": ..., "mmf": ...}``.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario.
    weight_kg : float
        Body weight, kg.
    start_mg_per_kg : float, optional
        Overrides the prednisone mg/kg start dose.
    """
    duration = scenario.treatment.duration_days
    out: dict[str, Schedule] = {}
    if scenario.prednisone is not None:  # (else a [drugs.prednisone] course)
        out["prednisone"] = build_prednisone(
            scenario.prednisone, weight_kg, duration, start_mg_per_kg
        )
    if scenario.mmf is not None:
        out["mmf"] = build_mmf(scenario.mmf, duration)
    return out


def _g_to_mg(g: float) -> float:
    return float(typed_decimal(g) * 1000)


def from_changes(
    changes: list[tuple[int, float]], duration_days: int, doses_per_day: int
) -> Schedule:
    """A schedule from ``(day, dose)`` changes in order; a later change on the same day
    wins, and changes on or after ``duration_days`` are dropped."""
    by_day: dict[int, float] = {}
    for day, dose in changes:
        if day < duration_days:
            by_day[day] = dose
    days = sorted(by_day)
    return Schedule(tuple(days), tuple(by_day[d] for d in days), duration_days, doses_per_day)
