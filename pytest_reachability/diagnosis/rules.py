"""The diagnosis rules: each one small function ``rule(facts) -> Theory | None``.

A rule looks at the indexed evidence (:class:`Facts`), decides whether its fault explains what was
seen, and returns a :class:`Theory` whose confidence grows with the strength of the evidence. Rules
do not know of each other; :mod:`rank` orders their theories, folds consequences under their cause and
drops contradicted ones. They live by domain:

* :mod:`rules_dns` — the name does not resolve, or resolves to the wrong place;
* :mod:`rules_traffic` — what the probes met at each address (connect, TLS, HTTP), one rule per failure class;
* :mod:`rules_workloads` — pods, nodes and Deployments from their status fields;
* :mod:`rules_wiring` — Services, endpoints, Ingresses and NetworkPolicies connecting edge and pods;
* :mod:`rules_app` — the application's health body, its database, its behaviour under load.

Users add rules of their own through the ``pytest_reachability_rules`` hook (see :mod:`hookspecs`).
"""

from __future__ import annotations

from collections.abc import Callable

from .facts import Facts
from .rules_app import (
    app_reports_unhealthy,
    database_auth_failed,
    database_missing,
    database_refused,
    database_slow,
    database_timeout,
    dependency_unhealthy,
    in_cluster_unhealthy,
    intermittent_failures,
    slow_responses,
)
from .rules_changes import RULES as CHANGE_RULES
from .rules_dns import (
    dns_bad_answer,
    dns_cname_loop,
    dns_dangling_cname,
    dns_no_data,
    dns_not_loadbalancer,
    dns_nxdomain,
    dns_refused,
    dns_servfail,
    dns_timeout,
    resolvers_disagree,
)
from .rules_nginx import ingress_annotation
from .rules_traffic import (
    body_mismatch,
    dns_private_address,
    edge_empty_reply,
    edge_not_http,
    edge_partial_body,
    edge_reset,
    headers_too_large,
    http_4xx,
    http_5xx,
    http_404,
    http_auth,
    read_timeout,
    redirect_elsewhere,
    redirect_loop,
    redirect_target_fails,
    redirect_unsafe,
    tcp_refused,
    tcp_timeout,
    tcp_unreachable,
    tls_expired,
    tls_handshake,
    tls_incomplete_chain,
    tls_not_yet_valid,
    tls_timeout,
    tls_untrusted,
    tls_wrong_host,
)
from .rules_wiring import (
    cluster_access_failed,
    duplicate_loadbalancers,
    external_name_unresolvable,
    ingress_backend_missing,
    ingress_backend_port_missing,
    ingress_class_missing,
    ingress_missing_rule,
    ingress_tls_host_missing,
    ingress_tls_secret_missing,
    loadbalancer_no_local_endpoints,
    loadbalancer_pending,
    loadbalancer_removed,
    namespace_empty,
    network_policy_denies,
    no_ready_endpoints,
    only_in_cluster_traffic,
    rollout_new_pods_failing,
    selector_matches_no_pods,
    service_in_other_namespace,
    service_missing,
    service_selector_overlap,
    targetport_mismatch,
)
from .rules_workloads import (
    container_config_error,
    container_oom_killed,
    deployment_scaled_to_zero,
    image_pull_failed,
    liveness_probe_failing,
    node_not_ready,
    pod_unschedulable,
    pods_crashing,
    pods_not_ready,
    readiness_probe_failing,
    rollout_stuck,
    startup_probe_failing,
    volume_attach_failed,
)
from .theory import Theory

Rule = Callable[[Facts], Theory | None]

RULES: tuple[Rule, ...] = (
    # DNS
    dns_not_loadbalancer,
    resolvers_disagree,
    dns_nxdomain,
    dns_no_data,
    dns_servfail,
    dns_refused,
    dns_timeout,
    dns_bad_answer,
    dns_cname_loop,
    dns_dangling_cname,
    *CHANGE_RULES,  # a DNS change still cached, a LoadBalancer that moved (rules_changes)
    # wiring
    cluster_access_failed,
    loadbalancer_pending,
    loadbalancer_removed,
    loadbalancer_no_local_endpoints,
    duplicate_loadbalancers,
    service_in_other_namespace,
    namespace_empty,
    service_missing,
    selector_matches_no_pods,
    no_ready_endpoints,
    service_selector_overlap,
    rollout_new_pods_failing,
    targetport_mismatch,
    ingress_missing_rule,
    ingress_backend_missing,
    ingress_backend_port_missing,
    external_name_unresolvable,
    ingress_class_missing,
    ingress_tls_secret_missing,
    ingress_tls_host_missing,
    ingress_annotation,
    network_policy_denies,
    only_in_cluster_traffic,
    # workloads
    image_pull_failed,
    container_config_error,
    volume_attach_failed,
    container_oom_killed,
    liveness_probe_failing,
    startup_probe_failing,
    pods_crashing,
    readiness_probe_failing,
    pod_unschedulable,
    node_not_ready,
    pods_not_ready,
    deployment_scaled_to_zero,
    rollout_stuck,
    # traffic
    dns_private_address,
    tcp_refused,
    tcp_timeout,
    tcp_unreachable,
    edge_empty_reply,
    edge_reset,
    edge_partial_body,
    edge_not_http,
    read_timeout,
    redirect_loop,
    redirect_unsafe,
    redirect_elsewhere,
    redirect_target_fails,
    headers_too_large,
    http_5xx,
    http_404,
    http_auth,
    http_4xx,
    body_mismatch,
    tls_expired,
    tls_not_yet_valid,
    tls_wrong_host,
    tls_incomplete_chain,
    tls_untrusted,
    tls_handshake,
    tls_timeout,
    # application
    dependency_unhealthy,
    app_reports_unhealthy,
    in_cluster_unhealthy,
    database_refused,
    database_timeout,
    database_auth_failed,
    database_missing,
    database_slow,
    slow_responses,
    intermittent_failures,
)
