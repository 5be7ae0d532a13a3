"""Scenario files: load TOML, resolve ``extends``, apply overrides, validate, dump, hash.

A scenario is one declarative TOML file under ``scenarios/``. A variant names
its base with ``extends = "base.toml"`` (relative to the variant's folder):
tables deep-merge, lists and values replace. ``name`` and ``description`` are
never inherited: a variant is named by its own file. Command-line overrides
(``--set prednisone.start_mg_per_kg=0.5``) are applied last.

Everything is checked at load. Every problem is reported together, each as
``file: key.path = value: rule``, in a :class:`~sim.errors.ScenarioError`.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from sim.errors import Problem, ScenarioError

__all__ = [
    "ExposureSettings",
    "HoldStage",
    "MmfRegimen",
    "MpaPK",
    "OralPK",
    "PrednisoneRegimen",
    "Scenario",
    "ScenarioError",
    "TaperStage",
    "TitrationStep",
    "TreatmentSettings",
    "load_scenario",
    "scenario_from_dict",
]

KeyPath = tuple[str | int, ...]


class _FieldProblems(ValueError):
    """Raised by model validators to report problems at precise relative key paths."""

    def __init__(self, problems: list[tuple[KeyPath, Any, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(rule for _, _, rule in problems))


class _Model(BaseModel):
    # strict: TOML has types, so "5" is not 5 and true is not 1 (ints do
    # count as floats). No NaN or infinity: they would travel silently.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class TreatmentSettings(_Model):
    """``[treatment]``: how long each patient is treated."""

    duration_days: int = Field(gt=0, le=3650)
    """End of treatment, days from the first dose (exclusive); 364 = 52 weeks."""


class TaperStage(_Model):
    """A taper: lower the dose by ``step_mg`` every ``every_days`` down to ``floor_mg``."""

    kind: Literal["taper"]
    step_mg: float = Field(gt=0, le=1000)
    every_days: int = Field(gt=0, le=3650)
    floor_mg: float = Field(ge=0, le=1000)


class HoldStage(_Model):
    """A hold: keep the current dose for ``days``, or until day ``until_day``."""

    kind: Literal["hold"]
    days: int | None = Field(default=None, gt=0, le=3650)
    until_day: int | None = Field(default=None, gt=0, le=3650)

    @model_validator(mode="after")
    def _one_length(self) -> Self:
        if (self.days is None) == (self.until_day is None):
            raise _FieldProblems([((), None, "a hold needs exactly one of 'days' or 'until_day'")])
        return self


Stage = Annotated[TaperStage | HoldStage, Field(discriminator="kind")]


class PrednisoneRegimen(_Model):
    """``[prednisone]``: start dose, rounding, cap, initial hold, taper stages, maintenance."""

    start_mg_per_kg: float | None = Field(default=None, gt=0, le=2)
    start_mg: float | None = Field(default=None, gt=0, le=1000)
    round_to_mg: float | None = Field(default=None, gt=0, le=100)
    max_start_mg: float | None = Field(default=None, gt=0, le=1000)
    initial_hold_days: int = Field(ge=1, le=3650)
    stages: list[Stage] = Field(default_factory=list)
    maintenance_mg_per_day: float | None = Field(default=None, ge=0, le=1000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[tuple[KeyPath, Any, str]] = []
        if (self.start_mg_per_kg is None) == (self.start_mg is None):
            problems.append(((), None, "give exactly one of 'start_mg_per_kg' or 'start_mg'"))
        top = self.start_mg if self.start_mg is not None else self.max_start_mg
        if self.start_mg is not None and self.max_start_mg is not None:
            top = min(self.start_mg, self.max_start_mg)
        floors: list[tuple[int, float]] = []
        for i, stage in enumerate(self.stages):
            if stage.kind != "taper":
                continue
            if top is not None and stage.floor_mg >= top:
                problems.append(
                    (
                        ("stages", i, "floor_mg"),
                        stage.floor_mg,
                        f"must be below the highest start dose ({_num(top)} mg/day)",
                    )
                )
            if floors and stage.floor_mg > floors[-1][1]:
                j, prev = floors[-1]
                problems.append(
                    (
                        ("stages", i, "floor_mg"),
                        stage.floor_mg,
                        f"must be <= the floor of stages[{j}] ({_num(prev)} mg/day):"
                        " a taper never raises the dose",
                    )
                )
            floors.append((i, stage.floor_mg))
        m = self.maintenance_mg_per_day
        if m is not None and floors and m > floors[-1][1]:
            problems.append(
                (
                    ("maintenance_mg_per_day",),
                    m,
                    f"must be <= the last taper floor ({_num(floors[-1][1])} mg/day)",
                )
            )
        if problems:
            raise _FieldProblems(problems)
        return self


class TitrationStep(_Model):
    """One MMF titration step: ``g_per_day`` for ``days``."""

    g_per_day: float = Field(gt=0, le=4)
    days: int = Field(gt=0, le=3650)


class MmfRegimen(_Model):
    """``[mmf]``: optional titration, then the target dose in g/day in N doses a day."""

    target_g_per_day: float = Field(gt=0, le=4)
    doses_per_day: int = Field(default=2, ge=1, le=4)
    titration: list[TitrationStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _titrates_up(self) -> Self:
        problems: list[tuple[KeyPath, Any, str]] = []
        prev = 0.0
        for i, step in enumerate(self.titration):
            if step.g_per_day > self.target_g_per_day:
                problems.append(
                    (
                        ("titration", i, "g_per_day"),
                        step.g_per_day,
                        f"must be <= target_g_per_day ({_num(self.target_g_per_day)})",
                    )
                )
            elif step.g_per_day < prev:
                problems.append(
                    (
                        ("titration", i, "g_per_day"),
                        step.g_per_day,
                        "must be >= the step before it (titration goes up)",
                    )
                )
            prev = step.g_per_day
        if problems:
            raise _FieldProblems(problems)
        return self


class OralPK(_Model):
    """``[exposure.<drug>]``: one-compartment oral PK of one drug for a typical patient.

    Clearance and volume are for a patient of ``reference_weight_kg`` and
    scale as :math:`(W/W_{ref})^{a}`; between-patient variability is
    log-normal with coefficients of variation ``cv_cl`` and ``cv_v``.
    """

    mass_factor: float = Field(gt=0, le=10)
    """mg of the measured moiety per mg administered (MPA per MMF: 0.739)."""
    bioavailability: float = Field(gt=0, le=1)
    cl_l_per_h: float = Field(gt=0, le=10_000)
    v_l: float = Field(gt=0, le=100_000)
    ka_per_h: float = Field(gt=0, le=100)
    lag_h: float = Field(default=0.0, ge=0, le=6)
    cv_cl: float = Field(default=0.0, ge=0, le=2)
    cv_v: float = Field(default=0.0, ge=0, le=2)
    reference_weight_kg: float = Field(default=70.0, gt=0, le=300)
    cl_weight_exponent: float = Field(default=0.0, ge=-2, le=2)
    v_weight_exponent: float = Field(default=0.0, ge=-2, le=2)
    f_reference_dose_mg: float | None = Field(default=None, gt=0, le=10_000)
    """Dose (mg per administration) at which the dose-dependent F is 1."""
    f_dose_exponent: float = Field(default=0.0, ge=-2, le=2)
    """Exponent of the relative bioavailability (dose / f_reference_dose_mg)^x; 0 = none."""

    @model_validator(mode="after")
    def _f_needs_reference(self) -> Self:
        if self.f_dose_exponent != 0 and self.f_reference_dose_mg is None:
            raise _FieldProblems(
                [
                    (
                        ("f_reference_dose_mg",),
                        None,
                        "required when f_dose_exponent is not 0 (the dose at which F = 1)",
                    )
                ]
            )
        return self


class MpaPK(OralPK):
    """``[exposure.mpa]``: mycophenolic acid from MMF, with the target AUC0-12 window."""

    auc0_12_window_low_mg_h_per_l: float = Field(default=30.0, gt=0, le=1000)
    auc0_12_window_high_mg_h_per_l: float = Field(default=60.0, gt=0, le=1000)

    @model_validator(mode="after")
    def _window_ordered(self) -> Self:
        if self.auc0_12_window_high_mg_h_per_l <= self.auc0_12_window_low_mg_h_per_l:
            raise _FieldProblems(
                [
                    (
                        ("auc0_12_window_high_mg_h_per_l",),
                        self.auc0_12_window_high_mg_h_per_l,
                        "must be above auc0_12_window_low_mg_h_per_l "
                        f"({_num(self.auc0_12_window_low_mg_h_per_l)})",
                    )
                ]
            )
        return self


class ExposureSettings(_Model):
    """``[exposure]``: PK of prednisolone (from prednisone) and MPA (from MMF)."""

    prednisolone: OralPK
    mpa: MpaPK


# ---------------------------------------------------------------------------
# Population, eligibility, adverse events and dropout (the cohort model)
# ---------------------------------------------------------------------------

Fraction = Annotated[float, Field(ge=0, le=1)]

ExclusionName = Literal[
    "anti_mda5_positive",
    "necrotizing_myopathy",
    "immunosuppressant_within_3_months",
    "other_connective_tissue_disease",
    "cancer",
    "active_infection",
]

EXCLUSION_CONDITIONS: tuple[str, ...] = typing.get_args(ExclusionName)
"""Conditions whose prevalence the population gives and that eligibility may exclude."""


class Prevalence(_Model):
    """``[population.prevalence]``: share of screened candidates with each condition."""

    anti_mda5_positive: Fraction
    necrotizing_myopathy: Fraction
    immunosuppressant_within_3_months: Fraction
    other_connective_tissue_disease: Fraction
    cancer: Fraction
    active_infection: Fraction


class PopulationSettings(_Model):
    """``[population]``: the candidates sites screen (before eligibility)."""

    female_fraction: Fraction
    age_mean_years: float = Field(gt=0, le=120)
    age_sd_years: float = Field(ge=0, le=100)
    age_min_years: float = Field(ge=0, le=120)
    age_max_years: float = Field(gt=0, le=120)
    weight_median_female_kg: float = Field(gt=0, le=300)
    weight_median_male_kg: float = Field(gt=0, le=300)
    weight_cv: float = Field(ge=0, le=2)
    fvc_mean_percent: float = Field(gt=0, le=200)
    fvc_sd_percent: float = Field(ge=0, le=100)
    fvc_min_percent: float = Field(ge=0, le=200)
    fvc_max_percent: float = Field(gt=0, le=200)
    start_mg_per_kg_low: float | None = Field(default=None, gt=0, le=2)
    """With ``start_mg_per_kg_high``: each patient's start dose drawn uniformly (mg/kg/day)."""
    start_mg_per_kg_high: float | None = Field(default=None, gt=0, le=2)
    prevalence: Prevalence

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        problems: list[tuple[KeyPath, Any, str]] = []
        for low, high in (
            ("age_min_years", "age_max_years"),
            ("fvc_min_percent", "fvc_max_percent"),
        ):
            if getattr(self, high) <= getattr(self, low):
                problems.append(((high,), getattr(self, high), f"must be above {low}"))
        lo, hi = self.start_mg_per_kg_low, self.start_mg_per_kg_high
        if (lo is None) != (hi is None):
            problems.append(
                ((), None, "give both start_mg_per_kg_low and start_mg_per_kg_high, or neither")
            )
        elif lo is not None and hi is not None and hi < lo:
            problems.append((("start_mg_per_kg_high",), hi, "must be >= start_mg_per_kg_low"))
        if problems:
            raise _FieldProblems(problems)
        return self


class EligibilitySettings(_Model):
    """``[eligibility]``: the protocol's inclusion ranges and exclusions."""

    age_min_years: float = Field(ge=0, le=120)
    age_max_years: float = Field(gt=0, le=120)
    fvc_min_percent: float = Field(ge=0, le=200)
    exclude: list[ExclusionName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.age_max_years < self.age_min_years:
            raise _FieldProblems(
                [(("age_max_years",), self.age_max_years, "must be >= age_min_years")]
            )
        return self


def _check_bands(edges: list[float], multipliers: list[float]) -> list[tuple[KeyPath, Any, str]]:
    problems: list[tuple[KeyPath, Any, str]] = []
    if any(b <= a for a, b in itertools.pairwise(edges)):
        problems.append((("edges",), edges, "must be strictly increasing"))
    if len(multipliers) != len(edges) + 1:
        problems.append(
            (
                ("multipliers",),
                multipliers,
                f"needs one more value than edges ({len(edges) + 1}): one per band",
            )
        )
    return problems


class _Bands(_Model):
    edges: list[Annotated[float, Field(ge=0)]] = Field(min_length=1, max_length=50)
    """Band edges; a value equal to an edge falls in the band below it."""
    multipliers: list[Annotated[float, Field(ge=0, le=1000)]]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = _check_bands(self.edges, self.multipliers)
        if problems:
            raise _FieldProblems(problems)
        return self


class DoseLogLinear(_Model):
    """Multiplier ``per_10_mg ** (dose / 10)`` on the current prednisone dose, capped."""

    driver: Literal["prednisone_dose"]
    per_10_mg: float = Field(gt=0, le=1000)
    cap: float | None = Field(default=None, gt=0, le=1000)


class DoseBands(_Bands):
    """Multiplier by band of the current prednisone dose (mg/day); edges in mg/day."""

    driver: Literal["prednisone_dose_bands"]


class WeightedCumulativeDose(_Model):
    r"""Multiplier ``exp(beta * WCD)``, capped, on the weighted cumulative prednisone dose.

    :math:`WCD(t) = \int_0^t dose(t-s)\,(e^{-s/\tau_1} + w_2 e^{-s/\tau_2})\,ds`
    (mg*day), held constant over each ``grid_days`` cell at its midpoint value.
    """

    driver: Literal["weighted_cumulative_dose"]
    beta_per_mg_day: float = Field(ge=-1, le=1)
    tau1_days: float = Field(gt=0, le=10_000)
    tau2_days: float = Field(gt=0, le=10_000)
    weight2: float = Field(ge=0, le=100)
    cap: float | None = Field(default=None, gt=0, le=1000)
    grid_days: float = Field(default=1.0, gt=0, le=28)


class MpaAucLogLinear(_Model):
    """Multiplier ``exp(per_mg_h_per_l * (AUC0-12 - reference))`` on MPA AUC0-12, capped."""

    driver: Literal["mpa_auc"]
    per_mg_h_per_l: float = Field(ge=-10, le=10)
    reference_mg_h_per_l: float = Field(ge=0, le=1000)
    cap: float | None = Field(default=None, gt=0, le=1000)


class MpaAucBands(_Bands):
    """Multiplier by band of MPA AUC0-12 (mg*h/L) at the current MMF dose."""

    driver: Literal["mpa_auc_bands"]


class TimeOnStudyBands(_Bands):
    """Multiplier by band of time on study (days from the first dose)."""

    driver: Literal["time_on_study_bands"]


Multiplier = Annotated[
    DoseLogLinear
    | DoseBands
    | WeightedCumulativeDose
    | MpaAucLogLinear
    | MpaAucBands
    | TimeOnStudyBands,
    Field(discriminator="driver"),
]


class _Action(_Model):
    probability: float = Field(default=1.0, ge=0, le=1)
    """Chance that the action is taken when the event happens."""


class MmfReduce(_Action):
    """Lower the MMF dose ceiling by ``by_g_per_day``, not below ``floor_g_per_day``."""

    action: Literal["mmf_reduce"]
    by_g_per_day: float = Field(gt=0, le=4)
    floor_g_per_day: float = Field(default=0.0, ge=0, le=4)


class MmfHold(_Action):
    """Give no MMF for ``days``, then resume, lower by ``resume_reduce_by_g_per_day``."""

    action: Literal["mmf_hold"]
    days: int = Field(gt=0, le=3650)
    resume_reduce_by_g_per_day: float = Field(default=0.0, ge=0, le=4)
    floor_g_per_day: float = Field(default=0.0, ge=0, le=4)


class MmfStop(_Action):
    """Stop MMF for the rest of the study (the patient stays on prednisone)."""

    action: Literal["mmf_stop"]


class PrednisoneReescalate(_Action):
    """Restart prednisone at ``start_mg_per_kg`` and taper again by the protocol's stages."""

    action: Literal["prednisone_reescalate"]
    start_mg_per_kg: float = Field(gt=0, le=2)


class Leave(_Action):
    """The patient leaves the study with ``status``."""

    action: Literal["leave"]
    status: Literal["withdrawn", "died", "discontinued"]


Action = Annotated[
    MmfReduce | MmfHold | MmfStop | PrednisoneReescalate | Leave,
    Field(discriminator="action"),
]

_NAME = r"^[a-z][a-z0-9_]*$"

RESERVED_EVENT_NAMES = frozenset(
    {
        "death",
        "withdrawal",
        "enrolled",
        "completed",
        "withdrawn",
        "died",
        "discontinued",
        "mmf_reduced",
        "mmf_held",
        "mmf_stopped",
        "prednisone_reescalated",
    }
)
"""Names an adverse event cannot take: they mean dropout or other entries of the event log."""


class AdverseEvent(_Model):
    """``[adverse_events.<name>]``: a recurrent event, its hazard and the protocol's reaction.

    Hazard (per year) = ``baseline_per_year`` x the product of the multipliers.
    """

    baseline_per_year: float = Field(ge=0, le=1000)
    multipliers: list[Multiplier] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)


class DeathRaise(_Model):
    """``[dropout.death_raised_after]``: death risk x ``multiplier`` after ``event``."""

    event: str = Field(pattern=_NAME)
    multiplier: float = Field(ge=0, le=1000)
    days: float = Field(gt=0, le=3650)


class DropoutSettings(_Model):
    """``[dropout]``: leaving the study other than through an adverse event's action."""

    withdrawal_per_year: float = Field(ge=0, le=1000)
    death_per_year: float = Field(ge=0, le=1000)
    death_raised_after: DeathRaise | None = None


# ---------------------------------------------------------------------------
# Recruitment
# ---------------------------------------------------------------------------

DAYS_PER_MONTH = 365.25 / 12
"""Days in an average month: rates per month become rates per day by dividing by this."""


class RateChange(_Model):
    """From trial day ``from_day`` on, the site's screening rate is multiplied by ``multiplier``."""

    from_day: float = Field(gt=0, le=36_500)
    multiplier: float = Field(ge=0, le=100)


class Site(_Model):
    """``[[recruitment.sites]]``: one site, when it opens, how fast it screens, its cap."""

    name: str = Field(min_length=1, max_length=100)
    activation_day: float | None = Field(default=None, ge=0, le=36_500)
    """Trial day the site opens (fixed); or give ``activation_day_min`` and ``_max``."""
    activation_day_min: float | None = Field(default=None, ge=0, le=36_500)
    activation_day_max: float | None = Field(default=None, ge=0, le=36_500)
    screening_rate_per_month: float = Field(gt=0, le=10_000)
    """Mean number of people screened per month (the Gamma mean under Poisson-gamma)."""
    rate_changes: list[RateChange] = Field(default_factory=list)
    cap: int | None = Field(default=None, ge=1, le=1_000_000)
    """Most patients the site may enrol."""

    @model_validator(mode="after")
    def _activation(self) -> Self:
        fixed = self.activation_day is not None
        lo, hi = self.activation_day_min, self.activation_day_max
        drawn = lo is not None or hi is not None
        if fixed == drawn:
            raise _FieldProblems(
                [
                    (
                        (),
                        None,
                        "give activation_day, or activation_day_min and activation_day_max",
                    )
                ]
            )
        if drawn and (lo is None or hi is None or hi < lo):
            raise _FieldProblems(
                [(("activation_day_max",), hi, "needs activation_day_min <= activation_day_max")]
            )
        days = [c.from_day for c in self.rate_changes]
        if days != sorted(set(days)):
            raise _FieldProblems([(("rate_changes",), None, "from_day must increase")])
        return self


class RecruitmentSettings(_Model):
    """``[recruitment]``: calendar, target, rate model and sites."""

    start_date: date
    """Trial day 0 (calendar dates appear only at the edges)."""
    deadline: date
    """Planned study completion: the last visit should be on or before this date."""
    enrolment_deadline: date | None = None
    """No enrolment after this date (default: the deadline)."""
    target_enrolled: int = Field(ge=1, le=1_000_000)
    rate_model: Literal["poisson", "poisson_gamma"]
    rate_shape: float | None = Field(default=None, gt=0, le=10_000)
    """Gamma shape (alpha) of the site rates under ``poisson_gamma``; CV = 1/sqrt(alpha)."""
    new_site_delay_days: float = Field(default=90.0, ge=0, le=3650)
    """For re-forecasts: days from the as-of date until an added site opens."""
    sites: list[Site] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[tuple[KeyPath, Any, str]] = []
        if self.deadline <= self.start_date:
            problems.append((("deadline",), self.deadline, "must be after start_date"))
        e = self.enrolment_deadline
        if e is not None and not self.start_date < e <= self.deadline:
            problems.append(
                (("enrolment_deadline",), e, "must be after start_date and not after deadline")
            )
        if self.rate_model == "poisson_gamma" and self.rate_shape is None:
            problems.append((("rate_shape",), None, "required when rate_model is poisson_gamma"))
        names = [site.name for site in self.sites]
        for i, name in enumerate(names):
            if name in names[:i]:
                problems.append((("sites", i, "name"), name, "site names must be unique"))
        if problems:
            raise _FieldProblems(problems)
        return self

    @property
    def deadline_day(self) -> float:
        """The deadline as a trial day."""
        return float((self.deadline - self.start_date).days)

    @property
    def enrolment_deadline_day(self) -> float:
        """The enrolment deadline as a trial day."""
        last = self.enrolment_deadline or self.deadline
        return float((last - self.start_date).days)


class Scenario(_Model):
    """A validated, resolved scenario. Load one with :func:`load_scenario`.

    Attributes
    ----------
    name : str
        The scenario's name (its file name without ``.toml`` unless set).
    description : str
        Free text for people.
    registry_id : str or None
        The trial registry identifier, e.g. ``NCT05129410``.
    treatment, prednisone, mmf
        The protocol's tables; see their classes.
    exposure : ExposureSettings or None
        PK parameters; needed for exposure, not for schedules.
    """

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    registry_id: str | None = None
    treatment: TreatmentSettings
    prednisone: PrednisoneRegimen
    mmf: MmfRegimen
    exposure: ExposureSettings | None = None
    population: PopulationSettings | None = None
    eligibility: EligibilitySettings | None = None
    adverse_events: dict[Annotated[str, Field(pattern=_NAME, max_length=40)], AdverseEvent] = Field(
        default_factory=dict
    )
    dropout: DropoutSettings | None = None
    recruitment: RecruitmentSettings | None = None

    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _fits_treatment(self) -> Self:
        end = self.treatment.duration_days
        problems: list[tuple[KeyPath, Any, str]] = []
        if self.prednisone.initial_hold_days >= end:
            problems.append(
                (
                    ("prednisone", "initial_hold_days"),
                    self.prednisone.initial_hold_days,
                    f"must be < treatment.duration_days ({end})",
                )
            )
        for i, stage in enumerate(self.prednisone.stages):
            if stage.kind == "hold" and stage.until_day is not None and stage.until_day >= end:
                problems.append(
                    (
                        ("prednisone", "stages", i, "until_day"),
                        stage.until_day,
                        f"must be < treatment.duration_days ({end})",
                    )
                )
        for name in self.adverse_events:
            if name in RESERVED_EVENT_NAMES:
                problems.append(
                    (
                        ("adverse_events", name),
                        None,
                        "this name is taken by dropout or the event log; choose another",
                    )
                )
        if self.dropout is not None and self.dropout.death_raised_after is not None:
            name = self.dropout.death_raised_after.event
            if name not in self.adverse_events:
                problems.append(
                    (
                        ("dropout", "death_raised_after", "event"),
                        name,
                        "must name one of adverse_events: "
                        + (", ".join(sorted(self.adverse_events)) or "(none defined)"),
                    )
                )
        if problems:
            raise _FieldProblems(problems)
        return self

    # -- derived views ----------------------------------------------------
    def _repr_html_(self) -> str:
        from sim.display import scenario_html

        return scenario_html(self)

    @property
    def source(self) -> str | None:
        """The file this scenario was loaded from, if any."""
        return self._source

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario as plain data (what :meth:`to_toml` writes)."""
        return self.model_dump(mode="python", exclude_none=True)

    def to_toml(self) -> str:
        """The resolved scenario as TOML: every value explicit, no ``extends``."""
        return tomli_w.dumps(self.to_dict())

    @property
    def hash(self) -> str:
        """sha256 (hex) of the canonical resolved form, ``name``/``description`` excepted.

        Two files that resolve to the same model have the same hash, however
        they are split across ``extends`` and whatever their key order.
        """
        data = self.model_dump(mode="json", exclude_none=True)
        data.pop("name", None)
        data.pop("description", None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

_NOT_INHERITED = ("name", "description")


def load_scenario(
    path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
) -> Scenario:
    """Load, resolve and validate a scenario file.

    Parameters
    ----------
    path : str or path-like
        The TOML file.
    overrides : mapping or sequence of str, optional
        Values to set after ``extends`` is resolved: ``{"prednisone.start_mg_per_kg":
        0.5}``, or command-line strings ``["prednisone.start_mg_per_kg=0.5"]``
        whose values are parsed as TOML (a bare word is a string). Key paths
        may index lists: ``prednisone.stages[1].days``.

    Returns
    -------
    Scenario

    Raises
    ------
    ScenarioError
        Listing every problem: file, key path, value and rule broken.
    """
    problems: list[Problem] = []
    file = Path(path)
    resolved = _resolve(file, [], problems)
    if resolved is None:
        raise ScenarioError(problems)
    raw, prov = resolved
    if "name" not in raw:
        raw["name"] = file.stem
    return _validate(raw, prov, _display(file), overrides, problems)


def scenario_from_dict(
    data: Mapping[str, Any],
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    source: str = "<dict>",
) -> Scenario:
    """Validate a scenario given as plain data (no ``extends``), e.g. from a notebook.

    Parameters
    ----------
    data : mapping
        The scenario's tables as nested dicts and lists.
    overrides : mapping or sequence of str, optional
        As in :func:`load_scenario`.
    source : str, optional
        The name to show in error messages.
    """
    raw = _copy(dict(data))
    return _validate(raw, {(): source}, source, overrides, [])


def _validate(
    raw: dict[str, Any],
    prov: dict[KeyPath, str],
    source: str,
    overrides: Mapping[str, Any] | Sequence[str] | None,
    problems: list[Problem],
) -> Scenario:
    if overrides:
        _apply_overrides(raw, prov, overrides, problems)
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(problems + _translate(exc, raw, prov)) from None
    if problems:
        raise ScenarioError(problems)
    scenario._source = source
    return scenario


def _display(path: Path) -> str:
    """A path as the user would write it: relative to the working folder when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _read_toml(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    shown = _display(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        problems.append(Problem(shown, "", "", "no such file"))
        return None
    except IsADirectoryError:
        problems.append(Problem(shown, "", "", "is a folder, not a scenario file"))
        return None
    except UnicodeDecodeError as exc:
        problems.append(Problem(shown, "", "", f"is not UTF-8 text ({exc.reason})"))
        return None
    except OSError as exc:
        problems.append(Problem(shown, "", "", f"cannot be read ({exc.strerror})"))
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(shown, "", "", f"invalid TOML: {exc}"))
        return None


def _resolve(
    path: Path, chain: list[Path], problems: list[Problem]
) -> tuple[dict[str, Any], dict[KeyPath, str]] | None:
    """The file's data with its ``extends`` chain merged in, and where each value came from."""
    data = _read_toml(path, problems)
    if data is None:
        return None
    shown = _display(path)
    prov: dict[KeyPath, str] = {}
    base_data: dict[str, Any] = {}
    if "extends" in data:
        ext = data.pop("extends")
        here = path.resolve()
        if not isinstance(ext, str) or not ext:
            problems.append(Problem(shown, "extends", _toml(ext), "must be a file name (a string)"))
            return None
        base_path = (path.parent / ext).resolve()
        if base_path in chain + [here]:
            cycle = " -> ".join(_display(p) for p in chain + [here, base_path])
            problems.append(Problem(shown, "extends", _toml(ext), f"extends cycle: {cycle}"))
            return None
        if not base_path.exists() or base_path.is_dir():
            what = "is a folder, not a scenario file" if base_path.exists() else "no such file"
            problems.append(
                Problem(shown, "extends", _toml(ext), f"{what} (looked for {_display(base_path)})")
            )
            return None
        base = _resolve(base_path, chain + [here], problems)
        if base is None:
            return None
        base_data, prov = base
        for key in _NOT_INHERITED:
            base_data.pop(key, None)
            prov.pop((key,), None)
    _record(data, (), shown, prov)
    prov[()] = shown  # anything not written anywhere (a missing key) is this file's
    return _merge(base_data, data), prov


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into ``base``: tables merge, lists and values replace."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = _copy(value)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _record(
    data: Mapping[str, Any], prefix: KeyPath, source: str, prov: dict[KeyPath, str]
) -> None:
    """Note ``source`` as the origin of every value in ``data`` (lists as a whole)."""
    for key, value in data.items():
        path = (*prefix, key)
        if isinstance(value, Mapping) and value:
            prov.pop(path, None)  # a table merges into what the base wrote below it
            _record(value, path, source, prov)
        else:
            _overwrite(prov, path, source)


def _overwrite(prov: dict[KeyPath, str], path: KeyPath, source: str) -> None:
    """``source`` replaces everything at or below ``path``; it is the newest entry."""
    for old in [p for p in prov if p[: len(path)] == path]:
        del prov[old]
    prov[path] = source


_PATH_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def _parse_key_path(text: str) -> KeyPath | None:
    parts: list[str | int] = []
    for piece in text.split("."):
        m = _PATH_TOKEN.fullmatch(piece)
        if m is None:
            return None
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(parts)


def _parse_override_value(text: str) -> Any:
    """A ``--set`` value read as TOML (``0.5``, ``"x"``, ``[1, 2]``); a bare word is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def _apply_overrides(
    raw: dict[str, Any],
    prov: dict[KeyPath, str],
    overrides: Mapping[str, Any] | Sequence[str],
    problems: list[Problem],
) -> None:
    items: Iterable[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = overrides.items()
    else:
        parsed: list[tuple[str, Any]] = []
        for entry in overrides:
            key, sep, value = entry.partition("=")
            if not sep or not key.strip():
                problems.append(Problem("--set", entry, "", "must be KEY.PATH=VALUE, e.g. a.b=0.5"))
                continue
            parsed.append((key.strip(), _parse_override_value(value)))
        items = parsed
    for key, value in items:
        path = _parse_key_path(key)
        if path is None:
            problems.append(Problem("--set", key, "", "is not a key path like a.b[0].c"))
            continue
        if path[0] == "extends":
            problems.append(
                Problem(
                    "--set",
                    key,
                    "",
                    "extends cannot be overridden; name the base file in the scenario",
                )
            )
            continue
        rule = _set_path(raw, path, _copy(value))
        if rule:
            problems.append(Problem("--set", key, _toml(value), rule))
            continue
        _overwrite(prov, path, "--set")


def _set_path(raw: dict[str, Any], path: KeyPath, value: Any) -> str | None:
    """Set ``value`` at ``path`` in ``raw``, creating tables; an error rule, or None."""
    cur: Any = raw
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        where = _format_path(path[: i + 1])
        if isinstance(part, int):
            if not isinstance(cur, list) or not 0 <= part < len(cur):
                return f"no such list item: {where}"
            cur = cur[part]
            continue
        if not isinstance(cur, dict):
            return f"{_format_path(path[:i])} is not a table"
        if part not in cur:
            if isinstance(nxt, int):
                return f"no such list: {where}"
            cur[part] = {}
        cur = cur[part]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(cur, list) or not 0 <= last < len(cur):
            return f"no such list item: {_format_path(path)}"
        cur[last] = value
    elif isinstance(cur, dict):
        cur[last] = value
    else:
        return f"{_format_path(path[:-1])} is not a table"
    return None


# ---------------------------------------------------------------------------
# Turning pydantic's errors into problems a planner can act on
# ---------------------------------------------------------------------------


def _translate(
    exc: ValidationError, raw: dict[str, Any], prov: dict[KeyPath, str]
) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        loc: tuple[str | int, ...] = tuple(err["loc"])
        path, value, found = _walk(loc, raw)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "value_error" and isinstance(ctx.get("error"), _FieldProblems):
            for rel, val, rule in ctx["error"].problems:
                sub = path + rel
                shown = "" if val is None else _toml(val)
                problems.append(Problem(_origin(sub, prov), _format_path(sub), shown, rule))
            continue
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            tag_key = str(ctx.get("discriminator", "kind")).strip("'")
            path = path + (tag_key,)
            tags = [t.strip("'") for t in str(ctx.get("expected_tags", "")).split(", ")]
            if not tags or tags == [""]:
                tags = _tags_at(loc)
            rule = "must be one of " + ", ".join(f'"{t}"' for t in tags)
            _, value, found = _walk((*loc, tag_key), raw)
            if not found:
                rule = "required key is missing; " + rule
            elif isinstance(value, str):
                rule += _suggest(value, tags)
            else:
                rule = "must be a string: " + rule.removeprefix("must be ")
        else:
            rule = _rule(kind, ctx, err.get("msg", ""))
            if kind == "extra_forbidden":
                rule += _suggest(str(loc[-1]), _allowed_keys(loc[:-1]), listing=True)
        shown = _toml(value) if found else ""
        problems.append(Problem(_origin(path, prov), _format_path(path), shown, rule))
    return problems


_MISSING = object()


def _walk(loc: KeyPath, raw: Any) -> tuple[KeyPath, Any, bool]:
    """Follow pydantic's location through the input, dropping union tags."""
    cur: Any = raw
    path: list[str | int] = []
    for el in loc:
        if isinstance(el, int) and isinstance(cur, list) and 0 <= el < len(cur):
            cur = cur[el]
        elif isinstance(el, str) and isinstance(cur, dict) and el in cur:
            cur = cur[el]
        elif isinstance(el, str) and isinstance(cur, dict) and el in _tag_values(cur):
            continue  # a discriminated union's tag, not a key
        else:
            cur = _MISSING
        path.append(el)
    return tuple(path), (None if cur is _MISSING else cur), cur is not _MISSING


_TAG_KEYS = ("kind", "driver", "action")
"""The keys that choose a table's type (discriminated unions)."""


def _tag_values(table: dict[str, Any]) -> set[str]:
    return {v for k in _TAG_KEYS if isinstance(v := table.get(k), str)}


def _origin(path: KeyPath, prov: dict[KeyPath, str]) -> str:
    """The file that wrote the value at ``path`` (or the table holding it)."""
    for n in range(len(path), 0, -1):
        if path[:n] in prov:
            return prov[path[:n]]
    # A table: blame the most derived file that wrote into it (entries are
    # kept newest last), since that file made the table what it is.
    for key, source in reversed(prov.items()):
        if key[: len(path)] == path and key:
            return source
    return prov.get((), "<scenario>")


def _format_path(path: KeyPath) -> str:
    out = ""
    for el in path:
        if isinstance(el, int):
            out += f"[{el}]"
            continue
        name = el if _BARE_KEY.fullmatch(el) else json.dumps(el)  # TOML quoting
        out += f".{name}" if out else name
    return out


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _toml(value: Any) -> str:
    """A value as it would be written in TOML, shortened for messages."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            text = "nan"
        elif isinstance(value, float) and math.isinf(value):
            text = "inf" if value > 0 else "-inf"
        else:
            text = repr(value)
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, date):
        text = value.isoformat()
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(_toml(v) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _rule(kind: str, ctx: Mapping[str, Any], msg: str) -> str:
    bounds = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", ">="),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "<="),
    }
    if kind in bounds:
        key, op = bounds[kind]
        return f"must be {op} {_num(ctx[key])}"
    fixed = {
        "missing": "required key is missing",
        "extra_forbidden": "unknown key",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_type": "must be a number",
        "string_type": "must be a string (in quotes)",
        "bool_type": "must be true or false",
        "list_type": "must be a list",
        "dict_type": "must be a table",
        "model_type": "must be a table",
        "model_attributes_type": "must be a table",
        "finite_number": "must be a finite number",
        "string_too_short": "must not be empty",
        "string_too_long": "is too long",
        "date_type": "must be a date (YYYY-MM-DD, no quotes)",
    }
    if kind in fixed:
        return fixed[kind]
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace(" or ", ", ").replace("'", '"')
        return f"must be one of {expected}" if expected else "is not an allowed value"
    return msg.removeprefix("Value error, ")


def _suggest(word: str, candidates: Sequence[str], listing: bool = False) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if close:
        return f'; did you mean "{close[0]}"?'
    if listing and candidates:
        return "; valid keys: " + ", ".join(sorted(candidates))
    return ""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes a field annotation can hold (through Optional, list, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (list, tuple, typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _tag(model: type[BaseModel]) -> str | None:
    for key in _TAG_KEYS:
        field = model.model_fields.get(key)
        if field is not None and typing.get_origin(field.annotation) is Literal:
            return str(typing.get_args(field.annotation)[0])
    return None


def _models_at(loc: KeyPath) -> list[type[BaseModel]]:
    models: list[type[BaseModel]] = [Scenario]
    for el in loc:
        if isinstance(el, int):
            continue
        inner = [
            m
            for model in models
            if el in model.model_fields
            for m in _models_in(model.model_fields[el].annotation)
        ]
        if inner:
            models = inner
        else:  # a union tag narrows the candidates
            models = [m for m in models if _tag(m) == el] or models
    return models


def _allowed_keys(loc: KeyPath) -> list[str]:
    keys = sorted({k for m in _models_at(loc) for k in m.model_fields})
    if not loc:
        keys.append("extends")
    return keys


def _tags_at(loc: KeyPath) -> list[str]:
    return [t for m in _models_at(loc) if (t := _tag(m)) is not None]
