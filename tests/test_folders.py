"""Results folders that cannot be mixed: one command and one identity per folder, one writer.

Each failure the issue reported is reproduced here and now refused or kept apart:
``cohort`` after ``run`` overwrote the run's tables; ``run --set`` replaced the base
scenario's results; nothing locked a folder; an unreachable scheduler left a
checkpoint that blocked the retry.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim import load_scenario
from sim.cli import main
from sim.errors import DosesimError
from sim.results.folder import LOCK_FILE, ResultsFolder, default_folder, folder_lock, safe_name
from sim.runner import CHECKPOINT
from tests.conftest import BASE

RUN = ["run", str(BASE), "--replicates", "12", "--seed", "4", "--keep-patients", "2", "--quiet"]


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_default_folders_by_command_and_overrides() -> None:
    assert default_folder("run", "nct05129410") == Path("results/nct05129410/run")
    assert default_folder("cohort", "nct05129410") == Path("results/nct05129410/cohort")
    assert default_folder("forecast", "x", (), "2022-03-01") == Path(
        "results/x/forecast-2022-03-01"
    )
    one = default_folder("run", "x", ("prednisone.start_mg_per_kg=0.5",))
    two = default_folder("run", "x", ("prednisone.start_mg_per_kg=0.75",))
    assert one != two and one.parent.name.startswith("x-set-") and one.name == "run"


@pytest.mark.parametrize(
    "name", ["../../escaped", "/etc/passwd", "..", ".hidden", "a/b\\c", "Xi'an ward 3", ""]
)
def test_a_name_is_never_a_path(name: str) -> None:
    safe = safe_name(name)
    assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".")
    folder = default_folder("run", name)
    assert folder.parts[0] == "results" and len(folder.parts) == 3


def test_cohort_after_run_leaves_the_run_intact(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's own sequence: ``run`` then ``cohort`` on the same scenario, no --out."""
    assert main(RUN) == 0
    run_folder = Path("results/nct05129410/run")
    before = _bytes(run_folder)
    assert main(["cohort", str(BASE), "--patients", "30", "--seed", "1"]) == 0
    assert "results/nct05129410/cohort/patients.csv" in capsys.readouterr().out
    assert _bytes(run_folder) == before
    assert main(["report", str(run_folder)]) == 0  # every figure's data is the run's own
    page = (run_folder / "report.html").read_text()
    assert page.count("<img ") == 6 and "Not drawn" not in page


def test_run_with_set_writes_elsewhere_and_is_labelled(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(RUN) == 0
    base_folder = Path("results/nct05129410/run")
    before = _bytes(base_folder)
    assert main([*RUN, "--set", "prednisone.start_mg_per_kg=0.5"]) == 0
    out = capsys.readouterr().out
    assert "nct05129410 (modified by --set prednisone.start_mg_per_kg=0.5)" in out
    assert _bytes(base_folder) == before
    [other] = [p for p in Path("results").iterdir() if p.name.startswith("nct05129410-set-")]
    manifest = json.loads((other / "run" / "manifest.json").read_text())
    assert manifest["overrides"] == ["prednisone.start_mg_per_kg=0.5"]
    assert (
        manifest["command_line"][:2] == ["dosesim", "run"] and "--set" in manifest["command_line"]
    )
    page = (other / "run" / "report.html").read_text()
    assert "modified by --set prednisone.start_mg_per_kg=0.5" in page
    assert "Modified by --set" in page


def test_an_occupied_folder_is_refused_until_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    assert main([*RUN, "--out", str(out)]) == 0
    before = _bytes(out)
    # another run (seed, overrides) into the same folder: refused, nothing touched
    assert main([*RUN, "--out", str(out), "--seed", "5"]) == 2
    err = capsys.readouterr().err
    assert "holds the results of another dosesim run" in err and "seed 4 (now 5)" in err
    assert "--overwrite" in err and "Traceback" not in err
    assert main([*RUN, "--out", str(out), "--set", "mmf.target_g_per_day=1.5"]) == 2
    assert "overrides [] (now ['mmf.target_g_per_day=1.5'])" in capsys.readouterr().err
    # another command into the run's folder: refused
    assert main(["cohort", str(BASE), "--patients", "5", "--seed", "1", "--out", str(out)]) == 2
    assert "holds the results of dosesim run, not of dosesim cohort" in capsys.readouterr().err
    assert _bytes(out) == before
    # the same run again rewrites the same files (only the manifest's times differ)
    assert main([*RUN, "--out", str(out)]) == 0
    again = _bytes(out)
    for name in before:
        if name not in ("manifest.json", "report.html"):
            assert again[name] == before[name], name
    # --overwrite removes the old results first: no table of the old run is left behind
    assert main(["cohort", str(BASE), "--patients", "5", "--seed", "1", "--out", str(out),
                 "--overwrite"]) == 0  # fmt: skip
    left = sorted(p.name for p in out.iterdir())
    assert left == sorted(
        [LOCK_FILE, "dictionary.csv", "events.csv", "manifest.json", "patients.csv"]
    )


def test_a_folder_of_other_files_is_refused_even_with_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--overwrite`` never removes a file dosesim did not write, even one named like its own."""
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in (("notes.txt", "my notes"), ("events.csv", "mine"), ("summary.json", "{}")):
        (out / name).write_text(text)
    cohort = ["cohort", str(BASE), "--patients", "5", "--seed", "1", "--out", str(out)]
    assert main(cohort) == 2
    assert "holds files that dosesim did not write here (notes.txt)" in capsys.readouterr().err
    assert main([*cohort, "--overwrite"]) == 2
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "events.csv").read_text() == "mine" and (out / "summary.json").exists()


def test_an_older_dosesims_folder_and_leftovers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder of dosesim's names and no manifest (an older version's cohort) is replaced
    with --overwrite only; a temporary file left by a killed write is not in the way."""
    out = tmp_path / "old"
    out.mkdir()
    (out / "patients.csv").write_text("old")
    (out / "events.csv").write_text("old")
    cohort = ["cohort", str(BASE), "--patients", "5", "--seed", "1", "--out", str(out)]
    assert main(cohort) == 2
    assert "or add --overwrite to replace them" in capsys.readouterr().err
    assert main([*cohort, "--overwrite"]) == 0
    assert (out / "patients.csv").read_text() != "old"
    (out / ".manifest.json.x1y2.tmp").write_text("{half")  # a write killed before its rename
    assert main(cohort) == 0
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    (out / "manifest.json").write_text("{damaged")
    assert main(cohort) == 2
    assert "damaged" in (err := capsys.readouterr().err) and "--overwrite" in err
    assert main([*cohort, "--overwrite"]) == 0


def test_report_refuses_a_mixed_or_foreign_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    assert main([*RUN, "--out", str(out)]) == 0
    (out / "patients.csv").write_text((out / "patients.csv").read_text().replace("1", "2"))
    assert main(["report", str(out)]) == 2
    assert "patients.csv differs from the file this run wrote" in capsys.readouterr().err
    cohort = tmp_path / "c"
    assert main(["cohort", str(BASE), "--patients", "5", "--seed", "1", "--out", str(cohort)]) == 0
    assert main(["report", str(cohort)]) == 2
    assert "holds the results of dosesim cohort" in capsys.readouterr().err


def test_manifest_records_what_the_result_came_from(tmp_path: Path) -> None:
    variant = tmp_path / "v.toml"
    variant.write_text(f'extends = "{BASE.as_posix()}"\n[mmf]\ntarget_g_per_day = 1.5\n')
    out = tmp_path / "c"
    argv = ["cohort", str(variant), "--patients", "5", "--seed", "1", "--out", str(out),
            "--set", "prednisone.start_mg_per_kg=0.75"]  # fmt: skip
    assert main(argv) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["command"] == "cohort" and m["status"] == "complete"
    assert (m["executor"], m["workers"]) == ("this process", 1)
    assert m["command_line"] == ["dosesim", *argv]
    assert m["overrides"] == ["prednisone.start_mg_per_kg=0.75"]
    assert [f["path"] for f in m["scenario_files"]] == [str(variant), str(BASE)]
    assert set(m["files"]) == {"patients.csv", "events.csv", "dictionary.csv"}
    assert {"numpy", "scipy", "pandas", "simpy", "dosesim", "python"} <= set(m["versions"])
    assert m["platform"]["system"]


def test_a_locked_folder_is_refused_by_a_second_process(tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    with folder_lock(out):
        done = subprocess.run(
            [sys.executable, "-m", "sim", *RUN, "--out", str(out)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert "another dosesim process" in done.stderr and "Traceback" not in done.stderr
    assert not (out / CHECKPOINT).exists() and not (out / "manifest.json").exists()
    assert main([*RUN, "--out", str(out)]) == 0  # released: the same command now runs


def test_a_second_command_on_a_running_folder_exits_2(tmp_path: Path) -> None:
    """Two real processes: the second names the first's pid and leaves its files alone."""
    out = tmp_path / "r"
    first = subprocess.Popen(
        [sys.executable, "-m", "sim", "run", str(BASE), "--replicates", "3000", "--quiet",
         "--keep-patients", "0", "--out", str(out)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list((out / CHECKPOINT).glob("chunk_*.json")):
            assert first.poll() is None
            time.sleep(0.05)
        second = subprocess.run(
            [sys.executable, "-m", "sim", *RUN, "--out", str(out)],
            capture_output=True, text=True, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert second.returncode == 2
        assert f"another dosesim process (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()


def test_results_folder_api_refuses_and_clears(tmp_path: Path) -> None:
    ident = {"scenario_hash": "a" * 64, "seed": 1}
    with ResultsFolder(tmp_path / "x", "cohort", ident) as folder:
        folder.begin()
        folder.write_text("patients.csv", "a\n1\n")
        folder.complete()
    with pytest.raises(DosesimError, match="seed 1 \\(now 2\\)"):
        ResultsFolder(tmp_path / "x", "cohort", {**ident, "seed": 2}).open()
    with ResultsFolder(tmp_path / "x", "cohort", {**ident, "seed": 2}, overwrite=True) as folder:
        assert not (tmp_path / "x" / "patients.csv").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(DosesimError, match="is a file"):
        ResultsFolder(tmp_path / "file", "run", ident).open()


def test_an_unreachable_scheduler_fails_fast_and_the_retry_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("distributed")
    out = tmp_path / "r"
    started = time.monotonic()
    code = main([*RUN, "--out", str(out), "--scheduler", "tcp://127.0.0.1:9",
                 "--connect-timeout", "1"])  # fmt: skip
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2 and "tcp://127.0.0.1:9" in err and "within 1 s" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert elapsed < 1 + 20  # the timeout, plus importing Dask on a slow machine
    assert not out.exists() or not (out / CHECKPOINT).exists()
    assert main([*RUN, "--out", str(out)]) == 0  # the corrected retry starts


def test_a_malformed_scheduler_address_is_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*RUN, "--scheduler", "my-cluster"]) == 2
    err = capsys.readouterr().err
    assert "not a scheduler address" in err and "tcp://" in err and "Traceback" not in err


def test_load_scenario_records_files_and_overrides() -> None:
    s = load_scenario(BASE, ["prednisone.start_mg_per_kg=0.5"])
    assert s.files[0][0] == str(BASE) and len(s.files[0][1]) == 64
    assert s.overrides == ("prednisone.start_mg_per_kg=0.5",)
    assert s.label == "nct05129410 (modified by --set prednisone.start_mg_per_kg=0.5)"
    assert load_scenario(BASE).label == "nct05129410"
