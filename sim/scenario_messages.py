"""Problems a planner can act on: pydantic's errors as file, key path, value and rule.

:class:`Provenance` remembers which file wrote each key (``extends`` chains and
``--set`` included), so that a problem names the file to edit.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ValidationError

from sim.errors import Problem
from sim.scenario_schema import (
    FieldProblems,
    KeyPath,
    Scenario,
    format_number,
)


class Provenance:
    """Which file wrote each value: key path -> file, newest last, with prefix look-ups in O(depth).

    ``below[p]`` holds the recorded paths strictly below ``p``, so replacing a table
    by a value (and finding the file that last wrote into a table) does not scan every
    entry: loading stays linear in the number of keys.
    """

    def __init__(self) -> None:
        self.entries: dict[KeyPath, tuple[int, str]] = {}
        self.below: dict[KeyPath, set[KeyPath]] = {}
        self._clock = 0

    def __contains__(self, path: object) -> bool:
        return path in self.entries

    def __getitem__(self, path: KeyPath) -> str:
        return self.entries[path][1]

    def get(self, path: KeyPath, default: str) -> str:
        entry = self.entries.get(path)
        return default if entry is None else entry[1]

    def pop(self, path: KeyPath) -> None:
        """Forget the entry at ``path`` (not those below it)."""
        if self.entries.pop(path, None) is not None:
            for n in range(len(path)):
                keys = self.below.get(path[:n])
                if keys is not None:
                    keys.discard(path)

    def set(self, path: KeyPath, source: str) -> None:
        """``source`` replaces everything at or below ``path``; it is the newest entry."""
        for old in list(self.below.get(path, ())):
            self.pop(old)
        self.below.pop(path, None)
        self.pop(path)
        self._clock += 1
        self.entries[path] = (self._clock, source)
        for n in range(len(path)):
            self.below.setdefault(path[:n], set()).add(path)

    def newest_below(self, path: KeyPath) -> str | None:
        """The file that last wrote anything strictly below ``path``."""
        keys = self.below.get(path)
        if not keys:
            return None
        return max((self.entries[k] for k in keys), key=lambda e: e[0])[1]


# ---------------------------------------------------------------------------
# Turning pydantic's errors into problems a planner can act on
# ---------------------------------------------------------------------------


def problems_from(exc: ValidationError, raw: dict[str, Any], prov: Provenance) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        loc: tuple[str | int, ...] = tuple(err["loc"])
        path, value, found = _walk(loc, raw)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "value_error" and isinstance(ctx.get("error"), FieldProblems):
            for rel, val, rule in ctx["error"].problems:
                sub = path + rel
                shown = "" if val is None else toml_value(val)
                problems.append(Problem(_origin(sub, prov), format_path(sub), shown, rule))
            continue
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            tag_key = str(ctx.get("discriminator", "kind")).strip("'")
            path = path + (tag_key,)
            tags = [t.strip("'") for t in str(ctx.get("expected_tags", "")).split(", ")]
            if not tags or tags == [""]:
                tags = _tags_at(loc)
            rule = "must be one of " + ", ".join(f'"{t}"' for t in tags)
            _, value, found = _walk((*loc, tag_key), raw)
            if not found:
                rule = "required key is missing; " + rule
            elif isinstance(value, str):
                rule += _suggest(value, tags)
            else:
                rule = "must be a string: " + rule.removeprefix("must be ")
        else:
            rule = _rule(kind, ctx, err.get("msg", ""))
            if kind == "extra_forbidden":
                rule += _suggest(str(loc[-1]), _allowed_keys(loc[:-1]), listing=True)
        shown = toml_value(value) if found else ""
        problems.append(Problem(_origin(path, prov), format_path(path), shown, rule))
    return problems


_MISSING = object()


def _walk(loc: KeyPath, raw: Any) -> tuple[KeyPath, Any, bool]:
    """Follow pydantic's location through the input, dropping union tags."""
    cur: Any = raw
    path: list[str | int] = []
    for el in loc:
        if isinstance(el, int) and isinstance(cur, list) and 0 <= el < len(cur):
            cur = cur[el]
        elif isinstance(el, str) and isinstance(cur, dict) and el in cur:
            cur = cur[el]
        elif isinstance(el, str) and isinstance(cur, dict) and el in _tag_values(cur):
            continue  # a discriminated union's tag, not a key
        else:
            cur = _MISSING
        path.append(el)
    return tuple(path), (None if cur is _MISSING else cur), cur is not _MISSING


_TAG_KEYS = ("kind", "driver", "action")
"""The keys that choose a table's type (discriminated unions)."""


def _tag_values(table: dict[str, Any]) -> set[str]:
    return {v for k in _TAG_KEYS if isinstance(v := table.get(k), str)}


def _origin(path: KeyPath, prov: Provenance) -> str:
    """The file that wrote the value at ``path`` (or the table holding it)."""
    for n in range(len(path), 0, -1):
        if path[:n] in prov:
            return prov[path[:n]]
    # A table: blame the most derived file that wrote into it (the newest entry
    # below it), since that file made the table what it is.
    newest = prov.newest_below(path)
    if newest is not None:
        return newest
    return prov.get((), "<scenario>")


def format_path(path: KeyPath) -> str:
    out = ""
    for el in path:
        if isinstance(el, int):
            out += f"[{el}]"
            continue
        name = el if _BARE_KEY.fullmatch(el) else json.dumps(el)  # TOML quoting
        out += f".{name}" if out else name
    return out


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_value(value: Any) -> str:
    """A value as it would be written in TOML, shortened for messages."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            text = "nan"
        elif isinstance(value, float) and math.isinf(value):
            text = "inf" if value > 0 else "-inf"
        else:
            text = repr(value)
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, date):
        text = value.isoformat()
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(toml_value(v) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _rule(kind: str, ctx: Mapping[str, Any], msg: str) -> str:
    bounds = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", ">="),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "<="),
    }
    if kind in bounds:
        key, op = bounds[kind]
        bound = ctx[key]
        try:
            shown = format_number(bound)
        except (TypeError, ValueError):  # a date bound (pydantic gives it as text)
            shown = str(bound)
        return f"must be {op} {shown}"
    fixed = {
        "missing": "required key is missing",
        "extra_forbidden": "unknown key",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_type": "must be a number",
        "string_type": "must be a string (in quotes)",
        "bool_type": "must be true or false",
        "list_type": "must be a list",
        "dict_type": "must be a table",
        "model_type": "must be a table",
        "model_attributes_type": "must be a table",
        "finite_number": "must be a finite number",
        "string_too_short": "must not be empty",
        "string_too_long": "is too long",
        "date_type": "must be a date (YYYY-MM-DD, no quotes)",
    }
    if kind in fixed:
        return fixed[kind]
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace(" or ", ", ").replace("'", '"')
        return f"must be one of {expected}" if expected else "is not an allowed value"
    return msg.removeprefix("Value error, ")


def _suggest(word: str, candidates: Sequence[str], listing: bool = False) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if close:
        return f'; did you mean "{close[0]}"?'
    if listing and candidates:
        return "; valid keys: " + ", ".join(sorted(candidates))
    return ""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes a field annotation can hold (through Optional, list, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (list, tuple, typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _tag(model: type[BaseModel]) -> str | None:
    for key in _TAG_KEYS:
        field = model.model_fields.get(key)
        if field is not None and typing.get_origin(field.annotation) is Literal:
            return str(typing.get_args(field.annotation)[0])
    return None


def _models_at(loc: KeyPath) -> list[type[BaseModel]]:
    models: list[type[BaseModel]] = [Scenario]
    for el in loc:
        if isinstance(el, int):
            continue
        inner = [
            m
            for model in models
            if el in model.model_fields
            for m in _models_in(model.model_fields[el].annotation)
        ]
        if inner:
            models = inner
        else:  # a union tag narrows the candidates
            models = [m for m in models if _tag(m) == el] or models
    return models


def _allowed_keys(loc: KeyPath) -> list[str]:
    keys = sorted({k for m in _models_at(loc) for k in m.model_fields})
    if not loc:
        keys.append("extends")
    return keys


def _tags_at(loc: KeyPath) -> list[str]:
    return [t for m in _models_at(loc) if (t := _tag(m)) is not None]
