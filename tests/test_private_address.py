"""A public name published with private addresses (RFC 1918), as seen from outside that private network.

The ingress controller's NLB was made internal (``aws-load-balancer-scheme: internal``) and external-dns
published its private addresses for pay.shop.test. The built-in suite runs, as a user types it, inside a
network namespace made for the test, where 10.0.0.0/8 is either routed to a gateway that never answers (as
the internet drops packets to private addresses: connects time out) or not routed at all (connects fail at
once: no route). Nothing leaves the namespace. Either way the top theory must say that the name resolves to
private addresses, that they are the ingress controller's load balancer's (the hostname in its status
resolves to them), so it is internal, and which annotation of that Service made it so — not "a firewall
drops them" or "nothing listens".

The scenario is not bundled: the scenario corpus runs bundled scenarios on the machine's own network, where
those addresses may lead somewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import servers

from pytest_reachability.sandbox.evaluate import SUITE_ARGS, suite_environment

NLB = "k8s-ingressn-ingressn-7c41d2a9e0-5b8f3e1a6c2d9047.elb.eu-west-1.amazonaws.com"
SCENARIO = f"""\
name: shop-ingress-nlb-made-internal
description: "The ingress NLB was made internal; DNS publishes its private addresses"
base: shop-healthy-nlb-hostname
dns:
  primary:
    records:
      pay.shop.test: {{A: [10.20.4.31, 10.20.5.77], ttl: 60}}
      {NLB}: {{A: [10.20.4.31, 10.20.5.77], ttl: 60}}
kubernetes:
  objects:
    - apiVersion: v1
      kind: Service
      metadata:
        name: ingress-nginx-controller
        namespace: ingress-nginx
        annotations: {{service.beta.kubernetes.io/aws-load-balancer-scheme: internal}}
"""
RUN_TIMEOUT = 240


@pytest.fixture
def namespace() -> str:
    if os.geteuid() != 0 or servers.require_tool("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    with servers.network_namespace("rch-priv") as name:
        yield name


def _drop_private_traffic(namespace: str) -> None:
    """Route 10.0.0.0/8 out of one end of a veth pair whose other end, inside the same namespace, has no
    address: the SYNs go out on the wire, to a gateway that never answers."""
    for command in (
        ["link", "add", "rch0", "type", "veth", "peer", "name", "rch1"],
        ["link", "set", "rch0", "up"],
        ["link", "set", "rch1", "up"],
        ["address", "add", "192.0.2.1/24", "dev", "rch0"],
        ["neigh", "add", "192.0.2.2", "lladdr", "02:00:00:00:00:02", "dev", "rch0"],
        ["route", "add", "10.0.0.0/8", "via", "192.0.2.2", "dev", "rch0"],
    ):
        subprocess.run(["ip", "-n", namespace, *command], check=True, timeout=20)


@pytest.mark.parametrize("network", ["drops", "no-route"])
def test_a_private_address_in_public_dns_is_named(tmp_path: Path, namespace: str, network: str) -> None:
    if network == "drops":
        _drop_private_traffic(namespace)
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    results = tmp_path / "results.json"
    process = subprocess.run(
        [
            *("ip", "netns", "exec", namespace),
            sys.executable,
            "-m",
            "pytest",
            *SUITE_ARGS,
            f"--sandbox={scenario}",
            "--probe-timeout=2",
            f"--results-json={results}",
        ],
        cwd=tmp_path,
        env=suite_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert results.exists(), process.stdout[-3000:] + process.stderr[-2000:]
    document = json.loads(results.read_text())
    failure = "tcp_timeout" if network == "drops" else "tcp_unreachable"
    connects = [
        t
        for t in document["tests"]
        if t["nodeid"].endswith("::test_every_resolved_address_accepts_connections")
    ]
    assert connects and connects[0]["outcome"] == "failed" and failure in connects[0]["reason"], connects
    top = document["theories"][0]
    assert top["rule"] == "dns-private-address", [t["title"] for t in document["theories"]]
    assert top["title"].startswith("pay.shop.test resolves to 10.20.4.31, 10.20.5.77, private addresses")
    assert any(
        "Service ingress-nginx/ingress-nginx-controller has these private addresses" in line
        and "is internal" in line
        for line in top["evidence"]
    ), top["evidence"]
    assert (
        "Service ingress-nginx/ingress-nginx-controller "
        "(service.beta.kubernetes.io/aws-load-balancer-scheme: internal) is an internal load balancer"
        in top["evidence"]
    ), top["evidence"]
    assert any("internet-facing" in line for line in top["fix"]), top["fix"]
    everything = json.dumps(document["theories"][:1])
    assert "firewall" not in top["title"] and "nothing accepts" not in everything
