"""Stopping cleanly: SIGTERM, Ctrl-C and kill -9 leave no process behind and a resumable run.

Each test starts ``dosesim run`` as a real process, stops it once some chunks are
checkpointed, checks that no worker outlives it (by pid, on Linux), resumes, and
compares every file with an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim import load_scenario
from sim.cli import DEFAULT_CONNECT_TIMEOUT_S as CLI_TIMEOUT
from sim.cli import main
from sim.executors import DEFAULT_CONNECT_TIMEOUT_S, Executor, check_address, chunks_of
from sim.runner import CHECKPOINT, run
from tests.conftest import BASE

SCENARIO = load_scenario(BASE)
REPLICATES, SEED, KEEP = 160, 5, 3
COMPARED = ("replicates.csv", "sites.csv", "summary.json", "patients.csv", "events.csv",
            "dosing_nonmem.csv", "ex.csv", "ae.csv", "ds.csv")  # fmt: skip
LINUX = sys.platform.startswith("linux")


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "r"
    run(SCENARIO, REPLICATES, seed=SEED, keep_patients=KEEP, out=out)
    return out


def _children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        out |= {int(c) for c in text.split()}
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it has died)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _chunks(out: Path) -> int:
    return len(list((out / CHECKPOINT).glob("chunk_*.json")))


@pytest.mark.parametrize(
    ("sig", "workers", "after_chunks", "code"),
    [
        (signal.SIGKILL, 1, 1, -signal.SIGKILL),
        (signal.SIGKILL, 1, 5, -signal.SIGKILL),
        (signal.SIGKILL, 2, 3, -signal.SIGKILL),
        (signal.SIGINT, 1, 2, 130),
        (signal.SIGTERM, 1, 2, 143),
        (signal.SIGTERM, 2, 2, 143),
        (signal.SIGINT, 2, 4, 130),
    ],
    ids=["kill-9-early", "kill-9-late", "kill-9-2-workers", "ctrl-c", "sigterm",
         "sigterm-2-workers", "ctrl-c-2-workers"],
)  # fmt: skip
def test_a_stopped_run_leaves_no_process_and_resumes_to_the_same_files(
    tmp_path: Path, whole: Path, sig: int, workers: int, after_chunks: int, code: int
) -> None:
    out = tmp_path / "stopped"
    cmd = [sys.executable, "-m", "sim", "run", str(BASE), "--replicates", str(REPLICATES),
           "--seed", str(SEED), "--keep-patients", str(KEEP), "--quiet", "--out", str(out),
           "--workers", str(workers)]  # fmt: skip
    log = tmp_path / "stderr.txt"  # a file, not a pipe: a leftover worker cannot block a read
    with log.open("wb") as err:
        proc = subprocess.Popen(  # a session of its own: Ctrl-C goes to its process group only
            cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    deadline = time.time() + 120
    while time.time() < deadline and _chunks(out) < after_chunks:
        assert proc.poll() is None, log.read_text()
        time.sleep(0.02)
    workers_seen = _children(proc.pid) if LINUX else set()
    if workers > 1 and LINUX:
        assert len(workers_seen) >= workers  # the pool's processes (and its manager's)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C reaches the whole group; the workers leave it to us
    else:
        proc.send_signal(sig)
    assert proc.wait(timeout=60) == code
    stderr = log.read_text()
    assert "Traceback" not in stderr, stderr
    if LINUX:
        deadline = time.time() + 10  # kill -9: the kernel kills the workers with their parent
        while time.time() < deadline and any(_alive(p) for p in workers_seen):
            time.sleep(0.05)
        left = [p for p in workers_seen if _alive(p)]
        for p in left:  # do not leave them to the next test
            os.kill(p, signal.SIGKILL)
        assert not left, "a worker outlived the command"
    done_before = _chunks(out)
    assert done_before >= after_chunks
    assert not (out / "replicates.csv").exists()  # nothing half-written
    assert main([*cmd[3:], "--resume"]) == 0
    for name in COMPARED:
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
    assert not (out / CHECKPOINT).exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"


def test_stopping_the_iteration_stops_the_pool_at_once() -> None:
    """Closing the result stream early terminates the workers, not after their chunks."""
    import multiprocessing

    before = set(multiprocessing.active_children())
    with Executor(workers=2) as executor:
        stream = executor.map(_slow, (), chunks_of(8, 1))
        next(stream)
        ours = set(multiprocessing.active_children()) - before
        assert ours
        started = time.monotonic()
        stream.close()
        assert time.monotonic() - started < 5.0  # each remaining chunk would sleep 30 s
        # by pid: Process.is_alive() can say True while the pool's own thread reaps it
        pids = [p.pid for p in ours if p.pid is not None]
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.02)
        assert not [pid for pid in pids if _alive(pid)]


def _slow(first: int, last: int) -> int:
    if first > 0:
        time.sleep(30)
    return first


def test_the_command_line_and_the_api_share_the_connect_timeout() -> None:
    assert CLI_TIMEOUT == DEFAULT_CONNECT_TIMEOUT_S


@pytest.mark.parametrize(
    ("address", "ok"),
    [("tcp://10.0.0.5:8786", True), ("10.0.0.5:8786", True), ("tls://h:1", True),
     ("foo", False), ("http://h:1", False), ("tcp://h", False), ("tcp://:80", False)],
)  # fmt: skip
def test_scheduler_addresses(address: str, ok: bool) -> None:
    from sim.errors import DosesimError

    if ok:
        assert check_address(address).startswith(("tcp://", "tls://"))
    else:
        with pytest.raises(DosesimError, match="not a scheduler address"):
            check_address(address)


def test_forecast_and_compare_on_dask_equal_local(tmp_path: Path) -> None:
    """``--scheduler`` on forecast and compare: the same numbers as one local process."""
    distributed = pytest.importorskip("distributed")
    from datetime import date

    from sim.compare import compare
    from sim.forecast import forecast

    observed = BASE.with_name("example_observed_enrolment.csv")
    low = load_scenario(BASE.with_name("nct05129410_low_start.toml"))
    local_f = forecast(SCENARIO, observed, date(2022, 3, 1), 12, 7, max_extra_sites=1)
    local_c = compare([SCENARIO, low], 6, 3)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        dask_f = forecast(
            SCENARIO, observed, date(2022, 3, 1), 12, 7, max_extra_sites=1, scheduler=address
        )
        dask_c = compare([SCENARIO, low], 6, 3, scheduler=address)
        argv = ["forecast", str(BASE), "--replicates", "6", "--scheduler", address, "--quiet",
                "--out", str(tmp_path / "f")]  # fmt: skip
        assert main(argv) == 0
    assert dask_f.replicates.equals(local_f.replicates)
    assert dask_f.sites_needed == local_f.sites_needed
    assert dask_c.table.equals(local_c.table)


def test_a_dead_worker_is_a_message_and_the_run_resumes(tmp_path: Path, whole: Path) -> None:
    """A pool worker killed from outside (the system's out-of-memory killer, say): the command
    exits 2 with one line, keeps the finished chunks, and --resume completes the same files."""
    if not LINUX:
        pytest.skip("finds the worker through /proc")
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "sim", "run", str(BASE), "--replicates", str(REPLICATES),
           "--seed", str(SEED), "--keep-patients", str(KEEP), "--quiet", "--out", str(out),
           "--workers", "2"]  # fmt: skip
    log = tmp_path / "stderr.txt"
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 120
    while time.time() < deadline and _chunks(out) < 2:
        assert proc.poll() is None, log.read_text()
        time.sleep(0.02)
    workers = sorted(_children(proc.pid))
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    assert proc.wait(timeout=60) == 2
    stderr = log.read_text()
    assert "a worker process died" in stderr and "--resume" in stderr, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert main([*cmd[3:], "--resume"]) == 0
    for name in COMPARED:
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name


def test_an_unreachable_scheduler_leaves_no_forecast_or_comparison_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("distributed")
    low = str(BASE.with_name("nct05129410_low_start.toml"))
    dask = ["--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "1", "--replicates", "4"]
    assert main(["forecast", str(BASE), *dask, "--out", str(tmp_path / "f")]) == 2
    assert main(["compare", str(BASE), low, *dask, "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("no Dask scheduler answered within 1 s") == 2 and "Traceback" not in err
    assert not (tmp_path / "f").exists() and not (tmp_path / "c").exists()
