"""The disease model's schema: ``[disease.fvc]``, ``[disease.estimand]``, ``[disease.analysis]``.

The model itself is in :mod:`sim.disease`; its equations and defaults, with their
sources, are in ``docs/model.md`` ("The disease: FVC").
"""

from __future__ import annotations

import itertools
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from sim.schema_base import FieldProblems, KeyPath, StrictModel

__all__ = ["DiseaseSettings", "Estimand", "FvcAnalysis", "FvcModel"]


class FvcModel(StrictModel):
    """``[disease.fvc]``: each patient's FVC % predicted over time, measured at visits.

    The true value is the screened baseline, plus a natural course (a slope per patient,
    Normal), plus a treatment effect that approaches its exposure-dependent target with
    a half-time (:mod:`sim.disease`). Each measurement adds an independent error.
    """

    visit_weeks: list[int] = Field(min_length=2, max_length=60)
    """Weeks of the visits, from the first dose; the first is 0 (the baseline)."""
    landmark_week: int = Field(ge=1, le=520)
    """The visit of the primary endpoint (change from baseline), one of ``visit_weeks``."""
    natural_slope_pp_per_year: float = Field(default=-4.0, ge=-50, le=50)
    slope_sd_pp_per_year: float = Field(default=7.0, ge=0, le=50)
    mmf_effect_max_pp: float = Field(default=11.6, ge=-50, le=50)
    """The MMF effect on FVC at full exposure, percentage points above the natural course."""
    mpa_ec50_mg_h_per_l: float = Field(default=20.0, gt=0, le=1000)
    mpa_hill: float = Field(default=2.0, gt=0, le=10)
    gc_effect_max_pp: float = Field(default=0.0, ge=-50, le=50)
    """The glucocorticoid's effect at full dose (Emax in mg/day, ``gc_ed50_mg``)."""
    gc_ed50_mg: float = Field(default=15.0, gt=0, le=1000)
    onset_half_time_days: float = Field(default=91.0, gt=0, le=3650)
    """The effect approaches its target (and wanes when treatment stops) with this half-time."""
    measurement_sd_pp: float = Field(default=3.0, ge=0, le=50)

    @model_validator(mode="after")
    def _visits(self) -> Self:
        problems: list[tuple[KeyPath, Any, str]] = []
        weeks = self.visit_weeks
        if weeks[0] != 0:
            problems.append((("visit_weeks",), weeks, "the first visit is week 0 (the baseline)"))
        if any(b <= a for a, b in itertools.pairwise(weeks)):
            problems.append((("visit_weeks",), weeks, "must be strictly increasing"))
        if self.landmark_week not in weeks:
            problems.append((("landmark_week",), self.landmark_week, "must be one of visit_weeks"))
        if problems:
            raise FieldProblems(problems)
        return self


class Estimand(StrictModel):
    """``[disease.estimand]``: how each intercurrent event counts (ICH E9(R1)).

    ``discontinuation`` (leaving study treatment, or stopping MMF): ``treatment_policy``
    keeps measuring (the patient stays in follow-up, off treatment) or
    ``while_on_treatment`` uses no measurement after it. ``death``: ``while_alive``
    (no measurement after it) or ``composite`` (the change at the landmark of a patient
    who died before it is ``death_change_pp``). Withdrawal ends the measurements
    (missing).
    """

    discontinuation: Literal["treatment_policy", "while_on_treatment"] = "treatment_policy"
    death: Literal["while_alive", "composite"] = "while_alive"
    death_change_pp: float = Field(default=-20.0, ge=-100, le=0)


class FvcAnalysis(StrictModel):
    """``[disease.analysis]``: the primary analysis of each replicate trial.

    ``paired_t``: the change from baseline at the landmark over the evaluable patients,
    its ``1 - alpha`` confidence interval and the two-sided p-value against
    ``null_change_pp`` (one arm); with arms, Welch's t-test of each arm against the
    first. ``mixed_model``: every post-baseline visit's change in a linear mixed model
    (statsmodels ``MixedLM``, the ``analysis`` extra): visit (by arm) as a factor, the
    centred baseline as a covariate, a random intercept per patient; the estimate at the
    landmark with its interval and p-value on a t reference with (patients at the
    landmark - 1) degrees of freedom.
    """

    method: Literal["paired_t", "mixed_model"] = "paired_t"
    alpha: float = Field(default=0.05, gt=0, lt=1)
    null_change_pp: float = Field(default=0.0, ge=-100, le=100)


class DiseaseSettings(StrictModel):
    """``[disease]``: the disease model (FVC), its estimand and its primary analysis."""

    fvc: FvcModel
    estimand: Estimand = Field(default_factory=Estimand)
    analysis: FvcAnalysis = Field(default_factory=FvcAnalysis)
