"""The sandbox DNS server answers what the scenario says.

To dnspython and to Debian's dig, over UDP and TCP."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from pytest_reachability.sandbox.dns_server import DnsServer
from pytest_reachability.sandbox.scenario import RecordSpec, load_scenario

RECORDS = {
    "97v.test": RecordSpec(a=("127.0.10.57",), aaaa=("::1",), txt=("v=spf1 -all", 'say "hi"')),
    "www.97v.test": RecordSpec(cname="97v.test"),
    "chain.97v.test": RecordSpec(cname="www.97v.test"),
    "gone.test": RecordSpec(rcode="NXDOMAIN"),
    "broken.test": RecordSpec(rcode="SERVFAIL"),
    "private.test": RecordSpec(rcode="REFUSED"),
    "empty.test": RecordSpec(no_answer=True),
    "slow.test": RecordSpec(a=("127.0.10.9",), delay=0.4),
    "signed.test": RecordSpec(rcode="SERVFAIL", ede=((7, "signature expired"), (22, ""))),
}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (apt-get install bind9-dnsutils)")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture
def server():
    dns_server = DnsServer(RECORDS, name="test dns")
    dns_server.start()
    yield dns_server
    dns_server.stop()


def ask(server: DnsServer, name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=server.port, timeout=3)


def answer_texts(response: dns.message.Message) -> list[str]:
    return [
        f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rdata}"
        for rrset in response.answer
        for rdata in rrset
    ]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_addresses_cname_chain_and_txt(server, tcp):
    assert answer_texts(ask(server, "97v.test", "A", tcp=tcp)) == ["97v.test. A 127.0.10.57"]
    assert answer_texts(ask(server, "97v.test", "AAAA", tcp=tcp)) == ["97v.test. AAAA ::1"]
    assert answer_texts(ask(server, "chain.97v.test", "A", tcp=tcp)) == [
        "chain.97v.test. CNAME www.97v.test.",
        "www.97v.test. CNAME 97v.test.",
        "97v.test. A 127.0.10.57",
    ]
    assert answer_texts(ask(server, "www.97v.test", "CNAME", tcp=tcp)) == ["www.97v.test. CNAME 97v.test."]
    txt = ask(server, "97v.test", "TXT", tcp=tcp)
    assert sorted(b"".join(rdata.strings) for rrset in txt.answer for rdata in rrset) == [
        b'say "hi"',
        b"v=spf1 -all",
    ]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(
    "name, rcode",
    [
        ("gone.test", dns.rcode.NXDOMAIN),
        ("unknown.test", dns.rcode.NXDOMAIN),
        ("broken.test", dns.rcode.SERVFAIL),
        ("private.test", dns.rcode.REFUSED),
        ("empty.test", dns.rcode.NOERROR),
        ("slow.test", dns.rcode.NOERROR),
    ],
)
def test_failure_answers(server, name, rcode, tcp):
    response = ask(server, name, "AAAA", tcp=tcp)  # slow.test has no AAAA: a no-answer after its delay
    assert response.rcode() == rcode
    assert response.answer == []
    assert response.flags & dns.flags.QR


def test_case_insensitive_names_and_query_log(server):
    assert answer_texts(ask(server, "97V.Test", "A")) == ["97V.Test. A 127.0.10.57"]
    assert server.query_log[-1]["name"] == "97v.test" and server.query_log[-1]["type"] == "A"


def test_delay_applies_per_query_without_blocking_others(server):
    results: dict[str, float] = {}

    def timed(name: str) -> None:
        started = time.monotonic()
        ask(server, name, "A")
        results[name] = time.monotonic() - started

    threads = [threading.Thread(target=timed, args=(name,)) for name in ("slow.test", "97v.test")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results["slow.test"] >= 0.38
    assert results["97v.test"] < 0.3


def test_udp_and_tcp_share_the_port_and_stop_closes_both():
    server = DnsServer(RECORDS)
    server.start()
    port = server.port
    assert ask(server, "97v.test", "A", tcp=True).answer
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", port))  # free again: the UDP socket is gone


def test_malformed_query_gets_formerr_not_silence(server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(3)
        client.sendto(
            b"\x12\x34" + b"\x01\x00" + b"\x00\x01" + b"\x00" * 6 + b"\xff\xff", ("127.0.0.1", server.port)
        )
        reply = client.recv(512)
    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR


# -- dig -------------------------------------------------------------------------------------------


def dig(server: DnsServer, *args: str) -> tuple[str, list[str]]:
    """dig's status word and its answer lines (owner, TTL, class, type, data)."""
    result = subprocess.run(
        [require_tool("dig"), "@127.0.0.1", "-p", str(server.port), "+tries=1", "+time=3", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    status = (
        next(line for line in result.stdout.splitlines() if "status:" in line)
        .split("status: ")[1]
        .split(",")[0]
    )
    section, lines = None, []
    for line in result.stdout.splitlines():
        if line.startswith(";; ") and line.endswith("SECTION:"):
            section = line
        elif not line.strip() or line.startswith(";"):
            section = None if not line.strip() else section
        elif section == ";; ANSWER SECTION:":
            lines.append(" ".join(line.split()))
    return status, lines


@pytest.mark.parametrize("transport", [[], ["+tcp"]], ids=["udp", "tcp"])
def test_dig_gets_the_scenario_answers(server, transport):
    assert dig(server, *transport, "97v.test", "A") == ("NOERROR", ["97v.test. 300 IN A 127.0.10.57"])
    assert dig(server, *transport, "97v.test", "AAAA") == ("NOERROR", ["97v.test. 300 IN AAAA ::1"])
    assert dig(server, *transport, "www.97v.test") == (
        "NOERROR",
        ["www.97v.test. 300 IN CNAME 97v.test.", "97v.test. 300 IN A 127.0.10.57"],
    )
    status, txt = dig(server, *transport, "97v.test", "TXT")
    assert status == "NOERROR" and '97v.test. 300 IN TXT "v=spf1 -all"' in txt
    assert dig(server, *transport, "gone.test") == ("NXDOMAIN", [])
    assert dig(server, *transport, "broken.test") == ("SERVFAIL", [])
    assert dig(server, *transport, "private.test") == ("REFUSED", [])
    assert dig(server, *transport, "empty.test") == ("NOERROR", [])


def test_dig_short_output_for_the_incident_resolver():
    resolver = load_scenario("incident-2025-12-08").resolvers[0]
    server = DnsServer(resolver.records)
    server.start()
    try:
        result = subprocess.run(
            [
                require_tool("dig"),
                "@127.0.0.1",
                "-p",
                str(server.port),
                "+short",
                "+time=3",
                "+tries=1",
                "97v.test",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    finally:
        server.stop()
    assert result.stdout.split() == ["127.0.10.57"]


def test_resolvers_of_a_scenario_disagree():
    scenario = load_scenario("resolvers-disagree")
    servers = [DnsServer(resolver.records, name=resolver.name) for resolver in scenario.resolvers]
    for server in servers:
        server.start()
    try:
        answers = {server.name: answer_texts(ask(server, "97v.test", "A")) for server in servers}
    finally:
        for server in servers:
            server.stop()
    assert answers == {"primary": ["97v.test. A 127.0.10.53"], "secondary": ["97v.test. A 127.0.10.57"]}


# -- what the DNS probe (and so the diagnosis) sees for each way a name fails ---------------------------

FAILING = {
    "dangling.97v.test": RecordSpec(cname="lb-4f2a.cloud.test"),  # target unknown to the zone
    "nodata.97v.test": RecordSpec(txt=("only text",)),
    "v4only.97v.test": RecordSpec(a=("127.0.10.53",)),
    "servfail.97v.test": RecordSpec(rcode="SERVFAIL"),
    "slow.97v.test": RecordSpec(a=("127.0.10.53",), delay=2.0),
}


@pytest.fixture
def failing_server():
    dns_server = DnsServer(FAILING, name="failing dns")
    dns_server.start()
    yield dns_server
    dns_server.stop()


@pytest.mark.parametrize(
    "name, failure, cnames, addresses",
    [
        ("dangling.97v.test", "dns_nxdomain", ["lb-4f2a.cloud.test"], []),
        ("nodata.97v.test", "dns_no_answer", [], []),
        ("v4only.97v.test", None, [], ["127.0.10.53"]),  # NODATA for AAAA only: the name still resolves
        ("servfail.97v.test", "dns_servfail", [], []),
        ("slow.97v.test", "dns_timeout", [], []),
    ],
)
def test_the_dns_probe_classifies_each_failure(failing_server, name, failure, cnames, addresses):
    from pytest_reachability.probes.dns import resolve_all

    report = resolve_all(name, [failing_server.address], timeout=1.0)
    answer = report.answers[0]
    assert (answer.failure.value if answer.failure else None) == failure
    assert answer.cnames == cnames and answer.addresses == addresses


def test_a_dangling_cname_is_diagnosed_as_such_not_as_a_missing_record(failing_server):
    from pytest_reachability.diagnosis import Facts, RunContext
    from pytest_reachability.diagnosis import rules as R
    from pytest_reachability.probes.dns import resolve_all
    from pytest_reachability.results import TestResult

    report = resolve_all("dangling.97v.test", [failing_server.address], timeout=1.0)
    facts = Facts(
        [
            TestResult(
                "suites/test_07_dns.py::test_target_resolves",
                section="dns",
                outcome="failed",
                reason="dangling.97v.test did not resolve",
                evidence=[{"kind": "dns", "data": report.to_evidence()}],
            )
        ],
        RunContext(host="dangling.97v.test", resolvers=[failing_server.address]),
    )
    theory = R.dns_dangling_cname(facts)
    assert theory is not None and theory.title.startswith(
        "dangling.97v.test is a CNAME to lb-4f2a.cloud.test, which does not resolve (NXDOMAIN)"
    )
    assert R.dns_nxdomain(facts) is None  # the name itself exists: it is not "the record is missing"


def test_dig_reads_the_extended_errors_only_a_query_with_edns_gets(server):
    # dig (BIND's own client) shows what a resolver's RFC 8914 extended errors look like on the wire.
    def run(*args: str) -> str:
        command = [require_tool("dig"), "@127.0.0.1", "-p", str(server.port), "+tries=1", "+time=3", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=20)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    with_edns = run("signed.test")
    assert "status: SERVFAIL" in with_edns
    assert "; EDE: 7 (Signature Expired): (signature expired)" in with_edns
    assert "; EDE: 22 (No Reachable Authority)" in with_edns
    without = run("+noedns", "signed.test")
    assert "status: SERVFAIL" in without and "EDE" not in without
