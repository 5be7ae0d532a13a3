"""Notebook display: scenarios, schedules and run results render as HTML tables."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import sim
from sim import build_schedules, load_scenario, run
from tests.conftest import BASE


def test_html_representations() -> None:
    from sim.views.display import run_html, scenario_html, schedule_html

    scenario = load_scenario(BASE)
    text = scenario_html(scenario)
    assert "<table" in text and scenario.hash[:12] in text and "resolved TOML" in text
    pred = build_schedules(scenario, 60)["prednisone"]
    table = schedule_html(pred)
    assert table.count("<tr>") == len(pred.segments()) + 1
    assert "7,892.5" in table
    result = run(scenario, 6, seed=1, keep_patients=0)
    html = run_html(result)
    assert "6 replicates" in html and "MCSE" in html and "completed_fraction" in html


def test_an_ipython_shell_shows_the_objects_as_html() -> None:
    """What a notebook does: ``import sim`` registers the formatters with the running shell."""
    formatters = pytest.importorskip("IPython.core.formatters")
    html = formatters.HTMLFormatter()  # the shell's own formatter, without a shell's threads
    shell = SimpleNamespace(display_formatter=SimpleNamespace(formatters={"text/html": html}))
    assert sim.register_notebook_display(shell)
    scenario = load_scenario(BASE)
    assert scenario.hash[:12] in html(scenario)
    pred = build_schedules(scenario, 60)["prednisone"]
    assert "7,892.5" in html(pred)
    assert html(object()) is None  # only the registered types
    assert not hasattr(pred, "_repr_html_")  # the core knows nothing of its display


def test_cells_are_escaped() -> None:
    from sim.views.display import table_html

    text = table_html("<caption>", ["<h>"], [["<b>x</b>"]])
    assert "<b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text and "&lt;caption&gt;" in text
