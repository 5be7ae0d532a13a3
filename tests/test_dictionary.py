"""Every results folder carries a data dictionary that describes every column it wrote."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from sim.results.dictionary import DICTIONARY_COLUMNS, UNDESCRIBED, describe
from tests.conftest import REPO

SCENARIOS = REPO / "scenarios"


def _check(folder: Path) -> pd.DataFrame:
    """The folder's dictionary: one row per column of every CSV file, none undescribed."""
    table = pd.read_csv(folder / "dictionary.csv", keep_default_na=False)
    assert tuple(table.columns) == DICTIONARY_COLUMNS
    csvs = sorted(p.name for p in folder.glob("*.csv") if p.name != "dictionary.csv")
    assert csvs and sorted(set(table["file"])) == csvs
    for name in csvs:
        header = list(pd.read_csv(folder / name, nrows=0).columns)
        assert list(table.loc[table["file"] == name, "column"]) == header, name
    undescribed = table[table["label"] == UNDESCRIBED]
    assert undescribed.empty, undescribed[["file", "column"]].to_string()
    assert set(table["type"]) <= {"integer", "number", "text"}
    return table


def test_every_kind_of_folder_describes_every_column(tmp_path: Path) -> None:
    arms = SCENARIOS / "nct05129410_start_dose_arms.toml"
    cyc = SCENARIOS / "nct05129410_vs_cyc.toml"
    base = SCENARIOS / "nct05129410.toml"
    commands = {
        "run": ["run", str(arms), "--replicates", "4", "--keep-patients", "2", "--seed", "1"],
        "cohort": ["cohort", str(cyc), "--patients", "12", "--seed", "2"],
        "forecast": ["forecast", str(base), "--observed",
                     str(SCENARIOS / "example_observed_enrolment.csv"), "--as-of", "2022-03-01",
                     "--replicates", "10", "--seed", "3"],
        "compare": ["compare", str(base), "--vary", "prednisone.start_mg_per_kg=0.5,1.0",
                    "--replicates", "5"],
    }  # fmt: skip
    for kind, argv in commands.items():
        out = tmp_path / kind
        assert main([*argv, "--quiet", "--out", str(out)] if kind != "cohort" else
                    [*argv, "--out", str(out)]) == 0  # fmt: skip
        table = _check(out)
        if kind == "run":
            row = table[
                (table["file"] == "replicates.csv")
                & (table["column"] == "diff_low_fvc_change_mean")
            ]
            assert row["label"].item().startswith("arm low minus the reference: FVC")
            assert row["unit"].item() == "% predicted"
            nonmem = table[table["file"] == "nonmem.csv"].set_index("column")
            assert nonmem.loc["TIME", "unit"] == "h" and nonmem.loc["AMT", "unit"] == "mg"
        if kind == "cohort":  # the cyclophosphamide arm's drugs and heights
            assert "cumulative_cyclophosphamide_mg_week52" in set(table["column"])


@pytest.mark.parametrize(
    ("file", "column", "unit"),
    [
        ("patients", "cumulative_prednisone_mg_week52", "mg"),
        ("patients", "fvc_week13", "% predicted"),
        ("replicates", "median_cumulative_azathioprine_mg_week24", "mg"),
        ("replicates", "treg_ci_high", "% of CD4+"),
        ("replicates", "failed_age_out_of_range", "person"),
        ("nonmem", "WT", "kg"),
    ],
)
def test_names_and_patterns_give_units(file: str, column: str, unit: str) -> None:
    label, got, _ = describe(file, column)
    assert label != UNDESCRIBED and got == unit


def test_parquet_copies_carry_the_units(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="the parquet extra is not installed")
    out = tmp_path / "run"
    base = SCENARIOS / "nct05129410.toml"
    assert main(["run", str(base), "--replicates", "3", "--keep-patients", "1", "--seed", "1",
                 "--quiet", "--out", str(out)]) == 0  # fmt: skip
    schema = pq.read_schema(out / "patients.parquet")
    field = schema.field("cumulative_prednisone_mg_week52")
    assert field.metadata[b"unit"] == b"mg"
    assert b"cumulative prednisone" in field.metadata[b"label"]
    # the same values as the CSV
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "replicates.parquet"), pd.read_csv(out / "replicates.csv"),
        check_dtype=False,
    )  # fmt: skip
