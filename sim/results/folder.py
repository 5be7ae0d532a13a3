"""Results folders that cannot be mixed: one command, one identity, one writer.

Every command that writes results (``run``, ``cohort``, ``forecast``,
``compare``) writes them into a folder of its own kind, by default
``results/<scenario>/<kind>/`` (:func:`default_folder`; a scenario changed by
``--set`` gets ``results/<scenario>-set-<hash>/``). A folder's
``manifest.json`` records which command wrote it and the **identity** of what
it holds (scenario hash, seed, replicates, overrides, ...). Pointed at a
folder that holds another kind of results or another identity, a command
refuses (:class:`~sim.errors.DosesimError`, exit status 2) and says how to go
on: another ``--out``, or ``--overwrite``, which first removes the old
results. The same identity again simply recomputes the same files.

One process writes a folder at a time: an OS-level lock on
``<folder>/.dosesim.lock`` (``fcntl.flock``; released by the OS when the
process dies, however it dies) makes a second process exit 2 at once.

The manifest is written twice: first with ``"status": "writing"`` before any
result file, last with ``"status": "complete"`` and a sha256 per file. A
reader (``dosesim report``) trusts only a complete manifest whose files match.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

from sim.errors import DosesimError
from sim.fileio import atomic_write_bytes, read_regular_file

__all__ = [
    "KINDS",
    "LOCK_FILE",
    "MANIFEST",
    "ResultsFolder",
    "default_folder",
    "environment",
    "folder_lock",
    "read_manifest",
    "safe_name",
    "sha256_file",
    "verify_files",
]

MANIFEST = "manifest.json"
LOCK_FILE = ".dosesim.lock"
CHECKPOINT = ".checkpoint"
KINDS = ("run", "cohort", "forecast", "compare")

#: Files any command may write, removed by ``--overwrite`` (with those a manifest lists).
_KNOWN_FILES = (
    "replicates",
    "patients",
    "events",
    "dosing_nonmem",
    "nonmem",
    "nonmem_ids",
    "dm",
    "ex",
    "ae",
    "ds",
    "suppae",
    "suppds",
    "sites",
    "forecast_replicates",
    "forecast_enrolment",
    "forecast_sites",
    "comparison",
    "dictionary",
)
_KNOWN_NAMES = (
    *(f"{n}.{ext}" for n in _KNOWN_FILES for ext in ("csv", "parquet", "xpt")),
    "summary.json",
    "report.html",
    "comparison_forest.png",
    MANIFEST,
)

#: Distributions whose versions shape results (recorded in every manifest).
_PACKAGES = ("dosesim", "numpy", "scipy", "simpy", "pandas", "pydantic", "matplotlib", "tqdm")


def safe_name(text: str) -> str:
    """``text`` as one safe path component: letters, digits, ``.``, ``_``, ``-`` and ``=``.

    Anything else becomes ``_``; leading dots are dropped, so the result is never
    ``..`` nor hidden, and it is never empty.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._=-]+", "_", text).lstrip(".")
    return cleaned[:120] or "scenario"


def default_folder(
    kind: str, name: str, overrides: Sequence[str] = (), detail: str | None = None
) -> Path:
    """The default results folder of a command: ``results/<name>[-set-<hash>]/<kind>[-<detail>]``.

    Parameters
    ----------
    kind : str
        The command: ``run``, ``cohort``, ``forecast`` or ``compare``.
    name : str
        The scenario's name (made safe as a path component: a name can never
        point outside ``results/``).
    overrides : sequence of str
        The scenario's ``--set`` overrides: a scenario changed by them gets a
        folder of its own, named by the first 8 hex digits of the sha256 of
        the overrides in order.
    detail : str, optional
        Appended to the kind, e.g. the as-of date of a forecast.
    """
    top = safe_name(name)
    if overrides:
        digest = hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]
        top = f"{top}-set-{digest}"
    leaf = kind if detail is None else f"{kind}-{safe_name(detail)}"
    return Path("results") / top / leaf


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def environment() -> dict[str, Any]:
    """Package versions and the platform, as recorded in every manifest."""
    versions = {"python": platform.python_version()}
    for dist in _PACKAGES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "versions": versions,
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "python_implementation": platform.python_implementation(),
            "platform": platform.platform(),
        },
    }


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A folder's manifest, or None if it has none.

    Raises
    ------
    DosesimError
        The manifest is not JSON (a damaged folder).
    """
    path = Path(folder) / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None
    raw = read_regular_file(path, _MANIFEST_BYTES)
    try:
        data = json.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise DosesimError(f"{path}: damaged, not JSON ({exc.msg}, line {exc.lineno})") from None
    except (UnicodeDecodeError, RecursionError):
        raise DosesimError(f"{path}: damaged, not a manifest") from None
    problem = _manifest_problem(data)
    if problem:
        raise DosesimError(f"{path}: damaged, {problem}")
    return dict(data)


_MANIFEST_BYTES = 64 << 20


def _manifest_problem(data: Any) -> str | None:
    """What is wrong with the shape of a manifest, or None."""
    if not isinstance(data, dict):
        return "not a manifest"
    files = data.get("files", {})
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        return "its files are not a table of names and sha256"
    if "identity" in data and not isinstance(data["identity"], dict):
        return "its identity is not a table"
    for key in ("command", "status"):
        if key in data and not isinstance(data[key], str):
            return f"its {key} is not text"
    return None


def verify_files(folder: str | os.PathLike[str], manifest: Mapping[str, Any]) -> None:
    """Check that every file a manifest lists is there with the sha256 it records.

    Raises
    ------
    DosesimError
        A file is missing or differs: the folder was changed after it was written.
    """
    folder = Path(folder)
    for name, digest in sorted(manifest.get("files", {}).items()):
        path = folder / name
        if path.parent != folder or name in ("", ".", ".."):
            raise DosesimError(f"{folder}: {MANIFEST} lists {name!r}, not a file of this folder")
        if path.is_symlink() or not path.is_file():
            raise DosesimError(
                f"{folder}: {name} is missing (listed in {MANIFEST}); the folder is incomplete"
            )
        if sha256_file(path) != digest:
            raise DosesimError(
                f"{folder}: {name} differs from the file this {manifest.get('command')} wrote "
                f"(sha256 in {MANIFEST}); it was changed or replaced since: rerun the command"
            )


def _describe(identity: Mapping[str, Any]) -> str:
    parts = []
    for key, value in identity.items():
        if key == "scenario_hash" and isinstance(value, str):
            value = value[:12]
        parts.append(f"{key} {value!r}" if isinstance(value, str) else f"{key} {value}")
    return ", ".join(parts)


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = [k for k in new if old.get(k) != new[k]] + [k for k in old if k not in new]
    out = []
    for k in keys:
        was, now = old.get(k), new.get(k)
        if k == "scenario_hash":
            was = str(was)[:12] if was else was
            now = str(now)[:12] if now else now
        out.append(f"{k} {was!r} (now {now!r})")
    return ", ".join(out)


class ResultsFolder:
    """One command's results folder: checked, locked, written file by file, then recorded.

    Use as a context manager::

        with ResultsFolder(out, "cohort", identity, overwrite=False) as folder:
            folder.write_text("patients.csv", text)
            folder.complete(manifest_extra)

    Parameters
    ----------
    path : path
        The folder (created if missing).
    kind : str
        The command writing it (one of :data:`KINDS`).
    identity : mapping
        What the results are of: folders holding results of another identity
        are refused unless ``overwrite``.
    overwrite : bool
        Remove another command's or another identity's results first.
    resume : bool
        A resumed run: a folder holding the same interrupted run is expected.
    provenance : mapping, optional
        Recorded in the manifest as is (command line, overrides, scenario
        files, executor, ...).
    scenario : mapping, optional
        The resolved scenario's data: a refusal for another scenario then says
        which settings differ.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        kind: str,
        identity: Mapping[str, Any],
        overwrite: bool = False,
        provenance: Mapping[str, Any] | None = None,
        scenario: Mapping[str, Any] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown results kind {kind!r}")
        self.path = Path(path)
        self.kind = kind
        self.identity = dict(identity)
        self.scenario = scenario
        self.overwrite = overwrite
        self.provenance = dict(provenance or {})
        self.files: dict[str, str] = {}
        self.started = datetime.now(UTC)
        self._lock_fd: int | None = None

    # -- opening ------------------------------------------------------------
    def __enter__(self) -> ResultsFolder:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def open(self) -> None:
        """Create the folder, take its lock, and check (or clear) what it holds."""
        try:
            if self.path.exists() and not self.path.is_dir():
                raise DosesimError(f"{self.path}: is a file, not a folder; choose another --out")
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DosesimError(f"{self.path}: cannot create the folder ({exc.strerror})") from None
        self._lock()
        try:
            self._check()
        except BaseException:
            self.release()
            raise

    def _lock(self) -> None:
        self._lock_fd = acquire_lock(self.path)

    def release(self) -> None:
        """Release the lock (the lock file stays; it is empty of meaning when unlocked)."""
        if self._lock_fd is not None:
            release_lock(self._lock_fd)
            self._lock_fd = None

    def _contents(self) -> list[str]:
        """What the folder holds, but for the lock and the temporary files of atomic writes.

        A ``.NAME.xxxx.tmp`` is what a write killed before its rename leaves; with
        the lock held no other process is writing it, so it is removed.
        """
        names = []
        for p in self.path.iterdir():
            if p.name == LOCK_FILE:
                continue
            if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
                p.unlink(missing_ok=True)
                continue
            names.append(p.name)
        return sorted(names)

    def _check(self) -> None:
        contents = self._contents()
        if not contents:
            return
        try:
            old = read_manifest(self.path) if MANIFEST in contents else None
        except DosesimError as exc:
            if not self.overwrite:
                raise DosesimError(f"{exc}; start again with --overwrite") from None
            old = {}  # dosesim's manifest, damaged: the folder is dosesim's
        if old is None:
            if contents == [CHECKPOINT] and self.kind == "run" and not self.overwrite:
                return  # an interrupted run: the runner checks its checkpoint
            foreign = [n for n in contents if n not in _KNOWN_NAMES and n != CHECKPOINT]
            if foreign or not self.overwrite:
                shown = ", ".join((foreign or contents)[:5])
                more = ", ..." if len(foreign or contents) > 5 else ""
                raise DosesimError(
                    f"{self.path}: holds files that dosesim did not write here ({shown}{more}); "
                    "write elsewhere with --out"
                    + ("" if foreign else ", or add --overwrite to replace them")
                )
            self._clear(None)  # files of an older dosesim, which wrote no manifest
            return
        if self.overwrite:
            self._clear(old)
            return
        kind = old.get("command", "run")  # manifests before 0.2 were written by run only
        if kind != self.kind:
            raise DosesimError(
                f"{self.path}: holds the results of dosesim {kind}, not of dosesim {self.kind}; "
                "write elsewhere with --out, or add --overwrite to replace them"
            )
        # manifests before 0.2 hold the identity at the top level, without overrides
        previous = old.get("identity") or {
            k: old.get(k, [] if k == "overrides" else None) for k in self.identity
        }
        if dict(previous) != self.identity:
            what = _differences(previous, self.identity)
            if (
                previous.get("scenario_hash") != self.identity.get("scenario_hash")
                and isinstance(old.get("scenario"), Mapping)
                and self.scenario is not None
            ):
                from sim.scenario import scenario_differences

                changed = "; ".join(scenario_differences(old["scenario"], self.scenario))
                what = f"the scenario ({changed or 'only its name'}), " + what
            raise DosesimError(
                f"{self.path}: holds the results of another dosesim {kind}: {what}; write "
                "elsewhere with --out, or add --overwrite to replace them"
            )

    def _clear(self, old: Mapping[str, Any] | None) -> None:
        """Remove dosesim's results from this folder (``--overwrite``).

        Only files dosesim writes: those the folder's manifest lists and the names
        dosesim's commands write (the folder is dosesim's: it holds a manifest, or
        only such names). Any other file stays.
        """
        names = set(_KNOWN_NAMES)
        if old is not None:
            names |= {str(n) for n in old.get("files", {})}
        for name in sorted(names):
            target = self.path / name
            if target.parent != self.path:  # a manifest names files of this folder only
                continue
            if target.is_file() or target.is_symlink():
                target.unlink()
        checkpoint = self.path / CHECKPOINT
        if checkpoint.is_symlink() or checkpoint.is_file():
            checkpoint.unlink()
        shutil.rmtree(checkpoint, ignore_errors=True)

    def completed(self) -> dict[str, Any] | None:
        """The folder's manifest if it holds this identity's complete results, files intact."""
        try:
            old = read_manifest(self.path)
        except DosesimError:
            return None
        if old is None or old.get("status") != "complete" or old.get("command") != self.kind:
            return None
        if old.get("identity") != self.identity:
            return None
        try:
            verify_files(self.path, old)
        except DosesimError:
            return None
        return old

    # -- writing --------------------------------------------------------------
    def begin(self) -> None:
        """Mark the folder as being written (before the first result file)."""
        self._write_manifest("writing", {})

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write one result file atomically and remember its sha256."""
        path = self.path / name
        atomic_write_bytes(path, data)
        self.files[name] = hashlib.sha256(data).hexdigest()
        return path

    def write_text(self, name: str, text: str) -> Path:
        """:meth:`write_bytes` of UTF-8 text."""
        return self.write_bytes(name, text.encode("utf-8"))

    def complete(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Write the data dictionary of the CSV files written (``dictionary.csv``,
        :mod:`sim.results.dictionary`), then the final manifest: identity, provenance,
        environment, every file's sha256."""
        from sim.results.dictionary import dictionary

        tables = [n for n in self.files if n.endswith(".csv") and n != "dictionary.csv"]
        if tables:
            described = dictionary(self.path, tables)
            self.write_text("dictionary.csv", described.to_csv(index=False, lineterminator="\n"))
        return self._write_manifest("complete", dict(extra or {}))

    def _write_manifest(self, status: str, extra: dict[str, Any]) -> dict[str, Any]:
        finished = datetime.now(UTC)
        manifest = {
            **extra,
            **self.identity,
            "command": self.kind,
            "status": status,
            "identity": self.identity,
            **self.provenance,
            **environment(),
            "files": dict(sorted(self.files.items())),
            "started": self.started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds") if status == "complete" else None,
            "time_seconds": round((finished - self.started).total_seconds(), 3),
        }
        text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
        atomic_write_bytes(self.path / MANIFEST, text.encode("utf-8"))
        return manifest


# -- OS-level locks -------------------------------------------------------------

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def acquire_lock(folder: Path) -> int:
    """Take the folder's lock (the folder exists); returns the lock file's descriptor.

    Raises
    ------
    DosesimError
        Another process holds it (its pid is named), or the folder is not writable.
    """
    path = folder / LOCK_FILE
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags, 0o644)  # never through a link, never blocked by a pipe
    except OSError as exc:
        raise DosesimError(
            f"{path}: cannot be used as the folder's lock ({exc.strerror}); remove it"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DosesimError(f"{path}: is not a regular file; remove it")
    if not _try_lock(fd):
        holder = _read_pid(fd)
        os.close(fd)
        who = f"(pid {holder}) " if holder else ""
        raise DosesimError(
            f"{folder}: another dosesim process {who}is writing this folder; wait for it to "
            "finish, or write elsewhere with --out"
        )
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def release_lock(fd: int) -> None:
    """Release a lock taken by :func:`acquire_lock`."""
    _unlock(fd)
    os.close(fd)


@contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the folder's lock for the ``with`` block (e.g. while writing its report)."""
    fd = acquire_lock(Path(folder))
    try:
        yield
    finally:
        release_lock(fd)


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
