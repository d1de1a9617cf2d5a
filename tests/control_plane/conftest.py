"""A real kube-apiserver and etcd for the tests in this folder (marker ``control_plane``).

The binaries come from ``tools/control-plane/build``. Without them the tests skip, saying how to build,
unless ``REACHABILITY_REQUIRE_CONTROL_PLANE=1`` (set by ``.ci/run``): then a missing build fails them.
One control plane serves the whole session; each test loads its scenario and clears it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_reachability.sandbox.certs import write_sandbox_certificates
from pytest_reachability.sandbox.control_plane import ControlPlane, find_binaries, unavailable_message
from pytest_reachability.sandbox.control_plane_sandbox import READER

REQUIRE_ENV = "REACHABILITY_REQUIRE_CONTROL_PLANE"


@pytest.fixture(scope="session")
def control_plane_binaries() -> Path:
    folder = find_binaries()
    if folder is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {unavailable_message()}", pytrace=False)
        pytest.skip(unavailable_message())
    return folder


@pytest.fixture(scope="session")
def control_plane(
    control_plane_binaries: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    pki = tmp_path_factory.mktemp("control-plane-pki")
    certificates = write_sandbox_certificates(pki, "control-plane.invalid")
    plane = ControlPlane(
        control_plane_binaries,
        users=("nobody", READER),
        serving=certificates.apiserver,
        ca_file=certificates.ca_file,
    )
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
