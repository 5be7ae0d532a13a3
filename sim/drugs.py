"""Drugs: what the protocol gives, how it is labelled, and what its exposure model is.

A :class:`Drug` is the unit the rest of the model indexes by: plans, dose
actions, hazard drivers and the exports name drugs, never a fixed pair. A
scenario's drugs come from its ``[prednisone]`` and ``[mmf]`` tables
(:func:`scenario_drugs`); more can be added through the Python API, for
example a drug given at a fixed regimen to every patient::

    extra = Drug.fixed("hydroxychloroquine", "Hydroxychloroquine", schedule)
    sim.simulate_cohort(scenario, 20, seed=1, drugs=[extra])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.schedule import Schedule

if TYPE_CHECKING:
    from sim.scenario import OralPK, Scenario

__all__ = ["MMF", "PREDNISONE", "Drug", "scenario_drugs"]


@dataclass(frozen=True, eq=False)
class Drug:
    """A drug of the protocol.

    Attributes
    ----------
    name : str
        The key other parts use (``"prednisone"``, ``"mmf"``): lower case.
    label : str
        For text and figures, e.g. ``"MMF"``.
    treatment : str
        CDISC ``EXTRT``, e.g. ``"MYCOPHENOLATE MOFETIL"``.
    nonmem_name : str
        The ``DRUG`` column of the NONMEM dataset, e.g. ``"MMF"``.
    route : str
        CDISC ``EXROUTE``, e.g. ``"ORAL"``.
    schedule : Schedule or None
        A fixed regimen, the same for every patient (None: the scenario's table
        builds it per patient).
    moiety : str or None
        The measured moiety of its exposure model (``"prednisolone"``, ``"mpa"``).
    pk : OralPK or None
        Its exposure model's parameters; None for a drug without one.
    """

    name: str
    label: str
    treatment: str
    nonmem_name: str
    route: str = "ORAL"
    schedule: Schedule | None = None
    moiety: str | None = None
    pk: OralPK | None = None

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or not self.name.isidentifier():
            raise ValueError(f"a drug's name is a lower-case identifier, got {self.name!r}")

    @classmethod
    def fixed(cls, name: str, label: str, schedule: Schedule, route: str = "ORAL") -> Drug:
        """A drug given to every patient at ``schedule`` (mg/day), without an exposure model."""
        return cls(name, label, label.upper(), label.upper(), route, schedule)


PREDNISONE = Drug("prednisone", "Prednisone", "PREDNISONE", "PREDNISONE", moiety="prednisolone")
"""The scenario's ``[prednisone]`` table's drug (its PK model comes from the scenario)."""
MMF = Drug("mmf", "MMF", "MYCOPHENOLATE MOFETIL", "MMF", moiety="mpa")
"""The scenario's ``[mmf]`` table's drug (its PK model, MPA's, comes from the scenario)."""


def scenario_drugs(scenario: Scenario) -> tuple[Drug, ...]:
    """The scenario's drugs, in the order of its tables: prednisone, MMF, then ``[drugs]``."""
    exposure = scenario.exposure
    names = sorted(scenario.drugs, key=lambda n: n != "prednisone")  # the glucocorticoid first
    declared = tuple(declared_drug(name, scenario) for name in names)
    mmf = () if scenario.mmf is None else (MMF,)
    glucocorticoid = PREDNISONE
    if declared and declared[0].name == "prednisone":  # a [drugs.prednisone] course
        glucocorticoid = dataclasses.replace(declared[0], moiety="prednisolone")
        declared = declared[1:]
    if exposure is None:
        return glucocorticoid, *mmf, *declared
    return (
        dataclasses.replace(glucocorticoid, pk=exposure.prednisolone),
        *(dataclasses.replace(MMF, pk=exposure.mpa) for _ in mmf),
        *declared,
    )


def declared_drug(name: str, scenario: Scenario) -> Drug:
    """The drug of a scenario's ``[drugs.<name>]`` table (its schedule is per patient)."""
    regimen = scenario.drugs[name]
    label = regimen.label or name.replace("_", " ").capitalize()
    treatment = regimen.treatment or label.upper()
    return Drug(name, label, treatment, name.upper(), regimen.route)
