"""Eligibility declared in the scenario: named conditions and ranges on covariates."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.population import draw_people, eligibility_probability
from sim.scenario import load_scenario
from sim.streams import stream

BASE = Path(__file__).resolve().parents[1] / "scenarios" / "nct05129410.toml"

DECLARED = [
    "population.conditions.hepatitis_b=0.07",
    "population.conditions.pregnancy=0.02",
    'eligibility.exclude=["anti_mda5_positive", "cancer", "hepatitis_b", "pregnancy"]',
    "eligibility.ranges={weight_kg = {min = 45.0, max = 90.0}, fvc_percent = {max = 85.0}}",
]


def people(scenario, n: int = 200_000):  # type: ignore[no-untyped-def]
    assert scenario.population is not None
    rng = stream(21, "test_eligibility")
    return draw_people(scenario.population, scenario.eligibility, rng, np.arange(n))


def test_eligible_share_matches_the_closed_form_within_4_se() -> None:
    scenario = load_scenario(BASE, DECLARED)
    assert scenario.population is not None
    block = people(scenario)
    p = eligibility_probability(scenario.population, scenario.eligibility)
    se = math.sqrt(p * (1 - p) / len(block))
    assert abs(block.eligible.mean() - p) < 4 * se
    # each declared condition at its prevalence, within 4 SE
    names = list(block.condition_names)
    for name, prev in (("hepatitis_b", 0.07), ("pregnancy", 0.02)):
        share = block.conditions[:, names.index(name)].mean()
        assert abs(share - prev) < 4 * math.sqrt(prev * (1 - prev) / len(block))
    # the ranges are criteria of their own, failed exactly where the covariate is outside
    crit = list(block.criteria)
    w = block.failed[:, crit.index("weight_kg_out_of_range")]
    assert (w == ((block.weight_kg < 45) | (block.weight_kg > 90))).all()
    f = block.failed[:, crit.index("fvc_percent_out_of_range")]
    assert (f == (block.fvc_percent > 85)).all()


def test_declared_conditions_leave_every_other_draw_as_it_was() -> None:
    base, more = load_scenario(BASE), load_scenario(BASE, DECLARED[:1])
    a, b = people(base, 5000), people(more, 5000)
    for name in ("female", "age_years", "weight_kg", "fvc_percent", "pk_normals", "thresholds"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(a.conditions, b.conditions[:, : a.conditions.shape[1]])


@pytest.mark.parametrize(
    ("overrides", "where", "rule"),
    [
        (['eligibility.exclude=["smoker"]'], "eligibility.exclude[0]", "must name a condition"),
        (["population.conditions={cancer = 0.1}"], "population.conditions.cancer", "is one of"),
        (["eligibility.ranges={weight_kg = {min = 90.0, max = 45.0}}"], "max", "must be >= min"),
        (["eligibility.ranges={height_cm = {min = 150.0}}"], "ranges.height_cm", "needs heights"),
    ],
)
def test_malformed_eligibility(overrides: list[str], where: str, rule: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(BASE, overrides)
    assert where in str(info.value) and rule in str(info.value)
