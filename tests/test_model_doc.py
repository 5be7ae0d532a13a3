"""docs/model.md and the base scenario cannot drift apart.

The model description documents every default of ``scenarios/nct05129410.toml`` in
Markdown tables with a machine-readable convention: a default table's header is
``| Key | Value | Source | Kind | Confidence |``; the first cell is a key path in
backticks (``prednisone.stages[0].step_mg``,
``adverse_events.gi_intolerance.baseline_per_year``) and the second the value, a
number, a ``YYYY-MM-DD`` date or a text value in backticks, optionally followed by a
unit. The code-constants table (``| Constant | Value | Meaning |``) names module
attributes (``sim.hazards.DAYS_PER_YEAR``) the same way.

The tests check both directions: every documented value is the resolved scenario's
(or the module's), and every number and date of the resolved scenario is documented.
They also check that the headings the README, the report or the document itself
link to exist.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import sim
from tests.conftest import BASE, REPO

DOC_PATH = REPO / "docs" / "model.md"
DOC = DOC_PATH.read_text(encoding="utf-8")

DEFAULT_HEADER = ("Key", "Value", "Source", "Kind", "Confidence")
CONSTANT_HEADER = ("Constant", "Value", "Meaning")
KINDS = frozenset({"registry", "seen", "derived", "memory", "assumption"})
CONFIDENCES = frozenset({"high", "medium-high", "medium", "low-medium", "low"})

NOT_DOCUMENTED: dict[str, str] = {}
"""Numbers of the resolved base scenario deliberately left out of the tables, with why.

Empty on purpose: every number, schema defaults included (an action's
``probability = 1.0``, ``resume_reduce_by_g_per_day = 0.0``, the MPA
``f_dose_exponent = 0.0``), is a modelling choice a reader should see, so none is
treated as trivially structural. Add ``"key.path": "reason"`` here only for a value
that carries no meaning for a reader.
"""

TOP_LEVEL_SECTIONS = (
    "how-to-read-this-document",
    "protocol-schedules",
    "exposure",
    "population-and-eligibility",
    "hazards-and-event-time-sampling",
    "adverse-events",
    "dropout",
    "recruitment-and-re-forecasting",
    "replicates-and-monte-carlo-standard-errors",
    "random-streams-and-common-random-numbers",
    "code-constants",
    "known-corrections-and-open-points",
    "keeping-this-document-true",
)
"""Level-2 headings (GitHub anchors) that the README and the report may link to."""

KeyPath = tuple[str | int, ...]
Scalar = float | int | str | dt.date


# ---------------------------------------------------------------------------
# Parsing the document
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One body row of a Markdown table: its line in the document and its cells."""

    line: int
    header: tuple[str, ...]
    cells: tuple[str, ...]


def _lines_outside_code(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) for every line not inside a fenced code block."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def _cells(line: str) -> tuple[str, ...]:
    return tuple(cell.strip() for cell in line.strip().strip("|").split("|"))


_SEPARATOR = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+$")


def table_rows(text: str) -> list[Row]:
    """Every body row of every table, with the header of its table."""
    rows: list[Row] = []
    block: list[tuple[int, str]] = []
    for number, line in [*_lines_outside_code(text), (0, "")]:
        if line.strip().startswith("|"):
            block.append((number, line))
            continue
        if block:
            (_, head), *rest = block
            assert rest and _SEPARATOR.match(rest[0][1].strip()), (
                f"docs/model.md:{block[0][0]}: a table needs a header and a separator row"
            )
            header = _cells(head)
            for row_line, row in rest[1:]:
                cells = _cells(row)
                assert len(cells) == len(header), (
                    f"docs/model.md:{row_line}: {len(cells)} cells under a "
                    f"{len(header)}-column header"
                )
                rows.append(Row(row_line, header, cells))
            block = []
    return rows


ROWS = table_rows(DOC)
DEFAULT_ROWS = [r for r in ROWS if r.header[0] == DEFAULT_HEADER[0]]
CONSTANT_ROWS = [r for r in ROWS if r.header[0] == CONSTANT_HEADER[0]]

_KEY_CELL = re.compile(r"^`([^`]+)`$")
_PIECE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")
_TEXT_VALUE = re.compile(r"^`([^`]*)`(?:\s|$)")
_DATE_VALUE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\s|$)")
_NUMBER_VALUE = re.compile(r"^([-−]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?:\s|$)")


def row_key(row: Row) -> str:
    """The key path in a row's first cell (without the backticks)."""
    m = _KEY_CELL.match(row.cells[0])
    assert m, f"docs/model.md:{row.line}: first cell must be a key path in backticks"
    return m.group(1)


def parse_key_path(text: str) -> KeyPath:
    """``a.b[0].c`` as ``("a", "b", 0, "c")``."""
    parts: list[str | int] = []
    for piece in text.split("."):
        m = _PIECE.fullmatch(piece)
        if m is None:
            raise ValueError(f"{text!r} is not a key path like a.b[0].c")
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(parts)


def format_key_path(path: KeyPath) -> str:
    """``("a", "b", 0, "c")`` as ``a.b[0].c``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def parse_value(cell: str) -> Scalar:
    """The value at the start of a Value cell: text in backticks, a date or a number."""
    if m := _TEXT_VALUE.match(cell):
        return m.group(1)
    if m := _DATE_VALUE.match(cell):
        return dt.date.fromisoformat(m.group(1))
    if m := _NUMBER_VALUE.match(cell):
        text = m.group(1).replace("−", "-")
        return float(text) if any(c in text for c in ".eE") else int(text)
    raise ValueError(f"{cell!r}: expected a number, a YYYY-MM-DD date or `text`, then a unit")


def walk(data: Any, path: KeyPath) -> Any:
    """The value at ``path`` in nested dicts and lists; KeyError naming the missing step."""
    cur = data
    for i, part in enumerate(path):
        if isinstance(part, int) and isinstance(cur, list | tuple) and 0 <= part < len(cur):
            cur = cur[part]
        elif isinstance(part, str) and isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise KeyError(f"no {format_key_path(path[: i + 1])}")
    return cur


def leaves(data: Any, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """Every leaf of nested dicts and lists, with its key path."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaves(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from leaves(value, (*prefix, i))
    else:
        yield prefix, data


def is_documentable(value: Any) -> bool:
    """Numbers and dates must be documented (text values may be)."""
    return isinstance(value, dt.date) or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def same_value(documented: Scalar, actual: Any) -> bool:
    """Exact equality; numbers compare as numbers (a documented 2.0 is an int 2)."""
    if isinstance(actual, bool):
        return False
    if isinstance(actual, int | float):
        return isinstance(documented, int | float) and float(documented) == float(actual)
    return type(documented) is type(actual) and documented == actual


def mismatches(rows: list[Row], resolved: dict[str, Any]) -> list[str]:
    """Every default row whose key is missing or whose value differs from ``resolved``."""
    problems = []
    for row in rows:
        key = row_key(row)
        try:
            actual = walk(resolved, parse_key_path(key))
            documented = parse_value(row.cells[1])
        except (KeyError, ValueError) as exc:
            problems.append(f"docs/model.md:{row.line}: {key}: {exc}")
            continue
        if not same_value(documented, actual):
            problems.append(
                f"docs/model.md:{row.line}: {key} = {documented!r} in the document, "
                f"{actual!r} in the base scenario"
            )
    return problems


def constant_value(key: str) -> Any:
    """The value of ``package.module.NAME`` or ``package.module.NAME[i]``."""
    path = parse_key_path(key)
    names = [p for p in path if isinstance(p, str)]
    indexes = path[len(names) :]
    for n in range(len(names) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(names[:n]))
        except ModuleNotFoundError:
            continue
        for name in names[n:]:
            obj = getattr(obj, name)
        return walk(obj, indexes)
    raise KeyError(f"{key}: no module")


# ---------------------------------------------------------------------------
# Headings and links
# ---------------------------------------------------------------------------


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def headings(text: str) -> dict[str, int]:
    """Anchor -> heading level, with GitHub's -1, -2 suffixes for repeated headings."""
    out: dict[str, int] = {}
    seen: dict[str, int] = {}
    for _, line in _lines_outside_code(text):
        m = re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out[base if n == 0 else f"{base}-{n}"] = len(m.group(1))
    return out


ANCHORS = headings(DOC)


def links_into_the_document() -> list[tuple[str, str]]:
    """(where, anchor) for every link to a heading of docs/model.md in the repository."""
    found = [("docs/model.md", m.group(1)) for m in re.finditer(r"\]\(#([^)\s]+)\)", DOC)]
    sources = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    sources += sorted(
        p for p in (REPO / "sim").rglob("*") if p.suffix in {".py", ".html", ".md", ".jinja", ".j2"}
    )
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"model\.md#([A-Za-z0-9_\-]+)", text):
            found.append((str(path.relative_to(REPO)), m.group(1)))
    return found


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The base scenario as resolved, defaults filled in."""
    return sim.load_scenario(BASE).to_dict()


def test_default_tables_have_the_documented_columns() -> None:
    headers = {r.header for r in DEFAULT_ROWS} | {r.header for r in CONSTANT_ROWS}
    assert headers == {DEFAULT_HEADER, CONSTANT_HEADER}
    assert len(DEFAULT_ROWS) > 100 and CONSTANT_ROWS


def test_every_documented_default_is_the_base_scenarios(resolved: dict[str, Any]) -> None:
    problems = mismatches(DEFAULT_ROWS, resolved)
    assert not problems, "\n".join(problems)


def test_every_number_of_the_base_scenario_is_documented(resolved: dict[str, Any]) -> None:
    documented = {row_key(r) for r in DEFAULT_ROWS}
    missing = [
        f"{key} = {value!r}"
        for path, value in leaves(resolved)
        if is_documentable(value)
        and (key := format_key_path(path)) not in documented
        and key not in NOT_DOCUMENTED
    ]
    assert not missing, "no row in docs/model.md for:\n" + "\n".join(missing)


def test_no_key_is_documented_twice() -> None:
    keys = [row_key(r) for r in DEFAULT_ROWS + CONSTANT_ROWS]
    assert sorted(k for k in set(keys) if keys.count(k) > 1) == []


def test_exemptions_are_real_numbers_and_not_also_documented(resolved: dict[str, Any]) -> None:
    documented = {row_key(r) for r in DEFAULT_ROWS}
    for key, reason in NOT_DOCUMENTED.items():
        assert reason.strip(), f"{key}: give the reason it is not documented"
        assert is_documentable(walk(resolved, parse_key_path(key))), key
        assert key not in documented, f"{key} is documented and exempt"


def test_every_row_has_a_known_kind_source_and_confidence() -> None:
    for row in DEFAULT_ROWS:
        _, _, source, kind, confidence = row.cells
        where = f"docs/model.md:{row.line}: {row_key(row)}"
        assert source, f"{where}: no source"
        assert kind in KINDS, f"{where}: kind {kind!r} not in {sorted(KINDS)}"
        assert confidence in CONFIDENCES, f"{where}: confidence {confidence!r}"


def test_schema_defaults_are_marked_as_such() -> None:
    """A value the file does not write (the schema fills it in) says so in its Source;
    a value the file writes does not claim to be a schema default."""
    written = tomllib.loads(BASE.read_text(encoding="utf-8"))
    wrong = []
    for row in DEFAULT_ROWS:
        key = row_key(row)
        try:
            walk(written, parse_key_path(key))
            in_file = True
        except KeyError:
            in_file = False
        marked = "schema default" in row.cells[2].lower()
        if in_file == marked:
            state = "is written in" if in_file else "is not written in"
            wrong.append(
                f"docs/model.md:{row.line}: {key} {state} the file; Source: {row.cells[2]}"
            )
    assert not wrong, "\n".join(wrong)


def test_code_constants_are_the_modules() -> None:
    for row in CONSTANT_ROWS:
        key = row_key(row)
        actual = constant_value(key)
        documented = parse_value(row.cells[1])
        assert same_value(documented, actual), f"docs/model.md:{row.line}: {key} is {actual!r}"


def test_the_drift_check_catches_a_changed_default() -> None:
    """A scenario that differs in one default fails on exactly that row."""
    key = "adverse_events.gi_intolerance.baseline_per_year"
    changed = sim.load_scenario(BASE, overrides={key: 0.2}).to_dict()
    problems = mismatches(DEFAULT_ROWS, changed)
    assert len(problems) == 1 and f" {key} = 0.197 " in problems[0], problems


def test_top_level_sections_exist() -> None:
    missing = [a for a in TOP_LEVEL_SECTIONS if ANCHORS.get(a) != 2]
    assert not missing, f"docs/model.md has no '## ' heading for: {missing}"


def test_every_adverse_event_has_a_section(resolved: dict[str, Any]) -> None:
    missing = [name for name in resolved["adverse_events"] if ANCHORS.get(name) != 3]
    assert not missing, f"docs/model.md has no '### <name>' heading for: {missing}"


def test_every_link_into_the_document_names_a_heading() -> None:
    links = links_into_the_document()
    assert links  # the contents list links every section
    broken = [f"{where}: #{anchor}" for where, anchor in links if anchor not in ANCHORS]
    assert not broken, "links to headings that do not exist:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Hazards and event-time sampling", "hazards-and-event-time-sampling"),
        ("serious_infection", "serious_infection"),
        (
            "Replicates and Monte Carlo standard errors",
            "replicates-and-monte-carlo-standard-errors",
        ),
        ("`sim.run` and [links](x.md)", "simrun-and-links"),
    ],
)
def test_slug_follows_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
