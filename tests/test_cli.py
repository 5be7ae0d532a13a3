"""The dosesim command: validate, schedule, check (golden schedules), exit statuses."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sim.cli import _parser, main
from tests.conftest import BASE, REPO, SCENARIOS

GOLDEN = SCENARIOS / "schedules"


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(BASE), str(SCENARIOS / "nct05129410_low_start.toml")]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "nct05129410_low_start" in out and "sha256" in out


def test_validate_resolved_prints_toml_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "--resolved", str(SCENARIOS / "nct05129410_mmf_1g5.toml")]) == 0
    text = capsys.readouterr().out.split("\n", 1)[1]
    (tmp_path / "r.toml").write_text(text)
    assert main(["validate", str(tmp_path / "r.toml")]) == 0


def test_schedule_table_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_csv = tmp_path / "sub" / "s.csv"
    assert main(["schedule", str(BASE), "--weight-kg", "60", "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "prednisone (once daily)" in out and "mmf (2 doses a day)" in out
    assert "245-363" in out and "7,892.5" in out
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0]) == ["drug", "start_day", "end_day", "dose_mg_per_day", "cumulative_mg"]
    pred = [r for r in rows if r["drug"] == "prednisone"]
    assert pred[0] == {
        "drug": "prednisone",
        "start_day": "0",
        "end_day": "28",
        "dose_mg_per_day": "60",
        "cumulative_mg": "1680",
    }
    assert pred[-1]["end_day"] == "364" and pred[-1]["cumulative_mg"] == "7892.5"
    assert [r["drug"] for r in rows].count("mmf") == 3


def test_schedule_with_override(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["schedule", str(BASE), "--weight-kg", "60", "--set", "prednisone.start_mg_per_kg=0.5"]
    assert main(args) == 0
    assert "4,112.5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["schedule", str(BASE), "--weight-kg", "0"],
        ["schedule", str(BASE), "--weight-kg", "heavy"],
        ["schedule", str(BASE)],
        ["nonsense"],
    ],
)
def test_bad_command_line_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_check_passes_on_committed_golden_files(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["check"]) == 0  # every scenarios/*.toml
    out = capsys.readouterr().out
    assert out.count("ok") == len(list(SCENARIOS.glob("*.toml")))


def _copy_scenarios(tmp_path: Path) -> Path:
    dest = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, dest)
    return dest


def test_check_fails_with_a_readable_diff_after_a_one_value_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scen = _copy_scenarios(tmp_path)
    low = scen / "nct05129410_low_start.toml"
    low.write_text(low.read_text().replace("start_mg_per_kg = 0.5", "start_mg_per_kg = 0.6"))
    code = main(["check", str(low), str(scen / "nct05129410.toml"), "--golden-dir", str(GOLDEN)])
    out = capsys.readouterr().out
    assert code == 1
    assert "ok        " in out  # the untouched base still passes
    assert "CHANGED   " in out
    # 0.6 mg/kg x 60 kg = 36 -> 35 mg instead of 30 mg on days 0-27
    assert "nct05129410_low_start: prednisone, 60 kg: schedule changed" in out
    assert "days 0-27: golden 30 mg/day, now 35 mg/day" in out
    assert "cumulative at end: golden 4112.5 mg, now" in out
    assert "dosesim check --update" in out
    assert "mmf" not in out.split("CHANGED", 1)[1]  # MMF did not change


def test_check_update_then_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scen = _copy_scenarios(tmp_path)
    base = scen / "nct05129410.toml"
    base.write_text(base.read_text().replace("days = 91", "days = 84"))
    assert main(["check", str(base)]) == 1  # golden dir: schedules/ beside the scenario
    out = capsys.readouterr().out
    assert "days 238-244: golden 10 mg/day, now 7.5 mg/day" in out
    assert main(["check", str(base), "--update"]) == 0
    assert "updated" in capsys.readouterr().out
    assert main(["check", str(base)]) == 0
    assert main(["check", str(base), "--update"]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_check_missing_golden_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(BASE), "--golden-dir", str(tmp_path)]) == 1
    assert "no golden file" in capsys.readouterr().out


def test_check_corrupt_golden_file_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "nct05129410.csv").write_text("a,b\n1,2\n")
    assert main(["check", str(BASE), "--golden-dir", str(tmp_path)]) == 2
    assert "not a golden schedule file" in capsys.readouterr().err


def test_check_invalid_scenario_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f'extends = "{BASE.as_posix()}"\n[mmf]\ntarget_g_per_day = 0\n')
    assert main(["check", str(bad)]) == 2
    assert "mmf.target_g_per_day = 0: must be > 0" in capsys.readouterr().err


def test_module_and_console_script_are_the_same_command() -> None:
    for cmd in ([sys.executable, "-m", "sim"], [str(Path(sys.executable).parent / "dosesim")]):
        done = subprocess.run(
            [*cmd, "schedule", str(BASE), "--weight-kg", "60"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "7,892.5" in done.stdout


def test_check_from_a_subprocess_exit_status(tmp_path: Path) -> None:
    scen = _copy_scenarios(tmp_path)
    mmf = scen / "nct05129410_mmf_1g5.toml"
    mmf.write_text(mmf.read_text().replace("target_g_per_day = 1.5", "target_g_per_day = 1.75"))
    done = subprocess.run(
        [sys.executable, "-m", "sim", "check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    assert "nct05129410_mmf_1g5: mmf, 45 kg: schedule changed" in done.stdout
    assert "days 14-363: golden 1500 mg/day, now 1750 mg/day" in done.stdout
    assert "Traceback" not in done.stderr


def _options() -> list[tuple[str, Any]]:
    """Every option of every subcommand: (command, argparse action)."""
    sub = next(a for a in _parser()._actions if a.dest == "command")
    out = []
    for name, parser in sub.choices.items():  # type: ignore[union-attr]
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                out.append((name, action))
    return out


def test_every_option_has_help_that_states_its_default() -> None:
    for command, action in _options():
        flag = "/".join(action.option_strings)
        assert action.help, f"dosesim {command} {flag} has no help"
        if action.required or action.dest == "overrides":
            continue
        assert "default" in action.help or "no default" in action.help, (
            f"dosesim {command} {flag}: the help does not say the default ({action.help!r})"
        )
        if action.default not in (None, False, []):
            shown = (
                action.default if not isinstance(action.default, float) else f"{action.default:g}"
            )
            if action.dest == "interval":
                shown = "90"
            assert str(shown) in action.help, (command, flag, action.default, action.help)


def test_main_help_points_to_the_readme_and_the_model() -> None:
    text = _parser().format_help()
    assert "README.md" in text and "docs/model.md" in text and "not a dosing aid" in text


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_answer_without_the_numerical_stack(flag: str) -> None:
    """Measured by what is imported, not by a clock: numpy, pandas, scipy and matplotlib
    cost most of a second to import; --version and --help need none of them."""
    code = (
        "import sys\n"
        "from sim.cli import main\n"
        "try:\n"
        f"    main([{flag!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('numpy', 'pandas', 'scipy', 'matplotlib', 'pydantic', 'simpy')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert "HEAVY []" in done.stdout, done.stdout
    assert ("dosesim 0." in done.stdout) if flag == "--version" else ("COMMAND" in done.stdout)


@pytest.mark.parametrize(
    ("value", "message"), [("0.9", "not 0.9"), ("100", "below 100"), ("ninety", "not a number")]
)
def test_interval_is_a_percent(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["cohort", str(BASE), "--patients", "3", "--seed", "1", "--interval", value])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_interval_changes_every_printed_interval(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cohort", str(BASE), "--patients", "40", "--seed", "1", "--interval", "80"]) == 0
    assert "(80 %:" in capsys.readouterr().out
    args = ["exposure", str(BASE), "--weight-kg", "70", "--patients", "200", "--seed", "1"]
    assert main([*args, "--interval", "50"]) == 0
    assert "(50 %:" in capsys.readouterr().out


def test_progress_bars_show_on_request_only(capsys: pytest.CaptureFixture[str]) -> None:
    from sim.progress import progress_bar

    with progress_bar(10, "run", show=True) as tick:
        tick(10)
    assert "run:" in capsys.readouterr().err  # the bar was drawn (and cleared when done)
    with progress_bar(10, "run", show=False) as tick:
        tick(10)
    assert capsys.readouterr().err == ""
