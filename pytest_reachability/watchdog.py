"""A watchdog process that cleans up after this one, however this one ends (SIGKILL included).

The sandbox starts PostgreSQL in a session of its own and writes private keys, a kubeconfig with its
token and the kubernetes client's decoded client key into temporary folders. A normal end, an
exception, SIGINT and SIGTERM all run the normal teardown; SIGKILL runs nothing, and neither does a
crashed xdist worker. So the first time something is guarded, a small process is started that reads
this process's registrations from a pipe. When the pipe closes -- this process ended, whatever the
way, since the kernel closes its descriptors -- the watchdog stops the processes still registered
(their own shutdown signal, then SIGKILL to their process group after a grace period) and removes the
folders still registered, then exits. What the normal teardown already stopped or removed is released
first, so the watchdog never touches it::

    watchdog.guard_directory(state_dir)           # removed if this process dies before releasing it
    watchdog.guard_process(pid, signal.SIGQUIT)   # PostgreSQL's immediate shutdown, then SIGKILL
    ...
    watchdog.release_process(pid)
    watchdog.release_directory(state_dir)

A process is identified by its PID *and* its start time, so a PID reused after the real process ended
is never signalled. This file runs as the watchdog itself (``python -I -S watchdog.py``): it imports
only the standard library, at the top level.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

GRACE_SECONDS = 5.0  # between a process's own shutdown signal and SIGKILL
_POLL_SECONDS = 0.05


# --------------------------------------------------------------------------- the guarded process's side


class _Channel:
    """The pipe to this process's watchdog, started on first use (again after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._owner_pid = 0

    def send(self, message: dict) -> None:
        line = (json.dumps(message) + "\n").encode()
        with self._lock:
            if self._process is None or self._owner_pid != os.getpid() or self._process.poll() is not None:
                self._process = self._start()
                self._owner_pid = os.getpid()
                atexit.register(self._close, self._process)
            assert self._process.stdin is not None
            self._process.stdin.write(line)
            self._process.stdin.flush()

    def _close(self, process: subprocess.Popen[bytes]) -> None:
        """At a normal exit: end the watchdog's input, so that it removes what is still registered (nothing,
        after a normal teardown) and ends, and wait a moment for it. A process ended some other way (killed)
        never gets here: the pipe closes with it, which is the watchdog's signal all the same."""
        if self._owner_pid != os.getpid():
            return  # a forked child: the watchdog belongs to its parent
        with contextlib.suppress(OSError, ValueError, subprocess.TimeoutExpired):
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=5)

    @staticmethod
    def _start() -> subprocess.Popen[bytes]:
        # -I -S: no environment, user site or site-packages; the watchdog needs the standard library only.
        # Its own session: the Ctrl-C or SIGTERM sent to this process's group must not stop it first.
        return subprocess.Popen(
            [sys.executable, "-I", "-S", str(Path(__file__).resolve()), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )

    @property
    def pid(self) -> int | None:
        """PID of the running watchdog of this process, or None before anything was guarded."""
        with self._lock:
            if self._process is None or self._owner_pid != os.getpid():
                return None
            return self._process.pid


_CHANNEL = _Channel()


def _send(message: dict) -> None:
    try:
        _CHANNEL.send(message)
    except OSError:
        pass  # no watchdog can be started or reached: the normal teardown still runs


def guard_directory(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` (recursively) if this process ends before :func:`release_directory`."""
    _send({"op": "directory", "path": os.fspath(Path(path).resolve())})


def release_directory(path: str | os.PathLike[str]) -> None:
    """The normal teardown removed ``path`` (or keeps it on purpose): forget it."""
    _send({"op": "release-directory", "path": os.fspath(Path(path).resolve())})


def guard_process(pid: int, stop_signal: int = signal.SIGTERM, *, group: bool = True) -> None:
    """Stop process ``pid`` (with ``stop_signal``, then SIGKILL) if this process ends first.

    That is, before :func:`release_process` is called for it.

    ``group``: the process leads its own process group (``start_new_session``); SIGKILL goes to the
    whole group, so its children end too.
    """
    _send(
        {"op": "process", "pid": pid, "started": _start_time(pid), "signal": int(stop_signal), "group": group}
    )


def stop_child(process: subprocess.Popen | None, stop_signal: int, timeout: float) -> None:
    """Stop a child of this process (a ``subprocess.Popen``): its own shutdown signal, then SIGKILL after
    ``timeout`` seconds; returns once it has exited. A child that already ended is left alone."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(stop_signal)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def release_process(pid: int) -> None:
    _send({"op": "release-process", "pid": pid})


def watchdog_pid() -> int | None:
    return _CHANNEL.pid


def end_with_parent(parent_pid: int, stop_signal: int = signal.SIGTERM) -> bool:
    """Have the kernel send ``stop_signal`` to this process when its parent ``parent_pid`` ends (Linux).

    For an xdist worker: when its controller is killed the worker would otherwise finish its current
    test first, however long. The signal is tied to the thread that started this process, which for
    xdist is the controller's main thread. False where ``prctl`` is not available.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(stop_signal), 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), stop_signal)  # the parent ended before the request took effect
    return True


# --------------------------------------------------------------------------- the watchdog itself


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] == "Z":
        return None  # a zombie has ended: nothing to stop
    return fields[19]


def _alive(pid: int, started: str | None) -> bool:
    now = _start_time(pid)
    return now is not None and (started is None or now == started)


def _clean_up(processes: dict[int, dict], directories: list[str]) -> None:
    living = {pid: entry for pid, entry in processes.items() if _alive(pid, entry.get("started"))}
    for pid, entry in living.items():
        with contextlib.suppress(OSError):
            os.kill(pid, entry.get("signal", signal.SIGTERM))
    deadline = time.monotonic() + GRACE_SECONDS
    while living and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
        living = {pid: entry for pid, entry in living.items() if _alive(pid, entry.get("started"))}
    for pid, entry in living.items():
        # Only a leader seen alive a moment ago names its group: a group id is never guessed from a dead PID.
        with contextlib.suppress(OSError):
            if entry.get("group"):
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + GRACE_SECONDS
    while living and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
        living = {pid: entry for pid, entry in living.items() if _alive(pid, entry.get("started"))}
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)


def watch(stream: object) -> None:
    """Read registrations until end of file, then clean up what is still registered."""
    processes: dict[int, dict] = {}
    directories: list[str] = []
    for raw in stream:  # type: ignore[attr-defined]
        try:
            message = json.loads(raw)
            op = message["op"]
        except (ValueError, KeyError, TypeError):
            continue
        if op == "directory" and message.get("path") and message["path"] not in directories:
            directories.append(message["path"])
        elif op == "release-directory" and message.get("path") in directories:
            directories.remove(message["path"])
        elif op == "process" and isinstance(message.get("pid"), int):
            processes[message["pid"]] = message
        elif op == "release-process":
            processes.pop(message.get("pid"), None)
    _clean_up(processes, directories)


def main() -> None:
    for name in ("SIGINT", "SIGHUP", "SIGTERM", "SIGQUIT"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)  # only the pipe's end ends the watch
    watch(sys.stdin.buffer)


if __name__ == "__main__":
    main()
