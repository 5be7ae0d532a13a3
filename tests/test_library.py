"""The library of published protocols: schedules hand-computed from the scenario files.

Each expected number is worked out in the comment beside it from the tables the
scenario states (their sources are in the files' comments), for the reference weights
45, 55, 62.5, 75 and 90 kg (and 160 / 175 cm where a dose is per m2). Day d of a
schedule is the whole day [d, d + 1): week k ends at day 7k.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.arms import arm_scenarios
from sim.regimens import Body, scenario_schedules
from sim.scenario import Scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def arm(name: str, arm_name: str) -> Scenario:
    """The scenario of one arm of a library file."""
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    by_name = dict(zip([a.name for a in scenario.arms], arm_scenarios(scenario), strict=True))
    return by_name[arm_name]


def cumulative(s: Scenario, drug: str, weight: float, day: int, height: float = 170.0) -> float:
    return float(scenario_schedules(s, Body(weight, height))[drug].cumulative(day))


# -- PEXIVAS: oral prednisolone from day 3 (after 3 x 1 g IV methylprednisolone) ------
# Table week k covers days 3 + 7(k - 1) .. 3 + 7k - 1. To day 84 (week 12): 81 days of
# tablets = weeks 1-11 whole (77 days) + 4 days of week 12. To day 182: 179 days = weeks
# 1-25 (175 days) + 4 days of week 26. To day 364: 361 days = weeks 1-51 + 4 days.

PEXIVAS_REDUCED = {
    # < 50 kg: 50, 25, 20 x2, 15 x2, 12.5 x2, 10 x2, 7.5 x2, 6 x2, then 5
    # w1-11: 50 + 25 + 40 + 30 + 25 + 20 + 7.5 = 197.5 x 7 = 1382.5; + 4 x 7.5 = 1412.5
    # w1-14 = (197.5 + 7.5 + 12) x 7 = 1519; to day 182: + (179 - 98) x 5 = 405 -> 1924
    # to day 364: 1519 + (361 - 98) x 5 = 1519 + 1315 = 2834
    45: (1412.5, 1924.0, 2834.0),
    # 50-75 kg (55, 62.5 and 75 kg, edges in the band): 60, 30, 25 x2, 20 x2, 15 x2,
    # 12.5 x2, 10 x2, 7.5 x2, then 5. w1-11: 60 + 30 + 50 + 40 + 30 + 25 + 10 = 245 x 7
    # = 1715; + 4 x 10 = 1755. w1-14 = (245 + 10 + 15) x 7 = 1890; day 182: 1890 + 405 =
    # 2295; day 364: 1890 + 1315 = 3205
    55: (1755.0, 2295.0, 3205.0),
    62.5: (1755.0, 2295.0, 3205.0),
    75: (1755.0, 2295.0, 3205.0),
    # > 75 kg: 75, 40, 30 x2, 25 x2, 20 x2, 15 x2, 12.5 x2, 10 x2, 7.5 x4, then 5.
    # w1-11: 75 + 40 + 60 + 50 + 40 + 30 + 12.5 = 307.5 x 7 = 2152.5; + 4 x 12.5 = 2202.5
    # w1-18 = (307.5 + 12.5 + 20 + 30) x 7 = 2590; day 182: + (179 - 126) x 5 = 265 ->
    # 2855; day 364: 2590 + (361 - 126) x 5 = 2590 + 1175 = 3765
    90: (2202.5, 2855.0, 3765.0),
}
PEXIVAS_STANDARD = {
    # < 50 kg: 50 x2, 40 x2, 30 x2, 25 x2, 20 x2, 15 x2, 12.5 x2, 10 x4, 7.5 x4, then 5.
    # w1-11: 100 + 80 + 60 + 50 + 40 + 15 = 345 x 7 = 2415; + 4 x 15 = 2475.
    # w1-22 = (100 + 80 + 60 + 50 + 40 + 30 + 25 + 40 + 30) x 7 = 455 x 7 = 3185;
    # day 182: + (179 - 154) x 5 = 125 -> 3310; day 364: + (361 - 154) x 5 = 1035 -> 4220
    45: (2475.0, 3310.0, 4220.0),
    # 50-75 kg: 60 x2, 50 x2, 40 x2, 30 x2, 25 x2, 20 x2, 15 x2, 10 x4, 7.5 x4, then 5.
    # w1-11: 120 + 100 + 80 + 60 + 50 + 20 = 430 x 7 = 3010; + 4 x 20 = 3090.
    # w1-22 = (120 + 100 + 80 + 60 + 50 + 40 + 30 + 40 + 30) x 7 = 550 x 7 = 3850;
    # day 182: 3850 + 125 = 3975; day 364: 3850 + 1035 = 4885
    55: (3090.0, 3975.0, 4885.0),
    62.5: (3090.0, 3975.0, 4885.0),
    75: (3090.0, 3975.0, 4885.0),
    # > 75 kg: 75 x2, 60 x2, 50 x2, 40 x2, 30 x2, 25 x2, 20 x2, 15 x4, 10 x2, 7.5 x2, 5.
    # w1-11: 150 + 120 + 100 + 80 + 60 + 25 = 535 x 7 = 3745; + 4 x 25 = 3845.
    # w1-22 = (150 + 120 + 100 + 80 + 60 + 50 + 40 + 60 + 20 + 15) x 7 = 695 x 7 = 4865;
    # day 182: 4865 + 125 = 4990; day 364: 4865 + 1035 = 5900
    90: (3845.0, 4990.0, 5900.0),
}


@pytest.mark.parametrize(
    ("arm_name", "table"), [("reduced", PEXIVAS_REDUCED), ("standard", PEXIVAS_STANDARD)]
)
def test_pexivas_prednisolone(arm_name: str, table: dict[float, tuple[float, ...]]) -> None:
    s = arm("pexivas", arm_name)
    for weight, expected in table.items():
        got = tuple(cumulative(s, "prednisone", weight, d) for d in (84, 182, 364))
        assert got == expected, (arm_name, weight)
        # 3 daily pulses of 1,000 mg methylprednisolone, days 0-2, at every weight
        assert cumulative(s, "methylprednisolone", weight, 84) == 3000


# -- GiACTA -------------------------------------------------------------------------
# 26-week table from 60 mg: 60, 50, 40, 35, 30, 25, 20, 15, 12.5, 12.5, 10, 9 (weeks
# 1-12: sum 319 -> x 7 = 2233), then 8, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1 (weeks
# 13-26: sum 57; weeks 1-26: 376 x 7 = 2632), then 0. The 52-week stand-in holds each
# level two weeks: weeks 1-12 = 2 x (60 + 50 + 40 + 35 + 30 + 25) = 480 x 7 = 3360;
# weeks 1-26 hold levels 1-13 (60 ... 9, 8: 319 + 8 = 327) twice: 654 x 7 = 4578; all
# 52 weeks: 2 x 2632 = 5264.


@pytest.mark.parametrize("weight", [45, 55, 62.5, 75, 90])
def test_giacta_prednisone_and_tocilizumab(weight: float) -> None:
    for name in ("TCZ_weekly", "TCZ_q2w", "PBO_26"):
        s = arm("giacta", name)
        assert [cumulative(s, "prednisone", weight, d) for d in (84, 182, 364)] == [
            2233,
            2632,
            2632,
        ]
    s = arm("giacta", "PBO_52")
    assert [cumulative(s, "prednisone", weight, d) for d in (84, 182, 364)] == [
        3360,
        4578,
        5264,
    ]
    # tocilizumab 162 mg weekly: doses on days 0, 7, ..., 77 before day 84 (12), 175 before
    # day 182 (26), 357 before day 364 (52)
    s = arm("giacta", "TCZ_weekly")
    assert [cumulative(s, "tocilizumab", weight, d) for d in (84, 182, 364)] == [
        12 * 162,
        26 * 162,
        52 * 162,
    ]
    # every other week: days 0, 14, ..., 70 (6), 168 (13), 350 (26)
    s = arm("giacta", "TCZ_q2w")
    assert [cumulative(s, "tocilizumab", weight, d) for d in (84, 182, 364)] == [
        6 * 162,
        13 * 162,
        26 * 162,
    ]
    assert "tocilizumab" not in scenario_schedules(arm("giacta", "PBO_26"), Body(weight))


# -- SLS II ---------------------------------------------------------------------------
# MMF: 1.0, 1.5, 2.0, 2.5 g/day for 28 days each, then 3.0 g/day: to day 84: 28 x (1000
# + 1500 + 2000) = 126,000 mg; to 182: + 28 x 2500 + 70 x 3000 = 70,000 + 210,000 ->
# 406,000; to 364: + 182 x 3000 = 546,000 -> 952,000; to 728: + 364 x 3000 -> 2,044,000.
# Cyclophosphamide: 50 mg/day for 28 days, + 25 mg every 28 days to 2 mg/kg rounded half
# up to 25 mg (45 kg: 90 -> 100; 55: 110 -> 100; 62.5: 125; 75: 150; 90: 180 -> 175),
# to day 364, then placebo.
SLS2_CYC = {
    # 50, 75, 100 (days 56-): 28 x (50 + 75 + 100) = 6300 to day 84; to 182: + 98 x 100
    # = 16,100; to 364: + 280 x 100 = 34,300; nothing after
    45: (6300, 16100, 34300, 34300),
    55: (6300, 16100, 34300, 34300),
    # 125 from day 84: to 182: 6300 + 98 x 125 = 18,550; to 364: + 182 x 125 = 41,300
    62.5: (6300, 18550, 41300, 41300),
    # 125 (days 84-111), 150 (112-): to 182: 6300 + 28 x 125 + 70 x 150 = 20,300; to 364:
    # + 182 x 150 = 47,600
    75: (6300, 20300, 47600, 47600),
    # 125, 150 (112-139), 175 (140-): to 182: 6300 + 3500 + 4200 + 42 x 175 = 21,350; to
    # 364: + 182 x 175 = 31,850 -> 53,200
    90: (6300, 21350, 53200, 53200),
}


@pytest.mark.parametrize("weight", [45, 55, 62.5, 75, 90])
def test_sls2(weight: float) -> None:
    days = (84, 182, 364, 728)
    mmf = arm("sls2", "MMF")
    assert [cumulative(mmf, "mmf", weight, d) for d in days] == [126000, 406000, 952000, 2044000]
    cyc = arm("sls2", "CYC")
    assert tuple(cumulative(cyc, "cyclophosphamide", weight, d) for d in days) == SLS2_CYC[weight]
    assert "mmf" not in scenario_schedules(cyc, Body(weight))


# -- ADVOCATE ---------------------------------------------------------------------------
# Prednisone arm, stand-in rows (see the file): >= 55 kg 60, 45, 30, 25 x2, 20 x2, 15 x2,
# 12.5 x2, 10 x2, 7.5 x2, 5 x5, 0. Weeks 1-12: 60 + 45 + 30 + 50 + 40 + 30 + 25 + 10 = 290
# x 7 = 2030; weeks 1-20: 290 + 10 + 15 + 25 = 340 x 7 = 2380.
# < 55 kg: 45, 35, 25, 20 x2, 15 x2, 12.5 x2, 10 x2, 7.5 x2, 5 x4, 2.5 x3, 0. Weeks 1-12:
# 45 + 35 + 25 + 40 + 30 + 25 + 20 + 7.5 = 227.5 x 7 = 1592.5; weeks 1-20: 227.5 + 7.5 + 20
# + 7.5 = 262.5 x 7 = 1837.5.
# Rituximab 375 mg/m2 x 4 weekly, rounded to 100 mg: Mosteller BSA sqrt(H x W / 3600):
# 45 kg 160 cm: 1.4142 -> 530 -> 500; 45 kg 175 cm: 1.4790 -> 555 -> 600; 62.5 kg 175 cm:
# 1.7428 -> 654 -> 700; 90 kg 160 cm: 2.0 -> 750 -> 800 (half up).
# Avacopan 30 mg twice daily = 60 mg/day: 84 x 60 = 5040; 364 x 60 = 21,840.


@pytest.mark.parametrize(
    ("weight", "prednisone"),
    [(45, (1592.5, 1837.5, 1837.5)), (55, (2030, 2380, 2380)), (62.5, (2030, 2380, 2380))]
    + [(75, (2030, 2380, 2380)), (90, (2030, 2380, 2380))],
)
def test_advocate(weight: float, prednisone: tuple[float, ...]) -> None:
    days = (84, 182, 364)
    pred = arm("advocate", "prednisone")
    assert tuple(cumulative(pred, "prednisone", weight, d, 160) for d in days) == prednisone
    ava = arm("advocate", "avacopan")
    assert [cumulative(ava, "prednisone", weight, d, 160) for d in days] == [0, 0, 0]
    assert [cumulative(ava, "avacopan", weight, d, 160) for d in (84, 364)] == [5040, 21840]


@pytest.mark.parametrize(
    ("weight", "height", "per_dose"),
    [(45, 160, 500), (45, 175, 600), (62.5, 175, 700), (90, 160, 800)],
)
def test_advocate_rituximab_per_m2(weight: float, height: float, per_dose: float) -> None:
    for name in ("prednisone", "avacopan"):
        s = arm("advocate", name)
        assert cumulative(s, "rituximab", weight, 364, height) == 4 * per_dose


# -- NCT05129410 vs IV cyclophosphamide -------------------------------------------------
# 500 mg/m2 every 28 days x 6, rounded to 50 mg, cap 1,000: 45 kg 160 cm: 707 -> 700;
# 75 kg 175 cm: BSA sqrt(175 x 75 / 3600) = 1.9094 -> 955 -> 950; 90 kg 175 cm: 2.0917 ->
# 1046 -> 1050 -> capped 1000. Pulses before day 84: days 0, 28, 56 (3); before 182: 6.
# Azathioprine 2 mg/kg from day 168, 50 mg tablets, cap 150: 45 kg: 90 -> 100; 75 kg:
# 150; 90 kg: 180 -> 150 (cap): to day 364 = 196 days.


@pytest.mark.parametrize(
    ("weight", "height", "pulse", "aza"),
    [(45, 160, 700, 100), (75, 175, 950, 150), (90, 175, 1000, 150)],
)
def test_vs_cyc(weight: float, height: float, pulse: float, aza: float) -> None:
    s = arm("nct05129410_vs_cyc", "CYC")
    cyc = [cumulative(s, "cyclophosphamide", weight, d, height) for d in (84, 182, 364)]
    assert cyc == [3 * pulse, 6 * pulse, 6 * pulse]
    assert cumulative(s, "azathioprine", weight, 364, height) == 196 * aza
    assert cumulative(s, "azathioprine", weight, 168, height) == 0


def test_declared_landmarks_and_days_above_are_columns() -> None:
    # SLS II declares weeks 12, 26, 52, 104 and days at or above 100 mg cyclophosphamide
    from sim.trial.cohort import simulate_cohort

    r = simulate_cohort(load_scenario(SCENARIOS / "sls2.toml"), 60, seed=1)
    p = r.patients
    done = p[(p["status"] == "completed") & (p["arm"] == "CYC")]
    assert len(done) > 5
    for _, row in done.iterrows():
        s = r.schedules[row["patient_id"]]["cyclophosphamide"]
        # the column is the schedule's cumulative dose at day 7 x 104 = 728 (the end)
        assert row["cumulative_cyclophosphamide_mg_week104"] == s.cumulative(728)
        assert row["cumulative_cyclophosphamide_mg_week26"] == s.cumulative(182)
        days = sum(g.end_day - g.start_day for g in s.segments() if g.dose_mg_per_day >= 100)
        assert row["days_cyclophosphamide_at_or_above_100mg"] == days
    left = p[(p["status"] != "completed") & (p["exit_day"] < 182)]
    assert left["cumulative_mmf_mg_week26"].isna().all()  # a landmark they did not reach


def test_a_course_that_starts_after_pulses_reports_its_first_dose() -> None:
    # PEXIVAS: prednisolone from day 3, after three days of IV methylprednisolone; the start
    # dose is the table's first row (50 / 60 / 75 mg by band), and the first day at or
    # below 7.5 mg/day counts from the first dose, not from the pulse days (0 mg)
    from sim.trial.cohort import simulate_cohort

    p = simulate_cohort(load_scenario(SCENARIOS / "pexivas.toml"), 80, seed=2).patients
    band = p["weight_kg"].map(lambda w: 50.0 if w < 50 else (60.0 if w <= 75 else 75.0))
    assert (p["prednisone_start_mg_per_day"] == band).all()
    reached = p["first_day_at_or_below_7_5mg"].dropna()
    # earliest: reduced arm, < 50 kg, 7.5 mg/day in week 11: day 3 + 7 x 10 = 73
    assert len(reached) > 0 and (reached >= 73).all()
