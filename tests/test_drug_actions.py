"""Dose actions for any drug: reduce, hold, stop, restart, switch, add (hand-computed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.actions import Setting, dose_action
from sim.errors import ScenarioError
from sim.scenario import load_scenario
from sim.schedule import Schedule
from sim.trial.cohort import simulate_cohort

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
BASE = SCENARIOS / "nct05129410.toml"

RESCUE = """
[drugs.rituximab]
route = "IV"
rescue = true

[[drugs.rituximab.course]]
kind = "pulse"
mg = 1000
on_days = [0, 14]

[drugs.tacrolimus]
doses_per_day = 2
[[drugs.tacrolimus.course]]
kind = "maintenance"
mg = 4
"""


def scenario_with(tmp_path: Path, body: str, overrides: list[str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "s.toml"
    path.write_text(f'extends = "{BASE}"\n{RESCUE}\n{body}')
    return load_scenario(path, overrides)


def act(scenario, entry: dict[str, object], schedules: dict[str, Schedule], day: int):  # type: ignore[no-untyped-def]
    from sim.scenario_schema import AdverseEvent

    made = dose_action(
        AdverseEvent.model_validate({"baseline_per_year": 1, "actions": [entry]}).actions[0]
    )
    assert made is not None
    setting = Setting(scenario, 60.0, 364, 165.0, schedules)
    return made.change(schedules[made.drug], day, setting)


def plans(scenario) -> dict[str, Schedule]:  # type: ignore[no-untyped-def]
    return {
        "rituximab": Schedule.constant(0.0, 364),
        "tacrolimus": Schedule.constant(4.0, 364, 2),
        "mmf": Schedule.constant(2000.0, 364, 2),
    }


def test_reduce_by_percent_and_by_mg(tmp_path: Path) -> None:
    s = scenario_with(tmp_path, "")
    # tacrolimus 4 mg/day, minus 25 % -> 3 mg/day from day 10 (40 + 3 x 354 = 1102 mg)
    c = act(s, {"action": "reduce", "drug": "tacrolimus", "by_percent": 25}, plans(s), 10)
    assert c.schedule.total_mg == 4 * 10 + 3 * 354
    # MMF 2000, minus 500 mg but not below 1750 -> 1750
    c = act(s, {"action": "reduce", "drug": "mmf", "by_mg": 500, "floor_mg": 1750}, plans(s), 100)
    assert c.schedule.dose_at(100) == 1750 and c.schedule.doses_per_day == 2


def test_hold_then_resume_lower(tmp_path: Path) -> None:
    s = scenario_with(tmp_path, "")
    entry = {"action": "hold", "drug": "tacrolimus", "days": 14, "resume_reduce_by_mg": 1}
    c = act(s, entry, plans(s), 50)
    sched = c.schedule
    assert sched.dose_at(49) == 4 and sched.dose_at(50) == 0 and sched.dose_at(63) == 0
    assert sched.dose_at(64) == 3  # resumed 1 mg lower
    assert sched.total_mg == 4 * 50 + 3 * (364 - 64)


def test_stop_switch_and_add(tmp_path: Path) -> None:
    s = scenario_with(tmp_path, "")
    c = act(s, {"action": "stop", "drug": "tacrolimus"}, plans(s), 30)
    assert c.schedule.total_mg == 4 * 30
    # switch tacrolimus to rituximab on day 30: 1,000 mg on days 30 and 44
    c = act(s, {"action": "switch", "drug": "tacrolimus", "to": "rituximab"}, plans(s), 30)
    assert c.schedule.total_mg == 4 * 30
    ((name, started),) = c.more
    assert name == "rituximab" and started.total_mg == 2000
    assert started.dose_at(30) == 1000 and started.dose_at(44) == 1000 and started.dose_at(31) == 0
    # add rituximab on day 100; adding again while on it changes nothing
    c = act(s, {"action": "add", "drug": "rituximab"}, plans(s), 100)
    assert c.schedule.dose_at(100) == 1000 and c.schedule.dose_at(114) == 1000
    again = {**plans(s), "rituximab": c.schedule}
    assert act(s, {"action": "add", "drug": "rituximab"}, again, 105) is None


def test_restart_a_course_at_a_step_and_at_a_dose(tmp_path: Path) -> None:
    s = scenario_with(tmp_path, "")
    on = {
        **plans(s),
        "tacrolimus": Schedule.constant(4.0, 364, 2).splice(20, Schedule.constant(0.0, 344, 2)),
    }
    c = act(s, {"action": "restart", "drug": "tacrolimus", "at_step": 0}, on, 200)
    assert c.schedule.dose_at(199) == 0 and c.schedule.dose_at(200) == 4
    c = act(s, {"action": "restart", "drug": "tacrolimus", "mg": 2}, on, 200)
    assert c.schedule.dose_at(200) == 2 and c.schedule.total_mg == 4 * 20 + 2 * 164


def test_a_rescue_drug_is_not_given_until_added(tmp_path: Path) -> None:
    body = """
[[adverse_events.ild_flare.actions]]
action = "add"
drug = "rituximab"
"""
    s = scenario_with(tmp_path, body)
    r = simulate_cohort(s, 300, seed=4)
    given = {pid: sch["rituximab"].total_mg for pid, sch in r.schedules.items()}
    flared = set(r.patients.loc[r.patients["ae_ild_flare"] > 0, "patient_id"])
    assert flared and all(given[p] == 0 for p in given if p not in flared)
    added = set(r.adjustments.loc[r.adjustments["action"] == "add", "patient_id"])
    assert added and added <= flared
    assert all(given[p] > 0 for p in added)


@pytest.mark.parametrize(
    ("entry", "where", "rule"),
    [
        ('{ action = "hold", drug = "aspirin", days = 3 }', "actions[2].drug", "must name a drug"),
        (
            '{ action = "switch", drug = "mmf", to = "mmf" }',
            "actions[2].to",
            "must name a [drugs] table",
        ),
        (
            '{ action = "restart", drug = "tacrolimus", at_step = 3 }',
            "actions[2].at_step",
            "must be < 1",
        ),
    ],
)
def test_malformed_actions(tmp_path: Path, entry: str, where: str, rule: str) -> None:
    body = (
        "[adverse_events.ild_flare]\nactions = [\n"
        '  { action = "prednisone_reescalate", start_mg_per_kg = 1.0 },\n'
        '  { action = "leave", status = "died", probability = 0.39 },\n'
        f"  {entry},\n]\n"
    )
    with pytest.raises(ScenarioError) as info:
        scenario_with(tmp_path, body)
    assert where in str(info.value) and rule in str(info.value)
