"""Notebook display: scenarios, schedules and run results render as HTML tables."""

from __future__ import annotations

from sim import build_schedules, load_scenario, run
from tests.conftest import BASE


def test_html_representations() -> None:
    scenario = load_scenario(BASE)
    text = scenario._repr_html_()
    assert "<table" in text and scenario.hash[:12] in text and "resolved TOML" in text
    pred = build_schedules(scenario, 60)["prednisone"]
    table = pred._repr_html_()
    assert table.count("<tr>") == len(pred.segments()) + 1
    assert "7,892.5" in table
    result = run(scenario, 6, seed=1, keep_patients=0)
    html = result._repr_html_()
    assert "6 replicates" in html and "MCSE" in html and "completed_fraction" in html


def test_cells_are_escaped() -> None:
    from sim.display import table_html

    text = table_html("<caption>", ["<h>"], [["<b>x</b>"]])
    assert "<b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text and "&lt;caption&gt;" in text
