"""People prepared in blocks: start doses, PK and first event times, computed together.

Everything is per person, so blocks computed together or apart give the same
numbers; together, numpy's per-call costs are paid once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.draws import THRESHOLD_SLOTS
from sim.exposure import OralOneCompartment, etas_from_normals, pk_model
from sim.hazards import (
    Plan,
    plan_grids,
)
from sim.hazards.grids import HazardGrid
from sim.population import (
    People,
)

if TYPE_CHECKING:
    from sim.trial.context import TrialContext


@dataclass
class PreparedBlock:
    """A block's eligible people, ready to enrol: start doses, PK, first event times.

    The first crossing of every hazard is computed for the eligible people of
    one or many blocks at once (:func:`prepare_blocks`, :func:`sim.hazards.plan_grids`).
    """

    start_mg: np.ndarray
    declared: list[tuple[object, ...]]
    """Each eligible person's key of their ``[drugs]`` schedules (``TrialContext.declared``)."""
    mpa: OralOneCompartment
    prednisolone: OralOneCompartment | None
    """The block's prednisolone models, made when a table needs them."""
    targets: np.ndarray
    times: np.ndarray
    batch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None
    """The eligible people's grids from :func:`sim.hazards.plan_grids`: starts, ends, rates, cum."""
    index: np.ndarray
    """Each person's index into ``batch`` (-1 for the ineligible)."""
    pk_levels: np.ndarray | None = None
    """By ``index``: own multipliers at the MMF doses (``TemplateCache.level_multipliers``)."""

    def first_grid(self, grid_row: int) -> HazardGrid:
        """The first grid of the person on row ``grid_row`` of the batch (``index``)."""
        assert self.batch is not None
        starts, ends, rates, cum = self.batch
        j = grid_row
        return HazardGrid.of_arrays(starts[j], ends[j], rates[j], cum[j])


def prepare_blocks(
    ctx: TrialContext, blocks: Sequence[People], more_targets: np.ndarray | None = None
) -> list[PreparedBlock]:
    """Blocks of people ready to enrol, computed together: start doses, PK, first event times.

    Everything is per person (first crossings on padded plan grids, see
    :func:`sim.hazards.plan_grids`), so blocks computed together or apart are the
    same; together, the per-call costs of numpy are paid once. ``more_targets``:
    the first thresholds of hazards beyond the row's slots (one block only).
    """
    scenario = ctx.scenario
    assert scenario.exposure is not None
    hazards = ctx.hazards
    n_hazards = len(hazards)
    if len(blocks) == 1:
        people = blocks[0]
        weight, per_kg, normals = people.weight_kg, people.start_mg_per_kg, people.pk_normals
        thresholds, eligible, height = people.thresholds, people.eligible, people.height_cm
    else:
        if more_targets is not None:
            raise ValueError("more_targets goes with one block")
        weight = np.concatenate([b.weight_kg for b in blocks])
        per_kg = np.concatenate([b.start_mg_per_kg for b in blocks])
        normals = np.concatenate([b.pk_normals for b in blocks])
        thresholds = np.concatenate([b.thresholds for b in blocks])
        eligible = np.concatenate([b.eligible for b in blocks])
        height = np.concatenate([b.height_cm for b in blocks])
    n = weight.size
    rows = np.flatnonzero(eligible)
    weights, per_kgs = weight.tolist(), per_kg.tolist()
    start_of = {r: ctx.start_mg(weights[r], per_kgs[r]) for r in rows.tolist()}
    start = np.full(n, math.nan)
    start[rows] = list(start_of.values())
    declared: list[tuple[object, ...]] = [()] * n
    if scenario.drugs:
        heights = height.tolist()
        for r in rows.tolist():
            declared[r] = ctx.declared_key(weights[r], heights[r])
    mpa_params = scenario.exposure.mpa
    mpa = pk_model(mpa_params, weight, etas_from_normals(mpa_params, normals[:, :2]))
    targets = thresholds[:, :n_hazards].copy()
    if more_targets is not None:
        targets = np.concatenate((targets, more_targets), axis=1)
    elif n_hazards > THRESHOLD_SLOTS:
        raise ValueError(f"{n_hazards} hazards need more_targets beyond {THRESHOLD_SLOTS} slots")
    times = np.full((n, n_hazards), np.inf)
    batch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    index = np.full(n, -1)
    pk_levels = None
    if rows.size:
        if scenario.drugs:  # a plan per start dose and [drugs] schedules
            pairs = list(dict.fromkeys((start_of[r], declared[r]) for r in start_of))
            at_pair = {pair: g for g, pair in enumerate(pairs)}
            group = np.array([at_pair[(start_of[r], declared[r])] for r in start_of])
            plans = [
                ctx.plan(ctx.prednisone(mg), ctx.planned_mmf, declared=ctx.declared(key))
                for mg, key in pairs
            ]
        else:
            doses = sorted(set(start_of.values()))
            at = {mg: g for g, mg in enumerate(doses)}
            group = np.array([at[mg] for mg in start_of.values()])
            plans = [ctx.plan(ctx.prednisone(mg), ctx.planned_mmf) for mg in doses]
        pk = {"mmf": mpa.rows(rows)}
        covariates = {
            name: np.concatenate([b.covariate(name) for b in blocks])[rows, None]
            for name in ctx.shared_grids.parts.covariates
        }
        starts, ends, rates, cum, first = plan_grids(
            hazards,
            plans,
            group,
            pk,
            covariates,
            float(ctx.duration),
            ctx.shared_grids,
            targets[rows],
        )
        times[rows] = first
        batch, index[rows] = (starts, ends, rates, cum), np.arange(rows.size)
        pk_levels = ctx.shared_grids.level_multipliers(Plan(plans[0].schedules, pk, covariates))
    out = []
    offset = 0
    for b in blocks:  # each block's rows; the grids stay one batch, indexed by `index`
        end = offset + len(b)
        part = slice(offset, end)
        block_mpa = mpa if len(blocks) == 1 else mpa.part(part)
        out.append(
            PreparedBlock(
                start[part],
                declared[part],
                block_mpa,
                None,
                targets[part],
                times[part],
                batch,
                index[part],
                pk_levels,
            )
        )
        offset = end
    return out
