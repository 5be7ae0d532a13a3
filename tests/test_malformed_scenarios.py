"""Every malformed scenario in tests/data/malformed/ is rejected with clear, located errors.

Each corpus file holds one realistic planner mistake (``several_problems.toml`` holds
several) and starts with header comments that say what the report must contain:

``# expect: <key path>``
    A key path the report must name, e.g. ``prednisone.stages[0].step_mg``; for a
    whole-file problem, the text that follows the file name, e.g. ``invalid TOML``.
    One line per path; all of them must be reported together.
``# rule: <text>``
    Text of the broken rule that must appear, e.g. ``must be > 0``.
``# file: <name>``
    The file the errors must name, relative to the case's folder (default: the case
    file itself), e.g. the base file when the mistake is in the base.
``# not: <text>``
    Text that must not appear (a known misleading message).

For each file, ``dosesim validate FILE`` run in-process must return 2 and print only
``error: <file>: ...`` lines and the ``dosesim: N problems found`` summary on stderr,
never a traceback, and :func:`sim.load_scenario` must raise :class:`sim.ScenarioError`
with a non-empty ``problems`` list. Two subprocess runs of ``python -m sim validate``
check that the real command line prints no traceback either.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import sim
from sim.cli import main

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "malformed"
CASES: list[Path] = sorted(CORPUS.glob("*.toml")) + [CORPUS / "cycle" / "a.toml"]

# Cases where dosesim's message is known to be wrong; each is a strict xfail
# so that fixing the message turns the case green. Empty: all fixed.
KNOWN_BAD: dict[str, str] = {}

HEADER = re.compile(r"#\s*(expect|rule|file|not):\s*(.*?)\s*$")
SUMMARY = re.compile(r"dosesim: (\d+) problems? found")


@dataclass
class Expectations:
    """What a corpus file's header says the report must (not) contain."""

    paths: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)


def case_id(path: Path) -> str:
    """The test id of a corpus file: its path below the corpus folder, without ``.toml``."""
    return path.relative_to(CORPUS).with_suffix("").as_posix()


def read_header(path: Path) -> Expectations:
    """Parse the leading comment block of a corpus file."""
    found = Expectations()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        m = HEADER.match(line)
        if m is None:
            continue
        key, value = m.groups()
        if key == "expect":
            found.paths.append(value)
        elif key == "rule":
            found.rules.append(value)
        elif key == "file":
            found.files.append((path.parent / value).resolve())
        else:
            found.absent.append(value)
    if not found.files:
        found.files.append(path.resolve())
    return found


def _param(path: Path) -> pytest.ParameterSet:
    cid = case_id(path)
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BAD[cid])] if cid in KNOWN_BAD else []
    return pytest.param(path, id=cid, marks=marks)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert all(path.is_file() for path in CASES)
    assert set(KNOWN_BAD) <= {case_id(path) for path in CASES}


@pytest.mark.parametrize("path", [pytest.param(p, id=case_id(p)) for p in CASES])
def test_corpus_file_has_expectations(path: Path) -> None:
    assert read_header(path).paths, f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", [_param(p) for p in CASES])
def test_malformed_scenario_is_reported(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # dosesim shows file names relative to the working folder
    want = read_header(path)

    status = main(["validate", str(path)])
    out, err = capsys.readouterr()

    assert status == 2, err
    assert "Traceback" not in out + err
    assert "ok " not in out
    lines = err.strip().splitlines()
    summary = SUMMARY.fullmatch(lines[-1])
    assert summary is not None, f"last line is not the summary: {lines[-1]!r}"
    errors = lines[:-1]
    assert errors, err
    assert int(summary.group(1)) == len(errors)
    for line in errors:
        assert line.startswith("error: "), line
        named, sep, _ = line.removeprefix("error: ").partition(": ")
        assert sep and named.endswith(".toml"), f"no file named: {line}"
        assert (REPO / named).resolve() in want.files, f"names the wrong file: {line}"
    for key_path in want.paths:
        # the path stands alone: "x.y = value: rule" or "x.y: rule", not a longer path
        assert any(f": {key_path} = " in e or f": {key_path}: " in e for e in errors), (
            f"{key_path!r} not reported:\n{err}"
        )
    for rule in want.rules:
        assert rule in err, f"{rule!r} not in:\n{err}"
    for text in want.absent:
        assert text not in err, f"{text!r} in:\n{err}"

    with pytest.raises(sim.ScenarioError) as excinfo:
        sim.load_scenario(path)
    assert excinfo.value.problems
    assert len(excinfo.value.problems) == len(errors)


@pytest.mark.parametrize(
    "name", ["negative_step_mg.toml", "typo_titration_key.toml"], ids=lambda n: n[:-5]
)
def test_command_line_reports_without_traceback(name: str) -> None:
    path = CORPUS / name
    result = subprocess.run(
        [sys.executable, "-m", "sim", "validate", str(path.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for key_path in read_header(path).paths:
        assert key_path in result.stderr
