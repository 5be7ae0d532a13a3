"""Hazards of adverse events and dropout: plans, drivers, grids, and the template cache.

- :mod:`sim.hazards.plan`: what drivers read (a patient's plan on intervals);
- :mod:`sim.hazards.drivers`: the drivers (each declares what it reads and registers
  itself) and the hazard, a baseline rate times its drivers' multipliers;
- :mod:`sim.hazards.templates`: the per-plan rates shared between patients, derived
  from the drivers' declarations;
- :mod:`sim.hazards.grids`: one patient's or many patients' rates on a plan, and the
  exact times at which cumulative hazards reach their thresholds.
"""

from sim.hazards.drivers import (
    DAYS_PER_YEAR,
    DRIVERS,
    MULTIPLIER_CEILING,
    CurrentDose,
    CurrentDoseBands,
    Driver,
    Hazard,
    Inputs,
    MpaAuc,
    MpaBands,
    RateOverflow,
    TimeBands,
    WeightedDose,
    Windows,
    driver_from,
    register_driver,
)
from sim.hazards.grids import HazardGrid, cumulative_hazards, plan_grids
from sim.hazards.plan import FloatArray, Intervals, Plan
from sim.hazards.templates import TemplateCache

__all__ = [
    "DAYS_PER_YEAR",
    "DRIVERS",
    "MULTIPLIER_CEILING",
    "CurrentDose",
    "CurrentDoseBands",
    "Driver",
    "FloatArray",
    "Hazard",
    "HazardGrid",
    "Inputs",
    "Intervals",
    "MpaAuc",
    "MpaBands",
    "Plan",
    "RateOverflow",
    "TemplateCache",
    "TimeBands",
    "WeightedDose",
    "Windows",
    "cumulative_hazards",
    "driver_from",
    "plan_grids",
    "register_driver",
]
