"""dosesim: plan trials that pair a glucocorticoid taper with a steroid-sparing drug.

A planning tool, not a dosing aid for individual patients.

The public API::

    import sim
    scenario = sim.load_scenario("scenarios/nct05129410.toml")
    schedules = sim.build_schedules(scenario, weight_kg=60)
    schedules["prednisone"].cumulative(364)   # 7892.5 mg

The names below are imported on first use (PEP 562), so that ``import sim``
and ``dosesim --version`` do not pay for numpy, scipy and pandas.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "DosesimError": "sim.errors",
    "ScenarioError": "sim.errors",
    "ForecastResult": "sim.forecast",
    "forecast": "sim.forecast",
    "CohortResult": "sim.trial.cohort",
    "simulate_cohort": "sim.trial.cohort",
    "TrialResult": "sim.trial.trial",
    "simulate_trial": "sim.trial.trial",
    "simulate_trials": "sim.trial.trial",
    "RunResult": "sim.runner",
    "run": "sim.runner",
    "Scenario": "sim.scenario",
    "load_scenario": "sim.scenario",
    "scenario_from_dict": "sim.scenario",
    "Schedule": "sim.schedule",
    "Segment": "sim.schedule",
    "build_mmf": "sim.schedule",
    "build_prednisone": "sim.schedule",
    "build_schedules": "sim.schedule",
    "prednisone_start_mg": "sim.schedule",
}

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

if TYPE_CHECKING:
    from sim.errors import DosesimError, ScenarioError
    from sim.forecast import ForecastResult, forecast
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
    from sim.trial.cohort import CohortResult, simulate_cohort
    from sim.trial.trial import TrialResult, simulate_trial, simulate_trials


#: the subpackages and modules reachable as attributes after ``import sim`` (imported on
#: first use): ``sim.views.plots``, ``sim.compare.compare``, ...
_SUBMODULES = frozenset(
    {"actions", "compare", "drugs", "endpoints", "exposure", "hazards", "population", "results",
     "runner", "schedule", "scenario", "streams", "trial", "views"}
)  # fmt: skip

#: HTML of objects in a notebook: (module, class) -> the function of :mod:`sim.views.display`
_NOTEBOOK_HTML = {
    ("sim.scenario_schema", "Scenario"): "scenario_html",
    ("sim.schedule", "Schedule"): "schedule_html",
    ("sim.runner", "RunResult"): "run_html",
}


def _html_by(function: str) -> Any:
    def html(obj: Any) -> str:
        from sim.views import display

        return str(getattr(display, function)(obj))

    return html


def register_notebook_display(shell: Any = None) -> bool:
    """Show scenarios, schedules and run results as HTML tables in IPython and Jupyter.

    Called by ``import sim`` when IPython is running; the core classes know nothing
    of their display (:mod:`sim.views.display` does). Returns whether a shell was found.
    """
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
        if shell is None:
            return False
    formatter = shell.display_formatter.formatters["text/html"]
    for (module, cls), function in _NOTEBOOK_HTML.items():
        formatter.for_type_by_name(module, cls, _html_by(function))
    return True


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _SUBMODULES:
            return importlib.import_module(f"sim.{name}")
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])


class _Package(types.ModuleType):
    """The ``sim`` package: importing the submodule ``sim.forecast`` keeps ``sim.forecast``
    the function (the import system would otherwise set the attribute to the module)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
register_notebook_display()
