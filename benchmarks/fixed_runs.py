"""Fixed runs whose output files must not change in a restructuring: record, then compare.

Runs, each into its own folder under ``--work`` (default a temporary folder):

- ``dosesim run`` with 200 replicates and 100 kept replicates, seed 5, for the
  base, four-site and low-start scenarios;
- ``dosesim cohort --patients 2000 --seed 3`` on the base scenario;
- ``dosesim forecast`` with the example observed file, as of 2022-03-01, 100
  replicates, seed 7.

and takes the sha256 of every output file but those that carry times or
paths (``manifest.json``, ``report.html``, the lock file). ``--record FILE``
writes them as JSON; ``--compare FILE`` runs again and lists every file whose
sha256 differs (exit status 1 if any does).

Run: ``.venv/bin/python -m benchmarks.fixed_runs --record /tmp/before.json``, make the
change, then ``... --compare /tmp/before.json``. Not a test (it takes about half a
minute).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from benchmarks._common import REPO

SCENARIOS = REPO / "scenarios"
_SKIP = {"manifest.json", "report.html", ".dosesim.lock"}


def _commands(work: Path) -> dict[str, list[str]]:
    runs = {
        f"run_{name}": ["run", str(SCENARIOS / f"{name}.toml"), "--replicates", "200",
                        "--keep-patients", "100", "--seed", "5", "--quiet", "--out",
                        str(work / f"run_{name}")]
        for name in ("nct05129410", "nct05129410_four_sites", "nct05129410_low_start")
    }  # fmt: skip
    runs["cohort"] = ["cohort", str(SCENARIOS / "nct05129410.toml"), "--patients", "2000",
                      "--seed", "3", "--out", str(work / "cohort")]  # fmt: skip
    runs["forecast"] = ["forecast", str(SCENARIOS / "nct05129410.toml"), "--observed",
                        str(SCENARIOS / "example_observed_enrolment.csv"), "--as-of", "2022-03-01",
                        "--replicates", "100", "--seed", "7", "--quiet", "--out",
                        str(work / "forecast")]  # fmt: skip
    return runs


def digests(work: Path) -> dict[str, str]:
    """Run every fixed command into ``work``; the sha256 of each output file, by path."""
    import contextlib
    import io

    from sim.cli import main

    out: dict[str, str] = {}
    for label, argv in _commands(work).items():
        with contextlib.redirect_stdout(io.StringIO()):  # the commands' own summaries
            status = main([*argv, "--overwrite"])
        if status != 0:
            raise SystemExit(f"{label}: the command failed")
        for path in sorted((work / label).rglob("*")):
            if path.is_file() and path.name not in _SKIP:
                rel = str(path.relative_to(work))
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", metavar="FILE", help="write the digests to FILE (JSON)")
    group.add_argument("--compare", metavar="FILE", help="compare with digests recorded in FILE")
    parser.add_argument("--work", metavar="DIR", help="where to run (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        now = digests(work)
    if args.record:
        Path(args.record).write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(now)} files in {args.record}")
        return 0
    before = json.loads(Path(args.compare).read_text())
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    for name in changed:
        state = "missing now" if name not in now else "new" if name not in before else "differs"
        print(f"{state:12} {name}")
    print(f"{len(now)} files, {len(changed)} changed")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
