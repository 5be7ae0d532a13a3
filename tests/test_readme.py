"""The README's examples run: every Python block executes, every command it shows exists."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import _parser
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```", 2)[1]
    assert "make run" in first_block and "make test" in first_block
    assert "not a dosing aid" in README


def test_readme_python_blocks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)


def test_readme_documents_every_command() -> None:
    sub = next(a for a in _parser()._actions if a.dest == "command")
    commands = set(sub.choices)  # type: ignore[arg-type]
    for name in commands:
        assert f"### `dosesim {name}" in README, f"README has no section for dosesim {name}"


def _console_examples() -> list[tuple[str, list[str]]]:
    """Each ``$ dosesim ...`` line of the README's console blocks, with the output shown.

    Blocks marked ``<!-- illustrative ... -->`` (output after editing a scenario)
    are not run.
    """
    examples = []
    for marker, block in re.findall(
        r"(<!-- illustrative[^\n]*\n)?```console\n(.*?)```", README, flags=re.S
    ):
        if marker:
            continue
        command: str | None = None
        shown: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command:
                    examples.append((command, shown))
                command, shown = line[2:], []
            else:
                shown.append(line)
        if command:
            examples.append((command, shown))
    return examples


def test_readme_console_examples_are_what_the_commands_print(tmp_path: Path) -> None:
    """Every command the README shows is run, in order, in a fresh folder with the
    scenarios; every output line it shows (``...`` stands for lines left out) must be
    printed, in that order. Regenerate an example by running its command."""
    shutil.copytree(REPO / "scenarios", tmp_path / "scenarios")
    examples = _console_examples()
    assert len(examples) >= 8
    for command, shown in examples:
        argv = []
        for word in shlex.split(command):  # the shell's globbing, as the reader's shell would
            argv += (
                sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob(word))
                if "*" in word
                else [word]
            )
        assert argv[0] == "dosesim", command
        done = subprocess.run(
            [sys.executable, "-m", "sim", *argv[1:]],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        assert done.returncode == 0, (command, done.stderr)
        printed = (done.stdout + done.stderr).splitlines()
        at = 0
        for line in shown:
            if line.strip() == "..." or not line.strip():
                continue
            while at < len(printed) and printed[at] != line:
                at += 1
            assert at < len(printed), f"{command}\nREADME shows: {line!r}\nprinted:\n" + "\n".join(
                printed
            )
            at += 1
