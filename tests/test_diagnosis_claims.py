"""Only proven claims: a theory states as fact only what its evidence shows.

For each rule, a world where it fires, and for each claim its text makes, the evidence that supports the
claim: without that evidence the claim must disappear from the theory's title and evidence (or the rule must
not fire at all), and where the run could not check something, the theory says so as an unknown with the
command that would check it — never a kubectl line as a way to confirm without saying it needs cluster
access.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import diagnosis_evidence as E
import pytest

from pytest_reachability.diagnosis import evaluate
from pytest_reachability.diagnosis import rules as R

Records = list[tuple[str, dict[str, Any]]]
API = E.API_POD


def drop(kind: str, match: Callable[[dict], bool] = lambda data: True) -> Callable[[Records], Records]:
    return lambda records: E.without(records, kind, match)


def edit(kind: str, change: Callable[[dict], None]) -> Callable[[Records], Records]:
    def apply(records: Records) -> Records:
        changed = copy.deepcopy(records)
        for record_kind, data in changed:
            if record_kind == kind:
                change(data)
        return changed

    return apply


def forget_last_termination(pod: dict) -> None:
    for state in pod["container_states"]:
        state["last_reason"] = state["last_exit_code"] = None
    pod["terminated_reasons"] = []


CRASHING = E.pod(
    ready=False,
    containers=[
        E.container(
            "waiting", "CrashLoopBackOff", ready=False, restarts=27, last_reason="Error", last_exit_code=1
        )
    ],
)
OOM = E.pod(
    ready=False,
    containers=[
        E.container(
            "waiting",
            "CrashLoopBackOff",
            ready=False,
            restarts=9,
            last_reason="OOMKilled",
            last_exit_code=137,
        )
    ],
)
OLD_READY = E.pod()
NEW_PULLING = E.pod(
    "api-5f8d9c7b6-z7k2m",
    ready=False,
    owner="ReplicaSet/api-5f8d9c7b6",
    containers=[E.container("waiting", "ImagePullBackOff", ready=False)],
)
STUCK = E.deployment(
    conditions=[
        (
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            'ReplicaSet "api-5f8d9c7b6" has timed out progressing.',
        )
    ]
)
PAUSED = {
    **E.deployment(updated=0),
    "paused": True,
    "rollout_complete": False,
    "rollout_message": "0 of 1 new replicas have been updated",
    "conditions": [
        {
            "type": "Progressing",
            "status": "Unknown",
            "reason": "DeploymentPaused",
            "message": "Deployment is paused",
        }
    ],
}
MULTI_ATTACH = (
    'Multi-Attach error for volume "pvc-0f3c" Volume is already exclusively attached to one node and '
    "can't be attached to another"
)
CREATING = E.pod(
    ready=False, phase="Pending", containers=[E.container("waiting", "ContainerCreating", ready=False)]
)
REFUSED_DB = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection refused'

# (rule, the world where it fires, [(claim the theory makes, how to take away the evidence for it)])
CLAIMS: list[tuple[Callable, Records, list[tuple[str, Callable[[Records], Records]]]]] = [
    (
        R.dns_not_loadbalancer,
        E.incident_records(),
        [
            ("points at 127.0.10.57", drop("dns")),
            (
                "which accepts TCP and closes without replying",
                drop("http_probe", lambda d: d["address"] == "127.0.10.57"),
            ),
            ("answers at 127.0.10.53", drop("http_probe", lambda d: d["address"] == "127.0.10.53")),
            ("`api` LoadBalancer", drop("service", lambda d: d["name"] == "api")),
        ],
    ),
    (
        R.edge_empty_reply,
        [("http_probe", E.http_probe("127.0.10.57", "empty_reply")), ("in_cluster_health", E.in_cluster())],
        [
            ("healthy inside the cluster", drop("in_cluster_health")),
            ("accepts connections and closes them without a reply", drop("http_probe")),
        ],
    ),
    (
        R.tcp_refused,
        [("http_probe", E.http_probe("127.0.10.53", "tcp_refused")), ("service", E.service())],
        [
            ("is the address of Service production/api", drop("service")),
            ("every connection is refused", drop("http_probe")),
        ],
    ),
    (
        R.pods_crashing,
        [("service", E.service()), ("pod", CRASHING)],
        [
            ("last exit code 1", edit("pod", forget_last_termination)),
            ("the application exited with an error", edit("pod", forget_last_termination)),
            ("keeps crashing", drop("pod")),
        ],
    ),
    (
        R.container_oom_killed,
        [("service", E.service()), ("pod", OOM)],
        [
            ("exceeding its memory limit", edit("pod", forget_last_termination)),
        ],
    ),
    (
        R.readiness_probe_failing,
        [
            ("service", E.service()),
            ("pod", E.pod(ready=False, containers=[E.container("running", ready=False)])),
            (
                "event",
                E.event(
                    f"Pod/{API}",
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503",
                ),
            ),
        ],
        [
            ("HTTP probe failed with statuscode: 503", drop("event")),
            ("(GET :8000/health)", edit("pod", lambda pod: pod.update(probes=[]))),
        ],
    ),
    (
        R.pod_unschedulable,
        [
            ("service", E.service()),
            (
                "pod",
                E.pod(
                    ready=False,
                    phase="Pending",
                    containers=[],
                    unschedulable="0/3 nodes are available: 3 Insufficient cpu.",
                ),
            ),
        ],
        [
            ("Insufficient cpu", edit("pod", lambda pod: pod.update(unschedulable_message=None))),
        ],
    ),
    (
        R.node_not_ready,
        [
            ("node", E.node(ready=False, taints=[("node.kubernetes.io/unreachable", "NoExecute")])),
            ("service", E.service()),
            ("pod", E.pod(ready=False)),
        ],
        [
            (f"pod {API} on it cannot serve", drop("pod")),
            ("taint node.kubernetes.io/unreachable", edit("node", lambda node: node.update(taints=[]))),
        ],
    ),
    (
        R.dns_nxdomain,
        [
            ("dns", E.dns(answers=[E.answer(addresses=(), failure="dns_nxdomain", rcode="NXDOMAIN")])),
            ("target_service", E.target_service()),
            ("service", E.service(annotations={"external-dns.alpha.kubernetes.io/hostname": "97v.test"})),
        ],
        [
            ("external-dns", edit("service", lambda s: s.update(annotations={}))),
            ("the cluster serves 97v.test at 127.0.10.53", drop("service")),
        ],
    ),
    (
        R.deployment_scaled_to_zero,
        [
            ("target_service", E.target_service()),
            ("service", E.service()),
            ("deployment", E.deployment(desired=0, available=0)),
        ],
        [
            ("scaled to 0 replicas", drop("deployment")),
        ],
    ),
    (
        R.loadbalancer_removed,
        [
            ("target_service", E.target_service()),
            ("service", E.service(type_="ClusterIP")),
            ("dns", E.dns(["127.0.10.53"])),
            ("service", E.service("bot-service", ["127.0.10.215"], selector={"app": "bot"})),
            ("http_probe", E.http_probe("127.0.10.53", "tcp_refused")),
            ("event", E.event("Service/api", "DeletedLoadBalancer", "Deleted load balancer", "Normal", 1)),
        ],
        [
            ("was deleted when the type changed", drop("event")),
            ("where nothing answers", drop("http_probe")),
        ],
    ),
    (
        R.dependency_unhealthy,
        [
            (
                "http_probe",
                E.http_probe(
                    "127.0.10.53",
                    "http_status",
                    503,
                    body=(
                        '{"status":"DOWN","components":{"redis":{"status":"DOWN",'
                        '"details":{"error":"Connection refused"}}}}'
                    ),
                ),
            )
        ],
        [
            (
                "Connection refused",
                edit(
                    "http_probe",
                    lambda p: p.update(
                        body_excerpt='{"status":"DOWN","components":{"redis":{"status":"DOWN"}}}'
                    ),
                ),
            ),
            ("`redis` DOWN", edit("http_probe", lambda p: p.update(body_excerpt='{"status":"DOWN"}'))),
        ],
    ),
    (
        R.database_refused,
        [
            ("app_check", E.app_check("database", "database answers directly", False, REFUSED_DB)),
            ("http_probe", E.http_probe("127.0.10.53")),
        ],
        [
            ("the API itself answers", drop("http_probe")),
            ("nothing accepts connections", drop("app_check")),
        ],
    ),
    (
        R.rollout_stuck,
        [("deployment", STUCK), ("pod", OLD_READY), ("pod", NEW_PULLING)],
        [
            ("still serve the previous version", drop("pod", lambda p: p["name"] == API)),
            ("ProgressDeadlineExceeded", drop("deployment")),
        ],
    ),
    (
        R.targetport_mismatch,
        [
            ("service", E.service(target_port=8080)),
            ("pod", E.pod()),
            (
                "in_cluster_health",
                E.in_cluster(
                    503,
                    "error trying to reach service: dial tcp 10.244.0.45:8080: connect: connection refused",
                ),
            ),
        ],
        [
            ("connection refused", drop("in_cluster_health")),
            ("targetPort 8080", drop("service")),
        ],
    ),
    (
        R.http_4xx,
        [
            ("http_probe", E.http_probe("127.0.10.53", "http_status", 429, headers={"Retry-After": "30"})),
            ("in_cluster_health", E.in_cluster()),
        ],
        [
            ("Retry-After: 30", edit("http_probe", lambda p: p.update(headers={}))),
            ("the application answers inside the cluster", drop("in_cluster_health")),
        ],
    ),
    (
        R.http_5xx,
        [
            ("http_probe", E.http_probe("127.0.10.53", "http_status", 503, headers={"Retry-After": "3600"})),
            ("in_cluster_health", E.in_cluster()),
        ],
        [
            ("Retry-After: 3600", edit("http_probe", lambda p: p.update(headers={}))),
            ("the application answers inside the cluster", drop("in_cluster_health")),
        ],
    ),
    (
        R.rollout_stuck,
        [("deployment", PAUSED)],
        [
            ("is paused", edit("deployment", lambda d: d.update(paused=False))),
        ],
    ),
    (
        R.volume_attach_failed,
        [
            ("service", E.service()),
            ("pod", CREATING),
            ("event", E.event(f"Pod/{API}", "FailedAttachVolume", MULTI_ATTACH)),
        ],
        [
            ("still attached to another node", drop("event")),
        ],
    ),
    (
        R.tls_not_yet_valid,
        [
            (
                "http_probe",
                E.http_probe(
                    "127.0.10.53", "tls_cert_expired", tls=E.tls_info("certificate is not yet valid")
                ),
            )
        ],
        [
            (
                "is not valid yet",
                edit("http_probe", lambda p: p["tls"].update(error="certificate has expired")),
            ),
        ],
    ),
    (
        R.tls_incomplete_chain,
        [
            (
                "tls",
                {
                    **E.tcp_probe("127.0.10.53", "tls_untrusted", port=443),
                    "tls": E.tls_info(
                        "unable to get local issuer certificate",
                        chain=[
                            {
                                "subject": "CN=97v.test",
                                "issuer": "CN=Intermediate",
                                "issuer_url": "http://ca.test/i.crt",
                            }
                        ],
                    ),
                },
            )
        ],
        [
            (
                "without the intermediate CA certificate",
                edit("tls", lambda t: t["tls"]["chain"][0].update(issuer_url=None)),
            ),
        ],
    ),
]
FAILED = {
    "cluster": "pods not Running and Ready",
    "workloads": "rollout exceeded its progress deadline",
    "dns": "97v.test did not resolve",
    "api-health": "GET /health failed",
    "database": "SELECT 1 failed",
    "tls": "certificate not trusted",
    "endpoints": "no ready endpoints",
}


def text_of(theory) -> str:
    return "\n".join([theory.title, *theory.evidence])


CLAIM_CASES = [
    (rule, records, claim, take_away) for rule, records, claims in CLAIMS for claim, take_away in claims
]


@pytest.mark.parametrize(
    "rule, records, claim, take_away",
    CLAIM_CASES,
    ids=[f"{rule.__name__}: {claim}" for rule, _, claim, _ in CLAIM_CASES],
)
def test_a_claim_disappears_with_its_evidence(rule, records, claim, take_away):
    theory = rule(E.facts_of(*records, failed=FAILED))
    assert theory is not None and claim in text_of(theory), (
        f"{rule.__name__} does not claim {claim!r} to begin with"
    )
    weaker = rule(E.facts_of(*take_away(records), failed=FAILED))
    assert weaker is None or claim not in text_of(weaker), (
        f"{rule.__name__} still claims {claim!r} without its evidence: {weaker.title}"
    )


def test_without_cluster_access_kubectl_says_it_needs_it_and_the_unknowns_name_the_command():
    # What a run without a kubeconfig records: probes only.
    records = [("dns", E.dns(["127.0.10.57"])), ("http_probe", E.http_probe("127.0.10.57", "empty_reply"))]
    facts = E.facts_of(
        *records, failed={"api-health": "GET /health failed on 127.0.10.57:80 empty_reply (curl 52)"}
    )
    assert not facts.cluster_checked
    ranked, _ = evaluate(facts)
    assert ranked, "a failed check yields a theory"
    for theory in [t for top in ranked for t in (top, *top.symptoms)]:
        assert "healthy inside the cluster" not in theory.title
        for line in theory.confirm + theory.fix:
            if line.lstrip().startswith("kubectl"):
                assert "needs cluster access" in line.splitlines()[0], line
        if any(line.startswith("kubectl") for line in theory.confirm + theory.fix):
            assert theory.unknowns and all("kubectl" in unknown for unknown in theory.unknowns)
    top = ranked[0]
    assert any("not checked" in unknown and "needs cluster access" in unknown for unknown in top.unknowns)


def test_with_cluster_access_kubectl_lines_are_plain_commands():
    ranked, _ = evaluate(
        E.facts_of(*E.incident_records(), failed={"api-health": "GET /health failed on 127.0.10.57:80"})
    )
    lines = [line for theory in ranked for line in theory.confirm + theory.fix if line.startswith("kubectl")]
    assert lines and not any("needs cluster access" in line for line in lines)
