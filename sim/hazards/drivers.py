r"""Hazards of adverse events and dropout, and exact event-time sampling over a dose plan.

A hazard is a baseline rate times multipliers from drivers:

.. math:: h(t) = h_0 \prod_i m_i(x_i(t)),

where the drivers :math:`x_i` are read off the patient's plan (the current dose
of a drug, its weighted cumulative dose, the exposure at the current dose, time
on study, a covariate). Each driver says where its value can change
(``breakpoints``), what its multiplier is on each interval (``multiplier``),
and what it reads (``inputs``: doses of which drugs, exposure of which drugs,
covariates, time, windows of the patient's own history). The template cache
(:mod:`sim.hazards.templates`) derives from ``inputs`` which part of a rate
patients on the same plan share. A driver class registers itself
(:func:`register_driver`) with examples that the shortcut tests run. On the intervals between
all breakpoints every hazard is constant, so the cumulative hazard
:math:`H(t)` is piecewise linear and the time of the next event is found
exactly by solving :math:`H(t) = E`, :math:`E \sim \mathrm{Exp}(1)`. Every
hazard of a patient is computed on one common grid in one numpy pass.

Drivers that change continuously (the weighted cumulative dose) are held at
their value at the midpoint of each ``grid_days`` cell; ``tests/validation``
measures that error against a fine grid.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from sim.errors import DosesimError
from sim.hazards.plan import FloatArray, Intervals, Plan
from sim.scenario import AdverseEvent, Multiplier
from sim.schedule import Schedule

DAYS_PER_YEAR = 365.25
#: The largest multiplier a log-linear driver gives when it has no cap: the largest cap
#: a scenario may set. It keeps ``exp(1.0 * 5,000 mg*day)`` from overflowing to inf and
#: stopping the run; no clinically meaningful multiplier comes near it.
MULTIPLIER_CEILING = 1000.0


class RateOverflow(DosesimError, FloatingPointError):
    """A hazard's rate is not a finite number: its baseline times its multipliers overflow.

    A :class:`~sim.errors.DosesimError` (the command says so, exit status 2), and a
    ``FloatingPointError`` as before.
    """

    def __str__(self) -> str:
        return (
            f"{super().__str__()}: a baseline_per_year times its multipliers exceeds what "
            "a floating-point number holds; lower them, or give the multipliers a cap"
        )


@dataclass(frozen=True)
class Inputs:
    """What a driver reads; the template cache derives its sharing from this.

    Attributes
    ----------
    doses : frozenset of str
        Drugs whose current dose it reads (it changes where their doses change).
    dose_history : frozenset of str
        Drugs whose past doses it reads (e.g. a weighted cumulative dose).
    exposure : frozenset of str
        Drugs whose exposure it reads through the patient's own PK model, at the
        current dose of that drug and nothing else.
    covariates : frozenset of str
        The patient's covariates it reads (constant over the course).
    time : bool
        Whether it reads time on study (its own breakpoints).
    patient_windows : bool
        Whether it reads windows of the patient's own history (e.g. raised risk
        after an event): a grid with such a driver is never shared.
    """

    doses: frozenset[str] = frozenset()
    dose_history: frozenset[str] = frozenset()
    exposure: frozenset[str] = frozenset()
    covariates: frozenset[str] = frozenset()
    time: bool = False
    patient_windows: bool = False

    @property
    def patient_specific(self) -> bool:
        """Whether the multiplier differs between patients on the same plan."""
        return bool(self.exposure or self.covariates or self.patient_windows)

    @property
    def plan_drugs(self) -> frozenset[str]:
        """The drugs whose schedules the multiplier depends on."""
        return self.doses | self.dose_history | self.exposure

    @property
    def per_dose(self) -> bool:
        """Whether the multiplier is a function of the current dose of its exposure drugs
        and of covariates alone (so it can be looked up by dose: :mod:`sim.hazards.grids`)."""
        return not (self.doses or self.dose_history or self.time or self.patient_windows)


class Driver(ABC):
    """One multiplier of a hazard: what it reads, where it may change, its value.

    A subclass declares :attr:`inputs`, gives :meth:`multiplier` (and
    :meth:`breakpoints` if it changes other than where the doses it reads change)
    and :meth:`examples`, and registers itself with :func:`register_driver`;
    ``tests/hazard_checks.py`` then checks every shortcut of the grids against a
    grid computed from scratch for it.
    """

    #: The scenario's name of the driver (``driver = "..."`` in a multiplier table),
    #: or None for a driver made only through the Python API.
    scenario_name: ClassVar[str | None] = None

    @property
    @abstractmethod
    def inputs(self) -> Inputs:
        """What the multiplier reads."""

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        """Times in (t0, t1) where the multiplier may change (days).

        Default: where the current doses it reads, or that its exposure follows, change.
        """
        inputs = self.inputs
        drugs = inputs.doses | inputs.exposure
        if not drugs:
            return np.empty(0)
        if len(drugs) == 1:
            return inside(plan.schedule(next(iter(drugs))).change_days, t0, t1)
        return np.concatenate([inside(plan.schedule(d).change_days, t0, t1) for d in sorted(drugs)])

    @abstractmethod
    def multiplier(self, iv: Intervals) -> FloatArray:
        """The multiplier on each interval [iv.starts, iv.ends) between breakpoints (>= 0).

        It may return an array that broadcasts against ``iv.starts`` (e.g. ``(P, 1)``
        for a covariate of ``P`` patients).
        """

    @classmethod
    def from_scenario(cls, entry: Any) -> Driver:
        """The driver of a scenario's multiplier table (for classes with a ``scenario_name``)."""
        raise NotImplementedError(f"{cls.__name__} is not made from a scenario table")

    @classmethod
    @abstractmethod
    def examples(cls) -> Sequence[Driver]:
        """A few instances that the shortcut tests check (``tests/hazard_checks.py``)."""


#: Every registered driver class, by class name (in registration order).
DRIVERS: dict[str, type[Driver]] = {}
_BY_SCENARIO_NAME: dict[str, type[Driver]] = {}
D = TypeVar("D", bound=type[Driver])


def register_driver(cls: D) -> D:
    """Register a driver class (a class decorator): the shortcut tests run over every one,
    and a scenario's ``driver = "<scenario_name>"`` makes one."""
    if cls.__name__ in DRIVERS and DRIVERS[cls.__name__] is not cls:
        raise ValueError(f"a driver named {cls.__name__} is already registered")
    # its own scenario name only: a subclass does not take over its parent's
    name = cls.__dict__.get("scenario_name")
    if name is not None:
        if _BY_SCENARIO_NAME.get(name, cls) is not cls:
            raise ValueError(f"the scenario's driver {name!r} is already {_BY_SCENARIO_NAME[name]}")
        _BY_SCENARIO_NAME[name] = cls
    DRIVERS[cls.__name__] = cls
    return cls


def driver_from(m: Multiplier) -> Driver:
    """The driver for a scenario's multiplier entry."""
    cls = _BY_SCENARIO_NAME.get(m.driver)
    if cls is None:  # pragma: no cover - the schema admits only registered names
        raise TypeError(f"unknown multiplier {m!r}")
    return cls.from_scenario(m)


def _capped(m: FloatArray, cap: float | None) -> FloatArray:
    """``m`` cut at the driver's cap, or at :data:`MULTIPLIER_CEILING` without one.

    Values below the ceiling are returned as they are (bit for bit).
    """
    return np.minimum(m, cap if cap is not None else MULTIPLIER_CEILING)


def inside(points: Sequence[float] | FloatArray, t0: float, t1: float) -> FloatArray:
    """The points strictly between ``t0`` and ``t1``, as an array."""
    if isinstance(points, np.ndarray):
        return points[(points > t0) & (points < t1)]
    # a few points (change days, windows): a list beats numpy's per-call overhead
    return np.array([float(p) for p in points if t0 < p < t1], dtype=np.float64)


def _band_values(values: FloatArray, edges: FloatArray, mults: FloatArray) -> FloatArray:
    # a value equal to an edge falls in the band below it
    return mults[edges.searchsorted(values, side="left")]


class _Bands:
    """``edges`` and ``multipliers`` as arrays, made once (drivers are immutable)."""

    edges: tuple[float, ...]
    multipliers: tuple[float, ...]

    @functools.cached_property
    def _edges(self) -> FloatArray:
        return np.array(self.edges, dtype=np.float64)

    @functools.cached_property
    def _mults(self) -> FloatArray:
        return np.array(self.multipliers, dtype=np.float64)

    @classmethod
    def from_scenario(cls, entry: Any) -> Any:
        return cls(tuple(entry.edges), tuple(entry.multipliers))  # type: ignore[call-arg]


class _OfDose:
    """A driver of ``drug``'s current dose: it changes where that dose changes."""

    drug: str

    @property
    def inputs(self) -> Inputs:
        return Inputs(doses=frozenset({self.drug}))

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        return inside(plan.schedule(self.drug).change_days, t0, t1)


class _OfExposure(_OfDose):
    """A driver of ``drug``'s exposure at its current dose (the patient's own PK)."""

    @property
    def inputs(self) -> Inputs:
        return Inputs(exposure=frozenset({self.drug}))


@register_driver
@dataclass(frozen=True)
class CurrentDose(_OfDose, Driver):
    """``per_10_mg ** (dose / 10)``, capped: log-linear in a drug's current dose (mg/day)."""

    per_10_mg: float
    cap: float | None = None
    drug: str = "prednisone"
    scenario_name: ClassVar[str | None] = "prednisone_dose"

    def multiplier(self, iv: Intervals) -> FloatArray:
        with np.errstate(over="ignore"):  # inf is cut to the ceiling below
            m = self.per_10_mg ** (iv.dose(self.drug) / 10.0)
        return _capped(m, self.cap)

    @classmethod
    def from_scenario(cls, entry: Any) -> CurrentDose:
        return cls(entry.per_10_mg, entry.cap, entry.drug or "prednisone")

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls(1.5, cap=4.0), cls(1.2))


@register_driver
@dataclass(frozen=True)
class CurrentDoseBands(_Bands, _OfDose, Driver):
    """A multiplier per band of a drug's current dose (mg/day)."""

    edges: tuple[float, ...]
    multipliers: tuple[float, ...]
    drug: str = "prednisone"
    scenario_name: ClassVar[str | None] = "prednisone_dose_bands"

    def multiplier(self, iv: Intervals) -> FloatArray:
        return _band_values(iv.dose(self.drug), self._edges, self._mults)

    @classmethod
    def from_scenario(cls, entry: Any) -> CurrentDoseBands:
        drug = entry.drug or "prednisone"
        return cls(tuple(entry.edges), tuple(entry.multipliers), drug)

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls((10.0, 30.0), (1.0, 1.5, 2.5)),)


@register_driver
@dataclass(frozen=True)
class WeightedDose(Driver):
    r"""``exp(beta * WCD)``, capped, with the two-exponential weighted cumulative dose.

    :math:`WCD(t) = \sum_j w_j C_j(t)`, :math:`C_j(t) = \int_0^t dose(v) e^{-(t-v)/\tau_j} dv`
    (mg*day; :math:`w_1 = 1`), exact for a daily piecewise-constant dose and held at
    the value at the midpoint of each ``grid_days`` cell.
    """

    beta_per_mg_day: float
    tau_days: tuple[float, float]
    weights: tuple[float, float]
    cap: float | None = None
    grid_days: float = 1.0
    drug: str = "prednisone"
    scenario_name: ClassVar[str | None] = "weighted_cumulative_dose"

    @property
    def inputs(self) -> Inputs:
        return Inputs(dose_history=frozenset({self.drug}))

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        first = np.floor(t0 / self.grid_days) + 1
        return inside(np.arange(first, np.ceil(t1 / self.grid_days)) * self.grid_days, t0, t1)

    def wcd(self, schedule: Schedule, t: npt.ArrayLike) -> FloatArray:
        """The weighted cumulative dose at times ``t`` (days), mg*day."""
        from scipy.signal import lfilter  # imported here: scipy.signal takes a second to load

        t = np.asarray(t, dtype=np.float64)
        n_days = int(np.ceil(t.max())) + 1 if t.size else 1
        daily = np.zeros(n_days + 1)
        given = schedule.daily_doses()[: n_days + 1]
        daily[: given.size] = given
        whole = np.floor(t).astype(np.int64)
        frac = t - whole
        total = np.zeros_like(t)
        for tau, w in zip(self.tau_days, self.weights, strict=True):
            decay = np.exp(-1.0 / tau)
            # C at whole days: C(n+1) = C(n) e^{-1/tau} + dose_n tau (1 - e^{-1/tau})
            at_days = lfilter([tau * (1 - decay)], [1.0, -decay], daily)
            c_n = np.concatenate(([0.0], at_days))[whole]
            partial = np.exp(-frac / tau)
            total += w * (c_n * partial + daily[whole] * tau * (1 - partial))
        return total

    def multiplier(self, iv: Intervals) -> FloatArray:
        g = self.grid_days
        mids = (np.floor(iv.starts / g) + 0.5) * g
        with np.errstate(over="ignore"):  # inf is cut to the ceiling below
            m = np.exp(self.beta_per_mg_day * self.wcd(iv.plan.schedule(self.drug), mids))
        return _capped(m, self.cap)

    @classmethod
    def from_scenario(cls, entry: Any) -> WeightedDose:
        taus = (entry.tau1_days, entry.tau2_days)
        drug = entry.drug or "prednisone"
        return cls(
            entry.beta_per_mg_day, taus, (1.0, entry.weight2), entry.cap, entry.grid_days, drug
        )

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls(1e-4, (30.0, 300.0), (1.0, 0.5), cap=3.0, grid_days=7.0),)


@register_driver
@dataclass(frozen=True)
class MpaAuc(_OfExposure, Driver):
    """``exp(slope * (AUC - reference))``, capped: the steady-state AUC over ``window_h``
    hours at the current dose (for MMF: MPA AUC0-12, mg*h/L)."""

    per_mg_h_per_l: float
    reference_mg_h_per_l: float
    cap: float | None = None
    drug: str = "mmf"
    window_h: float = 12.0
    scenario_name: ClassVar[str | None] = "mpa_auc"

    def multiplier(self, iv: Intervals) -> FloatArray:
        auc = iv.steady_state_auc(self.drug, self.window_h)
        with np.errstate(over="ignore"):  # inf is cut to the ceiling below
            m = np.exp(self.per_mg_h_per_l * (auc - self.reference_mg_h_per_l))
        return _capped(m, self.cap)

    @classmethod
    def from_scenario(cls, entry: Any) -> MpaAuc:
        return cls(entry.per_mg_h_per_l, entry.reference_mg_h_per_l, entry.cap)

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls(0.03, 40.0, cap=3.0), cls(-0.02, 50.0))


@register_driver
@dataclass(frozen=True)
class MpaBands(_Bands, _OfExposure, Driver):
    """A multiplier per band of the steady-state AUC at the current dose (for MMF: MPA
    AUC0-12, mg*h/L)."""

    edges: tuple[float, ...]
    multipliers: tuple[float, ...]
    drug: str = "mmf"
    window_h: float = 12.0
    scenario_name: ClassVar[str | None] = "mpa_auc_bands"

    def multiplier(self, iv: Intervals) -> FloatArray:
        return _band_values(iv.steady_state_auc(self.drug, self.window_h), self._edges, self._mults)

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls((35.0,), (1.5, 1.0)),)


@register_driver
@dataclass(frozen=True)
class TimeBands(_Bands, Driver):
    """A multiplier per band of time on study (days from the first dose)."""

    edges: tuple[float, ...]
    multipliers: tuple[float, ...]
    scenario_name: ClassVar[str | None] = "time_on_study_bands"

    @property
    def inputs(self) -> Inputs:
        return Inputs(time=True)

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        return inside(self.edges, t0, t1)

    def multiplier(self, iv: Intervals) -> FloatArray:
        # an interval starting on an edge belongs to the band above it
        return self._mults[self._edges.searchsorted(iv.starts, side="right")]

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls((100.0,), (1.0, 0.5)),)


@register_driver
@dataclass(frozen=True)
class CovariateBands(_Bands, Driver):
    """A multiplier per band of one of the patient's covariates, constant over the course.

    ``covariate``: ``age_years``, ``weight_kg``, ``fvc_percent`` (the screened value: the
    disease's severity at entry), ``height_cm``, ``female`` (1.0 or 0.0), or a condition
    of the population (1.0 for those who have it: e.g. ``edges = [0.5]``,
    ``multipliers = [1.0, 2.0]`` doubles the hazard of patients with it).
    """

    covariate: str
    edges: tuple[float, ...]
    multipliers: tuple[float, ...]
    scenario_name: ClassVar[str | None] = "covariate_bands"

    @property
    def inputs(self) -> Inputs:
        return Inputs(covariates=frozenset({self.covariate}))

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        return np.empty(0)

    def multiplier(self, iv: Intervals) -> FloatArray:
        value = np.asarray(iv.covariate(self.covariate), dtype=np.float64)
        return _band_values(value, self._edges, self._mults)

    @classmethod
    def from_scenario(cls, entry: Any) -> CovariateBands:
        return cls(entry.covariate, tuple(entry.edges), tuple(entry.multipliers))

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (
            cls("fvc_percent", (60.0, 80.0), (1.8, 1.2, 1.0)),
            cls("age_years", (65.0,), (1.0, 2.0)),
        )


@register_driver
@dataclass(frozen=True)
class Windows(Driver):
    """``factor`` inside each [start, end) window (e.g. death risk after an infection)."""

    windows: tuple[tuple[float, float], ...]
    factor: float

    @property
    def inputs(self) -> Inputs:
        return Inputs(patient_windows=True)

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        return inside([t for w in self.windows for t in w], t0, t1)

    def multiplier(self, iv: Intervals) -> FloatArray:
        starts = iv.starts
        if starts.ndim != 1:
            inside_ = np.zeros(starts.shape, dtype=bool)
            for a, b in self.windows:
                inside_ |= (starts >= a) & (starts < b)
            return np.where(inside_, self.factor, 1.0)
        # one patient's intervals, in order: each window is a run of them
        m = np.ones(starts.shape)
        for a, b in self.windows:
            m[starts.searchsorted(a) : starts.searchsorted(b)] = self.factor
        return m

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls(((20.5, 50.5), (200.25, 230.25)), 3.0),)


@dataclass(frozen=True)
class Hazard:
    """A named hazard: ``baseline_per_year`` x the product of its drivers' multipliers.

    Attributes
    ----------
    name : str
    baseline_per_year : float
        Rate with every multiplier at 1, events per year.
    drivers : tuple of Driver
    """

    name: str
    baseline_per_year: float
    drivers: tuple[Driver, ...] = field(default_factory=tuple)

    @classmethod
    def from_adverse_event(cls, name: str, ae: AdverseEvent) -> Hazard:
        """The hazard of a scenario's ``[adverse_events.<name>]`` table."""
        return cls(name, ae.baseline_per_year, tuple(driver_from(m) for m in ae.multipliers))

    def with_driver(self, driver: Driver) -> Hazard:
        """This hazard with one more multiplier."""
        return Hazard(self.name, self.baseline_per_year, (*self.drivers, driver))

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        """Where this hazard may change in (t0, t1)."""
        if not self.drivers:
            return np.empty(0)
        return np.concatenate([d.breakpoints(plan, t0, t1) for d in self.drivers])

    def rate_per_day(self, plan: Plan, starts: FloatArray, ends: FloatArray) -> FloatArray:
        """The hazard (events per day) on each interval between breakpoints."""
        return self.rate_on(Intervals(plan, starts, ends))

    def rate_on(self, iv: Intervals) -> FloatArray:
        """The hazard (events per day) on intervals whose inputs are shared with others."""
        rate = np.full(iv.starts.shape, self.baseline_per_year / DAYS_PER_YEAR)
        for d in self.drivers:
            rate = rate * d.multiplier(iv)
        return rate


def sorted_edges(points: Iterable[float], *more: FloatArray) -> FloatArray:
    """The distinct points, sorted (a set and a sort beat np.unique on a few dozen)."""
    cuts = set(points)
    for a in more:
        cuts.update(a.tolist())
    return np.array(sorted(cuts))


def check_rates(rates: FloatArray) -> None:
    """Refuse rates that are not finite and >= 0 (:class:`RateOverflow`)."""
    # the sum is finite only if every rate is (NaN and infinity both spread)
    if not (rates.min() >= 0 and math.isfinite(rates.sum())):
        raise RateOverflow("a hazard gave a rate that is not finite")
