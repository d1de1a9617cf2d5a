"""The command-line options of the ``reachability`` group (DESIGN: public contract).

Every option defaults to ``None`` so that configuration can tell "not given on the command line"
apart from a value, which the CLI > environment > file precedence needs.
"""

from __future__ import annotations

import pytest

# (flag, dest, kwargs) -- the single list both the parser and the settings loader read.
OPTIONS: list[tuple[str, str, dict]] = [
    ("--target", "target", {"metavar": "HOST[:PORT]|URL", "help": "service to verify: host, host:port or http(s):// URL"}),
    ("--namespace", "namespace", {"metavar": "NS", "help": "Kubernetes namespace of the service"}),
    ("--kubeconfig", "kubeconfig", {"metavar": "PATH", "help": "kubeconfig file (default: the usual kubeconfig rules)"}),
    ("--kube-context", "kube_context", {"metavar": "NAME", "help": "kubeconfig context to use"}),
    (
        "--resolver",
        "resolvers",
        {"action": "append", "metavar": "ADDR[:PORT]", "help": "DNS resolver to ask (repeatable); 'system' is the OS resolver"},
    ),
    ("--health-path", "health_path", {"metavar": "PATH", "help": "health endpoint path (default /health)"}),
    ("--probe-timeout", "probe_timeout", {"metavar": "SECONDS", "help": "timeout of every network probe (default 5)"}),
    ("--ca-bundle", "ca_bundle", {"metavar": "PATH", "help": "CA bundle to trust for TLS probes"}),
    ("--sandbox", "sandbox", {"metavar": "SCENARIO", "help": "start the built-in local deployment SCENARIO and verify it"}),
    ("--incident-report", "incident_report", {"metavar": "PATH", "help": "write a markdown incident report"}),
    ("--results-json", "results_json", {"metavar": "PATH", "help": "write the results as JSON"}),
    ("--results-db", "results_db", {"metavar": "URL", "help": "store run history (SQLite path or postgresql:// URL)"}),
    ("--gate-timeout", "gate_timeout", {"metavar": "SECONDS", "help": "longest wait for a gate's result under xdist (default 300)"}),
    ("--reachability-config", "reachability_config", {"metavar": "FILE", "help": "TOML file with [tool.reachability] settings"}),
    (
        "--allow-all-skipped",
        "allow_all_skipped",
        {"action": "store_true", "help": "accept a run in which every built-in check was skipped (else it exits 5: nothing was verified)"},
    ),
]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("reachability", "post-deploy reachability verification")
    for flag, dest, kwargs in OPTIONS:
        group.addoption(flag, dest=f"reachability_{dest}", default=None, **kwargs)
