"""Scenario files: load TOML, resolve ``extends``, apply overrides, validate, dump, hash.

A scenario is one declarative TOML file under ``scenarios/``. A variant names
its base with ``extends = "base.toml"`` (relative to the variant's folder):
tables deep-merge, lists and values replace. ``name`` and ``description`` are
never inherited: a variant is named by its own file. Command-line overrides
(``--set prednisone.start_mg_per_kg=0.5``) are applied last.

Everything is checked at load. Every problem is reported together, each as
``file: key.path = value: rule``, in a :class:`~sim.errors.ScenarioError`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import stat
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ValidationError

from sim.errors import Problem, ScenarioError
from sim.scenario_models import (
    DAYS_PER_MONTH,
    EXCLUSION_CONDITIONS,
    RESERVED_EVENT_NAMES,
    Action,
    AdverseEvent,
    DeathRaise,
    DoseBands,
    DoseLogLinear,
    DropoutSettings,
    EligibilitySettings,
    ExclusionName,
    ExposureSettings,
    Fraction,
    HoldStage,
    KeyPath,
    Leave,
    MmfHold,
    MmfReduce,
    MmfRegimen,
    MmfStop,
    MpaAucBands,
    MpaAucLogLinear,
    MpaPK,
    Multiplier,
    OralPK,
    PopulationSettings,
    PrednisoneReescalate,
    PrednisoneRegimen,
    Prevalence,
    RateChange,
    RecruitmentSettings,
    Scenario,
    Site,
    Stage,
    TaperStage,
    TimeOnStudyBands,
    TitrationStep,
    TreatmentSettings,
    WeightedCumulativeDose,
    _FieldProblems,
    _num,
)

__all__ = [
    "DAYS_PER_MONTH",
    "EXCLUSION_CONDITIONS",
    "RESERVED_EVENT_NAMES",
    "Action",
    "AdverseEvent",
    "DeathRaise",
    "DoseBands",
    "DoseLogLinear",
    "DropoutSettings",
    "EligibilitySettings",
    "ExclusionName",
    "ExposureSettings",
    "Fraction",
    "HoldStage",
    "KeyPath",
    "Leave",
    "MmfHold",
    "MmfReduce",
    "MmfRegimen",
    "MmfStop",
    "MpaAucBands",
    "MpaAucLogLinear",
    "MpaPK",
    "Multiplier",
    "OralPK",
    "PopulationSettings",
    "PrednisoneReescalate",
    "PrednisoneRegimen",
    "Prevalence",
    "RateChange",
    "RecruitmentSettings",
    "Scenario",
    "ScenarioError",
    "Site",
    "Stage",
    "TaperStage",
    "TimeOnStudyBands",
    "TitrationStep",
    "TreatmentSettings",
    "WeightedCumulativeDose",
    "load_scenario",
    "scenario_differences",
    "scenario_from_dict",
]

# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

_NOT_INHERITED = ("name", "description")


def load_scenario(
    path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
) -> Scenario:
    """Load, resolve and validate a scenario file.

    Parameters
    ----------
    path : str or path-like
        The TOML file.
    overrides : mapping or sequence of str, optional
        Values to set after ``extends`` is resolved: ``{"prednisone.start_mg_per_kg":
        0.5}``, or command-line strings ``["prednisone.start_mg_per_kg=0.5"]``
        whose values are parsed as TOML (a bare word is a string). Key paths
        may index lists: ``prednisone.stages[1].days``.

    Returns
    -------
    Scenario

    Raises
    ------
    ScenarioError
        Listing every problem: file, key path, value and rule broken.
    """
    problems: list[Problem] = []
    file = Path(path)
    files: list[tuple[str, str]] = []
    resolved = _resolve(file, [], problems, files)
    if resolved is None:
        raise ScenarioError(problems)
    raw, prov = resolved
    if "name" not in raw:
        raw["name"] = file.stem
    return _validate(raw, prov, _display(file), overrides, problems, files)


def scenario_from_dict(
    data: Mapping[str, Any],
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    source: str = "<dict>",
) -> Scenario:
    """Validate a scenario given as plain data (no ``extends``), e.g. from a notebook.

    Parameters
    ----------
    data : mapping
        The scenario's tables as nested dicts and lists.
    overrides : mapping or sequence of str, optional
        As in :func:`load_scenario`.
    source : str, optional
        The name to show in error messages.
    """
    raw = _copy(dict(data))
    prov = _Provenance()
    prov.entries[()] = (0, source)
    return _validate(raw, prov, source, overrides, [], [])


def _validate(
    raw: dict[str, Any],
    prov: _Provenance,
    source: str,
    overrides: Mapping[str, Any] | Sequence[str] | None,
    problems: list[Problem],
    files: list[tuple[str, str]],
) -> Scenario:
    applied: list[str] = []
    if overrides:
        applied = _apply_overrides(raw, prov, overrides, problems)
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(problems + _translate(exc, raw, prov)) from None
    if problems:
        raise ScenarioError(problems)
    scenario._source = source
    scenario._files = tuple(files)
    scenario._overrides = tuple(applied)
    return scenario


def _display(path: Path) -> str:
    """A path as the user would write it: relative to the working folder when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


#: Scenario files are small text files: limits that keep a careless or hostile file
#: from exhausting memory, the stack or the clock, each reported as a problem.
MAX_SCENARIO_BYTES = 1 << 20
MAX_NESTING = 16
MAX_EXTENDS = 32


def scenario_differences(
    old: Mapping[str, Any], new: Mapping[str, Any], most: int = 5
) -> list[str]:
    """What differs between two resolved scenarios (their JSON data), as key paths.

    ``["prednisone.start_mg_per_kg 1.0 (now 0.5)", ...]``, at most ``most`` of
    them and then how many more, so that a refused resume or folder says which
    settings changed rather than showing two hashes.
    """

    def flat(data: Any, prefix: KeyPath, out: dict[KeyPath, Any]) -> dict[KeyPath, Any]:
        stack = [(data, prefix)]
        while stack:
            value, at = stack.pop()
            if isinstance(value, Mapping) and value:
                stack.extend((v, (*at, k)) for k, v in value.items())
            elif isinstance(value, list) and value:
                stack.extend((v, (*at, i)) for i, v in enumerate(value))
            else:
                out[at] = value
        return out

    a, b = flat(old, (), {}), flat(new, (), {})
    keys = sorted(set(a) | set(b), key=lambda k: [str(x) for x in k])
    missing = object()
    out = []
    for key in keys:
        was, now = a.get(key, missing), b.get(key, missing)
        if was == now or (key and key[-1] in _NOT_INHERITED):
            continue
        shown_was = "(absent)" if was is missing else _toml(was)
        shown_now = "(absent)" if now is missing else _toml(now)
        out.append(f"{_format_path(key)} {shown_was} (now {shown_now})")
    if len(out) > most:
        out = [*out[:most], f"and {len(out) - most} more"]
    return out


def _read_toml(
    path: Path, problems: list[Problem], files: list[tuple[str, str]] | None = None
) -> dict[str, Any] | None:
    shown = _display(path)

    def fail(rule: str) -> None:
        problems.append(Problem(shown, "", "", rule))

    try:
        info = path.stat()  # before opening: a pipe would block on open, /dev/zero never end
        if stat.S_ISDIR(info.st_mode):
            fail("is a folder, not a scenario file")
            return None
        if not stat.S_ISREG(info.st_mode):
            fail("is not a regular file (a device, a pipe or a socket): give a TOML file")
            return None
        with path.open("rb") as fh:
            data = fh.read(MAX_SCENARIO_BYTES + 1)
    except FileNotFoundError:
        fail("no such file")
        return None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        fail(f"cannot be read ({getattr(exc, 'strerror', None) or exc})")
        return None
    if len(data) > MAX_SCENARIO_BYTES:
        fail(f"is larger than {MAX_SCENARIO_BYTES // 1024} KiB; a scenario is a small text file")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"is not UTF-8 text ({exc.reason})")
        return None
    if files is not None:
        files.append((str(path.resolve()), hashlib.sha256(data).hexdigest()))
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        fail(f"invalid TOML: {exc}")
        return None
    except RecursionError:
        fail(f"too deeply nested: tables and lists may nest at most {MAX_NESTING} levels")
        return None
    if _depth(parsed) > MAX_NESTING:
        fail(f"too deeply nested: tables and lists may nest at most {MAX_NESTING} levels")
        return None
    return parsed


def _depth(value: Any) -> int:
    """How deeply tables and lists nest in ``value`` (0 for a plain value), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        if level + 1 <= MAX_NESTING + 1:  # deeper is too deep already
            stack.extend((child, level + 1) for child in children)
    return deepest


def _resolve(
    path: Path, chain: list[Path], problems: list[Problem], files: list[tuple[str, str]]
) -> tuple[dict[str, Any], _Provenance] | None:
    """The file's data with its ``extends`` chain merged in, and where each value came from.

    ``files`` gets ``(absolute path, sha256)`` of every file read, this one first.
    """
    data = _read_toml(path, problems, files)
    if data is None:
        return None
    shown = _display(path)
    prov = _Provenance()
    base_data: dict[str, Any] = {}
    if "extends" in data:
        ext = data.pop("extends")
        here = path.resolve()
        if not isinstance(ext, str) or not ext:
            problems.append(Problem(shown, "extends", _toml(ext), "must be a file name (a string)"))
            return None
        if len(chain) + 1 >= MAX_EXTENDS:
            first = _display(chain[0]) if chain else shown  # the file the user named
            rule = f"more than {MAX_EXTENDS} files extend in a chain"
            problems.append(Problem(first, "extends", "", rule))
            return None
        try:
            base_path = (path.parent / ext).resolve()
            found = base_path.exists()
        except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a name too long, a loop
            reason = getattr(exc, "strerror", None) or str(exc).split(":")[0]
            problems.append(
                Problem(shown, "extends", _toml(ext[:80]), f"is not a usable file name ({reason})")
            )
            return None
        if base_path in chain + [here]:
            cycle = " -> ".join(_display(p) for p in chain + [here, base_path])
            problems.append(Problem(shown, "extends", _toml(ext), f"extends cycle: {cycle}"))
            return None
        if not found or base_path.is_dir():
            what = "is a folder, not a scenario file" if found else "no such file"
            problems.append(
                Problem(shown, "extends", _toml(ext), f"{what} (looked for {_display(base_path)})")
            )
            return None
        base = _resolve(base_path, chain + [here], problems, files)
        if base is None:
            return None
        base_data, prov = base
        for key in _NOT_INHERITED:
            base_data.pop(key, None)
            prov.pop((key,))
    _record(data, (), shown, prov)
    prov.entries[()] = (0, shown)  # anything not written anywhere (a missing key) is this file's
    return _merge(base_data, data), prov


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into ``base``: tables merge, lists and values replace."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = _copy(value)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


class _Provenance:
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


def _record(data: Mapping[str, Any], prefix: KeyPath, source: str, prov: _Provenance) -> None:
    """Note ``source`` as the origin of every value in ``data`` (lists as a whole)."""
    stack: list[tuple[Mapping[str, Any], KeyPath]] = [(data, prefix)]
    while stack:
        table, at = stack.pop()
        for key, value in table.items():
            path = (*at, key)
            if isinstance(value, Mapping) and value:
                prov.pop(path)  # a table merges into what the base wrote below it
                stack.append((value, path))
            else:
                prov.set(path, source)


_PATH_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def _parse_key_path(text: str) -> KeyPath | None:
    """``a.b[0].c`` as a key path, or None when it is not one (or is deeper than a file may be)."""
    parts: list[str | int] = []
    if text.count(".") + text.count("[") >= MAX_NESTING + 2:
        return None
    for piece in text.split("."):
        m = _PATH_TOKEN.fullmatch(piece)
        if m is None:
            return None
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(parts)


def _parse_override_value(text: str) -> Any:
    """A ``--set`` value read as TOML (``0.5``, ``"x"``, ``[1, 2]``); a bare word is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return text.strip()


def _apply_overrides(
    raw: dict[str, Any],
    prov: _Provenance,
    overrides: Mapping[str, Any] | Sequence[str],
    problems: list[Problem],
) -> list[str]:
    """Set each override in ``raw``; returns them as ``key.path=value`` (TOML values), in order."""
    items: Iterable[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = overrides.items()
    else:
        parsed: list[tuple[str, Any]] = []
        for entry in overrides:
            key, sep, value = entry.partition("=")
            if not sep or not key.strip():
                problems.append(Problem("--set", entry, "", "must be KEY.PATH=VALUE, e.g. a.b=0.5"))
                continue
            parsed.append((key.strip(), _parse_override_value(value)))
        items = parsed
    applied: list[str] = []
    for key, value in items:
        if _depth(value) > MAX_NESTING:
            problems.append(
                Problem(
                    "--set", key, "", f"the value is nested more than {MAX_NESTING} levels deep"
                )
            )
            continue
        applied.append(f"{key}={_toml(value)}")
        path = _parse_key_path(key)
        if path is None:
            problems.append(Problem("--set", key, "", "is not a key path like a.b[0].c"))
            continue
        if path[0] == "extends":
            problems.append(
                Problem(
                    "--set",
                    key,
                    "",
                    "extends cannot be overridden; name the base file in the scenario",
                )
            )
            continue
        rule = _set_path(raw, path, _copy(value))
        if rule:
            problems.append(Problem("--set", key, _toml(value), rule))
            continue
        prov.set(path, "--set")
    return applied


def _set_path(raw: dict[str, Any], path: KeyPath, value: Any) -> str | None:
    """Set ``value`` at ``path`` in ``raw``, creating tables; an error rule, or None."""
    cur: Any = raw
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        where = _format_path(path[: i + 1])
        if isinstance(part, int):
            if not isinstance(cur, list) or not 0 <= part < len(cur):
                return f"no such list item: {where}"
            cur = cur[part]
            continue
        if not isinstance(cur, dict):
            return f"{_format_path(path[:i])} is not a table"
        if part not in cur:
            if isinstance(nxt, int):
                return f"no such list: {where}"
            cur[part] = {}
        cur = cur[part]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(cur, list) or not 0 <= last < len(cur):
            return f"no such list item: {_format_path(path)}"
        cur[last] = value
    elif isinstance(cur, dict):
        cur[last] = value
    else:
        return f"{_format_path(path[:-1])} is not a table"
    return None


# ---------------------------------------------------------------------------
# Turning pydantic's errors into problems a planner can act on
# ---------------------------------------------------------------------------


def _translate(exc: ValidationError, raw: dict[str, Any], prov: _Provenance) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        loc: tuple[str | int, ...] = tuple(err["loc"])
        path, value, found = _walk(loc, raw)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "value_error" and isinstance(ctx.get("error"), _FieldProblems):
            for rel, val, rule in ctx["error"].problems:
                sub = path + rel
                shown = "" if val is None else _toml(val)
                problems.append(Problem(_origin(sub, prov), _format_path(sub), shown, rule))
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
        shown = _toml(value) if found else ""
        problems.append(Problem(_origin(path, prov), _format_path(path), shown, rule))
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


def _origin(path: KeyPath, prov: _Provenance) -> str:
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


def _format_path(path: KeyPath) -> str:
    out = ""
    for el in path:
        if isinstance(el, int):
            out += f"[{el}]"
            continue
        name = el if _BARE_KEY.fullmatch(el) else json.dumps(el)  # TOML quoting
        out += f".{name}" if out else name
    return out


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml(value: Any) -> str:
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
        text = "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(_toml(v) for v in value) + "]"
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
            shown = _num(bound)
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
