"""Schedules: the Schedule value, and the builders checked against hand-computed protocols.

Every expected number here was worked out by hand from the protocol text
(registry record NCT05129410) and the scenario's rules, not read off the code.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim import Schedule, build_schedules, load_scenario, scenario_from_dict
from sim.schedule import build_prednisone, prednisone_start_mg
from tests.conftest import MINIMAL, SCENARIOS

# ---------------------------------------------------------------------------
# The Schedule value
# ---------------------------------------------------------------------------


def test_dose_at_and_cumulative_at_boundaries() -> None:
    s = Schedule((0, 28, 42), (60.0, 55.0, 50.0), end_day=56)
    assert [s.dose_at(d) for d in (-1, 0, 27, 27.9, 28, 41, 42, 55, 56, 100)] == [
        0.0, 60.0, 60.0, 60.0, 55.0, 55.0, 50.0, 50.0, 0.0, 0.0,
    ]  # fmt: skip
    # cumulative(d) = mg taken on days 0 .. d-1
    assert s.cumulative(0) == 0.0
    assert s.cumulative(1) == 60.0
    assert s.cumulative(28) == 28 * 60.0
    assert s.cumulative(29) == 28 * 60.0 + 55.0
    assert s.cumulative(56) == 28 * 60 + 14 * 55 + 14 * 50
    assert s.cumulative(1000) == s.total_mg == s.cumulative(56)
    assert s.cumulative(-5) == 0.0
    # between whole days it is the integral of the daily dose as a rate
    assert s.cumulative(28.5) == pytest.approx(28 * 60 + 0.5 * 55)


def test_vectorised_queries_match_scalar() -> None:
    s = Schedule((0, 10, 20), (5.0, 2.5, 0.0), end_day=30)
    days = np.array([-1.0, 0.0, 9.5, 10.0, 25.0, 30.0])
    np.testing.assert_array_equal(s.dose_at(days), [s.dose_at(float(d)) for d in days])
    np.testing.assert_array_equal(s.cumulative(days), [s.cumulative(float(d)) for d in days])


def test_segments_and_daily_doses() -> None:
    s = Schedule((0, 3), (2.0, 1.0), end_day=5)
    assert s.segments() == (
        sim.Segment(0, 3, 2.0, 6.0),
        sim.Segment(3, 5, 1.0, 8.0),
    )
    np.testing.assert_array_equal(s.daily_doses(), [2, 2, 2, 1, 1])


def test_equal_doses_merge_so_equal_plans_compare_equal() -> None:
    a = Schedule((0, 5, 9), (10.0, 10.0, 5.0), end_day=12)
    b = Schedule((0, 9), (10.0, 5.0), end_day=12)
    assert a == b
    assert a.change_days == (0, 9)


@pytest.mark.parametrize(
    ("days", "doses", "end", "message"),
    [
        ((0, 5), (1.0,), 10, "change days but"),
        ((1,), (1.0,), 10, "first change day must be 0"),
        ((0, 5, 5), (1.0, 2.0, 3.0), 10, "strictly increasing"),
        ((0, 10), (1.0, 2.0), 10, "not before end_day"),
        ((0,), (-1.0,), 10, "finite and >= 0"),
        ((0,), (float("nan"),), 10, "finite and >= 0"),
        ((0,), (1.0,), -1, "end_day"),
    ],
)
def test_invalid_schedules_are_refused(
    days: tuple[int, ...], doses: tuple[float, ...], end: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule(days, doses, end)


def test_tail_and_splice() -> None:
    s = Schedule((0, 28, 42), (60.0, 55.0, 50.0), end_day=56)
    assert s.tail(30) == Schedule((0, 12), (55.0, 50.0), end_day=26)
    assert s.splice(30, s.tail(30)) == s
    # MMF-style hold: nothing for 7 days from day 30, then resume the plan
    hold = Schedule.constant(0.0, 7).splice(7, s.tail(37))
    held = s.splice(30, hold)
    assert held.dose_at(29) == 55 and held.dose_at(30) == 0 and held.dose_at(37) == 55
    assert held.end_day == 56
    assert held.total_mg == s.total_mg - 7 * 55
    # a new tail may end the treatment early (a patient who stops)
    stopped = s.splice(10, Schedule((), (), 0))
    assert stopped.end_day == 10 and stopped.total_mg == 600
    with pytest.raises(ValueError, match="whole day"):
        s.splice(10.5, s.tail(10))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole day"):
        s.tail(57)


# ---------------------------------------------------------------------------
# The NCT05129410 scenarios, by hand
# ---------------------------------------------------------------------------


def _segments(scenario: str, weight_kg: float, drug: str = "prednisone") -> list[tuple]:
    s = build_schedules(load_scenario(SCENARIOS / f"{scenario}.toml"), weight_kg)[drug]
    return [(seg.start_day, seg.end_day - 1, seg.dose_mg_per_day) for seg in s.segments()]


def test_base_60kg_matches_the_protocol_by_hand() -> None:
    """1.0 mg/kg x 60 kg = 60 mg for 4 weeks; -5 mg every 14 days to 10; 10 mg for 13 weeks;
    7.5 mg to day 363. Cumulative 60*28 + (55+...+15)*14 + 10*91 + 7.5*119 = 7,892.5 mg."""
    taper = [(28 + 14 * i, 41 + 14 * i, 55.0 - 5 * i) for i in range(9)]
    assert _segments("nct05129410", 60) == [
        (0, 27, 60.0),
        *taper,
        (154, 244, 10.0),
        (245, 363, 7.5),
    ]
    s = build_schedules(load_scenario(SCENARIOS / "nct05129410.toml"), 60)["prednisone"]
    assert s.cumulative(364) == 7892.5
    assert s.cumulative(364) == 60 * 28 + sum(range(15, 56, 5)) * 14 + 10 * 91 + 7.5 * 119


def test_low_start_60kg() -> None:
    """0.5 mg/kg x 60 kg = 30 mg: 30*28 + (25+20+15)*14 + 10*91 + 7.5*203 = 4,112.5 mg."""
    assert _segments("nct05129410_low_start", 60) == [
        (0, 27, 30.0),
        (28, 41, 25.0),
        (42, 55, 20.0),
        (56, 69, 15.0),
        (70, 160, 10.0),
        (161, 363, 7.5),
    ]
    s = build_schedules(load_scenario(SCENARIOS / "nct05129410_low_start.toml"), 60)
    assert s["prednisone"].total_mg == 4112.5


def test_hold_until_week26_60kg() -> None:
    """10 mg from day 154 until day 182 (end of week 26), then 7.5 mg:
    1680 + 4410 + 10*28 + 7.5*182 = 7,735 mg."""
    segs = _segments("nct05129410_hold_until_week26", 60)
    assert segs[-2:] == [(154, 181, 10.0), (182, 363, 7.5)]
    s = build_schedules(load_scenario(SCENARIOS / "nct05129410_hold_until_week26.toml"), 60)
    assert s["prednisone"].total_mg == 7735.0


def test_mmf_base_and_1g5_variant() -> None:
    """Base: 1.0 g/day x 14 + 1.5 g/day x 14 + 2.0 g/day x 336 = 707,000 mg.
    1.5 g variant: 1.0 g/day x 14 + 1.5 g/day x 350 = 539,000 mg; prednisone unchanged."""
    assert _segments("nct05129410", 60, "mmf") == [
        (0, 13, 1000.0),
        (14, 27, 1500.0),
        (28, 363, 2000.0),
    ]
    base = build_schedules(load_scenario(SCENARIOS / "nct05129410.toml"), 60)
    low = build_schedules(load_scenario(SCENARIOS / "nct05129410_mmf_1g5.toml"), 60)
    assert base["mmf"].total_mg == 707_000
    assert base["mmf"].doses_per_day == 2
    assert _segments("nct05129410_mmf_1g5", 60, "mmf") == [(0, 13, 1000.0), (14, 363, 1500.0)]
    assert low["mmf"].total_mg == 539_000
    assert low["prednisone"] == base["prednisone"]


def test_base_45kg_and_low_start_45kg() -> None:
    """45 kg: base 45 mg -> 6 steps (40..15) -> 10 mg from day 112 to 202 -> 7.5 mg for 161 days:
    1260 + 2310 + 910 + 1207.5 = 5,687.5 mg. Low start 22.5 -> 25 mg (half up):
    700 + (20+15)*14 + 10*91 (days 56-146) + 7.5*217 = 3,727.5 mg."""
    base = build_schedules(load_scenario(SCENARIOS / "nct05129410.toml"), 45)["prednisone"]
    assert base.dose_at(0) == 45 and base.dose_at(112) == 10 and base.dose_at(203) == 7.5
    assert base.total_mg == 5687.5
    low = build_schedules(load_scenario(SCENARIOS / "nct05129410_low_start.toml"), 45)
    assert low["prednisone"].dose_at(0) == 25
    assert low["prednisone"].total_mg == 3727.5


@pytest.mark.parametrize(
    ("per_kg", "weight_kg", "expected_mg"),
    [
        (1.0, 45, 45.0),
        (1.0, 57, 55.0),  # 57 / 5 = 11.4 -> 11 tablets
        (1.0, 57.5, 60.0),  # 11.5 -> 12: half up
        (1.0, 62, 60.0),  # capped
        (1.0, 110, 60.0),  # capped
        (0.5, 45, 25.0),  # 22.5 -> 25: half up
        (0.5, 54.9, 25.0),  # 27.45 -> 25
        (0.5, 55, 30.0),  # 27.5 -> 30
        (0.5, 75, 40.0),  # 37.5 -> 40
        (0.5, 110, 55.0),
        (0.5, 130, 60.0),  # 65 -> capped
        (0.75, 60, 45.0),
    ],
)
def test_start_dose_rounding_and_cap(per_kg: float, weight_kg: float, expected_mg: float) -> None:
    base = load_scenario(SCENARIOS / "nct05129410.toml")
    assert prednisone_start_mg(base.prednisone, weight_kg, per_kg) == expected_mg


def test_start_dose_rounds_in_decimal_not_binary(minimal: dict[str, Any]) -> None:
    """1.15 mg/kg x 50 kg is 57.5 mg exactly, which rounds half up to 60 mg;
    binary floating point makes it 57.49999999999999 and would give 55 mg."""
    minimal["prednisone"]["start_mg_per_kg"] = 1.15
    del minimal["prednisone"]["max_start_mg"]
    assert prednisone_start_mg(scenario_from_dict(minimal).prednisone, 50) == 60.0


def test_fixed_start_and_no_rounding(minimal: dict[str, Any]) -> None:
    p = minimal["prednisone"]
    del p["start_mg_per_kg"], p["round_to_mg"], p["max_start_mg"]
    p["start_mg"] = 40.0
    s = build_schedules(scenario_from_dict(minimal), 99)["prednisone"]
    assert s.dose_at(0) == 40 and s.dose_at(28) == 35


def test_taper_never_overshoots_the_floor(minimal: dict[str, Any]) -> None:
    """2.5 mg tablets: 57.5 -> 52.5 -> ... -> 12.5 -> 10 (a 2.5 mg last step, not 7.5)."""
    minimal["prednisone"].update(round_to_mg=2.5, max_start_mg=100.0, start_mg_per_kg=1.15)
    s = build_schedules(scenario_from_dict(minimal), 50)["prednisone"]
    doses = list(s.doses_mg_per_day)
    assert doses[:2] == [57.5, 52.5]
    assert doses[-3:] == [12.5, 10.0, 7.5]
    assert min(doses[:-1]) == 10.0


def test_taper_then_maintenance_without_hold(minimal: dict[str, Any]) -> None:
    """Without a hold the floor lasts one taper interval, then maintenance starts."""
    minimal["prednisone"]["stages"] = minimal["prednisone"]["stages"][:1]
    s = build_schedules(scenario_from_dict(minimal), 60)["prednisone"]
    assert s.dose_at(154) == 10 and s.dose_at(167) == 10 and s.dose_at(168) == 7.5


def test_two_taper_stages(minimal: dict[str, Any]) -> None:
    """-10 mg weekly to 30, then -5 mg every 14 days to 10: the 30 mg level lasts 7 days
    (the first taper's interval), then the second taper steps every 14 days."""
    minimal["prednisone"]["stages"] = [
        {"kind": "taper", "step_mg": 10.0, "every_days": 7, "floor_mg": 30.0},
        {"kind": "taper", "step_mg": 5.0, "every_days": 14, "floor_mg": 10.0},
    ]
    del minimal["prednisone"]["maintenance_mg_per_day"]
    s = build_schedules(scenario_from_dict(minimal), 60)["prednisone"]
    assert s.segments()[:4] == (
        sim.Segment(0, 28, 60.0, 1680.0),
        sim.Segment(28, 35, 50.0, 2030.0),
        sim.Segment(35, 42, 40.0, 2310.0),
        sim.Segment(42, 49, 30.0, 2520.0),
    )
    assert s.dose_at(49) == 25 and s.dose_at(63) == 20
    assert s.doses_mg_per_day[-1] == 10 and s.dose_at(363) == 10


def test_hold_until_a_day_already_past_is_skipped(minimal: dict[str, Any]) -> None:
    """Floor reached on day 154; 'hold until day 100' is over, so maintenance starts at once."""
    minimal["prednisone"]["stages"][1] = {"kind": "hold", "until_day": 100}
    s = build_schedules(scenario_from_dict(minimal), 60)["prednisone"]
    assert s.dose_at(153) == 15 and s.dose_at(154) == 7.5


def test_treatment_shorter_than_the_taper(minimal: dict[str, Any]) -> None:
    minimal["treatment"]["duration_days"] = 60
    s = build_schedules(scenario_from_dict(minimal), 60)
    assert s["prednisone"].end_day == 60 == s["mmf"].end_day
    assert s["prednisone"].total_mg == 60 * 28 + 55 * 14 + 50 * 14 + 45 * 4
    assert s["prednisone"].dose_at(60) == 0


def test_start_override_for_reescalation() -> None:
    base = load_scenario(SCENARIOS / "nct05129410.toml")
    s = build_prednisone(base.prednisone, 60, 364, start_mg_per_kg=0.5)
    assert (
        s
        == build_schedules(load_scenario(SCENARIOS / "nct05129410_low_start.toml"), 60)[
            "prednisone"
        ]
    )


def test_bad_weight_is_refused() -> None:
    base = load_scenario(SCENARIOS / "nct05129410.toml")
    for w in (0.0, -60.0, float("nan")):
        with pytest.raises(ValueError, match="weight_kg"):
            build_schedules(base, w)


# ---------------------------------------------------------------------------
# Properties over generated taper rules and weights
# ---------------------------------------------------------------------------

_HALF_MG = st.integers(1, 80).map(lambda k: k * 0.5)


@st.composite
def regimens(draw: st.DrawFn) -> tuple[dict[str, Any], float]:
    """A valid scenario with random taper rules, and a body weight."""
    data = copy.deepcopy(MINIMAL)
    duration = draw(st.integers(30, 730))
    p: dict[str, Any] = {
        "start_mg_per_kg": draw(st.integers(5, 200).map(lambda k: k / 100)),
        "initial_hold_days": draw(st.integers(1, duration - 1)),
    }
    if draw(st.booleans()):
        p["round_to_mg"] = draw(st.sampled_from([1.0, 2.5, 5.0, 10.0]))
    cap = None
    if draw(st.booleans()):
        cap = draw(st.integers(10, 120).map(float))
        p["max_start_mg"] = cap
    stages: list[dict[str, Any]] = []
    floor = (cap if cap is not None else 300.0) - 0.5
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            floor = draw(st.integers(0, int(floor * 2)).map(lambda k: k * 0.5))
            stages.append(
                {
                    "kind": "taper",
                    "step_mg": draw(_HALF_MG),
                    "every_days": draw(st.integers(1, 60)),
                    "floor_mg": floor,
                }
            )
        elif draw(st.booleans()):
            stages.append({"kind": "hold", "days": draw(st.integers(1, 200))})
        else:
            stages.append({"kind": "hold", "until_day": draw(st.integers(1, duration - 1))})
    p["stages"] = stages
    if draw(st.booleans()):
        p["maintenance_mg_per_day"] = draw(st.integers(0, int(floor * 2)).map(lambda k: k * 0.5))
    data["treatment"]["duration_days"] = duration
    data["prednisone"] = p
    weight = draw(st.floats(30, 200, allow_nan=False).map(lambda w: round(w, 1)))
    return data, weight


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regimens())
def test_prednisone_properties(case: tuple[dict[str, Any], float]) -> None:
    data, weight = case
    scenario = scenario_from_dict(data)
    s = build_schedules(scenario, weight)["prednisone"]
    daily = s.daily_doses()
    start = prednisone_start_mg(scenario.prednisone, weight)
    # no negative dose; the treatment lasts exactly duration_days
    assert (daily >= 0).all()
    assert len(daily) == s.end_day == scenario.treatment.duration_days
    # prednisone never increases along a taper
    assert (np.diff(daily) <= 0).all()
    assert daily[0] == start
    # cumulative equals the sum of dose x days, at every day
    np.testing.assert_allclose(
        s.cumulative(np.arange(s.end_day + 1)), np.concatenate(([0.0], np.cumsum(daily)))
    )
    # floors are never crossed: until maintenance starts, no dose is below the
    # last floor any taper stage has reached
    floors = [x["floor_mg"] for x in data["prednisone"]["stages"] if x["kind"] == "taper"]
    maintenance = data["prednisone"].get("maintenance_mg_per_day")
    lowest_allowed = min([start, *floors[-1:]])
    if maintenance is not None:
        lowest_allowed = min(lowest_allowed, maintenance)
    assert daily.min() >= lowest_allowed


@settings(max_examples=200, deadline=None)
@given(
    per_kg=st.integers(5, 200).map(lambda k: k / 100),
    weight=st.floats(30, 150).map(lambda w: round(w, 1)),
    step=_HALF_MG,
    every=st.integers(1, 5),
    floor=st.integers(0, 100).map(lambda k: k * 0.5),
)
def test_a_taper_ends_exactly_on_its_floor(
    per_kg: float, weight: float, step: float, every: int, floor: float
) -> None:
    """Given time to finish, one taper steps down by `step` and stops on the floor exactly:
    doses start, start - step, start - 2 step, ..., then the floor (never below it)."""
    data = copy.deepcopy(MINIMAL)
    data["treatment"]["duration_days"] = 3650  # long enough: <= 600 steps of <= 5 days
    data["prednisone"] = {
        "start_mg_per_kg": per_kg,
        "initial_hold_days": 7,
        "stages": [{"kind": "taper", "step_mg": step, "every_days": every, "floor_mg": floor}],
    }
    s = build_schedules(scenario_from_dict(data), weight)["prednisone"]
    doses = np.array(s.doses_mg_per_day)
    start = doses[0]
    if start <= floor:
        assert len(doses) == 1
        return
    assert doses[-1] == floor
    np.testing.assert_allclose(doses[:-1], start - step * np.arange(len(doses) - 1))
    assert doses[-2] - floor <= step + 1e-9
    assert list(np.diff(s.change_days)[1:]) == [every] * (len(doses) - 2)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 50), st.integers(0, 100)), min_size=1, max_size=8),
    st.data(),
)
def test_schedule_splice_tail_roundtrip(pieces: list[tuple[int, int]], data: st.DataObject) -> None:
    days, doses, day = [], [], 0
    for length, dose in pieces:
        days.append(day)
        doses.append(dose * 2.5)
        day += length
    s = Schedule(tuple(days), tuple(doses), day)
    cut = data.draw(st.integers(0, s.end_day))
    assert s.splice(cut, s.tail(cut)) == s
    assert s.cumulative(cut) + s.tail(cut).total_mg == pytest.approx(s.total_mg)
    assert (np.diff(s.cumulative(np.arange(s.end_day + 1))) >= 0).all()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 50), st.integers(0, 100)), min_size=1, max_size=8),
    st.data(),
)
def test_schedules_made_from_schedules_pass_every_check(
    pieces: list[tuple[int, int]], data: st.DataObject
) -> None:
    """Tails, splices, truncations and caps skip the checks: each must pass them anyway."""
    days, doses, day = [], [], 0
    for length, dose in pieces:
        days.append(day)
        doses.append(dose * 2.5)
        day += length
    s = Schedule(tuple(days), tuple(doses), day, 2)
    cut = data.draw(st.integers(0, s.end_day))
    cap = data.draw(st.floats(0, 300, allow_nan=False))
    for made in (
        s.tail(cut),
        s.truncated(cut),
        s.capped_at(cap),
        s.splice(cut, s.capped_at(cap).tail(cut)),
        s.splice(cut, Schedule.constant(0.0, 7, 2)),
    ):
        checked = Schedule(made.change_days, made.doses_mg_per_day, made.end_day, 2)
        assert made == checked
        np.testing.assert_array_equal(
            made.cumulative(np.arange(made.end_day + 1)),
            checked.cumulative(np.arange(made.end_day + 1)),
        )


@settings(max_examples=200, deadline=None)
@given(
    doses=st.lists(st.floats(0, 3000, allow_subnormal=False), min_size=1, max_size=12),
    gaps=st.lists(st.integers(1, 60), min_size=12, max_size=12),
    end_extra=st.integers(0, 40),
    days=st.lists(
        st.one_of(st.integers(-10, 900), st.floats(-10, 900, allow_nan=False)), max_size=20
    ),
)
def test_cumulative_of_one_day_equals_the_array_lookup(
    doses: list[float], gaps: list[int], end_extra: int, days: list[float]
) -> None:
    """One day (an int or a float) is looked up in plain floats: the same sums as arrays."""
    change = [0, *itertools.accumulate(gaps[: len(doses) - 1])]
    s = Schedule(tuple(change), tuple(doses), change[-1] + 1 + end_extra)
    for schedule in (s, s.truncated(0)):
        for day in days:
            one = schedule.cumulative(day)
            assert type(one) is float
            assert one == schedule.cumulative(np.array([day], dtype=np.float64))[0]
