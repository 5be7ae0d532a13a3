"""The scenario's schema: pydantic models of every table, with the rules each value obeys.

Loading, ``extends``, overrides and the error messages are in :mod:`sim.scenario`,
which re-exports everything here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import typing
from datetime import date
from typing import Annotated, Any, Literal, Self

import tomli_w
from pydantic import Field, PrivateAttr, ValidationInfo, model_validator

from sim.disease_schema import DiseaseSettings, disease_problems
from sim.errors import DosesimError
from sim.regimen_schema import DrugRegimen
from sim.schema_base import FieldProblems, KeyPath, StrictModel, format_number


class TreatmentSettings(StrictModel):
    """``[treatment]``: how long each patient is treated."""

    duration_days: int = Field(gt=0, le=3650)
    """End of treatment, days from the first dose (exclusive); 364 = 52 weeks."""
    landmark_weeks: list[Annotated[int, Field(ge=1, le=520)]] | None = Field(
        default=None, min_length=1, max_length=30
    )
    """Weeks at which every drug's cumulative dose is a column (default: the built-in
    prednisone landmarks 4, 12, 24, 52, and those of the ``[drugs]`` tables)."""
    days_at_or_above_mg: dict[str, Annotated[float, Field(ge=0, le=100_000)]] | None = None
    """By drug: a column of the days on study at or above this dose (mg/day)."""

    @model_validator(mode="after")
    def _weeks_increase(self) -> Self:
        weeks = self.landmark_weeks or []
        if any(b <= a for a, b in itertools.pairwise(weeks)):
            raise FieldProblems([(("landmark_weeks",), weeks, "must be strictly increasing")])
        return self


class TaperStage(StrictModel):
    """A taper: lower the dose by ``step_mg`` every ``every_days`` down to ``floor_mg``."""

    kind: Literal["taper"]
    step_mg: float = Field(gt=0, le=1000)
    every_days: int = Field(gt=0, le=3650)
    floor_mg: float = Field(ge=0, le=1000)


class HoldStage(StrictModel):
    """A hold: keep the current dose for ``days``, or until day ``until_day``."""

    kind: Literal["hold"]
    days: int | None = Field(default=None, gt=0, le=3650)
    until_day: int | None = Field(default=None, gt=0, le=3650)

    @model_validator(mode="after")
    def _one_length(self) -> Self:
        if (self.days is None) == (self.until_day is None):
            raise FieldProblems([((), None, "a hold needs exactly one of 'days' or 'until_day'")])
        return self


Stage = Annotated[TaperStage | HoldStage, Field(discriminator="kind")]


class PrednisoneRegimen(StrictModel):
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
        # a fixed start below a floor is allowed: that stage changes nothing, as documented;
        # a cap below a floor is refused: it would void the stage for every weight (a typo)
        top = None if self.start_mg is not None else self.max_start_mg
        floors: list[tuple[int, float]] = []
        for i, stage in enumerate(self.stages):
            if stage.kind != "taper":
                continue
            if top is not None and stage.floor_mg >= top:
                problems.append(
                    (
                        ("stages", i, "floor_mg"),
                        stage.floor_mg,
                        f"must be below the highest start dose ({format_number(top)} mg/day,"
                        " the max_start_mg cap)",
                    )
                )
            if floors and stage.floor_mg > floors[-1][1]:
                j, prev = floors[-1]
                problems.append(
                    (
                        ("stages", i, "floor_mg"),
                        stage.floor_mg,
                        f"must be <= the floor of stages[{j}] ({format_number(prev)} mg/day):"
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
                    f"must be <= the last taper floor ({format_number(floors[-1][1])} mg/day)",
                )
            )
        if problems:
            raise FieldProblems(problems)
        return self


class TitrationStep(StrictModel):
    """One MMF titration step: ``g_per_day`` for ``days``."""

    g_per_day: float = Field(gt=0, le=4)
    days: int = Field(gt=0, le=3650)


class MmfRegimen(StrictModel):
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
                        f"must be <= target_g_per_day ({format_number(self.target_g_per_day)})",
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
            raise FieldProblems(problems)
        return self


class OralPK(StrictModel):
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
            raise FieldProblems(
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
            raise FieldProblems(
                [
                    (
                        ("auc0_12_window_high_mg_h_per_l",),
                        self.auc0_12_window_high_mg_h_per_l,
                        "must be above auc0_12_window_low_mg_h_per_l "
                        f"({format_number(self.auc0_12_window_low_mg_h_per_l)})",
                    )
                ]
            )
        return self


class ExposureSettings(StrictModel):
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


class Prevalence(StrictModel):
    """``[population.prevalence]``: share of screened candidates with each condition."""

    anti_mda5_positive: Fraction
    necrotizing_myopathy: Fraction
    immunosuppressant_within_3_months: Fraction
    other_connective_tissue_disease: Fraction
    cancer: Fraction
    active_infection: Fraction


class StartRule(StrictModel):
    """``[population.start_rule]``: the investigator's start dose by a covariate.

    Patients whose ``covariate`` is below ``below`` (or at or above ``at_or_above``)
    start prednisone at ``start_mg_per_kg``; the others as the protocol (or the drawn
    range) says. E.g. 1.0 mg/kg/day below 60 % predicted FVC.
    """

    covariate: Literal["fvc_percent", "age_years", "weight_kg"]
    below: float | None = Field(default=None, ge=0, le=1000)
    at_or_above: float | None = Field(default=None, ge=0, le=1000)
    start_mg_per_kg: float = Field(gt=0, le=2)

    @model_validator(mode="after")
    def _one_cut(self) -> Self:
        if (self.below is None) == (self.at_or_above is None):
            raise FieldProblems([((), None, "give exactly one of 'below' or 'at_or_above'")])
        return self


class PopulationSettings(StrictModel):
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
    height_mean_female_cm: float | None = Field(default=None, gt=50, le=250)
    """With ``height_mean_male_cm`` and ``height_sd_cm``: height, Normal by sex (cm), for
    doses per m2 of body surface area; drawn from its own stream."""
    height_mean_male_cm: float | None = Field(default=None, gt=50, le=250)
    height_sd_cm: float | None = Field(default=None, ge=0, le=50)
    start_mg_per_kg_low: float | None = Field(default=None, gt=0, le=2)
    """With ``start_mg_per_kg_high``: each patient's start dose drawn uniformly (mg/kg/day)."""
    start_mg_per_kg_high: float | None = Field(default=None, gt=0, le=2)
    start_rule: StartRule | None = None
    """The investigator's start dose by a covariate; it takes precedence over the range."""
    prevalence: Prevalence
    conditions: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)], Fraction
    ] = Field(default_factory=dict, max_length=30)
    """More named conditions with their prevalences (each drawn from its own stream), which
    eligibility may exclude beside the six of ``[population.prevalence]``."""

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        problems: list[tuple[KeyPath, Any, str]] = []
        for low, high in (
            ("age_min_years", "age_max_years"),
            ("fvc_min_percent", "fvc_max_percent"),
        ):
            if getattr(self, high) <= getattr(self, low):
                problems.append(((high,), getattr(self, high), f"must be above {low}"))
        heights = (self.height_mean_female_cm, self.height_mean_male_cm, self.height_sd_cm)
        if all(h is not None for h in heights):
            f, m, sd = heights
            assert f is not None and m is not None and sd is not None
            if min(f, m) - 4 * sd < 100:
                rule = "heights below 100 cm would be drawn: each mean minus 4 SD must be >= 100"
                problems.append((("height_sd_cm",), sd, rule))
        if any(h is None for h in heights) and not all(h is None for h in heights):
            problems.append(
                (
                    (),
                    None,
                    "give all of height_mean_female_cm, height_mean_male_cm and height_sd_cm,"
                    " or none",
                )
            )
        lo, hi = self.start_mg_per_kg_low, self.start_mg_per_kg_high
        if (lo is None) != (hi is None):
            problems.append(
                ((), None, "give both start_mg_per_kg_low and start_mg_per_kg_high, or neither")
            )
        elif lo is not None and hi is not None and hi < lo:
            problems.append((("start_mg_per_kg_high",), hi, "must be >= start_mg_per_kg_low"))
        if problems:
            raise FieldProblems(problems)
        return self

    @property
    def has_height(self) -> bool:
        """Whether the population gives heights (for doses per m2)."""
        return self.height_sd_cm is not None


class Range(StrictModel):
    """Bounds on a covariate, both inclusive; either may be left out."""

    min: float | None = Field(default=None, ge=0, le=1000)
    max: float | None = Field(default=None, ge=0, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min is None and self.max is None:
            raise FieldProblems([((), None, "give min, max or both")])
        if self.min is not None and self.max is not None and self.max < self.min:
            raise FieldProblems([(("max",), self.max, "must be >= min")])
        return self


RANGE_COVARIATES = ("age_years", "weight_kg", "fvc_percent", "height_cm")
"""Covariates eligibility may bound (``[eligibility.ranges]``)."""


class EligibilitySettings(StrictModel):
    """``[eligibility]``: the protocol's inclusion ranges and exclusions."""

    age_min_years: float = Field(ge=0, le=120)
    age_max_years: float = Field(gt=0, le=120)
    fvc_min_percent: float = Field(ge=0, le=200)
    exclude: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]] = Field(
        default_factory=list
    )
    """Conditions that exclude: the six of ``[population.prevalence]`` or any of
    ``[population.conditions]``."""
    ranges: dict[Literal["age_years", "weight_kg", "fvc_percent", "height_cm"], Range] | None = None
    """More criteria: a covariate must lie within these bounds (inclusive)."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.age_max_years < self.age_min_years:
            raise FieldProblems(
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


_DRUG_NAME = r"^[a-z][a-z0-9_]*$"


class _Bands(StrictModel):
    edges: list[Annotated[float, Field(ge=0)]] = Field(min_length=1, max_length=50)
    """Band edges; a value equal to an edge falls in the band below it."""
    multipliers: list[Annotated[float, Field(ge=0, le=1000)]]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = _check_bands(self.edges, self.multipliers)
        if problems:
            raise FieldProblems(problems)
        return self


class DoseLogLinear(StrictModel):
    """Multiplier ``per_10_mg ** (dose / 10)`` on the current prednisone dose, capped."""

    driver: Literal["prednisone_dose"]
    per_10_mg: float = Field(gt=0, le=1000)
    cap: float | None = Field(default=None, gt=0, le=1000)
    drug: str | None = Field(default=None, pattern=_DRUG_NAME)
    """The drug whose dose it reads (default prednisone): any drug of the scenario."""


class DoseBands(_Bands):
    """Multiplier by band of the current prednisone dose (mg/day); edges in mg/day."""

    driver: Literal["prednisone_dose_bands"]
    drug: str | None = Field(default=None, pattern=_DRUG_NAME)
    """The drug whose dose it reads (default prednisone): any drug of the scenario."""


class WeightedCumulativeDose(StrictModel):
    r"""Multiplier ``exp(beta * WCD)``, capped, on the weighted cumulative prednisone dose.

    :math:`WCD(t) = \int_0^t dose(t-s)\,(e^{-s/\tau_1} + w_2 e^{-s/\tau_2})\,ds`
    (mg*day), held constant over each ``grid_days`` cell at its midpoint value.
    """

    driver: Literal["weighted_cumulative_dose"]
    drug: str | None = Field(default=None, pattern=_DRUG_NAME)
    """The drug whose dose history it reads (default prednisone)."""
    beta_per_mg_day: float = Field(ge=-1, le=1)
    tau1_days: float = Field(gt=0, le=10_000)
    tau2_days: float = Field(gt=0, le=10_000)
    weight2: float = Field(ge=0, le=100)
    cap: float | None = Field(default=None, gt=0, le=1000)
    grid_days: float = Field(default=1.0, gt=0, le=28)


class MpaAucLogLinear(StrictModel):
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


class CovariateBandsMultiplier(_Bands):
    """Multiplier by band of a patient's covariate: ``age_years``, ``weight_kg``,
    ``fvc_percent`` (screened), ``height_cm``, ``female`` (1 or 0), or a condition of the
    population (1 for those who have it)."""

    driver: Literal["covariate_bands"]
    covariate: str = Field(pattern=_DRUG_NAME)


Multiplier = Annotated[
    DoseLogLinear
    | DoseBands
    | WeightedCumulativeDose
    | MpaAucLogLinear
    | MpaAucBands
    | TimeOnStudyBands
    | CovariateBandsMultiplier,
    Field(discriminator="driver"),
]


class _Action(StrictModel):
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


class _DrugAction(_Action):
    drug: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    """The drug it acts on: any drug of the scenario (of the arm)."""


class DrugReduce(_DrugAction):
    """Lower the drug's dose ceiling from the day on by ``by_mg`` or ``by_percent`` of the
    highest dose still planned, not below ``floor_mg``."""

    action: Literal["reduce"]
    by_mg: float | None = Field(default=None, gt=0, le=100_000)
    by_percent: float | None = Field(default=None, gt=0, le=100)
    floor_mg: float = Field(default=0.0, ge=0, le=100_000)

    @model_validator(mode="after")
    def _one_step(self) -> Self:
        if (self.by_mg is None) == (self.by_percent is None):
            raise FieldProblems([((), None, "give exactly one of 'by_mg' or 'by_percent'")])
        return self


class DrugHold(_DrugAction):
    """No dose of the drug for ``days``, then the plan resumes, its ceiling lowered by
    ``resume_reduce_by_mg`` (not below ``floor_mg``)."""

    action: Literal["hold"]
    days: int = Field(gt=0, le=3650)
    resume_reduce_by_mg: float = Field(default=0.0, ge=0, le=100_000)
    floor_mg: float = Field(default=0.0, ge=0, le=100_000)


class DrugStop(_DrugAction):
    """No dose of the drug from the day on."""

    action: Literal["stop"]


class DrugRestart(_DrugAction):
    """Restart the drug: its ``[drugs]`` course from step ``at_step``, or a dose of ``mg``
    (for prednisone: the taper again from ``mg``; otherwise ``mg`` to the end)."""

    action: Literal["restart"]
    at_step: int | None = Field(default=None, ge=0, le=500)
    mg: float | None = Field(default=None, gt=0, le=100_000)

    @model_validator(mode="after")
    def _one_start(self) -> Self:
        if (self.at_step is None) == (self.mg is None):
            raise FieldProblems([((), None, "give exactly one of 'at_step' or 'mg'")])
        return self


class DrugSwitch(_DrugAction):
    """Stop the drug and start ``to``'s ``[drugs]`` course from its first step."""

    action: Literal["switch"]
    to: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


class DrugAdd(_DrugAction):
    """Start the drug's ``[drugs]`` course from its first step (a rescue), unless the
    patient is already on it."""

    action: Literal["add"]


Action = Annotated[
    MmfReduce
    | MmfHold
    | MmfStop
    | PrednisoneReescalate
    | Leave
    | DrugReduce
    | DrugHold
    | DrugStop
    | DrugRestart
    | DrugSwitch
    | DrugAdd,
    Field(discriminator="action"),
]

_NAME = r"^[a-z][a-z0-9_]*$"
_ARM_NAME = r"^[A-Za-z][A-Za-z0-9_.+-]*$"

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


class AdverseEvent(StrictModel):
    """``[adverse_events.<name>]``: a recurrent event, its hazard and the protocol's reaction.

    Hazard (per year) = ``baseline_per_year`` x the product of the multipliers.
    """

    baseline_per_year: float = Field(ge=0, le=1000)
    multipliers: list[Multiplier] = Field(default_factory=list, max_length=16)
    actions: list[Action] = Field(default_factory=list)


class DeathRaise(StrictModel):
    """``[dropout.death_raised_after]``: death risk x ``multiplier`` after ``event``."""

    event: str = Field(pattern=_NAME)
    multiplier: float = Field(ge=0, le=1000)
    days: float = Field(gt=0, le=3650)


class DropoutSettings(StrictModel):
    """``[dropout]``: leaving the study other than through an adverse event's action."""

    withdrawal_per_year: float = Field(ge=0, le=1000)
    death_per_year: float = Field(ge=0, le=1000)
    death_raised_after: DeathRaise | None = None


# ---------------------------------------------------------------------------
# Recruitment
# ---------------------------------------------------------------------------

DAYS_PER_MONTH = 365.25 / 12
"""Days in an average month: rates per month become rates per day by dividing by this."""


class RateChange(StrictModel):
    """From trial day ``from_day`` on, the site's screening rate is multiplied by ``multiplier``."""

    from_day: float = Field(gt=0, le=36_500)
    multiplier: float = Field(ge=0, le=100)


class Site(StrictModel):
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
            raise FieldProblems(
                [
                    (
                        (),
                        None,
                        "give activation_day, or activation_day_min and activation_day_max",
                    )
                ]
            )
        if drawn and (lo is None or hi is None or hi < lo):
            raise FieldProblems(
                [(("activation_day_max",), hi, "needs activation_day_min <= activation_day_max")]
            )
        days = [c.from_day for c in self.rate_changes]
        if days != sorted(set(days)):
            raise FieldProblems([(("rate_changes",), None, "from_day must increase")])
        return self


#: The longest trial, start date to deadline, a scenario may plan (about 27 years).
MAX_TRIAL_DAYS = 10_000


class RecruitmentSettings(StrictModel):
    """``[recruitment]``: calendar, target, rate model and sites."""

    start_date: date = Field(ge=date(1900, 1, 1), le=date(2200, 12, 31))
    """Trial day 0 (calendar dates appear only at the edges), 1900 to 2200."""
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
        elif (self.deadline - self.start_date).days > MAX_TRIAL_DAYS:
            problems.append(
                (
                    ("deadline",),
                    self.deadline,
                    f"must be at most {MAX_TRIAL_DAYS:,} days (about 27 years) after start_date",
                )
            )
        else:
            closes = float(((self.enrolment_deadline or self.deadline) - self.start_date).days)
            for i, site in enumerate(self.sites):
                opens = (
                    site.activation_day
                    if site.activation_day is not None
                    else (site.activation_day_min)
                )
                if opens is not None and opens >= closes:
                    key = (
                        "activation_day"
                        if site.activation_day is not None
                        else ("activation_day_min")
                    )
                    problems.append(
                        (
                            ("sites", i, key),
                            opens,
                            f"must be before enrolment closes (trial day {closes:g}): the site "
                            "would never screen anyone",
                        )
                    )
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
            raise FieldProblems(problems)
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


class Arm(StrictModel):
    """``[[arms]]``: one arm of a randomised trial.

    ``set`` holds the arm's own values of the protocol's tables (``treatment``,
    ``prednisone``, ``mmf``, ``drugs``, ``adverse_events``), merged over the scenario's
    as ``extends`` merges a file; ``{remove = true}`` removes a key.
    """

    name: str = Field(pattern=_ARM_NAME, max_length=40)
    ratio: int = Field(ge=1, le=100)
    """Allocation ratio: this arm's share of each block is ``ratio / sum of ratios``."""
    label: str | None = Field(default=None, min_length=1, max_length=200)
    set: dict[str, Any] = Field(default_factory=dict)


class Allocation(StrictModel):
    """``[allocation]``: randomisation of enrolled patients to the arms.

    Permuted blocks per site (and per stratum): each block holds every arm
    ``ratio x block_size / sum of ratios`` times, in a random order from the
    allocation's own stream.
    """

    block_size: int = Field(ge=1, le=1000)
    stratify_by: list[Literal["sex", "age_over", "fvc_under", "weight_over"]] = Field(
        default_factory=list, max_length=3
    )
    """Strata: ``sex``; ``age_over`` / ``fvc_under`` / ``weight_over`` split at the cut."""
    age_cut_years: float = Field(default=60.0, gt=0, le=120)
    fvc_cut_percent: float = Field(default=70.0, gt=0, le=200)
    weight_cut_kg: float = Field(default=55.0, gt=0, le=300)
    target: Literal["total", "per_arm"] = "total"
    """Whether ``recruitment.target_enrolled`` counts all patients or each arm's."""


ARM_TABLES = ("treatment", "prednisone", "mmf", "drugs", "adverse_events", "description")
"""The tables an arm may set: the protocol's treatment, not the population or the sites."""


class Scenario(StrictModel):
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
    prednisone: PrednisoneRegimen | None = None
    """None: the glucocorticoid is a ``[drugs.prednisone]`` course instead."""
    mmf: MmfRegimen | None = None
    """None: no MMF (an arm without it: ``mmf = {remove = true}``)."""
    drugs: dict[Annotated[str, Field(pattern=_NAME, max_length=40)], DrugRegimen] = Field(
        default_factory=dict
    )
    exposure: ExposureSettings | None = None
    population: PopulationSettings | None = None
    eligibility: EligibilitySettings | None = None
    adverse_events: dict[Annotated[str, Field(pattern=_NAME, max_length=40)], AdverseEvent] = Field(
        default_factory=dict
    )
    dropout: DropoutSettings | None = None
    recruitment: RecruitmentSettings | None = None
    arms: list[Arm] = Field(default_factory=list, max_length=12)
    allocation: Allocation | None = None
    disease: DiseaseSettings | None = None
    """The disease model (FVC), its estimand and primary analysis (:mod:`sim.disease`)."""

    _source: str | None = PrivateAttr(default=None)
    _files: tuple[tuple[str, str], ...] = PrivateAttr(default=())
    _overrides: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _fits_treatment(self, info: ValidationInfo) -> Self:
        # an arm is validated with the trial's drugs in the context: an action or a driver
        # may name a drug another arm gives (in this arm it does nothing)
        trial_drugs = tuple((info.context or {}).get("trial_drugs", ()))
        end = self.treatment.duration_days
        problems: list[tuple[KeyPath, Any, str]] = []
        pred = self.prednisone
        if pred is not None and pred.initial_hold_days >= end:
            problems.append(
                (
                    ("prednisone", "initial_hold_days"),
                    pred.initial_hold_days,
                    f"must be < treatment.duration_days ({end})",
                )
            )
        for i, stage in enumerate(pred.stages if pred is not None else []):
            if stage.kind == "hold" and stage.until_day is not None and stage.until_day >= end:
                problems.append(
                    (
                        ("prednisone", "stages", i, "until_day"),
                        stage.until_day,
                        f"must be < treatment.duration_days ({end})",
                    )
                )
        if (self.prednisone is None) == ("prednisone" not in self.drugs):
            problems.append(
                (
                    ("prednisone",),
                    None,
                    "give the glucocorticoid exactly once: a [prednisone] table or a"
                    " [drugs.prednisone] course",
                )
            )
        for name, regimen in self.drugs.items():
            taken = name == "mmf" or (name == "prednisone" and self.prednisone is not None)
            if taken:
                problems.append(
                    (
                        ("drugs", name),
                        None,
                        f"the [{name}] table gives {name}; name this drug otherwise",
                    )
                )
            if name == "prednisone" and regimen.rescue:
                problems.append((("drugs", name, "rescue"), True, "the glucocorticoid is given"))
            if regimen.uses("mg_per_m2") and (
                self.population is None or not self.population.has_height
            ):
                problems.append(
                    (
                        ("drugs", name),
                        None,
                        "doses per m2 need heights: give [population] height_mean_female_cm,"
                        " height_mean_male_cm and height_sd_cm",
                    )
                )
        problems += self._arm_problems()
        problems += self._eligibility_problems()
        if self.disease is not None:
            excluded = self.eligibility.exclude if self.eligibility is not None else []
            problems += disease_problems(
                self.disease, list(self.adverse_events), self.condition_names(), end, excluded
            )
        pop = self.population
        uses_per_kg = self.prednisone is not None and self.prednisone.start_mg_per_kg is not None
        if pop is not None and pop.start_rule is not None and not uses_per_kg:
            problems.append(
                (
                    ("population", "start_rule"),
                    None,
                    "needs a [prednisone] table with start_mg_per_kg (a start per kg)",
                )
            )
        drugs = self.drug_names()
        in_arms = [d for d in self.arm_drug_names() if d not in drugs]
        for name in self.treatment.days_at_or_above_mg or {}:
            if name not in drugs and name not in in_arms:
                problems.append(
                    (
                        ("treatment", "days_at_or_above_mg", name),
                        None,
                        "must name a drug of the scenario or of an arm: "
                        + ", ".join(dict.fromkeys(drugs + in_arms)),
                    )
                )
        everywhere = [*drugs, *self.arm_drug_names(), *trial_drugs]
        if self.mmf is None:
            for name, ae in self.adverse_events.items():
                for i, m in enumerate(ae.multipliers):
                    if m.driver in ("mpa_auc", "mpa_auc_bands"):
                        rule = (
                            "reads MPA exposure, and no MMF is given (it would read 0): give"
                            " this event its own multipliers"
                        )
                        problems.append((("adverse_events", name, "multipliers", i), None, rule))
        for name, ae in self.adverse_events.items():
            for i, a in enumerate(ae.actions):
                where = ("adverse_events", name, "actions", i)
                problems += _action_problems(self, where, a, everywhere)
            for i, m in enumerate(ae.multipliers):
                if isinstance(m, CovariateBandsMultiplier):
                    problems += self._covariate_problems(("adverse_events", name), i, m)
                drug = getattr(m, "drug", None)
                if drug is not None and drug not in drugs:
                    problems.append(
                        (
                            ("adverse_events", name, "multipliers", i, "drug"),
                            drug,
                            "must name a drug of the scenario: " + ", ".join(drugs),
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
            raise FieldProblems(problems)
        return self

    def _covariate_problems(
        self, where: KeyPath, i: int, m: CovariateBandsMultiplier
    ) -> list[tuple[KeyPath, Any, str]]:
        """A covariate multiplier must read a covariate the patients have."""
        pop = self.population
        known = [*RANGE_COVARIATES, "female", *self.condition_names()]
        if pop is None or not pop.has_height:
            known.remove("height_cm")
        if m.covariate in known:
            return []
        rule = "must be a covariate or condition of the population: " + ", ".join(known)
        return [((*where, "multipliers", i, "covariate"), m.covariate, rule)]

    def _eligibility_problems(self) -> list[tuple[KeyPath, Any, str]]:
        problems: list[tuple[KeyPath, Any, str]] = []
        pop, elig = self.population, self.eligibility
        declared = dict(pop.conditions) if pop is not None else {}
        for name in declared:
            if name in EXCLUSION_CONDITIONS:
                rule = "is one of [population.prevalence]; give its prevalence there"
                problems.append((("population", "conditions", name), None, rule))
        if elig is None:
            return problems
        known = self.condition_names()
        for i, name in enumerate(elig.exclude):
            if name not in known:
                rule = "must name a condition of [population.prevalence] or [population.conditions]"
                problems.append((("eligibility", "exclude", i), name, rule))
        if "height_cm" in (elig.ranges or {}) and (pop is None or not pop.has_height):
            rule = "needs heights: give [population] height_mean_female_cm, ..."
            problems.append((("eligibility", "ranges", "height_cm"), None, rule))
        return problems

    def _arm_problems(self) -> list[tuple[KeyPath, Any, str]]:
        problems: list[tuple[KeyPath, Any, str]] = []
        names = [arm.name for arm in self.arms]
        if self.arms and len(self.arms) < 2:
            problems.append((("arms",), None, "a randomised trial needs at least two arms"))
        for i, arm in enumerate(self.arms):
            if arm.name in names[:i]:
                problems.append((("arms", i, "name"), arm.name, "two arms share this name"))
            for key in arm.set:
                if key not in ARM_TABLES:
                    problems.append(
                        (
                            ("arms", i, "set", key),
                            None,
                            "an arm may set only " + ", ".join(ARM_TABLES),
                        )
                    )
        if self.arms and self.allocation is None:
            problems.append((("allocation",), None, "arms need an [allocation] table"))
        if self.allocation is not None and self.arms:
            total = sum(arm.ratio for arm in self.arms)
            size = self.allocation.block_size
            if size % total:
                problems.append(
                    (
                        ("allocation", "block_size"),
                        size,
                        f"must be a multiple of the sum of the arms' ratios ({total})",
                    )
                )
        if self.allocation is not None and not self.arms:
            problems.append((("arms",), None, "an [allocation] table needs [[arms]]"))
        return problems

    def condition_names(self) -> list[str]:
        """The conditions a patient may have: the six built-in, then ``[population.conditions]``."""
        declared = list(self.population.conditions) if self.population is not None else []
        return [*EXCLUSION_CONDITIONS, *declared]

    def arm_drug_names(self) -> list[str]:
        """The ``[drugs]`` tables the arms declare (their ``set.drugs``), in order."""
        out: list[str] = []
        for arm in self.arms:
            drugs = arm.set.get("drugs")
            if isinstance(drugs, dict):  # (anything else: the arm's validation says so)
                out += [d for d in drugs if d not in out]
        return out

    def drug_names(self) -> list[str]:
        """The drugs the scenario gives: prednisone, MMF (if any), then ``[drugs]``."""
        declared = [d for d in self.drugs if d != "prednisone"]
        return ["prednisone", *(["mmf"] if self.mmf is not None else []), *declared]

    # -- derived views ----------------------------------------------------
    def require(self, *tables: str, purpose: str) -> None:
        """Raise a clear error if any of these optional tables is missing.

        Parameters
        ----------
        *tables : str
            Top-level table names, e.g. ``"recruitment"``.
        purpose : str
            What needs them, for the message (e.g. ``"a run"``).

        Raises
        ------
        DosesimError
            ``file: a run needs a [dropout] table, which the scenario does not have``.
        """
        missing = [t for t in tables if getattr(self, t) is None]
        if missing:
            need = " and ".join(f"a [{t}] table" for t in missing)
            raise DosesimError(
                f"{self.source or self.name}: {purpose} needs {need}, "
                "which the scenario does not have"
            )

    @property
    def source(self) -> str | None:
        """The file this scenario was loaded from, if any."""
        return self._source

    @property
    def files(self) -> tuple[tuple[str, str], ...]:
        """``(absolute path, sha256)`` of every file read to make this scenario (its ``extends``
        chain, the named file first)."""
        return self._files

    @property
    def overrides(self) -> tuple[str, ...]:
        """The ``--set`` overrides applied after loading, as ``key.path=value`` (TOML values)."""
        return self._overrides

    @property
    def label(self) -> str:
        """The name, marked as modified when ``--set`` overrides changed the scenario.

        ``nct05129410 (modified by --set prednisone.start_mg_per_kg=0.5)``: what
        every report header and summary shows, so that a changed scenario is
        never taken for its file.
        """
        if not self._overrides:
            return self.name
        return f"{self.name} (modified by --set {'; '.join(self._overrides)})"

    def with_provenance(
        self, files: tuple[tuple[str, str], ...], overrides: tuple[str, ...]
    ) -> Self:
        """A copy that records these files and overrides (e.g. a sweep's variant, its base's)."""
        copy = self.model_copy()
        copy._source = self._source
        copy._files = tuple(files)
        copy._overrides = tuple(overrides)
        return copy

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario as plain data (what :meth:`to_toml` writes)."""
        return _without_empty(self.model_dump(mode="python", exclude_none=True))

    def to_dict_json(self) -> Any:
        """The resolved scenario as JSON-compatible data (dates as ISO strings), for manifests."""
        return _without_empty(json.loads(self.model_dump_json(exclude_none=True)))

    def to_toml(self) -> str:
        """The resolved scenario as TOML: every value explicit, no ``extends``."""
        return tomli_w.dumps(self.to_dict())

    @property
    def hash(self) -> str:
        """sha256 (hex) of the canonical resolved form, ``name``/``description`` excepted.

        Two files that resolve to the same model have the same hash, however
        they are split across ``extends`` and whatever their key order.
        """
        data = _without_empty(self.model_dump(mode="json", exclude_none=True))
        data.pop("name", None)
        data.pop("description", None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


_EMPTY_UNLESS_USED = (("drugs",), ("arms",), ("population", "conditions"))
"""Tables whose absence and emptiness mean the same: left out of the resolved form, so a
scenario without them keeps the hash it had before they existed."""


def _without_empty(data: dict[str, Any]) -> dict[str, Any]:
    for *parents, key in _EMPTY_UNLESS_USED:
        table = data
        for parent in parents:
            table = table.get(parent) or {}
        if key in table and not table[key]:
            del table[key]
    return data


def _action_problems(
    scenario: Scenario, where: KeyPath, action: Any, names: list[str]
) -> list[tuple[KeyPath, Any, str]]:
    """A generic dose action names a drug of the trial (``names``: this scenario's, its
    arms' and, for an arm, the trial's), with a course where it needs one."""
    names = list(dict.fromkeys(names))
    out: list[tuple[KeyPath, Any, str]] = []
    if isinstance(action, PrednisoneReescalate) and scenario.prednisone is None:
        rule = "needs a [prednisone] table; restart a [drugs.prednisone] course with 'restart'"
        out.append(((*where, "action"), action.action, rule))
    drug = getattr(action, "drug", None)
    if drug is None:
        return out
    if drug not in names:
        out.append(
            ((*where, "drug"), drug, "must name a drug of the scenario: " + ", ".join(names))
        )
        return out
    if drug not in scenario.drug_names():
        return out  # a drug of another arm: here it does nothing
    course = scenario.drugs.get(drug)
    if isinstance(action, DrugRestart) and action.at_step is not None:
        if course is None:
            out.append(((*where, "at_step"), action.at_step, f"{drug} has no [drugs] course"))
        elif action.at_step >= len(course.course):
            rule = f"must be < {len(course.course)} (the steps of drugs.{drug}.course)"
            out.append(((*where, "at_step"), action.at_step, rule))
        elif course.course[action.at_step].kind in ("hold", "taper", "titrate"):
            rule = "must be a step that sets a dose (dose, table, pulse, maintenance)"
            out.append(((*where, "at_step"), action.at_step, rule))
    targets = [(("to",), action.to)] if isinstance(action, DrugSwitch) else []
    if isinstance(action, DrugAdd):
        targets = [(("drug",), drug)]
    for key, target in targets:
        if target not in scenario.drugs:
            rule = "must name a [drugs] table (a course to start): " + (
                ", ".join(scenario.drugs) or "none declared"
            )
            out.append(((*where, *key), target, rule))
    return out
