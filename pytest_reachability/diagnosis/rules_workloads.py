"""Workload rules: why the pods behind the target do not serve, read from the status fields Kubernetes
documents.

* container ``state.waiting.reason``: ImagePullBackOff / ErrImagePull / InvalidImageName (the image),
  CreateContainerConfigError (a Secret or ConfigMap the spec references is missing), CrashLoopBackOff with
  ``lastState.terminated`` (reason and exit code: OOMKilled / 137 is memory, 1 is the app's own error);
* the pod's ``PodScheduled=False`` condition and the scheduler's message ("0/3 nodes are available: 3
  Insufficient cpu", untolerated taints, cordoned nodes);
* Node ``Ready`` condition and the taints node.kubernetes.io/not-ready and /unreachable;
* ``Ready=False`` with "Readiness probe failed" events, naming the probe from the pod spec;
* Deployment ``spec.replicas`` 0, ``Progressing=False`` (ProgressDeadlineExceeded), ``ReplicaFailure``.

A rule looks only at pods in the state its name says; pods behind the target's Service come first and are
the only ones that can explain failures of the traffic sections. A container that has run, ready, for longer
than the kubelet's crash back-off is settled: its last termination and the events of its earlier runs are
history (``kubectl get pod`` shows them as "3 (4d ago)"), and no rule blames them for this run's failures.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..k8s import (
    RESTARTS_FORGOTTEN_AFTER_S,
    batch_pod,
    container_settled,
    replaced_pods,
    restarting_now,
    running_for,
)
from ..moments import human_duration, parse_time, seconds_between
from .facts import Facts
from .theory import Theory, kubectl
from .wording import event_line, pod_line, short

IMAGE_PULL_REASONS = (
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
    "SignatureValidationFailed",
)
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError")
START_REASONS = ("RunContainerError", "StartError", "ContainerCannotRun")
WORKLOAD_SECTIONS = ("cluster", "workloads", "endpoints")
# Sections whose failures a broken backend explains (only for the target's own pods).
SERVING_SECTIONS = (
    "cluster",
    "workloads",
    "endpoints",
    "api-health",
    "api-internal",
    "tcp",
    "performance",
    "services",
    "integration",
    "results-storage",
    "database",
)
EXIT_CODES = {
    1: "the application exited with an error",
    2: "the application exited with an error (2: by shell convention a usage error, by many programs any "
    "failure)",
    126: "the command is not executable",
    127: "the command was not found in the image",
    134: "the process aborted (SIGABRT)",
    137: "the process was killed (SIGKILL: out of memory or killed by the kubelet)",
    139: "the process crashed (SIGSEGV)",
    143: "the process was terminated (SIGTERM)",
}
_OBJECT_MISSING = re.compile(r'(secret|configmap)s?\s+"?([a-z0-9][a-z0-9.-]*)"?\s+not found', re.IGNORECASE)
_KEY_MISSING = re.compile(r"couldn't find key (\S+) in (Secret|ConfigMap) ([\w./-]+)", re.IGNORECASE)
_NEW_REPLICA_SET = re.compile(r'ReplicaSet "([^"]+)"')
_QUOTA = re.compile(r"exceeded quota: ([a-z0-9][a-z0-9.-]*)")


# --- which pods, in which order -------------------------------------------------------------------------


def _candidate_pods(facts: Facts) -> list[tuple[dict[str, Any], bool]]:
    """(pod, is the target's) — the target's pods first, then the namespace's other pods."""
    target = facts.target_pods()
    names = {p.get("name") for p in target}
    service = facts.target_service()
    # A Service that selects no pod still has its Deployment's pods in mind.
    if service is not None and not target:
        for deployment in facts.deployments_for(service):
            target += [
                p for p in facts.pods() if facts.deployment_of(p) is deployment and p.get("name") not in names
            ]
            names = {p.get("name") for p in target}
    controllers = {(p.get("namespace"), p.get("name")) for p in facts.of("ingress_controller")}
    others = [
        p
        for p in facts.pods()
        if p.get("name") not in names and (p.get("namespace"), p.get("name")) not in controllers
    ]
    return [(p, True) for p in target] + [(p, False) for p in others]


def _states(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    states = list(pod.get("container_states") or [])
    if states:
        return states
    # Evidence from before per-container states were recorded: the waiting and terminated reasons alone.
    return [
        {"name": "?", "state": "waiting", "reason": reason} for reason in pod.get("waiting_reasons") or []
    ] + [{"name": "?", "last_reason": reason} for reason in pod.get("terminated_reasons") or []]


def _pick(
    facts: Facts, matches: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> list[tuple[dict, dict, bool]]:
    """(pod, the matching container state or {}, is the target's) for pods whose state matches."""
    found = []
    for pod, own in _candidate_pods(facts):
        state = matches(pod)
        if state is not None:
            found.append((pod, state, own))
    return found


def _pod_events(
    facts: Facts, pod: Mapping[str, Any], reasons: tuple[str, ...] = (), words: tuple[str, ...] = ()
) -> list[dict]:
    events = facts.events_for(f"Pod/{pod.get('name')}", pod.get("namespace"))
    return [
        e
        for e in events
        if (not reasons or e.get("reason") in reasons)
        and (not words or any(w.lower() in str(e.get("message") or "").lower() for w in words))
    ]


def _explains(facts: Facts, pods: list[dict[str, Any]], own: bool) -> list[str]:
    names = [str(p.get("name")) for p in pods]
    deployments = [str(d.get("name")) for p in pods if (d := facts.deployment_of(p))]
    found = facts.explain(WORKLOAD_SECTIONS, names + deployments)
    if own and _takes_serving_down(facts, pods):
        found += [n for n in facts.explain(SERVING_SECTIONS) if n not in found]
    return found


def _takes_serving_down(facts: Facts, pods: list[dict[str, Any]]) -> bool:
    """Whether these pods of the target can explain the serving checks' failures: no other pod of the
    target is Ready (a pod that is not Ready is taken out of the Service's endpoints, so the Ready ones get
    its traffic), one of them is Ready itself (it gets traffic), or the in-cluster health check failed."""
    names = {p.get("name") for p in pods}
    if any(p.get("ready") for p in pods) or facts.in_cluster_ok() is False:
        return True
    return not any(p.get("ready") for p in facts.target_pods() if p.get("name") not in names)


def _partial_outage(facts: Facts, pods: list[dict[str, Any]]) -> str:
    """The title's note when other pods of the target are Ready and serving ('' when none is)."""
    names = {p.get("name") for p in pods}
    serving = [p for p in facts.target_pods() if p.get("name") not in names and p.get("ready")]
    if not serving:
        return ""
    return (
        f" ({len(pods)} of {len(pods) + len(serving)} pods; "
        f"{len(serving)} other{'s' if len(serving) > 1 else ''} Ready and serving)"
    )


def _in_cluster_weight(facts: Facts, pods: list[dict[str, Any]]) -> tuple[float, list[str]]:
    """How the in-cluster health check shifts the confidence in the target's own pods, and its line."""
    inside = facts.in_cluster_ok()
    if inside is False:
        lines = [
            f"in-cluster GET {c.get('path')} on Service {c.get('service')}: "
            f"{c.get('error') or c.get('status')}"
            for c in facts.in_cluster_health()[:1]
        ]
        return 0.05, lines
    if inside is True and len(pods) == len(facts.target_pods()):
        return -0.2, []  # something still answers inside: the pods' state may be stale
    return 0.0, []


def _pod_confirm(
    facts: Facts, pod: Mapping[str, Any], state: Mapping[str, Any], previous_logs: bool
) -> list[str]:
    ns = pod.get("namespace")
    confirm = [
        kubectl(facts.context, f"get pod {pod.get('name')} -o wide", ns),
        kubectl(facts.context, f"describe pod {pod.get('name')}", ns),
    ]
    if previous_logs:
        container = f" -c {state.get('name')}" if state.get("name") not in (None, "?") else ""
        confirm.append(kubectl(facts.context, f"logs {pod.get('name')}{container} --previous --tail=50", ns))
    return confirm


def _pod_theory(
    facts: Facts,
    rule: str,
    picked: list[tuple[dict, dict, bool]],
    title: str,
    confidence: float,
    fix: list[str],
    extra_evidence: list[str] | None = None,
    previous_logs: bool = False,
    from_termination: bool = False,
) -> Theory:
    """``from_termination``: the rule reads the container's last termination (OOMKilled, a probe's kill),
    which a container settled since (ready for longer than the crash back-off) only explains its restarts."""
    pod, state, own = picked[0]
    pods = [p for p, _s, o in picked if o == own]
    evidence = [pod_line(p) for p in pods[:3]] + list(extra_evidence or [])
    settled = _settled_for(pod, state) if from_termination else ""
    if settled:
        # Running and ready for longer than the crash back-off: it explains its restarts, not today's traffic.
        title += f"; it has run, ready, for {settled} since"
        confidence -= 0.3
        own = False
    elif own:
        # A partial outage: say so, from the other pods' Ready condition.
        title += _partial_outage(facts, pods)
        shift, lines = _in_cluster_weight(facts, pods)
        confidence += shift
        evidence += lines
    elif not own:
        confidence -= 0.25  # a pod of the namespace, not one the target's Service sends traffic to
        evidence.append(f"pod {pod.get('name')} is not behind the target's Service")
    confirm = _pod_confirm(facts, pod, state, previous_logs)
    theory = Theory(
        rule, title, confidence, evidence, confirm, fix, subjects=[str(p.get("name")) for p in pods]
    )
    theory.explains = _explains(facts, pods, own)
    return theory


def _deployment_name(facts: Facts, pod: Mapping[str, Any]) -> str:
    deployment = facts.deployment_of(pod)
    if deployment:
        return str(deployment.get("name"))
    owner = str(pod.get("owner") or "").split("/")[-1]
    return owner.rsplit("-", 1)[0] if "-" in owner else "<deployment>"


# --- container states ----------------------------------------------------------------------------------


# What the kubelet's pull error says, checked in order: (words in the message, why, fix).
PULL_FAILURES = (
    (
        ("x509:", "certificate signed by unknown authority", "tls: failed to verify"),
        "the node does not trust the registry's TLS certificate (x509)",
        "Give the nodes the registry's CA (containerd: /etc/containerd/certs.d/<registry>/ca.crt, or "
        "bake it "
        "into the node image) — nodes added later need it too — then delete the pod to retry the pull",
    ),
    (
        # Registries answer the same to a missing repository and to a private one without credentials.
        ("repository does not exist or may require",),
        "the registry refuses the pull (pull access denied): the repository does not exist, or it is "
        "private and the pod has no credentials for it",
        "Check the repository name; if it is private, give the pods pull credentials (imagePullSecrets "
        "on the pod "
        "or its ServiceAccount)",
    ),
    (
        ("unauthorized", "denied", "authentication required", "forbidden"),
        "the registry refuses the pull (credentials)",
        "Give the pods pull credentials (imagePullSecrets) for the registry, or make the image readable",
    ),
    (
        ("not found", "manifest unknown", "404"),
        "the image or tag does not exist in the registry",
        "Deploy an image tag that exists (or push the missing tag)",
    ),
    (
        ("timeout", "no such host", "dial tcp", "i/o timeout", "connection refused"),
        "the registry cannot be reached from the node",
        "Restore the nodes' access to the registry (DNS, egress firewall, registry outage)",
    ),
)


def _pull_failure(reason: Any, text: str) -> tuple[str, str]:
    """(why the pull fails, the fix) from the waiting reason and the kubelet's messages (lowercase)."""
    if reason == "InvalidImageName":
        return "the image reference is not a valid name", "Correct the image reference in the Deployment"
    for words, why, fix in PULL_FAILURES:
        if any(w in text for w in words):
            return why, fix
    return (
        "the pull fails (see the message)",
        "Fix what the kubelet reports for the pull (image name, tag, registry credentials)",
    )


def _pull_waiting(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The container state waiting for an image that cannot be pulled."""
    return next(
        (s for s in _states(pod) if s.get("state") == "waiting" and s.get("reason") in IMAGE_PULL_REASONS),
        None,
    )


# The kubelet's warning when a pod's imagePullSecrets name Secrets it cannot read (kubelet.go): it then
# pulls without them, so the registry's answer (401, "pull access denied") follows from it.
_PULL_SECRETS_MISSING = re.compile(r"unable to retrieve some image pull secrets \(([^)]*)\)", re.IGNORECASE)


def _missing_pull_secrets(facts: Facts, pod: Mapping[str, Any]) -> tuple[list[str], list[dict]]:
    """(the pull Secrets the kubelet could not retrieve for the pod, those events)."""
    events = _pod_events(facts, pod, ("FailedToRetrieveImagePullSecret",))
    names: list[str] = []
    for event in events:
        match = _PULL_SECRETS_MISSING.search(str(event.get("message") or ""))
        for name in match.group(1).split(",") if match else []:
            if name.strip() and name.strip() not in names:
                names.append(name.strip())
    return names, events


# Failures whose fix is another image reference (name or tag), not credentials, trust or the network.
_REFERENCE_FAULTS = (
    "the image reference is not a valid name",
    "the image or tag does not exist in the registry",
)


def image_pull_failed(facts: Facts) -> Theory | None:
    """A container's image cannot be pulled (waiting ImagePullBackOff / ErrImagePull / InvalidImageName)."""
    picked = _pick(facts, _pull_waiting)
    if not picked:
        return None
    pod, state, _own = picked[0]
    events = _pod_events(facts, pod, ("Failed",), ("pull", "image"))
    text = " ".join([str(state.get("message") or "")] + [str(e.get("message") or "") for e in events]).lower()
    image = state.get("image") or next(iter(re.findall(r'image "([^"]+)"', text)), None)
    why, fix = _pull_failure(state.get("reason"), text)
    namespace = pod.get("namespace")
    secrets, secret_events = _missing_pull_secrets(facts, pod)
    fixes = [fix]
    if secrets and why not in _REFERENCE_FAULTS:
        listed = ", ".join(secrets)
        why = (
            f"its imagePullSecrets name {listed}, which the kubelet cannot retrieve (no such Secret in "
            f"{namespace}), so it pulls without credentials"
        )
        fixes = [
            f"Create the pull Secret {secrets[0]} in {namespace} (a docker-registry Secret for the image's "
            "registry, or a copy of the one in another namespace), or name an existing one in "
            "imagePullSecrets",
            kubectl(facts.context, f"get secret {secrets[0]}", namespace) + "  # expect it to exist",
        ]
    elif why in _REFERENCE_FAULTS:
        fixes.append(
            kubectl(
                facts.context,
                f"set image deployment/{_deployment_name(facts, pod)} {state.get('name')}=<image:tag>",
                namespace,
            )
            + "  # or fix the manifest and apply it"
        )
    title = (
        f"container {state.get('name')} of pod {pod.get('name')} cannot start: its image "
        f"{image or '(see the pod)'} cannot be pulled ({state.get('reason')}) — {why}"
    )
    lines = [event_line(e) for e in secret_events[:1] + events[:2]]
    return _pod_theory(facts, "image-pull-failed", picked, title, 0.9, fixes, lines)


def _missing_object(text: str) -> tuple[str, str] | None:
    match = _OBJECT_MISSING.search(text)
    if match:
        return ("Secret" if match.group(1).lower().startswith("secret") else "ConfigMap", match.group(2))
    match = _KEY_MISSING.search(text)
    if match:
        return (
            match.group(2).title().replace("Configmap", "ConfigMap"),
            f"{match.group(3)} (key {match.group(1)})",
        )
    return None


def container_config_error(facts: Facts) -> Theory | None:
    """A container cannot be created from its spec: a referenced Secret/ConfigMap (or key) or volume is
    missing."""

    def matches(pod: dict[str, Any]) -> dict[str, Any] | None:
        for state in _states(pod):
            if state.get("state") == "waiting" and state.get("reason") in CONFIG_REASONS:
                return state
            if (
                state.get("state") == "waiting"
                and state.get("reason") == "ContainerCreating"
                and any(
                    _missing_object(str(e.get("message") or ""))
                    for e in _pod_events(facts, pod, ("FailedMount",))
                )
            ):
                return state
        return None

    picked = _pick(facts, matches)
    if not picked:
        return None
    pod, state, _own = picked[0]
    events = _pod_events(facts, pod, ("Failed", "FailedMount"))
    text = " ".join([str(state.get("message") or "")] + [str(e.get("message") or "") for e in events])
    missing = _missing_object(text)
    ns = pod.get("namespace")
    if missing:
        kind, name = missing
        what = f"the {kind} {name} it references does not exist in namespace {ns}"
        fix = [
            f"Create the {kind} {name.split(' ')[0]} in {ns} (or correct the reference in the Deployment)",
            kubectl(facts.context, f"get {kind.lower()} {name.split(' ')[0]}", ns) + "  # expect it to exist",
        ]
    else:
        what = f"the kubelet cannot create it ({short(state.get('message') or text, 120)})"
        fix = ["Fix what the pod's events report (a missing Secret, ConfigMap, key or volume)"]
    reason = state.get("reason") if state.get("reason") != "ContainerCreating" else "FailedMount"
    title = f"container {state.get('name')} of pod {pod.get('name')} cannot be created ({reason}): {what}"
    return _pod_theory(
        facts, "container-config-error", picked, title, 0.9, fix, [event_line(e) for e in events[:2]]
    )


VOLUME_EVENT_REASONS = ("FailedAttachVolume", "FailedMount")
_VOLUME_NAME = re.compile(r'(?:volume|Volume)\s+"([^"]+)"')


def _volume_fault(message: str) -> str:
    """What the attach/detach controller's or the kubelet's message says went wrong with the volume."""
    text = message.lower()
    if "multi-attach" in text:
        return (
            "it is still attached to another node (a ReadWriteOnce volume attaches to one node at a time): "
            "the pod waits until the old node releases it"
        )
    if "attachvolume.attach failed" in text or "failedattachvolume" in text:
        return "the cloud provider does not attach it to the node (see the message)"
    if "timed out waiting for the condition" in text or "unable to attach or mount" in text:
        return "the kubelet timed out waiting for it to be attached and mounted"
    return "the kubelet cannot mount it (see the message)"


def volume_attach_failed(facts: Facts) -> Theory | None:
    """A pod waits in ContainerCreating because a volume cannot be attached to its node or mounted
    (FailedAttachVolume / FailedMount events that name no missing Secret or ConfigMap)."""

    def matches(pod: dict[str, Any]) -> dict[str, Any] | None:
        events = [
            e
            for e in _pod_events(facts, pod, VOLUME_EVENT_REASONS)
            if not _missing_object(str(e.get("message") or ""))
        ]
        if not events:
            return None
        waiting = [
            st
            for st in _states(pod)
            if st.get("state") == "waiting" and st.get("reason") == "ContainerCreating"
        ]
        pending = pod.get("phase") == "Pending" and not pod.get("ready")
        return (
            (waiting or [{"name": "?", "state": "waiting", "reason": "ContainerCreating"}])[0]
            if waiting or pending
            else None
        )

    picked = _pick(facts, matches)
    if not picked:
        return None
    pod, _state, _own = picked[0]
    events = _pod_events(facts, pod, VOLUME_EVENT_REASONS)
    # The attach failure is the cause; the kubelet's mount timeout follows from it.
    events.sort(key=lambda e: e.get("reason") != "FailedAttachVolume")
    message = str(events[0].get("message") or "")
    volume = _VOLUME_NAME.search(message)
    what = f"volume {volume.group(1)}" if volume else "a volume"
    title = (
        f"pod {pod.get('name')} waits in ContainerCreating: {what} cannot be attached "
        f"({events[0].get('reason')}) — {_volume_fault(message)}"
    )
    fix = [
        "Find where the volume is attached and release it there: the old pod must be gone and its node must "
        "detach "
        "the volume (a drained or lost node may need the VolumeAttachment deleted once the node is really "
        "gone)",
        "For a single-writer volume, use the Recreate strategy (or a StatefulSet) so the old pod leaves "
        "before the new "
        "one starts",
    ]
    # VolumeAttachments are cluster-wide storage objects a namespace reader may not list: a step, not a
    # confirm line.
    fix.insert(
        1,
        kubectl(facts.context, "get volumeattachment", "")
        + (f"  # the row for {volume.group(1)} names the node holding it" if volume else ""),
    )
    return _pod_theory(
        facts, "volume-attach-failed", picked, title, 0.9, fix, [event_line(e) for e in events[:2]]
    )


def _oom(state: Mapping[str, Any]) -> bool:
    return state.get("last_reason") == "OOMKilled" or (
        state.get("state") == "terminated" and state.get("reason") == "OOMKilled"
    )


def _past(pod: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    """The container's last termination is history: it has run, ready, for an hour since."""
    return container_settled(state, pod.get("read_at"), RESTARTS_FORGOTTEN_AFTER_S)


def _settled_for(pod: Mapping[str, Any], state: Mapping[str, Any]) -> str:
    """How long a settled container has run, ready ("38m"); '' when it is not settled."""
    if not container_settled(state, pod.get("read_at")):
        return ""
    return human_duration(running_for(state, pod.get("read_at")) or 0.0)


def _current_events(pod: Mapping[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events that can speak of the pod's containers: when every container's past is history, only those
    last seen after the earliest of them started (an event of unknown time is kept)."""
    states = [s for s in _states(pod) if not s.get("init")]
    if not states or not all(_past(pod, s) for s in states):
        return events
    since = min(t for s in states if (t := parse_time(s.get("started_at"))) is not None)
    return [e for e in events if (seen := parse_time(e.get("last_seen"))) is None or seen > since]


def container_oom_killed(facts: Facts) -> Theory | None:
    """The container is killed for exceeding its memory limit (terminated reason OOMKilled, exit code 137)."""
    picked = _pick(facts, lambda pod: next((s for s in _states(pod) if _oom(s) and not _past(pod, s)), None))
    if not picked:
        return None
    pod, state, _own = picked[0]
    title = (
        f"container {state.get('name')} of pod {pod.get('name')} is killed for exceeding its memory limit "
        f"(OOMKilled, exit code {state.get('last_exit_code') or state.get('exit_code') or 137}, "
        f"{pod.get('restarts', 0)} restarts): a memory problem, not a code error"
    )
    deployment = _deployment_name(facts, pod)
    fix = [
        "Raise the container's memory limit (resources.limits.memory) or reduce the app's memory use (leak, "
        "cache size, worker count)",
        kubectl(
            facts.context,
            f"set resources deployment/{deployment} -c {state.get('name')} --limits=memory=<more>",
            pod.get("namespace"),
        ),
    ]
    return _pod_theory(
        facts, "container-oom-killed", picked, title, 0.9, fix, previous_logs=True, from_termination=True
    )


def _liveness_events(facts: Facts, pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The kubelet's events of a probe that restarts the container: liveness, or startup (``Startup probe
    failed``, ``Container X failed startup probe, will be restarted``)."""
    return _current_events(
        pod, _pod_events(facts, pod, ("Unhealthy", "Killing"), ("liveness probe", "startup probe"))
    )


def _killing_probe(events: list[dict[str, Any]]) -> str:
    """Which probe the latest of these events names: ``startup`` or ``liveness``."""
    latest = str(events[-1].get("message") or "").lower() if events else ""
    return "startup" if "startup probe" in latest else "liveness"


def _probe_budget(probe: Mapping[str, Any] | None) -> str:
    """ "3 x 10s = 30s": how long the kubelet waits before it restarts the container (defaults 3 and 10 s)."""
    if not probe:
        return ""
    threshold, period = probe.get("failure_threshold") or 3, probe.get("period_seconds") or 10
    delay = probe.get("initial_delay_seconds") or 0
    total = delay + threshold * period
    return f"{f'{delay}s + ' if delay else ''}{threshold} x {period}s = {total}s"


def liveness_probe_failing(facts: Facts) -> Theory | None:
    """The kubelet restarts the container because its liveness probe fails."""
    return _probe_kill_theory(facts, "liveness")


def startup_probe_failing(facts: Facts) -> Theory | None:
    """The kubelet restarts the container because its startup probe does not pass within its budget
    (initialDelaySeconds + failureThreshold x periodSeconds): an app slower to start than the probe allows."""
    return _probe_kill_theory(facts, "startup")


def _probe_kill_theory(facts: Facts, kind: str) -> Theory | None:
    """The kubelet kills the container for the probe ``kind`` (the probe its latest such event names)."""

    def matches(pod: dict[str, Any]) -> dict[str, Any] | None:
        events = _liveness_events(facts, pod)
        if not events or not pod.get("restarts") or _killing_probe(events) != kind:
            return None
        # The container the probe belongs to (an app container: init containers have no such probes).
        probed = {p.get("container") for p in pod.get("probes") or [] if p.get("probe") == kind}
        states = [s for s in _states(pod) if not s.get("init") and not _oom(s)]
        return next((s for s in states if s.get("name") in probed), None) or next(iter(states), None)

    picked = _pick(facts, matches)
    if not picked:
        return None
    pod, state, _own = picked[0]
    events = _liveness_events(facts, pod)
    probe = next((p for p in pod.get("probes") or [] if p.get("probe") == kind), None)
    described = _describe_probe(probe)
    failure = next(
        (short(e.get("message"), 140) for e in events if "failed" in str(e.get("message")).lower()), ""
    )
    name = state.get("name") if state.get("name") not in (None, "?") else probe and probe.get("container")
    title = (
        f"the {kind} probe{described} of container {name} fails"
        f"{' (' + failure + ')' if failure else ''}, so the kubelet kills and restarts it "
        f"({pod.get('restarts')} restarts)"
    )
    if kind == "startup":
        budget = _probe_budget(probe)
        title += (
            f": the app does not answer it within the start-up time the probe allows"
            f"{' (' + budget + ')' if budget else ''}, so it is killed before it has started"
        )
        fix = [
            "Give the app the start-up time it needs: raise the startup probe's failureThreshold (or "
            "periodSeconds) so failureThreshold x periodSeconds covers it (the previous container's logs "
            "show how far start-up got) — or make the app start faster",
        ]
        rule = "startup-probe-failing"
    else:
        fix = [
            "Make the probe match the app (path, port, timeoutSeconds/initialDelaySeconds long enough for "
            "start-up), "
            "or fix why the app stops answering it"
        ]
        rule = "liveness-probe-failing"
    return _pod_theory(
        facts,
        rule,
        picked,
        title,
        0.85,
        fix,
        [event_line(e) for e in events[:2]],
        previous_logs=True,
        from_termination=True,
    )


def _crash(state: Mapping[str, Any]) -> bool:
    if _oom(state):
        return False
    if state.get("state") == "waiting" and state.get("reason") in ("CrashLoopBackOff", *START_REASONS):
        return True
    return (
        state.get("state") == "terminated"
        and state.get("reason") in ("Error", *START_REASONS)
        and bool(state.get("restarts"))
    )


def _flapping(pod: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    """Running again between crashes: restarted more than once, the last minutes ago, with an exit code that
    is an error (OOMKilled is container-oom-killed's)."""
    return (
        state.get("state") == "running"
        and restarting_now(state, pod.get("read_at"))
        and not _oom(state)
        and state.get("last_exit_code") not in (None, 0)
    )


def _crash_title(pod: Mapping[str, Any], state: Mapping[str, Any]) -> str:
    """What keeps crashing, how often, its last exit code, and what that code or reason means."""
    code = state.get("last_exit_code") if state.get("last_exit_code") is not None else state.get("exit_code")
    meaning = EXIT_CODES.get(code) if isinstance(code, int) else None
    reason = state.get("reason") or ("running again" if state.get("state") == "running" else "restarting")
    exit_text = (
        f", last exit code {code}" + (f" {state.get('last_reason')}" if state.get("last_reason") else "")
        if code is not None
        else ""
    )
    kind = "init container" if state.get("init") else "container"
    title = (
        f"{kind} {state.get('name')} of pod {pod.get('name')} keeps crashing ({reason}, "
        f"{pod.get('restarts', 0)} restarts{exit_text})"
    )
    if state.get("init"):
        return title + (
            f": {meaning or 'it exits with an error'} — the pod's app containers never start until it "
            "succeeds"
        )
    if reason in START_REASONS:
        return title + f": it cannot be started ({short(state.get('message'), 120)})"
    return title + (f": {meaning}" if meaning else "")


def _log_errors(facts: Facts, pod: Mapping[str, Any]) -> list[str]:
    """The last error line of each log recorded for the pod."""
    found = []
    for logs in facts.of("pod_logs"):
        if logs.get("pod") != pod.get("name"):
            continue
        errors = [
            line
            for line in logs.get("lines") or []
            if re.search(r"error|exception|fatal|traceback|panic", line, re.IGNORECASE)
        ]
        if errors:
            found.append(f"last log error: {errors[-1].strip()}")
    return found


def pods_crashing(facts: Facts) -> Theory | None:
    """A container keeps exiting (CrashLoopBackOff, RunContainerError): the application fails at start or
    soon after."""
    picked = _pick(facts, lambda pod: next((s for s in _states(pod) if _crash(s) or _flapping(pod, s)), None))
    if not picked:
        return None
    pod, state, _own = picked[0]
    if _liveness_events(facts, pod):
        return None  # the kubelet kills it: liveness-probe-failing names that
    evidence = _log_errors(facts, pod)
    evidence += [event_line(e) for e in _pod_events(facts, pod, ("BackOff", "Failed"))[:1]]
    deployment = _deployment_name(facts, pod)
    title = _crash_title(pod, state)
    namespace = pod.get("namespace")
    if any("exec format error" in line.lower() for line in evidence):
        # execve(2) ENOEXEC: the kernel cannot run the file: another CPU architecture's binary, or a script
        # without its #! line. The same image crashes the same way after any restart.
        title += (
            ": the kernel cannot execute its command (exec format error) — a binary built for another CPU "
            "architecture than the node's, or a script without a #! line"
        )
        fix = [
            "Build and push the image for the nodes' architecture (docker buildx build --platform "
            "linux/amd64,linux/arm64 for both), or give the script its #! line; meanwhile roll back:",
            kubectl(facts.context, f"rollout undo deployment/{deployment}", namespace),
        ]
    else:
        fix = [
            "Fix the start-up failure the previous container's logs show (configuration, a dependency it "
            "cannot reach, the image's command), then",
            kubectl(facts.context, f"rollout restart deployment/{deployment}", namespace),
        ]
    return _pod_theory(facts, "pods-crashing", picked, title, 0.85, fix, evidence, previous_logs=True)


def _describe_probe(probe: Mapping[str, Any] | None) -> str:
    if not probe:
        return ""
    if probe.get("handler") == "httpGet":
        return f" (GET :{probe.get('port')}{probe.get('path') or '/'})"
    if probe.get("handler") in ("tcpSocket", "grpc"):
        return f" ({probe.get('handler')} :{probe.get('port')})"
    return f" ({probe.get('handler')})" if probe.get("handler") else ""


def _not_ready_running(facts: Facts, pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The running, not Ready container of a Running pod whose readiness probe is declared or reported
    failing; None for other pods (a pod on a bad node is the node's, a waiting container another rule's)."""
    if pod.get("phase") != "Running" or pod.get("ready"):
        return None
    if _on_bad_node(facts, pod):
        return None  # the node, not the probe
    states = _states(pod)
    running = [s for s in states if s.get("state") == "running" and not s.get("ready") and not s.get("init")]
    if not running or any(s.get("state") == "waiting" for s in states):
        return None
    events = _pod_events(facts, pod, ("Unhealthy",), ("readiness probe",))
    declared = any(p.get("probe") == "readiness" for p in pod.get("probes") or [])
    return running[0] if events or declared else None


def _readiness_probe(pod: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The container's readiness probe, else the pod's first one."""
    probes = [p for p in pod.get("probes") or [] if p.get("probe") == "readiness"]
    return next((p for p in probes if p.get("container") == state.get("name")), None) or next(
        iter(probes), None
    )


def _unserved_probe_port(probe: Mapping[str, Any] | None, pod: Mapping[str, Any]) -> str | None:
    """The container's ports (listed) when the probe's port is none of them, else None."""
    ports = {cp.get("containerPort") for cp in pod.get("container_ports") or []}
    names = {cp.get("name") for cp in pod.get("container_ports") or []}
    if probe and probe.get("port") is not None and ports and probe.get("port") not in ports | names:
        return ", ".join(str(p) for p in sorted(ports, key=str))
    return None


def readiness_probe_failing(facts: Facts) -> Theory | None:
    """Running containers that are not Ready: the readiness probe fails, so the Service sends them nothing."""
    picked = _pick(facts, lambda pod: _not_ready_running(facts, pod))
    if not picked:
        return None
    pod, state, _own = picked[0]
    events = _pod_events(facts, pod, ("Unhealthy",), ("readiness probe",))
    probe = _readiness_probe(pod, state)
    failure = next((short(e.get("message"), 160) for e in events), "")
    title = f"the readiness probe{_describe_probe(probe)} of container {state.get('name')} fails"
    title += f" ({failure})" if failure else " (no event says why)"
    title += ": the pod runs but is not Ready, so its Service sends it no traffic"
    confidence = 0.85 if events else 0.6
    extra = [event_line(e) for e in events[:2]]
    fix = [
        "Make the app answer its readiness check (see the event's status or error), or correct the probe's "
        "path "
        "and port to what the app serves"
    ]
    ports = _unserved_probe_port(probe, pod)
    if ports is not None:
        extra.append(f"the probe's port {probe.get('port')} is none of the container's ports ({ports})")
        fix.insert(0, f"Point the readiness probe at the port the container serves ({ports})")
    if not events:
        extra.append(
            "no 'Readiness probe failed' event was recorded (events expire after an hour, or may not be "
            "readable)"
        )
    return _pod_theory(facts, "readiness-probe-failing", picked, title, confidence, fix, extra)


# --- scheduling and nodes ------------------------------------------------------------------------------

SCHEDULER_BLOCKERS = (
    # Taints the node lifecycle controller sets from node conditions: they go away with the condition, not
    # by hand.
    (
        re.compile(
            r"untolerated taint \{?node\.kubernetes\.io/(disk-pressure|memory-pressure|pid-pressure)", re.I
        ),
        "the nodes report {0} (the kubelet's node.kubernetes.io/{0} taint): they evict pods and take no new "
        "ones",
        "Relieve the pressure on the nodes (disk: images, container logs, emptyDir; memory: limits, noisy "
        "pods) or add "
        "nodes; the taint goes when the node condition clears — removing it by hand does not help",
    ),
    (
        re.compile(r"Insufficient (cpu|memory|ephemeral-storage|[\w./-]+)", re.I),
        "not enough free {0} for the pod's requests",
        "Lower the pod's resource requests, free capacity, or add nodes (cluster autoscaler / node pool "
        "size)",
    ),
    (
        re.compile(r"untolerated taint \{?([\w./-]+)", re.I),
        "the nodes carry the taint {0}, which the pod does not tolerate",
        "Remove the taint from a node if it should not be there, or add a toleration if the pod belongs "
        "there",
    ),
    (
        re.compile(r"had taints? that the pod didn't tolerate|had taint \{?([\w./-]+)", re.I),
        "the nodes carry taints the pod does not tolerate",
        "Remove the taint from a node if it should not be there, or add a toleration if the pod belongs "
        "there",
    ),
    (
        re.compile(r"node\(s\) were unschedulable", re.I),
        "the nodes are cordoned (unschedulable)",
        "Uncordon a node (kubectl uncordon NODE) once its maintenance is over, or add nodes",
    ),
    (
        re.compile(r"didn't match Pod's node affinity/selector|node affinity|node selector", re.I),
        "no node matches the pod's nodeSelector / node affinity",
        "Correct the pod's nodeSelector/affinity, or label a node to match",
    ),
    (
        re.compile(
            r"unbound immediate PersistentVolumeClaims|persistentvolumeclaim \"?[\w.-]+\"? not found", re.I
        ),
        "its PersistentVolumeClaim is not bound",
        "Find why the claim is Pending (kubectl get pvc; kubectl describe pvc NAME: a StorageClass that does "
        "not exist, a "
        "provisioner that fails, no matching PersistentVolume) and fix that, or point the pod at a bound "
        "claim",
    ),
    (
        re.compile(r"Too many pods", re.I),
        "the nodes are at their pod limit",
        "Add nodes or raise the nodes' pod limit",
    ),
    (
        re.compile(r"didn't have free ports", re.I),
        "the pod's hostPort is taken on every node",
        "Drop the hostPort or add nodes",
    ),
)


def _scheduler_blocker(message: str) -> tuple[str, str]:
    """(why no node takes the pod, the fix). The scheduler counts each node under the first filter it
    failed ("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were unschedulable."): with several
    reasons, each is named with its share of the nodes, the most common first, and so are their fixes."""
    reasons = _node_reasons(message)
    blockers: dict[tuple[str, str], int] = {}
    for count, reason in reasons:
        blocker = _one_blocker(reason)
        if blocker is not None:
            blockers[blocker] = blockers.get(blocker, 0) + count
    if len(blockers) < 2:
        return _one_blocker(message) or ("the scheduler finds no node for it", FALLBACK_SCHEDULER_FIX)
    total = _node_total(message)
    ranked = sorted(blockers.items(), key=lambda item: -item[1])
    why = "; ".join(
        f"{blocker[0]} ({count}{f' of {total}' if total else ''} nodes)" for blocker, count in ranked
    )
    fixes = list(dict.fromkeys(blocker[1] for blocker, _count in ranked))
    return why, " ".join(
        [fixes[0].rstrip(".") + ".", *(f"Then, for the other nodes: {f}" for f in fixes[1:])]
    )


FALLBACK_SCHEDULER_FIX = "Fix what the scheduler's message names"
_AVAILABLE = re.compile(r"(\d+)/(\d+) nodes are available:(.*?)(?:\.\s|\.$|$)", re.S)


def _node_total(message: str) -> int | None:
    match = _AVAILABLE.search(message)
    return int(match.group(2)) if match else None


def _node_reasons(message: str) -> list[tuple[int, str]]:
    """``(count, reason)`` of the scheduler's per-node breakdown (the part before "preemption:")."""
    match = _AVAILABLE.search(message)
    if not match:
        return []
    parts = re.split(r",\s+(?=\d+\s)", match.group(3).strip())
    found = []
    for part in parts:
        head = re.match(r"(\d+)\s+(.*)", part.strip())
        if head:
            found.append((int(head.group(1)), head.group(2)))
    return found


def _one_blocker(text: str) -> tuple[str, str] | None:
    for pattern, why, fix in SCHEDULER_BLOCKERS:
        match = pattern.search(text)
        if match:
            argument = next((g for g in match.groups() if g), "") if match.groups() else ""
            return why.format(argument), fix
    return None


def pod_unschedulable(facts: Facts) -> Theory | None:
    """A pod is Pending because no node can take it (PodScheduled=False, reason Unschedulable)."""
    picked = _pick(
        facts, lambda pod: {} if pod.get("phase") == "Pending" and pod.get("unschedulable_message") else None
    )
    if not picked:
        return None
    pod, _state, _own = picked[0]
    message = str(pod.get("unschedulable_message"))
    why, fix = _scheduler_blocker(message)
    title = f"pod {pod.get('name')} is Pending and cannot be scheduled ({short(message, 140)}): {why}"
    extra = []
    cordoned = [n.get("name") for n in facts.nodes() if n.get("unschedulable")]
    if cordoned:
        extra.append(f"cordoned nodes: {', '.join(cordoned)}")
    for node in facts.nodes():
        if node.get("taints"):
            extra.append(f"node {node.get('name')} taints: {', '.join(map(str, node['taints']))}")
    extra += [event_line(e) for e in _pod_events(facts, pod, ("FailedScheduling",))[:1]]
    theory = _pod_theory(facts, "pod-unschedulable", picked, title, 0.9, [fix], extra)
    theory.confirm.append(kubectl(facts.context, "get nodes -o wide", ""))
    theory.confirm.append(
        kubectl(facts.context, "describe nodes", "") + " | grep -A5 -E 'Taints|Allocated resources'"
    )
    return theory


NODE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def taint_key(taint: Any) -> str:
    """The key of a taint as the snapshot writes it (``key[=value]:effect``)."""
    return str(taint).rsplit(":", 1)[0].split("=", 1)[0]


def _bad_nodes(facts: Facts) -> dict[str, str]:
    """Node name -> why it cannot run pods (NotReady / Unknown / a not-ready or unreachable taint)."""
    bad = {}
    for node in facts.nodes():
        ready = next((c for c in node.get("conditions") or [] if c.get("type") == "Ready"), None)
        # One key per line: the node controller sets the same key as NoSchedule and NoExecute.
        taints = list(dict.fromkeys(k for k in map(taint_key, node.get("taints") or []) if k in NODE_TAINTS))
        if not node.get("ready") or taints:
            status = ready.get("status") if ready else "missing"
            why = (
                "NotReady"
                if status == "False"
                else ("unreachable (Ready Unknown)" if status == "Unknown" else "not Ready")
            )
            if ready and ready.get("message"):
                why += f": {short(ready['message'], 100)}"
            if taints:
                why += f" (taint {', '.join(taints)})"
            bad[str(node.get("name"))] = why
    return bad


def _on_bad_node(facts: Facts, pod: Mapping[str, Any]) -> bool:
    return bool(pod.get("node")) and pod.get("node") in _bad_nodes(facts)


def _node_title(facts: Facts, node: str, why: str, pods: list[dict[str, Any]]) -> str:
    title = f"node {node} is {why}"
    if pods:
        names = ", ".join(str(p.get("name")) for p in pods[:3])
        return title + f": pod{'s' if len(pods) > 1 else ''} {names} on it cannot serve"
    if facts.pods():
        namespaces = ", ".join(sorted({str(p.get("namespace")) for p in facts.pods()}))
        return (
            title
            + f"; it runs no pod of namespace {namespaces}, so it does not explain the target's failures"
        )
    return title


def _node_explains(facts: Facts, bad: dict[str, str], pods: list[dict[str, Any]], own: bool) -> list[str]:
    """The cluster checks naming the bad nodes, the workload checks naming its pods, and when they are the
    target's, every serving check."""
    found = facts.explain(("cluster",), list(bad))
    if pods:  # (no names would mean every workload failure)
        names = [str(p.get("name")) for p in pods]
        found += [n for n in facts.explain(WORKLOAD_SECTIONS, names) if n not in found]
    if own and _takes_serving_down(facts, pods):
        found += [n for n in facts.explain(SERVING_SECTIONS) if n not in found]
    return found


def _no_room(facts: Facts, bad: dict[str, str]) -> dict[str, Any] | None:
    """A pod the scheduler cannot place for lack of resources on the other nodes: draining a bad node moves
    its pods only where there is room, and there is none."""
    return next(
        (
            p
            for p in facts.pods()
            if "Insufficient" in str(p.get("unschedulable_message") or "") and p.get("node") not in bad
        ),
        None,
    )


def _drain_line(facts: Facts, node: str, stuck: Mapping[str, Any] | None) -> str:
    line = kubectl(facts.context, f"drain {node} --ignore-daemonsets --delete-emptydir-data", "")
    if stuck is None:
        return line + "  # moves its pods to healthy nodes"
    return line + (
        f"  # only once the other nodes have room: pod {stuck.get('name')} is already unschedulable "
        f"({short(stuck.get('unschedulable_message'), 120)})"
    )


def node_not_ready(facts: Facts) -> Theory | None:
    """A node is NotReady or unreachable; the pods on it stop serving (and are evicted after the
    toleration)."""
    bad = _bad_nodes(facts)
    if not bad:
        return None
    on_bad = [(p, own) for p, own in _candidate_pods(facts) if p.get("node") in bad]
    node = next((p.get("node") for p, own in on_bad if own), None) or next(iter(bad))
    pods = [p for p, own in on_bad if p.get("node") == node]
    own = any(o for p, o in on_bad if p.get("node") == node)
    evidence = [f"node {n}: {why}" for n, why in bad.items()] + [pod_line(p) for p in pods[:3]]
    confidence = 0.85 if own else (0.6 if pods else 0.45)
    confirm = [
        kubectl(facts.context, f"describe node {node}", ""),
        kubectl(facts.context, "get nodes -o wide", ""),
    ]
    stuck = _no_room(facts, bad)
    fix = [
        f"Bring node {node} back (kubelet, container runtime, network, disk/memory pressure) or replace it",
        _drain_line(facts, node, stuck),
    ]
    if stuck:
        evidence.append(pod_line(stuck))
    title = _node_title(facts, node, bad[node], pods)
    theory = Theory("node-not-ready", title, confidence, evidence, confirm, fix, subjects=[node])
    theory.explains = _node_explains(facts, bad, pods, own)
    return theory


def _named_elsewhere(facts: Facts, pod: Mapping[str, Any]) -> bool:
    """Whether a more specific rule names this pod's state (so the fallback for pods leaves it alone)."""
    states = _states(pod)
    waiting = {s.get("reason") for s in states if s.get("state") == "waiting"}
    if waiting & {*IMAGE_PULL_REASONS, *CONFIG_REASONS, *START_REASONS, "CrashLoopBackOff"}:
        return True
    if any(_oom(s) for s in states) or pod.get("unschedulable_message") or _on_bad_node(facts, pod):
        return True
    if "ContainerCreating" in waiting and _pod_events(facts, pod, ("FailedMount",)):
        return True
    # Init containers have no readiness: one still running is pods-not-ready's (an init container that
    # never completes), not a readiness probe's.
    running = [s for s in states if s.get("state") == "running" and not s.get("ready") and not s.get("init")]
    return bool(running) and any(p.get("probe") == "readiness" for p in pod.get("probes") or [])


def pods_not_ready(facts: Facts) -> Theory | None:
    """Pods that are neither Running and Ready nor in a state another rule names (the fallback for pods)."""

    replaced = replaced_pods((p.get("name"), p.get("phase"), p.get("owner")) for p in facts.pods())

    def matches(pod: dict[str, Any]) -> dict[str, Any] | None:
        if pod.get("phase") == "Succeeded" or (pod.get("phase") == "Running" and pod.get("ready")):
            return None
        if pod.get("name") in replaced or batch_pod(pod.get("owner")):
            return None  # ended, and its controller runs another in its place; or a Job's
        if _named_elsewhere(facts, pod):
            return None
        return next(iter(_states(pod)), {})

    picked = _pick(facts, matches)
    if not picked:
        return None
    pod, state, _own = picked[0]
    gates = _gates_not_ready(pod)
    if gates:
        return _readiness_gates_theory(facts, picked, gates)
    blocking = _init_still_running(pod)
    if blocking is not None:
        return _init_blocking_theory(facts, picked, blocking)
    sandbox = _sandbox_failure(facts, picked)
    if sandbox is not None:
        return sandbox
    phase = pod.get("phase") or "unknown phase"
    # A pod that ended says why itself (Evicted); its containers' state then only says they were stopped.
    reason = (
        (pod.get("reason") if phase == "Failed" else None) or state.get("reason") or pod.get("reason") or ""
    )
    title = f"pod {pod.get('name')} is {phase}{' (' + reason + ')' if reason else ''} and not Ready"
    if pod.get("message"):
        title += f": {short(pod.get('message'), 120)}"
    fix = ["Read the pod's events and conditions (describe) for why it does not become Ready"]
    extra = [event_line(e) for e in _pod_events(facts, pod)[:2]]
    return _pod_theory(facts, "pods-not-ready", picked, title, 0.55, fix, extra)


_CNI_PLUGIN = re.compile(r'plugin type="([^"]+)"')
# What network plugins say when they have no address to give (aws-cni, Cilium, Calico IPAM, Azure CNI, the
# host-local IPAM of kubenet/flannel).
_NO_ADDRESS = re.compile(
    r"failed to assign an IP address|no available addresses|range is full|no IP addresses available|"
    r"failed to allocate (?:for range|address)|exhaust",  # exhausted, exhaustion (IPAM)
    re.IGNORECASE,
)


def _sandbox_failure(facts: Facts, picked: list[tuple[dict, dict, bool]]) -> Theory | None:
    """Pods waiting in ContainerCreating because the kubelet cannot create their sandbox
    (FailedCreatePodSandBox): the network plugin, not the application, is what fails."""
    pod = picked[0][0]
    events = _pod_events(facts, pod, ("FailedCreatePodSandBox",))
    if not events:
        return None
    message = str(events[0].get("message") or "")
    plugin = next(iter(_CNI_PLUGIN.findall(message)), None)
    stuck = [p for p, _s, _o in picked if _pod_events(facts, p, ("FailedCreatePodSandBox",))]
    names = ", ".join(str(p.get("name")) for p in stuck[:2]) + (
        f" and {len(stuck) - 2} more" if len(stuck) > 2 else ""
    )
    who = f"the network plugin {plugin}" if plugin else "the container runtime"
    if plugin and _NO_ADDRESS.search(message):
        why = f"{who} has no IP address to give them (its subnet or IP pool is exhausted)"
        fix = (
            f"Give {plugin} addresses: free or add IPs in its pool (aws-cni: the subnets' free addresses and "
            "the nodes' ENI/IP limits, prefix delegation; Calico/Cilium: the IP pool or CIDR), or move the "
            "pods to nodes that have some; then the kubelet retries by itself"
        )
    else:
        # The plugin's own words follow "failed (add):"; the runtime's wrapping before them says nothing.
        detail = message.split("failed (add):", 1)[-1].strip()
        why = f"{who} fails to set it up ({short(detail, 140)})"
        fix = f"Repair {who} on the node (its pods in kube-system, their logs); the kubelet retries by itself"
    title = (
        f"pod{'s' if len(stuck) > 1 else ''} {names} cannot start: the kubelet cannot create "
        f"{'their' if len(stuck) > 1 else 'its'} sandbox (FailedCreatePodSandBox) — {why}"
    )
    theory = _pod_theory(facts, "pods-not-ready", picked, title, 0.85, [fix], [event_line(events[0])])
    theory.confirm.append(
        kubectl(facts.context, "get pods -o wide", "kube-system")
        + f"  # {plugin or 'the network plugin'}'s pods"
    )
    return theory


def _init_still_running(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The init container still running in a pod not yet initialized (its Initialized condition False): the
    app containers wait for it. (A sidecar — an init container with restartPolicy Always — runs on once the
    pod is initialized.)"""
    initialized = next((c for c in pod.get("conditions") or [] if c.get("type") == "Initialized"), None)
    if initialized is not None and initialized.get("status") == "True":
        return None
    return next((s for s in _states(pod) if s.get("init") and s.get("state") == "running"), None)


def _init_blocking_theory(
    facts: Facts, picked: list[tuple[dict, dict, bool]], state: Mapping[str, Any]
) -> Theory:
    pod = picked[0][0]
    inits = [s for s in _states(pod) if s.get("init")]
    done = sum(1 for s in inits if s.get("state") == "terminated" and s.get("exit_code") == 0)
    running = seconds_between(state.get("started_at"), pod.get("read_at"))
    since = f" has run for {human_duration(running)}" if running is not None else " runs"
    title = (
        f"init container {state.get('name')} of pod {pod.get('name')}{since} without completing "
        f"(Init:{done}/{len(inits)}): the pod's app containers start only after every init container exits 0 "
        "— it waits for something that is not there, or hangs"
    )
    ns = pod.get("namespace")
    fix = [
        "Read what it waits for in its logs and provide it (a Service name, a database, a migration), or fix "
        "the init container's command; the pod goes on by itself once it exits 0"
    ]
    theory = _pod_theory(facts, "pods-not-ready", picked, title, 0.7, fix)
    theory.confirm.append(
        kubectl(facts.context, f"logs {pod.get('name')} -c {state.get('name')} --tail=20", ns)
    )
    return theory


# The conditions the kubelet and the scheduler set; any other is a readiness gate's (spec.readinessGates).
_POD_CONDITIONS = {
    "PodScheduled",
    "Initialized",
    "ContainersReady",
    "Ready",
    "PodReadyToStartContainers",
    "PodHasNetwork",
    "DisruptionTarget",
}


def _gates_not_ready(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The readiness gates keeping a pod out of Ready, when the kubelet says so (Ready False, reason
    ReadinessGatesNotReady: every container is ready, a condition named in spec.readinessGates is not
    True)."""
    conditions = list(pod.get("conditions") or [])
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") == "True" or ready.get("reason") != "ReadinessGatesNotReady":
        return []
    return [c for c in conditions if c.get("type") not in _POD_CONDITIONS and c.get("status") != "True"]


def _gate_said(gate: Mapping[str, Any]) -> str:
    """What the gate's controller says: ``reason: message``."""
    return ": ".join(str(part) for part in (gate.get("reason"), gate.get("message")) if part)


def _readiness_gates_theory(
    facts: Facts, picked: list[tuple[dict, dict, bool]], gates: list[dict[str, Any]]
) -> Theory:
    pod = picked[0][0]
    gate = gates[0]
    said = _gate_said(gate)
    title = (
        f"pod {pod.get('name')} is not Ready although its containers are: readiness gate "
        f"{gate.get('type')} is {gate.get('status') or 'not set'}"
    ) + (f" ({short(said, 140)})" if said else "")
    owner = str(gate.get("type") or "").split("/", 1)[0]
    fix = [
        f"The gate is set by the controller that owns {owner}"
        + (
            " (the AWS Load Balancer Controller, from the target group's health check: check the target "
            "group's health, its health check path and port, and the security groups between the load "
            "balancer and the pods)"
            if owner.startswith("target-health.elbv2.k8s.aws")
            else ""
        )
        + "; the pod becomes Ready once that controller sets the condition True",
    ]
    extra = [
        f"pod {pod.get('name')}: condition {g.get('type')} = {g.get('status')} ({_gate_said(g)})"
        for g in gates[:2]
    ]
    return _pod_theory(facts, "pods-not-ready", picked, title, 0.6, fix, extra)


# --- Deployments ---------------------------------------------------------------------------------------


def _condition(deployment: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in deployment.get("conditions") or [] if c.get("type") == kind), None)


def deployment_scaled_to_zero(facts: Facts) -> Theory | None:
    """The target's Deployment has spec.replicas 0: its Service has no pods to send traffic to."""
    service = facts.target_service()
    if service is None:
        return None
    zero = [d for d in facts.deployments_for(service) if d.get("desired") == 0]
    if not zero or facts.selected_pods(service):
        return None
    deployment = zero[0]
    name, ns = deployment.get("name"), deployment.get("namespace")
    title = (
        f"Deployment `{name}` is scaled to 0 replicas: Service `{service.get('name')}` selects its pods "
        f"({', '.join(f'{k}={v}' for k, v in (service.get('selector') or {}).items())}), so it has no "
        "endpoints"
    )
    evidence = [
        f"Deployment {ns}/{name}: desired 0, available {deployment.get('available')}",
        f"Service {service.get('name')} selector {service.get('selector')} matches the Deployment's pod "
        "template "
        f"{deployment.get('template_labels') or deployment.get('selector')}",
    ]
    confirm = [
        kubectl(facts.context, f"get deployment {name}", ns),
        kubectl(facts.context, f"rollout history deployment/{name}", ns),
    ]
    fix = [
        kubectl(facts.context, f"scale deployment/{name} --replicas=<N>", ns)
        + "  # and check what scaled it down (an autoscaler, a deploy script, kubectl scale)"
    ]
    theory = Theory(
        "deployment-scaled-to-zero", title, 0.9, evidence, confirm, fix, subjects=[f"Deployment/{name}"]
    )
    theory.explains = facts.explain(SERVING_SECTIONS)
    return theory


def _condition_lines(deployment: Mapping[str, Any], kinds: tuple[str, ...]) -> list[str]:
    return [
        f"condition {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}"
        for c in deployment.get("conditions") or []
        if c.get("type") in kinds
    ]


def _rollout_paused(facts: Facts, deployment: Mapping[str, Any]) -> Theory:
    """``spec.paused``: the controller ignores template changes, so the rollout never starts or finishes."""
    name, ns = deployment.get("name"), deployment.get("namespace")
    title = (
        f"Deployment `{name}` is paused (spec.paused: true): its rollout does not proceed "
        f"({deployment.get('updated')} of {deployment.get('desired')} replicas run the current template)"
    )
    if deployment.get("available"):
        title += "; the pods of the previous template keep serving"
    evidence = [
        f"Deployment {ns}/{name}: paused, desired {deployment.get('desired')}, updated "
        f"{deployment.get('updated')}, "
        f"available {deployment.get('available')}; rollout: {deployment.get('rollout_message')}"
    ]
    evidence += _condition_lines(deployment, ("Progressing",))
    confirm = [
        kubectl(facts.context, f"get deployment {name} -o jsonpath='{{.spec.paused}}{{\"\\n\"}}'", ns),
        kubectl(facts.context, f"rollout history deployment/{name}", ns),
    ]
    fix = [
        "Resume the rollout if the new template is meant to go out (or undo the template change first):",
        kubectl(facts.context, f"rollout resume deployment/{name}", ns),
    ]
    theory = Theory("rollout-stuck", title, 0.8, evidence, confirm, fix, subjects=[f"Deployment/{name}"])
    theory.explains = facts.explain(("workloads", "cluster"), [str(name)])
    return theory


def _rollout_pods(
    facts: Facts, deployment: Mapping[str, Any], progressing: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(Ready pods of older ReplicaSets, pods of the new ReplicaSet the Progressing condition names)."""
    new = _NEW_REPLICA_SET.search(str((progressing or {}).get("message") or ""))
    if not new:
        return [], []
    new_set = new.group(1)
    pods = [p for p in facts.pods(deployment.get("namespace")) if facts.deployment_of(p) is deployment]
    old_ready = [p for p in pods if p.get("ready") and not str(p.get("owner", "")).endswith(new_set)]
    new_pods = [p for p in pods if str(p.get("owner", "")).endswith(new_set)]
    return old_ready, new_pods


def _stuck_evidence(deployment: Mapping[str, Any], new_pods: list[dict[str, Any]]) -> list[str]:
    """The Deployment's replica counts, its Progressing and ReplicaFailure conditions, its new pods."""
    evidence = [
        f"Deployment {deployment.get('namespace')}/{deployment.get('name')}: "
        f"desired {deployment.get('desired')}, updated {deployment.get('updated')}, "
        f"available {deployment.get('available')}, revision {deployment.get('revision')}"
    ]
    return (
        evidence
        + _condition_lines(deployment, ("Progressing", "ReplicaFailure"))
        + [pod_line(p) for p in new_pods[:2]]
    )


def _stuck_confirm_and_fix(
    facts: Facts, deployment: Mapping[str, Any], cause: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """Commands that show the rollout's conditions and ReplicaSets, and the way out (a full ResourceQuota
    named by the condition, or a rollback)."""
    name, ns = deployment.get("name"), deployment.get("namespace")
    conditions = "'{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{\"\\n\"}{end}'"
    selector = ",".join(f"{k}={v}" for k, v in (deployment.get("selector") or {}).items())
    confirm = [
        kubectl(facts.context, f"get deployment {name} -o jsonpath={conditions}", ns),
        kubectl(facts.context, f"describe deployment {name}", ns),
        kubectl(facts.context, f"get rs -l {selector}", ns),
    ]
    undo = kubectl(facts.context, f"rollout undo deployment/{name}", ns)
    quota = _QUOTA.search(str(cause.get("message") or ""))
    if not quota:
        return confirm, [
            "Fix why the new pods do not become available (their own theory above names it), or roll back:",
            undo,
        ]
    confirm.append(kubectl(facts.context, f"describe resourcequota {quota.group(1)}", ns))
    return confirm, [
        f"Make room in ResourceQuota {quota.group(1)}: lower the new pods' requests/limits, free "
        "quota "
        "held by other workloads of the namespace, or raise the quota's hard limit; or roll back:",
        undo,
    ]


def _rollout_stuck(
    facts: Facts,
    deployment: Mapping[str, Any],
    progressing: Mapping[str, Any] | None,
    cause: Mapping[str, Any],
    stuck: bool,
) -> Theory:
    """The theory of a rollout that does not progress; ``cause`` is the condition that says why."""
    name = deployment.get("name")
    old_ready, new_pods = _rollout_pods(facts, deployment, progressing)
    why = short(cause.get("message"), 160)
    title = f"the rollout of Deployment `{name}` is stuck ({cause.get('reason')}: {why})"
    if old_ready:
        old = ", ".join(str(p.get("name")) for p in old_ready[:2])
        more = f" and {len(old_ready) - 2} more" if len(old_ready) > 2 else ""
        title += f"; the old pods ({old}{more}) still serve the previous version"
    confirm, fix = _stuck_confirm_and_fix(facts, deployment, cause)
    theory = Theory(
        "rollout-stuck",
        title,
        0.75 if stuck else 0.8,
        _stuck_evidence(deployment, new_pods),
        confirm,
        fix,
        subjects=[f"Deployment/{name}"],
    )
    theory.explains = facts.explain(("workloads", "cluster"), [str(name)])
    return theory


def rollout_stuck(facts: Facts) -> Theory | None:
    """A Deployment's rollout does not progress (Progressing=False / ProgressDeadlineExceeded,
    ReplicaFailure), or it is paused with a template not rolled out."""
    for deployment in facts.deployments():
        if deployment.get("paused") and not deployment.get("rollout_complete"):
            return _rollout_paused(facts, deployment)
        progressing = _condition(deployment, "Progressing")
        failure = _condition(deployment, "ReplicaFailure")
        stuck = bool(progressing and progressing.get("status") == "False")
        failed = bool(failure and failure.get("status") == "True")
        if stuck or failed:
            return _rollout_stuck(facts, deployment, progressing, failure if failed else progressing, stuck)
    return None
