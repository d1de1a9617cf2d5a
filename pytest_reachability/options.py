"""The command-line options of the ``reachability`` group (names users type: keep them stable).

Every option defaults to ``None`` so that configuration can tell "not given on the command line"
apart from a value, which the CLI > environment > file precedence needs.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

# (flag, dest, kwargs) -- the single list both the parser and the settings loader read.
OPTIONS: list[tuple[str, str, dict]] = [
    (
        "--target",
        "target",
        {
            "action": "append",
            "metavar": "HOST[:PORT]|URL",
            "help": "service to verify: host, host:port or http(s):// URL (repeatable: a fleet in one run)",
        },
    ),
    (
        "--discover",
        "discover",
        {
            "action": "store_true",
            "help": "verify every public host the cluster serves: Ingress rule hosts and LoadBalancer "
            "Services named by external-dns annotations (read-only; --namespace limits it to one namespace)",
        },
    ),
    (
        "--discover-selector",
        "discover_selector",
        {"metavar": "SELECTOR", "help": "label selector of the Ingresses and Services --discover reads"},
    ),
    (
        "--shard",
        "shard",
        {"metavar": "I/N", "help": "verify only shard I of N of the targets (1 <= I <= N; deterministic)"},
    ),
    (
        "--concurrency",
        "concurrency",
        {"metavar": "N", "help": "targets probed at once (default 8)"},
    ),
    ("--namespace", "namespace", {"metavar": "NS", "help": "Kubernetes namespace of the service"}),
    (
        "--kubeconfig",
        "kubeconfig",
        {"metavar": "PATH", "help": "kubeconfig file (default: the usual kubeconfig rules)"},
    ),
    ("--kube-context", "kube_context", {"metavar": "NAME", "help": "kubeconfig context to use"}),
    (
        "--resolver",
        "resolvers",
        {
            "action": "append",
            "metavar": "ADDR[:PORT]",
            "help": "DNS resolver to ask (repeatable); 'system' is the OS resolver",
        },
    ),
    ("--health-path", "health_path", {"metavar": "PATH", "help": "health endpoint path (default /health)"}),
    (
        "--probe-timeout",
        "probe_timeout",
        {"metavar": "SECONDS", "help": "timeout of every network probe (default 5)"},
    ),
    ("--ca-bundle", "ca_bundle", {"metavar": "PATH", "help": "CA bundle to trust for TLS probes"}),
    (
        "--sandbox",
        "sandbox",
        {"metavar": "SCENARIO", "help": "start the built-in local deployment SCENARIO and verify it"},
    ),
    (
        "--sandbox-apiserver",
        "sandbox_apiserver",
        {
            "metavar": "embedded|real",
            "help": "API server of --sandbox: embedded (default) or real (kube-apiserver built by "
            "tools/control-plane/build)",
        },
    ),
    ("--incident-report", "incident_report", {"metavar": "PATH", "help": "write a markdown incident report"}),
    ("--results-json", "results_json", {"metavar": "PATH", "help": "write the results as JSON"}),
    (
        "--results-db",
        "results_db",
        {"metavar": "URL", "help": "store run history (SQLite path or postgresql:// URL)"},
    ),
    (
        "--wait",
        "wait",
        {
            "metavar": "DURATION",
            "help": "retry the gates' probes until healthy or DURATION (90, 90s, 5m) passed, then run the "
            "suite",
        },
    ),
    (
        "--gate-timeout",
        "gate_timeout",
        {"metavar": "SECONDS", "help": "longest wait for a gate's result under xdist (default 300)"},
    ),
    (
        "--mask",
        "mask",
        {
            "action": "append",
            "metavar": "VALUE",
            "help": "a secret to mask in every output, in every encoding (repeatable)",
        },
    ),
    (
        "--mask-env",
        "mask_env",
        {
            "action": "append",
            "metavar": "NAME",
            "help": "an environment variable whose value is masked in every output (repeatable)",
        },
    ),
    (
        "--reachability-config",
        "reachability_config",
        {"metavar": "FILE", "help": "TOML file with [tool.reachability] settings"},
    ),
    (
        "--allow-all-skipped",
        "allow_all_skipped",
        {
            "action": "store_true",
            "help": "accept a run in which every built-in check was skipped (else it exits 5: nothing was "
            "verified)",
        },
    ),
]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("reachability", "post-deploy reachability verification")
    for flag, dest, kwargs in OPTIONS:
        group.addoption(flag, dest=f"reachability_{dest}", default=None, **kwargs)


# Options whose value is a path, known to pytest only once their plugin is loaded: ours, and pytest-html's.
PATH_FLAGS: tuple[str, ...] = (
    *(
        flag
        for flag, _dest, kwargs in OPTIONS
        if kwargs.get("metavar") in ("PATH", "FILE", "SCENARIO", "URL")
    ),
    "--html",
    "--css",
)


def refuse_misread_path_options(config: pytest.Config, args: Sequence[str]) -> None:
    """Stop (usage error) when pytest chose its root folder from the value of a path option.

    pytest settles its rootdir and configuration file from the command line before any plugin's option
    exists, so in ``--ca-bundle /elsewhere/ca.pem`` it takes the path for a test path and roots the run
    (and what it collects) there. This runs from ``pytest_load_initial_conftests``, the first hook that
    sees the arguments with every option known and before any conftest or test is collected: when the
    folder chosen differs from the one the correctly parsed arguments give, the run stops, naming the
    ``--option=PATH`` form, which pytest never mistakes for a path. The space form keeps working
    wherever it does not move the root folder.
    """
    namespace = config.known_args_namespace
    expected = _root_and_inifile(namespace, config.invocation_params.dir)
    if expected == (config.rootpath, config.inipath):
        return
    for index, token in enumerate(args[:-1]):
        value = args[index + 1]
        if token in PATH_FLAGS and not value.startswith("-") and _exists(config.invocation_params.dir, value):
            raise pytest.UsageError(
                f"{token} {value}: pytest took {value!r} for a test path and chose its root folder from it "
                "before "
                f"this option was known; write {token}={value}"
            )
    if expected is not None:
        raise pytest.UsageError(
            f"pytest chose its root folder {config.rootpath} from an option's value taken for a test path "
            f"(expected {expected[0]}); write path options as --option=PATH"
        )


def _exists(base: Path, value: str) -> bool:
    try:
        return (base / os.path.expanduser(value)).exists()
    except (OSError, ValueError):
        return False


def _root_and_inifile(namespace: Any, invocation_dir: Path) -> tuple[Path, Path | None] | None:
    """The rootdir and inifile pytest would choose from the arguments as now parsed (None if unknown).

    ``determine_setup`` is pytest's own choice; its keyword arguments grew over pytest 8.x, so only
    those this pytest accepts are passed.
    """
    try:
        from _pytest.config.findpaths import determine_setup

        accepted = inspect.signature(determine_setup).parameters
        values = {
            "inifile": getattr(namespace, "inifilename", None),
            "args": list(getattr(namespace, "file_or_dir", None) or []),
            "rootdir_cmd_arg": getattr(namespace, "rootdir", None) or None,
            "invocation_dir": invocation_dir,
            "override_ini": getattr(namespace, "override_ini", None),
        }
        found = determine_setup(**{name: value for name, value in values.items() if name in accepted})
        return Path(found[0]), (Path(found[1]) if found[1] is not None else None)
    except Exception:  # noqa: BLE001 - an internal that changed: fall back to naming suspicious options
        return None
