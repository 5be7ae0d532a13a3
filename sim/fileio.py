"""File output that never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sim.errors import DosesimError

__all__ = ["atomic_write_bytes", "atomic_write_text"]


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
