"""The replicate runner: identical results for any executor, resume after a kill, MCSE."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim import load_scenario
from sim.cli import main
from sim.errors import DosesimError
from sim.runner import CHECKPOINT, run
from tests.conftest import BASE, REPO

SCENARIO = load_scenario(BASE)
COMPARED = ("replicates.csv", "sites.csv", "summary.json", "patients.csv", "events.csv",
            "dosing_nonmem.csv", "ex.csv", "ae.csv", "ds.csv")  # fmt: skip
# how and when a run was made, not what it holds
_HOW = ("started", "finished", "time_seconds", "command_line", "executor", "workers", "scheduler")


def _same_files(a: Path, b: Path) -> None:
    for name in COMPARED:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    for key in _HOW:
        ma.pop(key, None), mb.pop(key, None)
    for m in (ma, mb):  # the scenario file as the command named it; its content must agree
        m["scenario_files"] = [f["sha256"] for f in m["scenario_files"]]
        m.pop("scenario_source")
    assert ma == mb
    assert set(ma["files"]) >= set(COMPARED)  # every file's sha256 is recorded


def test_identical_results_for_one_two_workers_and_dask(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    kwargs = {"replicates": 48, "seed": 11, "keep_patients": 4, "chunk_size": 6}
    run(SCENARIO, workers=1, out=tmp_path / "one", **kwargs)
    run(SCENARIO, workers=2, out=tmp_path / "two", **kwargs)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        run(SCENARIO, scheduler=client, out=tmp_path / "dask", **kwargs)
    _same_files(tmp_path / "one", tmp_path / "two")
    _same_files(tmp_path / "one", tmp_path / "dask")
    assert not (tmp_path / "one" / CHECKPOINT).exists()


def test_results_folder_contents(tmp_path: Path) -> None:
    result = run(SCENARIO, 30, seed=2, out=tmp_path / "r", keep_patients=3)
    table = pd.read_csv(tmp_path / "r" / "replicates.csv")
    assert len(table) == 30 and list(table["replicate"]) == list(range(30))
    for col in ("screened", "enrolled", "screen_failures", "first_patient_in_day",
                "first_patient_in_date", "last_patient_in_date", "last_patient_last_visit_day",
                "completed", "withdrawn", "died", "discontinued",
                "mean_cumulative_prednisone_mg_week52", "median_cumulative_prednisone_mg_week52",
                "ae_serious_infection", "ae_gi_intolerance"):  # fmt: skip
        assert col in table.columns, col
    patients = pd.read_csv(tmp_path / "r" / "patients.csv")
    assert set(patients["replicate"]) == {0, 1, 2}
    assert "enrolled_site_0" in table.columns  # sites by index; names are in sites.csv
    sites = pd.read_csv(tmp_path / "r" / "sites.csv")
    assert list(sites["index"]) == [0] and list(sites["name"]) == ["Xi'an"]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    entry = summary["metrics"]["completed_fraction"]
    assert set(entry) == {"n", "mean", "mcse", "p5", "p25", "median", "p75", "p95", "low", "high"}
    assert (entry["low"], entry["high"]) == (entry["p5"], entry["p95"])  # 90 %: 5-95
    # and the primary analysis's power: the share of significant replicates
    assert set(summary["probabilities"]) == {
        "target_reached",
        "completed_by_deadline",
        "fvc_significant",
    }
    assert summary["level"] == 0.9 and summary["milestones"]["target"] == 20
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["command"] == "run" and manifest["status"] == "complete"
    assert manifest["scenario_hash"] == SCENARIO.hash and manifest["seed"] == 2
    assert manifest["replicates"] == 30 and "numpy" in manifest["versions"]
    assert manifest["platform"]["python_implementation"] and manifest["overrides"] == []
    assert manifest["scenario"]["recruitment"]["start_date"] == "2020-12-01"
    assert [f["path"] for f in manifest["scenario_files"]] == [str(BASE)]
    assert manifest["executor"] == "this process"
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((tmp_path / "r" / name).read_bytes()).hexdigest() == digest
    assert result.summary == summary
    for name in ("dosing_nonmem", "ex", "ae", "ds"):
        assert (tmp_path / "r" / f"{name}.csv").exists()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_kill_and_resume_gives_the_uninterrupted_files(tmp_path: Path, sig: int) -> None:
    """Interrupt a run mid-way, resume it, compare every file with an uninterrupted run."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "sim", "run", str(BASE), "--replicates", "160", "--seed", "5",
           "--keep-patients", "3", "--quiet", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / CHECKPOINT).glob("chunk_*.json"))) < 2:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    proc.send_signal(sig)
    code = proc.wait()
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    done_before = len(list((out / CHECKPOINT).glob("chunk_*.json")))
    assert 2 <= done_before < 8  # 160 replicates in chunks of 20
    assert not (out / "replicates.csv").exists()  # nothing half-written
    assert main([*cmd[3:], "--resume"]) == 0
    run(SCENARIO, 160, seed=5, keep_patients=3, out=tmp_path / "whole")
    _same_files(out, tmp_path / "whole")


def test_resume_refuses_another_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    (out / CHECKPOINT).mkdir(parents=True)
    marker = {"scenario_hash": SCENARIO.hash, "scenario_name": "nct05129410", "seed": 1,
              "replicates": 20, "keep_patients": 20, "chunk_size": 10}  # fmt: skip
    (out / CHECKPOINT / "run.json").write_text(json.dumps(marker))
    args = ["run", str(BASE), "--replicates", "20", "--out", str(out), "--quiet"]
    assert main([*args, "--seed", "2", "--resume"]) == 2
    assert "seed 1 (now 2)" in capsys.readouterr().err
    other = load_scenario(BASE, {"mmf.target_g_per_day": 1.5})
    with pytest.raises(DosesimError, match="scenario_hash"):
        run(other, 20, seed=1, out=out, resume=True)
    assert main([*args, "--seed", "1"]) == 2  # an interrupted run is there: say so
    assert "--resume" in capsys.readouterr().err
    with pytest.raises(DosesimError, match="no interrupted run"):
        run(SCENARIO, 20, seed=1, out=tmp_path / "empty", resume=True)


def test_monte_carlo_standard_errors_shrink_as_one_over_root_n() -> None:
    """MCSE = sd / sqrt(N): quadrupling N halves it (the sd estimates vary a little)."""
    small = run(SCENARIO, 60, seed=9, keep_patients=0, workers=2)
    large = run(SCENARIO, 240, seed=9, keep_patients=0, workers=2)
    for key in ("completed_fraction", "patient_years", "last_patient_in_day"):
        ratio = small.summary["metrics"][key]["mcse"] / large.summary["metrics"][key]["mcse"]
        assert 1.5 < ratio < 2.7, (key, ratio)
    p_small = small.summary["probabilities"]["target_reached"]["mcse"]
    p_large = large.summary["probabilities"]["target_reached"]["mcse"]
    assert 1.5 < p_small / p_large < 2.7


def test_run_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", str(BASE), "--replicates", "20", "--seed", "3", "--out", str(tmp_path / "x"),
            "--keep-patients", "all", "--quiet"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "steroid burden" in out and "retention" in out and "last patient in median" in out
    assert "day the target is reached: median" in out
    assert len(set(pd.read_csv(tmp_path / "x" / "patients.csv")["replicate"])) == 20
    assert main([*args[:-3], "--keep-patients", "some"]) == 2
