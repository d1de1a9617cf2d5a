"""A theory: one candidate root cause with its evidence and the commands to confirm and fix it."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from ..probes.dns import is_ip_literal
from .facts import RunContext


@dataclass
class Theory:
    """One root-cause candidate.

    ``confidence`` (0-1) grows with the strength of the evidence the rule found; ``evidence`` are the
    observed facts (one line each) it rests on; ``confirm`` and ``fix`` are commands or steps, in order.
    ``explains`` are the node ids of the run's failed checks it accounts for; ``symptoms`` the theories
    folded under it because they are consequences of this cause (not rivals); ``unknowns`` what could
    not be checked, each naming the command that would check it.
    """

    rule: str
    title: str
    confidence: float
    evidence: list[str] = field(default_factory=list)
    confirm: list[str] = field(default_factory=list)
    fix: list[str] = field(default_factory=list)
    subjects: list[str] = field(
        default_factory=list
    )  # addresses / objects it is about, for contradiction checks
    verify: list[str] = field(
        default_factory=list
    )  # after the fix: "command  # expect ...", for the checklist
    explains: list[str] = field(default_factory=list)
    symptoms: list[Theory] = field(default_factory=list)
    unknowns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.confidence = round(max(0.0, min(0.99, float(self.confidence))), 2)

    def all_explained(self) -> list[str]:
        """Node ids this theory and its folded symptoms account for, in first-seen order."""
        found = list(self.explains)
        for symptom in self.symptoms:
            found += [nodeid for nodeid in symptom.all_explained() if nodeid not in found]
        return list(dict.fromkeys(found))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("subjects")
        data.pop("verify")
        data["symptoms"] = [symptom.to_dict() for symptom in self.symptoms]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Theory:
        return cls(
            rule=data["rule"],
            title=data["title"],
            confidence=data.get("confidence", 0.0),
            evidence=list(data.get("evidence") or []),
            confirm=list(data.get("confirm") or []),
            fix=list(data.get("fix") or []),
            explains=list(data.get("explains") or []),
            symptoms=[
                cls.from_dict(symptom) for symptom in data.get("symptoms") or [] if isinstance(symptom, dict)
            ],
            unknowns=list(data.get("unknowns") or []),
        )


# --- commands ----------------------------------------------------------------------------------------------


def kubectl(context: RunContext, args: str, namespace: str | None = None) -> str:
    namespace = namespace if namespace is not None else context.namespace
    if {"-A", "--all-namespaces"} & set(args.split()):
        namespace = None  # one namespace and all of them at once reads as a mistake
    ns = f" -n {namespace}" if namespace else ""
    return f"{context.kubectl}{ns} {args}"


def openssl_certificate(address: object, port: object, host: object) -> str:
    """The openssl line that prints the certificate an address serves for ``host`` (SNI)."""
    return (
        f"openssl s_client -connect {address}:{port} -servername {host} -showcerts </dev/null 2>/dev/null "
        "| openssl x509 -noout -subject -issuer -dates -ext subjectAltName"
    )


def dig(name: str, resolver: str | None) -> str:
    """``dig @ADDR [-p PORT] NAME +short``; the OS resolver when ``resolver`` is ``system`` or None."""
    if not resolver or resolver == "system":
        return f"dig {name} +short"
    address, port = _split_resolver(resolver)
    port_part = f" -p {port}" if port != 53 else ""
    return f"dig @{address}{port_part} {name} +short"


def _split_resolver(resolver: str) -> tuple[str, int]:
    text = resolver.strip()
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        return address, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 53
    if text.count(":") == 1:
        address, port = text.split(":")
        return address, int(port) if port.isdigit() else 53
    return text, 53


def curl(context: RunContext, address: str, path: str | None = None, port: int | None = None) -> str:
    """``curl -v --resolve HOST:PORT:ADDR URL``: the request the probe made, to reproduce by hand. For a
    load balancer published as a hostname (AWS's ELB/NLB), ``--connect-to HOST:PORT:NAME:PORT``: curl's
    ``--resolve`` takes an IP address only."""
    scheme = context.scheme or "http"
    port = port or context.port or (443 if scheme == "https" else 80)
    default = 443 if scheme == "https" else 80
    host = context.host or address
    netloc = host if port == default else f"{host}:{port}"
    url = f"{scheme}://{netloc}{path or context.health_path}"
    if not is_ip_literal(address):
        return f"curl -v --connect-to {host}:{port}:{address}:{port} {shlex.quote(url)}"
    bracketed = f"[{address}]" if ":" in address else address
    return f"curl -v --resolve {host}:{port}:{bracketed} {shlex.quote(url)}"


def curl_of(probe: dict[str, Any], context: RunContext) -> str:
    """The probe's own curl line when it recorded one, else one built from its address."""
    line = probe.get("curl")
    if isinstance(line, str) and line.startswith("curl"):
        return line
    return curl(context, probe.get("address", ""), probe.get("path"), probe.get("port"))
