"""The bounded fuzz in ``make test`` (the long one: ``python -m tests.fuzz --minutes 15``).

Random scenario mutations and odd option values through the command (tests/fuzz.py):
every case must exit 0 or 2, with no traceback, within its time limit. Then two
checks that the harness itself catches a traceback and a hang.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import fuzz


def test_bounded_fuzz_finds_no_traceback_and_no_hang(tmp_path: Path) -> None:
    outcome = fuzz.run_fuzz(tmp_path, seed=20261128, scenario_cases=300, option_cases=150)
    assert outcome.scenario_cases == 300 and outcome.option_cases == 150
    assert outcome.valid > 20  # some mutations are still valid scenarios, and were simulated
    assert not outcome.failures, "\n".join(outcome.failures[:10])


def test_the_harness_reports_a_traceback_and_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    import sim.cli

    def broken(argv: list[str]) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(sim.cli, "main", broken)
    status, _, detail = fuzz._call(["validate", "x.toml"], 5.0)
    assert status == "traceback" and "ZeroDivisionError" in detail

    def stuck(argv: list[str]) -> int:
        time.sleep(10)
        return 0

    monkeypatch.setattr(sim.cli, "main", stuck)
    started = time.monotonic()
    assert fuzz._call(["validate", "x.toml"], 0.3)[0] == "hang"
    assert time.monotonic() - started < 5
    assert fuzz._judge("ok", 1) == "status 1" and fuzz._judge("ok", 2) == "ok"
