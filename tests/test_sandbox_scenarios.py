"""Scenario files: every shipped one loads and says what it promises; bad files give one-line errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import kubernetes.client
import pytest

from pytest_reachability.sandbox.scenario import (
    Behaviour,
    ScenarioError,
    load_scenario,
    merge_patch,
    object_identity,
    scenario_names,
)

REQUIRED = [
    "healthy", "incident-2025-12-08", "lb-pending", "selector-no-pods", "targetport-mismatch", "crashloop",
    "ingress-backend-missing", "tls-expired", "resolvers-disagree", "netpol-deny",
]
# Kind -> the official client's model, which is stricter than the API server (required fields).
CLIENT_MODELS = {"Event": "CoreV1Event"}


def obj(scenario, kind: str, name: str, namespace: str | None = "production") -> dict | None:
    return next(
        (o for o in scenario.objects if o["kind"] == kind and o["metadata"]["name"] == name
         and o["metadata"].get("namespace") == namespace),
        None,
    )


def edge(scenario, address: str):
    return next(e for e in scenario.edges if e.address == address)


def answers(scenario, resolver: str, name: str):
    return next(r for r in scenario.resolvers if r.name == resolver).records[name]


# -- shipped scenarios ------------------------------------------------------------------------


def test_every_required_scenario_is_shipped():
    assert set(REQUIRED) <= set(scenario_names())
    assert len(scenario_names()) >= 10


@pytest.mark.parametrize("name", scenario_names())
def test_shipped_scenario_loads_with_matching_name_and_one_line_description(name):
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.description and "\n" not in scenario.description
    assert scenario.target.host.endswith(".test")
    assert scenario.resolvers and scenario.edges and scenario.objects


@pytest.mark.parametrize("name", scenario_names())
def test_shipped_manifests_deserialise_with_the_official_client_models(name):
    # The client's own deserializer (what turns an API response into models), in every supported version.
    deserialize = kubernetes.client.ApiClient()._ApiClient__deserialize
    for manifest in load_scenario(name).objects:
        parsed = deserialize(manifest, CLIENT_MODELS.get(manifest["kind"], "V1" + manifest["kind"]))
        assert parsed.metadata.name == manifest["metadata"]["name"]


@pytest.mark.parametrize("name", scenario_names())
def test_shipped_load_balancer_addresses_are_edges_and_relative_times_resolved(name):
    scenario = load_scenario(name)
    addresses = {e.address for e in scenario.edges}
    for manifest in scenario.objects:
        for entry in manifest.get("status", {}).get("loadBalancer", {}).get("ingress", []) or []:
            assert entry["ip"] in addresses
        created = manifest["metadata"].get("creationTimestamp")
        if created is not None:
            assert created.endswith("Z") and created[:2] == "20", created


def test_incident_scenario_reproduces_the_incident():
    scenario = load_scenario("incident-2025-12-08")
    assert (scenario.target.host, scenario.target.scheme, scenario.namespace) == ("97v.test", "http", "production")
    assert answers(scenario, "primary", "97v.test").a == ("127.0.10.57",)
    assert edge(scenario, "127.0.10.57").behaviour == Behaviour("empty_reply")
    api = obj(scenario, "Service", "api")
    duplicate = obj(scenario, "Service", "api-service")
    assert api["spec"]["type"] == duplicate["spec"]["type"] == "LoadBalancer"
    assert api["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.10.53"}]
    assert duplicate["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.10.239"}]
    assert api["spec"]["selector"] == duplicate["spec"]["selector"]
    healthy_edge = edge(scenario, "127.0.10.53")
    assert healthy_edge.behaviour == Behaviour("healthy") and "97v.test" in healthy_edge.hosts
    assert scenario.objects_of_kind("Ingress") == []
    controller = obj(scenario, "Pod", "ingress-nginx-controller-5c8d66c76d-x2x9q", "ingress-nginx")
    assert controller["status"]["phase"] == "Running"
    assert obj(scenario, "IngressClass", "nginx", None)["spec"]["controller"] == "k8s.io/ingress-nginx"
    assert obj(scenario, "Service", "bot-service") is not None
    log_lines = [line for line in scenario.logs["production/api-847495fbc4-686tk"].splitlines() if '"GET' in line]
    assert len(log_lines) >= 5
    assert all("10.108.0.39:" in line and '"GET /health HTTP/1.1" 200' in line for line in log_lines)


def test_single_fault_scenarios_differ_from_healthy_where_the_fault_lives():
    healthy = load_scenario("healthy")
    assert obj(healthy, "Service", "api")["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.10.53"}]
    assert obj(load_scenario("lb-pending"), "Service", "api")["status"]["loadBalancer"] == {}

    no_pods = load_scenario("selector-no-pods")
    assert obj(no_pods, "Service", "api")["spec"]["selector"] == {"app": "api-v2"}
    assert obj(no_pods, "EndpointSlice", "api-7xk2p")["endpoints"] == []

    mismatch = load_scenario("targetport-mismatch")
    assert obj(mismatch, "Service", "api")["spec"]["ports"][0]["targetPort"] == 8080
    container = obj(mismatch, "Pod", "api-847495fbc4-686tk")["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 8000

    crash = obj(load_scenario("crashloop"), "Pod", "api-847495fbc4-686tk")["status"]["containerStatuses"][0]
    assert crash["state"]["waiting"]["reason"] == "CrashLoopBackOff" and crash["restartCount"] > 5

    ingress = obj(load_scenario("ingress-backend-missing"), "Ingress", "api-ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert obj(load_scenario("ingress-backend-missing"), "Service", backend) is None

    tls = load_scenario("tls-expired")
    assert tls.target.scheme == "https" and edge(tls, "127.0.10.53").tls == "expired"

    disagree = load_scenario("resolvers-disagree")
    assert answers(disagree, "primary", "97v.test").a != answers(disagree, "secondary", "97v.test").a

    netpol = load_scenario("netpol-deny")
    policies = netpol.objects_of_kind("NetworkPolicy", "production")
    assert [p["metadata"]["name"] for p in policies] == ["default-deny-ingress"]
    assert "ingress" not in policies[0]["spec"] and policies[0]["spec"]["policyTypes"] == ["Ingress"]


# -- overlays -----------------------------------------------------------------------------------


def test_merge_patch_follows_rfc_7386():
    assert merge_patch({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": None, "e": 3}, "d": [2]}) == {
        "a": {"c": 2, "e": 3}, "d": [2]
    }
    assert object_identity({"kind": "Node", "metadata": {"name": "n1"}}) == "Node/n1"
    assert object_identity({"kind": "Pod", "metadata": {"name": "p", "namespace": "x"}}) == "Pod/x/p"


def write(tmp_path: Path, text: str, name: str = "world.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_overlay_merges_records_edges_and_objects_and_removes(tmp_path):
    path = write(tmp_path, """
        name: overlay
        description: overlay test
        base: healthy
        dns:
          primary:
            records:
              bot.97v.test: null
              new.97v.test: {AAAA: ["::1"]}
        edges:
          - {address: 127.0.10.53, behaviour: garbage}
          - {address: 127.0.10.99, behaviour: hang}
        kubernetes:
          remove: [Ingress/production/api-ingress, IngressClass/nginx]
          objects:
            - apiVersion: v1
              kind: Service
              metadata: {name: api, namespace: production}
              spec: {selector: {app: other}}
          logs: {production/api-847495fbc4-686tk: "one line\\n"}
        """)
    scenario = load_scenario(path)
    records = scenario.resolvers[0].records
    assert "bot.97v.test" not in records and records["new.97v.test"].aaaa == ("::1",)
    assert records["97v.test"].a == ("127.0.10.53",)
    assert edge(scenario, "127.0.10.53").behaviour == Behaviour("garbage")
    assert edge(scenario, "127.0.10.99").behaviour == Behaviour("hang")
    assert edge(scenario, "127.0.10.80").behaviour == Behaviour("healthy")
    assert scenario.objects_of_kind("Ingress") == [] and scenario.objects_of_kind("IngressClass") == []
    service = obj(scenario, "Service", "api")
    assert service["spec"]["selector"] == {"app": "other"}
    assert service["spec"]["ports"][0]["port"] == 80  # untouched keys survive the patch
    assert scenario.logs["production/api-847495fbc4-686tk"] == "one line\n"
    assert "production/digital-twin-bot-6d9f7b8c5-q4w7z" in scenario.logs


# -- bad files: one line naming file, path and expectation ----------------------------------------

MINIMAL = """\
name: bad
description: a bad scenario
target: {host: bad.test}
dns: {primary: {records: {bad.test: {A: [127.0.10.1]}}}}
edges: [{address: 127.0.10.1, behaviour: healthy}]
"""

BAD_CASES = [
    ("behaviour typo", MINIMAL.replace("behaviour: healthy", "behaviour: emtpy_reply"),
     "edges[0].behaviour: expected one of healthy, empty_reply, refuse, reset_mid_body, hang, garbage, "
     "{http_status: N} or {slow: DURATION}, got 'emtpy_reply'"),
    ("missing target", MINIMAL.replace("target: {host: bad.test}\n", ""),
     "target: expected a value (required), got nothing"),
    ("bad A record", MINIMAL.replace("A: [127.0.10.1]", "A: [999.0.0.1]"),
     "dns.primary.records.bad.test.A[0]: expected an IPv4 address, got '999.0.0.1'"),
    ("A record not a list", MINIMAL.replace("A: [127.0.10.1]", "A: 127.0.10.1"),
     "dns.primary.records.bad.test.A: expected a list of IPv4 addresses, got '127.0.10.1'"),
    ("bad rcode", MINIMAL.replace("A: [127.0.10.1]", "rcode: NOTAUTH"),
     "dns.primary.records.bad.test.rcode: expected one of NXDOMAIN, SERVFAIL, REFUSED, got 'NOTAUTH'"),
    ("OS resolver address", MINIMAL.replace("address: 127.0.10.1", "address: 127.0.0.53"),
     "edges[0].address: expected an address other than 127.0.0.53 (the OS resolver's), got '127.0.0.53'"),
    ("edge off loopback", MINIMAL.replace("address: 127.0.10.1", "address: 10.0.0.1"),
     "edges[0].address: expected an IPv4 address in 127.0.0.0/8, got '10.0.0.1'"),
    ("bad status", MINIMAL.replace("behaviour: healthy", "behaviour: {http_status: 700}"),
     "edges[0].behaviour.http_status: expected an HTTP status from 100 to 599, got 700"),
    ("bad duration", MINIMAL.replace("behaviour: healthy", "behaviour: {slow: soon}"),
     "edges[0].behaviour.slow: expected a duration such as 300ms or 2s (at most 600s), got 'soon'"),
    ("bad tls", MINIMAL.replace("behaviour: healthy}", "behaviour: healthy, tls: self_signed}"),
     "edges[0].tls: expected one of good, expired, wrong_host, untrusted, got 'self_signed'"),
    ("unknown key", MINIMAL + "edge: []\n",
     "edge: expected one of the keys name, description, target, namespace, dns, edges, in_cluster, "
     "kubernetes, application, postgres, got 'edge'"),
    ("bad scheme", MINIMAL.replace("{host: bad.test}", "{host: bad.test, scheme: ftp}"),
     "target.scheme: expected http or https, got 'ftp'"),
    ("load balancer not an edge", MINIMAL + textwrap.dedent("""\
        kubernetes:
          objects:
            - apiVersion: v1
              kind: Service
              metadata: {name: api, namespace: production}
              spec: {type: LoadBalancer}
              status: {loadBalancer: {ingress: [{ip: 127.0.10.99}]}}
        """),
     "kubernetes.objects[0].status.loadBalancer.ingress[0].ip: expected the address of an edge of this "
     "scenario, got '127.0.10.99'"),
    ("secret with data", MINIMAL + textwrap.dedent("""\
        kubernetes:
          objects:
            - {apiVersion: v1, kind: Secret, metadata: {name: s, namespace: production}, data: {k: dg==}}
        """),
     "kubernetes.objects[0].data: expected no secret data (the sandbox keeps Secrets' metadata only), got 'data'"),
    ("namespaced kind without namespace", MINIMAL + textwrap.dedent("""\
        kubernetes:
          objects:
            - {apiVersion: v1, kind: Pod, metadata: {name: p}}
        """),
     "kubernetes.objects[0].metadata.namespace: expected a namespace (a Pod is namespaced), got nothing"),
    ("logs for a missing pod", MINIMAL + "kubernetes: {logs: {production/ghost: hello}}\n",
     "kubernetes.logs: expected keys naming a Pod of kubernetes.objects as namespace/pod, got 'production/ghost'"),
    ("deny bad verb", MINIMAL + "kubernetes: {deny: [{verb: steal, resource: secrets}]}\n",
     "kubernetes.deny[0].verb: expected one of get, list, watch, create, update, patch, delete, "
     "deletecollection, got 'steal'"),
    ("remove without base", MINIMAL + "kubernetes: {remove: [Pod/production/x]}\n",
     "kubernetes.remove: expected one of the keys objects, logs, deny, got 'remove'"),
    ("record and rcode", MINIMAL.replace("A: [127.0.10.1]", "A: [127.0.10.1], rcode: SERVFAIL"),
     "dns.primary.records.bad.test: expected either records or one of rcode / no_answer, got 'both'"),
]


@pytest.mark.parametrize("text, message", [case[1:] for case in BAD_CASES], ids=[case[0] for case in BAD_CASES])
def test_bad_scenario_gives_one_line_error(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value) == f"{path}: {message}"
    assert "\n" not in str(caught.value)


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "name: x\ndescription: [unclosed\ntarget: {}\n")
    with pytest.raises(ScenarioError, match=rf"^{path}: line \d+: expected valid YAML, got .+$"):
        load_scenario(path)


def test_overlay_errors_name_the_overlay_file(tmp_path):
    unknown_base = write(tmp_path, "name: x\ndescription: d\nbase: no-such-world\n", "a.yaml")
    with pytest.raises(ScenarioError, match=rf"^{unknown_base}: base: expected a loadable scenario, got unknown"):
        load_scenario(unknown_base)
    bad_removal = write(tmp_path, "name: x\ndescription: d\nbase: healthy\nkubernetes: {remove: [Pod/x/y]}\n", "b.yaml")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(bad_removal)
    assert str(caught.value) == f"{bad_removal}: kubernetes.remove[0]: expected an object of the base, got 'Pod/x/y'"


def test_unknown_scenario_name_lists_the_known_ones():
    with pytest.raises(ScenarioError, match=r"^unknown scenario 'nope'; known: .*incident-2025-12-08"):
        load_scenario("nope")


def test_cli_reports_bad_scenarios_in_one_line_with_exit_2(tmp_path):
    bad = write(tmp_path, MINIMAL.replace("behaviour: healthy", "behaviour: sleepy"))
    for argument, expected in ((str(bad), f"error: {bad}: edges[0].behaviour: expected"), ("nope", "error: unknown scenario")):
        result = subprocess.run(
            [sys.executable, "-m", "pytest_reachability.sandbox", argument], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1


def test_cli_lists_every_scenario_with_its_description():
    result = subprocess.run(
        [sys.executable, "-m", "pytest_reachability.sandbox", "--list"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == scenario_names()
    incident = next(line for line in lines if line.startswith("incident-2025-12-08"))
    assert load_scenario("incident-2025-12-08").description in incident
