"""The README's examples run: every Python block executes, every command it shows exists."""

from __future__ import annotations

import re

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
