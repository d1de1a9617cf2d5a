"""The public fixtures: what a test of the built-in suite or a user's own test asks for.

Example::

    @pytest.mark.requires("api-health")
    def test_orders_endpoint(target, evidence):
        evidence.record("note", {"target": target.display})
"""

from __future__ import annotations

from typing import Any

import pytest

from .evidence import Evidence


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """Facts this test saw, attached to its report: ``evidence.record("dns", {...})``."""
    from .plugin import ITEM_EVIDENCE

    found = request.node.stash.get(ITEM_EVIDENCE, None)
    if found is None:
        found = request.node.stash[ITEM_EVIDENCE] = Evidence()
    return found


@pytest.fixture(scope="session")
def reachability_settings(pytestconfig: pytest.Config) -> Any:
    """The settings in force (CLI > environment > file), as parsed and validated."""
    from .plugin import state_of

    return state_of(pytestconfig).settings


@pytest.fixture(scope="session")
def target(reachability_settings: Any) -> Any:
    """The service under verification (``--target``); skips the test when none is configured.

    Example::

        def test_target_is_https(target):
            assert target.scheme == "https"
    """
    if reachability_settings.target is None:
        pytest.skip("no target configured: pass --target HOST or set target in [tool.reachability]")
    return reachability_settings.target
