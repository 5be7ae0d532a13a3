"""Shared fixtures: paths to the repository's scenarios and a builder of scenario dicts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "scenarios"
BASE = SCENARIOS / "nct05129410.toml"

# A minimal valid scenario as plain data; tests copy and edit it.
MINIMAL: dict[str, Any] = {
    "name": "minimal",
    "treatment": {"duration_days": 364},
    "prednisone": {
        "start_mg_per_kg": 1.0,
        "round_to_mg": 5.0,
        "max_start_mg": 60.0,
        "initial_hold_days": 28,
        "stages": [
            {"kind": "taper", "step_mg": 5.0, "every_days": 14, "floor_mg": 10.0},
            {"kind": "hold", "days": 91},
        ],
        "maintenance_mg_per_day": 7.5,
    },
    "mmf": {
        "target_g_per_day": 2.0,
        "doses_per_day": 2,
        "titration": [{"g_per_day": 1.0, "days": 14}, {"g_per_day": 1.5, "days": 14}],
    },
}


@pytest.fixture
def minimal() -> dict[str, Any]:
    """A fresh deep copy of :data:`MINIMAL` to edit."""
    return copy.deepcopy(MINIMAL)


@pytest.fixture(autouse=True)
def _work_in_a_fresh_folder(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test starts in an empty folder of its own: a command's default results folder
    (``results/...``) never lands in the repository. Tests that need the repository as the
    working folder say so with ``monkeypatch.chdir(REPO)``."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
