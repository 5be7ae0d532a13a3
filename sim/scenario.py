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

import hashlib
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sim.arms import REMOVE, arm_scenarios, copy_tables, merge_tables
from sim.errors import Problem, ScenarioError
from sim.scenario_messages import Provenance, format_path, problems_from, toml_value
from sim.scenario_schema import (
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
    raw = copy_tables(dict(data))
    prov = Provenance()
    prov.entries[()] = (0, source)
    return _validate(raw, prov, source, overrides, [], [])


def _validate(
    raw: dict[str, Any],
    prov: Provenance,
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
        raise ScenarioError(problems + problems_from(exc, raw, prov)) from None
    if problems:
        raise ScenarioError(problems)
    scenario._source = source
    scenario._files = tuple(files)
    scenario._overrides = tuple(applied)
    arm_scenarios(scenario)  # every arm is a valid scenario, or a clear error now
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
        shown_was = "(absent)" if was is missing else toml_value(was)
        shown_now = "(absent)" if now is missing else toml_value(now)
        out.append(f"{format_path(key)} {shown_was} (now {shown_now})")
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
) -> tuple[dict[str, Any], Provenance] | None:
    """The file's data with its ``extends`` chain merged in, and where each value came from.

    ``files`` gets ``(absolute path, sha256)`` of every file read, this one first.
    """
    data = _read_toml(path, problems, files)
    if data is None:
        return None
    shown = _display(path)
    prov = Provenance()
    base_data: dict[str, Any] = {}
    if "extends" in data:
        ext = data.pop("extends")
        here = path.resolve()
        if not isinstance(ext, str) or not ext:
            problems.append(
                Problem(shown, "extends", toml_value(ext), "must be a file name (a string)")
            )
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
                Problem(
                    shown, "extends", toml_value(ext[:80]), f"is not a usable file name ({reason})"
                )
            )
            return None
        if base_path in chain + [here]:
            cycle = " -> ".join(_display(p) for p in chain + [here, base_path])
            problems.append(Problem(shown, "extends", toml_value(ext), f"extends cycle: {cycle}"))
            return None
        if not found or base_path.is_dir():
            what = "is a folder, not a scenario file" if found else "no such file"
            problems.append(
                Problem(
                    shown, "extends", toml_value(ext), f"{what} (looked for {_display(base_path)})"
                )
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
    return merge_tables(base_data, data), prov


def _record(data: Mapping[str, Any], prefix: KeyPath, source: str, prov: Provenance) -> None:
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
    prov: Provenance,
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
        applied.append(f"{key}={toml_value(value)}")
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
        rule = _set_path(raw, path, copy_tables(value))
        if rule:
            problems.append(Problem("--set", key, toml_value(value), rule))
            continue
        prov.set(path, "--set")
    return applied


def _set_path(raw: dict[str, Any], path: KeyPath, value: Any) -> str | None:
    """Set ``value`` at ``path`` in ``raw``, creating tables; an error rule, or None."""
    cur: Any = raw
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        where = format_path(path[: i + 1])
        if isinstance(part, int):
            if not isinstance(cur, list) or not 0 <= part < len(cur):
                return f"no such list item: {where}"
            cur = cur[part]
            continue
        if not isinstance(cur, dict):
            return f"{format_path(path[:i])} is not a table"
        if part not in cur:
            if isinstance(nxt, int):
                return f"no such list: {where}"
            cur[part] = {}
        cur = cur[part]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(cur, list) or not 0 <= last < len(cur):
            return f"no such list item: {format_path(path)}"
        cur[last] = value
    elif isinstance(cur, dict):
        if value == REMOVE:  # key={remove = true} removes the key, as in extends
            cur.pop(last, None)
        else:
            cur[last] = value
    else:
        return f"{format_path(path[:-1])} is not a table"
    return None
