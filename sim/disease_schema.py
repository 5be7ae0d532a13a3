"""The disease model's schema: ``[disease.fvc]``, ``[disease.treg]``, ``[disease.estimand]``,
``[disease.analysis]``.

The model itself is in :mod:`sim.disease`; its equations and defaults, with their
sources, are in ``docs/model.md`` ("The disease: FVC").
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from sim.schema_base import FieldProblems, KeyPath, StrictModel

__all__ = ["DiseaseSettings", "Estimand", "FvcAnalysis", "FvcModel", "Subtype", "TregModel"]


class Marker(StrictModel):
    """What every continuous measure of the disease has: a trajectory measured at visits.

    The true value is a baseline, plus a natural course (a slope per patient, Normal),
    plus a treatment effect that approaches its exposure-dependent target with a
    half-time (:mod:`sim.disease`). Each measurement adds an independent error.
    """

    visit_weeks: list[int] = Field(min_length=2, max_length=60)
    """Weeks of the visits, from the first dose; the first is 0 (the baseline)."""
    landmark_week: int = Field(ge=1, le=520)
    """The visit of the endpoint (change from baseline), one of ``visit_weeks``."""
    natural_slope_pp_per_year: float = Field(default=-4.0, ge=-50, le=50)
    slope_sd_pp_per_year: float = Field(default=7.0, ge=0, le=50)
    mmf_effect_max_pp: float = Field(default=11.6, ge=-50, le=50)
    """The MMF effect at full exposure, percentage points above the natural course."""
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


class Subtype(StrictModel):
    """``[disease.fvc.subtypes.<condition>]``: the natural course of patients with a
    declared condition (e.g. extensive fibrosis, anti-synthetase antibodies)."""

    natural_slope_pp_per_year: float = Field(ge=-50, le=50)
    slope_sd_pp_per_year: float | None = Field(default=None, ge=0, le=50)
    """Default: the model's own ``slope_sd_pp_per_year``."""


class FvcModel(Marker):
    """``[disease.fvc]``: each patient's FVC % predicted over time, measured at visits.

    The baseline is the screened value. ``flare_events`` name the adverse events that
    lower FVC: each occurrence lowers the true value by a Uniform(``flare_drop_min_pp``,
    ``flare_drop_max_pp``) amount from its day on, for good. ``subtypes`` give the natural
    course of patients with a declared condition (the first one they have, in order).
    """

    flare_events: list[str] = Field(default_factory=list, max_length=20)
    """Adverse events (names under ``[adverse_events]``) that lower FVC when they happen."""
    flare_drop_min_pp: float = Field(default=5.0, ge=0, le=50)
    flare_drop_max_pp: float = Field(default=10.0, ge=0, le=50)
    subtypes: dict[str, Subtype] = Field(default_factory=dict, max_length=20)
    """By condition (built-in or under ``[population.conditions]``): its natural course."""

    @model_validator(mode="after")
    def _drops(self) -> Self:
        if self.flare_drop_max_pp < self.flare_drop_min_pp:
            raise FieldProblems(
                [(("flare_drop_max_pp",), self.flare_drop_max_pp, "must be >= flare_drop_min_pp")]
            )
        return self


class TregModel(Marker):
    """``[disease.treg]``: peripheral regulatory T cells, % of CD4+, a second endpoint.

    The baseline is drawn, Normal(``baseline_mean_pct``, ``baseline_sd_pct``) cut below at
    ``baseline_min_pct``; the rest as every marker. The defaults are assumptions but for
    the baseline (``docs/model.md``).
    """

    baseline_mean_pct: float = Field(default=7.2, ge=0, le=100)
    baseline_sd_pct: float = Field(default=2.3, ge=0, le=100)
    baseline_min_pct: float = Field(default=0.5, ge=0, le=100)
    natural_slope_pp_per_year: float = Field(default=0.0, ge=-50, le=50)
    slope_sd_pp_per_year: float = Field(default=1.5, ge=0, le=50)
    mmf_effect_max_pp: float = Field(default=1.2, ge=-50, le=50)
    gc_effect_max_pp: float = Field(default=-0.5, ge=-50, le=50)
    onset_half_time_days: float = Field(default=45.0, gt=0, le=3650)
    measurement_sd_pp: float = Field(default=1.0, ge=0, le=50)


class Estimand(StrictModel):
    """``[disease.estimand]``: how each intercurrent event counts (ICH E9(R1)).

    ``discontinuation`` (leaving study treatment, or stopping MMF): ``treatment_policy``
    keeps measuring (the patient stays in follow-up, off treatment) or
    ``while_on_treatment`` uses no measurement after it. ``death``: ``while_alive``
    (no measurement after it) or ``composite`` (the change at the landmark of a patient
    who died before it is ``death_change_pp``). ``rescue`` (the first occurrence of one
    of ``rescue_events``, whose actions are rescue therapy): ``treatment_policy`` keeps
    every measurement, ``hypothetical`` uses none from its day on (the change had no
    rescue been given, missing at random given the earlier visits: the mixed model uses
    them), ``composite`` counts a rescued patient's change at the landmark as
    ``rescue_change_pp`` (failure). Withdrawal ends the measurements (missing). The
    composite changes are FVC's: a second endpoint's change is missing instead.
    """

    discontinuation: Literal["treatment_policy", "while_on_treatment"] = "treatment_policy"
    death: Literal["while_alive", "composite"] = "while_alive"
    death_change_pp: float = Field(default=-20.0, ge=-100, le=0)
    rescue: Literal["treatment_policy", "hypothetical", "composite"] = "treatment_policy"
    rescue_events: list[str] = Field(default_factory=list, max_length=20)
    """Adverse events (names under ``[adverse_events]``) whose treatment is rescue therapy."""
    rescue_change_pp: float = Field(default=-10.0, ge=-100, le=0)


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
    """``[disease]``: the disease model (FVC; Treg optionally), its estimand and its
    primary analysis."""

    fvc: FvcModel
    treg: TregModel | None = None
    estimand: Estimand = Field(default_factory=Estimand)
    analysis: FvcAnalysis = Field(default_factory=FvcAnalysis)


def disease_problems(
    disease: DiseaseSettings,
    events: list[str],
    conditions: list[str],
    end_day: int,
    excluded: Sequence[str] = (),
) -> list[tuple[KeyPath, Any, str]]:
    """What the disease tables name that the scenario does not have.

    Parameters
    ----------
    disease : DiseaseSettings
    events : list of str
        The scenario's adverse events.
    conditions : list of str
        The conditions a patient may have (built-in and declared).
    end_day : int
        The last day of treatment: every visit must be within it.
    excluded : sequence of str
        The conditions eligibility excludes (a subtype of one would never apply).
    """
    problems: list[tuple[KeyPath, Any, str]] = []
    for key, marker in (("fvc", disease.fvc), ("treg", disease.treg)):
        if marker is not None and 7 * marker.visit_weeks[-1] > end_day:
            rule = f"the last visit must be within treatment ({end_day} days)"
            problems.append((("disease", key, "visit_weeks"), marker.visit_weeks, rule))
    named = [("fvc", "flare_events"), ("estimand", "rescue_events")]
    for table, key in named:
        for i, name in enumerate(getattr(getattr(disease, table), key)):
            if name not in events:
                rule = "must name an adverse event of the scenario: " + ", ".join(events)
                problems.append((("disease", table, key, i), name, rule))
    for name in disease.fvc.subtypes:
        if name not in conditions:
            rule = "must name a condition: " + ", ".join(conditions)
            problems.append((("disease", "fvc", "subtypes", name), None, rule))
        elif name in excluded:
            rule = "names a condition that [eligibility] excludes: no patient has it"
            problems.append((("disease", "fvc", "subtypes", name), None, rule))
    return problems
