"""Fixtures shared by the probe and session tests."""

from __future__ import annotations

import os
import secrets
import sys
import threading
from collections.abc import Callable

import pytest
import trustme


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A certificate authority of the module's own (``trustme``): its servers' certificates."""
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The PEM file of :func:`ca`, for a client to trust."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def under_a_changing_environment() -> Callable[[Callable[[], None], int], list[BaseException]]:
    """Run ``work`` in ``threads`` threads while another thread sets and removes a variable as fast as it
    can (pytest sets and removes PYTEST_CURRENT_TEST around every test while session-start work runs in
    threads), with the interpreter switching threads as often as it will; the errors the work raised."""

    def run(work: Callable[[], None], threads: int = 2) -> list[BaseException]:
        stop = threading.Event()
        name = f"REACHABILITY_TEST_TOGGLE_{secrets.token_hex(4)}"

        def toggle() -> None:
            while not stop.is_set():
                os.environ[name] = "x"
                os.environ.pop(name, None)

        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                work()
            except BaseException as error:  # noqa: BLE001 - handed to the test
                errors.append(error)

        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)
        toggler = threading.Thread(target=toggle, daemon=True)
        toggler.start()
        workers = [threading.Thread(target=guarded, daemon=True) for _ in range(threads)]
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(120)
        finally:
            stop.set()
            toggler.join(10)
            sys.setswitchinterval(previous)
            os.environ.pop(name, None)
        assert not any(worker.is_alive() for worker in workers), "the work did not end within 120 s"
        return errors

    return run
