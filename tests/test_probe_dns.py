"""The DNS probe against real resolvers on loopback: dnsmasq instances, a silent port, fixed-rcode servers."""

from __future__ import annotations

import socket
import time

import dns.rcode
import pytest
import servers

from pytest_reachability.probes.dns import SYSTEM, DnsReport, parse_resolver, resolve_all
from pytest_reachability.probes.failures import Failure


@pytest.fixture(scope="module")
def dnsmasq_path() -> str:
    path = servers.require_tool("dnsmasq")
    if path is None:
        pytest.skip("dnsmasq not installed (apt-get install dnsmasq); required when CI=true")
    return path


@pytest.fixture(scope="module")
def primary(dnsmasq_path: str):
    with servers.Dnsmasq(
        "--address=/api.test/127.0.10.57",
        "--host-record=dual.test,127.0.10.6,fd00::6",
        "--cname=alias.test,dual.test",
        "--txt-record=textonly.test,hello",
    ) as server:
        yield server


@pytest.fixture(scope="module")
def secondary(dnsmasq_path: str):
    # Disagrees on api.test, the way a stale record disagrees with the LoadBalancer's address.
    with servers.Dnsmasq("--address=/api.test/127.0.10.53") as server:
        yield server


def by_resolver(report: DnsReport) -> dict:
    return {answer.resolver: answer for answer in report.answers}


def test_answer_carries_addresses_rcode_ttl_and_time(primary) -> None:
    report = resolve_all("api.test", [primary.resolver], timeout=2)
    answer = report.answers[0]
    assert answer.addresses == ["127.0.10.57"] and answer.rcode == "NOERROR" and answer.failure is None
    assert answer.ttl is not None and answer.ttl >= 0
    assert 0 < answer.ms < 2000
    assert report.addresses == ["127.0.10.57"] and report.agree and report.failure is None


def test_both_families_and_cname_chain(primary) -> None:
    report = resolve_all("alias.test", [primary.resolver], timeout=2)
    answer = report.answers[0]
    assert answer.cnames == ["dual.test"]
    assert answer.addresses == ["127.0.10.6", "fd00::6"]
    only_v4 = resolve_all("alias.test", [primary.resolver], timeout=2, families=("A",))
    assert only_v4.addresses == ["127.0.10.6"]


def test_resolvers_that_disagree_are_reported(primary, secondary) -> None:
    report = resolve_all("api.test", [primary.resolver, secondary.resolver], timeout=2)
    answers = by_resolver(report)
    assert answers[primary.resolver].addresses == ["127.0.10.57"]
    assert answers[secondary.resolver].addresses == ["127.0.10.53"]
    assert not report.agree
    assert report.addresses == ["127.0.10.57", "127.0.10.53"]  # union, in resolver order


def test_dead_resolver_times_out_within_the_timeout(primary) -> None:
    with servers.SilentResolver() as dead:
        started = time.perf_counter()
        report = resolve_all("api.test", [primary.resolver, dead.resolver], timeout=1.0)
        elapsed = time.perf_counter() - started
    answers = by_resolver(report)
    assert answers[dead.resolver].failure is Failure.DNS_TIMEOUT
    assert answers[dead.resolver].rcode == "TIMEOUT"
    assert answers[primary.resolver].ok
    assert report.addresses == ["127.0.10.57"] and not report.agree
    assert 0.9 <= elapsed < 1.5


def test_nxdomain_and_no_answer(primary) -> None:
    missing = resolve_all("missing.test", [primary.resolver], timeout=2)
    assert missing.answers[0].failure is Failure.DNS_NXDOMAIN and missing.answers[0].rcode == "NXDOMAIN"
    assert missing.failure is Failure.DNS_NXDOMAIN and missing.addresses == []
    text_only = resolve_all("textonly.test", [primary.resolver], timeout=2)
    assert text_only.answers[0].failure is Failure.DNS_NO_ANSWER and text_only.answers[0].rcode == "NOERROR"


def test_refused_from_a_resolver_without_the_zone(dnsmasq_path: str) -> None:
    # dnsmasq without --local and without upstreams refuses names it does not know.
    with servers.Dnsmasq(local=False) as server:
        report = resolve_all("api.test", [server.resolver], timeout=2)
    assert report.answers[0].failure is Failure.DNS_REFUSED and report.answers[0].rcode == "REFUSED"


def test_a_resolver_address_where_nothing_listens_is_told_apart_from_a_silent_one() -> None:
    # A bound, then closed UDP port: the kernel answers ICMP
    # port unreachable, so the query is refused at once.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    started = time.perf_counter()
    report = resolve_all("api.test", [f"127.0.0.1:{port}"], timeout=3)
    elapsed = time.perf_counter() - started
    [answer] = report.answers
    assert answer.failure is Failure.DNS_TIMEOUT and answer.rcode == "UNREACHABLE"
    assert f"nothing answers on 127.0.0.1:{port} (connection refused)" in (answer.error or "")
    assert elapsed < 1.5, f"a refused query waited {elapsed:.2f}s as if for a silent resolver"


def test_servfail() -> None:
    with servers.RcodeResolver(dns.rcode.SERVFAIL) as server:
        report = resolve_all("api.test", [server.resolver], timeout=2)
    assert report.answers[0].failure is Failure.DNS_SERVFAIL and report.failure is Failure.DNS_SERVFAIL


def test_resolvers_are_asked_concurrently(primary) -> None:
    with servers.SilentResolver() as dead_one, servers.SilentResolver() as dead_two:
        started = time.perf_counter()
        report = resolve_all(
            "api.test", [dead_one.resolver, dead_two.resolver, primary.resolver], timeout=0.8
        )
        elapsed = time.perf_counter() - started
    slowest = max(answer.ms for answer in report.answers) / 1000
    total = sum(answer.ms for answer in report.answers) / 1000
    assert elapsed < total, (
        f"wall {elapsed:.2f}s is the sum of the resolvers ({total:.2f}s): asked one after another"
    )
    assert elapsed < slowest + 0.4


def test_system_resolver_and_ip_literals() -> None:
    report = resolve_all("localhost", [SYSTEM], timeout=2)
    assert report.answers[0].resolver == "system"
    assert "127.0.0.1" in report.answers[0].addresses or "::1" in report.answers[0].addresses
    literal = resolve_all("127.0.10.57", ["192.0.2.1"], timeout=2)
    assert literal.literal and literal.addresses == ["127.0.10.57"] and literal.answers == []
    assert resolve_all("[::1]", [SYSTEM], timeout=1).addresses == ["::1"]
    nothing = resolve_all("name-that-does-not-exist.invalid", [SYSTEM], timeout=2)
    assert nothing.answers[0].failure is not None and nothing.answers[0].failure.phase == "dns"


def test_evidence_is_plain_data(primary, secondary) -> None:
    evidence = resolve_all("api.test", [primary.resolver, secondary.resolver], timeout=2).to_evidence()
    assert evidence["agree"] is False
    assert [answer["addresses"] for answer in evidence["answers"]] == [["127.0.10.57"], ["127.0.10.53"]]
    assert all(answer["failure"] is None for answer in evidence["answers"])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1.1.1.1", ("1.1.1.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:5353", ("::1", 5353)),
        ("fd00::1", ("fd00::1", 53)),
    ],
)
def test_resolver_specs(spec: str, expected: tuple[str, int]) -> None:
    assert parse_resolver(spec) == expected


@pytest.mark.parametrize("spec", ["dns.google", "1.1.1.1:0", "1.1.1.1:port", "[::1", "[::1]5353"])
def test_bad_resolver_specs_raise_one_line(spec: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_resolver(spec)
    assert "\n" not in str(raised.value) and spec in str(raised.value)


@pytest.fixture(scope="module")
def sandbox_dns():
    from pytest_reachability.sandbox.dns_server import DnsServer
    from pytest_reachability.sandbox.scenario import RecordSpec

    server = DnsServer(
        {
            "api.sandbox.test": RecordSpec(a=("127.0.10.57",), ttl=60),
            "www.sandbox.test": RecordSpec(cname="api.sandbox.test", ttl=120),
            "broken.sandbox.test": RecordSpec(rcode="SERVFAIL"),
            "closed.sandbox.test": RecordSpec(rcode="REFUSED"),
            "empty.sandbox.test": RecordSpec(no_answer=True),
            "slow.sandbox.test": RecordSpec(a=("127.0.10.58",), delay=0.4),
        }
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_sandbox_dns_server_classes(sandbox_dns) -> None:
    resolver = [sandbox_dns.address]
    api = resolve_all("api.sandbox.test", resolver, timeout=2).answers[0]
    assert api.addresses == ["127.0.10.57"] and api.ttl == 60
    www = resolve_all("www.sandbox.test", resolver, timeout=2).answers[0]
    assert www.cnames == ["api.sandbox.test"] and www.addresses == ["127.0.10.57"]
    classes = {
        name: resolve_all(f"{name}.sandbox.test", resolver, timeout=2).answers[0].failure
        for name in ("broken", "closed", "empty", "missing")
    }
    assert classes == {
        "broken": Failure.DNS_SERVFAIL,
        "closed": Failure.DNS_REFUSED,
        "empty": Failure.DNS_NO_ANSWER,
        "missing": Failure.DNS_NXDOMAIN,
    }


def test_sandbox_slow_answer_beyond_the_timeout_is_a_timeout(sandbox_dns) -> None:
    started = time.perf_counter()
    late = resolve_all("slow.sandbox.test", [sandbox_dns.address], timeout=0.2)
    assert late.answers[0].failure is Failure.DNS_TIMEOUT
    assert time.perf_counter() - started < 0.5
    in_time = resolve_all("slow.sandbox.test", [sandbox_dns.address], timeout=2)
    assert in_time.addresses == ["127.0.10.58"] and in_time.answers[0].ms >= 400


_SCOPED_RESOLVER = r"""
import json, socket, sys, threading
import dns.message, dns.rrset
from pytest_reachability.probes.dns import resolve_all

address = socket.getaddrinfo(
    "fe80::53%lo", 0, socket.AF_INET6, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST
)[0][4]
server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
server.bind(address)
server.settimeout(5)
port = server.getsockname()[1]

def answer():
    wire, peer = server.recvfrom(4096)
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "127.0.10.57"))
    server.sendto(response.to_wire(), peer)

threading.Thread(target=answer, daemon=True).start()
report = resolve_all("api.scoped.test", [f"[fe80::53%lo]:{port}"], timeout=3, families=("A",))
answer_ = report.answers[0]
print(json.dumps({"addresses": answer_.addresses, "rcode": answer_.rcode, "error": answer_.error}))
"""


def test_a_link_local_resolver_with_its_scope_is_asked() -> None:
    # fe80::53 on the loopback of a network namespace made here: a scope (%lo) the socket address must carry.
    import json
    import os
    import subprocess
    import sys
    import uuid

    if servers.require_tool("ip") is None or os.geteuid() != 0:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("this test needs root and ip (iproute2), and CI=true requires it to run")
        pytest.skip("network namespaces need root and ip (iproute2)")
    name = f"reach-dns-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=20)
    try:
        inside = ["ip", "netns", "exec", name]
        subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True, timeout=20)
        subprocess.run(
            [*inside, "ip", "-6", "addr", "add", "fe80::53/64", "dev", "lo", "nodad"], check=True, timeout=20
        )
        done = subprocess.run(
            [*inside, sys.executable, "-c", _SCOPED_RESOLVER], capture_output=True, text=True, timeout=60
        )
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20, check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"addresses": ["127.0.10.57"], "rcode": "NOERROR", "error": None}
