"""What the ``dosesim`` command handlers share: exit statuses, option limits, helpers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CHANGED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "LIMITS",
    "execution_options",
    "folder_of",
    "scenario_head",
    "show_progress",
]

EXIT_OK, EXIT_CHANGED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143

#: The bounds every numeric option is checked against (the help states them).
LIMITS = {
    "weight_kg": (1.0, 500.0),
    "height_cm": (50.0, 250.0),
    "patients": (1, 1_000_000),
    "exposure_patients": (1, 10_000_000),
    "replicates": (1, 1_000_000),
    "seed": (0, 2**63 - 1),
    "workers": (1, 256),
    "connect_timeout_s": (0.1, 3600.0),
}


def show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def execution_options(args: argparse.Namespace, scheduler: Any) -> dict[str, Any]:
    """The options of where and how replicates run, as forecast, compare and run take them."""
    return {
        "workers": args.workers,
        "scheduler": scheduler,
        "level": args.interval,
        "progress": show_progress(args),
        "connect_timeout_s": args.connect_timeout,
    }


def scenario_head(scenario: Any) -> str:
    """The first words of every command's output: the scenario, marked if modified."""
    return f"{scenario.label} (sha256 {scenario.hash[:12]})"


def folder_of(
    args: argparse.Namespace, kind: str, scenario: Any, detail: str | None = None
) -> Path:
    from sim.results.folder import default_folder

    if args.out:
        return Path(args.out)
    return default_folder(kind, scenario.name, scenario.overrides, detail)
