"""Atomic file writes: a reader (another xdist worker, a person opening a report) never sees half a file.

Every file is written to a temporary file in the same folder and renamed over its path, and gets the
mode a plain ``open(path, "w")`` would give it (0666 less the umask): the incident report, the JSON
results, merged reports and pytest's own JUnit XML and pytest-html's report all end up alike.

pytest-html and pytest's JUnit writer write with ``open()`` themselves; :func:`write_html_reports_atomically`
and :class:`DivertedJunitXml` route them through the same temporary-file-and-rename.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """This process's umask, read without changing it (``os.umask`` can only be read by setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    previous = os.umask(0o022)  # no /proc (not Linux): the racy read is the only one there is
    os.umask(previous)
    return previous


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0666 less the umask."""
    return 0o666 & ~current_umask()


def write_atomically(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` through a temporary file in the same directory, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; the file gets what open() would give it
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


def write_html_reports_atomically(plugins: list[Any]) -> int:
    """Make every pytest-html report writer among ``plugins`` write atomically; returns how many.

    pytest-html rewrites its report at the start, after tests and at the end, each time through its
    ``_write_report(rendered)``; a reader between two writes saw a truncated page.
    """
    count = 0
    for plugin in plugins:
        report_path = getattr(plugin, "_report_path", None)
        if report_path is None or not callable(getattr(plugin, "_write_report", None)):
            continue

        def write_report(rendered_report: str, _path: Any = report_path) -> None:
            write_atomically(_path, rendered_report)

        plugin._write_report = write_report
        count += 1
    return count


class DivertedJunitXml:
    """pytest's JUnit writer, pointed at a temporary file beside its path, renamed over it once written.

    ``LogXML`` opens ``self.logfile`` and writes into it at session finish; pointing ``logfile`` at a
    temporary name and renaming afterwards makes that write atomic. :meth:`settle` restores the name so
    pytest's "generated xml file" line shows the real path.
    """

    def __init__(self, log_xml: Any) -> None:
        self.log_xml = log_xml
        self.path = Path(log_xml.logfile)
        self.temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        log_xml.logfile = str(self.temporary)

    def settle(self) -> None:
        self.log_xml.logfile = str(self.path)
        if self.temporary.exists():
            try:
                os.chmod(self.temporary, file_mode())
                os.replace(self.temporary, self.path)
            finally:
                self.temporary.unlink(missing_ok=True)
