r"""Hazards of adverse events and dropout, and exact event-time sampling over a dose plan.

A hazard is a baseline rate times multipliers from drivers:

.. math:: h(t) = h_0 \prod_i m_i(x_i(t)),

where the drivers :math:`x_i` are read off the patient's planned schedules
(current prednisone dose, weighted cumulative dose, MPA AUC0-12 at the current
MMF dose, time on study). Each driver says where its value can change
(``breakpoints``) and what its multiplier is on each interval
(``_multiplier``); the base class checks the result. On the intervals between
all breakpoints every hazard is constant, so the cumulative hazard
:math:`H(t)` is piecewise linear and the time of the next event is found
exactly by solving :math:`H(t) = E`, :math:`E \sim \mathrm{Exp}(1)`. Every
hazard of a patient is computed on one common grid in one numpy pass.

Drivers that change continuously (the weighted cumulative dose) are held at
their value at the midpoint of each ``grid_days`` cell; ``tests/validation``
measures that error against a fine grid.
"""

from __future__ import annotations

import bisect
import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from sim.errors import DosesimError
from sim.exposure import OralOneCompartment, steady_state_window_auc
from sim.scenario import (
    AdverseEvent,
    DoseBands,
    DoseLogLinear,
    MpaAucBands,
    MpaAucLogLinear,
    Multiplier,
    TimeOnStudyBands,
    WeightedCumulativeDose,
)
from sim.schedule import Schedule

__all__ = [
    "DAYS_PER_YEAR",
    "Driver",
    "Hazard",
    "HazardGrid",
    "Intervals",
    "Plan",
    "cumulative_hazards",
    "driver_from",
    "next_event_times",
    "pk_level_multipliers",
    "plan_grids",
    "template_cache",
]

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


_SHARED_GRIDS_MAX = 20_000
MMF_LEVELS = ("mmf levels",)
"""Key of a template cache's MMF doses: mg/day -> column of :func:`pk_level_multipliers`."""
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Plan:
    """What the drivers read: a patient's planned schedules and MPA pharmacokinetics.

    Attributes
    ----------
    prednisone : Schedule
        Planned (and, before now, realised) prednisone, mg/day.
    mmf : Schedule
        Planned MMF, mg/day.
    mpa : OralOneCompartment or None
        The patient's MPA model, for drivers on MPA AUC0-12.
    """

    prednisone: Schedule
    mmf: Schedule
    mpa: OralOneCompartment | None = None


class Intervals:
    """Intervals [starts, ends) of a plan, with the drivers' inputs computed once and shared.

    Every driver of every hazard reads the same current doses and MPA AUC on the
    same intervals, so they are computed on first use and kept.
    """

    def __init__(
        self,
        plan: Plan,
        starts: FloatArray,
        ends: FloatArray,
        mmf_mg_per_day: FloatArray | None = None,
    ) -> None:
        self.plan, self.starts, self.ends = plan, starts, ends
        self._cache: dict[str, FloatArray] = {}
        if mmf_mg_per_day is not None:  # already known (a plan template keeps it)
            self._cache["mmf"] = mmf_mg_per_day

    @property
    def prednisone_mg_per_day(self) -> FloatArray:
        """Current prednisone dose on each interval, mg/day."""
        if "pred" not in self._cache:
            self._cache["pred"] = self.plan.prednisone.dose_at(self.starts)
        return self._cache["pred"]

    @property
    def mmf_mg_per_day(self) -> FloatArray:
        """Current MMF dose on each interval, mg/day."""
        if "mmf" not in self._cache:
            self._cache["mmf"] = self.plan.mmf.dose_at(self.starts)
        return self._cache["mmf"]

    @property
    def mpa_auc0_12(self) -> FloatArray:
        """Steady-state MPA AUC0-12 at the current MMF dose on each interval, mg*h/L."""
        if "auc" not in self._cache:
            if self.plan.mpa is None:
                raise ValueError("a hazard driven by MPA AUC needs the patient's MPA model")
            self._cache["auc"] = steady_state_window_auc(
                self.plan.mpa, self.mmf_mg_per_day, self.plan.mmf.doses_per_day, 12.0
            )
        return self._cache["auc"]


class Driver(ABC):
    """One multiplier of a hazard. Subclasses give the maths; the base checks it."""

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        """Times in (t0, t1) where the multiplier may change (days). Default: none."""
        return np.empty(0)

    @abstractmethod
    def _multiplier(self, iv: Intervals) -> FloatArray:
        """The multiplier on each interval [iv.starts, iv.ends) between breakpoints."""

    def multiplier(self, plan: Plan, starts: FloatArray, ends: FloatArray) -> FloatArray:
        """The multiplier on each interval, checked finite and >= 0."""
        return self._checked(Intervals(plan, starts, ends))

    def _checked(self, iv: Intervals) -> FloatArray:
        m = np.asarray(self._multiplier(iv), dtype=np.float64)
        if not np.all(np.isfinite(m) & (m >= 0)):
            raise RateOverflow(f"{type(self).__name__} gave a multiplier that is not finite")
        return m


def _capped(m: FloatArray, cap: float | None) -> FloatArray:
    """``m`` cut at the driver's cap, or at :data:`MULTIPLIER_CEILING` without one.

    Values below the ceiling are returned as they are (bit for bit).
    """
    return np.minimum(m, cap if cap is not None else MULTIPLIER_CEILING)


def _inside(points: Sequence[float] | FloatArray, t0: float, t1: float) -> FloatArray:
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


@dataclass(frozen=True)
class CurrentDose(Driver):
    """``per_10_mg ** (dose / 10)``, capped: log-linear in the current prednisone dose."""

    per_10_mg: float
    cap: float | None = None

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        return _inside(plan.prednisone.change_days, t0, t1)

    def _multiplier(self, iv: Intervals) -> FloatArray:
        with np.errstate(over="ignore"):  # inf is cut to the ceiling below
            m = self.per_10_mg ** (iv.prednisone_mg_per_day / 10.0)
        return _capped(m, self.cap)


@dataclass(frozen=True)
class CurrentDoseBands(_Bands, Driver):
    """A multiplier per band of the current prednisone dose (mg/day)."""

    edges: tuple[float, ...]
    multipliers: tuple[float, ...]

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        return _inside(plan.prednisone.change_days, t0, t1)

    def _multiplier(self, iv: Intervals) -> FloatArray:
        return _band_values(iv.prednisone_mg_per_day, self._edges, self._mults)


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

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        first = np.floor(t0 / self.grid_days) + 1
        return _inside(np.arange(first, np.ceil(t1 / self.grid_days)) * self.grid_days, t0, t1)

    def wcd(self, prednisone: Schedule, t: npt.ArrayLike) -> FloatArray:
        """The weighted cumulative dose at times ``t`` (days), mg*day."""
        from scipy.signal import lfilter  # imported here: scipy.signal takes a second to load

        t = np.asarray(t, dtype=np.float64)
        n_days = int(np.ceil(t.max())) + 1 if t.size else 1
        daily = np.zeros(n_days + 1)
        given = prednisone.daily_doses()[: n_days + 1]
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

    def _multiplier(self, iv: Intervals) -> FloatArray:
        g = self.grid_days
        mids = (np.floor(iv.starts / g) + 0.5) * g
        with np.errstate(over="ignore"):  # inf is cut to the ceiling below
            m = np.exp(self.beta_per_mg_day * self.wcd(iv.plan.prednisone, mids))
        return _capped(m, self.cap)


@dataclass(frozen=True)
class MpaAuc(Driver):
    """``exp(slope * (AUC0-12 - reference))``, capped, at the current MMF dose (steady state)."""

    per_mg_h_per_l: float
    reference_mg_h_per_l: float
    cap: float | None = None

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        return _inside(plan.mmf.change_days, t0, t1)

    def _multiplier(self, iv: Intervals) -> FloatArray:
        auc = iv.mpa_auc0_12
        with np.errstate(over="ignore"):  # inf is cut to the ceiling below
            m = np.exp(self.per_mg_h_per_l * (auc - self.reference_mg_h_per_l))
        return _capped(m, self.cap)


@dataclass(frozen=True)
class MpaBands(_Bands, Driver):
    """A multiplier per band of MPA AUC0-12 (mg*h/L) at the current MMF dose."""

    edges: tuple[float, ...]
    multipliers: tuple[float, ...]

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        return _inside(plan.mmf.change_days, t0, t1)

    def _multiplier(self, iv: Intervals) -> FloatArray:
        return _band_values(iv.mpa_auc0_12, self._edges, self._mults)


@dataclass(frozen=True)
class TimeBands(_Bands, Driver):
    """A multiplier per band of time on study (days from the first dose)."""

    edges: tuple[float, ...]
    multipliers: tuple[float, ...]

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        return _inside(self.edges, t0, t1)

    def _multiplier(self, iv: Intervals) -> FloatArray:
        # an interval starting on an edge belongs to the band above it
        return self._mults[self._edges.searchsorted(iv.starts, side="right")]


@dataclass(frozen=True)
class Windows(Driver):
    """``multiplier`` inside each [start, end) window (e.g. death risk after an infection)."""

    windows: tuple[tuple[float, float], ...]
    factor: float

    def breakpoints(self, plan: Plan, t0: float, t1: float) -> FloatArray:
        return _inside([t for w in self.windows for t in w], t0, t1)

    def _multiplier(self, iv: Intervals) -> FloatArray:
        starts = iv.starts
        if starts.ndim != 1:
            inside = np.zeros(starts.shape, dtype=bool)
            for a, b in self.windows:
                inside |= (starts >= a) & (starts < b)
            return np.where(inside, self.factor, 1.0)
        # one patient's intervals, in order: each window is a run of them
        m = np.ones(starts.shape)
        for a, b in self.windows:
            m[starts.searchsorted(a) : starts.searchsorted(b)] = self.factor
        return m


def driver_from(m: Multiplier) -> Driver:
    """The driver for a scenario's multiplier entry."""
    if isinstance(m, DoseLogLinear):
        return CurrentDose(m.per_10_mg, m.cap)
    if isinstance(m, DoseBands):
        return CurrentDoseBands(tuple(m.edges), tuple(m.multipliers))
    if isinstance(m, WeightedCumulativeDose):
        return WeightedDose(
            m.beta_per_mg_day, (m.tau1_days, m.tau2_days), (1.0, m.weight2), m.cap, m.grid_days
        )
    if isinstance(m, MpaAucLogLinear):
        return MpaAuc(m.per_mg_h_per_l, m.reference_mg_h_per_l, m.cap)
    if isinstance(m, MpaAucBands):
        return MpaBands(tuple(m.edges), tuple(m.multipliers))
    if isinstance(m, TimeOnStudyBands):
        return TimeBands(tuple(m.edges), tuple(m.multipliers))
    raise TypeError(f"unknown multiplier {m!r}")  # pragma: no cover


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
        return self._rate(Intervals(plan, starts, ends))

    def _rate(self, iv: Intervals) -> FloatArray:
        rate = np.full(iv.starts.shape, self.baseline_per_year / DAYS_PER_YEAR)
        for d in self.drivers:
            rate = rate * d._multiplier(iv)
        return rate


def _grid(
    hazards: Sequence[Hazard], plan: Plan, t0: float, t1: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    cuts = [np.array([t0, t1])] + [h.breakpoints(plan, t0, t1) for h in hazards]
    edges = np.unique(np.concatenate(cuts))
    starts, ends = edges[:-1], edges[1:]
    iv = Intervals(plan, starts, ends)
    rates = np.vstack([h._rate(iv) for h in hazards])
    if not np.all(np.isfinite(rates) & (rates >= 0)):  # one check for every driver
        bad = [h.name for h, r in zip(hazards, rates, strict=True) if not np.all(np.isfinite(r))]
        raise RateOverflow(f"hazard(s) {', '.join(bad)} gave a rate that is not finite")
    return starts, ends, rates


_NO_WINDOWS: dict[int, tuple[Sequence[Hazard], bool]] = {}


def _has_windows(hazards: Sequence[Hazard]) -> bool:
    """Whether any hazard has windows (patient-specific breakpoints); remembered per list."""
    entry = _NO_WINDOWS.get(id(hazards))
    if entry is None or entry[0] is not hazards:
        if len(_NO_WINDOWS) >= 64:
            _NO_WINDOWS.clear()
        entry = (hazards, any(isinstance(d, Windows) for h in hazards for d in h.drivers))
        _NO_WINDOWS[id(hazards)] = entry
    return entry[1]


class HazardGrid:
    """Every hazard of a patient over a whole plan: piecewise-constant rates, cumulative hazard.

    Built once per plan (from day 0, so the cumulative hazard includes the
    history); a plan change from day d leaves the cumulative hazard before d as
    it was, so absolute thresholds on this scale stay valid across changes.
    """

    starts: FloatArray
    ends: FloatArray
    rates: FloatArray
    cum: FloatArray

    def __init__(
        self,
        hazards: Sequence[Hazard],
        plan: Plan,
        t1: float,
        shared: dict[tuple[Any, ...], Any] | None = None,
        extra: dict[int, Driver] | None = None,
        pk_levels: FloatArray | None = None,
    ) -> None:
        """Parameters: the hazards, the plan, the end of follow-up ``t1`` (days), optionally
        ``shared`` (plan grids shared between patients, see :func:`plan_grids`),
        ``extra``: one more driver per hazard index (e.g. a patient's windows of raised
        risk), whose breakpoints split the shared grid, and ``pk_levels``: the patient's
        multipliers of the hazards that read PK at the cache's MMF doses
        (:func:`pk_level_multipliers`), looked up instead of computed again.
        """
        own: list[int] = []
        checked = False  # rates checked finite and >= 0 but for an overflow
        if shared is None or _has_windows(hazards):
            starts, ends, rates = _grid(hazards, plan, 0.0, t1)
            widths = ends - starts
            split = starts.tolist()
        else:
            tpl = _template(hazards, plan, t1, shared)
            starts, ends, widths, rates, own = tpl.starts, tpl.ends, tpl.widths, tpl.rates, tpl.own
            split = tpl.starts_list
            if own:
                rates = rates.copy()  # the template's rows are shared: never written
                if pk_levels is not None and tpl.level_col is not None:
                    # a PK multiplier reads nothing but the interval's MMF dose; both
                    # factors were checked finite and >= 0, so only their product's
                    # overflow is left to check (on the cumulative hazard, below)
                    rates[own] = tpl.own_rates * pk_levels.take(tpl.level_col, 1)
                    checked = True
                else:
                    iv = Intervals(plan, starts, ends, tpl.mmf_mg_per_day)
                    for i in own:
                        rates[i] *= _pk_multiplier(hazards[i], iv)
        if extra:
            cuts = {t for d in extra.values() for t in d.breakpoints(plan, 0.0, t1).tolist()}
            cuts.difference_update(split)
            if cuts:
                new = sorted(cuts.union(split))
                rates = rates.take([bisect.bisect_right(split, x) - 1 for x in new], 1)
                starts, ends = np.array(new), np.array([*new[1:], t1])
                widths = ends - starts
            else:
                rates = rates.copy()
            iv = Intervals(plan, starts, ends)
            for i, driver in extra.items():
                rates[i] *= driver._multiplier(iv)
        if extra or (own and not checked):
            _check_rates(rates)
        cum = np.zeros((len(hazards), starts.size + 1))
        np.add.accumulate(rates * widths, 1, out=cum[:, 1:])  # what np.cumsum does
        if checked and not math.isfinite(cum[:, -1].sum()):
            raise RateOverflow("a hazard gave a rate that is not finite")
        self._set(starts, ends, rates, cum)

    def _set(
        self, starts: FloatArray, ends: FloatArray, rates: FloatArray, cum: FloatArray
    ) -> None:
        self.starts, self.ends, self.rates, self.cum = starts, ends, rates, cum

    @classmethod
    def _of(
        cls, starts: FloatArray, ends: FloatArray, rates: FloatArray, cum: FloatArray
    ) -> HazardGrid:
        """A grid from arrays already computed (one patient's slice of :func:`plan_grids`)."""
        grid = object.__new__(cls)
        grid._set(starts, ends, rates, cum)
        return grid

    def at(self, t: float) -> FloatArray:
        """Each hazard's cumulative hazard from day 0 to ``t``."""
        j = min(max(int(self.starts.searchsorted(t, side="right")) - 1, 0), self.starts.size - 1)
        return self.cum[:, j] + self.rates[:, j] * max(t - self.starts[j], 0.0)

    def crossing_one(self, k: int, target: float) -> float:
        """:meth:`crossing` for hazard ``k`` alone (the same arithmetic)."""
        cum = self.cum[k]
        idx = int(cum[1:].searchsorted(target, side="left"))  # cum[1:] never decreases
        if idx >= self.starts.size:
            return math.inf
        return self.starts.item(idx) + (target - cum.item(idx)) / self.rates.item(k, idx)

    def crossing(self, targets: FloatArray) -> FloatArray:
        """When each hazard's cumulative hazard reaches its target (``inf`` if never)."""
        starts, rates, cum = self.starts, self.rates, self.cum
        n = starts.size
        # how many intervals end below each target: the crossing is in the next one
        idx = np.add.reduce(cum[:, 1:] < targets[:, None], 1).tolist()
        times = []
        for h, i in enumerate(idx):  # a few hazards: plain floats beat numpy's overhead
            if i >= n:
                times.append(math.inf)
                continue
            rate = rates.item(h, i)
            if not rate > 0:  # only for a target of 0 on a zero rate: numpy's 0/0
                return _crossing(starts, rates, cum, targets)
            times.append(starts.item(i) + (targets.item(h) - cum.item(h, i)) / rate)
        return np.array(times)


def _crossing(
    starts: FloatArray, rates: FloatArray, cum: FloatArray, targets: FloatArray
) -> FloatArray:
    """Crossing times: rates ``([P,] H, I)``, cum ``([P,] H, I + 1)``, targets ``([P,] H)``;
    starts ``(I,)``, or ``(P, I)`` for patients on grids of their own."""
    n = starts.shape[-1]
    idx = (cum[..., 1:] < targets[..., None]).sum(axis=-1)
    j = np.minimum(idx, n - 1).ravel()
    cells = np.arange(j.size)
    rate = rates.reshape(-1, n)[cells, j]
    before = cum.reshape(-1, n + 1)[cells, j]
    if starts.ndim == 1:
        at = starts[j]
    else:  # one row of starts per patient, shared by their hazards
        at = starts[cells // targets.shape[-1], j]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        times = at + (targets.ravel() - before) / rate
    return np.where(idx < n, times.reshape(idx.shape), np.inf)


def _patient_specific(h: Hazard) -> bool:
    """Whether a hazard depends on more than the plan (the patient's PK, their windows)."""
    return any(isinstance(d, MpaAuc | MpaBands | Windows) for d in h.drivers)


def _reads_pk(d: Driver) -> bool:
    """Whether a driver reads the patient's PK; these are also the only ones reading MMF.

    Their multipliers change only where the MMF dose changes (:func:`_template`
    relies on this).
    """
    return isinstance(d, MpaAuc | MpaBands)


def _pk_multiplier(h: Hazard, iv: Intervals) -> FloatArray:
    """The product of a hazard's multipliers that read the patient's PK."""
    m: Any = None
    for d in h.drivers:
        if _reads_pk(d):
            m = d._multiplier(iv) if m is None else m * d._multiplier(iv)
    return np.asarray(1.0 if m is None else m, dtype=np.float64)


def _sorted_edges(points: Iterable[float], *more: FloatArray) -> FloatArray:
    """The distinct points, sorted (a set and a sort beat np.unique on a few dozen)."""
    cuts = set(points)
    for a in more:
        cuts.update(a.tolist())
    return np.array(sorted(cuts))


def _check_rates(rates: FloatArray) -> None:
    # the sum is finite only if every rate is (NaN and infinity both spread)
    if not (rates.min() >= 0 and math.isfinite(rates.sum())):
        raise RateOverflow("a hazard gave a rate that is not finite")


class _Template(NamedTuple):
    """A plan's intervals and the plan's part of every rate, shared by the patients on it."""

    starts: FloatArray
    ends: FloatArray
    widths: FloatArray
    """``ends - starts``, days."""
    rates: FloatArray
    """The plan's part of each hazard's rate on each interval, per day (hazards x intervals)."""
    own: list[int]
    """The hazards (rows) that a patient's own PK multiplies."""
    mmf_mg_per_day: FloatArray
    """The MMF dose on each interval."""
    starts_list: list[float]
    """``starts`` as floats, for merging with other breakpoints."""
    own_rates: FloatArray
    """``rates[own]``."""
    level_col: npt.NDArray[np.intp] | None
    """Each interval's MMF dose as a column of the cache's MMF doses (None: not all are)."""


class _PrednisoneTemplate(NamedTuple):
    """The plan's part of every rate on the prednisone schedule's breakpoints (no MMF's)."""

    starts: list[float]
    ends: FloatArray
    rates: FloatArray
    own: list[int]
    reads_pk: bool


def template_cache(mmf_levels: Sequence[float] = ()) -> dict[tuple[Any, ...], Any]:
    """An empty cache of plan templates, with the MMF doses (mg/day) at which the
    patients' PK multipliers are looked up (:func:`pk_level_multipliers`)."""
    return {MMF_LEVELS: {dose: j for j, dose in enumerate(mmf_levels)}}


def _remember(shared: dict[tuple[Any, ...], Any], key: tuple[Any, ...], entry: Any) -> None:
    """Keep ``entry`` in a template cache; a full cache is emptied first (its hazards and MMF
    doses kept)."""
    if len(shared) >= _SHARED_GRIDS_MAX:
        keep = {k: shared[k] for k in (("hazards",), MMF_LEVELS) if k in shared}
        shared.clear()
        shared.update(keep)
    shared[key] = entry


def _template(
    hazards: Sequence[Hazard], plan: Plan, t1: float, shared: dict[tuple[Any, ...], Any]
) -> _Template:
    """A plan's intervals, plan-only rates and MMF doses, computed once and shared.

    Patients on the same schedules (the same start dose, no modification yet)
    share the breakpoints and every rate that depends only on the plan; the rows
    of hazards driven by a patient's own PK (``own``) hold the part of the rate
    that depends on the plan, for each patient to multiply by their own part.
    Only the PK drivers read the MMF plan, and they change only where the MMF
    dose does, so the plan's part of every rate depends on prednisone alone: it
    is computed once per prednisone schedule and split at the MMF plan's change
    days (a dose change of MMF costs no new rates). Entries hold the schedules
    themselves, so an identity check guards against reused ids. Hazards with
    windows (patient-specific breakpoints) are never shared.
    """
    if shared.setdefault(("hazards",), hazards) is not hazards:
        raise ValueError("a cache of plan templates serves one list of hazards")
    key = (id(plan.prednisone), id(plan.mmf))
    entry = shared.get(key)
    if entry is not None and entry[0] is plan.prednisone and entry[1] is plan.mmf:
        return entry[2]
    pred = _prednisone_template(hazards, plan, t1, shared)
    mmf = plan.mmf
    # a few dozen points: sorted lists and bisect beat numpy's per-call overhead
    split = pred.starts
    if pred.reads_pk:
        cuts = {float(d) for d in mmf.change_days if 0 < d < t1}.difference(split)
        if cuts:
            split = sorted(cuts.union(split))
    if split is pred.starts:
        rates = pred.rates
    else:
        rates = pred.rates.take([bisect.bisect_right(pred.starts, x) - 1 for x in split], 1)
    days, doses, end = mmf.change_days, mmf.doses_mg_per_day, mmf.end_day
    mmf_mg = [doses[bisect.bisect_right(days, x) - 1] if 0 <= x < end else 0.0 for x in split]
    starts = np.array(split)
    ends = np.array([*split[1:], t1])
    mmf_arr = np.array(mmf_mg, dtype=float)
    column = shared.get(MMF_LEVELS)
    level_col = None
    if column is not None and pred.own:
        cols = [column.get(dose, -1) for dose in mmf_mg]
        if -1 not in cols:  # else the PK part is computed afresh
            level_col = np.array(cols, dtype=np.intp)
    own_rates = rates.take(pred.own, 0)
    tpl = _Template(
        starts, ends, ends - starts, rates, pred.own, mmf_arr, split, own_rates, level_col
    )
    _remember(shared, key, (plan.prednisone, plan.mmf, tpl))
    return tpl


def _prednisone_template(
    hazards: Sequence[Hazard], plan: Plan, t1: float, shared: dict[tuple[Any, ...], Any]
) -> _PrednisoneTemplate:
    """The plan's part of every rate, on the breakpoints of every driver but the PK ones."""
    key = ("prednisone", id(plan.prednisone))
    entry = shared.get(key)
    if entry is not None and entry[0] is plan.prednisone:
        return entry[1]
    parts = shared.get(("plan parts", id(hazards)))
    if parts is None or parts[0] is not hazards:
        plan_parts = [
            Hazard(h.name, h.baseline_per_year, tuple(d for d in h.drivers if not _reads_pk(d)))
            for h in hazards
        ]
        own = [i for i, h in enumerate(hazards) if _patient_specific(h)]
        reads_pk = any(_reads_pk(d) for h in hazards for d in h.drivers)
        parts = (hazards, plan_parts, own, reads_pk)
        shared[("plan parts", id(hazards))] = parts
    _, plan_parts, own, reads_pk = parts
    edges = _sorted_edges((0.0, t1), *(h.breakpoints(plan, 0.0, t1) for h in plan_parts))
    starts, ends = edges[:-1], edges[1:]
    iv = Intervals(Plan(plan.prednisone, plan.mmf), starts, ends)
    rates = np.vstack([h._rate(iv) for h in plan_parts])
    _check_rates(rates)
    pred = _PrednisoneTemplate(starts.tolist(), ends, rates, own, reads_pk)
    _remember(shared, key, (plan.prednisone, pred))
    return pred


def plan_grids(
    hazards: Sequence[Hazard],
    plans: Sequence[Plan],
    group: npt.NDArray[np.int64],
    mpa: OralOneCompartment | None,
    t1: float,
    shared: dict[tuple[Any, ...], Any],
    targets: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Many patients at once, each on one of a few plans: rates, cumulative hazards, crossings.

    Patient ``p`` follows ``plans[group[p]]``; the plans share one MMF schedule
    (they differ in prednisone, e.g. by start dose). Each plan's intervals come
    from its shared template, padded to a common width with empty intervals at
    ``t1`` (zero width, zero rate), so every patient is computed in the same
    numpy operations.

    Parameters
    ----------
    hazards : sequence of Hazard
        Without windows (those are patient-specific breakpoints).
    plans : sequence of Plan
    group : array of int, shape (P,)
    mpa : OralOneCompartment or None
        The patients' MPA models as arrays of shape ``(P, 1)``; None when no
        hazard reads it.
    t1 : float
        End of follow-up, days.
    shared : dict
        The templates' cache (:class:`HazardGrid`).
    targets : array, shape (P, hazards)
        Each hazard's threshold on the cumulative hazard from day 0.

    Returns
    -------
    starts, ends : array, shape (P, intervals)
    rates : array, shape (P, hazards, intervals)
    cum : array, shape (P, hazards, intervals + 1)
    times : array, shape (P, hazards)
        When each hazard of each patient reaches its target (``inf`` if never).
    """
    if _has_windows(hazards):
        raise ValueError("plan_grids does not take hazards with windows")
    if any(plan.mmf is not plans[0].mmf for plan in plans):
        raise ValueError("plan_grids takes plans with one MMF schedule")
    templates = [_template(hazards, plan, t1, shared) for plan in plans]
    width = max(t.starts.size for t in templates)
    starts_g = np.full((len(plans), width), float(t1))
    ends_g = starts_g.copy()
    rates_g = np.zeros((len(plans), len(hazards), width))
    mmf_g = np.zeros((len(plans), width))  # no dose on the padding (at t1)
    for g, tpl in enumerate(templates):
        size = tpl.starts.size
        starts_g[g, :size], ends_g[g, :size], rates_g[g, :, :size] = tpl.starts, tpl.ends, tpl.rates
        mmf_g[g, :size] = tpl.mmf_mg_per_day
    starts, ends, rates = starts_g[group], ends_g[group], rates_g[group]
    own = templates[0].own
    if own:
        iv = Intervals(Plan(plans[0].prednisone, plans[0].mmf, mpa), starts, ends, mmf_g[group])
        for i in own:
            rates[:, i, :] *= _pk_multiplier(hazards[i], iv)
        _check_rates(rates)
    cum = np.zeros((group.size, len(hazards), width + 1))
    np.cumsum(rates * (ends - starts)[:, None, :], axis=2, out=cum[:, :, 1:])
    return starts, ends, rates, cum, _crossing(starts, rates, cum, targets)


def pk_level_multipliers(
    hazards: Sequence[Hazard], plan: Plan, shared: dict[tuple[Any, ...], Any]
) -> FloatArray | None:
    """Patients' multipliers of the hazards that read PK, at each MMF dose of a template cache.

    Parameters
    ----------
    hazards : sequence of Hazard
    plan : Plan
        With the patients' MPA models as arrays of shape ``(P, 1)`` (the PK
        drivers read those, and the MMF schedule's doses per day).
    shared : dict
        A template cache (:func:`template_cache`): its MMF doses, in the column
        order its templates look them up in.

    Returns
    -------
    array of shape (P, hazards that read PK, MMF doses), or None
        In the order of the plan templates' ``own`` rows; None when the cache
        has no MMF doses, no hazard reads PK, one has windows, or a multiplier
        is not finite and >= 0 at some dose (which may never be reached: the
        grids then compute it and refuse it only where it is). The PK drivers
        read nothing but the MMF dose, so the multiplier at a dose is the one
        on any interval at that dose (the same elementwise arithmetic), for
        :class:`HazardGrid`.
    """
    levels = list(shared.get(MMF_LEVELS, ()))
    own = [i for i, h in enumerate(hazards) if _patient_specific(h)]
    if (
        not levels
        or not own
        or any(isinstance(d, Windows) for i in own for d in hazards[i].drivers)
    ):
        return None
    assert plan.mpa is not None
    n = np.asarray(plan.mpa.cl_l_per_h).shape[0]
    doses = np.broadcast_to(np.asarray(levels, dtype=np.float64), (n, len(levels)))
    iv = Intervals(plan, doses, doses, doses)  # starts and ends are not read by PK drivers
    out = np.empty((n, len(own), len(levels)))
    for j, i in enumerate(own):
        out[:, j, :] = _pk_multiplier(hazards[i], iv)
    if not (np.isfinite(out).all() and out.min(initial=0.0) >= 0):
        return None  # computed afresh where reached, and refused there as before
    return out


def cumulative_hazards(
    hazards: Sequence[Hazard], plan: Plan, t0: float, t: npt.ArrayLike
) -> FloatArray:
    """Each hazard's cumulative hazard from ``t0`` to each time in ``t`` (shape hazards x times)."""
    times = np.atleast_1d(np.asarray(t, dtype=np.float64))
    t1 = float(times.max())
    if t1 <= t0:
        return np.zeros((len(hazards), times.size))
    starts, ends, rates = _grid(hazards, plan, t0, t1)
    cum = np.concatenate(
        (np.zeros((len(hazards), 1)), np.cumsum(rates * (ends - starts), axis=1)), axis=1
    )
    idx = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, starts.size - 1)
    within = np.clip(times - starts[idx], 0.0, None)
    out = cum[:, idx] + rates[:, idx] * within
    return np.where(times > t0, out, 0.0)


def next_event_times(
    hazards: Sequence[Hazard],
    plan: Plan,
    t0: float,
    t1: float,
    thresholds: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """When each hazard's cumulative hazard from ``t0`` reaches its threshold.

    Parameters
    ----------
    hazards : sequence of Hazard
    plan : Plan
        The patient's plan from ``t0`` on.
    t0, t1 : float
        Now and the end of follow-up (days from the first dose).
    thresholds : array_like
        One Exp(1) draw (or remaining residual) per hazard.

    Returns
    -------
    times : array
        Event time per hazard (days); ``inf`` when the threshold is not
        reached before ``t1``.
    total : array
        Each hazard's cumulative hazard over [t0, t1).
    """
    e = np.asarray(thresholds, dtype=np.float64)
    if t1 <= t0:
        return np.full(len(hazards), np.inf), np.zeros(len(hazards))
    starts, ends, rates = _grid(hazards, plan, t0, t1)
    cum = np.cumsum(rates * (ends - starts), axis=1)
    idx = (cum < e[:, None]).sum(axis=1)
    hit = idx < starts.size
    j = np.minimum(idx, starts.size - 1)
    rows = np.arange(len(hazards))
    before = np.where(j > 0, cum[rows, np.maximum(j - 1, 0)], 0.0)
    rate = rates[rows, j]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        times = np.where(hit, starts[j] + (e - before) / rate, np.inf)
    return times, cum[:, -1]
