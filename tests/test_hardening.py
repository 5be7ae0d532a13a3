"""Issue 14's reproducers: every bad input is a message, nothing escapes its folder,
nothing hangs, a resume never runs code. One test (or a parametrised group) per
numbered defect; each asserts exit status 2 and one line per problem, or the
intended result, and no traceback. Commands that used to hang run in a subprocess
with a time limit far above what they now take (a no-hang check, not a speed one).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sim import load_scenario, run
from sim.cli import main
from sim.runner import CHECKPOINT
from tests.conftest import BASE, SCENARIOS

OBSERVED = SCENARIOS / "example_observed_enrolment.csv"
NO_HANG_S = 120


def _dosesim(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=NO_HANG_S,
        check=False,
    )


def _clean_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(("error:", "usage:")), done.stderr
    return done.stderr


# 1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/escaped-abs", "..", "a/../../b"])
def test_1_a_scenario_name_never_leaves_results(tmp_path: Path, name: str) -> None:
    here = Path.cwd()
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "v.toml").write_text(f'extends = "{BASE.as_posix()}"\nname = "{name}"\n')
    before = set(here.parent.iterdir())
    assert main(["cohort", str(work / "v.toml"), "--patients", "3", "--seed", "1"]) == 0
    argv = ["cohort", str(BASE), "--patients", "3", "--seed", "1", "--set", f"name={name!r}"]
    assert main(argv) == 0
    # where an unsanitised name would have landed: beside or above the working folder
    assert set(here.parent.iterdir()) == before
    assert not Path("/tmp/escaped-abs").exists() and not (here / "b").exists()
    written = list(here.rglob("patients.csv"))
    assert len(written) == 2 and all(p.relative_to(here).parts[0] == "results" for p in written)


# 2 ---------------------------------------------------------------------------------


class _Payload:
    """What a crafted pickle would run: it writes a file."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self) -> tuple:  # type: ignore[type-arg]
        return (Path.write_text, (Path(self.target), "pwned"))


def _interrupted(tmp_path: Path, replicates: int = 40) -> tuple[Path, list[str]]:
    """An interrupted run on one process: its first chunk checkpointed, the rest not."""
    from sim.results.checkpoint import Checkpoint
    from sim.runner import _run_chunk

    out = tmp_path / "r"
    args = ["run", str(BASE), "--replicates", str(replicates), "--seed", "2", "--quiet",
            "--out", str(out)]  # fmt: skip
    scenario = load_scenario(BASE)
    size = max(10, -(-replicates // 8))  # one process's default chunk size
    out.mkdir()
    identity = {
        "scenario_hash": scenario.hash,
        "scenario_name": scenario.name,
        "overrides": [],
        "seed": 2,
        "replicates": replicates,
        "keep_patients": min(100, replicates),
    }
    cp = Checkpoint(out)
    cp.open(identity, scenario.to_dict_json(), False, size, None)
    cp.save(_run_chunk(scenario, 2, min(100, replicates), 0, size))
    return out, args


def test_2_a_crafted_checkpoint_is_refused_and_never_run(tmp_path: Path) -> None:
    out, args = _interrupted(tmp_path)
    target = tmp_path / "pwned.txt"
    (out / CHECKPOINT / "chunk_000000010.pkl").write_bytes(pickle.dumps(_Payload(str(target))))
    done = _dosesim([*args, "--resume"], tmp_path)
    assert "not dosesim's" in _clean_error(done) and not target.exists()
    (out / CHECKPOINT / "chunk_000000010.pkl").unlink()
    chunk = out / CHECKPOINT / "chunk_000000000.json"
    chunk.write_bytes(chunk.read_bytes().replace(b'"first":0', b'"first":00'))
    assert "another sha256" in _clean_error(_dosesim([*args, "--resume"], tmp_path))


def test_2_a_damaged_or_linked_checkpoint_is_a_message(tmp_path: Path) -> None:
    out, args = _interrupted(tmp_path)
    (out / CHECKPOINT / "run.json").write_text("{not json")
    assert "damaged" in _clean_error(_dosesim([*args, "--resume"], tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(out / CHECKPOINT)
    (out / CHECKPOINT).symlink_to(elsewhere, target_is_directory=True)
    assert "symbolic link" in _clean_error(_dosesim([*args, "--resume"], tmp_path))
    assert _dosesim([*args, "--overwrite"], tmp_path).returncode == 0  # the link is removed
    assert not list(elsewhere.iterdir())  # nothing was ever written into the linked folder


def test_2_a_resume_across_worker_counts_gives_the_same_files(tmp_path: Path) -> None:
    """12 too: interrupted on one process (chunks of 50 for 400 replicates), resumed on two
    (whose own chunks would be 25): the run keeps its chunks and writes the same files."""
    out, args = _interrupted(tmp_path, replicates=400)
    assert main([*args, "--resume", "--workers", "2"]) == 0
    whole = tmp_path / "whole"
    run(load_scenario(BASE), 400, seed=2, out=whole, workers=2)
    for name in ("replicates.csv", "patients.csv", "events.csv", "ex.csv"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
    assert json.loads((out / "manifest.json").read_text())["chunk_size"] == 50


# 3, 4, 5 ----------------------------------------------------------------------------


def test_3_a_tiny_taper_step_ends_with_the_treatment(tmp_path: Path) -> None:
    done = _dosesim(
        ["schedule", str(BASE), "--weight-kg", "60", "--set", "prednisone.stages[0].step_mg=1e-7"],
        tmp_path,
    )
    assert done.returncode == 0 and "0-363" in done.stdout  # 60 mg for a year: steps too small


def test_4_a_forecast_where_nobody_can_be_eligible_is_a_message(tmp_path: Path) -> None:
    done = _dosesim(
        ["forecast", str(BASE), "--observed", str(OBSERVED), "--as-of", "2022-03-01",
         "--set", "eligibility.age_min_years=90", "--set", "eligibility.age_max_years=120"],
        tmp_path,
    )  # fmt: skip
    assert "nobody screened can be eligible" in _clean_error(done)
    late = ["run", str(BASE), "--set", "recruitment.sites[0].activation_day=5000"]
    assert "would never screen anyone" in _clean_error(_dosesim(late, tmp_path))


def test_5_an_uncapped_weighted_cumulative_dose_computes(tmp_path: Path) -> None:
    variant = tmp_path / "wcd.toml"
    variant.write_text(
        f'extends = "{BASE.as_posix()}"\n[[adverse_events.hyperglycaemia.multipliers]]\n'
        'driver = "weighted_cumulative_dose"\nbeta_per_mg_day = 1.0\ntau1_days = 30.0\n'
        "tau2_days = 300.0\nweight2 = 0.5\n"
    )
    done = _dosesim(["cohort", str(variant), "--patients", "10", "--seed", "1"], tmp_path)
    assert done.returncode == 0, done.stderr
    absurd = tmp_path / "absurd.toml"
    absurd.write_text(
        f'extends = "{BASE.as_posix()}"\n[adverse_events.hyperglycaemia]\n'
        "baseline_per_year = 1000.0\n[[adverse_events.hyperglycaemia.multipliers]]\n"
        'driver = "prednisone_dose"\nper_10_mg = 1000.0\n'
    )
    done = _dosesim(["cohort", str(absurd), "--patients", "2", "--seed", "1"], tmp_path)
    assert "fired 10,000 times for one patient" in _clean_error(done)


# 6, 7 ------------------------------------------------------------------------------


def _files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    (tmp_path / "nul.toml").write_text('extends = "base.toml\\u0000"\n')
    out["nul byte in extends"] = tmp_path / "nul.toml"
    (tmp_path / "long.toml").write_text(f'extends = "{"a" * 300}.toml"\n')
    out["file name too long"] = tmp_path / "long.toml"
    (tmp_path / "loop1.toml").symlink_to(tmp_path / "loop2.toml")
    (tmp_path / "loop2.toml").symlink_to(tmp_path / "loop1.toml")
    out["symlink loop"] = tmp_path / "loop1.toml"
    for depth in (400, 600):
        (tmp_path / f"deep{depth}.toml").write_text("a = " + "[" * depth + "]" * depth + "\n")
        out[f"nested {depth} deep"] = tmp_path / f"deep{depth}.toml"
    out["/dev/zero"] = Path("/dev/zero")
    os.mkfifo(tmp_path / "fifo.toml")
    out["a FIFO"] = tmp_path / "fifo.toml"
    (tmp_path / "c0.toml").write_text(f'extends = "{BASE.as_posix()}"\n')
    for i in range(1, 990):
        (tmp_path / f"c{i}.toml").write_text(f'extends = "c{i - 1}.toml"\n')
    out["a chain of 990 extends"] = tmp_path / "c989.toml"
    (tmp_path / "big.toml").write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    out["2 MiB"] = tmp_path / "big.toml"
    return out


def test_6_odd_scenario_files_are_problems_not_tracebacks(tmp_path: Path) -> None:
    files = _files(tmp_path)
    done = _dosesim(["validate", *map(str, files.values())], tmp_path)
    err = _clean_error(done)
    assert err.count("error: ") == len(files), err
    for rule in ("is not a usable file name", "nest at most 16 levels", "not a regular file",
                 "more than 32 files extend", "larger than 1024 KiB"):  # fmt: skip
        assert rule in err, rule


def test_7_validate_is_linear_in_the_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """40,000 unknown keys took 90 s: recording where each value came from rescanned every
    entry (quadratic). Counted, not timed: the entries the provenance index visits stay
    a small multiple of the keys; the problems are listed, 50 at most."""
    from sim import scenario_messages

    visits = [0]
    original = scenario_messages.Provenance.pop

    def counted(self: object, path: tuple) -> None:  # type: ignore[type-arg]
        visits[0] += 1
        original(self, path)  # type: ignore[arg-type]

    monkeypatch.setattr(scenario_messages.Provenance, "pop", counted)
    lines = [f'extends = "{BASE.as_posix()}"', "[population]"]
    lines += [f"k{i} = {i}" for i in range(40_000)]
    (tmp_path / "many.toml").write_text("\n".join(lines) + "\n")
    assert main(["validate", str(tmp_path / "many.toml")]) == 2
    assert visits[0] < 4 * 40_000, visits[0]
    err = capsys.readouterr().err
    assert "and 39950 more problems" in err and err.count("\n") < 60


# 8 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["schedule", str(BASE), "--weight-kg", "60", "--csv", "{tmp}"], "is a folder"),
        (["exposure", str(BASE), "--weight-kg", "60", "--plot", "{tmp}/f/x.png"], "is a file"),
        (["run", str(BASE), "--replicates", "3", "--out", "{tmp}/f"], "is a file, not a folder"),
        (["cohort", str(BASE), "--patients", "3", "--seed", "1", "--out", "{tmp}/f/sub"],
         "cannot create the folder"),
    ],
)  # fmt: skip
def test_8_file_system_errors_are_one_line(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f").write_text("a file")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _mounted(tmp_path: Path, options: str) -> Path:
    point = tmp_path / options.replace(",", "_").replace("=", "")
    point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'})")
    return point


@pytest.fixture
def read_only(tmp_path: Path):  # type: ignore[no-untyped-def]
    point = _mounted(tmp_path, "ro,size=1m")
    yield point
    subprocess.run(["umount", str(point)], check=False)


@pytest.fixture
def full_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    point = _mounted(tmp_path, "size=300k")
    yield point
    subprocess.run(["umount", str(point)], check=False)


def test_8_a_read_only_mount_is_a_message(read_only: Path, tmp_path: Path) -> None:
    done = _dosesim(["cohort", str(BASE), "--patients", "3", "--seed", "1", "--out",
                     str(read_only / "c")], tmp_path)  # fmt: skip
    assert "Read-only file system" in _clean_error(done)


def test_8_a_full_disk_is_a_message_and_leaves_nothing_half_written(
    full_disk: Path, tmp_path: Path
) -> None:
    out = full_disk / "r"
    done = _dosesim(["run", str(BASE), "--replicates", "100", "--keep-patients", "all",
                     "--quiet", "--out", str(out)], tmp_path)  # fmt: skip
    assert "No space left on device" in _clean_error(done)
    assert not list(out.glob(".*.tmp")) and not (out / "replicates.csv").exists()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
def test_8_permission_denied_is_a_message(tmp_path: Path) -> None:
    """As an unprivileged user (setpriv), writing into a folder owned by root."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
         "sim", "schedule", str(BASE), "--weight-kg", "60", "--csv", str(locked / "s.csv")],
        capture_output=True, text=True, timeout=NO_HANG_S, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )  # fmt: skip
    if "Permission denied" in done.stderr and "python" in done.stderr.lower()[:200]:
        pytest.skip("the unprivileged user cannot run this Python")
    assert done.returncode == 2, done.stderr[-1500:]
    assert "Permission denied" in done.stderr and "Traceback" not in done.stderr


# 9 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["schedule", str(BASE), "--weight-kg", "1e308"],
        ["schedule", str(BASE), "--weight-kg", "nan"],
        ["cohort", str(BASE), "--patients", "9223372036854775808", "--seed", "1"],
        ["run", str(BASE), "--replicates", "1000000000000"],
        ["run", str(BASE), "--workers", "100000"],
        ["run", str(BASE), "--seed", "-1"],
        ["run", str(BASE), "--connect-timeout", "inf"],
        ["forecast", str(BASE), "--as-of", "2150-01-01"],
        ["run", str(BASE), "--scheduler", "notaurl"],
        ["validate", str(BASE), "--set", "recruitment.deadline=9999-12-31"],
    ],
)
def test_9_out_of_range_options_are_refused(argv: list[str], tmp_path: Path) -> None:
    _clean_error(_dosesim(argv, tmp_path))


# 10, 11 ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "r"
    run(load_scenario(BASE), 12, seed=4, out=out, keep_patients=3)
    return out


def _damage(folder: Path, how: str) -> None:
    manifest = folder / "manifest.json"
    if how == "empty manifest":
        manifest.write_text("{}")
    elif how == "manifest not JSON":
        manifest.write_text("{")
    elif how == "manifest a list":
        manifest.write_text("[]")
    elif how == "manifest without scenario":
        data = json.loads(manifest.read_text())
        data.pop("scenario")
        manifest.write_text(json.dumps(data))
    elif how == "scenario damaged":
        data = json.loads(manifest.read_text())
        data["scenario"]["prednisone"] = 5
        manifest.write_text(json.dumps(data))
    elif how == "status writing":
        data = json.loads(manifest.read_text())
        data["status"] = "writing"
        manifest.write_text(json.dumps(data))
    elif how in ("empty replicates", "replicates missing", "patients truncated", "summary gone"):
        names = {"empty replicates": "replicates.csv", "replicates missing": "replicates.csv",
                 "patients truncated": "patients.csv", "summary gone": "summary.json"}  # fmt: skip
        name = names[how]
        target = folder / name
        if how == "patients truncated":
            target.write_text(target.read_text()[:200])
        elif how == "empty replicates":
            target.write_text("")
        else:
            target.unlink()
    elif how == "files unlisted and replicates empty":
        data = json.loads(manifest.read_text())
        data.pop("files")
        manifest.write_text(json.dumps(data))
        (folder / "replicates.csv").write_text("")
    elif how == "files unlisted and replicates columns gone":
        data = json.loads(manifest.read_text())
        data.pop("files")
        manifest.write_text(json.dumps(data))
        (folder / "replicates.csv").write_text("a,b\n1,2\n")


DAMAGES = ["empty manifest", "manifest not JSON", "manifest a list", "manifest without scenario",
           "scenario damaged", "status writing", "empty replicates", "replicates missing",
           "patients truncated", "files unlisted and replicates empty",
           "files unlisted and replicates columns gone"]  # fmt: skip


@pytest.mark.parametrize("how", DAMAGES)
def test_10_report_on_a_damaged_folder_is_a_message(
    finished: Path, tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(finished, folder)
    _damage(folder, how)
    assert main(["report", str(folder)]) == 2, how
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and str(folder) in err, err


def test_11_resume_finishes_a_run_whose_report_was_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["run", str(BASE), "--replicates", "12", "--seed", "4", "--quiet", "--out", str(out)]
    assert main(args) == 0
    data = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".csv"}
    (out / "report.html").unlink()  # as a kill during the report leaves it
    (out / CHECKPOINT).mkdir()  # and a kill while the checkpoint was being removed
    (out / CHECKPOINT / "chunk_000000000.json").write_text("{}")
    assert main([*args, "--resume"]) == 0
    assert not (out / CHECKPOINT).exists()
    assert (out / "report.html").exists()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".csv"} == data


# 13, 14 ----------------------------------------------------------------------------


def test_13_more_enrolments_than_the_target_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "".join(f"Xi'an,2021-{m:02d}-{d:02d}\n" for m in range(1, 12) for d in (3, 17))
    (tmp_path / "o.csv").write_text("site,enrolled_date\n" + rows)
    argv = ["forecast", str(BASE), "--observed", str(tmp_path / "o.csv"), "--as-of", "2022-01-01",
            "--replicates", "3", "--out", str(tmp_path / "f")]  # fmt: skip
    assert main(argv) == 0
    assert "warning: " in (err := capsys.readouterr().err) and "more than the target of 20" in err


def test_14_exposure_patients_are_one_block(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A million patients took 44 s, one random stream each. Counted, not timed: the
    streams made do not grow with the patients."""
    import sim.streams

    made = [0]
    original = sim.streams.stream

    def counted(*args: object) -> object:
        made[0] += 1
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sim.streams, "stream", counted)
    argv = ["exposure", str(BASE), "--weight-kg", "70", "--patients", "200000", "--seed", "1"]
    assert main(argv) == 0
    assert made[0] <= 2 and "200000 patients of 70 kg" in capsys.readouterr().out


def test_11_a_kill_in_the_report_phase_then_resume(tmp_path: Path) -> None:
    """kill -9 as soon as the data are complete (the report is then being drawn, about a
    second): --resume writes the report and the data files stay as they were. Whether the
    kill lands before the report or after it, the resume must succeed; the deterministic
    case (no report, a half-removed checkpoint) is test_11 above."""
    import signal
    import time

    out = tmp_path / "r"
    args = ["run", str(BASE), "--replicates", "60", "--seed", "6", "--keep-patients", "60",
            "--quiet", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "sim", *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    manifest = out / "manifest.json"
    deadline = time.time() + NO_HANG_S
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and '"status": "complete"' in manifest.read_text():
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    data = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".csv"}
    assert "replicates.csv" in data
    assert main([*args, "--resume"]) == 0
    assert (out / "report.html").exists()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".csv"} == data


# -- found by a review of the first fixes ----------------------------------------------


def test_the_lock_file_is_never_followed_out_of_its_folder(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(finished, folder)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (folder / ".dosesim.lock").unlink(missing_ok=True)
    (folder / ".dosesim.lock").symlink_to(precious)
    assert main(["report", str(folder)]) == 2
    assert "lock" in capsys.readouterr().err and precious.read_text() == "keep me"
    (folder / ".dosesim.lock").unlink()
    os.mkfifo(folder / ".dosesim.lock")
    assert main(["report", str(folder)]) == 2
    assert "lock" in capsys.readouterr().err


@pytest.mark.parametrize(
    "marker_edit",
    ["chunk_size=0", "chunk_size=-5", "chunk_size=1e400", "chunk_size=10**30", "nested", "fifo",
     "chunks={'7': 'x'}"],
)  # fmt: skip
def test_a_damaged_run_json_is_a_message(tmp_path: Path, marker_edit: str) -> None:
    out, args = _interrupted(tmp_path)
    marker = out / CHECKPOINT / "run.json"
    data = json.loads(marker.read_text())
    if marker_edit == "nested":
        marker.write_text("[" * 100_000 + "]" * 100_000)
    elif marker_edit == "fifo":
        marker.unlink()
        os.mkfifo(marker)
    elif marker_edit.startswith("chunks="):
        data["chunks"] = {"7": "x"}
        marker.write_text(json.dumps(data))
    else:
        value = marker_edit.split("=", 1)[1]
        text = json.dumps(data).replace(
            f'"chunk_size": {data["chunk_size"]}',
            f'"chunk_size": {value if value != "10**30" else 10**30}',
        )
        marker.write_text(text)
    err = _clean_error(_dosesim([*args, "--resume"], tmp_path))
    assert "damaged" in err or "not a regular file" in err, err


@pytest.mark.parametrize("edit", ["huge int", "no screened column", "kept a list", "other rows"])
def test_a_chunk_rewritten_with_its_sha256_is_still_checked(tmp_path: Path, edit: str) -> None:
    """Someone who rewrites a chunk and its sha256 in run.json: the chunk must still be the
    run's (its replicates, its core columns) or the resume stops with a message."""
    import hashlib

    out, args = _interrupted(tmp_path)
    chunk = out / CHECKPOINT / "chunk_000000000.json"
    data = json.loads(chunk.read_text())
    if edit == "huge int":
        data["rows"]["columns"][1]["values"][0] = 10**30
    elif edit == "no screened column":
        data["rows"]["columns"] = [c for c in data["rows"]["columns"] if c["name"] != "screened"]
    elif edit == "kept a list":
        data["kept"] = []
    else:
        data["first"] = 5
    raw = json.dumps(data).encode()
    chunk.write_bytes(raw)
    marker = out / CHECKPOINT / "run.json"
    m = json.loads(marker.read_text())
    m["chunks"]["0"] = hashlib.sha256(raw).hexdigest()
    marker.write_text(json.dumps(m))
    done = _dosesim([*args, "--resume"], tmp_path)
    if edit == "kept a list":  # no tables kept is a shape the chunk may have
        assert done.returncode in (0, 2) and "Traceback" not in done.stderr
    else:
        assert "damaged" in _clean_error(done)


@pytest.mark.parametrize(
    "damage",
    ["files a list", "files a number", "identity text", "nested", "checkpoint a file",
     "manifest a fifo", "replicates a fifo"],
)  # fmt: skip
def test_more_damaged_folders_are_messages(finished: Path, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(finished, folder)
    manifest = folder / "manifest.json"
    data = json.loads(manifest.read_text())
    if damage == "files a list":
        data["files"] = []
    elif damage == "files a number":
        data["files"] = 5
    elif damage == "identity text":
        data["identity"] = "abc"
    if damage in ("files a list", "files a number", "identity text"):
        manifest.write_text(json.dumps(data))
    elif damage == "nested":
        manifest.write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "checkpoint a file":
        (folder / CHECKPOINT).write_text("x")
    elif damage == "manifest a fifo":
        manifest.unlink()
        os.mkfifo(manifest)
    else:
        (folder / "replicates.csv").unlink()
        os.mkfifo(folder / "replicates.csv")
    run_args = ["run", str(BASE), "--replicates", "12", "--seed", "4", "--keep-patients", "3",
                "--quiet", "--out", str(folder)]  # fmt: skip
    for argv in (["report", str(folder)], [*run_args, "--resume"], run_args):
        done = _dosesim(argv, tmp_path)
        assert done.returncode in (0, 2) and "Traceback" not in done.stderr, (argv, done.stderr)
    if damage != "checkpoint a file":
        _clean_error(_dosesim(["report", str(folder)], tmp_path))
    if damage in ("nested", "replicates a fifo"):  # (a whole run each: two cases show it)
        assert _dosesim([*run_args, "--overwrite"], tmp_path).returncode in (0, 2)


@pytest.mark.parametrize("observed", ["/dev/zero", "fifo", "long", "/proc/self/mem"])
def test_odd_observed_files_are_messages(tmp_path: Path, observed: str) -> None:
    if observed == "fifo":
        os.mkfifo(tmp_path / "o.csv")
        observed = str(tmp_path / "o.csv")
    elif observed == "long":
        observed = str(tmp_path / ("o" * 300 + ".csv"))
    argv = ["forecast", str(BASE), "--observed", observed, "--as-of", "2022-03-01"]
    _clean_error(_dosesim(argv, tmp_path))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate", str(BASE), "--set", "a" + ".a" * 1000 + "=1"], "key path"),
        (["validate", str(BASE), "--set", "recruitment.start_date=9999-01-01"], "start_date"),
        (["run", str(BASE), "--scheduler", "tcp://[::1"], "not a scheduler address"),
        (["validate", str(BASE), "--set", "adverse_events.ild_flare.multipliers="
          + "[" + ", ".join(['{driver = "prednisone_dose", per_10_mg = 1000.0}'] * 110) + "]"],
         "at most 16"),
    ],
)  # fmt: skip
def test_more_bad_input_is_a_message(tmp_path: Path, argv: list[str], message: str) -> None:
    done = _dosesim(argv, tmp_path)
    assert message in _clean_error(done) and done.stderr.count("\n") < 5


def test_a_device_or_pipe_is_never_replaced(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.csv")
    argv = ["schedule", str(BASE), "--weight-kg", "60", "--csv", str(tmp_path / "pipe.csv")]
    done = _dosesim(argv, tmp_path)
    assert "not a regular file" in _clean_error(done)
    assert not (tmp_path / "pipe.csv").is_file()  # still the pipe


def test_a_run_where_nobody_can_be_eligible_is_a_message(tmp_path: Path) -> None:
    argv = ["run", str(BASE), "--replicates", "2", "--set", "eligibility.age_min_years=90",
            "--set", "eligibility.age_max_years=120"]  # fmt: skip
    assert "nobody screened can be eligible" in _clean_error(_dosesim(argv, tmp_path))


@pytest.mark.parametrize("golden", ["a folder", "binary"])
def test_check_with_a_damaged_golden_file_is_a_message(tmp_path: Path, golden: str) -> None:
    target = tmp_path / "nct05129410.csv"
    if golden == "a folder":
        target.mkdir()
    else:
        target.write_bytes(b"\xff\xfe\x00\x01")
    done = _dosesim(["check", str(BASE), "--golden-dir", str(tmp_path)], tmp_path)
    _clean_error(done)
