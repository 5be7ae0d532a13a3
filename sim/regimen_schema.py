"""The schema of a drug's regimen: ``[drugs.<name>]`` tables and their course of steps.

A regimen is a course of steps taken in order, each from the day the one before
it ends (:mod:`sim.regimens` builds the schedule). Doses are stated per
administration day in mg, as a fixed dose, per kg of body weight, per m2 of body
surface area or by weight band. For example, IV cyclophosphamide 500 mg/m2 every
4 weeks for 6 pulses, capped at 1,000 mg and rounded to 50 mg::

    [drugs.cyclophosphamide]
    route = "IV"
    round_to_mg = 50
    max_mg = 1000

    [[drugs.cyclophosphamide.course]]
    kind = "pulse"
    mg_per_m2 = 500
    every_days = 28
    count = 6
"""

from __future__ import annotations

import itertools
import typing
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from sim.schema_base import FieldProblems, KeyPath, StrictModel, format_number

__all__ = [
    "BSA_FORMULAS",
    "DoseStep",
    "DrugRegimen",
    "HoldStep",
    "MaintenanceStep",
    "PulseStep",
    "RegimenStep",
    "TableBand",
    "TableStep",
    "TaperStep",
    "TitrateStep",
    "WeightBand",
]

Mg = Annotated[float, Field(ge=0, le=100_000)]
Days = Annotated[int, Field(gt=0, le=3650)]

BSA_FORMULAS = ("mosteller", "du_bois")
"""Body-surface-area formulas a regimen may name (:func:`sim.regimens.body_surface_area_m2`)."""


class WeightBand(StrictModel):
    """One band of a weight-band dose table: ``mg`` for weights within its edges, kg.

    Each edge says whether it belongs to the band: ``from_kg`` (weight >= edge) or
    ``over_kg`` (weight > edge) below; ``to_kg`` (weight <= edge) or ``under_kg``
    (weight < edge) above. The first band has no lower edge and the last none above,
    so every weight has a band; where two bands meet, exactly one holds the edge.
    """

    from_kg: float | None = Field(default=None, gt=0, le=500)
    over_kg: float | None = Field(default=None, ge=0, le=500)
    to_kg: float | None = Field(default=None, gt=0, le=500)
    under_kg: float | None = Field(default=None, gt=0, le=500)
    mg: Mg

    @model_validator(mode="after")
    def _one_edge_a_side(self) -> Self:
        problems: list[tuple[KeyPath, Any, str]] = []
        if self.from_kg is not None and self.over_kg is not None:
            problems.append(((), None, "give at most one of 'from_kg' or 'over_kg'"))
        if self.to_kg is not None and self.under_kg is not None:
            problems.append(((), None, "give at most one of 'to_kg' or 'under_kg'"))
        low, high = self.lower, self.upper
        if low is not None and high is not None and high[0] <= low[0]:
            problems.append(((), None, "the upper edge must be above the lower edge"))
        if problems:
            raise FieldProblems(problems)
        return self

    @property
    def lower(self) -> tuple[float, bool] | None:
        """``(edge kg, the edge belongs to the band)``, or None for no lower edge."""
        if self.from_kg is not None:
            return self.from_kg, True
        return None if self.over_kg is None else (self.over_kg, False)

    @property
    def upper(self) -> tuple[float, bool] | None:
        """``(edge kg, the edge belongs to the band)``, or None for no upper edge."""
        if self.to_kg is not None:
            return self.to_kg, True
        return None if self.under_kg is None else (self.under_kg, False)


def _check_bands(bands: typing.Sequence[WeightBand]) -> list[tuple[KeyPath, Any, str]]:
    problems: list[tuple[KeyPath, Any, str]] = []
    if bands[0].lower is not None:
        problems.append((("weight_bands", 0), None, "the first band must have no lower edge"))
    if bands[-1].upper is not None:
        i = len(bands) - 1
        problems.append((("weight_bands", i), None, "the last band must have no upper edge"))
    for i, (a, b) in enumerate(itertools.pairwise(bands)):
        up, low = a.upper, b.lower
        where = ("weight_bands", i + 1)
        if up is None or low is None:
            problems.append((where, None, f"bands {i} and {i + 1} must meet at an edge"))
        elif low[0] > up[0]:
            problems.append(
                (
                    where,
                    low[0],
                    f"leaves a gap after band {i} (which ends at {format_number(up[0])} kg)",
                )
            )
        elif low[0] < up[0]:
            problems.append(
                (where, low[0], f"overlaps band {i} (which ends at {format_number(up[0])} kg)")
            )
        elif up[1] == low[1]:
            rule = "both bands hold" if up[1] else "neither band holds"
            problems.append(
                (
                    where,
                    low[0],
                    f"{rule} the edge {format_number(low[0])} kg; exactly one must "
                    "(to_kg then over_kg, or under_kg then from_kg)",
                )
            )
    return problems


class _Dose(StrictModel):
    """A dose rule: exactly one of ``mg``, ``mg_per_kg``, ``mg_per_m2``, ``weight_bands``."""

    mg: Mg | None = None
    mg_per_kg: float | None = Field(default=None, ge=0, le=100)
    mg_per_m2: float | None = Field(default=None, ge=0, le=10_000)
    weight_bands: list[WeightBand] | None = Field(default=None, min_length=1, max_length=20)

    def _dose_problems(self, required: bool) -> list[tuple[KeyPath, Any, str]]:
        given = [
            k
            for k in ("mg", "mg_per_kg", "mg_per_m2", "weight_bands")
            if getattr(self, k) is not None
        ]
        problems: list[tuple[KeyPath, Any, str]] = []
        if len(given) > 1 or (required and not given):
            problems.append(
                ((), None, "give exactly one of 'mg', 'mg_per_kg', 'mg_per_m2' or 'weight_bands'")
            )
        if self.weight_bands:
            problems += _check_bands(self.weight_bands)
        return problems

    @property
    def has_dose(self) -> bool:
        return any(
            getattr(self, k) is not None for k in ("mg", "mg_per_kg", "mg_per_m2", "weight_bands")
        )


class _Length(StrictModel):
    days: Days | None = None
    until_day: Days | None = None


class DoseStep(_Dose, _Length):
    """``kind = "dose"``: a daily dose for ``days``, or until day ``until_day``, or to the end."""

    kind: Literal["dose"]

    @model_validator(mode="after")
    def _valid(self) -> Self:
        problems = self._dose_problems(required=True)
        if self.days is not None and self.until_day is not None:
            problems.append(((), None, "give at most one of 'days' or 'until_day'"))
        if problems:
            raise FieldProblems(problems)
        return self


class MaintenanceStep(_Dose):
    """``kind = "maintenance"``: a daily dose from here to the end of treatment."""

    kind: Literal["maintenance"]

    @model_validator(mode="after")
    def _valid(self) -> Self:
        problems = self._dose_problems(required=True)
        if problems:
            raise FieldProblems(problems)
        return self


class HoldStep(_Length):
    """``kind = "hold"``: the current dose lasts ``days`` from the day it was reached, or
    until day ``until_day`` (over already if the level is reached on or after it)."""

    kind: Literal["hold"]

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if (self.days is None) == (self.until_day is None):
            raise FieldProblems([((), None, "a hold needs exactly one of 'days' or 'until_day'")])
        return self


class TaperStep(StrictModel):
    """``kind = "taper"``: lower the dose every ``every_days`` by ``step_mg`` or by
    ``step_percent`` of the current dose (rounded to the regimen's ``round_to_mg``),
    down to ``floor_mg`` (0: to zero). The first step is taken when the current level
    ends; the floor level lasts ``every_days`` unless a hold follows."""

    kind: Literal["taper"]
    step_mg: float | None = Field(default=None, gt=0, le=100_000)
    step_percent: float | None = Field(default=None, gt=0, lt=100)
    every_days: Days
    floor_mg: Mg = 0.0

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if (self.step_mg is None) == (self.step_percent is None):
            raise FieldProblems([((), None, "give exactly one of 'step_mg' or 'step_percent'")])
        return self


class TitrateStep(_Dose):
    """``kind = "titrate"``: move the dose by ``step_mg`` every ``every_days`` towards the
    target dose (its ``mg``, ``mg_per_kg``, ``mg_per_m2`` or ``weight_bands``), up or
    down; the first move is taken when the current level ends. The target level then
    lasts until a following step."""

    kind: Literal["titrate"]
    step_mg: float = Field(gt=0, le=100_000)
    every_days: Days

    @model_validator(mode="after")
    def _valid(self) -> Self:
        problems = self._dose_problems(required=True)
        if problems:
            raise FieldProblems(problems)
        return self


class PulseStep(_Dose):
    """``kind = "pulse"``: a dose on single days, with no dose between them: every
    ``every_days`` for ``count`` doses, or on the listed ``on_days`` (days from the
    step's start). The step lasts ``count x every_days`` days (or to the day after the
    last listed day, or ``lasts_days``); the current dose after it is zero."""

    kind: Literal["pulse"]
    every_days: Days | None = None
    count: int | None = Field(default=None, ge=1, le=10_000)
    on_days: list[Annotated[int, Field(ge=0, le=3650)]] | None = Field(
        default=None, min_length=1, max_length=1000
    )
    lasts_days: Days | None = None

    @model_validator(mode="after")
    def _valid(self) -> Self:
        problems = self._dose_problems(required=True)
        regular = self.every_days is not None or self.count is not None
        if regular == (self.on_days is not None):
            problems.append(
                ((), None, "give either 'every_days' and 'count', or 'on_days', not both")
            )
        elif regular and (self.every_days is None or self.count is None):
            missing = "count" if self.count is None else "every_days"
            problems.append(((missing,), None, "a regular pulse needs both every_days and count"))
        if self.on_days is not None and any(b <= a for a, b in itertools.pairwise(self.on_days)):
            problems.append((("on_days",), self.on_days, "must be strictly increasing"))
        if self.lasts_days is not None and self.length_days_unchecked() > self.lasts_days:
            problems.append(
                (("lasts_days",), self.lasts_days, "must be after the last pulse's day")
            )
        if problems:
            raise FieldProblems(problems)
        return self

    def pulse_days(self) -> list[int]:
        """The days of the pulses, from the step's start."""
        if self.on_days is not None:
            return list(self.on_days)
        assert self.every_days is not None and self.count is not None
        return [i * self.every_days for i in range(self.count)]

    def length_days_unchecked(self) -> int:
        if self.on_days is not None:
            return self.on_days[-1] + 1
        return (self.every_days or 0) * (self.count or 0)

    @property
    def length_days(self) -> int:
        """How long the step lasts, days."""
        return self.lasts_days if self.lasts_days is not None else self.length_days_unchecked()


class TableBand(WeightBand):
    """One band of a weight-banded dose table: the table's doses for weights in its edges."""

    mg: list[Mg] = Field(min_length=1, max_length=520)  # type: ignore[assignment]


class TableStep(StrictModel):
    """``kind = "table"``: a published dose table, one dose per period: ``mg`` (one list
    for everyone) or ``weight_bands`` (a list per band). Each period lasts
    ``every_days``, or ``period_days`` gives each its own length."""

    kind: Literal["table"]
    every_days: Days | None = None
    period_days: list[Days] | None = Field(default=None, min_length=1, max_length=520)
    mg: list[Mg] | None = Field(default=None, min_length=1, max_length=520)
    weight_bands: list[TableBand] | None = Field(default=None, min_length=1, max_length=20)

    @model_validator(mode="after")
    def _valid(self) -> Self:
        problems: list[tuple[KeyPath, Any, str]] = []
        if (self.mg is None) == (self.weight_bands is None):
            problems.append(((), None, "give exactly one of 'mg' or 'weight_bands'"))
        if (self.every_days is None) == (self.period_days is None):
            problems.append(((), None, "give exactly one of 'every_days' or 'period_days'"))
        tables: list[tuple[KeyPath, list[float]]] = []
        if self.mg is not None:
            tables.append((("mg",), self.mg))
        for i, band in enumerate(self.weight_bands or []):
            tables.append((("weight_bands", i, "mg"), band.mg))
        if self.weight_bands:
            problems += _check_bands(list(self.weight_bands))
        if self.period_days is not None:
            for where, doses in tables:
                if len(doses) != len(self.period_days):
                    problems.append(
                        (
                            where,
                            None,
                            f"has {len(doses)} doses for {len(self.period_days)} period_days",
                        )
                    )
        if problems:
            raise FieldProblems(problems)
        return self

    def periods(self, n: int) -> list[int]:
        """The length of each of ``n`` periods, days."""
        if self.period_days is not None:
            return list(self.period_days)
        assert self.every_days is not None
        return [self.every_days] * n


RegimenStep = Annotated[
    DoseStep | MaintenanceStep | HoldStep | TaperStep | TitrateStep | PulseStep | TableStep,
    Field(discriminator="kind"),
]


class DrugRegimen(StrictModel):
    """``[drugs.<name>]``: a drug of the protocol, its labels and its course of steps.

    Attributes
    ----------
    label : str
        For text and figures (default: the name, capitalised).
    treatment : str
        CDISC ``EXTRT`` (default: the label in capitals).
    route : str
        ``ORAL``, ``IV`` or ``SUBCUTANEOUS`` (CDISC ``EXROUTE``).
    doses_per_day : int
        Administrations per dosing day; the day's dose is split evenly.
    round_to_mg : float or None
        Doses computed from weight, body surface area or a percentage are rounded
        half up to a multiple of this (a tablet or vial strength; state half a tablet
        where half tablets are allowed).
    max_mg, min_mg : float or None
        Caps on every computed dose, mg per administration day (after rounding).
    bsa_formula : str
        ``mosteller`` or ``du_bois``, for ``mg_per_m2`` doses (needs height).
    course : list of steps
        In order, each from the day the one before ends.
    """

    label: str | None = Field(default=None, min_length=1, max_length=60)
    treatment: str | None = Field(default=None, min_length=1, max_length=100)
    route: Literal["ORAL", "IV", "SUBCUTANEOUS"] = "ORAL"
    doses_per_day: int = Field(default=1, ge=1, le=4)
    round_to_mg: float | None = Field(default=None, gt=0, le=10_000)
    max_mg: float | None = Field(default=None, gt=0, le=100_000)
    min_mg: float | None = Field(default=None, ge=0, le=100_000)
    bsa_formula: Literal["mosteller", "du_bois"] = "mosteller"
    rescue: bool = False
    """True: given only when an action adds it or switches to it (a rescue drug)."""
    course: list[RegimenStep] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _valid(self) -> Self:
        problems: list[tuple[KeyPath, Any, str]] = []
        if self.min_mg is not None and self.max_mg is not None and self.max_mg < self.min_mg:
            problems.append((("max_mg",), self.max_mg, "must be >= min_mg"))
        first = self.course[0]
        if first.kind in ("hold", "taper", "titrate"):
            problems.append(
                (
                    ("course", 0, "kind"),
                    first.kind,
                    "a course starts with a dose, a table, a pulse or a maintenance dose",
                )
            )
        for i, step in enumerate(self.course[:-1]):
            if step.kind == "maintenance":
                problems.append(
                    (
                        ("course", i, "kind"),
                        step.kind,
                        "a maintenance dose lasts to the end: it comes last",
                    )
                )
            if step.kind == "dose" and step.days is None and step.until_day is None:
                problems.append(
                    (("course", i), None, "a dose before other steps needs 'days' or 'until_day'")
                )
        if self.round_to_mg is None:
            for i, step in enumerate(self.course):
                if step.kind == "taper" and step.step_percent is not None:
                    problems.append(
                        (
                            ("course", i, "step_percent"),
                            step.step_percent,
                            "a percentage taper needs the regimen's round_to_mg (its dose unit)",
                        )
                    )
        after_pulse = False
        for i, step in enumerate(self.course):
            if step.kind in ("taper", "hold") and after_pulse:
                problems.append(
                    (
                        ("course", i, "kind"),
                        step.kind,
                        "follows a pulse, after which the dose is zero",
                    )
                )
            after_pulse = step.kind == "pulse" or (after_pulse and step.kind in ("taper", "hold"))
        if problems:
            raise FieldProblems(problems)
        return self

    def uses(self, key: str) -> bool:
        """Whether any step states its dose this way (``mg_per_m2``, ``weight_bands``...)."""
        return any(getattr(step, key, None) is not None for step in self.course)
