"""Diagnosis of faults the first rules did not meet: policies admitting a namespace, classes no controller
serves, paused rollouts, volumes that cannot attach, partial outages, red-herring nodes, the edge's own
429/503 answers.

Each test builds the evidence the built-in suite records for the fault and asserts what the theory says, and
that it stays silent (or says less) when the evidence for a claim is missing. The same faults run end to end
as sandbox scenarios (shop-*.yaml) in tests/test_scenario_corpus.py.
"""

from __future__ import annotations

import diagnosis_evidence as E

from pytest_reachability.diagnosis import evaluate
from pytest_reachability.diagnosis import rules as R
from pytest_reachability.results import TestResult

API = E.API_POD
FAILING = {"api-health": "GET /health failed on 127.0.10.53:80 read_timeout (curl 28)"}


def deny_all_policy(name="default-deny-ingress", ingress=()):
    return {
        "name": name,
        "namespace": "production",
        "pod_selector": {"matchLabels": {"app": "api"}},
        "policy_types": ["Ingress"],
        "ingress": list(ingress),
        "egress": [],
    }


def namespace_policy(label: dict) -> dict:
    """Admits the namespace whose labels match ``label`` on port 8000 (the ingress controller's, when it
    matches)."""
    return deny_all_policy(
        "api-from-ingress-nginx",
        [
            {
                "from": [{"namespaceSelector": {"matchLabels": label}}],
                "ports": [{"port": 8000, "protocol": "TCP"}],
            }
        ],
    )


POLICY_WORLD = [
    ("target_service", E.target_service()),
    ("service", E.service()),
    ("pod", E.pod()),
    ("ingress_controller", E.controller_pod()),
    ("http_probe", E.http_probe("127.0.10.53", "read_timeout")),
]


def test_network_policy_theory_rests_on_the_sections_verdict_not_on_the_peers_shape():
    # A rule admitting the controller's namespace is not "no traffic from the edge": the section passed.
    admitted = E.facts_of(
        *POLICY_WORLD,
        ("network_policy", namespace_policy({"kubernetes.io/metadata.name": "ingress-nginx"})),
        failed=FAILING,
    )
    assert R.network_policy_denies(admitted) is None
    # The section judged the policy against the controller pods and found nothing admitted: the theory
    # names it.
    verdict = (
        "no NetworkPolicy admits traffic from the edge to port 8000 of pod api-847495fbc4-686tk (selected by "
        "NetworkPolicy api-from-ingress-nginx)"
    )
    denied = E.facts_of(
        *POLICY_WORLD,
        ("network_policy", namespace_policy({"name": "ingress-nginx"})),
        failed={**FAILING, "network-policy": verdict},
    )
    theory = R.network_policy_denies(denied)
    assert theory is not None and "`api-from-ingress-nginx`" in theory.title
    assert any(verdict in line for line in theory.evidence)
    assert theory.confidence >= 0.85  # the edge times out, as a dropped connection does
    fix = "\n".join(theory.fix)
    assert "kubernetes.io/metadata.name: ingress-nginx" in fix and "port: 8000" in fix


def test_network_policy_theory_stands_when_the_edge_answers_no_more():
    verdict = (
        "no NetworkPolicy admits traffic from the edge to port 8000 of pod api "
        "(selected by NetworkPolicy default-deny-ingress)"
    )
    records = [
        *POLICY_WORLD[:4],
        ("network_policy", deny_all_policy()),
        ("http_probe", E.http_probe("127.0.10.53")),
    ]
    ranked, dropped = evaluate(E.facts_of(*records, failed={"network-policy": verdict}))
    assert "network-policy-denies" not in [t.rule for t in ranked]
    assert [rule for rule, _why in [(t.rule, why) for t, why in dropped]] == ["network-policy-denies"]


def unserved_world(checkout_addresses=(), neighbour_addresses=("127.0.10.80",)):
    return [
        (
            "ingress",
            {**E.ingress("checkout", class_name="nginx-internal"), "addresses": list(checkout_addresses)},
        ),
        (
            "ingress",
            {
                **E.ingress("catalog", host="catalog.97v.test", backend="catalog"),
                "addresses": list(neighbour_addresses),
            },
        ),
        ("ingress_class", {"name": "nginx", "controller": "k8s.io/ingress-nginx", "is_default": True}),
        (
            "ingress_class",
            {"name": "nginx-internal", "controller": "k8s.io/ingress-nginx-internal", "is_default": False},
        ),
        ("ingress_controller", E.controller_pod()),
        ("http_probe", E.http_probe("127.0.10.80", "http_status", 404)),
    ]


def test_an_ingress_class_that_exists_but_no_controller_serves():
    theory = R.ingress_class_missing(
        E.facts_of(*unserved_world(), failed={"api-health": "GET /health failed: 404"})
    )
    assert theory is not None and theory.rule == "ingress-class-missing"
    assert "IngressClass `nginx-internal` (controller k8s.io/ingress-nginx-internal)" in theory.title
    assert "while Ingresses of class `nginx` have one" in theory.title
    assert any("HTTP 404" in line for line in theory.evidence) and theory.confidence == 0.75
    # Admitted (an address), or controllers that publish no address anywhere: nothing is proven.
    assert R.ingress_class_missing(E.facts_of(*unserved_world(("127.0.10.80",)))) is None
    assert R.ingress_class_missing(E.facts_of(*unserved_world(neighbour_addresses=()))) is None


def test_a_paused_deployment_is_named_paused_with_resume_as_the_fix():
    paused = {
        **E.deployment(desired=3, available=3, updated=0),
        "paused": True,
        "rollout_complete": False,
        "rollout_message": "0 of 3 new replicas have been updated",
        "conditions": [
            {
                "type": "Progressing",
                "status": "Unknown",
                "reason": "DeploymentPaused",
                "message": "Deployment is paused",
            }
        ],
    }
    theory = R.rollout_stuck(
        E.facts_of(("deployment", paused), failed={"workloads": "rollout of api: 0 of 3 updated"})
    )
    assert theory is not None and "is paused (spec.paused: true)" in theory.title
    assert "previous template keep serving" in theory.title
    assert any("rollout resume deployment/api" in line for line in theory.fix)
    finished = {**paused, "rollout_complete": True, "updated": 3}
    assert R.rollout_stuck(E.facts_of(("deployment", finished))) is None


def test_a_volume_still_attached_elsewhere_is_no_missing_configuration():
    creating = E.pod(
        ready=False, phase="Pending", containers=[E.container("waiting", "ContainerCreating", ready=False)]
    )
    events = [
        (
            "event",
            E.event(
                f"Pod/{API}",
                "FailedMount",
                "Unable to attach or mount volumes: unmounted "
                "volumes=[data], unattached volumes=[data]: timed out waiting for the condition",
            ),
        ),
        (
            "event",
            E.event(
                f"Pod/{API}",
                "FailedAttachVolume",
                'Multi-Attach error for volume "pvc-0f3c" Volume is '
                "already exclusively attached to one node and can't be attached to another",
            ),
        ),
    ]
    facts = E.facts_of(
        ("target_service", E.target_service()), ("service", E.service()), ("pod", creating), *events
    )
    theory = R.volume_attach_failed(facts)
    assert theory is not None and "volume pvc-0f3c cannot be attached (FailedAttachVolume)" in theory.title
    assert "still attached to another node" in theory.title
    assert any("get volumeattachment" in line for line in theory.fix)
    assert R.container_config_error(facts) is None


def test_a_partial_outage_says_how_many_pods_still_serve():
    crashing = E.pod(
        "api-847495fbc4-zzzzz",
        ready=False,
        containers=[
            E.container(
                "waiting", "CrashLoopBackOff", ready=False, restarts=14, last_reason="Error", last_exit_code=2
            )
        ],
    )
    facts = E.facts_of(
        ("target_service", E.target_service()),
        ("service", E.service()),
        ("pod", E.pod()),
        ("pod", E.pod("api-847495fbc4-yyyyy")),
        ("pod", crashing),
    )
    theory = R.pods_crashing(facts)
    assert theory is not None and theory.title.endswith("(1 of 3 pods; 2 others Ready and serving)")
    assert "misused" not in theory.title  # exit code 2 is no proof of bad arguments
    assert any(
        line.endswith("logs api-847495fbc4-zzzzz -c api --previous --tail=50") for line in theory.confirm
    )


def test_an_init_container_is_named_as_one():
    init = {
        **E.container(
            "waiting",
            "CrashLoopBackOff",
            ready=False,
            restarts=9,
            last_reason="Error",
            last_exit_code=1,
            name="migrate",
        ),
        "init": True,
    }
    pod = E.pod(
        ready=False,
        phase="Pending",
        containers=[init, E.container("waiting", "PodInitializing", ready=False)],
    )
    theory = R.pods_crashing(E.facts_of(("service", E.service()), ("pod", pod)))
    assert theory is not None and theory.title.startswith("init container migrate of pod")
    assert "app containers never start" in theory.title
    assert any("-c migrate --previous" in line for line in theory.confirm)


def test_a_node_running_none_of_the_namespaces_pods_explains_only_its_own_check():
    facts = E.facts_of(
        ("node", E.node("batch-1", ready=False, taints=[("node.kubernetes.io/unreachable", "NoExecute")])),
        ("service", E.service()),
        ("pod", E.pod()),
        failed={
            "cluster": "nodes not Ready: batch-1 (NodeStatusUnknown)",
            "workloads": "api has 0 of 1 replicas available",
        },
    )
    theory = R.node_not_ready(facts)
    assert theory is not None and "runs no pod of namespace production" in theory.title
    assert theory.explains == ["suites/test_cluster.py::test_cluster"] and theory.confidence < 0.5


def test_an_image_pull_refused_for_the_registrys_certificate():
    pulling = E.pod(
        ready=False, phase="Pending", containers=[E.container("waiting", "ImagePullBackOff", ready=False)]
    )
    failed_pull = E.event(
        f"Pod/{API}",
        "Failed",
        'Failed to pull image "registry.internal/api:1.4.2": failed to do '
        'request: Head "https://registry.internal/v2/api/manifests/1.4.2": tls: failed to verify '
        "certificate: x509: certificate signed by unknown authority",
    )
    theory = R.image_pull_failed(
        E.facts_of(("service", E.service()), ("pod", pulling), ("event", failed_pull))
    )
    assert theory is not None and "does not trust the registry's TLS certificate (x509)" in theory.title
    assert any("certs.d" in line for line in theory.fix)


def test_results_record_the_network_policy_sections_own_failure():
    # The verdict the rule reads is the section's failed test: its node id is the first evidence line.
    facts = E.facts_of(
        *POLICY_WORLD,
        ("network_policy", deny_all_policy()),
        failed={"network-policy": "no NetworkPolicy admits traffic from the edge to port 8000"},
    )
    assert isinstance(facts.failing_tests("network-policy")[0], TestResult)
    theory = R.network_policy_denies(facts)
    assert theory is not None
    assert theory.evidence[0].startswith("suites/test_network-policy.py::test_network_policy:")


def test_a_quota_refusing_the_new_pods_names_the_quota_to_make_room_in():
    message = (
        'pods "api-9b8c7d6f5-5xk2p" is forbidden: exceeded quota: compute, requested: requests.cpu=1500m, '
        "used: requests.cpu=3100m, limited: requests.cpu=4"
    )
    stuck = E.deployment(
        desired=3, available=0, updated=0, conditions=[("ReplicaFailure", "True", "FailedCreate", message)]
    )
    theory = R.rollout_stuck(
        E.facts_of(("deployment", stuck), failed={"workloads": "rollout of api is stuck"})
    )
    assert theory is not None and "exceeded quota: compute" in theory.title
    assert "kubectl -n production describe resourcequota compute" in theory.confirm
    assert theory.fix[0].startswith("Make room in ResourceQuota compute")


def test_node_pressure_taints_are_relieved_not_removed():
    pending = E.pod(
        ready=False,
        phase="Pending",
        containers=[],
        unschedulable=(
            "0/3 nodes are available: 3 node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }. "
            "preemption: "
            "0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        ),
    )
    theory = R.pod_unschedulable(E.facts_of(("service", E.service()), ("pod", pending)))
    assert theory is not None and "the nodes report disk-pressure" in theory.title
    assert "removing it by hand does not help" in theory.fix[0]


def test_a_wildcard_one_label_too_high_is_named_as_such():
    tls = {
        **E.tls_info("Hostname mismatch, certificate is not valid for 'pay.eu.shop.test'."),
        "subject_names": ["*.shop.test"],
    }
    facts = E.facts_of(
        ("http_probe", E.http_probe("127.0.10.53", "tls_hostname", tls=tls)), host="pay.eu.shop.test"
    )
    theory = R.tls_wrong_host(facts)
    assert theory is not None
    assert theory.title == (
        "the TLS certificate at 127.0.10.53 names *.shop.test, a wildcard that covers one label "
        "only, not pay.eu.shop.test"
    )
    other = {**tls, "subject_names": ["other.example"]}
    theory = R.tls_wrong_host(
        E.facts_of(
            ("http_probe", E.http_probe("127.0.10.53", "tls_hostname", tls=other)), host="pay.eu.shop.test"
        )
    )
    assert (
        theory is not None and "(it names other.example)" in theory.title and "wildcard" not in theory.title
    )
