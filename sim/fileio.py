"""File output that never leaves a half-written file behind."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from sim.errors import DosesimError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "check_regular_file",
    "read_regular_file",
]


def _default_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give: 0o666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_MODE = _default_mode()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A reader sees the old file or the new one, never a part of either, even
    if the process is killed mid-write. The folder is created if missing.

    Raises
    ------
    DosesimError
        The file cannot be written (a folder in the way, permission denied, a
        full disk, a read-only file system): the message names the path and
        the system's reason, and the old file, if any, is untouched.
    """
    target = Path(path)
    tmp: str | None = None
    try:
        if target.is_dir():
            raise DosesimError(f"{target}: is a folder; give a file name")
        if target.exists() and not target.is_file():  # a device or a pipe: never replaced
            raise DosesimError(f"{target}: is not a regular file; give a file name")
        for folder in target.parents:  # the nearest existing folder on the way must be one
            if folder.exists():
                if not folder.is_dir():
                    raise DosesimError(f"{target}: {folder} is a file, not a folder")
                break
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _MODE)  # mkstemp makes files private; results are ordinary files
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        reason = exc.strerror or type(exc).__name__
        raise DosesimError(f"{target}: cannot be written ({reason})") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def check_regular_file(path: str | os.PathLike[str]) -> Path:
    """``path`` if it is a regular file (a link to one is fine); a clear error otherwise.

    A pipe would block a read forever and a device (``/dev/zero``) never end it,
    so inputs are checked before they are opened.

    Raises
    ------
    DosesimError
        No such file, a folder, or not a regular file (a pipe, a device, a socket).
    """
    target = Path(path)
    try:
        info = target.stat()
    except FileNotFoundError:
        raise DosesimError(f"{target}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DosesimError(
            f"{target}: cannot be read ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise DosesimError(f"{target}: is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise DosesimError(f"{target}: is not a regular file (a pipe, a device or a socket)")
    return target


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (:func:`check_regular_file`).

    Raises
    ------
    DosesimError
        As :func:`check_regular_file`, a file larger than ``max_bytes``, or a read error.
    """
    target = check_regular_file(path)
    try:
        with target.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise DosesimError(f"{target}: cannot be read ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise DosesimError(f"{target}: larger than {max_bytes:,} bytes; not a file dosesim wrote")
    return data
