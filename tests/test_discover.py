"""Discovery of a cluster's public hosts.

The pure part runs on manifests in wire form (as ``kubectl get -o json`` shows them), turned into the
official client's models by its own deserializer and into snapshots by the cluster view's converters, the
path every real read takes. The reads run through the official client against the sandbox API server over
real TLS: the fleet scenario's objects, a small scenario written here, deny rules for refused reads, a
closed port and a silent listener for an API server that is gone or hangs.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import socket
import textwrap
import time
from urllib.parse import parse_qs

import kubernetes.client
import pytest

from pytest_reachability.cluster import Cluster, ClusterError, ClusterErrorKind, ingress_info, service_info
from pytest_reachability.discover import (
    EXTERNAL_DNS_HOSTNAME,
    EXTERNAL_DNS_HOSTNAME_LEGACY,
    DiscoveryError,
    TargetSource,
    annotation_hosts,
    discover,
    merge_sources,
    normalise_host,
    sources_from_ingress,
    sources_from_service,
    targets_from,
)
from pytest_reachability.sandbox import Sandbox
from pytest_reachability.sandbox.apiserver import KubeApiServer, write_kubeconfig
from pytest_reachability.sandbox.certs import CertificateAuthority
from pytest_reachability.sandbox.scenario import load_scenario

_deserialize = kubernetes.client.ApiClient()._ApiClient__deserialize


# -- manifests in wire form -------------------------------------------------------------------------------


def ingress(
    name: str,
    namespace: str = "shop",
    *,
    rules: list[dict],
    tls: list[dict] | None = None,
    address: str | None = "203.0.113.10",
    default_backend: dict | None = None,
):
    spec: dict = {"rules": rules}
    if tls is not None:
        spec["tls"] = tls
    if default_backend is not None:
        spec["defaultBackend"] = default_backend
    manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": address}] if address else []}},
    }
    return ingress_info(_deserialize(manifest, "V1Ingress"))


def rule(host: str | None, service: str = "web", port: int | str = 80, path: str = "/") -> dict:
    port_field = {"number": port} if isinstance(port, int) else {"name": port}
    entry: dict = {
        "http": {
            "paths": [
                {
                    "path": path,
                    "pathType": "Prefix",
                    "backend": {"service": {"name": service, "port": port_field}},
                }
            ]
        }
    }
    if host is not None:
        entry["host"] = host
    return entry


def lb_service(
    name: str,
    namespace: str = "shop",
    *,
    annotations: dict | None = None,
    service_type: str = "LoadBalancer",
    ingress_status: list[dict] | None = None,
    ports: list[dict] | None = None,
):
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "type": service_type,
            "selector": {"app": name},
            "ports": ports or [{"name": "https", "port": 443, "targetPort": 8443}],
        },
        "status": {"loadBalancer": {"ingress": ingress_status if ingress_status is not None else []}},
    }
    return service_info(_deserialize(manifest, "V1Service"))


def hosts(targets) -> list[str]:
    return [target.host for target in targets]


# -- host names and the hostname annotation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Shop.Example.COM.", "shop.example.com"),
        ("  api.example.com ", "api.example.com"),
        ("*.preview.example.com", "*.preview.example.com"),
        ("_acme.example.com", "_acme.example.com"),
        ("localhost", "localhost"),
        ("", None),
        (".", None),
        ("*", None),
        ("*.", None),
        ("a..b", None),
        ("-a.example.com", None),
        ("a*.example.com", None),
        ("api.*.example.com", None),
        ("http://api.example.com", None),
        ("api.example.com:443", None),
        ("api.example.com/v1", None),
        ("203.0.113.7", None),
        ("2001:db8::1", None),
        ("x" * 64 + ".example.com", None),
        (".".join(["a" * 60] * 5), None),  # over 253 characters
    ],
)
def test_normalise_host(text, expected):
    assert normalise_host(text) == expected


@pytest.mark.parametrize(
    "value, expected_hosts, expected_rejected",
    [
        ("a.example.com", ["a.example.com"], []),
        ("a.example.com,b.example.com", ["a.example.com", "b.example.com"], []),
        # external-dns removes every space before splitting: spaces around entries and inside them go.
        (" a.example.com , b.example.com ", ["a.example.com", "b.example.com"], []),
        ("a.example .com", ["a.example.com"], []),
        # Empty entries (doubled or trailing commas) name nothing.
        ("a.example.com,,b.example.com,", ["a.example.com", "b.example.com"], []),
        (",", [], []),
        ("", [], []),
        ("   ", [], []),
        # A trailing dot (a fully qualified name) and upper case are the same host; a repeat is one host.
        ("A.Example.com., a.example.com", ["a.example.com"], []),
        ("*.example.com", ["*.example.com"], []),
        # A YAML block scalar may leave newlines and tabs around entries.
        ("a.example.com,\n\tb.example.com\n", ["a.example.com", "b.example.com"], []),
        ("a.example.com,\n", ["a.example.com"], []),
        (
            "a.example.com,https://b.example.com,203.0.113.9",
            ["a.example.com"],
            ["https://b.example.com", "203.0.113.9"],
        ),
    ],
)
def test_annotation_hosts_split_as_external_dns_does(value, expected_hosts, expected_rejected):
    assert annotation_hosts(value) == (expected_hosts, expected_rejected)


def test_annotation_hosts_of_nothing():
    assert annotation_hosts(None) == ([], [])


# -- LoadBalancer Services ---------------------------------------------------------------------------------


def test_load_balancer_service_publishes_each_annotated_host_with_its_addresses():
    service = lb_service(
        "gateway",
        "payments",
        annotations={EXTERNAL_DNS_HOSTNAME_LEGACY: "pay.example.com, api.pay.example.com."},
        ingress_status=[{"ip": "203.0.113.21"}, {"hostname": "lb-1.elb.example.net"}],
    )
    pairs, rejected = sources_from_service(service)
    assert rejected == []
    assert [host for host, _ in pairs] == ["pay.example.com", "api.pay.example.com"]
    source = pairs[0][1]
    assert source == TargetSource(
        kind="Service",
        namespace="payments",
        name="gateway",
        tls=False,
        tls_secret=None,
        service="gateway",
        port=443,
        addresses=("203.0.113.21", "lb-1.elb.example.net"),
    )
    assert source.object == "Service/payments/gateway"


def test_pending_load_balancer_still_publishes_its_hosts_without_addresses():
    pairs, _ = sources_from_service(
        lb_service("new", annotations={EXTERNAL_DNS_HOSTNAME_LEGACY: "n.example.com"})
    )
    assert [(host, source.addresses) for host, source in pairs] == [("n.example.com", ())]


@pytest.mark.parametrize("service_type", ["ClusterIP", "NodePort", "ExternalName"])
def test_services_other_than_load_balancers_publish_nothing(service_type):
    service = lb_service(
        "internal", annotations={EXTERNAL_DNS_HOSTNAME_LEGACY: "i.example.com"}, service_type=service_type
    )
    assert sources_from_service(service) == ([], [])


def test_load_balancer_without_the_annotation_publishes_nothing():
    # An ingress controller's own LoadBalancer: its hosts are its Ingresses', not its own.
    service = lb_service("ingress-nginx-controller", annotations={"other/hostname": "x.example.com"})
    assert sources_from_service(service) == ([], [])


def test_the_current_annotation_prefix_wins_over_the_legacy_one():
    service = lb_service(
        "gateway",
        annotations={
            EXTERNAL_DNS_HOSTNAME: "new.example.com",
            EXTERNAL_DNS_HOSTNAME_LEGACY: "old.example.com",
        },
    )
    assert [host for host, _ in sources_from_service(service)[0]] == ["new.example.com"]


def test_rejected_annotation_entries_become_one_warning_each():
    service = lb_service("gateway", annotations={EXTERNAL_DNS_HOSTNAME_LEGACY: "ok.example.com,not a/host"})
    targets, warnings = targets_from([], [service])
    assert hosts(targets) == ["ok.example.com"]
    assert warnings == [
        "Service/shop/gateway: hostname annotation entry 'nota/host' is not a host name; skipped"
    ]


# -- Ingress rules -----------------------------------------------------------------------------------------


def test_each_rule_host_is_a_source_with_its_backend_and_the_ingress_addresses():
    found = sources_from_ingress(
        ingress("storefront", rules=[rule("a.example.com", "web", 80), rule("b.example.com", "api", "http")])
    )
    assert [(host, source.service, source.port, source.addresses) for host, source in found] == [
        ("a.example.com", "web", 80, ("203.0.113.10",)),
        ("b.example.com", "api", "http", ("203.0.113.10",)),
    ]
    assert {source.object for _, source in found} == {"Ingress/shop/storefront"}


def test_rules_without_a_host_are_skipped_and_wildcards_kept_as_they_are():
    found = sources_from_ingress(
        ingress("mixed", rules=[rule(None), rule("*.preview.example.com"), rule("x.example.com")])
    )
    assert [host for host, _ in found] == ["*.preview.example.com", "x.example.com"]
    targets = merge_sources(found)
    assert [(target.host, target.wildcard) for target in targets] == [
        ("*.preview.example.com", True),
        ("x.example.com", False),
    ]


def test_ingress_without_an_address_yet_publishes_its_hosts_without_addresses():
    found = sources_from_ingress(ingress("beta", rules=[rule("beta.example.com")], address=None))
    assert found[0][1].addresses == ()


def test_the_root_path_names_the_backend_and_a_rule_without_paths_uses_the_default_backend():
    default = {"service": {"name": "fallback", "port": {"number": 8080}}}
    root_second = rule("a.example.com", "static", 80, path="/static")
    root_second["http"]["paths"].append(
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
    )
    no_paths = {"host": "b.example.com"}
    found = dict(sources_from_ingress(ingress("i", rules=[root_second, no_paths], default_backend=default)))
    assert (found["a.example.com"].service, found["a.example.com"].port) == ("web", 80)
    assert (found["b.example.com"].service, found["b.example.com"].port) == ("fallback", 8080)


def test_a_resource_backend_names_no_service():
    resource_rule = {
        "host": "assets.example.com",
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {
                        "resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "assets"}
                    },
                }
            ]
        },
    }
    ((_, source),) = sources_from_ingress(ingress("assets", rules=[resource_rule]))
    assert (source.service, source.port) == (None, None)


# -- TLS per host ------------------------------------------------------------------------------------------


def tls_of(tls: list[dict], *rule_hosts: str) -> dict[str, tuple[bool, str | None]]:
    found = sources_from_ingress(ingress("tls", rules=[rule(host) for host in rule_hosts], tls=tls))
    return {host: (source.tls, source.tls_secret) for host, source in found}


def test_tls_is_configured_only_for_the_hosts_an_entry_lists():
    tls = [{"hosts": ["a.example.com"], "secretName": "a-cert"}]
    assert tls_of(tls, "a.example.com", "b.example.com") == {
        "a.example.com": (True, "a-cert"),
        "b.example.com": (False, None),
    }


def test_tls_hosts_match_whatever_their_case_and_trailing_dot():
    tls = [{"hosts": ["A.Example.com."], "secretName": "a-cert"}]
    assert tls_of(tls, "a.example.com") == {"a.example.com": (True, "a-cert")}


def test_a_wildcard_tls_host_covers_exactly_one_more_label():
    tls = [{"hosts": ["*.example.com"], "secretName": "wildcard"}]
    assert tls_of(tls, "a.example.com", "a.b.example.com", "example.com", "*.example.com") == {
        "a.example.com": (True, "wildcard"),
        "a.b.example.com": (False, None),
        "example.com": (False, None),
        "*.example.com": (True, "wildcard"),
    }


def test_the_first_entry_listing_a_host_gives_its_secret():
    tls = [
        {"hosts": ["b.example.com"], "secretName": "b-only"},
        {"hosts": ["a.example.com", "b.example.com"], "secretName": "both"},
    ]
    assert tls_of(tls, "a.example.com", "b.example.com") == {
        "a.example.com": (True, "both"),
        "b.example.com": (True, "b-only"),
    }


def test_a_tls_entry_without_hosts_covers_every_host_of_the_ingress():
    # The API leaves the hosts of such an entry to the controller ("defaults to the wildcard host setting").
    assert tls_of([{"secretName": "default-cert"}], "a.example.com", "b.example.com") == {
        "a.example.com": (True, "default-cert"),
        "b.example.com": (True, "default-cert"),
    }


def test_a_tls_entry_without_a_secret_still_configures_tls():
    assert tls_of([{"hosts": ["a.example.com"]}], "a.example.com") == {"a.example.com": (True, None)}


# -- one target per host, in a stable order -----------------------------------------------------------------


def test_a_host_in_an_ingress_and_a_service_annotation_keeps_both_sources_ingress_first():
    service = lb_service(
        "stream",
        "media",
        annotations={EXTERNAL_DNS_HOSTNAME_LEGACY: "V.example.com."},
        ingress_status=[{"ip": "203.0.113.23"}],
    )
    video = ingress(
        "video",
        "media",
        rules=[rule("v.example.com")],
        tls=[{"hosts": ["v.example.com"], "secretName": "v-cert"}],
    )
    (target,), _ = targets_from([video], [service])
    assert target.host == "v.example.com"
    assert target.objects == ("Ingress/media/video", "Service/media/stream")
    assert target.addresses == ("203.0.113.10", "203.0.113.23")
    assert target.tls and target.namespace == "media" and target.namespaces == ("media",)


def test_hosts_published_from_several_namespaces_list_each():
    first = ingress("web", "blue", rules=[rule("x.example.com")])
    second = ingress("web", "green", rules=[rule("x.example.com")])
    (target,), _ = targets_from([second, first], [])
    assert target.objects == ("Ingress/blue/web", "Ingress/green/web")
    assert target.namespace == "blue" and target.namespaces == ("blue", "green")


def test_one_ingress_repeating_a_host_is_one_source_with_tls_when_any_rule_has_it():
    repeated = ingress(
        "split",
        rules=[rule("a.example.com", "api", 80, path="/api"), rule("a.example.com", "web", 80)],
        tls=[{"hosts": ["a.example.com"], "secretName": "a-cert"}],
    )
    (target,) = merge_sources(sources_from_ingress(repeated))
    assert len(target.sources) == 1
    assert target.sources[0].tls_secret == "a-cert"


def test_a_later_tls_source_of_the_same_object_upgrades_the_earlier_one():
    plain = TargetSource(kind="Ingress", namespace="shop", name="web", service="web", port=80)
    secured = TargetSource(kind="Ingress", namespace="shop", name="web", tls=True, tls_secret="cert")
    (target,) = merge_sources([("a.example.com", plain), ("a.example.com", secured)])
    assert target.sources == (TargetSource("Ingress", "shop", "web", True, "cert", "web", 80),)


def test_the_order_of_targets_and_sources_does_not_depend_on_the_order_read():
    objects = [
        ("ingress", ingress("b", "shop", rules=[rule("z.example.com"), rule("a.example.com")])),
        ("ingress", ingress("a", "shop", rules=[rule("a.example.com")])),
        ("ingress", ingress("a", "media", rules=[rule("m.example.com"), rule("a.example.com")])),
        (
            "service",
            lb_service(
                "lb", "shop", annotations={EXTERNAL_DNS_HOSTNAME_LEGACY: "a.example.com,m.example.com"}
            ),
        ),
    ]
    results = set()
    for permutation in itertools.permutations(objects):
        targets, _ = targets_from(
            [obj for kind, obj in permutation if kind == "ingress"],
            [obj for kind, obj in permutation if kind == "service"],
        )
        results.add(tuple((target.host, target.objects) for target in targets))
    assert results == {
        (
            ("a.example.com", ("Ingress/media/a", "Ingress/shop/a", "Ingress/shop/b", "Service/shop/lb")),
            ("m.example.com", ("Ingress/media/a", "Service/shop/lb")),
            ("z.example.com", ("Ingress/shop/b",)),
        )
    }


def test_evidence_is_plain_data():
    (target,), _ = targets_from([ingress("web", rules=[rule("a.example.com")])], [])
    assert target.to_evidence() == {
        "host": "a.example.com",
        "wildcard": False,
        "namespace": "shop",
        "tls": False,
        "addresses": ["203.0.113.10"],
        "sources": [
            {
                "kind": "Ingress",
                "namespace": "shop",
                "name": "web",
                "object": "Ingress/shop/web",
                "tls": False,
                "tls_secret": None,
                "service": "web",
                "port": 80,
                "addresses": ["203.0.113.10"],
            }
        ],
    }


# -- arguments ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"namespaces": "shop"}, "namespaces must be a list of namespace names, not the string 'shop'"),
        ({"namespaces": []}, "namespaces must name at least one namespace (None reads every namespace)"),
        ({"namespaces": ["shop", "Bad_Name"]}, "namespace 'Bad_Name' is not a valid namespace name"),
        ({"selector": "  "}, "selector must be a label selector such as 'tier=public', not '  '"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(kwargs, message):
    # No cluster is needed: nothing is read before the arguments are checked.
    with pytest.raises(ValueError) as raised:
        discover(None, **kwargs)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_discovery_error_adds_the_namespaced_alternative_only_at_cluster_scope():
    forbidden = ClusterError(
        ClusterErrorKind.FORBIDDEN, "forbidden: cannot list ingresses at cluster scope", verb="list"
    )
    wide = DiscoveryError.from_cluster_error(forbidden, cluster_wide=True)
    narrow = DiscoveryError.from_cluster_error(forbidden, cluster_wide=False)
    assert (
        str(wide)
        == "discovery: forbidden: cannot list ingresses at cluster scope, or name the namespaces to read"
    )
    assert str(narrow) == "discovery: forbidden: cannot list ingresses at cluster scope"
    assert isinstance(wide, ClusterError) and wide.kind is ClusterErrorKind.FORBIDDEN and wide.verb == "list"


# -- through the official client against the sandbox API server --------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """The API server's certificate and the CA that signed it, made as the sandbox makes them."""
    folder = tmp_path_factory.mktemp("discover-tls")
    authority = CertificateAuthority()
    (folder / "ca.crt").write_bytes(authority.cert_pem)
    leaf = authority.write_issued(folder, "apiserver", ["127.0.0.1"])
    return {"ca": str(folder / "ca.crt"), "cert": leaf.cert_file, "key": leaf.key_file}


class ApiServer:
    """A started sandbox API server over some objects, and a Cluster view of it."""

    def __init__(self, objects: list[dict], tls_files: dict, folder, deny: list[dict] | None = None) -> None:
        token = secrets.token_urlsafe(24)
        self.server = KubeApiServer(
            objects, deny=deny, token=token, cert_file=tls_files["cert"], key_file=tls_files["key"]
        )
        self.server.start()
        self.kubeconfig = str(folder / "kubeconfig")
        write_kubeconfig(self.kubeconfig, server_url=self.server.url, ca_file=tls_files["ca"], token=token)

    def cluster(self, timeout: float = 5.0) -> Cluster:
        return Cluster.connect(kubeconfig=self.kubeconfig, timeout=timeout)

    def list_requests(self) -> list[tuple[str, str | None, list[str] | None]]:
        return [
            (entry["resource"], entry["namespace"], parse_qs(entry["query"] or "").get("labelSelector"))
            for entry in self.server.request_log
            if entry["verb"] == "list"
        ]


@pytest.fixture
def start_api(tls_files, tmp_path):
    started: list[ApiServer] = []

    def start(objects: list[dict], deny: list[dict] | None = None) -> ApiServer:
        folder = tmp_path / f"api-{len(started)}"
        folder.mkdir()
        started.append(ApiServer(objects, tls_files, folder, deny))
        return started[-1]

    yield start
    for running in started:
        running.server.stop()


@pytest.fixture(scope="module")
def fleet_objects():
    return load_scenario("fleet").objects


@pytest.fixture
def fleet_api(start_api, fleet_objects):
    return start_api(fleet_objects)


def test_fleet_discovery_through_the_client(fleet_api):
    with fleet_api.cluster() as cluster:
        targets = discover(cluster)
    assert len(targets) == 201
    assert hosts(targets) == sorted(hosts(targets))
    by_host = {target.host: target for target in targets}
    assert by_host["*.preview.fleet.test"].wildcard
    assert by_host["svc-120.fleet.test"].objects == ("Ingress/media/video", "Service/media/stream")
    assert by_host["svc-050.fleet.test"].sources[0].port == "http"  # an Ingress backend port by name
    assert by_host["svc-142.fleet.test"].addresses == ()  # its class has no controller to give one
    assert by_host["svc-199.fleet.test"].objects == ("Service/payments/gateway",)  # the current prefix
    assert "search.fleet.test" not in by_host  # annotated, but a ClusterIP Service
    # Two cluster-wide lists, nothing else: no Secret, no namespace-by-namespace walk.
    assert fleet_api.list_requests() == [("ingresses", None, None), ("services", None, None)]
    assert {entry["method"] for entry in fleet_api.server.request_log} == {"GET"}


@pytest.mark.parametrize(
    "selector, expected_count, present, absent",
    [
        # equality: the shop team's Ingresses (its Services carry no tier)
        ("team=web,tier=public", 100, "svc-000.fleet.test", "svc-100.fleet.test"),
        # set-based: both forms of "in" and "notin"
        ("tier in (public, legacy),team notin (web)", 99, "svc-197.fleet.test", "svc-000.fleet.test"),
        ("tier in (preview)", 1, "*.preview.fleet.test", "svc-100.fleet.test"),
        # inequality keeps objects without the label (the controllers' Services, ClusterIP backends)
        ("team!=media", 120, "svc-198.fleet.test", "svc-120.fleet.test"),
        # existence and non-existence
        ("!tier", 0, None, "svc-000.fleet.test"),
        ("tier,app", 4, "svc-120.fleet.test", "svc-000.fleet.test"),
    ],
)
def test_label_selector_is_applied_by_the_api_server(fleet_api, selector, expected_count, present, absent):
    with fleet_api.cluster() as cluster:
        found = {target.host: target for target in discover(cluster, selector=selector)}
    assert len(found) == expected_count
    if present:
        assert present in found
    assert absent not in found
    assert fleet_api.list_requests() == [("ingresses", None, [selector]), ("services", None, [selector])]


def test_namespace_filter_reads_only_those_namespaces(fleet_api):
    with fleet_api.cluster() as cluster:
        targets = discover(cluster, namespaces=["payments", "shop", "payments"])
    assert {target.namespace for target in targets} == {"shop", "payments"}
    assert len(targets) == 100 + 17 + 3
    assert fleet_api.list_requests() == [
        ("ingresses", "payments", None),
        ("services", "payments", None),
        ("ingresses", "shop", None),
        ("services", "shop", None),
    ]


def test_namespace_and_selector_together(fleet_api):
    with fleet_api.cluster() as cluster:
        targets = discover(cluster, namespaces=["payments"], selector="tier=legacy")
    assert [(target.host, target.objects) for target in targets] == [
        ("svc-197.fleet.test", ("Service/payments/legacy-api",))
    ]


def test_a_namespace_without_objects_discovers_nothing(fleet_api):
    with fleet_api.cluster() as cluster:
        assert discover(cluster, namespaces=["kube-system"]) == []


def test_cluster_wide_list_forbidden_is_one_line_naming_the_grant(start_api, fleet_objects):
    api = start_api(fleet_objects, deny=[{"verb": "list", "resource": "ingresses"}])
    with api.cluster() as cluster, pytest.raises(DiscoveryError) as raised:
        discover(cluster)
    error = raised.value
    assert error.kind is ClusterErrorKind.FORBIDDEN
    assert str(error) == (
        'discovery: forbidden: cannot list ingresses at cluster scope; grant verb "list" on resource '
        '"ingresses" (group "networking.k8s.io"), or name the namespaces to read'
    )
    assert error.__cause__ is None and error.__suppress_context__


def test_forbidden_in_one_namespace_names_that_namespace(start_api, fleet_objects):
    api = start_api(fleet_objects, deny=[{"verb": "list", "resource": "services", "namespace": "payments"}])
    with api.cluster() as cluster:
        assert len(discover(cluster, namespaces=["shop"])) == 100
        with pytest.raises(DiscoveryError) as raised:
            discover(cluster, namespaces=["shop", "payments"])
    assert str(raised.value) == (
        'discovery: forbidden: cannot list services in namespace payments; grant verb "list" on resource '
        '"services" (group "")'
    )
    assert raised.value.namespace == "payments"


def test_a_selector_the_api_server_refuses_is_one_line(fleet_api):
    with fleet_api.cluster() as cluster, pytest.raises(DiscoveryError) as raised:
        discover(cluster, selector="tier in public")
    assert raised.value.kind is ClusterErrorKind.ERROR and raised.value.status == 400
    message = str(raised.value)
    assert message.startswith("discovery: error: list ingresses at cluster scope: ") and message.endswith(
        "(400)"
    )
    assert "\n" not in message


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _kubeconfig_for(tmp_path, tls_files, url: str) -> str:
    path = str(tmp_path / "kubeconfig")
    write_kubeconfig(path, server_url=url, ca_file=tls_files["ca"], token="t")
    return path


def test_unreachable_api_server_is_one_line_within_the_timeout(tmp_path, tls_files):
    url = f"https://127.0.0.1:{_free_loopback_port()}"
    with Cluster.connect(kubeconfig=_kubeconfig_for(tmp_path, tls_files, url), timeout=2.0) as cluster:
        started = time.monotonic()
        with pytest.raises(DiscoveryError) as raised:
            discover(cluster)
        assert time.monotonic() - started < 2.0
    assert raised.value.kind is ClusterErrorKind.UNREACHABLE
    assert str(raised.value).startswith(
        f"discovery: unreachable: cannot connect to the API server at {url} ("
    )
    assert "\n" not in str(raised.value)


def test_silent_api_server_is_one_line_within_the_timeout(tmp_path, tls_files):
    # TCP connects; the TLS handshake never gets an answer.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"https://127.0.0.1:{silent.getsockname()[1]}"
        with Cluster.connect(kubeconfig=_kubeconfig_for(tmp_path, tls_files, url), timeout=1.0) as cluster:
            started = time.monotonic()
            with pytest.raises(DiscoveryError) as raised:
                discover(cluster, namespaces=["shop", "media"])
            # The first read gives up after its timeout; no later read is tried.
            assert time.monotonic() - started < 3.0
    assert str(raised.value) == f"discovery: unreachable: the API server at {url} did not answer within 1 s"


# -- a small scenario written here: TLS, wildcards and annotations through the real client ------------------

SMALL_SCENARIO = """
name: discover-small
description: Two hosts behind an Ingress with TLS, one behind a LoadBalancer named by external-dns
target: {host: a.small.test, scheme: http}
namespace: web
dns:
  primary:
    records:
      a.small.test: {A: [127.0.30.1]}
edges:
  - {address: 127.0.30.1, behaviour: healthy, hosts: [a.small.test, b.small.test]}
  - {address: 127.0.30.2, behaviour: healthy, hosts: [lb.small.test]}
kubernetes:
  objects:
    - apiVersion: networking.k8s.io/v1
      kind: Ingress
      metadata: {name: site, namespace: web, labels: {tier: public}}
      spec:
        ingressClassName: nginx
        tls:
          - {hosts: [A.small.test.], secretName: a-cert}
          - {hosts: ['*.wild.small.test'], secretName: wild-cert}
        rules:
          - host: a.small.test
            http:
              paths: [{path: /, pathType: Prefix, backend: {service: {name: site, port: {number: 443}}}}]
          - host: b.small.test
            http:
              paths: [{path: /, pathType: Prefix, backend: {service: {name: site, port: {name: https}}}}]
          - host: x.wild.small.test
            http:
              paths: [{path: /, pathType: Prefix, backend: {service: {name: site, port: {number: 443}}}}]
          - http:
              paths: [{path: /, pathType: Prefix, backend: {service: {name: site, port: {number: 443}}}}]
      status: {loadBalancer: {ingress: [{ip: 127.0.30.1}]}}
    - apiVersion: v1
      kind: Service
      metadata:
        name: edge
        namespace: web
        labels: {tier: public}
        annotations: {external-dns.alpha.kubernetes.io/hostname: " lb.small.test. ,, a.small.test,bad host!"}
      spec: {type: LoadBalancer, selector: {app: edge}, ports: [{name: https, port: 443, targetPort: 8443}]}
      status: {loadBalancer: {ingress: [{ip: 127.0.30.2}]}}
"""


def test_small_scenario_through_the_client(tmp_path, start_api, caplog):
    path = tmp_path / "discover-small.yaml"
    path.write_text(textwrap.dedent(SMALL_SCENARIO), encoding="utf-8")
    api = start_api(load_scenario(path).objects)
    with api.cluster() as cluster, caplog.at_level(logging.WARNING, logger="pytest_reachability.discover"):
        targets = discover(cluster, namespaces=["web"], selector="tier=public")
    summary = {
        target.host: [(s.object, s.tls, s.tls_secret, s.service, s.port, s.addresses) for s in target.sources]
        for target in targets
    }
    assert summary == {
        "a.small.test": [
            ("Ingress/web/site", True, "a-cert", "site", 443, ("127.0.30.1",)),
            ("Service/web/edge", False, None, "edge", 443, ("127.0.30.2",)),
        ],
        "b.small.test": [("Ingress/web/site", False, None, "site", "https", ("127.0.30.1",))],
        "lb.small.test": [("Service/web/edge", False, None, "edge", 443, ("127.0.30.2",))],
        "x.wild.small.test": [("Ingress/web/site", True, "wild-cert", "site", 443, ("127.0.30.1",))],
    }
    assert [record.getMessage() for record in caplog.records] == [
        "discovery: Service/web/edge: hostname annotation entry 'badhost!' is not a host name; skipped"
    ]


def test_a_scenario_denying_the_list_gives_the_one_line_error_through_the_whole_sandbox(tmp_path):
    # The scenario's own `deny`, served by a started sandbox (DNS, edges, API server), as `--sandbox` runs it.
    document = (
        textwrap.dedent(SMALL_SCENARIO) + "  deny: [{verb: list, resource: services, namespace: web}]\n"
    )
    path = tmp_path / "discover-denied.yaml"
    path.write_text(document, encoding="utf-8")
    with (
        Sandbox(path, postgres=False) as info,
        Cluster.connect(kubeconfig=info.kubeconfig, timeout=5.0) as cluster,
    ):
        with pytest.raises(DiscoveryError) as in_namespace:
            discover(cluster, namespaces=["web"])
        # As in RBAC, what may not be listed in one namespace may not be listed across all of them.
        with pytest.raises(DiscoveryError) as everywhere:
            discover(cluster)
    assert str(in_namespace.value) == (
        'discovery: forbidden: cannot list services in namespace web; grant verb "list" on resource '
        '"services" (group "")'
    )
    assert str(everywhere.value) == (
        'discovery: forbidden: cannot list services at cluster scope; grant verb "list" on resource '
        '"services" (group ""), or name the namespaces to read'
    )
