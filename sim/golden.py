"""Golden schedules: the dosing a scenario prescribes for reference patients, kept as CSV.

``dosesim check`` rebuilds each scenario's schedules for the reference weights
and compares them, day by day, with the CSV committed under
``scenarios/schedules/``. A difference is reported as the days whose dose
changed, so a planner sees at once what an edit did to the protocol.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.arms import arm_scenarios
from sim.errors import DosesimError
from sim.fileio import atomic_write_text, read_regular_file
from sim.regimens import Body, scenario_schedules
from sim.scenario import Scenario
from sim.schedule import Schedule

__all__ = [
    "GOLDEN_COLUMNS",
    "REFERENCE_WEIGHTS_KG",
    "SCHEDULE_COLUMNS",
    "CheckResult",
    "check_scenario",
    "fmt_number",
    "golden_text",
    "schedule_rows",
]

REFERENCE_WEIGHTS_KG: tuple[float, ...] = (45.0, 60.0, 75.0, 90.0, 110.0)
"""Body weights (kg) whose schedules are kept: the edges and middle of the adult range."""
LIBRARY_WEIGHTS_KG: tuple[float, ...] = (45.0, 55.0, 62.5, 75.0, 90.0)
"""The reference weights of scenarios with ``[drugs]`` or arms: they fall on and between
the weight bands published protocols use (37-55, 50-75 kg and so on)."""
REFERENCE_HEIGHTS_CM: tuple[float, ...] = (160.0, 175.0)
"""Heights (cm) whose schedules are kept when a dose is per m2 of body surface area."""

SCHEDULE_COLUMNS = ("drug", "start_day", "end_day", "dose_mg_per_day", "cumulative_mg")
GOLDEN_COLUMNS = ("weight_kg",) + SCHEDULE_COLUMNS
_HEADER = "# Golden schedules written by `dosesim check --update`; do not edit by hand.\n"
_MAX_RANGES = 8


def fmt_number(x: float) -> str:
    """A number as a person writes it: ``60`` not ``60.0``, ``7.5`` exactly."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def schedule_rows(schedules: dict[str, Schedule]) -> list[dict[str, str]]:
    """One row per constant-dose segment (:data:`SCHEDULE_COLUMNS`; ``end_day`` exclusive)."""
    return [
        {
            "drug": drug,
            "start_day": str(seg.start_day),
            "end_day": str(seg.end_day),
            "dose_mg_per_day": fmt_number(seg.dose_mg_per_day),
            "cumulative_mg": fmt_number(seg.cumulative_mg),
        }
        for drug, schedule in schedules.items()
        for seg in schedule.segments()
    ]


def rows_to_csv(rows: Iterable[dict[str, str]], columns: Sequence[str]) -> str:
    """CSV text with a header row, ``\\n`` line endings."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _layout(scenario: Scenario) -> tuple[bool, bool]:
    """Whether the golden file has an ``arm`` column and a ``height_cm`` column."""
    by_m2 = any(
        regimen.uses("mg_per_m2")
        for arm in arm_scenarios(scenario)
        for regimen in arm.drugs.values()
    )
    return bool(scenario.arms), by_m2


def reference_weights(scenario: Scenario) -> tuple[float, ...]:
    """The weights a scenario's golden file keeps (kg)."""
    new = scenario.arms or any(arm.drugs for arm in arm_scenarios(scenario))
    return LIBRARY_WEIGHTS_KG if new else REFERENCE_WEIGHTS_KG


def golden_text(scenario: Scenario, weights_kg: Sequence[float] | None = None) -> str:
    """The golden CSV for a scenario: every drug's segments at every reference weight
    (and height, where a dose is per m2), for every arm."""
    with_arm, with_height = _layout(scenario)
    weights = reference_weights(scenario) if weights_kg is None else weights_kg
    heights: Sequence[float] = REFERENCE_HEIGHTS_CM if with_height else (float("nan"),)
    names = [arm.name for arm in scenario.arms] or [""]
    rows = []
    for name, arm in zip(names, arm_scenarios(scenario), strict=True):
        for w in weights:
            for h in heights:
                for row in schedule_rows(scenario_schedules(arm, Body(w, h))):
                    first = {"arm": name} if with_arm else {}
                    first["weight_kg"] = fmt_number(w)
                    if with_height:
                        first["height_cm"] = fmt_number(h)
                    rows.append({**first, **row})
    return _HEADER + rows_to_csv(rows, _columns(with_arm, with_height))


def _columns(with_arm: bool, with_height: bool) -> tuple[str, ...]:
    arm = ("arm",) if with_arm else ()
    height = ("height_cm",) if with_height else ()
    return (*arm, "weight_kg", *height, *SCHEDULE_COLUMNS)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking one scenario against its golden file.

    Attributes
    ----------
    scenario_file : str
        The scenario checked.
    golden_file : Path
        Its golden CSV.
    differences : list of str
        Readable lines, empty when the schedules match.
    updated : bool
        True when ``--update`` rewrote the golden file.
    """

    scenario_file: str
    golden_file: Path
    differences: list[str]
    updated: bool = False

    @property
    def ok(self) -> bool:
        """True when the schedules match the golden file."""
        return not self.differences


_GOLDEN_BYTES = 50 << 20


def _read(path: Path) -> str:
    """A golden file's text, or a clear error (a folder, a device, not UTF-8 text)."""
    try:
        return read_regular_file(path, _GOLDEN_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise DosesimError(f"{path}: not a golden schedule file (not UTF-8 text)") from None


def golden_path(scenario_file: str | Path, golden_dir: str | Path | None) -> Path:
    """Where a scenario's golden CSV lives: ``<golden_dir>/<file stem>.csv``.

    Without ``golden_dir`` it is the ``schedules/`` folder beside the scenario.
    """
    scenario_file = Path(scenario_file)
    folder = Path(golden_dir) if golden_dir is not None else scenario_file.parent / "schedules"
    return folder / f"{scenario_file.stem}.csv"


def check_scenario(
    scenario: Scenario,
    scenario_file: str | Path,
    golden_dir: str | Path | None = None,
    update: bool = False,
    weights_kg: Sequence[float] | None = None,
) -> CheckResult:
    """Compare a scenario's schedules with its golden CSV, or rewrite the CSV.

    Parameters
    ----------
    scenario : Scenario
        The loaded scenario.
    scenario_file : str or Path
        Its file (names the golden CSV).
    golden_dir : str or Path, optional
        Folder of golden CSVs; default ``schedules/`` beside the scenario.
    update : bool
        Rewrite the golden file with the current schedules instead of comparing.
    weights_kg : sequence of float, optional
        Reference body weights, kg (default :func:`reference_weights`).
    """
    path = golden_path(scenario_file, golden_dir)
    current = golden_text(scenario, weights_kg)
    name = Path(scenario_file).stem
    if update:
        old = _read(path) if path.exists() and path.is_file() else None
        if old != current:
            atomic_write_text(path, current)
        return CheckResult(str(scenario_file), path, [], updated=old != current)
    if not path.exists():
        return CheckResult(
            str(scenario_file),
            path,
            [f"{name}: no golden file {path}; create it with `dosesim check --update`"],
        )
    golden = _parse(_read(path), path)
    now = _parse(current, path)
    return CheckResult(str(scenario_file), path, _diff(name, golden, now))


_Key = tuple[str, float, float, str]
_LAYOUTS = {_columns(a, h): (a, h) for a in (False, True) for h in (False, True)}


def _parse(text: str, path: Path) -> dict[_Key, Schedule]:
    """Golden CSV text back into schedules keyed by (arm, weight, height, drug)."""
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or tuple(reader.fieldnames) not in _LAYOUTS:
        raise DosesimError(
            f"{path}: not a golden schedule file (columns must be {','.join(GOLDEN_COLUMNS)},"
            " with arm first and height_cm after weight_kg where they apply);"
            " rewrite it with `dosesim check --update`"
        )
    pieces: dict[_Key, list[tuple[int, int, float]]] = {}
    for lineno, row in enumerate(reader, start=2):
        try:
            height = float(row["height_cm"]) if "height_cm" in row else -1.0
            key = (row.get("arm", ""), float(row["weight_kg"]), height, row["drug"])
            seg = (int(row["start_day"]), int(row["end_day"]), float(row["dose_mg_per_day"]))
        except (TypeError, ValueError):
            raise DosesimError(
                f"{path}: data row {lineno}: not a valid schedule row; "
                "rewrite the file with `dosesim check --update`"
            ) from None
        pieces.setdefault(key, []).append(seg)
    out = {}
    for key, segs in pieces.items():
        segs.sort()
        try:
            out[key] = Schedule(
                tuple(s for s, _, _ in segs), tuple(d for _, _, d in segs), segs[-1][1]
            )
        except ValueError as exc:
            raise DosesimError(f"{path}: {_where(key)}: {exc}") from None
    return out


def _diff(name: str, golden: dict[_Key, Schedule], now: dict[_Key, Schedule]) -> list[str]:
    out: list[str] = []
    for key in sorted(set(golden) | set(now)):
        where = f"{name}: {_where(key)}"
        if key not in now:
            out.append(f"{where}: in the golden file but no longer prescribed")
            continue
        if key not in golden:
            out.append(f"{where}: prescribed now but not in the golden file")
            continue
        g, n = golden[key], now[key]
        if g == Schedule(n.change_days, n.doses_mg_per_day, n.end_day):
            continue
        out.append(f"{where}: schedule changed")
        length = max(g.end_day, n.end_day)
        gd = np.zeros(length)
        nd = np.zeros(length)
        gd[: g.end_day] = g.daily_doses()
        nd[: n.end_day] = n.daily_doses()
        if g.end_day != n.end_day:
            out.append(f"  end of treatment: golden day {g.end_day}, now day {n.end_day}")
        ranges = _changed_ranges(gd, nd)
        for first, last in ranges[:_MAX_RANGES]:
            days = f"day {first}" if first == last else f"days {first}-{last}"
            was, now_ = fmt_number(gd[first]), fmt_number(nd[first])
            out.append(f"  {days}: golden {was} mg/day, now {now_} mg/day")
        if len(ranges) > _MAX_RANGES:
            out.append(f"  ... and {len(ranges) - _MAX_RANGES} more changed stretches")
        was, now_ = fmt_number(g.total_mg), fmt_number(n.total_mg)
        out.append(f"  cumulative at end: golden {was} mg, now {now_} mg")
    return out


def _where(key: _Key) -> str:
    arm, weight, height, drug = key
    body = f"{fmt_number(weight)} kg" + (f", {fmt_number(height)} cm" if height >= 0 else "")
    return (f"arm {arm}, " if arm else "") + f"{drug}, {body}"


def _changed_ranges(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of days where ``a`` and ``b`` differ and both are constant."""
    differ = a != b
    ranges: list[tuple[int, int]] = []
    for d in map(int, np.flatnonzero(differ)):
        if ranges and ranges[-1][1] == d - 1 and a[d] == a[d - 1] and b[d] == b[d - 1]:
            ranges[-1] = (ranges[-1][0], d)
        else:
            ranges.append((d, d))
    return ranges
