"""The common changes are local: new drivers, a new drug, made outside ``sim/``.

Each part here is what a contributor would write (``docs/contributing.md``):
nothing under ``sim/`` knows about it, and the checks that guard the built-in
parts pass for it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.hazards import DRIVERS, Driver, FloatArray, Inputs, Intervals, register_driver
from tests.hazard_checks import check_driver


@register_driver
@dataclass(frozen=True)
class AgeLogLinear(Driver):
    """``per_decade ** ((age - reference) / 10)``: a multiplier that reads a covariate."""

    per_decade: float
    reference_years: float = 50.0

    @property
    def inputs(self) -> Inputs:
        return Inputs(covariates=frozenset({"age_years"}))

    def multiplier(self, iv: Intervals) -> FloatArray:
        age = np.asarray(iv.covariate("age_years"), dtype=np.float64)
        return np.asarray(self.per_decade ** ((age - self.reference_years) / 10.0))

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls(1.4), cls(0.8, reference_years=40.0))


@register_driver
@dataclass(frozen=True)
class MpaEmax(Driver):
    """``1 + emax * AUC / (ec50 + AUC)`` on MPA AUC0-12: a multiplier that reads PK exposure."""

    emax: float
    ec50_mg_h_per_l: float
    drug: str = "mmf"

    @property
    def inputs(self) -> Inputs:
        return Inputs(exposure=frozenset({self.drug}))

    def multiplier(self, iv: Intervals) -> FloatArray:
        auc = iv.steady_state_auc(self.drug, 12.0)
        return 1.0 + self.emax * auc / (self.ec50_mg_h_per_l + auc)

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls(2.0, 30.0),)


@register_driver
@dataclass(frozen=True)
class AgeByExposure(Driver):
    """Both at once: an exposure effect that grows with age."""

    per_mg_h_per_l_per_decade: float

    @property
    def inputs(self) -> Inputs:
        return Inputs(exposure=frozenset({"mmf"}), covariates=frozenset({"age_years"}))

    def multiplier(self, iv: Intervals) -> FloatArray:
        slope = self.per_mg_h_per_l_per_decade * np.asarray(iv.covariate("age_years")) / 10.0
        return np.exp(slope * (iv.steady_state_auc("mmf", 12.0) - 45.0))

    @classmethod
    def examples(cls) -> Sequence[Driver]:
        return (cls(0.004),)


def test_new_drivers_register_themselves() -> None:
    assert {"AgeLogLinear", "MpaEmax", "AgeByExposure"} <= set(DRIVERS)
    assert AgeLogLinear(1.4).inputs.patient_specific and AgeLogLinear(1.4).inputs.per_dose


def test_a_covariate_driver_passes_the_shortcut_checks_unchanged() -> None:
    for driver in AgeLogLinear.examples():
        check_driver(driver)


def test_an_exposure_driver_passes_the_shortcut_checks_unchanged() -> None:
    for driver in (*MpaEmax.examples(), *AgeByExposure.examples()):
        check_driver(driver)
