"""A run's checkpoint: finished chunks kept as data, never as code, each checked by its sha256.

``<out>/.checkpoint/`` holds ``run.json`` (the run's identity, its chunk size,
its resolved scenario and the sha256 of every finished chunk) and one
``chunk_<first>.json`` per finished chunk. A chunk is JSON: each table as its
columns, their dtypes and their values (floats written with ``repr``, so they
read back bit for bit; NaN and infinities as JSON's extensions). Loading one
parses JSON, which cannot run code (a pickle can). A resume trusts a chunk
only when its bytes have the sha256 recorded in ``run.json`` (a chunk written
but not yet recorded, by a run killed in between, is simulated again), and
refuses a checkpoint that holds anything else (a ``.pkl``, say) or whose
recorded chunks differ. A checkpoint folder that is a symbolic link is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import DosesimError
from sim.fileio import atomic_write_bytes, atomic_write_text, read_regular_file
from sim.results.folder import CHECKPOINT
from sim.scenario import scenario_differences

__all__ = ["Checkpoint", "decode_chunk", "encode_chunk"]

_MARKER = "run.json"
_MARKER_BYTES = 64 << 20
_CHUNK_BYTES = 4 << 30
#: Columns every chunk's replicate rows have (the others vary with the scenario).
_CORE_COLUMNS = ("replicate", "screened", "enrolled", "screen_failures", "target_reached")


def _check_chunk(chunk: Mapping[str, Any], first: int, last: int) -> None:
    """A decoded chunk is the one expected: its replicates, one row each, the core columns."""
    if (chunk["first"], chunk["last"]) != (first, last):
        raise ValueError(f"holds replicates {chunk['first']}-{chunk['last']}, not {first}-{last}")
    rows = chunk["rows"]
    missing = [c for c in _CORE_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"its rows lack {', '.join(missing)}")
    if list(rows["replicate"]) != list(range(first, last)):
        raise ValueError("its rows are not one per replicate, in order")
    if not isinstance(chunk["kept"], dict):
        raise ValueError("its kept tables are not a table")


def _frame_to_json(frame: pd.DataFrame) -> dict[str, Any]:
    columns = []
    for name in frame.columns:
        col = frame[name]
        columns.append({"name": str(name), "dtype": str(col.dtype), "values": col.tolist()})
    return {"columns": columns, "rows": len(frame)}


def _frame_from_json(data: Mapping[str, Any]) -> pd.DataFrame:
    columns = {}
    for col in data["columns"]:
        values = col["values"]
        if len(values) != data["rows"]:
            raise ValueError(f"column {col['name']!r} has {len(values)} values")
        dtype = col["dtype"]
        if dtype in ("int64", "bool", "float64"):
            columns[col["name"]] = pd.Series(np.asarray(values, dtype=dtype))
        elif dtype in ("str", "object", "string"):
            cleaned = [
                v if not (isinstance(v, float) and math.isnan(v)) else np.nan for v in values
            ]
            if not all(isinstance(v, str) or v is None or v is np.nan for v in cleaned):
                raise ValueError(f"column {col['name']!r} of text holds other values")
            columns[col["name"]] = pd.Series(cleaned, dtype=dtype)
        else:
            raise ValueError(f"column {col['name']!r} has an unknown dtype {dtype!r}")
    return pd.DataFrame(columns, index=pd.RangeIndex(data["rows"]))


def encode_chunk(result: Mapping[str, Any]) -> bytes:
    """A chunk's result (``first``, ``last``, ``rows``, ``kept`` tables) as JSON bytes."""
    data = {
        "first": int(result["first"]),
        "last": int(result["last"]),
        "rows": _frame_to_json(result["rows"]),
        "kept": {name: _frame_to_json(frame) for name, frame in result["kept"].items()},
    }
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def decode_chunk(data: bytes) -> dict[str, Any]:
    """The chunk :func:`encode_chunk` wrote, its tables with their dtypes.

    Raises
    ------
    ValueError
        Not such a chunk (JSON that does not have its shape).
    """
    raw = json.loads(data.decode("utf-8"))
    if not isinstance(raw, dict):
        raise ValueError("not a chunk")
    return {
        "first": int(raw["first"]),
        "last": int(raw["last"]),
        "rows": _frame_from_json(raw["rows"]),
        "kept": {str(k): _frame_from_json(v) for k, v in dict(raw["kept"]).items()},
    }


class Checkpoint:
    """The checkpoint of a run in ``folder``: created, checked for a resume, added to, removed.

    Parameters
    ----------
    folder : Path
        The results folder (its lock is held by the caller).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / CHECKPOINT
        self.chunks: dict[int, str] = {}
        self._marker: dict[str, Any] = {}
        self._size = self._replicates = 0

    def _damaged(self, what: str) -> DosesimError:
        return DosesimError(
            f"{self.folder}: the checkpoint of an interrupted run is damaged ({what}); start "
            "again with --overwrite"
        )

    def open(
        self,
        identity: Mapping[str, Any],
        scenario: Mapping[str, Any],
        resume: bool,
        size: int,
        chunk_size: int | None,
    ) -> tuple[int, set[int]]:
        """Start a checkpoint, or check the one a resumed run continues.

        Returns
        -------
        (int, set of int)
            The chunk size to use, and the first replicate of every chunk already done
            (present, and with its recorded sha256).

        Raises
        ------
        DosesimError
            An interrupted run is there but ``resume`` is not set, or it is another
            run (what differs is said), or it is damaged; ``resume`` with nothing to
            resume; a checkpoint folder that is a symbolic link.
        """
        if self.path.is_symlink():
            raise DosesimError(
                f"{self.path}: is a symbolic link; a checkpoint is written only into the "
                "results folder itself"
            )
        marker = self.path / _MARKER
        if not marker.exists():
            if resume:
                raise DosesimError(f"{self.folder}: no interrupted run to resume here")
            self._marker = {**identity, "chunk_size": size, "scenario": scenario, "chunks": {}}
            if self.path.exists() and not self.path.is_dir():
                raise self._damaged(f"{CHECKPOINT} is a file")
            self.path.mkdir(parents=True, exist_ok=True)
            self._write_marker()
            self._size, self._replicates = size, int(identity["replicates"])
            return size, set()
        try:
            previous = json.loads(read_regular_file(marker, _MARKER_BYTES).decode("utf-8"))
            if not isinstance(previous, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as exc:
            raise self._damaged(f"{_MARKER}: {type(exc).__name__}") from None
        if not resume:
            raise DosesimError(
                f"{self.folder}: holds an interrupted run ({previous.get('scenario_name')}, "
                f"seed {previous.get('seed')}); continue it with --resume, or start again with "
                "--overwrite"
            )
        old = {k: previous.get(k, [] if k == "overrides" else None) for k in identity}
        different = [k for k in identity if old[k] != identity[k]]
        if different:
            parts = []
            for k in different:
                if k == "scenario_hash" and isinstance(previous.get("scenario"), dict):
                    changed = scenario_differences(previous["scenario"], scenario)
                    parts.append("the scenario: " + "; ".join(changed))
                else:
                    parts.append(f"{k} {old[k]!r} (now {identity[k]!r})")
            raise DosesimError(
                f"{self.folder}: the interrupted run there differs in {', '.join(parts)}; "
                "--resume continues the same run only"
            )
        replicates = int(identity["replicates"])
        try:
            kept_size = previous.get("chunk_size", size)
            if not isinstance(kept_size, int) or not 1 <= kept_size <= max(replicates, 1):
                raise ValueError(f"chunk_size {kept_size!r}")
            recorded = {int(k): str(v) for k, v in dict(previous.get("chunks", {})).items()}
            if any(first % kept_size or not 0 <= first < replicates for first in recorded):
                raise ValueError("a chunk that is not one of this run's")
        except (TypeError, ValueError, OverflowError) as exc:
            raise self._damaged(f"{_MARKER}: {exc}") from None
        if chunk_size is not None and chunk_size != kept_size:
            raise DosesimError(
                f"{self.folder}: the interrupted run there has chunks of {kept_size} "
                f"(now {chunk_size}); resume it with the same chunk size"
            )
        self._check_files()
        for first, digest in recorded.items():
            if not self._intact(first, digest):
                raise self._damaged(f"chunk_{first:09d}.json is missing or has another sha256")
        self._marker = {**previous, "scenario": previous.get("scenario", scenario)}
        self.chunks = recorded
        self._size, self._replicates = kept_size, replicates
        return kept_size, set(self.chunks)

    def _check_files(self) -> None:
        """Only dosesim's checkpoint files may be there (a pickle is never read: refused)."""
        strangers = []
        for p in self.path.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
                p.unlink(missing_ok=True)  # a write killed before its rename
            elif p.name != _MARKER and not (
                p.name.startswith("chunk_") and p.name.endswith(".json") and p.is_file()
            ):
                strangers.append(p.name)
        if strangers:
            raise self._damaged(f"it holds {', '.join(sorted(strangers)[:3])}, not dosesim's")

    def _file(self, first: int) -> Path:
        return self.path / f"chunk_{first:09d}.json"

    def _intact(self, first: int, digest: str) -> bool:
        path = self._file(first)
        if path.is_symlink() or not path.is_file():
            return False
        return hashlib.sha256(path.read_bytes()).hexdigest() == digest

    def _write_marker(self) -> None:
        atomic_write_text(self.path / _MARKER, json.dumps(self._marker, sort_keys=True))

    def save(self, result: Mapping[str, Any]) -> None:
        """Keep a finished chunk: its file first, then its sha256 in the marker."""
        data = encode_chunk(result)
        first = int(result["first"])
        atomic_write_bytes(self._file(first), data)
        self.chunks[first] = hashlib.sha256(data).hexdigest()
        self._marker["chunks"] = {str(k): v for k, v in sorted(self.chunks.items())}
        self._write_marker()

    def load(self, first: int) -> dict[str, Any]:
        """A finished chunk, trusted only if its bytes have the recorded sha256."""
        path = self._file(first)
        if path.is_symlink():
            raise self._damaged(f"{path.name} is a link")
        data = read_regular_file(path, _CHUNK_BYTES)
        if hashlib.sha256(data).hexdigest() != self.chunks.get(first):
            raise self._damaged(f"{path.name} does not have the sha256 recorded for it")
        last = min(first + self._size, self._replicates)
        try:
            chunk = decode_chunk(data)
            _check_chunk(chunk, first, last)
        except (
            ValueError,
            KeyError,
            TypeError,
            OverflowError,
            RecursionError,
            AttributeError,
        ) as exc:
            raise self._damaged(f"{path.name}: {exc}") from None
        return chunk

    def remove(self) -> None:
        """Remove the checkpoint (the run is written, or nothing of it was finished)."""
        if self.path.is_symlink():
            return
        shutil.rmtree(self.path, ignore_errors=True)
