"""A fuzz of the ``dosesim`` command as a careless or hostile user would drive it.

Two kinds of case, each run in this process through :func:`sim.cli.main`:

* **scenario mutations**: a committed scenario with a few random edits (a key
  deleted, a value of the wrong type, an extreme or non-finite number, unicode,
  deep nesting, an unknown key, a list emptied or repeated, a name with path
  separators, an ``extends`` cycle or a long chain), then ``validate``; a
  scenario that validates is then asked for a ``schedule`` and a 3-patient
  ``cohort``;
* **option cases**: a command with random option values (numbers out of range
  or not numbers, odd dates, output places that are files or nested in files,
  malformed scheduler addresses and ``--set`` strings).

A case passes when the command returns 0 or 2 (or argparse exits 2), raises
nothing else (a traceback), and finishes within its time limit (SIGALRM: a
hang). :func:`run_fuzz` runs cases until a count or a time budget;
``python -m tests.fuzz --minutes 15`` is the long run, ``tests/test_fuzz.py``
the bounded one in ``make test``. Cases draw from ``random.Random(seed)``:
every case is reproducible from its seed (printed for a failure).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import io
import math
import os
import random
import signal
import sys
import time
import tomllib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((REPO / "scenarios").glob("*.toml"))
BASE = REPO / "scenarios" / "nct05129410.toml"

_ODD_NUMBERS = [0, -1, 1, 1e-300, 1e308, -1e308, math.inf, -math.inf, math.nan, 2**63, 7.5, 1e6]
_ODD_STRINGS = ["", " ", "Xi'an", "☃ 雪", "../../etc", "/tmp/x", "a" * 300, "NaN", "\u202e", "1e3"]


@dataclass
class Outcome:
    """What one fuzz run found."""

    cases: int = 0
    scenario_cases: int = 0
    option_cases: int = 0
    valid: int = 0
    tracebacks: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    bad_status: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return self.tracebacks + self.hangs + self.bad_status


class _Hang(BaseException):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise _Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call(argv: list[str], limit_s: float) -> tuple[str, int | None, str]:
    """``main(argv)`` with output captured: ("ok", status, "") or ("traceback"/"hang", ...)."""
    from sim.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with _time_limit(limit_s), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse's usage errors
                status = exc.code if isinstance(exc.code, int) else 2
    except _Hang:
        return "hang", None, ""
    except Exception:  # the point: anything that escapes is a finding
        return "traceback", None, traceback.format_exc(limit=-3)
    text = err.getvalue()
    if "Traceback" in text:  # printed, not raised (e.g. from a destructor, or a thread)
        return "traceback", None, text[-2000:]
    return "ok", status, text


# -- scenario mutations ------------------------------------------------------------


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    stack = [(data, prefix)]
    while stack:
        value, at = stack.pop()
        if at:
            out.append(at)
        if isinstance(value, dict):
            stack.extend((v, (*at, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*at, i)) for i, v in enumerate(value))
    return out


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def _odd_value(rng: random.Random, old: Any) -> Any:
    kind = rng.randrange(10)
    if kind == 0:
        return rng.choice(_ODD_NUMBERS)
    if kind == 1:
        return rng.choice(_ODD_STRINGS)
    if kind == 2:
        return rng.choice([True, False])
    if kind == 3:
        return []
    if kind == 4:
        return {"x": rng.choice(_ODD_NUMBERS)}
    if kind == 5:  # deep nesting
        value: Any = 1
        for _ in range(rng.choice([5, 20, 200])):
            value = [value]
        return value
    if kind == 6 and isinstance(old, int | float) and not isinstance(old, bool):
        return old * rng.choice([-1, 0, 1e-9, 1e9, 10])
    if kind == 7 and isinstance(old, list) and old:
        return old * rng.choice([0, 2, 50])
    if kind == 8:  # a date: the edges of the calendar
        return rng.choice(
            [datetime.date(1, 1, 1), datetime.date(9999, 12, 31), datetime.date(2020, 2, 29),
             datetime.date(1899, 12, 31), datetime.date(2200, 12, 31)]
        )  # fmt: skip
    return rng.choice(["2020-02-30", "9999-12-31", "0001-01-01", "not a date"])


def mutate(data: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of ``data`` with 1-4 random edits."""
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 4)):
        paths = _paths(data)
        if not paths:
            break
        path = rng.choice(paths)
        parent = _parent(data, path)
        op = rng.randrange(4)
        try:
            if op == 0:  # delete
                del parent[path[-1]]
            elif op == 1:  # wrong or extreme value
                parent[path[-1]] = _odd_value(rng, parent[path[-1]])
            elif op == 2 and isinstance(parent, dict):  # an unknown key
                parent[rng.choice(["extra", "stpe_mg", "☃", "a" * 50])] = 1
            else:
                parent[path[-1]] = _odd_value(rng, parent[path[-1]])
        except (KeyError, IndexError, TypeError):
            continue
    return data


def _write_toml(path: Path, data: dict[str, Any]) -> bool:
    try:
        path.write_text(tomli_w.dumps(data))
    except (TypeError, ValueError, RecursionError):  # tomli_w cannot write it: not a case
        return False
    return True


def scenario_case(rng: random.Random, folder: Path, limit_s: float) -> list[tuple[str, str, str]]:
    """One mutated scenario through validate (and schedule and cohort if it validates)."""
    source = rng.choice(SCENARIOS)
    data = tomllib.loads(source.read_text())
    if "extends" in data:
        data["extends"] = str((source.parent / data["extends"]).resolve())
    roll = rng.random()
    path = folder / f"s{rng.randrange(10**9)}.toml"
    if roll < 0.05:  # an extends cycle
        other = folder / f"o{rng.randrange(10**9)}.toml"
        other.write_text(f'extends = "{path.name}"\n')
        data = {"extends": other.name}
    elif roll < 0.08:  # a long chain
        previous = str(BASE)
        for i in range(rng.choice([10, 40])):
            link = folder / f"chain{i}_{rng.randrange(10**6)}.toml"
            link.write_text(f'extends = "{previous}"\n')
            previous = str(link)
        data = {"extends": previous}
    else:
        data = mutate(data, rng)
    if not _write_toml(path, data):
        return []
    status, code, detail = _call(["validate", str(path)], limit_s)
    results = [(f"validate {path.name}", _judge(status, code), detail)]
    if status == "ok" and code == 0:
        argv = ["schedule", str(path), "--weight-kg", "60"]
        status, code, detail = _call(argv, limit_s)
        results.append((f"schedule {path.name}", _judge(status, code), detail))
        out = folder / f"out{rng.randrange(10**9)}"
        argv = ["cohort", str(path), "--patients", "3", "--seed", "1", "--out", str(out)]
        status, code, detail = _call(argv, limit_s)
        results.append((f"cohort {path.name}", _judge(status, code), detail))
        extra = rng.choice(["run", "forecast", None])
        if extra is not None:  # the trial model, replicates and all, on a few of them
            argv = [extra, str(path), "--replicates", "2", "--quiet", "--out", str(out) + extra]
            if extra == "forecast":
                argv += ["--search-replicates", "2"]
            status, code, detail = _call(argv, limit_s)
            results.append((f"{extra} {path.name}", _judge(status, code), detail))
    return results


def _judge(status: str, code: int | None) -> str:
    if status != "ok":
        return status
    return "ok" if code in (0, 2) else f"status {code}"


# -- option cases --------------------------------------------------------------------

_COMMANDS = {
    "schedule": ["--weight-kg", "--csv"],
    "exposure": ["--weight-kg", "--patients", "--seed", "--csv", "--plot", "--interval"],
    "cohort": ["--patients", "--seed", "--out", "--interval"],
    "run": ["--replicates", "--seed", "--out", "--workers", "--keep-patients", "--interval",
            "--connect-timeout", "--scheduler"],
    "forecast": ["--replicates", "--seed", "--as-of", "--out", "--interval", "--observed",
                 "--search-replicates"],
    "compare": ["--replicates", "--vary", "--seed", "--out", "--interval"],
    "report": ["-o", "--interval"],
    "validate": ["--set"],
}  # fmt: skip
_SAFE = {"--replicates": "3", "--patients": "3", "--seed": "1", "--weight-kg": "60"}


def _odd_option(rng: random.Random, option: str, folder: Path) -> str:
    if option in ("--out", "--csv", "--plot", "-o"):
        file = folder / "a_file"
        file.write_text("x")
        return rng.choice(
            [str(file), str(file / "sub"), str(folder), str(folder / ("n" * 300)),
             str(folder / "☃" / "x.png"), "/proc/x", str(folder / "ok" / "x.svg"), ""]
        )  # fmt: skip
    if option == "--as-of":
        return rng.choice(["2019-01-01", "2150-01-01", "2022-02-30", "yesterday", "2022-03-01"])
    if option == "--scheduler":
        return rng.choice(["notaurl", "tcp://", "http://x:1", "tcp://256.1.1.1:99999", ":8786"])
    if option == "--observed":
        bad = folder / "obs.csv"
        header = rng.choice(["site,enrolled_date", "site,enrolled_date,screened_date", "site", ""])
        rows = [
            ",".join(
                rng.choice(["Xi'an", "X", "", "☃", '"', "2021-01-05", "2030-01-01", "2019-01-01"])
                for _ in range(rng.randint(1, 4))
            )
            for _ in range(rng.choice([0, 1, 5, 300]))
        ]
        if rng.random() < 0.2:
            bad.write_bytes(bytes(rng.randrange(256) for _ in range(200)))
        else:
            bad.write_text("\n".join([header, *rows]) + "\n")
        return str(bad)
    if option in ("--set", "--vary"):
        key = ".".join(rng.choice(["a", "prednisone", "stages[0]", "x[9]", "mmf"])
                       for _ in range(rng.choice([1, 2, 3, 30, 500])))  # fmt: skip
        return rng.choice(
            ["x", "=", "a.b=", "prednisone.stages[99].step_mg=1", "name=../x", "a=[[[[[[",
             "prednisone.start_mg_per_kg=0.5,,1", "mmf.target_g_per_day=1e308",
             f"{key}=1", f"{key}={{a = 1}}", "recruitment.start_date=9999-01-01",
             "recruitment.sites[0].activation_day=1e9"]
        )  # fmt: skip
    return rng.choice(
        ["0", "-1", "1e308", "nan", "inf", "9223372036854775808", "1e12", "abc", "", "2.5",
         "0.9", "100", "all"]
    )  # fmt: skip


def option_case(rng: random.Random, folder: Path, limit_s: float) -> list[tuple[str, str, str]]:
    command = rng.choice(list(_COMMANDS))
    options = _COMMANDS[command]
    argv = [command]
    if command == "report":
        argv.append(str(rng.choice([folder, folder / "missing", BASE])))
    else:
        argv.append(str(BASE))
    for option in ("--weight-kg", "--patients", "--seed"):
        if option in options and command in ("schedule", "exposure", "cohort"):
            argv += [option, _SAFE[option]]
    if command in ("run", "forecast", "compare"):
        argv += ["--replicates", "3", "--quiet"]
    if command == "compare":
        argv += ["--vary", "prednisone.start_mg_per_kg=0.5,1.0"]
    for option in rng.sample(options, k=min(len(options), rng.randint(1, 3))):
        argv += [option, _odd_option(rng, option, folder)]
    if command in ("cohort", "run", "forecast", "compare") and "--out" not in argv:
        argv += ["--out", str(folder / f"o{rng.randrange(10**9)}")]
    status, code, detail = _call(argv, limit_s)
    return [(" ".join(argv)[:300], _judge(status, code), detail)]


# -- the run ---------------------------------------------------------------------------


def run_fuzz(
    folder: Path,
    seed: int,
    scenario_cases: int | None = None,
    option_cases: int | None = None,
    minutes: float | None = None,
    limit_s: float = 30.0,
) -> Outcome:
    """Run fuzz cases in ``folder`` (the working folder) until the counts or the time budget.

    Parameters
    ----------
    folder : Path
        Scratch folder; cases write only below it (the working folder is set to it).
    seed : int
        Case ``i`` of each kind draws from ``random.Random(f"{seed}-{kind}-{i}")``.
    scenario_cases, option_cases : int, optional
        How many of each to run (with ``minutes``: at least these many, time permitting).
    minutes : float, optional
        A time budget; cases alternate until it is spent.
    limit_s : float
        The time one command may take before it counts as a hang.
    """
    outcome = Outcome()
    here = os.getcwd()
    os.chdir(folder)
    started = time.monotonic()
    try:
        i = 0
        while True:
            elapsed_min = (time.monotonic() - started) / 60.0
            want_s = scenario_cases is not None and outcome.scenario_cases < scenario_cases
            want_o = option_cases is not None and outcome.option_cases < option_cases
            if minutes is not None:
                if elapsed_min >= minutes:
                    break
                kind = "scenario" if i % 3 else "option"
            elif want_s or want_o:
                kind = "scenario" if want_s and (not want_o or i % 3) else "option"
            else:
                break
            rng = random.Random(f"{seed}-{kind}-{i}")
            case_dir = folder / f"case{i}"
            case_dir.mkdir()
            fn = scenario_case if kind == "scenario" else option_case
            for label, verdict, detail in fn(rng, case_dir, limit_s):
                outcome.cases += 1
                outcome.valid += verdict == "ok" and label.startswith("cohort")
                where = f"[{kind} case {i}, seed {seed}] {label}"
                if verdict == "traceback":
                    outcome.tracebacks.append(f"{where}\n{detail}")
                elif verdict == "hang":
                    outcome.hangs.append(where)
                elif verdict != "ok":
                    outcome.bad_status.append(f"{where}: {verdict}")
            if kind == "scenario":
                outcome.scenario_cases += 1
            else:
                outcome.option_cases += 1
            i += 1
    finally:
        os.chdir(here)
    return outcome


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.fuzz --minutes 15 [--seed S]``: the long fuzz, its counts printed."""
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--limit-s", type=float, default=60.0, help="seconds before a hang")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_fuzz(Path(tmp), args.seed, minutes=args.minutes, limit_s=args.limit_s)
    print(
        f"{outcome.scenario_cases} scenario mutations and {outcome.option_cases} option cases "
        f"({outcome.cases} commands, {outcome.valid} mutated scenarios simulated) in "
        f"{args.minutes:g} minutes, seed {args.seed}: {len(outcome.tracebacks)} tracebacks, "
        f"{len(outcome.hangs)} hangs, {len(outcome.bad_status)} other exit statuses"
    )
    for line in outcome.failures[:50]:
        print("  " + line)
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
