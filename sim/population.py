"""Virtual patients: covariates drawn from the scenario's population, and eligibility screening.

Every screened person takes one fixed-length row of uniform draws
(:mod:`sim.draws` says which draw is which), so a change to one part of a scenario
leaves every other draw as it was, and a site's people can be drawn one at a time or
in blocks of any size with the same result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri

from sim.draws import (
    COVARIATE_DRAWS,
    DRAWS_PER_PERSON,
    EVENTS_AT,
    PK_AT,
    THRESHOLDS_AT,
)
from sim.person_streams import HEIGHT_TAG, condition_tag, person_uniforms
from sim.scenario import (
    EXCLUSION_CONDITIONS,
    EligibilitySettings,
    PopulationSettings,
    Scenario,
)

__all__ = [
    "Candidate",
    "People",
    "PeopleSource",
    "draw_people",
    "eligibility_probability",
    "first_blocks",
    "screening_criteria",
]

_SMALLEST_U = 2.0**-53  # keeps the inverse normal CDF finite for a draw of exactly 0


@dataclass(frozen=True)
class Candidate:
    """One screened person and the screening outcome.

    Attributes
    ----------
    person : int
        Index of the person among those screened (their stream's address).
    female : bool
    age_years : float
    weight_kg : float
    fvc_percent : float
        Baseline FVC, % predicted.
    conditions : frozenset of str
        Exclusion conditions the person has (names from ``EXCLUSION_CONDITIONS``).
    start_mg_per_kg : float or None
        The person's prednisone start dose when the population draws it
        (``start_mg_per_kg_low/high``); None means the protocol's dose.
    failed : tuple of str
        Every eligibility criterion the person fails; empty when eligible.
    """

    person: int
    female: bool
    age_years: float
    weight_kg: float
    fvc_percent: float
    conditions: frozenset[str]
    start_mg_per_kg: float | None
    failed: tuple[str, ...]

    @property
    def eligible(self) -> bool:
        """True when no criterion failed."""
        return not self.failed


@dataclass(frozen=True)
class _TruncatedNormal:
    """Normal(mean, sd) truncated to [low, high], drawn by the inverse CDF."""

    mean: float
    sd: float
    low: float
    high: float
    cdf_low: float
    cdf_high: float

    @classmethod
    def of(cls, mean: float, sd: float, low: float, high: float) -> _TruncatedNormal:
        if sd == 0:
            return cls(mean, sd, low, high, 0.0, 1.0)
        return cls(
            mean, sd, low, high, float(ndtr((low - mean) / sd)), float(ndtr((high - mean) / sd))
        )

    def draw(self, u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Draws from uniforms ``u``."""
        if self.sd == 0:
            return np.full(u.shape, min(max(self.mean, self.low), self.high))
        x = self.mean + self.sd * ndtri(self.cdf_low + u * (self.cdf_high - self.cdf_low))
        return np.asarray(np.minimum(np.maximum(x, self.low), self.high), dtype=np.float64)


@dataclass(frozen=True)
class _Screening:
    """What drawing people needs from a population and criteria, computed once."""

    population: PopulationSettings
    eligibility: EligibilitySettings | None
    age: _TruncatedNormal
    fvc: _TruncatedNormal
    weight_omega: float
    prevalence: npt.NDArray[np.float64]
    criteria: tuple[str, ...]
    excluded_columns: list[int]
    condition_names: tuple[str, ...]
    """The six built-in conditions, then ``[population.conditions]``."""
    declared_prevalence: npt.NDArray[np.float64]


_SCREENINGS: dict[tuple[int, int], _Screening] = {}


def _screening(
    population: PopulationSettings, eligibility: EligibilitySettings | None
) -> _Screening:
    key = (id(population), id(eligibility))
    found = _SCREENINGS.get(key)
    if found is not None and found.population is population and found.eligibility is eligibility:
        return found
    if len(_SCREENINGS) >= 64:
        _SCREENINGS.clear()
    p = population
    found = _Screening(
        population,
        eligibility,
        age=_TruncatedNormal.of(p.age_mean_years, p.age_sd_years, p.age_min_years, p.age_max_years),
        fvc=_TruncatedNormal.of(
            p.fvc_mean_percent, p.fvc_sd_percent, p.fvc_min_percent, p.fvc_max_percent
        ),
        weight_omega=float(np.sqrt(np.log1p(p.weight_cv**2))),
        prevalence=np.array([getattr(p.prevalence, c) for c in EXCLUSION_CONDITIONS]),
        criteria=screening_criteria(eligibility),
        excluded_columns=[]
        if eligibility is None
        else [(*EXCLUSION_CONDITIONS, *p.conditions).index(c) for c in eligibility.exclude],
        condition_names=(*EXCLUSION_CONDITIONS, *p.conditions),
        declared_prevalence=np.array(list(p.conditions.values()), dtype=float),
    )
    _SCREENINGS[key] = found
    return found


def screening_criteria(eligibility: EligibilitySettings | None) -> tuple[str, ...]:
    """Names of the criteria screening checks, in report order."""
    if eligibility is None:
        return ()
    ranges = tuple(f"{name}_out_of_range" for name in eligibility.ranges or {})
    return ("age_out_of_range", "fvc_below_minimum", *eligibility.exclude, *ranges)


@dataclass(frozen=True, eq=False)
class People:
    """A block of screened people: one entry per person in each array.

    Attributes
    ----------
    person : array of int
        Each person's index (their address among a site's people).
    female : array of bool
    age_years, weight_kg, fvc_percent : array of float
        Covariates (years, kg, % predicted FVC).
    conditions : array of bool, shape (n, len(EXCLUSION_CONDITIONS))
        Which exclusion conditions each person has.
    start_mg_per_kg : array of float
        The drawn prednisone start dose; NaN means the protocol's.
    criteria : tuple of str
        The screening criteria (:func:`screening_criteria`).
    failed : array of bool, shape (n, len(criteria))
        Which criteria each person fails.
    eligible : array of bool
    pk_normals : array, shape (n, PK_NORMALS)
    thresholds : array, shape (n, THRESHOLD_SLOTS)
        Exp(1) first thresholds of the hazards, in hazard order.
    event_draws : array, shape (n, THRESHOLD_SLOTS * EVENT_OCCURRENCES * DRAWS_PER_OCCURRENCE)
        Reserved uniforms for the first occurrences of each hazard (see :func:`event_draws_at`).
    """

    person: npt.NDArray[np.int64]
    female: npt.NDArray[np.bool_]
    age_years: npt.NDArray[np.float64]
    weight_kg: npt.NDArray[np.float64]
    fvc_percent: npt.NDArray[np.float64]
    conditions: npt.NDArray[np.bool_]
    start_mg_per_kg: npt.NDArray[np.float64]
    criteria: tuple[str, ...]
    failed: npt.NDArray[np.bool_]
    eligible: npt.NDArray[np.bool_]
    pk_normals: npt.NDArray[np.float64]
    thresholds: npt.NDArray[np.float64]
    event_draws: npt.NDArray[np.float64]
    height_cm: npt.NDArray[np.float64]
    """Height, cm: NaN unless the population gives heights (:func:`height_normals`)."""
    condition_names: tuple[str, ...] = EXCLUSION_CONDITIONS
    """The names of ``conditions``' columns: the six built-in, then the declared ones."""

    def __len__(self) -> int:
        return int(self.person.size)

    def rows(self, start: int, stop: int) -> People:
        """People ``start`` to ``stop - 1`` of the block, as a block (views, not copies)."""
        return People(
            **{
                f.name: getattr(self, f.name)
                if f.name in ("criteria", "condition_names")
                else getattr(self, f.name)[start:stop]
                for f in dataclasses.fields(self)
            }
        )

    def covariate(self, name: str) -> npt.NDArray[np.float64]:
        """A covariate of everyone in the block as floats: ``age_years``, ``weight_kg``,
        ``fvc_percent``, ``height_cm``, ``female`` (1.0 for women, 0.0 for men), or a
        condition's name (1.0 for those who have it)."""
        if name == "female":
            return self.female.astype(np.float64)
        if name in ("age_years", "weight_kg", "fvc_percent", "height_cm"):
            return getattr(self, name)
        if name in self.condition_names:
            return self.conditions[:, self.condition_names.index(name)].astype(np.float64)
        raise ValueError(
            f"no covariate {name!r}: age_years, weight_kg, fvc_percent, height_cm, female or a "
            f"condition ({', '.join(self.condition_names)})"
        )

    def candidate(self, i: int) -> Candidate:
        """Person ``i`` of the block as a :class:`Candidate`."""
        start = float(self.start_mg_per_kg[i])
        return Candidate(
            person=int(self.person[i]),
            female=bool(self.female[i]),
            age_years=float(self.age_years[i]),
            weight_kg=float(self.weight_kg[i]),
            fvc_percent=float(self.fvc_percent[i]),
            conditions=frozenset(
                c for c, has in zip(self.condition_names, self.conditions[i], strict=True) if has
            ),
            start_mg_per_kg=None if np.isnan(start) else start,
            failed=tuple(c for c, f in zip(self.criteria, self.failed[i], strict=True) if f),
        )


def draw_people(
    population: PopulationSettings,
    eligibility: EligibilitySettings | None,
    rng: np.random.Generator,
    persons: Sequence[int] | npt.NDArray[np.int64],
    own: np.random.Generator | None = None,
) -> People:
    """Draw the next ``len(persons)`` people's rows from a stream, and screen them.

    Each person takes ``DRAWS_PER_PERSON`` uniforms (module docstring for the
    layout), so drawing a block of n people gives the same people as n
    single draws.

    Parameters
    ----------
    population : PopulationSettings
        The scenario's ``[population]`` table.
    eligibility : EligibilitySettings or None
        The protocol's criteria; None screens nobody out.
    rng : numpy.random.Generator
        The stream the people come from (a site's people, in turn).
    persons : sequence of int
        The people's indices.
    own : numpy.random.Generator, optional
        The stream whose seed keys the people's own draws (height, declared
        conditions; default ``rng``): a fresh draw of the same person needs another.
    """
    ids = np.asarray(persons, dtype=np.int64).reshape(-1)
    z, declared = _own_draws(population, rng if own is None else own, ids)
    u = rng.random((ids.size, DRAWS_PER_PERSON))
    return _people_from_rows(population, eligibility, u, ids, z, declared)


def height_normals(
    rng: np.random.Generator, persons: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Standard normals for the people's heights, from the height stream of their site
    (:func:`sim.person_streams.person_uniforms`)."""
    return ndtri(np.maximum(person_uniforms(rng, persons, HEIGHT_TAG), _SMALLEST_U))


def _own_draws(
    population: PopulationSettings, rng: np.random.Generator, ids: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.float64]]:
    """The draws of covariates added after the row layout: height normals (None without
    heights) and a uniform per declared condition, each from its own stream."""
    z = height_normals(rng, ids) if population.has_height else None
    u = np.empty((ids.size, len(population.conditions)))
    for j, name in enumerate(population.conditions):
        u[:, j] = person_uniforms(rng, ids, condition_tag(name))
    return z, u


def _people_from_rows(
    population: PopulationSettings,
    eligibility: EligibilitySettings | None,
    u: npt.NDArray[np.float64],
    ids: npt.NDArray[np.int64],
    height_z: npt.NDArray[np.float64] | None = None,
    declared_u: npt.NDArray[np.float64] | None = None,
) -> People:
    """People from their rows of uniforms (``u``: one row of DRAWS_PER_PERSON per person).

    Every step is elementwise per person, so people computed together or apart
    are the same.
    """
    how = _screening(population, eligibility)
    female = u[:, 0] < population.female_fraction
    age = np.round(how.age.draw(u[:, 1]), 2)
    median = np.where(female, population.weight_median_female_kg, population.weight_median_male_kg)
    z = ndtri(np.maximum(u[:, 2], _SMALLEST_U))
    weight = np.round(median * np.exp(how.weight_omega * z), 1)
    fvc = np.round(how.fvc.draw(u[:, 3]), 2)
    conditions = u[:, 4 : COVARIATE_DRAWS - 1] < how.prevalence
    if how.declared_prevalence.size:  # [population.conditions], from their own streams
        assert declared_u is not None
        conditions = np.hstack([conditions, declared_u < how.declared_prevalence])
    lo, hi = population.start_mg_per_kg_low, population.start_mg_per_kg_high
    if lo is not None and hi is not None:
        start = np.round(lo + u[:, COVARIATE_DRAWS - 1] * (hi - lo), 4)
    else:
        start = np.full(ids.size, np.nan)
    rule = population.start_rule
    if rule is not None:  # the investigator's choice by a covariate: no draw
        x = {"fvc_percent": fvc, "age_years": age, "weight_kg": weight}[rule.covariate]
        chosen = x < rule.below if rule.below is not None else x >= rule.at_or_above
        start = np.where(chosen, rule.start_mg_per_kg, start)
    criteria = how.criteria
    height = _heights(population, female, height_z)
    failed = np.zeros((ids.size, len(criteria)), dtype=bool)
    if eligibility is not None:
        failed[:, 0] = (age < eligibility.age_min_years) | (age > eligibility.age_max_years)
        failed[:, 1] = fvc < eligibility.fvc_min_percent
        n_excluded = len(how.excluded_columns)
        failed[:, 2 : 2 + n_excluded] = conditions[:, how.excluded_columns]
        values = {"age_years": age, "weight_kg": weight, "fvc_percent": fvc, "height_cm": height}
        for j, (name, bounds) in enumerate((eligibility.ranges or {}).items()):
            x = values[name]
            out = np.zeros(ids.size, dtype=bool)
            if bounds.min is not None:
                out |= x < bounds.min
            if bounds.max is not None:
                out |= x > bounds.max
            failed[:, 2 + n_excluded + j] = out
    return People(
        person=ids,
        female=female,
        age_years=age,
        weight_kg=weight,
        fvc_percent=fvc,
        conditions=conditions,
        start_mg_per_kg=start,
        criteria=criteria,
        failed=failed,
        eligible=np.asarray(~failed.any(axis=1)),
        pk_normals=ndtri(np.maximum(u[:, PK_AT:THRESHOLDS_AT], _SMALLEST_U)),
        thresholds=-np.log1p(-u[:, THRESHOLDS_AT:EVENTS_AT]),
        event_draws=u[:, EVENTS_AT:],
        height_cm=height,
        condition_names=how.condition_names,
    )


def _heights(
    population: PopulationSettings,
    female: npt.NDArray[np.bool_],
    z: npt.NDArray[np.float64] | None,
) -> npt.NDArray[np.float64]:
    if z is None:
        return np.full(female.size, np.nan)
    f, m = population.height_mean_female_cm, population.height_mean_male_cm
    sd = population.height_sd_cm
    assert f is not None and m is not None and sd is not None
    # (validation keeps the means 4 SD above 100 cm; the floor guards the far tail)
    return np.round(np.maximum(np.where(female, f, m) + sd * z, 100.0), 1).astype(np.float64)


def first_blocks(
    scenario: Scenario, sources: Sequence[tuple[np.random.Generator, int]]
) -> list[People]:
    """The first block of people of several sources at once (e.g. many replicates' sites).

    Each source is a stream and the index of its first person; its first block
    is drawn from the stream as :class:`PeopleSource` would draw it (hand both
    to ``PeopleSource(..., first_block=)``). Drawing many blocks in one pass
    spares the per-call cost of numpy on blocks of 64.
    """
    population = require_population(scenario)
    if not sources:
        return []
    ids = np.concatenate([np.arange(_FIRST_BLOCK, dtype=np.int64) + first for _, first in sources])
    own = [_own_draws(population, rng, np.arange(_FIRST_BLOCK) + first) for rng, first in sources]
    z = None if not population.has_height else np.concatenate([h for h, _ in own])
    declared = np.concatenate([d for _, d in own])
    u = np.concatenate([rng.random((_FIRST_BLOCK, DRAWS_PER_PERSON)) for rng, _ in sources])
    everyone = _people_from_rows(population, scenario.eligibility, u, ids, z, declared)
    return [everyone.rows(k * _FIRST_BLOCK, (k + 1) * _FIRST_BLOCK) for k in range(len(sources))]


_FIRST_BLOCK = 64
"""People drawn per block at first; blocks then double (a size never changes who is drawn)."""
_MAX_BLOCK = 256


class PeopleSource:
    """A site's people in turn, drawn from its stream in growing blocks.

    Person ``k`` is row ``k`` of the stream (:func:`draw_people`), whatever the
    block sizes, so drawing ahead changes nobody's draws.

    Parameters
    ----------
    scenario : Scenario
        Needs ``[population]``; ``[eligibility]`` screens.
    rng : numpy.random.Generator
        The site's people stream.
    first_person : int
        The index of the site's first person (``PERSONS_PER_SITE x site``).
    """

    def __init__(
        self,
        scenario: Scenario,
        rng: np.random.Generator,
        first_person: int,
        first_block: People | None = None,
    ) -> None:
        self.population = require_population(scenario)
        self.eligibility = scenario.eligibility
        self.rng = rng
        self.first_person = first_person
        self.count = 0
        self.blocks: list[People] = []
        self._block: People | None = None
        self._row = 0
        self._size = _FIRST_BLOCK
        if first_block is not None and (
            len(first_block) != _FIRST_BLOCK or int(first_block.person[0]) != first_person
        ):
            raise ValueError("first_block is not this source's first block (see first_blocks)")
        self._first_block = first_block

    def _new_block(self) -> People:
        """Draw the next block (the current one is used up: ``count`` rows so far)."""
        if self._first_block is not None:  # drawn already from this stream (first_blocks)
            self._block, self._first_block = self._first_block, None
        else:
            persons = np.arange(self._size) + self.first_person + self.count
            self._block = draw_people(self.population, self.eligibility, self.rng, persons)
        self.blocks.append(self._block)
        self._row = 0
        self._size = min(2 * self._size, _MAX_BLOCK)
        return self._block

    def next_block(self) -> People:
        """The next block of people, whole."""
        if self._block is not None and self._row < len(self._block):
            raise RuntimeError("the current block is not used up")
        block = self._new_block()
        self._row = len(block)
        self.count += len(block)
        return block

    def next(self) -> tuple[People, int]:
        """The next person: their block and row."""
        block, row = self.rest()
        self.advance(1)
        return block, row

    def rest(self) -> tuple[People, int]:
        """The current block and its first row not yet drawn (a new block if it is used up)."""
        if self._block is None or self._row == len(self._block):
            self._new_block()
        assert self._block is not None
        return self._block, self._row

    def advance(self, rows: int) -> None:
        """Count the next ``rows`` people of the current block (see :meth:`rest`) as drawn."""
        assert self._block is not None and 0 <= rows <= len(self._block) - self._row
        self._row += rows
        self.count += rows

    def screened(self, n: int | None = None) -> list[tuple[People, int]]:
        """The first ``n`` people drawn (default: all), in order, as (block, row)."""
        n = self.count if n is None else n
        out: list[tuple[People, int]] = []
        for b in self.blocks:
            if len(out) >= n:
                break
            out += [(b, r) for r in range(min(len(b), n - len(out)))]
        return out

    def failures(self, n: int | None = None) -> np.ndarray:
        """How many of the first ``n`` people drawn (default: all) fail each criterion."""
        n = self.count if n is None else n
        total = np.zeros(len(screening_criteria(self.eligibility)), dtype=np.int64)
        for b in self.blocks:
            if n <= 0:
                break
            total = total + b.failed[:n].sum(axis=0)
            n -= len(b)
        return total


def require_population(scenario: Scenario) -> PopulationSettings:
    """The scenario's population, or a clear error naming what is missing."""
    scenario.require("population", purpose="screening")
    assert scenario.population is not None
    return scenario.population


def _by_sex_share(population: PopulationSettings, ranges: Any) -> float:
    """P(weight and height within their ranges), over the sexes (weight log-normal and
    height normal given sex, each rounded to 0.1: an edge holds what rounds onto it)."""
    omega = float(np.sqrt(np.log1p(population.weight_cv**2)))
    total = 0.0
    for female, share_ in (
        (True, population.female_fraction),
        (False, 1 - population.female_fraction),
    ):
        q = 1.0
        w = ranges.get("weight_kg")
        if w is not None:
            median = (
                population.weight_median_female_kg if female else population.weight_median_male_kg
            )
            lo = -np.inf if w.min is None else (np.log(w.min - 0.05) - np.log(median)) / omega
            hi = np.inf if w.max is None else (np.log(w.max + 0.05) - np.log(median)) / omega
            q *= float(ndtr(hi) - ndtr(lo)) if omega > 0 else float(lo <= 0 <= hi)
        h = ranges.get("height_cm")
        if h is not None:
            mean = population.height_mean_female_cm if female else population.height_mean_male_cm
            sd = population.height_sd_cm
            assert mean is not None and sd is not None and sd > 0
            lo = -np.inf if h.min is None else (h.min - 0.05 - mean) / sd
            hi = np.inf if h.max is None else (h.max + 0.05 - mean) / sd
            q *= float(ndtr(hi) - ndtr(lo))
        total += share_ * q
    return total


def eligibility_probability(
    population: PopulationSettings, eligibility: EligibilitySettings | None
) -> float:
    """The probability that a screened person is eligible, in closed form.

    Covariates are independent in the population model, so it is
    P(age in range) x P(FVC >= minimum) x the product of (1 - prevalence) over
    the excluded conditions, with the truncated normals' probabilities exact.
    """
    if eligibility is None:
        return 1.0

    def share(mean: float, sd: float, lo: float, hi: float, a: float, b: float) -> float:
        """P(a <= X <= b) for X ~ Normal(mean, sd) truncated to [lo, hi]."""
        a, b = max(a, lo), min(b, hi)
        if b < a:
            return 0.0
        if sd == 0:
            x = min(max(mean, lo), hi)
            return float(a <= x <= b)
        cdf = lambda x: float(ndtr((x - mean) / sd))  # noqa: E731
        return (cdf(b) - cdf(a)) / (cdf(hi) - cdf(lo))

    ranges = eligibility.ranges or {}

    def bounds(name: str, lo: float, hi: float) -> tuple[float, float]:
        r = ranges.get(name)  # type: ignore[call-overload]
        if r is None:
            return lo, hi
        return max(lo, r.min if r.min is not None else -np.inf), min(
            hi, r.max if r.max is not None else np.inf
        )

    age_lo, age_hi = bounds("age_years", eligibility.age_min_years, eligibility.age_max_years)
    p = share(
        population.age_mean_years,
        population.age_sd_years,
        population.age_min_years,
        population.age_max_years,
        age_lo,
        age_hi,
    )
    fvc_lo, fvc_hi = bounds("fvc_percent", eligibility.fvc_min_percent, np.inf)
    p *= share(
        population.fvc_mean_percent,
        population.fvc_sd_percent,
        population.fvc_min_percent,
        population.fvc_max_percent,
        fvc_lo,
        fvc_hi,
    )
    prevalence = {**population.prevalence.model_dump(), **population.conditions}
    for name in eligibility.exclude:
        p *= 1.0 - prevalence[name]
    if "weight_kg" in ranges or "height_cm" in ranges:  # both depend on sex
        p *= _by_sex_share(population, ranges)
    return p
