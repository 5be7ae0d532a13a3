"""The comparison's report: each scenario's values, the differences, what differs between the
scenarios, the schedules side by side, regenerated from the folder by `dosesim report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.cli import main
from sim.compare import compare, differing_settings, sweep
from sim.results.comparison_files import load_comparison
from sim.scenario import load_scenario
from sim.views import compare_plots
from tests.browser import CHROMIUM, SKIP_REASON, check_in_chromium
from tests.conftest import BASE, SCENARIOS

LOW = SCENARIOS / "nct05129410_low_start.toml"
ARMS = SCENARIOS / "nct05129410_start_dose_arms.toml"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "c"
    argv = ["compare", str(BASE), str(LOW), "--replicates", "30", "--seed", "4",
            "--keep-patients", "12", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


def _text(page: str) -> str:
    return re.sub(r"<[^>]+>", " ", page)


def test_the_folder_keeps_each_scenarios_tables(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    for k in (1, 2):
        replicates = pd.read_csv(folder / f"scenario{k}_replicates.csv")
        assert list(replicates["replicate"]) == list(range(30))
        patients = pd.read_csv(folder / f"scenario{k}_patients.csv")
        assert set(patients["replicate"]) <= set(range(12))
        assert f"scenario{k}_events.csv" in manifest["files"]
    assert manifest["scenario_labels"] == ["nct05129410", "nct05129410_low_start"]
    assert manifest["identity"]["keep_patients"] == 12
    # the report is made from the folder: it is not one of the files the manifest vouches for
    assert "report.html" not in manifest["files"]


def test_the_report_shows_both_schedules_and_what_differs(folder: Path) -> None:
    page = (folder / "report.html").read_text()
    text = _text(page)
    for heading in ("Results per scenario", "Differences to nct05129410", "Settings that differ",
                    "Planned schedules", "Manifest", "Scenarios, resolved"):  # fmt: skip
        assert heading in text, heading
    # the two start doses, side by side in the table of differing settings
    row = re.search(
        r"<tr><td>prednisone\.start_mg_per_kg</td><td>([^<]*)</td><td>([^<]*)</td>", page
    )
    assert row is not None and row.groups() == ("1.0", "0.5")
    assert page.count("<img ") == 7  # a one-setting difference: drawn against it too
    assert "Against prednisone.start_mg_per_kg" in page
    # each scenario's hash
    for path in (BASE, LOW):
        assert load_scenario(path).hash[:16] in page


def test_results_per_scenario_are_the_replicates_summarised(folder: Path) -> None:
    """The absolute table's mean and central 90 % of trials, recomputed from the files."""
    page = (folder / "report.html").read_text()
    reps = pd.read_csv(folder / "scenario2_replicates.csv")
    x = reps["median_cumulative_prednisone_mg_week52"].to_numpy(dtype=float)
    x = x[np.isfinite(x)]  # a trial with no patient at week 52 has no median
    lo, hi = np.quantile(x, [0.05, 0.95])
    expected = f"{x.mean():,.0f} ({lo:,.0f} to {hi:,.0f})"
    assert expected in page


def test_every_row_of_the_results_table_has_a_value_per_scenario(folder: Path) -> None:
    page = (folder / "report.html").read_text()
    section = page.split("Results per scenario</h2>", 1)[1].split("<h2", 1)[0]
    body = section.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body)
    assert rows and all(row.count("<td>") == 3 for row in rows)
    # a share per trial (of the enrolled who completed) in per cent, from the files
    reps = pd.read_csv(folder / "scenario1_replicates.csv")
    x = reps["completed_fraction"].dropna().to_numpy(dtype=float)
    lo, hi = np.quantile(x, [0.05, 0.95])
    shown = f"{100 * x.mean():.0f} % ({100 * lo:.0f} to {100 * hi:.0f} %)"
    assert f"<td>Share of the enrolled who completed</td><td>{shown}</td>" in body


def test_side_by_side_schedules_have_a_column_per_scenario() -> None:
    comparison = compare(
        [load_scenario(BASE), load_scenario(ARMS)], replicates=4, seed=1, keep_patients=0
    )
    fig = compare_plots.schedules_side_by_side(comparison)
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()]
    assert titles == [
        "nct05129410: prednisone",
        "nct05129410_start_dose_arms: prednisone",
        "nct05129410: mmf",
        "nct05129410_start_dose_arms: mmf",
    ]
    # the randomised scenario's panel has a line per arm (and weight group)
    legend = fig.axes[1].get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert any(t.startswith("high,") for t in labels) and any(t.startswith("low,") for t in labels)


def test_report_regenerates_from_the_folder(folder: Path, tmp_path: Path) -> None:
    comparison, _ = load_comparison(folder)
    table = pd.read_csv(folder / "comparison.csv")
    pd.testing.assert_frame_equal(comparison.table.reset_index(drop=True), table, rtol=1e-12)
    out = tmp_path / "again.html"
    assert main(["report", str(folder), "-o", str(out), "--interval", "80"]) == 0
    page = out.read_text()
    assert "80 %" in page and "Settings that differ" in page
    assert (folder / "report.html").read_text() != page


def test_a_sweep_is_drawn_against_its_setting(tmp_path: Path) -> None:
    """A one-way sweep's report has the response figure; its points are the compared means."""
    base = load_scenario(BASE)
    variants = sweep(base, "prednisone.start_mg_per_kg", [1.0, 0.5, 0.75])
    comparison = compare(variants, replicates=6, seed=2, keep_patients=0)
    assert compare_plots.swept_setting(comparison) == (
        "prednisone.start_mg_per_kg",
        [1.0, 0.5, 0.75],
    )
    fig = compare_plots.sweep_response(comparison, "prednisone.start_mg_per_kg", [1.0, 0.5, 0.75])
    ax = fig.axes[0]
    assert ax.get_title(loc="left") == "Median cumulative prednisone at week 52"
    x, y = ax.get_lines()[0].get_data()
    assert list(x) == [0.5, 0.75, 1.0]  # in the order of the values
    t = comparison.table
    means = t[t["metric"] == "median_cumulative_prednisone_mg_week52"].set_index("scenario")["mean"]
    expected = [means[f"start_mg_per_kg={v}"] for v in (0.5, 0.75, 1.0)]
    np.testing.assert_allclose(y, expected)
    # two settings differ: not a sweep
    two = sweep(base, "mmf.target_g_per_day", [2.0, 1.5])
    mixed = compare([variants[1], two[1]], replicates=2, seed=2, keep_patients=0)
    assert compare_plots.swept_setting(mixed) is None


def test_keeping_patients_changes_no_compared_number() -> None:
    scenarios = [load_scenario(BASE), load_scenario(LOW)]
    none = compare(scenarios, replicates=6, seed=2, keep_patients=0)
    some = compare(scenarios, replicates=6, seed=2, keep_patients=3)
    pd.testing.assert_frame_equal(none.table, some.table)
    assert not none.results["nct05129410"].kept
    assert set(some.results["nct05129410"].kept) == {"patients", "events"}


def test_a_changed_file_is_refused(folder: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with (copy / "scenario2_replicates.csv").open("a") as f:
        f.write("\n")
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "scenario2_replicates.csv differs" in err and "Traceback" not in err


def test_a_comparison_of_an_earlier_dosesim_is_explained(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith("scenario")}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", str(copy)]) == 2
    assert "run dosesim compare again" in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_comparison_report_in_headless_chromium(folder: Path, tmp_path: Path) -> None:
    check_in_chromium(folder / "report.html", tmp_path)


# -- the settings that differ ---------------------------------------------------

_leaf = st.one_of(st.integers(-5, 5), st.floats(0, 10, allow_nan=False), st.text("ab", max_size=3))
_tables = st.recursive(
    st.dictionaries(st.sampled_from("xyz"), _leaf, min_size=1, max_size=3),
    lambda inner: st.dictionaries(st.sampled_from("pqr"), inner, min_size=1, max_size=3),
    max_leaves=8,
)


@given(_tables)
def test_identical_scenarios_differ_in_nothing(data: dict[str, object]) -> None:
    assert differing_settings([data, json.loads(json.dumps(data))]) == []


@given(_tables, st.data())
def test_one_changed_setting_is_the_one_found(data: dict[str, object], draw: st.DataObject) -> None:
    paths = []

    def walk(d: dict[str, object], prefix: str) -> None:
        for k, v in d.items():
            path = f"{prefix}.{k}" if prefix else k
            walk(v, path) if isinstance(v, dict) else paths.append(path)

    walk(data, "")
    path = draw.draw(st.sampled_from(paths))
    changed = json.loads(json.dumps(data))
    node = changed
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = "changed"
    found = differing_settings([data, changed])
    assert [key for key, _ in found] == [path]
    assert found[0][1][1] == "changed"


def test_lists_of_tables_are_compared_by_index() -> None:
    a = {"name": "a", "sites": [{"rate": 1.0}, {"rate": 2.0}]}
    b = {"name": "b", "sites": [{"rate": 1.0}, {"rate": 3.0}, {"rate": 4.0}]}
    assert differing_settings([a, b]) == [
        ("sites[1].rate", [2.0, 3.0]),
        ("sites[2].rate", [None, 4.0]),
    ]
