"""What every scenario schema module shares: the strict base model and precise problems."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

KeyPath = tuple[str | int, ...]


class FieldProblems(ValueError):
    """Raised by model validators to report problems at precise relative key paths."""

    def __init__(self, problems: list[tuple[KeyPath, Any, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(rule for _, _, rule in problems))


class StrictModel(BaseModel):
    """A scenario table: unknown keys refused, TOML types kept, immutable, finite.

    strict: TOML has types, so "5" is not 5 and true is not 1 (ints do count as
    floats). No NaN or infinity: they would travel silently.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def format_number(x: float) -> str:
    """``5`` for 5.0, ``7.5`` for 7.5: a number as a person would type it."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))
