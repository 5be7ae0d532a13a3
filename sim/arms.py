"""Randomised arms: each arm's resolved scenario, and allocation by permuted blocks.

An arm (``[[arms]]``) is the scenario with the arm's ``set`` tables merged over
it, as ``extends`` merges a file (``{remove = true}`` removes a key); what the arm
does not set (population, sites, exposure, dropout) is the trial's. Patients are
allocated by permuted blocks per site and stratum (:class:`Allocator`), from the
allocation's own random streams: adding an arm or changing one changes no
patient's covariates, PK or event thresholds (common random numbers across arms
and scenarios).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.errors import Problem, ScenarioError
from sim.memo import IdentityCache

if TYPE_CHECKING:
    from sim.scenario_schema import Allocation, Scenario

__all__ = ["Allocator", "arm_names", "arm_scenarios", "block_of", "copy_tables", "merge_tables"]

REMOVE = {"remove": True}
"""The value that removes a key in ``extends`` and in an arm's ``set``."""


def merge_tables(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base``: tables merge, lists and values
    replace (copied: the result shares no table or list with ``over``), and
    ``{remove = true}`` removes the key. ``extends`` merges files with it too."""
    out = dict(base)
    for key, value in over.items():
        if value == REMOVE:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_tables(out[key], value)
        else:
            out[key] = copy_tables(value)
    return out


def copy_tables(value: Any) -> Any:
    """A copy of nested tables and lists (tuples become lists, as TOML has them)."""
    if isinstance(value, Mapping):
        return {k: copy_tables(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [copy_tables(v) for v in value]
    return value


_ARMS: IdentityCache[tuple[Scenario, ...]] = IdentityCache(64)


def arm_scenarios(scenario: Scenario) -> tuple[Scenario, ...]:
    """Each arm's scenario, in the order of ``[[arms]]`` (the scenario itself if none).

    An arm's scenario is named ``<scenario>/<arm>``, has no arms, and is validated
    as a whole; its problems are reported at ``arms[i].set``.
    """
    if not scenario.arms:
        return (scenario,)
    made = _ARMS.get_one(scenario)
    if made is None:
        made = _ARMS.put_one(scenario, _make_arms(scenario))
    return made


def _make_arms(scenario: Scenario) -> tuple[Scenario, ...]:
    from pydantic import ValidationError

    from sim.scenario_messages import Provenance, problems_from
    from sim.scenario_schema import Scenario as Model

    trial_drugs = [*scenario.drug_names(), *scenario.arm_drug_names()]
    base = scenario.model_dump(mode="python", exclude_none=True)
    base.pop("arms", None)
    base.pop("allocation", None)
    source = scenario.source or scenario.name
    out: list[Scenario] = []
    problems: list[Problem] = []
    for i, arm in enumerate(scenario.arms):
        data = merge_tables(base, arm.set)
        data["name"] = f"{scenario.name}/{arm.name}"
        # the dose columns are the trial's (sim.trial.dose_columns), whatever each arm gives
        data.get("treatment", {}).pop("days_at_or_above_mg", None)
        try:
            made = Model.model_validate(data, context={"trial_drugs": trial_drugs})
        except ValidationError as exc:
            prov = Provenance()
            prov.entries[()] = (0, source)
            for p in problems_from(exc, data, prov):  # key paths as at the top level
                path = f"arms[{i}].set" + (f".{p.path}" if p.path else "")
                problems.append(Problem(source, path, p.value, p.rule))
            continue
        made._source = scenario.source
        made._files = scenario.files
        made._overrides = scenario.overrides
        out.append(made)
    if not problems:
        problems += _arm_consistency(scenario, out, source)
    if problems:
        raise ScenarioError(problems)
    return tuple(out)


def _arm_consistency(scenario: Scenario, arms: list[Scenario], source: str) -> list[Problem]:
    """What arms may not differ in: which adverse events there are; a drug's labels and
    route."""
    problems: list[Problem] = []
    names = sorted(scenario.adverse_events)
    seen: dict[str, tuple[int, tuple[object, ...]]] = {}
    for i, made in enumerate(arms):
        for drug, regimen in made.drugs.items():
            labels = (regimen.label, regimen.treatment, regimen.route)
            first = seen.setdefault(drug, (i, labels))
            if first[1] != labels:
                rule = (
                    f"gives {drug} another label, treatment or route than arms[{first[0]}];"
                    " a drug given otherwise needs a name of its own"
                )
                problems.append(Problem(source, f"arms[{i}].set.drugs.{drug}", "", rule))
    for i, made in enumerate(arms):
        if sorted(made.adverse_events) != names:
            problems.append(
                Problem(
                    source,
                    f"arms[{i}].set.adverse_events",
                    "",
                    "an arm may change an adverse event's parameters, not which events "
                    f"there are ({', '.join(names) or 'none'})",
                )
            )
    return problems


def arm_names(scenario: Scenario) -> tuple[str, ...]:
    """The arms' names, or ``("",)`` for a scenario without arms."""
    return tuple(arm.name for arm in scenario.arms) or ("",)


def block_of(ratios: tuple[int, ...], block_size: int) -> np.ndarray:
    """The arms of one block before shuffling: arm ``i`` ``ratio_i x size / sum`` times."""
    total = sum(ratios)
    per = block_size // total
    return np.repeat(np.arange(len(ratios)), [r * per for r in ratios])


class Allocator:
    """Permuted-block allocation to arms, per site and stratum.

    Each (site, stratum) draws its blocks in turn from its own stream, so an
    allocation depends only on the seed, the replicate, the site, the stratum and
    how many were allocated there before.

    Parameters
    ----------
    scenario : Scenario
        With ``[[arms]]`` and ``[allocation]``.
    stream : callable
        ``stream(*path)`` gives a numpy Generator for a path of the replicate.
    """

    def __init__(self, scenario: Scenario, stream: Any) -> None:
        assert scenario.allocation is not None
        self.settings: Allocation = scenario.allocation
        self.block = block_of(tuple(a.ratio for a in scenario.arms), self.settings.block_size)
        self._stream = stream
        self._queues: dict[tuple[int, int], tuple[np.random.Generator, list[int]]] = {}

    def stratum(self, female: bool, age_years: float, fvc_percent: float, weight_kg: float) -> int:
        """The stratum index of a patient (0 when not stratified)."""
        s = self.settings
        index = 0
        for factor in s.stratify_by:
            value = {
                "sex": female,
                "age_over": age_years > s.age_cut_years,
                "fvc_under": fvc_percent < s.fvc_cut_percent,
                "weight_over": weight_kg > s.weight_cut_kg,
            }[factor]
            index = 2 * index + int(value)
        return index

    def next_arm(self, site: int, stratum: int) -> int:
        """The arm of the next patient enrolled at ``site`` in ``stratum``."""
        key = (site, stratum)
        entry = self._queues.get(key)
        if entry is None:
            entry = (self._stream("allocation", site, stratum), [])
            self._queues[key] = entry
        rng, queue = entry
        if not queue:
            queue.extend(reversed(rng.permutation(self.block).tolist()))
        return queue.pop()
