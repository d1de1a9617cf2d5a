"""Incidents whose cause the evidence names outright, and whose fix must follow from it, not from the symptom:
each is a bundled scenario run through the built-in suite in a fresh process (the sandbox's real DNS, edges
and API server); the top theory must say the cause and give the fix that cause needs, and must not give the
fix of a look-alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_runs import run_suite

CASES = [
    pytest.param(
        "shop-pull-secret-missing",
        "image-pull-failed",
        # The kubelet's FailedToRetrieveImagePullSecret warning names the Secret the pods cannot read.
        [
            "its imagePullSecrets name harbor-pull, which the kubelet cannot retrieve",
            "no such Secret in payments",
        ],
        ["Create the pull Secret harbor-pull in payments", "kubectl -n payments get secret harbor-pull"],
        ["set image"],  # the image is right: another tag would fail the same way
        id="pull-secret-missing",
    ),
    pytest.param(
        "shop-exec-format-error",
        "pods-crashing",
        ["exec format error", "another CPU architecture"],
        ["--platform", "rollout undo deployment/checkout"],
        ["rollout restart"],  # the same image crashes the same way after a restart
        id="exec-format-error",
    ),
    pytest.param(
        "shop-stale-second-a-record",
        "dns-not-loadbalancer",
        ["hold 127.0.20.81", "beside 127.0.20.80", "remove the stray record"],
        ["Remove 127.0.20.81 from the DNS A records of pay.shop.test; keep 127.0.20.80"],
        ["replace 127.0.20.81 with 127.0.20.80"],  # the right address is already in the record set
        id="stale-second-a-record",
    ),
    pytest.param(
        "shop-drain-blocked-rollout-stuck",
        "pod-unschedulable",
        ["the nodes are cordoned (unschedulable) (2 of 3 nodes)", "not enough free cpu", "(1 of 3 nodes)"],
        ["Uncordon a node", "Then, for the other nodes: Lower the pod's resource requests"],
        ["on any node"],  # two of the three nodes are cordoned, not full
        id="drain-blocked",
    ),
    pytest.param(
        "shop-cni-ip-exhausted",
        "pods-not-ready",
        ["cannot create their sandbox (FailedCreatePodSandBox)", "aws-cni has no IP address to give them"],
        ["Give aws-cni addresses"],
        ["Read the pod's events"],  # the events were read: they say what fails
        id="cni-ip-exhausted",
    ),
    pytest.param(
        "shop-ingress-tls-host-not-listed",
        "ingress-tls-host-missing",
        ["Ingress `checkout` has TLS entries for shop.test, www.shop.test, not for pay.shop.test"],
        ["add pay.shop.test to the hosts of a spec.tls entry"],
        ["production ClusterIssuer"],  # the certificate served is the controller's default, not the issuer's
        id="ingress-tls-host-not-listed",
    ),
    pytest.param(
        "shop-selector-collision",
        "service-selector-overlap",
        [
            "Service `checkout` selects app.kubernetes.io/name=checkout",
            "the pods of Deployment/checkout-admin: 1 of its 4 ready endpoints is theirs",
            "15 of 60 requests failed (25%)",
        ],
        ["a selector only Deployment/checkout's pods carry", "scale deployment/checkout-admin --replicas=0"],
        ["flapping pod"],  # no pod flaps: every request that fails lands on the other app
        id="selector-collision",
    ),
    pytest.param(
        "shop-nlb-tls-force-ssl-redirect",
        "redirect-loop",
        [
            "ingress-nginx redirects https://pay.shop.test:",
            "/health to itself (HTTP 308 to https://pay.shop.test:",
            "TLS is terminated in front of it",
            'nginx.ingress.kubernetes.io/force-ssl-redirect: "true" on Ingress checkout sends it to https',
        ],
        ["use-forwarded-headers", "remove nginx.ingress.kubernetes.io/force-ssl-redirect"],
        ["X-Forwarded-Proto (or disable its"],  # the app never sees these requests: nginx answers them
        id="nlb-tls-force-ssl-redirect",
    ),
    pytest.param(
        "shop-controller-on-excluded-node",
        "loadbalancer-no-local-endpoints",
        [
            "Service ingress-nginx/ingress-nginx-controller has externalTrafficPolicy: Local",
            "run only on ip-10-20-1-17.eu-west-1.compute.internal, which is excluded from load balancers",
        ],
        ["label node ip-10-20-1-17.eu-west-1.compute.internal", "externalTrafficPolicy: Cluster"],
        ["security group", "firewall"],  # nothing filters: the nodes the NLB uses have no local endpoint
        id="controller-on-excluded-node",
    ),
    pytest.param(
        "shop-backend-protocol-https",
        "ingress-annotation",
        [
            '(nginx.ingress.kubernetes.io/backend-protocol: "HTTPS"), but they answer plain HTTP inside',
        ],
        ["annotate ingress checkout nginx.ingress.kubernetes.io/backend-protocol-"],
        ["maintenance or default page"],
        id="backend-protocol-https",
    ),
    pytest.param(
        "shop-auth-url-unresolvable",
        "ingress-annotation",
        ["its auth-url (http://oauth2-proxy.auth.svc.cluster.local/oauth2/auth); ingress-nginx answers 500"],
        ["Point nginx.ingress.kubernetes.io/auth-url of Ingress checkout at the auth service"],
        ["the application fails while handling it"],  # the app answers 200 inside the cluster
        id="auth-url-unresolvable",
    ),
    pytest.param(
        "shop-rewrite-target-root",
        "ingress-annotation",
        ["Ingress checkout rewrites every request path to /", "GET /health reaches the app as GET /"],
        ["Remove nginx.ingress.kubernetes.io/rewrite-target from Ingress checkout"],
        ["add an Ingress rule"],  # the rule exists: it is its rewrite that breaks the path
        id="rewrite-target-root",
    ),
    pytest.param(
        "shop-ssl-passthrough",
        "ingress-annotation",
        ['Ingress checkout has nginx.ingress.kubernetes.io/ssl-passthrough: "true"', "WRONG_VERSION_NUMBER"],
        ["Remove nginx.ingress.kubernetes.io/ssl-passthrough from Ingress checkout"],
        ["the target should be http://"],
        id="ssl-passthrough",
    ),
    pytest.param(
        "shop-canary-weight-500",
        "ingress-annotation",
        [
            "Ingress checkout-canary is an ingress-nginx canary sending 30% of pay.shop.test's requests",
            "to Service checkout-canary",
            "18 of 60 requests failed (30%)",
        ],
        ["canary-weight=0 --overwrite"],
        ["flapping pod"],
        id="canary-weight",
    ),
    pytest.param(
        "shop-rollout-new-pods-500",
        "rollout-new-pods-failing",
        [
            "Deployment checkout is mid-rollout (revision 8",
            "new ReplicaSet checkout-6d4f8c7b9 (checkout:2.15.0) are 1 of the 4 ready endpoints",
            "15 of 60 requests failed (25%)",
        ],
        ["rollout pause deployment/checkout", "restore that instead"],
        ["flapping pod"],
        id="rollout-new-pods-500",
    ),
    pytest.param(
        "shop-service-port-udp",
        "ingress-backend-port-missing",
        ["routes pay.shop.test/ to Service `checkout` port http, which is protocol UDP"],
        ["edit svc checkout  # set protocol: TCP on port http"],
        ["maintenance or default page"],
        id="service-port-udp",
    ),
    pytest.param(
        "shop-service-upstream-local-policy",
        "ingress-annotation",
        [
            "Ingress checkout sends to Service checkout's cluster IP",
            "internalTrafficPolicy: Local",
            "(ip-10-20-1-17.eu-west-1.compute.internal) forwards only to pods on that node",
        ],
        ["set internalTrafficPolicy: Cluster", "remove nginx.ingress.kubernetes.io/service-upstream"],
        ["maintenance or default page"],
        id="service-upstream-local-policy",
    ),
]


@pytest.mark.parametrize(("scenario", "rule", "said", "fixed_by", "not_said"), CASES)
def test_the_top_theory_names_the_cause_and_its_fix(
    scenario: str, rule: str, said: list[str], fixed_by: list[str], not_said: list[str], tmp_path: Path
) -> None:
    results, _ = run_suite(scenario, tmp_path)
    top = results["theories"][0]
    assert top["rule"] == rule, [t["title"] for t in results["theories"]]
    text = " ".join([top["title"], *top["fix"]])
    for words in said:
        assert words in top["title"], top["title"]
    for words in fixed_by:
        assert any(words in line for line in top["fix"]), top["fix"]
    for words in not_said:
        assert words not in text, text


def test_a_sandbox_the_plugin_fails_to_set_up_for_another_reason_is_quoted_not_called_exhaustion() -> None:
    import diagnosis_evidence as E

    from pytest_reachability.diagnosis.rules_workloads import pods_not_ready

    message = (
        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for "
        'sandbox "9f": plugin type="calico" failed (add): error getting ClusterInformation: '
        "connection is unauthorized: Unauthorized"
    )
    facts = E.facts_of(
        ("service", E.service()),
        (
            "pod",
            E.pod(ready=False, phase="Pending", containers=[E.container("waiting", "ContainerCreating")]),
        ),
        ("event", E.event(f"Pod/{E.API_POD}", "FailedCreatePodSandBox", message)),
    )
    theory = pods_not_ready(facts)
    assert theory is not None
    assert "the network plugin calico fails to set it up (" in theory.title
    assert "exhausted" not in theory.title and "connection is unauthorized" in theory.title


def test_an_empty_namespace_is_said_to_be_empty_not_a_guessed_service_missing(tmp_path: Path) -> None:
    results, _ = run_suite("shop-namespace-terminating", tmp_path)
    top = results["theories"][0]
    assert top["rule"] == "namespace-empty", [t["title"] for t in results["theories"]]
    assert top["title"].startswith("namespace payments holds no Service, Deployment, pod or Ingress at all")
    assert any(
        "get namespace payments -o jsonpath='{.status.phase} {.metadata.deletionTimestamp}" in line
        for line in top["confirm"]
    )
    assert not [t for t in results["theories"] if t["rule"] in ("service-missing", "tls-untrusted")]
    # No pods is nothing to judge: the pod checks skip rather than pass.
    outcomes = {t["nodeid"].rsplit("::", 1)[-1]: t["outcome"] for t in results["tests"]}
    for name in (
        "test_pods_are_running_and_ready",
        "test_no_pod_pending",
        "test_containers_are_not_restarting",
    ):
        assert outcomes[name] == "skipped", outcomes


def _overlap_facts(errors: int, second_owner: str):
    import diagnosis_evidence as E

    other = E.pod("api-admin-5c6d7e8f9-q2w3e", owner=second_owner)
    return E.facts_of(
        ("target_service", E.target_service()),
        ("service", E.service()),
        ("pod", E.pod()),
        ("pod", other),
        ("performance", E.performance(errors=errors, kinds={"HTTP 404": errors})),
        failed={"performance": f"error rate {errors / 100}"},
    )


@pytest.mark.parametrize(
    ("errors", "second_owner", "top", "confidence"),
    [
        # Half the endpoints are the other workload's and half the requests fail: that workload answers them.
        (50, "ReplicaSet/api-admin-5c6d7e8f9", "service-selector-overlap", 0.8),
        # 97 of 100 fail: more than the other workload's pods can account for; the overlap is only an
        # alternative and takes nothing from the theory the evidence supports.
        (97, "ReplicaSet/api-admin-5c6d7e8f9", "intermittent-failures", 0.35),
        # Two ReplicaSets of one Deployment (a rollout, or a canary inside it): one workload, no overlap.
        (50, "ReplicaSet/api-6b7c8d9f4", "intermittent-failures", None),
    ],
)
def test_a_service_over_two_workloads_is_named_only_as_far_as_the_error_share_agrees(
    errors: int, second_owner: str, top: str, confidence: float | None
) -> None:
    from pytest_reachability.diagnosis import evaluate

    ranked, _ = evaluate(_overlap_facts(errors, second_owner))
    assert ranked[0].rule == top, [(t.rule, t.confidence) for t in ranked]
    overlap = [t for t in ranked if t.rule == "service-selector-overlap"]
    if confidence is None:
        assert overlap == []
    else:
        assert [t.confidence for t in overlap] == [confidence]


@pytest.mark.parametrize(
    ("annotations", "internal"),
    [
        ({"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}, True),
        ({"service.beta.kubernetes.io/aws-load-balancer-internal": "0.0.0.0/0"}, True),  # any value but false
        ({"networking.gke.io/load-balancer-type": "Internal"}, True),
        ({"service.beta.kubernetes.io/aws-load-balancer-internal": "false"}, False),
        ({"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}, False),
    ],
)
def test_a_private_address_names_the_annotation_that_made_the_load_balancer_internal(
    annotations: dict[str, str], internal: bool
) -> None:
    import diagnosis_evidence as E

    from pytest_reachability.diagnosis import evaluate

    facts = E.facts_of(
        ("dns", E.dns(["192.168.40.7"])),
        ("tcp", E.tcp_probe("192.168.40.7", "tcp_timeout")),
        ("service", E.service("edge", ["203.0.113.9"], annotations=annotations)),
        failed={"tcp": "tcp_timeout 192.168.40.7:80"},
    )
    ranked, _ = evaluate(facts)
    assert ranked[0].rule == "dns-private-address", [t.title for t in ranked]
    said = [line for line in ranked[0].evidence if "is an internal load balancer" in line]
    assert bool(said) is internal, ranked[0].evidence
    # The address is no load balancer of the cluster: the first fix says where DNS should point instead.
    assert ranked[0].fix[0].startswith("192.168.40.7 is no load balancer of the cluster"), ranked[0].fix


def _loop_facts(scheme: str, annotations: dict[str, str], class_name: str = "nginx", tls: bool = False):
    import diagnosis_evidence as E

    probe = E.http_probe("127.0.10.80", "too_many_redirects", 308, detail="redirect loop: /health -> /health")
    probe.update(
        scheme=scheme,
        port=443,
        status=308,
        headers={"location": f"{scheme}://97v.test/health", "server": "nginx"},
    )
    ingress = {**E.ingress(class_name=class_name), "annotations": annotations}
    ingress["tls"] = [{"hosts": ["97v.test"], "secret": "api-tls"}] if tls else []
    return E.facts_of(("http_probe", probe), ("ingress", ingress), failed={"api-health": "redirect loop"})


@pytest.mark.parametrize(
    ("scheme", "annotations", "class_name", "tls", "named"),
    [
        (
            "https",
            {"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"},
            "nginx",
            False,
            "force-ssl-redirect",
        ),
        (
            "https",
            {},
            "nginx",
            True,
            "Ingress api-ingress's TLS entry for 97v.test (ssl-redirect is on by default)",
        ),
        ("https", {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}, "nginx", True, None),  # redirect off
        (
            "http",
            {"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"},
            "nginx",
            False,
            None,
        ),  # http loop
        ("https", {"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}, "traefik", False, None),
    ],
)
def test_an_https_loop_is_put_on_ingress_nginx_only_when_its_redirect_is_on(
    scheme: str, annotations: dict[str, str], class_name: str, tls: bool, named: str | None
) -> None:
    from pytest_reachability.diagnosis.rules_traffic import redirect_loop

    theory = redirect_loop(_loop_facts(scheme, annotations, class_name, tls))
    assert theory is not None and theory.rule == "redirect-loop"
    if named is None:
        assert "ingress-nginx" not in theory.title, theory.title
    else:
        assert theory.title.startswith("ingress-nginx redirects https://97v.test/health to itself"), (
            theory.title
        )
        assert named in theory.title and theory.confidence == 0.85


def test_a_local_policy_balancer_with_one_pod_on_an_included_node_is_not_blamed() -> None:
    import diagnosis_evidence as E

    from pytest_reachability.diagnosis.rules_wiring import loadbalancer_no_local_endpoints

    records = [
        ("node", {**E.node(), "excluded_from_load_balancers": True}),
        ("node", E.node("pool-prod-k8s-y9z8w")),
        ("service", {**E.service(), "external_traffic_policy": "Local"}),
        ("pod", E.pod()),
        ("tcp", E.tcp_probe("127.0.10.53", "tcp_timeout")),
    ]
    assert loadbalancer_no_local_endpoints(E.facts_of(*records)) is not None
    # A second ready pod on a node the load balancer uses: that node answers, so the exclusion is not why.
    records.append(("pod", E.pod("api-847495fbc4-second", node="pool-prod-k8s-y9z8w")))
    assert loadbalancer_no_local_endpoints(E.facts_of(*records)) is None


NGINX = "nginx.ingress.kubernetes.io/"


def _annotated(annotations: dict[str, str], status: int | None, inside: int, failure: str = "http_status"):
    import diagnosis_evidence as E

    probe = E.http_probe("127.0.10.80", failure, status, detail="WRONG_VERSION_NUMBER")
    probe["headers"] = {"server": "nginx"}
    records = [
        ("http_probe", probe),
        ("ingress", {**E.ingress(), "annotations": annotations}),
        ("in_cluster_health", E.in_cluster(inside)),
    ]
    if failure == "tls_handshake":
        records.append(("tls", {**probe, "source": "dns"}))
    return E.facts_of(*records, failed={"api-health": "GET /health failed"})


@pytest.mark.parametrize(
    ("annotations", "status", "failure", "said"),
    [
        ({NGINX + "backend-protocol": "GRPCS"}, 502, "http_status", "speak GRPCS to the pods"),
        (
            {NGINX + "auth-url": "http://auth.sso.svc.cluster.local/verify"},
            500,
            "http_status",
            "its auth-url",
        ),
        ({NGINX + "rewrite-target": "/app"}, 404, "http_status", "rewrites every request path to /app"),
        ({NGINX + "ssl-passthrough": "true"}, None, "tls_handshake", "ssl-passthrough"),
    ],
)
def test_an_ingress_nginx_annotation_is_named_only_with_the_failure_it_causes(
    annotations: dict[str, str], status: int | None, failure: str, said: str
) -> None:
    from pytest_reachability.diagnosis.rules_nginx import ingress_annotation

    theory = ingress_annotation(_annotated(annotations, status, 200, failure))
    assert theory is not None and said in theory.title, theory
    if failure == "http_status":
        # The app fails inside the cluster too: the annotation is not why.
        assert ingress_annotation(_annotated(annotations, status, 500, failure)) is None
        # Another status than the one the annotation produces.
        assert ingress_annotation(_annotated(annotations, 429, 200, failure)) is None
    # Without the annotation nothing is said.
    assert ingress_annotation(_annotated({}, status, 200, failure)) is None


def test_a_rewrite_with_a_capture_group_is_not_blamed() -> None:
    from pytest_reachability.diagnosis.rules_nginx import ingress_annotation

    assert ingress_annotation(_annotated({NGINX + "rewrite-target": "/$2"}, 404, 200)) is None


@pytest.mark.parametrize(
    ("annotations", "errors", "named"),
    [
        ({NGINX + "canary": "true", NGINX + "canary-weight": "20"}, 21, True),
        ({NGINX + "canary": "true", NGINX + "canary-weight": "20"}, 60, False),  # more than its share fails
        (
            {NGINX + "canary": "true", NGINX + "canary-weight": "2", NGINX + "canary-weight-total": "10"},
            20,
            True,
        ),
        (
            {NGINX + "canary": "true", NGINX + "canary-by-header": "X-Canary"},
            20,
            False,
        ),  # no weight: no share
        ({NGINX + "canary-weight": "20"}, 20, False),  # not a canary Ingress
    ],
)
def test_a_canary_is_named_when_its_weight_matches_the_failing_share(
    annotations: dict[str, str], errors: int, named: bool
) -> None:
    import diagnosis_evidence as E

    from pytest_reachability.diagnosis.rules_nginx import ingress_annotation

    canary = {**E.ingress("api-canary", backend="api-canary"), "annotations": annotations}
    facts = E.facts_of(
        ("ingress", E.ingress()),
        ("ingress", canary),
        ("performance", E.performance(errors=errors, kinds={"HTTP 500": errors})),
        failed={"performance": "error rate"},
    )
    theory = ingress_annotation(facts)
    assert (theory is not None and "Ingress api-canary is an ingress-nginx canary" in theory.title) is named


def _mid_rollout(errors: int, message: str, complete: bool = False):
    import diagnosis_evidence as E

    deployment = {
        **E.deployment(desired=3, available=3, updated=1),
        "rollout_complete": complete,
        "rollout_message": "1 of 3 new replicas have been updated",
        "conditions": [
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": message}
        ],
    }
    old = [E.pod(f"api-847495fbc4-{n}") for n in ("a", "b", "c")]
    new = E.pod("api-6d4f8c7b9-x", owner="ReplicaSet/api-6d4f8c7b9")
    return E.facts_of(
        ("target_service", E.target_service()),
        ("service", E.service()),
        ("deployment", deployment),
        *(("pod", p) for p in [*old, new]),
        ("performance", E.performance(errors=errors, kinds={"HTTP 500": errors})),
        failed={"performance": "error rate"},
    )


@pytest.mark.parametrize(
    ("errors", "message", "complete", "named"),
    [
        (25, 'ReplicaSet "api-6d4f8c7b9" is progressing.', False, True),
        (24, 'Created new replica set "api-6d4f8c7b9"', False, True),
        (80, 'ReplicaSet "api-6d4f8c7b9" is progressing.', False, False),  # more fail than the new pods take
        (25, 'ReplicaSet "api-6d4f8c7b9" is progressing.', True, False),  # no rollout in progress
        (25, 'ReplicaSet "api-847495fbc4" is progressing.', False, False),  # the old pods are not "new"
    ],
)
def test_a_rollout_is_blamed_only_when_its_new_pods_share_matches_the_errors(
    errors: int, message: str, complete: bool, named: bool
) -> None:
    from pytest_reachability.diagnosis.rules_wiring import rollout_new_pods_failing

    theory = rollout_new_pods_failing(_mid_rollout(errors, message, complete))
    assert (theory is not None) is named, theory


@pytest.mark.parametrize(
    ("protocol", "named"), [("UDP", True), ("SCTP", True), ("TCP", False), (None, False)]
)
def test_an_ingress_backend_port_that_is_not_tcp_is_named(protocol: str | None, named: bool) -> None:
    import diagnosis_evidence as E

    from pytest_reachability.diagnosis.rules_wiring import ingress_backend_port_missing

    service = E.service(type_="ClusterIP")
    service["ports"][0]["protocol"] = protocol
    theory = ingress_backend_port_missing(E.facts_of(("service", service), ("ingress", E.ingress())))
    assert (theory is not None and f"which is protocol {protocol}" in theory.title) is named, theory


@pytest.mark.parametrize(
    ("policy", "pod_node", "named"),
    [("Local", "node-b", True), ("Cluster", "node-b", False), ("Local", "node-a", False)],
)
def test_service_upstream_to_a_local_policy_is_named_only_without_a_pod_on_the_controllers_node(
    policy: str, pod_node: str, named: bool
) -> None:
    import diagnosis_evidence as E

    from pytest_reachability.diagnosis.rules_nginx import ingress_annotation

    probe = E.http_probe("127.0.10.80", "http_status", 504)
    endpoints = {
        **E.endpoint_slice(),
        "targets": [{"addresses": ["10.244.0.45"], "ready": True, "node": pod_node}],
    }
    facts = E.facts_of(
        ("http_probe", probe),
        ("ingress", {**E.ingress(), "annotations": {NGINX + "service-upstream": "true"}}),
        ("service", {**E.service(type_="ClusterIP"), "internal_traffic_policy": policy}),
        ("endpoint_slice", endpoints),
        ("ingress_controller", {**E.controller_pod(), "node": "node-a"}),
        ("in_cluster_health", E.in_cluster(200)),
    )
    theory = ingress_annotation(facts)
    assert (theory is not None and "internalTrafficPolicy: Local" in theory.title) is named, theory
