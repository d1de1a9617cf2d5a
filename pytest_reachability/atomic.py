"""Atomic file writes: a reader (another xdist worker, a person opening a report) never sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` through a temporary file in the same directory, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; the finished file gets the mode open() would give (0666 less the
        # umask), like the HTML and JUnit files pytest writes beside it.
        os.fchmod(fd, 0o666 & ~_umask())
        if isinstance(data, bytes):
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    """The process's umask, read without changing it (Linux), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
