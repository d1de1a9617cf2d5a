"""Scenario files: every shipped one loads and says what it promises; bad files give one-line errors."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import kubernetes.client
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_reachability.sandbox.scenario import (
    SECTION_NAMES,
    Behaviour,
    ScenarioError,
    load_scenario,
    merge_patch,
    object_identity,
    scenario_names,
)

REQUIRED = [
    "healthy",
    "incident-2025-12-08",
    "lb-pending",
    "selector-no-pods",
    "targetport-mismatch",
    "crashloop",
    "ingress-backend-missing",
    "tls-expired",
    "resolvers-disagree",
    "netpol-deny",
]
# Kind -> the official client's model, which is stricter than the API server (required fields).
CLIENT_MODELS = {"Event": "CoreV1Event"}


def obj(scenario, kind: str, name: str, namespace: str | None = "production") -> dict | None:
    return next(
        (
            o
            for o in scenario.objects
            if o["kind"] == kind
            and o["metadata"]["name"] == name
            and o["metadata"].get("namespace") == namespace
        ),
        None,
    )


def edge(scenario, address: str):
    return next(e for e in scenario.edges if e.address == address)


def answers(scenario, resolver: str, name: str):
    return next(r for r in scenario.resolvers if r.name == resolver).records[name]


# -- shipped scenarios ------------------------------------------------------------------------


def test_every_required_scenario_is_shipped():
    assert set(REQUIRED) <= set(scenario_names())
    assert len(scenario_names()) >= 50


@pytest.mark.parametrize("name", scenario_names())
def test_shipped_scenario_says_what_its_diagnosis_must_find(name):
    expect = load_scenario(name).expect
    assert expect is not None, f"{name} has no expect block"
    assert set(expect.failing) | set(expect.may_fail) <= set(SECTION_NAMES)
    if expect.top is None:
        assert not expect.failing, "a healthy world fails no section"
    else:
        assert expect.failing, "a fault fails at least one section"


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
    # A load balancer published as a hostname (AWS's ELB/NLB) resolves, on every resolver, to an edge.
    named = {
        host: {*record.a, *record.aaaa}
        for resolver in scenario.resolvers
        for host, record in resolver.records.items()
    }
    for manifest in scenario.objects:
        for entry in manifest.get("status", {}).get("loadBalancer", {}).get("ingress", []) or []:
            if "ip" in entry:
                assert entry["ip"] in addresses
            else:
                assert named.get(entry["hostname"]) and named[entry["hostname"]] <= addresses, entry
        created = manifest["metadata"].get("creationTimestamp")
        if created is not None:
            assert created.endswith("Z") and created[:2] == "20", created


def test_incident_scenario_reproduces_the_incident():
    scenario = load_scenario("incident-2025-12-08")
    assert (scenario.target.host, scenario.target.scheme, scenario.namespace) == (
        "97v.test",
        "http",
        "production",
    )
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
    log_lines = [
        line for line in scenario.logs["production/api-847495fbc4-686tk"].splitlines() if '"GET' in line
    ]
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
        "a": {"c": 2, "e": 3},
        "d": [2],
    }
    assert object_identity({"kind": "Node", "metadata": {"name": "n1"}}) == "Node/n1"
    assert object_identity({"kind": "Pod", "metadata": {"name": "p", "namespace": "x"}}) == "Pod/x/p"


def write(tmp_path: Path, text: str, name: str = "world.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_overlay_merges_records_edges_and_objects_and_removes(tmp_path):
    path = write(
        tmp_path,
        """
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
        """,
    )
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


def with_object(manifest: str) -> str:
    """MINIMAL with one manifest (a YAML flow mapping) in kubernetes.objects."""
    return MINIMAL + f"kubernetes:\n  objects:\n    - {manifest}\n"


BAD_CASES = [
    (
        "behaviour typo",
        MINIMAL.replace("behaviour: healthy", "behaviour: emtpy_reply"),
        "edges[0].behaviour: expected one of healthy, empty_reply, refuse, reset_mid_body, hang, garbage, "
        "blackhole, "
        "{http_status: N}, {slow: DURATION}, {redirect: {location: URL}} or {intermittent: {share: F}}, got "
        "'emtpy_reply'",
    ),
    (
        "missing target",
        MINIMAL.replace("target: {host: bad.test}\n", ""),
        "target: expected a value (required), got nothing",
    ),
    (
        "bad A record",
        MINIMAL.replace("A: [127.0.10.1]", "A: [999.0.0.1]"),
        "dns.primary.records.bad.test.A[0]: expected an IPv4 address, got '999.0.0.1'",
    ),
    (
        "A record not a list",
        MINIMAL.replace("A: [127.0.10.1]", "A: 127.0.10.1"),
        "dns.primary.records.bad.test.A: expected a list of IPv4 addresses, got '127.0.10.1'",
    ),
    (
        "bad rcode",
        MINIMAL.replace("A: [127.0.10.1]", "rcode: NOTAUTH"),
        "dns.primary.records.bad.test.rcode: expected one of NXDOMAIN, SERVFAIL, REFUSED, got 'NOTAUTH'",
    ),
    (
        "OS resolver address",
        MINIMAL.replace("address: 127.0.10.1", "address: 127.0.0.53"),
        "edges[0].address: expected an address other than 127.0.0.53 (the OS resolver's), got '127.0.0.53'",
    ),
    (
        "edge off loopback",
        MINIMAL.replace("address: 127.0.10.1", "address: 10.0.0.1"),
        "edges[0].address: expected an IPv4 address in 127.0.0.0/8 or ::1, got '10.0.0.1'",
    ),
    (
        "IPv6 edge other than ::1",
        MINIMAL.replace("address: 127.0.10.1", "address: '::2'"),
        "edges[0].address: expected an IPv4 address in 127.0.0.0/8 or ::1, got '::2'",
    ),
    (
        "bad status",
        MINIMAL.replace("behaviour: healthy", "behaviour: {http_status: 700}"),
        "edges[0].behaviour.http_status: expected an HTTP status from 100 to 599, got 700",
    ),
    (
        "bad duration",
        MINIMAL.replace("behaviour: healthy", "behaviour: {slow: soon}"),
        "edges[0].behaviour.slow: expected a duration such as 300ms or 2s (at most 600s), got 'soon'",
    ),
    (
        "bad tls",
        MINIMAL.replace("behaviour: healthy}", "behaviour: healthy, tls: self_signed}"),
        "edges[0].tls: expected one of good, expired, wrong_host, untrusted, intermediate, "
        "missing_intermediate, "
        "not_yet_valid, wildcard_parent, got 'self_signed'",
    ),
    (
        "unknown key",
        MINIMAL + "edge: []\n",
        "edge: expected one of the keys name, description, target, namespace, dns, edges, in_cluster, "
        "kubernetes, application, postgres, expect, changes, latency, got 'edge'",
    ),
    (
        "bad scheme",
        MINIMAL.replace("{host: bad.test}", "{host: bad.test, scheme: ftp}"),
        "target.scheme: expected http or https, got 'ftp'",
    ),
    (
        "load balancer not an edge",
        MINIMAL
        + textwrap.dedent("""\
        kubernetes:
          objects:
            - apiVersion: v1
              kind: Service
              metadata: {name: api, namespace: production}
              spec: {type: LoadBalancer}
              status: {loadBalancer: {ingress: [{ip: 127.0.10.99}]}}
        """),
        "kubernetes.objects[0].status.loadBalancer.ingress[0].ip: expected the address of an edge of this "
        "scenario, got '127.0.10.99'",
    ),
    (
        "secret with data",
        MINIMAL
        + textwrap.dedent("""\
        kubernetes:
          objects:
            - {apiVersion: v1, kind: Secret, metadata: {name: s, namespace: production}, data: {k: dg==}}
        """),
        "kubernetes.objects[0].data: expected no secret data (the sandbox keeps Secrets' metadata only), got "
        "'data'",
    ),
    (
        "namespaced kind without namespace",
        MINIMAL
        + textwrap.dedent("""\
        kubernetes:
          objects:
            - {apiVersion: v1, kind: Pod, metadata: {name: p}}
        """),
        "kubernetes.objects[0].metadata.namespace: expected a namespace (a Pod is namespaced), got nothing",
    ),
    (
        "logs for a missing pod",
        MINIMAL + "kubernetes: {logs: {production/ghost: hello}}\n",
        "kubernetes.logs: expected keys naming a Pod of kubernetes.objects as namespace/pod, got "
        "'production/ghost'",
    ),
    (
        "deny bad verb",
        MINIMAL + "kubernetes: {deny: [{verb: steal, resource: secrets}]}\n",
        "kubernetes.deny[0].verb: expected one of get, list, watch, create, update, patch, delete, "
        "deletecollection, got 'steal'",
    ),
    (
        "remove without base",
        MINIMAL + "kubernetes: {remove: [Pod/production/x]}\n",
        "kubernetes.remove: expected one of the keys objects, logs, deny, got 'remove'",
    ),
    (
        "record and rcode",
        MINIMAL.replace("A: [127.0.10.1]", "A: [127.0.10.1], rcode: SERVFAIL"),
        "dns.primary.records.bad.test: expected either records or one of rcode / no_answer, got 'both'",
    ),
    (
        "extended error code out of range",
        MINIMAL.replace("A: [127.0.10.1]", "rcode: SERVFAIL, ede: [{code: 70000}]"),
        "dns.primary.records.bad.test.ede[0].code: expected an info code from 0 to 65535, got 70000",
    ),
    (
        "extended error with an unknown key",
        MINIMAL.replace("A: [127.0.10.1]", "rcode: SERVFAIL, ede: [{code: 7, why: x}]"),
        "dns.primary.records.bad.test.ede[0].why: expected one of the keys code, text, got 'why'",
    ),
    (
        "load balancer status not a mapping",
        with_object(
            "{apiVersion: v1, kind: Service, metadata: {name: api, namespace: production}, status: "
            '{loadBalancer: "-12x"}}'
        ),
        "kubernetes.objects[0].status.loadBalancer: expected a valid dictionary or instance of "
        "V1LoadBalancerStatus, "
        "got '-12x'",
    ),
    (
        "port not a number",
        with_object(
            "{apiVersion: v1, kind: Service, metadata: {name: api, namespace: production}, spec: {ports: "
            "[{port: http}]}}"
        ),
        "kubernetes.objects[0].spec.ports[0].port: expected a valid integer, got 'http'",
    ),
    (
        "image not a string",
        with_object(
            "{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: production}, spec: {containers: "
            "[{name: c, image: 3}]}}"
        ),
        "kubernetes.objects[0].spec.containers[0].image: expected a valid string, got 3",
    ),
    (
        "condition status a boolean",
        with_object(
            "{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: production}, "
            "status: {conditions: [{type: Ready, status: true}]}}"
        ),
        "kubernetes.objects[0].status.conditions[0].status: expected a valid string, got true",
    ),
    (
        "bad redirect status",
        MINIMAL.replace("behaviour: healthy", "behaviour: {redirect: {location: /x, status: 200}}"),
        "edges[0].behaviour.redirect.status: expected a redirect status (301, 302, 303, 307 or 308), got 200",
    ),
    (
        "intermittent share of 1",
        MINIMAL.replace("behaviour: healthy", "behaviour: {intermittent: {share: 1}}"),
        "edges[0].behaviour.intermittent.share: expected a fraction between 0 and 1 (exclusive), got 1",
    ),
    (
        "intermittent failure unknown",
        MINIMAL.replace("behaviour: healthy", "behaviour: {intermittent: {share: 0.5, fail_with: hang}}"),
        "edges[0].behaviour.intermittent.fail_with: expected an HTTP status from 400 to 599 or one of "
        "empty_reply, "
        "reset_mid_body, got 'hang'",
    ),
    (
        "health status out of range",
        MINIMAL.replace("behaviour: healthy}", "behaviour: healthy, health: {status: 42}}"),
        "edges[0].health.status: expected an HTTP status from 100 to 599, got 42",
    ),
    (
        "health body a number",
        MINIMAL.replace("behaviour: healthy}", "behaviour: healthy, health: {body: 7}}"),
        "edges[0].health.body: expected text, a mapping or a list, got 7",
    ),
    (
        "blackhole in cluster",
        MINIMAL + "in_cluster: {behaviour: blackhole}\n",
        "in_cluster.behaviour: expected a behaviour of a listening server (not refuse or blackhole), got "
        "'blackhole'",
    ),
    (
        "postgres state unknown",
        MINIMAL + "postgres: {state: sleepy}\n",
        "postgres.state: expected one of running, down, slow, wrong_password, missing_database, got 'sleepy'",
    ),
    (
        "postgres slow without delay",
        MINIMAL + "postgres: {state: slow}\n",
        "postgres.delay: expected a duration above 0 for state slow, got nothing",
    ),
    (
        "expect top not a rule id",
        MINIMAL + "expect: {top: Pods Crashing}\n",
        "expect.top: expected a rule id (lower-case words joined by '-') or null, got 'Pods Crashing'",
    ),
    (
        "expect failing not a list",
        MINIMAL + "expect: {top: null, failing: dns}\n",
        "expect.failing: expected a list of section names, got 'dns'",
    ),
]


@pytest.mark.parametrize(
    "text, message", [case[1:] for case in BAD_CASES], ids=[case[0] for case in BAD_CASES]
)
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
    with pytest.raises(
        ScenarioError, match=rf"^{unknown_base}: base: expected a loadable scenario, got unknown"
    ):
        load_scenario(unknown_base)
    bad_removal = write(
        tmp_path, "name: x\ndescription: d\nbase: healthy\nkubernetes: {remove: [Pod/x/y]}\n", "b.yaml"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(bad_removal)
    assert (
        str(caught.value)
        == f"{bad_removal}: kubernetes.remove[0]: expected an object of the base, got 'Pod/x/y'"
    )


def test_unknown_scenario_name_lists_the_known_ones():
    with pytest.raises(ScenarioError, match=r"^unknown scenario 'nope'; known: .*incident-2025-12-08"):
        load_scenario("nope")


def test_cli_reports_bad_scenarios_in_one_line_with_exit_2(tmp_path):
    bad = write(tmp_path, MINIMAL.replace("behaviour: healthy", "behaviour: sleepy"))
    for argument, expected in (
        (str(bad), f"error: {bad}: edges[0].behaviour: expected"),
        ("nope", "error: unknown scenario"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "pytest_reachability.sandbox", argument],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1


def test_cli_lists_every_scenario_with_its_description():
    result = subprocess.run(
        [sys.executable, "-m", "pytest_reachability.sandbox", "--list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == scenario_names()
    incident = next(line for line in lines if line.startswith("incident-2025-12-08"))
    assert load_scenario("incident-2025-12-08").description in incident


def test_new_schema_keys_load_into_the_model(tmp_path):
    path = write(
        tmp_path,
        """
        name: everything
        description: every newer schema key at once
        target: {host: api.test}
        dns: {primary: {records: {api.test: {A: [127.0.10.1], AAAA: ["::1"]}}}}
        edges:
          - {address: 127.0.10.1, behaviour: blackhole}
          - address: 127.0.10.2
            behaviour: {redirect: {location: "https://{host}:{port}/health", status: 308}}
          - {address: 127.0.10.3, behaviour: {intermittent: {share: 0.25, fail_with: empty_reply}}}
          - address: "::1"
            behaviour: healthy
            tls: missing_intermediate
            health: {path: /healthz, status: 503, body: {status: DOWN, components: {db: {status: DOWN}}}}
        in_cluster: {behaviour: healthy, health: {body: "ok"}}
        postgres: {state: slow, delay: 250ms}
        expect: {top: dependency-unhealthy, failing: [api-health], may_fail: [performance], cluster: false}
        """,
    )
    scenario = load_scenario(path)
    assert edge(scenario, "127.0.10.1").behaviour == Behaviour("blackhole")
    assert edge(scenario, "127.0.10.2").behaviour == Behaviour(
        "redirect", status=308, location="https://{host}:{port}/health"
    )
    assert edge(scenario, "127.0.10.3").behaviour == Behaviour(
        "intermittent", share=0.25, fail_with="empty_reply"
    )
    v6 = edge(scenario, "::1")
    assert v6.tls == "missing_intermediate"
    assert (v6.health.path, v6.health.status, v6.health.content_type) == ("/healthz", 503, "application/json")
    assert v6.health.body == '{"status":"DOWN","components":{"db":{"status":"DOWN"}}}'
    assert (scenario.in_cluster_health.body, scenario.in_cluster_health.content_type) == ("ok", "text/plain")
    assert (scenario.postgres, scenario.database.state, scenario.database.delay) == (True, "slow", 0.25)
    assert (
        scenario.expect.top,
        scenario.expect.failing,
        scenario.expect.may_fail,
        scenario.expect.cluster,
    ) == ("dependency-unhealthy", ("api-health",), ("performance",), False)


def usage_error_of_a_run_with(folder, scenario) -> str:
    """What pytest prints when ``--sandbox=scenario`` is refused: exit 4 (usage error), no traceback."""
    (folder / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
        + [f"--sandbox={scenario}", "test_nothing.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 4, result.stdout + result.stderr
    output = (result.stdout + result.stderr).strip()
    assert "INTERNALERROR" not in output and "Traceback" not in output
    return output


def test_plugin_turns_a_malformed_scenario_into_a_one_line_usage_error(tmp_path):
    bad = write(
        tmp_path,
        MINIMAL
        + textwrap.dedent("""\
        kubernetes:
          objects:
            - apiVersion: v1
              kind: Service
              metadata: {name: api, namespace: production}
              status: {loadBalancer: "-12x"}
        """),
    )
    output = usage_error_of_a_run_with(tmp_path, bad)
    assert output.splitlines() == [
        f"ERROR: --sandbox: {bad}: kubernetes.objects[0].status.loadBalancer: expected a valid dictionary or "
        "instance of V1LoadBalancerStatus, got '-12x'"
    ]


def test_a_kind_the_sandbox_does_not_serve_is_a_one_line_usage_error(tmp_path):
    # A batch/v1 Job passes the scenario's validation (a real API server serves it); the sandbox's own API
    # server does not: one line naming the object, not an INTERNALERROR.
    bad = write(
        tmp_path,
        with_object(
            "{apiVersion: batch/v1, kind: Job, metadata: {name: db-migrate, namespace: default},"
            " spec: {template: {spec: {restartPolicy: Never, containers: [{name: m, image: m:1}]}}}}"
        ),
    )
    output = usage_error_of_a_run_with(tmp_path, bad)
    (line,) = output.splitlines()
    assert line.startswith("ERROR: --sandbox: bad: kubernetes.objects: object #1 (Job db-migrate): ")
    assert "batch/v1/Job is not served" in line


# -- fuzzing: mutated valid scenarios either load or fail with one line ------------------------------------

FUZZ_SOURCES = (
    "healthy",
    "incident-2025-12-08",
    "crashloop",
    "healthy-ipv6",
    "intermittent-503",
    "db-slow",
    "health-spring-redis-down",
    "rollout-image-missing",
)


def _documents() -> list[dict]:
    from pytest_reachability.sandbox.scenario import SCENARIOS_DIR

    return [yaml.safe_load((SCENARIOS_DIR / f"{name}.yaml").read_text()) for name in FUZZ_SOURCES]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


DOCUMENTS = _documents()
PATHS = [list(_paths(document)) for document in DOCUMENTS]
# Values of the wrong type, shape or range for most places: what a hand-written file gets wrong.
ODD_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "-12x",
            "",
            " ",
            "127.0.10.53",
            "::1",
            "999.1.1.1",
            "-2d",
            "3s",
            "True",
            "null",
            "a" * 300,
            "\x00",
            "LoadBalancer",
            "production",
            "http",
            "{port}",
            "https://",
            "/health",
            "Ready",
            "97v.test",
            "*",
        ]
    ),
    st.text(max_size=12),
)
ODD_VALUES = st.recursive(
    ODD_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(["ip", "name", "port", "status", "x", "A"]), children, max_size=3),
    ),
    max_leaves=6,
)


def _mutate(document: dict, path: tuple, how: str, value) -> dict:
    mutated = copy.deepcopy(document)
    if not path:
        return mutated if how != "replace" else {"name": value}
    parent = mutated
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "wrap":
        parent[last] = [parent[last]]
    elif how == "unknown-key" and isinstance(parent[last], dict):
        parent[last]["unexpected"] = value
    else:
        parent[last] = value
    return mutated


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=st.data())
def test_fuzzed_scenarios_load_or_fail_in_one_line(tmp_path_factory, data):
    index = data.draw(st.integers(min_value=0, max_value=len(DOCUMENTS) - 1), label="document")
    path = data.draw(st.sampled_from(PATHS[index]), label="path")
    how = data.draw(
        st.sampled_from(["replace", "replace", "replace", "delete", "wrap", "unknown-key"]), label="how"
    )
    value = data.draw(ODD_VALUES, label="value")
    document = _mutate(DOCUMENTS[index], path, how, value)
    target = tmp_path_factory.mktemp("fuzz") / "fuzzed.yaml"
    target.write_text(yaml.safe_dump(document, allow_unicode=True))
    try:
        load_scenario(target)
    except ScenarioError as error:
        message = str(error)
        assert message and "\n" not in message and "Traceback" not in message
        assert message.startswith((f"{target}: ", "unknown scenario")), message
