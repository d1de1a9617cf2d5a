"""No orphans, no secrets left behind: however a run ends, its servers, PostgreSQL and folders go.

Each run is a real ``pytest --sandbox healthy`` in its own process, with its own ``TMPDIR`` (every folder the
plugin makes lands there) and a marker in its environment (every process it starts inherits it: xdist workers,
PostgreSQL, the watchdog); pytest's own ``--basetemp`` lies elsewhere. A test of that run reports, through a
file, that the sandbox with its PostgreSQL and a cluster connection with its credentials folder are up, then
waits. The run is then stopped each way -- SIGINT, SIGTERM, SIGKILL, SIGKILL of an xdist worker -- and
within CLEANUP_BOUND seconds no process carrying the marker may run and ``TMPDIR`` must be empty. The seconds
each cleanup took are printed (``-s``) for the record.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import trustme
from servers import interruptible
from test_sandbox_postgres import require_postgres

# Seconds after the stop by which nothing may be left: a bound, not a speed target. An interrupted run still
# formats the interruption, writes its reports and collects garbage before its teardown; 2-7 s at load 20
# here, but once over 30 s in a CI run at full load. A run that ignores its stop (the test sleeps 120 s)
# still fails, with every thread's stack.
CLEANUP_BOUND = 60.0
MARKER = "REACHABILITY_ORPHAN_TEST"

WAITING_TEST = textwrap.dedent("""
    import json, os, signal, time
    from pathlib import Path

    def test_up_then_wait(cluster):
        ready = Path(os.environ["ORPHAN_READY"])
        facts = {"pid": os.getpid(), "credentials": cluster._credentials_dir,
                 "worker": os.environ.get("PYTEST_XDIST_WORKER")}
        written = ready.with_name(ready.name + f".{os.getpid()}.tmp")
        written.write_text(json.dumps(facts))
        written.rename(ready.with_name(ready.name + f".{os.getpid()}"))  # a reader never sees half of it
        if os.environ.get("ORPHAN_MODE") == "crash-worker":
            os.kill(os.getpid(), signal.SIGKILL)  # this xdist worker dies without any teardown
        time.sleep(120)
""")

CRASH_WITNESS = textwrap.dedent("""
    import json, os, time
    from pathlib import Path

    def test_crashed_workers_credentials_go_while_the_run_goes_on(cluster):
        ready = Path(os.environ["ORPHAN_READY"])
        deadline = time.monotonic() + 60
        crashed = None
        while crashed is None and time.monotonic() < deadline:
            for path in ready.parent.glob(ready.name + ".[0-9]*[0-9]"):
                facts = json.loads(path.read_text())
                if facts["pid"] != os.getpid():
                    crashed = facts
            time.sleep(0.05)
        assert crashed is not None, "the other worker never reported"
        # Its watchdog removes its credentials folder although the worker ran no teardown.
        start = time.monotonic()
        while Path(crashed["credentials"]).exists() and time.monotonic() - start < 10:
            time.sleep(0.05)
        assert not Path(crashed["credentials"]).exists()
        Path(os.environ["ORPHAN_READY"] + ".witness").write_text(f"{time.monotonic() - start:.2f}")
""")


def marked_processes(mark: str) -> list[tuple[int, str]]:
    """(pid, command) of every live process whose environment carries ``MARKER=mark``."""
    found = []
    needle = f"{MARKER}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended while we looked
        if state != "Z":
            found.append((int(entry.name), command.strip()))
    return found


class Run:
    """One pytest run of the sandbox in a process group of its own."""

    def __init__(self, folder: Path, mode: str, *extra: str) -> None:
        self.folder = folder
        # Directly in the system's temp folder: PostgreSQL runs as its own user when we are root, and must
        # be able to reach its folder (pytest's own tmp_path is private to us).
        self.tmp = Path(tempfile.mkdtemp(prefix="reachability-orphans-"))
        self.tmp.chmod(0o755)
        self.ready = folder / "ready"
        self.mark = secrets.token_hex(8)
        (folder / "test_wait.py").write_text(WAITING_TEST)
        files = ["test_wait.py"]
        if mode == "crash-worker":
            (folder / "test_witness.py").write_text(CRASH_WITNESS)
            files.append("test_witness.py")
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("REACHABILITY_", "PYTEST_")) and key not in ("KUBECONFIG", "TMPDIR")
        }
        env.update(
            {
                "TMPDIR": str(self.tmp),
                "HOME": str(folder),
                MARKER: self.mark,
                "ORPHAN_MODE": mode,
                "ORPHAN_READY": str(self.ready),
            }
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "--sandbox",
                "healthy",
                *files,
                "-p",
                "no:cacheprovider",
                "-p",
                "no:hypothesispytest",
                "-p",
                "no:benchmark",
                "-rA",
                f"--basetemp={folder / 'basetemp'}",
                *extra,
            ],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=interruptible,
        )

    def reports(self, count: int, timeout: float = 120) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [json.loads(p.read_text()) for p in self.folder.glob("ready.[0-9]*[0-9]")]
            if len(found) >= count:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill_group()
        pytest.fail(f"the run never got ready:\n{self.output()[-3000:]}")

    def output(self) -> str:
        try:
            return self.process.communicate(timeout=30)[0] or ""
        except subprocess.TimeoutExpired:
            self.kill_group()
            return self.process.communicate()[0] or ""

    def kill_group(self) -> None:
        """Last resort of the test itself (never of the code under test): the group it started."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def remove_tmp(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def leftovers(self) -> tuple[list[tuple[int, str]], list[str]]:
        return marked_processes(self.mark), sorted(p.name for p in self.tmp.iterdir())

    def wait_until_clean(self, since: float) -> float:
        """Seconds from ``since`` until no marked process and no folder is left; fails after CLEANUP_BOUND."""
        while True:
            processes, folders = self.leftovers()
            if not processes and not folders:
                return time.monotonic() - since
            if time.monotonic() - since > CLEANUP_BOUND:
                stacks = self.stacks_of_a_hung_run()
                self.kill_group()
                pytest.fail(
                    f"left {CLEANUP_BOUND:g}s after the stop: processes {processes}, folders {folders}"
                    f"\n{stacks}"
                )
            time.sleep(0.05)

    def stacks_of_a_hung_run(self) -> str:
        """What a run still alive after its stop is doing: pytest's faulthandler (on in every run) prints
        every thread's stack on SIGABRT, into the output this test reads."""
        if self.process.poll() is not None:
            return ""
        os.kill(self.process.pid, signal.SIGABRT)
        try:
            output = self.process.communicate(timeout=10)[0] or ""
        except subprocess.TimeoutExpired:
            return "(the run printed no stacks within 10 s of SIGABRT)"
        return "the run's output up to SIGABRT (stacks last):\n" + output[-8000:]


def assert_up(run: Run, facts: list[dict]) -> None:
    processes, folders = run.leftovers()
    commands = " ".join(command for _pid, command in processes)
    assert "postgres" in commands, processes
    assert any(name.startswith("reachability-sandbox-healthy-") for name in folders), folders
    assert any(name.startswith("reachability-postgres-") for name in folders), folders
    for fact in facts:
        assert Path(fact["credentials"]).is_dir() and Path(fact["credentials"]).parent == run.tmp


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_stopped_run_leaves_no_process_and_no_folder(tmp_path: Path, how: str) -> None:
    require_postgres()
    run = Run(tmp_path, "wait")
    try:
        assert_up(run, run.reports(1))
        stopped = time.monotonic()
        os.kill(run.process.pid, getattr(signal, how))
        seconds = run.wait_until_clean(stopped)
        output = run.output()
    finally:
        run.kill_group()
        run.remove_tmp()
    print(f"\n{how}: cleaned up {seconds:.2f}s after the signal")
    if how == "SIGTERM":
        # The normal teardown ran: pytest reports the interruption and its exit status says so.
        assert run.process.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
        assert "terminated by SIGTERM" in output
    elif how == "SIGINT":
        assert run.process.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    else:
        assert run.process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stopped_xdist_run_leaves_no_process_and_no_folder(tmp_path: Path, how: str) -> None:
    require_postgres()
    run = Run(tmp_path, "wait", "-n", "2")
    try:
        facts = run.reports(1)
        assert facts[0]["worker"], "the test did not run on an xdist worker"
        assert_up(run, facts)
        stopped = time.monotonic()
        # The controller only, as a CI timeout stops the job's process: it started the sandbox.
        os.kill(run.process.pid, getattr(signal, how))
        seconds = run.wait_until_clean(stopped)
    finally:
        run.kill_group()
        run.remove_tmp()
    print(f"\n{how} of the xdist controller: cleaned up {seconds:.2f}s after the signal")


def test_a_crashed_xdist_worker_leaves_nothing_once_the_run_ends(tmp_path: Path) -> None:
    require_postgres()
    run = Run(tmp_path, "crash-worker", "-n", "2")
    try:
        output = run.output()
        ended = time.monotonic()
        seconds = run.wait_until_clean(ended)
    finally:
        run.kill_group()
        run.remove_tmp()
    witness = tmp_path / "ready.witness"
    assert witness.is_file(), output[-3000:]
    assert "crashed" in output.lower() or "worker" in output.lower(), output[-3000:]
    print(
        f"\ncrashed worker: its credentials folder went {float(witness.read_text()):.2f}s after the crash; "
        f"everything else {seconds:.2f}s after the run ended"
    )


# --------------------------------------------------------------------------- the client's decoded key

CONNECT_AND_WAIT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from pytest_reachability.cluster import Cluster

    view = Cluster.connect(kubeconfig=sys.argv[1], timeout=2)
    Path(sys.argv[2]).write_text(view._credentials_dir)
    if sys.argv[3] == "close":
        view.close()
        Path(sys.argv[2] + ".closed").write_text("")
    time.sleep(120)
""")


def client_certificate_kubeconfig(path: Path) -> str:
    """A kubeconfig whose user authenticates with an inline client key (what the client decodes to a file)."""
    authority = trustme.CA()
    client = authority.issue_cert("reachability-test-user")
    key = client.private_key_pem.bytes()
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://127.0.0.1:1",
                            "certificate-authority-data": base64.b64encode(
                                authority.cert_pem.bytes()
                            ).decode(),
                        },
                    }
                ],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "client-certificate-data": base64.b64encode(
                                client.cert_chain_pems[0].bytes()
                            ).decode(),
                            "client-key-data": base64.b64encode(key).decode(),
                        },
                    }
                ],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    return key.decode()


def _text_of(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


@pytest.mark.parametrize("how", ["close", "SIGKILL"])
def test_the_decoded_client_key_stays_in_a_private_folder_removed_on_every_exit(
    tmp_path: Path, how: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    key = client_certificate_kubeconfig(kubeconfig)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    mark = secrets.token_hex(8)
    env = {**os.environ, "TMPDIR": str(temporary), MARKER: mark}
    said = tmp_path / "credentials"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CONNECT_AND_WAIT,
            str(kubeconfig),
            str(said),
            "close" if how == "close" else "keep",
        ],
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        # The child writes the folder's name into the file after creating it: wait for the text, not the file.
        while not _text_of(said) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        folder = Path(said.read_text())
        assert folder.parent == temporary, "the decoded credentials are not in the private folder"
        if how == "close":
            while not Path(str(said) + ".closed").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not folder.exists() and list(temporary.iterdir()) == []
            return
        assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
        files = list(folder.iterdir())
        assert any(path.read_text() == key for path in files), (
            "the client key was not decoded into the folder"
        )
        assert all(path.stat().st_mode & 0o077 == 0 for path in files)
        os.kill(process.pid, signal.SIGKILL)
        stopped = time.monotonic()
        while (folder.exists() or marked_processes(mark)) and time.monotonic() - stopped < CLEANUP_BOUND:
            time.sleep(0.05)
        assert not folder.exists(), "the decoded client key outlived its process"
        assert list(temporary.iterdir()) == [] and marked_processes(mark) == []
        print(f"\nclient key folder removed {time.monotonic() - stopped:.2f}s after SIGKILL")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)
