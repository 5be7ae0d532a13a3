"""dosesim: plan trials that pair a glucocorticoid taper with a steroid-sparing drug.

A planning tool, not a dosing aid for individual patients.

The public API::

    import sim
    scenario = sim.load_scenario("scenarios/nct05129410.toml")
    schedules = sim.build_schedules(scenario, weight_kg=60)
    schedules["prednisone"].cumulative(364)   # 7892.5 mg
"""

from sim.errors import DosesimError, ScenarioError
from sim.forecast import ForecastResult, forecast
from sim.model import CohortResult, simulate_cohort
from sim.recruitment import TrialResult, simulate_trial, simulate_trials
from sim.runner import RunResult, run
from sim.scenario import Scenario, load_scenario, scenario_from_dict
from sim.schedule import (
    Schedule,
    Segment,
    build_mmf,
    build_prednisone,
    build_schedules,
    prednisone_start_mg,
)

__version__ = "0.1.0"

__all__ = [
    "CohortResult",
    "DosesimError",
    "ForecastResult",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "Schedule",
    "Segment",
    "TrialResult",
    "__version__",
    "build_mmf",
    "build_prednisone",
    "build_schedules",
    "forecast",
    "load_scenario",
    "prednisone_start_mg",
    "run",
    "scenario_from_dict",
    "simulate_cohort",
    "simulate_trial",
    "simulate_trials",
]
