"""Regimens of any drug: hand-computed schedules and properties of the course builder."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sim.regimen_schema import DrugRegimen
from sim.regimens import Body, body_surface_area_m2, build_regimen, course_doses

BANDS = [
    {"under_kg": 50, "mg": 50},
    {"from_kg": 50, "to_kg": 75, "mg": 60},
    {"over_kg": 75, "mg": 75},
]


def regimen(**table: object) -> DrugRegimen:
    return DrugRegimen.model_validate(table)


# -- hand-computed ------------------------------------------------------------


def test_bsa_formulas_against_hand_arithmetic() -> None:
    # Mosteller: sqrt(175 * 70 / 3600) = sqrt(3.40278) = 1.84466
    assert body_surface_area_m2(70, 175) == pytest.approx(1.844662, abs=1e-6)
    # Du Bois: 0.007184 * 70^0.425 * 175^0.725 = 0.007184 * 6.0855 * 42.275 = 1.8481
    assert body_surface_area_m2(70, 175, "du_bois") == pytest.approx(1.84823, abs=1e-4)


def test_iv_pulses_per_m2_rounded_and_capped() -> None:
    r = regimen(
        route="IV",
        round_to_mg=50,
        max_mg=1000,
        course=[{"kind": "pulse", "mg_per_m2": 500, "every_days": 28, "count": 6}],
    )
    # 60 kg, 160 cm: BSA sqrt(160 * 60 / 3600) = 1.63299; 500 * 1.63299 = 816.5 -> 800 mg
    s = build_regimen(r, Body(60, 160), 364)
    assert [d for d in range(364) if s.dose_at(d) > 0] == [0, 28, 56, 84, 112, 140]
    assert s.total_mg == 6 * 800
    # 110 kg, 190 cm: BSA 2.40947 -> 1204.7 -> 1200, capped at 1000
    assert build_regimen(r, Body(110, 190), 364).total_mg == 6 * 1000
    # cumulative at week 12 (day 84): pulses on days 0, 28, 56 -> 2400 mg
    assert s.cumulative(84) == 2400


def test_weight_bands_then_taper_by_step_to_zero() -> None:
    r = regimen(
        course=[
            {"kind": "dose", "weight_bands": BANDS, "days": 14},
            {"kind": "taper", "step_mg": 10, "every_days": 7, "floor_mg": 0},
        ]
    )
    # 62.5 kg: band 50-75 -> 60 mg x 14 days = 840; then 50, 40, 30, 20, 10 for a week each
    # = 1050; then 0. Week 12 (day 84): 840 + 1050 = 1890 mg.
    s = build_regimen(r, Body(62.5), 364)
    assert s.cumulative(84) == 1890
    assert s.dose_at(49) == 0 and s.dose_at(48) == 10
    # 45 kg: 50 x 14 = 700; 40 + 30 + 20 + 10 = 100 x 7 = 700 -> 1400
    assert build_regimen(r, Body(45), 364).total_mg == 1400
    # 90 kg: 75 x 14 = 1050; 65..5 by 10 = 7 steps (65+55+45+35+25+15+5 = 245) x 7 = 1715
    assert build_regimen(r, Body(90), 364).total_mg == 1050 + 1715


def test_percentage_taper_rounds_half_up_to_the_unit() -> None:
    r = regimen(
        round_to_mg=2.5,
        course=[
            {"kind": "dose", "mg": 40, "days": 7},
            {"kind": "taper", "step_percent": 25, "every_days": 7, "floor_mg": 5},
        ],
    )
    s = build_regimen(r, Body(60), 100)
    # 40 -> 30 -> 22.5 -> 16.875 -> 17.5 -> 13.125 -> 12.5 -> 9.375 -> 10 -> 7.5 -> 5.625
    # -> 5 (rounded 5.625 to 5; the floor holds)
    levels = [s.dose_at(7 * k) for k in range(9)]
    assert levels == [40, 30, 22.5, 17.5, 12.5, 10, 7.5, 5, 5]


def test_titration_up_to_a_weight_based_target_then_maintenance() -> None:
    r = regimen(
        round_to_mg=25,
        max_mg=150,
        course=[
            {"kind": "dose", "mg": 50, "days": 28},
            {"kind": "titrate", "mg_per_kg": 2, "step_mg": 25, "every_days": 28},
        ],
    )
    # 62.5 kg: target 2 * 62.5 = 125 mg (a multiple of 25): 50, 75, 100, 125 monthly
    s = build_regimen(r, Body(62.5), 364)
    assert [s.dose_at(28 * k) for k in range(5)] == [50, 75, 100, 125, 125]
    # 90 kg: 180 -> capped at 150
    assert build_regimen(r, Body(90), 364).dose_at(300) == 150


def test_table_by_weight_band() -> None:
    r = regimen(
        course=[
            {
                "kind": "table",
                "every_days": 7,
                "weight_bands": [
                    {"under_kg": 55, "mg": [45, 30, 0]},
                    {"from_kg": 55, "mg": [60, 45, 0]},
                ],
            }
        ]
    )
    assert build_regimen(r, Body(55), 100).total_mg == 7 * (60 + 45)
    assert build_regimen(r, Body(54.9), 100).total_mg == 7 * (45 + 30)


def test_pulses_on_listed_days_and_a_course_that_starts_later() -> None:
    r = regimen(
        route="IV",
        course=[
            {"kind": "pulse", "mg": 1000, "on_days": [0, 1, 2], "lasts_days": 168},
            {"kind": "maintenance", "mg_per_kg": 2},
        ],
    )
    s = build_regimen(r, Body(60), 364)
    assert s.cumulative(3) == 3000 and s.dose_at(3) == 0
    assert s.dose_at(167) == 0 and s.dose_at(168) == 120


# -- validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bands", "rule"),
    [
        ([{"under_kg": 50, "mg": 1}, {"from_kg": 55, "mg": 2}], "gap"),
        ([{"under_kg": 50, "mg": 1}, {"from_kg": 45, "mg": 2}], "overlaps"),
        ([{"to_kg": 50, "mg": 1}, {"from_kg": 50, "mg": 2}], "both bands hold"),
        ([{"under_kg": 50, "mg": 1}, {"over_kg": 50, "mg": 2}], "neither band holds"),
        ([{"from_kg": 40, "mg": 1}, {"over_kg": 50, "mg": 2}], "first band"),
    ],
)
def test_malformed_bands_are_refused(bands: list[dict[str, object]], rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        regimen(course=[{"kind": "dose", "weight_bands": bands}])


def test_pulse_count_of_zero_is_refused() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        regimen(course=[{"kind": "pulse", "mg": 500, "every_days": 28, "count": 0}])


# -- properties -------------------------------------------------------------------

weights = st.floats(30, 200, allow_nan=False)
heights = st.floats(130, 210, allow_nan=False)


@given(edge=st.sampled_from([50.0, 75.0]))
def test_a_weight_on_an_edge_gets_the_band_the_scenario_says(edge: float) -> None:
    r = regimen(course=[{"kind": "maintenance", "weight_bands": BANDS}])
    # under_kg 50 / from_kg 50: 50 kg is in the middle band; to_kg 75 / over_kg 75: so is 75
    assert course_doses(r, Body(edge)) == (60.0,)
    below, above = course_doses(r, Body(edge - 1e-9)), course_doses(r, Body(edge + 1e-9))
    assert below == ((50.0,) if edge == 50 else (60.0,))
    assert above == ((60.0,) if edge == 50 else (75.0,))


@settings(max_examples=200)
@given(
    w1=weights,
    w2=weights,
    h1=heights,
    h2=heights,
    formula=st.sampled_from(["mosteller", "du_bois"]),
)
def test_bsa_doses_are_monotone_in_weight_and_height(
    w1: float, w2: float, h1: float, h2: float, formula: str
) -> None:
    r = regimen(
        round_to_mg=10, bsa_formula=formula, course=[{"kind": "maintenance", "mg_per_m2": 500}]
    )
    lo = course_doses(r, Body(min(w1, w2), min(h1, h2)))[0]
    hi = course_doses(r, Body(max(w1, w2), max(h1, h2)))[0]
    assert isinstance(lo, float) and isinstance(hi, float) and lo <= hi


@settings(max_examples=200)
@given(
    start=st.floats(1, 200).map(lambda x: round(x * 2) / 2),
    step=st.floats(0.5, 50).map(lambda x: round(x * 2) / 2),
    percent=st.one_of(st.none(), st.floats(1, 90)),
    every=st.integers(1, 30),
)
def test_a_taper_to_zero_ends_at_zero_and_never_goes_negative(
    start: float, step: float, percent: float | None, every: int
) -> None:
    taper = {"kind": "taper", "every_days": every, "floor_mg": 0}
    taper.update({"step_percent": percent} if percent is not None else {"step_mg": step})
    r = regimen(round_to_mg=0.5, course=[{"kind": "dose", "mg": start, "days": 7}, taper])
    # time enough for the slowest taper: one 0.5 mg unit a step
    s = build_regimen(r, Body(60), 7 + every * (math.ceil(start / 0.5) + 1))
    assert min(s.doses_mg_per_day) >= 0
    assert s.doses_mg_per_day[-1] == 0
    # never up: every change lowers the dose
    assert all(b < a for a, b in zip(s.doses_mg_per_day, s.doses_mg_per_day[1:], strict=False))
    if percent is not None:  # every level is a multiple of the unit
        assert all(math.isclose(x / 0.5, round(x / 0.5)) for x in s.doses_mg_per_day[1:])


@settings(max_examples=200)
@given(count=st.integers(1, 30), every=st.integers(1, 60), mg=st.floats(1, 2000))
def test_pulses_give_exactly_k_doses(count: int, every: int, mg: float) -> None:
    r = regimen(course=[{"kind": "pulse", "mg": mg, "every_days": every, "count": count}])
    duration = count * every + 1
    s = build_regimen(r, Body(60), duration)
    given_days = [d for d in range(duration) if s.dose_at(d) > 0]
    assert len(given_days) == count
    assert s.total_mg == pytest.approx(count * mg)


def test_a_fixed_start_below_a_floor_is_valid_and_the_stage_changes_nothing() -> None:
    # docs: "with a fixed start_mg at or below a stage's floor that stage changes nothing"
    from sim.scenario import load_scenario
    from sim.schedule import build_prednisone

    scenario = load_scenario(
        Path(__file__).resolve().parents[1] / "scenarios" / "nct05129410.toml",
        ["prednisone.start_mg=5", "prednisone.start_mg_per_kg={remove = true}"],
    )
    s = build_prednisone(scenario.prednisone, 60.0, 364)
    assert s.doses_mg_per_day == (5.0,)  # 5 from day 0; maintenance 7.5 is never above it


def test_investigators_start_dose_by_a_covariate() -> None:
    # low-start variant (0.5 mg/kg/day), but 1.0 mg/kg/day below 60 % predicted FVC
    from sim.scenario import load_scenario
    from sim.schedule import prednisone_start_mg
    from sim.trial.cohort import simulate_cohort

    root = Path(__file__).resolve().parents[1] / "scenarios"
    scenario = load_scenario(
        root / "nct05129410_low_start.toml",
        ['population.start_rule={covariate = "fvc_percent", below = 60.0, start_mg_per_kg = 1.0}'],
    )
    p = simulate_cohort(scenario, 300, seed=8).patients
    low = p["fvc_percent"] < 60
    assert 20 < low.sum() < 280
    assert scenario.prednisone is not None
    for _, row in p.iterrows():
        per_kg = 1.0 if row["fvc_percent"] < 60 else None  # None: the protocol's 0.5
        expected = prednisone_start_mg(scenario.prednisone, row["weight_kg"], per_kg)
        assert row["prednisone_start_mg_per_day"] == expected
