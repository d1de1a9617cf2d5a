"""The failure taxonomy: the documented table (docs/architecture.md) is
what the enum says (curl exit codes, phases, one-line wording)."""

from __future__ import annotations

import json

import pytest

from pytest_reachability.probes.failures import Failure, failure_from_name

# The failure taxonomy (docs/architecture.md): class -> curl exit code.
DESIGN_TABLE = {
    "dns_nxdomain": 6,
    "dns_no_answer": 6,
    "dns_timeout": 6,
    "dns_servfail": 6,
    "tcp_refused": 7,
    "tcp_timeout": 28,
    "tls_handshake": 35,
    "tls_cert_expired": 60,
    "tls_hostname": 60,
    "tls_untrusted": 60,
    "empty_reply": 52,
    "recv_error": 56,
    "read_timeout": 28,
    "http_status": 22,
    "body_mismatch": None,
}


@pytest.mark.parametrize(("name", "curl_exit"), sorted(DESIGN_TABLE.items()))
def test_design_table_classes_exist_with_their_curl_exit(name: str, curl_exit: int | None) -> None:
    member = Failure(name)
    assert member.value == name
    assert member.curl_exit == curl_exit


def test_bad_response_accepts_both_curl_codes_of_the_design() -> None:
    assert Failure.BAD_RESPONSE.curl_exits == (1, 8)
    assert Failure.BODY_MISMATCH.curl_exits == ()


@pytest.mark.parametrize("member", list(Failure), ids=lambda member: member.value)
def test_every_member_has_phase_and_one_line_wording(member: Failure) -> None:
    assert member.phase in {"dns", "connect", "tls", "http"}
    assert (
        member.value.startswith(member.phase)
        or member.phase == "http"
        or (member.phase == "connect" and member.value.startswith("tcp_"))
    )
    assert member.wording and "\n" not in member.wording
    if member.curl_exit is not None:
        assert f"({member.curl_exit})" in member.wording
    assert str(member) == member.value


def test_names_are_unique_json_strings() -> None:
    names = [member.value for member in Failure]
    assert len(names) == len(set(names))
    assert json.loads(json.dumps(names)) == names


def test_the_incident_class_reads_like_curl() -> None:
    assert (
        Failure.EMPTY_REPLY.wording
        == "TCP connected, request sent, closed with zero bytes (curl: (52) Empty reply from server)"
    )


def test_failure_from_name() -> None:
    assert failure_from_name("tcp_timeout") is Failure.TCP_TIMEOUT
    with pytest.raises(ValueError, match="unknown failure class 'nope'"):
        failure_from_name("nope")
