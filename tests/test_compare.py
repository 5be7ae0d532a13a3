"""Scenario comparison: common random numbers, paired differences, sweeps, the CLI command."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim.cli import main
from sim.compare import COLUMNS, Comparison, _stats, compare, sweep, sweep_name
from sim.scenario import load_scenario
from sim.views.plots import comparison_forest
from tests.conftest import BASE, SCENARIOS

LOW = SCENARIOS / "nct05129410_low_start.toml"
BURDEN = "median_cumulative_prednisone_mg_week52"


@pytest.fixture(scope="module")
def base_vs_low() -> Comparison:
    return compare([load_scenario(BASE), load_scenario(LOW)], replicates=40, seed=3)


def test_a_scenario_compared_with_itself_differs_by_exactly_zero() -> None:
    # Two independent loads and runs with the same seed: common random numbers.
    result = compare([load_scenario(BASE), load_scenario(BASE)], replicates=20, seed=5)
    assert result.scenarios == ["nct05129410", "nct05129410 (2)"]
    t = result.table
    assert list(t.columns) == list(COLUMNS)
    assert set(t["metric"]) >= {BURDEN, "completed_fraction", "ae_serious_infection"}
    second = t[t["scenario"] == "nct05129410 (2)"]
    assert len(second) == len(result.metrics)
    for col in ("difference", "paired_low", "paired_high", "unpaired_difference"):
        assert (second[col] == 0.0).all(), col
    first = t[t["scenario"] == "nct05129410"].set_index("metric")
    assert (second.set_index("metric")["mean"].equals(first["mean"])) is True
    # the unpaired interval does not know the runs are paired: it has width
    burden = second.set_index("metric").loc[BURDEN]
    assert burden["unpaired_high"] > 0 > burden["unpaired_low"]


def test_default_metrics_in_order(base_vs_low: Comparison) -> None:
    m = base_vs_low.metrics
    assert m[:6] == [
        BURDEN,
        "mean_cumulative_prednisone_mg_week52",
        "completed_fraction",
        "withdrawn",
        "died",
        "discontinued",
    ]
    # then the disease side (the base models it), the adverse events, the milestones
    disease = ["fvc_change_mean", "fvc_significant", "fvc_evaluable", "treg_change_mean"]
    assert m[6:10] == disease
    aes = [x for x in m if x.startswith("ae_")]
    assert aes == sorted(aes) and "ae_hyperglycaemia" in aes and "ae_ild_relapse" in aes
    assert m[10 : 10 + len(aes)] == aes
    assert m[10 + len(aes) :] == [
        "target_day_capped",
        "last_patient_in_day_if_reached",
        "last_patient_last_visit_day_if_reached",
        "target_reached",
        "completed_by_deadline",
    ]


def test_milestones_are_compared_as_a_planner_reads_them() -> None:
    """Replicates that never reach the target do not lend their last enrolment to 'last patient
    in': it is compared over the replicates where both scenarios reach the target, and the
    day the target is reached is capped at the enrolment deadline (a restricted mean)."""
    from sim.trial.milestones import milestone_columns

    table = pd.DataFrame(
        {
            "target_reached": [1, 0, 1],
            "last_patient_in_day": [100.0, 900.0, 300.0],
            "last_patient_last_visit_day": [464.0, 1264.0, 664.0],
        }
    )
    m = milestone_columns(table, 1000.0)
    assert list(m["target_day_capped"]) == [100.0, 1000.0, 300.0]
    assert m["last_patient_in_day_if_reached"].tolist()[::2] == [100.0, 300.0]
    assert np.isnan(m["last_patient_last_visit_day_if_reached"][1])


def test_paired_interval_narrower_than_unpaired(base_vs_low: Comparison) -> None:
    t = base_vs_low.table.set_index(["scenario", "metric"])
    for metric in (BURDEN, "mean_cumulative_prednisone_mg_week52"):
        row = t.loc[("nct05129410_low_start", metric)]
        paired = row["paired_high"] - row["paired_low"]
        unpaired = row["unpaired_high"] - row["unpaired_low"]
        assert 0 < paired < unpaired, metric
        assert row["difference"] < 0  # 0.5 mg/kg starts lower than 1.0 mg/kg
        assert row["paired_high"] < 0


def test_difference_is_the_mean_of_the_per_replicate_differences(
    base_vs_low: Comparison,
) -> None:
    base = base_vs_low.results["nct05129410"].replicates.set_index("replicate")[BURDEN]
    low = base_vs_low.results["nct05129410_low_start"].replicates.set_index("replicate")[BURDEN]
    d = (low - base).dropna()
    row = base_vs_low.table.set_index(["scenario", "metric"]).loc[("nct05129410_low_start", BURDEN)]
    assert row["n_pairs"] == len(d)
    assert row["difference"] == pytest.approx(d.mean(), rel=1e-12)
    assert row["unpaired_difference"] == pytest.approx(low.mean() - base.mean(), rel=1e-12)


def test_stats_drop_pairs_with_a_nan() -> None:
    index = pd.Index([0, 1, 2, 3], name="replicate")
    x = pd.Series([1.0, 2.0, math.nan, 4.0], index=index)
    ref = pd.Series([0.0, 1.0, 1.0, math.nan], index=index)
    s = _stats(x, ref)
    assert (s["n"], s["n_pairs"]) == (3, 2)
    assert s["mean"] == pytest.approx(7 / 3)
    assert (s["difference"], s["paired_low"], s["paired_high"]) == (1.0, 1.0, 1.0)
    assert s["unpaired_difference"] == pytest.approx(7 / 3 - 2 / 3)


def test_stats_match_scipy_intervals() -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(10, 3, 30)
    x = ref + rng.normal(1, 0.5, 30)
    for level in (0.9, 0.95):
        s = _stats(pd.Series(x), pd.Series(ref), level)
        paired = stats.ttest_rel(x, ref).confidence_interval(level)
        welch = stats.ttest_ind(x, ref, equal_var=False).confidence_interval(level)
        assert (s["paired_low"], s["paired_high"]) == pytest.approx(tuple(paired), rel=1e-9)
        assert (s["unpaired_low"], s["unpaired_high"]) == pytest.approx(tuple(welch), rel=1e-9)
        assert s["level"] == level


def test_sweep_names_and_values() -> None:
    base = load_scenario(BASE)
    variants = sweep(base, "prednisone.start_mg_per_kg", [0.5, 0.75, 1.0])
    assert [v.name for v in variants] == [
        "start_mg_per_kg=0.5",
        "start_mg_per_kg=0.75",
        "start_mg_per_kg=1.0",
    ]
    assert [v.prednisone.start_mg_per_kg for v in variants] == [0.5, 0.75, 1.0]
    assert variants[2].hash == base.hash  # only the name differs, and it is not hashed
    assert variants[0].mmf == base.mmf
    assert sweep_name("prednisone.stages[1].days", 70) == "days=70"
    assert sweep_name("x.flag", True) == "flag=true"


def test_forest_figure_has_a_panel_per_metric(base_vs_low: Comparison) -> None:
    fig = comparison_forest(base_vs_low, metrics=[BURDEN, "completed_fraction"])
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == [BURDEN, "completed_fraction"]


def test_cli_sweep_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "compare",
        str(BASE),
        "--vary",
        "prednisone.start_mg_per_kg=0.5,1.0",
        "--replicates",
        "8",
        "--seed",
        "2",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "differences to start_mg_per_kg=0.5" in out and BURDEN in out
    rows = list(csv.DictReader((tmp_path / "out" / "comparison.csv").open()))
    assert list(rows[0]) == list(COLUMNS)
    assert {r["scenario"] for r in rows} == {"start_mg_per_kg=0.5", "start_mg_per_kg=1.0"}
    png = (tmp_path / "out" / "comparison_forest.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_cli_two_scenarios_with_set(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", str(BASE), str(LOW), "--replicates", "4", "--set", "mmf.doses_per_day=3"]
    assert main(argv) == 0
    assert "nct05129410_low_start" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare"], "one or more scenario"),
        (["compare", str(BASE)], "nothing to compare"),
        (["compare", str(BASE), str(LOW), "--vary", "prednisone.start_mg_per_kg=0.5"], "one"),
        (["compare", str(BASE), "--vary", "prednisone.start_mg_per_kg"], "KEY.PATH=V1,V2"),
        (["compare", str(BASE), "--vary", "=0.5,1"], "KEY.PATH=V1,V2"),
        (["compare", str(BASE), "--vary", "prednisone.start_mg_per_kg=0.5,,1"], "empty"),
        (["compare", str(BASE), "--vary", "prednisone.start_mg_per_kg=0.5,0.5"], "repeated"),
        (
            ["compare", str(BASE), "--vary", "prednisone.start_mg_per_kg=0.5,9"],
            "--vary: prednisone",
        ),
        (["compare", str(BASE), "nope.toml"], "no such file"),
    ],
)
def test_cli_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--replicates", "2"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
