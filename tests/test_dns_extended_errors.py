"""Extended DNS errors (RFC 8914) and EDNS fallback, against DNS servers on loopback (real UDP sockets) whose
answers each test scripts: a resolver's own reason for a failure reaches the answer, its error text and
its evidence; a server that does not speak EDNS is asked again without it."""

from __future__ import annotations

import diagnosis_evidence as E
import dns.edns
import dns.flags
import dns.message
import dns.rcode
import hostile
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_reachability.diagnosis import rules as R
from pytest_reachability.probes.dns import EDNS_PAYLOAD, EXTENDED_ERRORS, extended_errors, resolve_all
from pytest_reachability.probes.failures import Failure

NAME = "api.ede.test"
TIMEOUT = 1.5


def failing_with(rcode: int, *options: dns.edns.EDEOption):
    """Answer every query with ``rcode`` and these extended errors (with EDNS, as RFC 8914 requires)."""
    seen: list[dns.message.Message] = []

    def behaviour(query: dns.message.Message, wire: bytes) -> list[bytes]:
        seen.append(query)
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        response.use_edns(0, 0, 1232, options=list(options))
        return [response.to_wire()]

    behaviour.seen = seen  # type: ignore[attr-defined]
    return behaviour


def test_a_servfail_carries_the_resolvers_reason() -> None:
    behaviour = failing_with(
        dns.rcode.SERVFAIL, dns.edns.EDEOption(dns.edns.EDECode.DNSSEC_BOGUS, "RRSIG expired")
    )
    with hostile.HostileDns(behaviour) as server:
        report = resolve_all(NAME, [server.resolver], timeout=TIMEOUT, families=("A",))
    answer = report.answers[0]
    assert (answer.failure, answer.rcode) == (Failure.DNS_SERVFAIL, "SERVFAIL")
    assert answer.extended_errors == ["DNSSEC Bogus (EDE 6): RRSIG expired"]
    assert answer.error == "A: SERVFAIL, the resolver says: DNSSEC Bogus (EDE 6): RRSIG expired"
    assert report.to_evidence()["answers"][0]["extended_errors"] == answer.extended_errors
    # The query offered EDNS: without an OPT record a resolver does not say why.
    assert behaviour.seen and all(
        query.edns == 0 and query.payload == EDNS_PAYLOAD for query in behaviour.seen
    )


def test_reasons_of_both_families_are_kept_once_each() -> None:
    behaviour = failing_with(
        dns.rcode.SERVFAIL,
        dns.edns.EDEOption(dns.edns.EDECode.NO_REACHABLE_AUTHORITY),
        dns.edns.EDEOption(dns.edns.EDECode.NETWORK_ERROR, "198.51.100.53:53 rcode=REFUSED"),
    )
    with hostile.HostileDns(behaviour) as server:
        answer = resolve_all(NAME, [server.resolver], timeout=TIMEOUT).answers[0]
    assert answer.failure is Failure.DNS_SERVFAIL
    assert answer.extended_errors == [
        "No Reachable Authority (EDE 22)",
        "Network Error (EDE 23): 198.51.100.53:53 rcode=REFUSED",
    ]


def test_an_answer_with_addresses_keeps_its_extended_error_as_evidence() -> None:
    def stale(query: dns.message.Message, wire: bytes) -> list[bytes]:
        response = hostile.answer_with(query, ["127.0.10.57"])
        response.use_edns(0, 0, 1232, options=[dns.edns.EDEOption(dns.edns.EDECode.STALE_ANSWER)])
        return [response.to_wire()]

    with hostile.HostileDns(stale) as server:
        answer = resolve_all(NAME, [server.resolver], timeout=TIMEOUT, families=("A",)).answers[0]
    assert answer.ok and answer.addresses == ["127.0.10.57"] and answer.error is None
    assert answer.extended_errors == ["Stale Answer (EDE 3)"]


@pytest.mark.parametrize("rcode", [dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.SERVFAIL])
def test_a_server_without_edns_is_asked_again_without_it(rcode: int) -> None:
    # RFC 6891 section 7: a server that does not implement EDNS answers FORMERR without an OPT record
    # (older ones NOTIMP or SERVFAIL).
    seen: list[dns.message.Message] = []
    with hostile.HostileDns(hostile.without_edns(rcode, ["127.0.10.58"], seen)) as server:
        answer = resolve_all(NAME, [server.resolver], timeout=TIMEOUT, families=("A",)).answers[0]
    assert answer.ok and answer.addresses == ["127.0.10.58"]
    assert [query.edns for query in seen] == [0, -1]


def test_a_formerr_that_speaks_edns_is_not_asked_again() -> None:
    behaviour = failing_with(dns.rcode.FORMERR)
    with hostile.HostileDns(behaviour) as server:
        answer = resolve_all(NAME, [server.resolver], timeout=TIMEOUT, families=("A",)).answers[0]
    assert (answer.failure, answer.rcode) == (Failure.DNS_BAD_ANSWER, "FORMERR")
    assert len(behaviour.seen) == 1


@settings(max_examples=200, deadline=None)
@given(code=st.integers(0, 65535), text=st.text(max_size=400))
def test_any_extended_error_reads_as_one_bounded_line(code: int, text: str) -> None:
    response = dns.message.make_response(dns.message.make_query(NAME, "A", use_edns=0))
    response.use_edns(0, 0, 1232, options=[dns.edns.EDEOption(code, text)])
    parsed = dns.message.from_wire(response.to_wire())
    [said] = extended_errors(parsed)
    known = {member.value for member in dns.edns.EDECode}
    name = EXTENDED_ERRORS.get(code) or ("Unassigned" if code not in known else said.partition(" (EDE")[0])
    assert said.startswith(f"{name} (EDE {code})") and name
    assert "\n" not in said and "\r" not in said and len(said) <= len(name) + 220


@pytest.mark.parametrize("code", sorted(EXTENDED_ERRORS))
def test_every_registered_code_has_the_name_dnspython_knows(code: int) -> None:
    # The registry's names, checked against dnspython's own list of the codes it knows.
    known = {member.value: member.name for member in dns.edns.EDECode}
    if code in known:
        expected = (
            "OTHER" if code == 0 else EXTENDED_ERRORS[code].upper().replace(" ", "_")
        )  # RFC: "Other Error"
        assert expected == known[code]


# --- what the diagnosis makes of it: the resolver's real answers (evidence as the suite records it) ------


def _theory(rule, rcode: int, *options: dns.edns.EDEOption):
    with hostile.HostileDns(failing_with(rcode, *options)) as server:
        report = resolve_all(NAME, [server.resolver], timeout=TIMEOUT, families=("A",))
    facts = E.facts_of(("dns", report.to_evidence()), failed={"dns": f"{NAME} did not resolve"}, host=NAME)
    return rule(facts)


@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (
            dns.edns.EDECode.SIGNATURE_EXPIRED,
            "DNSSEC validation fails (the resolver says: Signature Expired (EDE 7)",
        ),
        (
            dns.edns.EDECode.DNSKEY_MISSING,
            "DNSSEC validation fails (the resolver says: DNSKEY Missing (EDE 9)",
        ),
        (dns.edns.EDECode.NO_REACHABLE_AUTHORITY, "cannot reach the authoritative servers of ede.test"),
        (dns.edns.EDECode.PROHIBITED, "the resolver's own policy denies the name"),
        (
            dns.edns.EDECode.OTHER,
            "no usable answer from the zone's authoritative servers (server failure, lame",
        ),
    ],
)
def test_a_servfail_theory_names_the_cause_the_resolver_gives(code: int, cause: str) -> None:
    theory = _theory(R.dns_servfail, dns.rcode.SERVFAIL, dns.edns.EDEOption(code))
    assert theory is not None and cause in theory.title
    assert any(f"(EDE {int(code)})" in line for line in theory.evidence)


def test_a_name_the_resolver_blocks_is_not_called_a_missing_record() -> None:
    blocked = _theory(
        R.dns_nxdomain, dns.rcode.NXDOMAIN, dns.edns.EDEOption(dns.edns.EDECode.BLOCKED, "malware")
    )
    assert blocked is not None
    assert "the resolver's own policy denies the name (it says: Blocked (EDE 15): malware)" in blocked.title
    assert not any("Create the" in fix for fix in blocked.fix)
    missing = _theory(R.dns_nxdomain, dns.rcode.NXDOMAIN)
    assert missing is not None and "the DNS record is missing" in missing.title


def test_the_code_is_read_from_the_name_not_from_the_resolvers_own_text() -> None:
    # A resolver's free text that mentions another code does not change what the code says.
    theory = _theory(
        R.dns_servfail, dns.rcode.SERVFAIL, dns.edns.EDEOption(dns.edns.EDECode.OTHER, "not (EDE 6) at all")
    )
    assert theory is not None and "DNSSEC validation fails" not in theory.title


def test_a_resolvers_control_characters_are_escaped_not_passed_on() -> None:
    response = dns.message.make_response(dns.message.make_query(NAME, "A", use_edns=0))
    hostile = "\x1b[2J\x1b]0;owned\x07 bogus"
    response.use_edns(0, 0, 1232, options=[dns.edns.EDEOption(dns.edns.EDECode.DNSSEC_BOGUS, hostile)])
    [said] = extended_errors(dns.message.from_wire(response.to_wire()))
    assert said == "DNSSEC Bogus (EDE 6): \\x1b[2J\\x1b]0;owned\\x07 bogus"
    assert all(c.isprintable() for c in said)


# -- malformed EDNS options: the records are still read, as a stub resolver reads them ------------------


def with_options(query: dns.message.Message, options: list[tuple[int, bytes]]) -> bytes:
    """An answer with one address and an OPT record carrying ``options`` as raw (code, bytes) pairs."""
    response = hostile.answer_with(query, ["127.0.10.57"])
    response.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(code, data) for code, data in options])
    return response.to_wire(max_size=65535)


def test_an_extended_error_whose_text_is_not_utf8_keeps_the_answer_and_the_code() -> None:
    # RFC 8914 asks for UTF-8; dnspython refuses the whole message when it is not.
    bad_text = [(15, (7).to_bytes(2, "big") + b"expired \xff\xfe\x1b[31m")]
    with hostile.HostileDns(lambda query, wire: [with_options(query, bad_text)]) as server:
        answer = resolve_all(NAME, [server.resolver], timeout=TIMEOUT, families=("A",)).answers[0]
    assert answer.ok and answer.addresses == ["127.0.10.57"] and answer.error is None
    assert answer.extended_errors == ["Signature Expired (EDE 7): expired \ufffd\ufffd\\x1b[31m"]


def test_a_malformed_client_subnet_option_is_left_out_and_the_answer_read() -> None:
    garbage = [(8, b"\x00\x09\xff")]  # ECS with an unknown family and a cut-off address
    with hostile.HostileDns(lambda query, wire: [with_options(query, garbage)]) as server:
        answer = resolve_all(NAME, [server.resolver], timeout=TIMEOUT, families=("A",)).answers[0]
    assert answer.ok and answer.addresses == ["127.0.10.57"] and answer.extended_errors == []


def test_a_malformed_record_is_still_a_bad_answer() -> None:
    def cut_record(query: dns.message.Message, wire: bytes) -> list[bytes]:
        answer = hostile.answer_with(query, ["127.0.10.57"]).to_wire()
        return [answer[:-2] + b"\x00\x09"]  # the A record's RDATA says 9 bytes, fewer follow

    with hostile.HostileDns(cut_record) as server:
        answer = resolve_all(NAME, [server.resolver], timeout=TIMEOUT, families=("A",)).answers[0]
    assert answer.rcode == "BADANSWER" and answer.failure is Failure.DNS_BAD_ANSWER


OPTION_CODES = st.one_of(st.sampled_from([3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]), st.integers(0, 65535))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(OPTION_CODES, st.binary(max_size=40)), max_size=6))
def test_any_options_leave_the_records_readable(options: list[tuple[int, bytes]]) -> None:
    from pytest_reachability.probes.dns import _read_answer

    query = dns.message.make_query(NAME, "A", use_edns=0)
    wire = with_options(query, options)
    why, response = _read_answer(query, wire)
    assert why is None and response is not None
    assert [str(item) for rrset in response.answer for item in rrset] == ["127.0.10.57"]
    for line in extended_errors(response):  # whatever the bytes: one printable line
        assert line.isprintable() and len(line) < 300


def test_an_extended_error_text_thousands_of_bad_bytes_long_is_read_and_cut() -> None:
    # Each bad byte becomes U+FFFD (three bytes): the repaired option must still fit its length field.
    huge = [(15, (7).to_bytes(2, "big") + b"\xff" * 22_000)]
    with hostile.HostileDns(lambda query, wire: [with_options(query, huge)]) as server:
        answer = resolve_all(NAME, [server.resolver], timeout=TIMEOUT, families=("A",)).answers[0]
    assert answer.ok and answer.addresses == ["127.0.10.57"]
    (said,) = answer.extended_errors
    assert said.startswith("Signature Expired (EDE 7): \ufffd") and len(said) < 300


def test_a_client_subnet_option_with_bytes_left_over_is_left_out() -> None:
    # Source prefix 24 needs 3 address bytes; 4 follow. Inside the OPT record dnspython refuses the rest.
    too_long = [(8, (1).to_bytes(2, "big") + bytes([24, 0]) + bytes([192, 0, 2, 1]))]
    with hostile.HostileDns(lambda query, wire: [with_options(query, too_long)]) as server:
        answer = resolve_all(NAME, [server.resolver], timeout=TIMEOUT, families=("A",)).answers[0]
    assert answer.ok and answer.addresses == ["127.0.10.57"]


def test_the_tcp_retry_of_a_truncated_answer_is_read_as_tolerantly() -> None:
    bad_text = [(15, (7).to_bytes(2, "big") + b"\xff")]

    def truncated(query: dns.message.Message, wire: bytes) -> list[bytes]:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.TC
        return [response.to_wire()]

    def whole(conn, query: dns.message.Message, server) -> None:
        conn.sendall(hostile.tcp_framed(dns.message.from_wire(with_options(query, []))))

    def whole_with_bad_option(conn, query: dns.message.Message, server) -> None:
        answer = with_options(query, bad_text)
        conn.sendall(len(answer).to_bytes(2, "big") + answer)

    for tcp in (whole, whole_with_bad_option):
        with hostile.HostileDns(truncated, tcp) as server:
            answer = resolve_all(NAME, [server.resolver], timeout=TIMEOUT, families=("A",)).answers[0]
            assert server.tcp_connections == 1
        assert answer.ok and answer.addresses == ["127.0.10.57"], (tcp.__name__, answer)
