"""Errors a user can cause and fix: the command line prints them and exits with status 2."""

from __future__ import annotations

from dataclasses import dataclass


class DosesimError(Exception):
    """Bad input from the user (a file, an option, a value).

    The command line prints ``str(error)`` without a traceback and exits
    with status 2. Anything else that escapes is a bug in dosesim.
    """


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is, what it holds, which rule it breaks.

    Attributes
    ----------
    file : str
        The file the value came from (``--set`` for a command-line override).
    path : str
        Key path inside the file, e.g. ``prednisone.stages[1].step_mg``;
        empty for a problem with the file as a whole.
    value : str
        The offending value as written (TOML syntax), or empty.
    rule : str
        The rule it breaks, e.g. ``must be > 0``.
    """

    file: str
    path: str
    value: str
    rule: str

    def __str__(self) -> str:
        where = self.file
        if self.path:
            where += f": {self.path}"
            if self.value:
                where += f" = {self.value}"
        return f"{where}: {self.rule}"


class ScenarioError(DosesimError):
    """A scenario file (or an override) is invalid; every problem is listed.

    Attributes
    ----------
    problems : list of Problem
        All problems found, in file order.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM): unwind, stop the workers, exit 143.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except
    Exception`` on the way swallows it.
    """

    def __init__(self, signum: int = 15) -> None:
        self.signum = signum
        super().__init__(f"terminated by signal {signum}")
