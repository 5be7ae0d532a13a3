"""Virtual patients: covariates drawn from the scenario's population, and eligibility screening.

Each screened candidate ("person") draws from their own stream, always in the
same order and always every number (the start dose too, even when the protocol
fixes it), so a change to one part of a scenario leaves every other draw as it
was (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from sim.scenario import (
    EXCLUSION_CONDITIONS,
    EligibilitySettings,
    PopulationSettings,
    Scenario,
)

__all__ = ["Candidate", "draw_candidate", "eligibility_probability", "screening_criteria"]


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


def _truncated_normal(u: float, mean: float, sd: float, low: float, high: float) -> float:
    """Inverse-CDF draw from Normal(mean, sd) truncated to [low, high], from a uniform ``u``."""
    if sd == 0:
        return float(np.clip(mean, low, high))
    a, b = ndtr((low - mean) / sd), ndtr((high - mean) / sd)
    return float(np.clip(mean + sd * ndtri(a + u * (b - a)), low, high))


def screening_criteria(eligibility: EligibilitySettings | None) -> tuple[str, ...]:
    """Names of the criteria screening checks, in report order."""
    if eligibility is None:
        return ()
    return ("age_out_of_range", "fvc_below_minimum", *eligibility.exclude)


def draw_candidate(
    population: PopulationSettings,
    eligibility: EligibilitySettings | None,
    rng: np.random.Generator,
    person: int,
) -> Candidate:
    """Draw one person's covariates from their stream and screen them.

    Draw order (fixed): sex, age, weight, FVC, one uniform per exclusion
    condition (in ``EXCLUSION_CONDITIONS`` order), start dose.

    Parameters
    ----------
    population : PopulationSettings
        The scenario's ``[population]`` table.
    eligibility : EligibilitySettings or None
        The protocol's criteria; None screens nobody out.
    rng : numpy.random.Generator
        This person's own stream.
    person : int
        The person's index.
    """
    u = rng.random(5 + len(EXCLUSION_CONDITIONS))
    female = bool(u[0] < population.female_fraction)
    age = _truncated_normal(
        u[1],
        population.age_mean_years,
        population.age_sd_years,
        population.age_min_years,
        population.age_max_years,
    )
    median = population.weight_median_female_kg if female else population.weight_median_male_kg
    omega = float(np.sqrt(np.log1p(population.weight_cv**2)))
    weight = round(float(median * np.exp(omega * ndtri(u[2]))), 1)
    fvc = _truncated_normal(
        u[3],
        population.fvc_mean_percent,
        population.fvc_sd_percent,
        population.fvc_min_percent,
        population.fvc_max_percent,
    )
    prevalence = population.prevalence
    conditions = frozenset(
        name
        for name, ui in zip(EXCLUSION_CONDITIONS, u[4:-1], strict=True)
        if ui < getattr(prevalence, name)
    )
    start = None
    lo, hi = population.start_mg_per_kg_low, population.start_mg_per_kg_high
    if lo is not None and hi is not None:
        start = round(lo + float(u[-1]) * (hi - lo), 4)
    failed: list[str] = []
    if eligibility is not None:
        if not eligibility.age_min_years <= age <= eligibility.age_max_years:
            failed.append("age_out_of_range")
        if fvc < eligibility.fvc_min_percent:
            failed.append("fvc_below_minimum")
        failed.extend(c for c in eligibility.exclude if c in conditions)
    return Candidate(
        person=person,
        female=female,
        age_years=round(age, 2),
        weight_kg=weight,
        fvc_percent=round(fvc, 2),
        conditions=conditions,
        start_mg_per_kg=start,
        failed=tuple(failed),
    )


def require_population(scenario: Scenario) -> PopulationSettings:
    """The scenario's population, or a clear error naming what is missing."""
    scenario.require("population", purpose="screening")
    assert scenario.population is not None
    return scenario.population


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

    p = share(
        population.age_mean_years,
        population.age_sd_years,
        population.age_min_years,
        population.age_max_years,
        eligibility.age_min_years,
        eligibility.age_max_years,
    )
    p *= share(
        population.fvc_mean_percent,
        population.fvc_sd_percent,
        population.fvc_min_percent,
        population.fvc_max_percent,
        eligibility.fvc_min_percent,
        np.inf,
    )
    for name in eligibility.exclude:
        p *= 1.0 - getattr(population.prevalence, name)
    return p
