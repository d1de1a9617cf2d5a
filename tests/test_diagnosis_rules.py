"""Diagnosis rules: each rule on hand-built evidence, firing on its fault and silent on evidence that does
not show it (including pods whose state does not match the rule's name), and the incident ranked as before.

Every sandbox scenario runs through the built-in suite in tests/test_scenario_corpus.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import diagnosis_evidence as E
import pytest
from diagnosis_change_evidence import CHANGE_CASES

from pytest_reachability.config import resolve_settings
from pytest_reachability.diagnosis import RULES, Facts, RunContext, diagnose, evaluate
from pytest_reachability.diagnosis import rules as R
from pytest_reachability.results import RunResults, TestResult

# The report tests build their worlds from these too.
http_probe, incident_records = E.http_probe, E.incident_records
API = E.API_POD
crashing = E.container(
    "waiting", "CrashLoopBackOff", ready=False, restarts=27, last_reason="Error", last_exit_code=1
)
running_not_ready = E.container("running", ready=False)
restarted = E.container("running", ready=False, restarts=5, last_reason="Error", last_exit_code=137)
unready_slice = ("endpoint_slice", E.endpoint_slice(ready=(), not_ready=("10.244.0.45",)))


def pod_case(rule, firing_pod, quiet_pod, *extra):
    """A rule over the api pod behind the api Service: fires for ``firing_pod``, not for ``quiet_pod``."""
    base = [("target_service", E.target_service()), ("service", E.service()), *extra]
    return (rule, [*base, ("pod", firing_pod)], [*base, ("pod", quiet_pod)])


RULE_CASES = [
    # (rule, records that make it fire, records that must not)
    (
        R.dns_not_loadbalancer,
        E.incident_records(),
        [(k, E.dns(["127.0.10.53"]) if k == "dns" else d) for k, d in E.incident_records()],
    ),
    (
        R.resolvers_disagree,
        [
            (
                "dns",
                E.dns(
                    answers=[
                        E.answer("127.0.0.1:5301", ["127.0.10.53"]),
                        E.answer("127.0.0.1:5302", ["127.0.10.57"]),
                    ]
                ),
            ),
            ("service", E.service()),
            ("http_probe", E.http_probe("127.0.10.57", "tcp_refused")),
        ],
        [("dns", E.dns(["127.0.10.53"])), ("service", E.service())],
    ),
    (
        R.dns_nxdomain,
        [("dns", E.dns(answers=[E.answer(addresses=(), failure="dns_nxdomain", rcode="NXDOMAIN")]))],
        [
            (
                "dns",
                E.dns(
                    answers=[
                        E.answer(addresses=(), failure="dns_nxdomain", rcode="NXDOMAIN", cnames=["lb.test"])
                    ]
                ),
            )
        ],
    ),
    (
        R.dns_no_data,
        [("dns", E.dns(answers=[E.answer(addresses=(), failure="dns_no_answer")]))],
        [("dns", E.dns(answers=[E.answer(addresses=(), failure="dns_nxdomain", rcode="NXDOMAIN")]))],
    ),
    (
        R.dns_servfail,
        [("dns", E.dns(answers=[E.answer(addresses=(), failure="dns_servfail", rcode="SERVFAIL")]))],
        [("dns", E.dns(["127.0.10.53"]))],
    ),
    (
        R.dns_refused,
        [("dns", E.dns(answers=[E.answer(addresses=(), failure="dns_refused", rcode="REFUSED")]))],
        [("dns", E.dns(answers=[E.answer(addresses=(), failure="dns_timeout", rcode="TIMEOUT")]))],
    ),
    (
        R.dns_timeout,
        [("dns", E.dns(answers=[E.answer(addresses=(), failure="dns_timeout", rcode="TIMEOUT")]))],
        [("dns", E.dns(answers=[E.answer(addresses=(), failure="dns_refused", rcode="REFUSED")]))],
    ),
    (
        R.dns_bad_answer,
        [("dns", E.dns(answers=[E.answer(addresses=(), failure="dns_bad_answer", rcode="BADANSWER")]))],
        [("dns", E.dns(answers=[E.answer(addresses=(), failure="dns_servfail", rcode="SERVFAIL")]))],
    ),
    (
        R.dns_dangling_cname,
        [
            (
                "dns",
                E.dns(
                    answers=[
                        E.answer(addresses=(), failure="dns_nxdomain", rcode="NXDOMAIN", cnames=["lb.test"])
                    ]
                ),
            )
        ],
        [("dns", E.dns(answers=[E.answer(addresses=("127.0.10.53",), cnames=["lb.test"])]))],
    ),
    (
        R.dns_cname_loop,
        [
            (
                "dns",
                E.dns(
                    answers=[
                        E.answer(addresses=(), failure="dns_no_answer", cnames=["edge.97v.test", "97v.test"])
                    ]
                ),
            )
        ],
        [
            (
                "dns",
                E.dns(
                    answers=[
                        E.answer(
                            addresses=(), failure="dns_nxdomain", rcode="NXDOMAIN", cnames=["edge.97v.test"]
                        )
                    ]
                ),
            )
        ],
    ),
    (
        R.dns_private_address,
        [("dns", E.dns(["10.20.4.31"])), ("tcp", E.tcp_probe("10.20.4.31", "tcp_timeout"))],
        # A loopback or public address that times out is a firewall's or a wrong address's case, not this.
        [("dns", E.dns(["127.0.10.57"])), ("tcp", E.tcp_probe("127.0.10.57", "tcp_timeout"))],
    ),
    (
        R.loadbalancer_no_local_endpoints,
        [
            ("node", {**E.node(), "excluded_from_load_balancers": True}),
            ("service", {**E.service(), "external_traffic_policy": "Local"}),
            ("pod", E.pod()),
            ("tcp", E.tcp_probe("127.0.10.53", "tcp_timeout")),
        ],
        # Cluster policy: every node forwards to the pod wherever it runs.
        [
            ("node", {**E.node(), "excluded_from_load_balancers": True}),
            ("service", {**E.service(), "external_traffic_policy": "Cluster"}),
            ("pod", E.pod()),
            ("tcp", E.tcp_probe("127.0.10.53", "tcp_timeout")),
        ],
    ),
    (
        R.ingress_annotation,
        [
            ("http_probe", E.http_probe("127.0.10.80", "http_status", 502)),
            (
                "ingress",
                {**E.ingress(), "annotations": {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}},
            ),
            ("in_cluster_health", E.in_cluster(200)),
        ],
        [
            ("http_probe", E.http_probe("127.0.10.80", "http_status", 502)),
            (
                "ingress",
                {**E.ingress(), "annotations": {"nginx.ingress.kubernetes.io/backend-protocol": "HTTP"}},
            ),
            ("in_cluster_health", E.in_cluster(200)),
        ],
    ),
    (
        R.cluster_access_failed,
        [("cluster_access", E.cluster_access(False, "FORBIDDEN", 'cannot list resource "pods"'))],
        [("cluster_access", E.cluster_access())],
    ),
    (
        R.loadbalancer_pending,
        [("service", E.service(pending=True)), ("target_service", E.target_service())],
        [("service", E.service())],
    ),
    (
        R.loadbalancer_removed,
        [
            ("target_service", E.target_service()),
            ("service", E.service(type_="ClusterIP")),
            ("dns", E.dns(["127.0.10.53"])),
            ("service", E.service("bot-service", ["127.0.10.215"], selector={"app": "bot"})),
            ("http_probe", E.http_probe("127.0.10.53", "tcp_refused")),
        ],
        [
            ("target_service", E.target_service()),
            ("service", E.service(type_="ClusterIP")),
            ("dns", E.dns(["127.0.10.53"])),
            ("service", E.service("bot-service", ["127.0.10.215"], selector={"app": "bot"})),
            ("http_probe", E.http_probe("127.0.10.53")),
        ],
    ),
    (
        R.duplicate_loadbalancers,
        [
            ("service", E.service("api", ["127.0.10.53"])),
            ("service", E.service("api-service", ["127.0.10.239"])),
            ("pod", E.pod()),
        ],
        [
            ("service", E.service("api", ["127.0.10.53"])),
            ("service", E.service("bot", ["127.0.10.215"], selector={"app": "bot"})),
            ("pod", E.pod()),
        ],
    ),
    (
        R.service_in_other_namespace,
        [("target_service", E.target_service(found=False, found_in=["production"], namespace="default"))],
        [("target_service", E.target_service())],
    ),
    (
        R.service_missing,
        [("target_service", E.target_service(found=False, found_in=[])), ("pod", E.pod())],
        [("target_service", E.target_service(found=False, found_in=["staging"], namespace="production"))],
    ),
    (
        R.namespace_empty,
        [("cluster_access", {"ok": True}), ("target_service", E.target_service(found=False, found_in=[]))],
        [
            ("cluster_access", {"ok": True}),
            ("target_service", E.target_service(found=False, found_in=[])),
            ("pod", E.pod()),
        ],
    ),
    (
        R.selector_matches_no_pods,
        [
            ("service", E.service(selector={"app": "api-v2"})),
            ("pod", E.pod()),
            ("deployment", E.deployment()),
        ],
        [
            ("service", E.service(selector={"app": "api-v2"})),
            ("pod", E.pod()),
            ("deployment", E.deployment("api-v2", desired=0, available=0)),
        ],
    ),
    (
        R.no_ready_endpoints,
        [("service", E.service()), ("pod", E.pod(ready=False)), unready_slice],
        [("service", E.service()), ("pod", E.pod()), ("endpoint_slice", E.endpoint_slice())],
    ),
    (
        R.targetport_mismatch,
        [("service", E.service(target_port=8080)), ("pod", E.pod())],
        [("service", E.service(target_port=8000)), ("pod", E.pod())],
    ),
    (
        R.targetport_mismatch,
        [("service", E.service(target_port="web")), ("pod", E.pod())],
        [("service", E.service(target_port="http")), ("pod", E.pod())],
    ),
    (
        R.ingress_missing_rule,
        [("ingress_controller", E.controller_pod()), ("service", E.service())],
        [("ingress_controller", E.controller_pod()), ("service", E.service()), ("ingress", E.ingress())],
    ),
    (
        R.ingress_backend_missing,
        [("service", E.service()), ("ingress", E.ingress(backend="api-svc"))],
        [("service", E.service()), ("ingress", E.ingress(backend="api"))],
    ),
    (
        R.ingress_tls_host_missing,
        [
            ("ingress", {**E.ingress(), "tls": [{"hosts": ["www.97v.test"], "secret": "web-tls"}]}),
            (
                "tls",
                {**E.tcp_probe("127.0.10.80", "tls_untrusted", port=443), "tls": E.tls_info("self-signed")},
            ),
        ],
        [  # the Ingress lists the host: its certificate is another story (tls-untrusted tells it)
            ("ingress", E.ingress()),
            (
                "tls",
                {**E.tcp_probe("127.0.10.80", "tls_untrusted", port=443), "tls": E.tls_info("self-signed")},
            ),
        ],
    ),
    (
        R.external_name_unresolvable,
        E.external_name_alias("dns_nxdomain", "NXDOMAIN"),
        E.external_name_alias("dns_timeout", "TIMEOUT"),  # a resolver that failed to answer says nothing
    ),
    (
        R.ingress_backend_port_missing,
        [("service", E.service()), ("ingress", E.ingress(port=8080))],
        [("service", E.service()), ("ingress", E.ingress(port="http"))],
    ),
    (
        R.ingress_class_missing,
        [
            ("ingress", E.ingress(class_name="traefik")),
            ("ingress_class", {"name": "nginx", "controller": "x", "is_default": True}),
        ],
        [
            ("ingress", E.ingress(class_name="nginx")),
            ("ingress_class", {"name": "nginx", "controller": "x", "is_default": True}),
        ],
    ),
    (
        R.only_in_cluster_traffic,
        [("pod_logs", E.pod_logs(external=0)), ("http_probe", E.http_probe("127.0.10.57", "empty_reply"))],
        [("pod_logs", E.pod_logs(external=3)), ("http_probe", E.http_probe("127.0.10.57", "empty_reply"))],
    ),
    # workloads: each fires on the state its name says, and not on a pod in another state
    pod_case(
        R.image_pull_failed,
        E.pod(
            ready=False,
            containers=[E.container("waiting", "ImagePullBackOff", 'Back-off pulling image "x:1"', False)],
        ),
        E.pod(ready=False, containers=[crashing]),
    ),
    pod_case(
        R.container_config_error,
        E.pod(
            ready=False,
            containers=[E.container("waiting", "CreateContainerConfigError", 'secret "db" not found', False)],
        ),
        E.pod(ready=False, containers=[E.container("waiting", "ImagePullBackOff", "", False)]),
    ),
    (
        R.volume_attach_failed,
        [
            ("target_service", E.target_service()),
            ("service", E.service()),
            (
                "pod",
                E.pod(
                    ready=False,
                    phase="Pending",
                    containers=[E.container("waiting", "ContainerCreating", ready=False)],
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
        ],
        [
            ("target_service", E.target_service()),
            ("service", E.service()),
            (
                "pod",
                E.pod(
                    ready=False,
                    phase="Pending",
                    containers=[E.container("waiting", "ContainerCreating", ready=False)],
                ),
            ),
            (
                "event",
                E.event(
                    f"Pod/{API}",
                    "FailedMount",
                    'MountVolume.SetUp failed for volume "config" : configmap "api-config" not found',
                ),
            ),
        ],
    ),
    pod_case(
        R.container_oom_killed,
        E.pod(
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
        ),
        E.pod(ready=False, containers=[crashing]),
    ),
    pod_case(
        R.pods_crashing,
        E.pod(ready=False, containers=[crashing]),
        E.pod(
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
        ),
    ),
    (
        R.startup_probe_failing,
        [
            ("service", E.service()),
            ("pod", E.pod(ready=False, containers=[restarted])),
            (
                "event",
                E.event(f"Pod/{API}", "Killing", "Container api failed startup probe, will be restarted"),
            ),
        ],
        [
            ("service", E.service()),
            ("pod", E.pod(ready=False, containers=[restarted])),
            (
                "event",
                E.event(f"Pod/{API}", "Killing", "Container api failed liveness probe, will be restarted"),
            ),
        ],
    ),
    (
        R.liveness_probe_failing,
        [
            ("service", E.service()),
            ("pod", E.pod(ready=False, containers=[restarted])),
            (
                "event",
                E.event(
                    f"Pod/{API}", "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500"
                ),
            ),
        ],
        [
            ("service", E.service()),
            ("pod", E.pod(ready=False, containers=[restarted])),
            (
                "event",
                E.event(
                    f"Pod/{API}",
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 500",
                ),
            ),
        ],
    ),
    pod_case(
        R.readiness_probe_failing,
        E.pod(ready=False, containers=[running_not_ready]),
        E.pod(ready=False, containers=[E.container("waiting", "ContainerCreating", ready=False)]),
        (
            "event",
            E.event(
                f"Pod/{API}", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"
            ),
        ),
    ),
    pod_case(
        R.pod_unschedulable,
        E.pod(
            ready=False,
            phase="Pending",
            containers=[],
            unschedulable="0/3 nodes are available: 3 Insufficient cpu.",
        ),
        E.pod(
            ready=False,
            phase="Pending",
            containers=[E.container("waiting", "ContainerCreating", ready=False)],
        ),
    ),
    (
        R.node_not_ready,
        [
            ("node", E.node(ready=False, taints=[("node.kubernetes.io/unreachable", "NoExecute")])),
            ("pod", E.pod(ready=False)),
            ("service", E.service()),
        ],
        [("node", E.node()), ("pod", E.pod(ready=False)), ("service", E.service())],
    ),
    pod_case(
        R.pods_not_ready,
        E.pod(
            ready=False,
            phase="Pending",
            containers=[E.container("waiting", "ContainerCreating", ready=False)],
        ),
        E.pod(),
    ),
    (
        R.deployment_scaled_to_zero,
        [
            ("target_service", E.target_service()),
            ("service", E.service()),
            ("deployment", E.deployment(desired=0, available=0)),
        ],
        [
            ("target_service", E.target_service()),
            ("service", E.service()),
            ("deployment", E.deployment()),
            ("pod", E.pod()),
        ],
    ),
    (
        R.rollout_stuck,
        [
            (
                "deployment",
                E.deployment(
                    conditions=[
                        (
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            'ReplicaSet "api-5f8d9c7b6" has timed out progressing.',
                        )
                    ]
                ),
            )
        ],
        [
            (
                "deployment",
                E.deployment(
                    conditions=[
                        (
                            "Progressing",
                            "True",
                            "ReplicaSetUpdated",
                            'ReplicaSet "api-5f8d9c7b6" is progressing.',
                        )
                    ]
                ),
            )
        ],
    ),
    # traffic: one rule per failure class
    (
        R.tcp_refused,
        [("http_probe", E.http_probe("127.0.10.53", "tcp_refused"))],
        [("http_probe", E.http_probe("127.0.10.53", "tcp_timeout"))],
    ),
    (
        R.tcp_timeout,
        [("http_probe", E.http_probe("127.0.10.53", "tcp_timeout"))],
        [("http_probe", E.http_probe("127.0.10.53", "empty_reply"))],
    ),
    (
        R.tcp_unreachable,
        [("tcp", E.tcp_probe("::1", "tcp_unreachable"))],
        [("tcp", E.tcp_probe("::1", "tcp_refused"))],
    ),
    (
        R.edge_empty_reply,
        [("http_probe", E.http_probe("127.0.10.57", "empty_reply")), ("in_cluster_health", E.in_cluster())],
        [
            ("http_probe", E.http_probe("127.0.10.57", "empty_reply")),
            ("in_cluster_health", E.in_cluster(503, "no endpoints available")),
        ],
    ),
    (
        R.edge_reset,
        [("http_probe", E.http_probe("127.0.10.53", "recv_error"))],
        [("http_probe", E.http_probe("127.0.10.53", "partial_body"))],
    ),
    (
        R.edge_partial_body,
        [("http_probe", E.http_probe("127.0.10.53", "partial_body"))],
        [("http_probe", E.http_probe("127.0.10.53", "recv_error"))],
    ),
    (
        R.edge_not_http,
        [("http_probe", E.http_probe("127.0.10.53", "bad_response", detail="b'SSH-2.0-OpenSSH'"))],
        [("http_probe", E.http_probe("127.0.10.53"))],
    ),
    (
        R.read_timeout,
        [("http_probe", E.http_probe("127.0.10.53", "read_timeout"))],
        [("http_probe", E.http_probe("127.0.10.53", "tcp_timeout"))],
    ),
    (
        R.redirect_loop,
        [
            (
                "http_probe",
                E.http_probe("127.0.10.53", "too_many_redirects", detail="redirect loop: /health -> /health"),
            )
        ],
        [("http_probe", E.http_probe("127.0.10.53", "http_status", 301))],
    ),
    (
        R.redirect_unsafe,
        [
            (
                "http_probe",
                E.http_probe(
                    "127.0.10.53",
                    "redirect_unsafe",
                    detail="redirect from https down to http://97v.test/health refused",
                ),
            )
        ],
        [("http_probe", E.http_probe("127.0.10.53", "redirect_elsewhere"))],
    ),
    (
        R.redirect_target_fails,
        [
            (
                "http_probe",
                {**E.http_probe("127.0.10.53", "tcp_refused"), "redirects": ["https://97v.test/health"]},
            )
        ],
        # The same failure without a redirect is the address's own (tcp-refused).
        [("http_probe", E.http_probe("127.0.10.53", "tcp_refused"))],
    ),
    (
        R.redirect_elsewhere,
        [
            (
                "http_probe",
                E.http_probe(
                    "127.0.10.53", "redirect_elsewhere", detail="redirect to http://login.test/: another host"
                ),
            )
        ],
        [("http_probe", E.http_probe("127.0.10.53", "redirect_unsafe"))],
    ),
    (
        R.headers_too_large,
        [("http_probe", E.http_probe("127.0.10.53", "headers_too_large"))],
        [("http_probe", E.http_probe("127.0.10.53", "recv_error"))],
    ),
    (
        R.http_5xx,
        [("http_probe", E.http_probe("127.0.10.53", "http_status", 503))],
        [("http_probe", E.http_probe("127.0.10.53", "http_status", 404))],
    ),
    (
        R.http_404,
        [("http_probe", E.http_probe("127.0.10.53", "http_status", 404))],
        [("http_probe", E.http_probe("127.0.10.53", "http_status", 503))],
    ),
    (
        R.http_auth,
        [("http_probe", E.http_probe("127.0.10.53", "http_status", 401))],
        [("http_probe", E.http_probe("127.0.10.53", "http_status", 404))],
    ),
    (
        R.http_4xx,
        [("http_probe", E.http_probe("127.0.10.53", "http_status", 429))],
        [("http_probe", E.http_probe("127.0.10.53", "http_status", 401))],
    ),
    (
        R.body_mismatch,
        [("http_probe", E.http_probe("127.0.10.53", "body_mismatch", 200))],
        [("http_probe", E.http_probe("127.0.10.53"))],
    ),
    (
        R.tls_expired,
        [
            (
                "http_probe",
                E.http_probe("127.0.10.53", "tls_cert_expired", tls=E.tls_info("certificate has expired")),
            )
        ],
        [("http_probe", E.http_probe("127.0.10.53", "tls_hostname"))],
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
                "http_probe",
                E.http_probe("127.0.10.53", "tls_cert_expired", tls=E.tls_info("certificate has expired")),
            )
        ],
    ),
    (
        R.tls_wrong_host,
        [("http_probe", E.http_probe("127.0.10.53", "tls_hostname"))],
        [("http_probe", E.http_probe("127.0.10.53", "tls_cert_expired"))],
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
                "tls",
                {
                    **E.tcp_probe("127.0.10.53", "tls_untrusted", port=443),
                    "tls": E.tls_info(
                        "unable to get local issuer certificate",
                        chain=[{"subject": "CN=97v.test", "issuer": "CN=Private Root", "issuer_url": None}],
                    ),
                },
            )
        ],
    ),
    (
        R.tls_untrusted,
        [
            (
                "tls",
                {
                    **E.tcp_probe("127.0.10.53", "tls_untrusted", port=443),
                    "tls": E.tls_info("self-signed certificate"),
                },
            )
        ],
        [("tls", {**E.tcp_probe("127.0.10.53", None, port=443), "tls": E.tls_info()})],
    ),
    (
        R.tls_handshake,
        [("tls", {**E.tcp_probe("127.0.10.53", "tls_handshake", port=443), "detail": "did not answer TLS"})],
        [("tls", {**E.tcp_probe("127.0.10.53", "tls_timeout", port=443)})],
    ),
    (
        R.tls_timeout,
        [("tls", {**E.tcp_probe("127.0.10.53", "tls_timeout", port=443)})],
        [("tls", {**E.tcp_probe("127.0.10.53", "tls_handshake", port=443)})],
    ),
    # application
    (
        R.dependency_unhealthy,
        [
            (
                "http_probe",
                E.http_probe(
                    "127.0.10.53",
                    "http_status",
                    503,
                    body='{"status":"DOWN","components":{"redis":{"status":"DOWN"}}}',
                ),
            )
        ],
        [
            (
                "http_probe",
                E.http_probe(
                    "127.0.10.53", None, 200, body='{"status":"UP","components":{"redis":{"status":"UP"}}}'
                ),
            )
        ],
    ),
    (
        R.app_reports_unhealthy,
        [("http_probe", E.http_probe("127.0.10.53", None, 200, body='{"status": "DOWN"}'))],
        [
            (
                "http_probe",
                E.http_probe(
                    "127.0.10.53",
                    "http_status",
                    503,
                    body='{"status":"DOWN","components":{"db":{"status":"DOWN"}}}',
                ),
            )
        ],
    ),
    (
        R.in_cluster_unhealthy,
        [("in_cluster_health", E.in_cluster(500, body='{"detail": "Internal Server Error"}'))],
        [("in_cluster_health", E.in_cluster(503, "no endpoints available", no_endpoints=True))],
    ),
    (
        R.database_refused,
        [
            (
                "app_check",
                E.app_check(
                    "database",
                    "database answers directly",
                    False,
                    'connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection '
                    "refused",
                ),
            )
        ],
        [
            (
                "app_check",
                E.app_check(
                    "database", "database answers directly", False, "connection failed: timeout expired"
                ),
            )
        ],
    ),
    (
        R.database_timeout,
        [
            (
                "app_check",
                E.app_check(
                    "database", "database answers directly", False, "connection failed: timeout expired"
                ),
            )
        ],
        [
            (
                "app_check",
                E.app_check(
                    "database",
                    "database answers directly",
                    False,
                    'FATAL:  password authentication failed for user "app"',
                ),
            )
        ],
    ),
    (
        R.database_auth_failed,
        [
            (
                "app_check",
                E.app_check(
                    "database",
                    "database answers directly",
                    False,
                    'connection failed: FATAL:  password authentication failed for user "app"',
                ),
            )
        ],
        [
            (
                "app_check",
                E.app_check(
                    "database", "database answers directly", False, 'FATAL:  database "app_x" does not exist'
                ),
            )
        ],
    ),
    (
        R.database_missing,
        [
            (
                "app_check",
                E.app_check(
                    "database",
                    "database answers directly",
                    False,
                    'connection failed: FATAL:  database "app_missing" does not exist',
                ),
            )
        ],
        [
            (
                "app_check",
                E.app_check(
                    "database", "database answers directly", False, 'FATAL:  role "bob" does not exist'
                ),
            )
        ],
    ),
    (
        R.database_slow,
        [("app_check", E.app_check("database", "api reports database latency", False, 300, 150))],
        [("app_check", E.app_check("database", "api reports database latency", True, 30, 150))],
    ),
]
FAILING = {
    "cluster": "pods not Running and Ready",
    "workloads": "api has 0 of 1 replicas available",
    "api-health": "GET /health failed",
    "performance": "p95 812 ms > 250 ms",
}
HALF_FAIL = E.performance(50)
PROGRESSING = {
    **E.deployment(),
    "rollout_complete": False,
    "conditions": [
        {"type": "Progressing", "status": "True", "message": 'ReplicaSet "api-6b" is progressing.'}
    ],
}
OVERLAP = [("target_service", E.target_service()), ("service", E.service()), ("pod", E.pod())]
PERFORMANCE_CASES = [
    (
        R.rollout_new_pods_failing,
        [*OVERLAP, ("deployment", PROGRESSING), ("pod", E.pod("api-6b-x", owner="ReplicaSet/api-6b"))]
        + [("performance", HALF_FAIL)],
        # The rollout finished: two ReplicaSets' pods but nothing in progress.
        [*OVERLAP, ("deployment", E.deployment()), ("pod", E.pod("api-6b-x", owner="ReplicaSet/api-6b"))]
        + [("performance", HALF_FAIL)],
    ),
    (
        R.service_selector_overlap,
        [*OVERLAP, ("pod", E.pod("admin-7f-x", owner="ReplicaSet/admin-7f")), ("performance", HALF_FAIL)],
        [*OVERLAP, ("pod", E.pod("api-6b-x", owner="ReplicaSet/api-6b")), ("performance", HALF_FAIL)],
    ),
    (
        R.slow_responses,
        [("performance", E.performance(p50=380, p95=420, p99=450))],
        [("performance", E.performance())],
    ),
    (
        R.intermittent_failures,
        [("performance", E.performance(errors=30, kinds={"HTTP 503": 30}))],
        [("performance", E.performance(errors=100, kinds={"HTTP 503": 100}))],
    ),
]
ALL_CASES = RULE_CASES + PERFORMANCE_CASES + CHANGE_CASES


def case_id(case) -> str:
    return case[0].__name__


@pytest.mark.parametrize(("rule", "firing", "quiet"), ALL_CASES, ids=[case_id(case) for case in ALL_CASES])
def test_rule_fires_on_its_evidence_and_not_otherwise(rule, firing, quiet):
    theory = rule(E.facts_of(*firing, failed=FAILING))
    assert theory is not None, f"{rule.__name__} did not fire"
    assert 0 < theory.confidence <= 0.99
    assert theory.title and theory.evidence and theory.confirm and theory.fix
    assert rule(E.facts_of(*quiet, failed=FAILING)) is None, (
        f"{rule.__name__} fired on evidence that does not show its fault"
    )


def test_the_api_servers_own_error_body_is_no_health_body():
    status = (
        '{"kind":"Status","apiVersion":"v1","status":"Failure",'
        '"message":"no endpoints available for service \\"api\\"","reason":"ServiceUnavailable","code":503}'
    )
    facts = E.facts_of(
        (
            "in_cluster_health",
            E.in_cluster(503, 'no endpoints available for service "api"', True, body=status),
        ),
        failed=FAILING,
    )
    assert R.app_reports_unhealthy(facts) is None and R.dependency_unhealthy(facts) is None


@pytest.mark.parametrize(
    "failure, status, headers, detail",
    [
        ("too_many_redirects", None, {}, "redirect loop: /{x} -> /{x}"),
        ("redirect_elsewhere", None, {}, "redirect to http://{evil}.test/: another host"),
        ("http_status", 401, {"WWW-Authenticate": 'Bearer realm="{0}"'}, ""),
        ("http_status", 503, {"Server": "nginx {}"}, ""),
    ],
)
def test_what_a_peer_sends_is_quoted_as_text_even_with_braces(failure, status, headers, detail):
    facts = E.facts_of(
        ("http_probe", E.http_probe("127.0.10.53", failure, status, headers=headers, detail=detail)),
        failed={"api-health": "GET /health failed"},
    )
    ranked, _ = evaluate(facts)
    text = " ".join(t.title for t in ranked)
    assert "{x}" in text or "{evil}" in text or '"{0}"' in text or "nginx {}" in text, text


def test_every_built_in_rule_has_a_case():
    # These read a section's failure (its reason, or that it failed): test_diagnosis_attack_faults.py and
    # below.
    tested = {case[0] for case in ALL_CASES} | {R.ingress_tls_secret_missing, R.network_policy_denies}
    assert [rule.__name__ for rule in RULES if rule not in tested] == []


@pytest.mark.parametrize(
    "reason",
    [
        "TLS secrets missing: production/letsencrypt-prod; expected the Secrets the Ingress names to exist",
        "TLS secret letsencrypt-prod of Ingress api-ingress is missing",
    ],
)
def test_ingress_tls_secret_missing_reads_the_ingress_sections_failure(reason):
    facts = Facts(
        [
            TestResult(
                "suites/test_05_ingress.py::test_tls_secrets",
                section="ingress",
                outcome="failed",
                reason=reason,
                evidence=[{"kind": "ingress", "data": E.ingress()}],
            ),
        ],
        RunContext(host="97v.test", namespace="production"),
    )
    theory = R.ingress_tls_secret_missing(facts)
    assert theory is not None and "letsencrypt-prod" in theory.title
    assert (
        "kubectl -n production get secret --field-selector metadata.name=letsencrypt-prod" in theory.confirm
    )
    facts.tests[0].outcome = "passed"
    assert R.ingress_tls_secret_missing(facts) is None


INCIDENT_FAILURES = {
    "dns": "DNS A 127.0.10.57 is not an address of LoadBalancer api (127.0.10.53) or api-service "
    "(127.0.10.239)",
    "api-health": "GET /health failed on 127.0.10.57:80 empty_reply (curl 52): closed without a reply",
    "k8s-services": "duplicate LoadBalancers: api (127.0.10.53) and api-service (127.0.10.239) select the "
    "same pods",
    "ingress": "no Ingress in namespace production has a rule for 97v.test although an ingress controller "
    "runs",
}


def test_incident_evidence_ranks_the_dns_mismatch_first_with_the_direct_probe():
    ranked, _ = evaluate(E.facts_of(*E.incident_records(), failed=INCIDENT_FAILURES))
    top = ranked[0]
    assert top.rule == "dns-not-loadbalancer"
    assert top.title == (
        "the DNS A record for 97v.test points at 127.0.10.57, which accepts TCP and closes without replying; "
        "the `api` LoadBalancer answers at 127.0.10.53 — update the record"
    )
    assert any("127.0.10.53:80: HTTP 200" in line and "probed directly" in line for line in top.evidence)
    assert [t.rule for t in ranked[:3]] == [
        "dns-not-loadbalancer",
        "duplicate-loadbalancers",
        "ingress-missing-rule",
    ]
    # The empty reply at the wrong address is a consequence of the wrong record, not a rival cause.
    assert "edge-empty-reply" in [s.rule for s in top.symptoms]
    assert set(top.all_explained()) >= {
        "suites/test_dns.py::test_dns",
        "suites/test_api-health.py::test_api_health",
    }
    assert "dig @127.0.0.1 -p 5353 97v.test +short" in top.confirm
    # Without the direct probe of the LoadBalancer the same theory is weaker.
    weaker = R.dns_not_loadbalancer(
        E.facts_of(
            *E.without(E.incident_records(), "http_probe", lambda d: d.get("source") == "loadbalancer")
        )
    )
    assert weaker is not None and weaker.confidence < top.confidence
    assert "has its address at 127.0.10.53" in weaker.title


def test_firewall_theory_dropped_when_tcp_connected():
    failed = {"api-health": "GET /health failed on 127.0.10.53:80 tcp_timeout (curl 28)"}
    records = [
        ("http_probe", E.http_probe("127.0.10.53", "tcp_timeout")),
        ("tcp", E.tcp_probe("127.0.10.53")),
    ]
    ranked, dropped = evaluate(E.facts_of(*records, failed=failed))
    assert "tcp-timeout" not in [t.rule for t in ranked]
    assert [(t.rule, why) for t, why in dropped] == [("tcp-timeout", "TCP connected to 127.0.10.53")]
    ranked, dropped = evaluate(E.facts_of(*records[:1], failed=failed))
    assert [t.rule for t in ranked] == ["tcp-timeout"] and not dropped


def test_findings_without_failures_rank_at_half_confidence():
    failing, _ = evaluate(E.facts_of(*E.incident_records(), failed=INCIDENT_FAILURES))
    quiet, _ = evaluate(E.facts_of(*E.incident_records(), failed={}))
    by_rule = {t.rule: t.confidence for t in failing}
    by_rule.update({s.rule: s.confidence for t in failing for s in t.symptoms})
    assert quiet
    for theory in quiet:
        assert theory.confidence == pytest.approx(by_rule[theory.rule] / 2, abs=0.011)
        assert theory.confidence <= 0.5


def test_evidence_recorded_twice_counts_once_and_unknown_kinds_are_ignored():
    records = E.incident_records()
    facts = E.facts_of(*records, *records, ("something-else", {"x": 1}))
    assert len(facts.of("service")) == 3
    assert len(facts.http_probes("dns")) == 1


def test_diagnose_reads_run_results_and_settings():
    results = RunResults()
    results.tests["t1"] = TestResult(
        "t1",
        section="api-health",
        outcome="failed",
        reason="empty reply at 127.0.10.57",
        evidence=[{"kind": k, "data": d} for k, d in E.incident_records()],
    )
    settings = resolve_settings({"target": "http://97v.test", "namespace": "production"}, {})
    theories = diagnose(results, settings)
    assert theories[0].rule == "dns-not-loadbalancer"
    assert all(
        re.match(r"^(kubectl|dig|curl|nc|openssl|pg_isready|psql|ip|for) ", c)
        for t in theories
        for c in t.confirm
    )
    assert diagnose(RunResults(), settings) == []


# --------------------------------------------------------------------------- the built-in suite, end to end

SUITES = Path(__file__).resolve().parents[1] / "suites"


def run_builtin_suite(
    workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    """Run a copy of the built-in suite in ``workdir`` (its own rootdir) in a child pytest; bounded in
    time."""
    if not any(SUITES.glob("test_*.py")):
        pytest.fail("the built-in suite (suites/test_*.py) is missing")
    copy_dir = workdir / "suites"
    if not copy_dir.exists():
        shutil.copytree(SUITES, copy_dir, ignore=shutil.ignore_patterns("__pycache__"))
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REACHABILITY_") and k not in ("KUBECONFIG", "PYTEST_ADDOPTS")
    }
    environment.update(env or {})
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suites", *args]
    return subprocess.run(
        command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=timeout
    )


def test_builtin_suite_in_the_wrong_namespace_says_where_the_service_is(tmp_path):
    run = run_builtin_suite(
        tmp_path, "--sandbox", "healthy", "--namespace", "default", "--results-json", "out.json", "-q"
    )
    assert run.returncode == 1, run.stdout[-3000:]
    theories = json.loads((tmp_path / "out.json").read_text())["theories"]
    assert theories[0]["rule"] == "service-in-other-namespace", [
        (t["rule"], t["confidence"]) for t in theories
    ]
    assert theories[0]["title"].startswith(
        "Service `api` does not exist in namespace default but in production"
    )
    assert all(t["confidence"] < theories[0]["confidence"] for t in theories[1:])


def test_printed_kubectl_flags_are_shell_quoted(tmp_path: Path) -> None:
    # A kubeconfig path with a space and a quote, a context with shell syntax: pasted into a shell, the
    # printed command must pass each as one argument and run nothing else.
    directory = tmp_path / "kube dir"
    directory.mkdir()
    kubeconfig = directory / "it's config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    settings = resolve_settings(
        {"target": "http://api.test", "kubeconfig": str(kubeconfig), "kube_context": "prod $(id)"}, {}
    )
    kubectl = RunContext.from_settings(settings).kubectl
    assert shlex.split(kubectl) == ["kubectl", "--kubeconfig", str(kubeconfig), "--context", "prod $(id)"]
