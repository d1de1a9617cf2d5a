"""The built-in suite's conftest: marks this folder as the built-in suite.

Its fixtures (``cluster_reads``, ``target_service``, and ``target``, ``dns``, ``probe``, ``http``,
``cluster``, ``evidence``) are the plugin's public fixtures (``pytest_reachability/fixtures.py``),
available to any test; the helpers below are kept importable from here for tests written against them.
"""

from __future__ import annotations

from pytest_reachability.cluster_reads import ClusterReads  # noqa: F401 - kept importable
from pytest_reachability.target_service import TargetService, describe_loadbalancers, host_matches  # noqa: F401

# Tells the plugin that the tests under this folder are the built-in suite: without a target it stops with
# a usage error, and a run in which all of them were skipped verified nothing (exit status 5).
REACHABILITY_BUILTIN_SUITE = True
