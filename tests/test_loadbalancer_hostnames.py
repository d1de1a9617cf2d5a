"""Load balancers published as a hostname (``status.loadBalancer.ingress[].hostname``: AWS's ELB and NLB,
as on EKS) rather than an IP. DNS that reaches them -- a CNAME to the hostname, or an alias A record holding
its address as Route 53 and external-dns write it -- is no stray answer, and the commands the diagnosis
prints for such a load balancer are ones curl accepts (``--resolve`` takes an IP address only).

The two bundled scenarios ``shop-healthy-nlb-hostname`` (healthy; the DNS check used to fail it) and
``shop-dns-alias-to-replaced-nlb`` (an alias left on a deleted NLB's address) run in the scenario corpus;
here they run through the built-in suite as a user runs it, and the commands run against real servers.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
import servers

from pytest_reachability.diagnosis import RunContext
from pytest_reachability.diagnosis.theory import curl
from pytest_reachability.sandbox.evaluate import evaluate


def test_a_curl_line_for_a_hostname_connects_to_it_and_curl_runs_it() -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed: the diagnosis prints curl lines and they are run here")
    with servers.LoopbackServer(servers.healthy()) as server:
        context = RunContext(host="pay.shop.test", port=server.port, scheme="http")
        line = curl(context, "localhost")  # a name that resolves to loopback, as an NLB's name resolves
        assert f"--connect-to pay.shop.test:{server.port}:localhost:{server.port}" in line
        assert "--resolve" not in line
        done = subprocess.run(
            [*shlex.split(line), "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    assert (done.returncode, done.stdout) == (0, "200"), done.stderr[-500:]


def test_a_curl_line_for_an_address_still_resolves_to_it() -> None:
    context = RunContext(host="pay.shop.test", port=8443, scheme="https")
    assert curl(context, "127.0.20.80") == (
        "curl -v --resolve pay.shop.test:8443:127.0.20.80 https://pay.shop.test:8443/health"
    )
    assert "--resolve pay.shop.test:8443:[::1] " in curl(context, "::1")


def test_dns_that_reaches_the_load_balancers_hostname_passes_and_an_alias_elsewhere_is_named() -> None:
    rows = evaluate(["shop-healthy-nlb-hostname", "shop-dns-alias-to-replaced-nlb"], jobs=2)
    assert [row.scenario for row in rows] == ["shop-healthy-nlb-hostname", "shop-dns-alias-to-replaced-nlb"]
    assert all(row.hit for row in rows), [row.problem() for row in rows if not row.hit]
    healthy, moved = rows
    assert healthy.failing == [] and healthy.top is None
    assert moved.top == "dns-not-loadbalancer" and "elb.eu-west-1.amazonaws.com" in moved.title
