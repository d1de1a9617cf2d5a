"""Hostile DNS servers on loopback (real UDP and TCP sockets): garbage, wrong ids, truncation, refusals, huge
answers and slow drips. An answer that arrived is never reported as a timeout; each case ends within the
timeout plus one second, with bounded memory; huge answers are probed only up to the per-family cap.
"""

from __future__ import annotations

import os
import struct
import time
import tracemalloc

import dns.flags
import dns.message
import dns.rcode
import hostile
import pytest
import servers

from pytest_reachability.config import parse_target
from pytest_reachability.probes.dns import (
    MAX_ADDRESSES_KEPT,
    MAX_ADDRESSES_PER_FAMILY,
    DnsReport,
    resolve_all,
)
from pytest_reachability.probes.failures import Failure
from pytest_reachability.probes.http import probe_target

TIMEOUT = 1.5
MEMORY_BOUND = 16 << 20
NAME = "api.hostile.test"


def resolve(
    server: hostile.HostileDns, timeout: float = TIMEOUT, *, traced: bool = True
) -> tuple[DnsReport, float, int]:
    """Resolve NAME on ``server``; the wall time is checked,
    and the peak of traced allocations when ``traced``."""
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        report = resolve_all(NAME, [server.resolver], timeout=timeout)
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
        if traced:
            tracemalloc.stop()
    assert elapsed < timeout + 1, f"took {elapsed:.2f}s with a {timeout}s timeout"
    assert peak < MEMORY_BOUND, f"peak allocations {peak / 1e6:.1f} MB"
    return report, elapsed, peak


def wrong_id(query: dns.message.Message, wire: bytes) -> list[bytes]:
    response = hostile.answer_with(query, ["127.0.10.57"])
    response.id = (query.id + 1) % 65536
    return [response.to_wire()]


def garbage(query: dns.message.Message, wire: bytes) -> list[bytes]:
    return [os.urandom(7), b"\x00" * 40, wire[:2] + b"\xff" * 30]


def not_a_response(query: dns.message.Message, wire: bytes) -> list[bytes]:
    return [wire]  # the query itself, QR bit clear


def cut_mid_record(query: dns.message.Message, wire: bytes) -> list[bytes]:
    return [hostile.answer_with(query, ["127.0.10.57", "127.0.10.58"]).to_wire()[:-3]]  # no TC bit, just cut


def rcode_without_question(rcode: int):
    def behaviour(query: dns.message.Message, wire: bytes) -> list[bytes]:
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        response.question = []
        return [response.to_wire()]

    return behaviour


def spoof_then_real(query: dns.message.Message, wire: bytes) -> list[bytes]:
    return (
        wrong_id(query, wire) + garbage(query, wire) + [hostile.answer_with(query, ["127.0.10.53"]).to_wire()]
    )


def truncated(query: dns.message.Message, wire: bytes) -> list[bytes]:
    return [hostile.answer_with(query, [], truncated=True).to_wire()]


def tcp_answers(addresses: list[str]):
    built: dict[tuple[int, int], bytes] = {}  # built once per question: the server's time is not the probe's

    def behaviour(conn, query: dns.message.Message, server) -> None:
        key = (query.question[0].rdtype, query.id)
        if key not in built:
            built[key] = hostile.tcp_framed(hostile.answer_with(query, addresses))
        conn.sendall(built[key])

    return behaviour


def tcp_drips(conn, query: dns.message.Message, server) -> None:
    for byte in hostile.tcp_framed(hostile.answer_with(query, ["127.0.10.57"])):
        if server.stopping.wait(1.0):
            return
        conn.sendall(bytes([byte]))


def tcp_garbage(conn, query: dns.message.Message, server) -> None:
    conn.sendall(struct.pack("!H", 20) + os.urandom(20))


def tcp_closes(conn, query: dns.message.Message, server) -> None:
    conn.close()


@pytest.mark.parametrize(
    ("case", "udp", "tcp", "words"),
    [
        ("garbage", garbage, None, "malformed answer"),
        ("wrong query id", wrong_id, None, "answer with query id"),
        ("the query echoed back", not_a_response, None, "a query, not an answer"),
        ("cut without TC", cut_mid_record, None, "malformed answer"),
        ("TC, nothing on TCP", truncated, None, "TCP retry failed"),
        ("TC, TCP closes at once", truncated, tcp_closes, "TCP retry failed"),
        ("TC, garbage over TCP", truncated, tcp_garbage, "TCP retry failed"),
        ("TC, TCP drips a byte a second", truncated, tcp_drips, "no complete answer in time"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_answers_that_arrived_are_bad_answers_not_timeouts(case, udp, tcp, words) -> None:
    with hostile.HostileDns(udp, tcp) as server:
        report, elapsed, _peak = resolve(server)
    answer = report.answers[0]
    assert answer.failure is Failure.DNS_BAD_ANSWER, (case, answer.failure, answer.rcode, answer.error)
    assert answer.rcode == "BADANSWER" and words in (answer.error or ""), answer.error
    assert report.failure is Failure.DNS_BAD_ANSWER and report.addresses == []
    assert Failure.DNS_BAD_ANSWER.curl_exit == 6
    if tcp is not tcp_drips:  # a bad packet ends the wait soon after it came, not at the timeout
        assert elapsed < TIMEOUT, f"{case}: {elapsed:.2f}s"


def test_a_valid_answer_after_spoofed_and_garbage_packets_is_taken() -> None:
    with hostile.HostileDns(spoof_then_real) as server:
        report, _elapsed, _peak = resolve(server)
    assert report.addresses == ["127.0.10.53"] and report.answers[0].failure is None


def test_truncated_udp_is_retried_over_tcp() -> None:
    with hostile.HostileDns(truncated, tcp_answers(["127.0.10.57", "127.0.10.58"])) as server:
        report, _elapsed, _peak = resolve(server)
        assert server.tcp_connections >= 1
    assert report.answers[0].failure is None and sorted(report.addresses) == ["127.0.10.57", "127.0.10.58"]


@pytest.mark.parametrize(
    ("rcode", "failure"),
    [
        (dns.rcode.REFUSED, Failure.DNS_REFUSED),
        (dns.rcode.SERVFAIL, Failure.DNS_SERVFAIL),
        (dns.rcode.NOTIMP, Failure.DNS_BAD_ANSWER),
        (dns.rcode.FORMERR, Failure.DNS_BAD_ANSWER),
    ],
)
def test_error_rcodes_without_a_question_section_are_classified(rcode: int, failure: Failure) -> None:
    with hostile.HostileDns(rcode_without_question(rcode)) as server:
        report, elapsed, _peak = resolve(server)
    assert report.answers[0].failure is failure, (report.answers[0].rcode, report.answers[0].error)
    assert report.answers[0].rcode == dns.rcode.to_text(rcode)
    assert elapsed < TIMEOUT


def test_a_huge_answer_is_kept_bounded_and_probed_up_to_the_cap() -> None:
    addresses = hostile.many_addresses(4000)
    with hostile.HostileDns(truncated, tcp_answers(addresses)) as server:
        # Tracing every allocation makes reading 4000 records several times slower: memory is measured in a
        # run of its own with room to finish, the time in an untraced run.
        traced_report, _elapsed, _peak = resolve(server, timeout=15)
        assert traced_report.answers[0].failure is None and len(traced_report.addresses) == MAX_ADDRESSES_KEPT
        report, _elapsed, _peak = resolve(server, timeout=3, traced=False)
        answer = report.answers[0]
        assert answer.failure is None
        assert len(answer.addresses) == MAX_ADDRESSES_KEPT and answer.omitted == 4000 - MAX_ADDRESSES_KEPT
        # The HTTP probe asks each address once, at most MAX_ADDRESSES_PER_FAMILY of them.
        port = servers.refused_port()
        started = time.perf_counter()
        results = probe_target(parse_target(f"http://{NAME}:{port}"), dns_report=report, timeout=TIMEOUT)
        assert time.perf_counter() - started < TIMEOUT + 1
    assert len(results) == MAX_ADDRESSES_PER_FAMILY and set(answer.addresses) <= set(addresses)
    assert [r.address for r in results] == answer.addresses[:MAX_ADDRESSES_PER_FAMILY]  # in answer order
    assert report.not_probed == answer.addresses[MAX_ADDRESSES_PER_FAMILY:]
    assert report.to_evidence()["not_probed"] == report.not_probed


def test_a_resolver_that_never_answers_is_still_a_timeout() -> None:
    with hostile.HostileDns(lambda query, wire: []) as server:
        report, elapsed, _peak = resolve(server, timeout=0.5)
    assert report.answers[0].failure is Failure.DNS_TIMEOUT and elapsed >= 0.45
