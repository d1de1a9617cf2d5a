"""TLS alerts a server ends the handshake with, from real TLS servers on loopback (certificates from
trustme): the probe names the alert the server sent and what it means, the evidence keeps it, curl agrees
on the class, and the handshake theory says the cause the alert gives instead of guessing."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Callable

import diagnosis_evidence as E
import pytest
import servers
import trustme

from pytest_reachability.config import parse_target
from pytest_reachability.diagnosis import rules as R
from pytest_reachability.probes import http, tls
from pytest_reachability.probes.failures import Failure
from pytest_reachability.sandbox.control_plane import _die_with_parent

TIMEOUT = 2.0
# Alerts OpenSSL reports by name when a server sends them during the handshake: all the ssl module lists,
# less close_notify (not an error: the handshake just ends) and unknown_psk_identity (reported as a
# generic failure, since no PSK was offered).
SENT_BY_NAME = sorted(
    set(tls.ALERT_NUMBERS) - {"close_notify", "unknown_psk_identity", "certificate_required"}
)


def server_context(
    certificate: trustme.LeafCert, configure: Callable[[ssl.SSLContext], None]
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    configure(context)
    return context


def sends(alert: str) -> Callable[[ssl.SSLContext], None]:
    """A server that ends every handshake with ``alert`` once it has read the name asked for."""

    def configure(context: ssl.SSLContext) -> None:
        context.sni_callback = lambda _socket, _name, _context: tls.ALERT_NUMBERS[alert]

    return configure


def probed(ca: trustme.CA, ca_file: str, configure: Callable[[ssl.SSLContext], None]) -> tls.TlsResult:
    context = server_context(ca.issue_cert(servers.HOST), configure)
    with servers.LoopbackServer(servers.healthy(), tls=context) as server:
        target = parse_target(f"https://{servers.HOST}:{server.port}")
        return tls.probe_address(target, "127.0.0.1", timeout=TIMEOUT, ca_bundle=ca_file)


@pytest.mark.parametrize("alert", SENT_BY_NAME)
def test_every_alert_a_server_sends_is_named_with_its_number(
    ca: trustme.CA, ca_file: str, alert: str
) -> None:
    result = probed(ca, ca_file, sends(alert))
    assert result.failure is Failure.TLS_HANDSHAKE
    assert result.tls is not None and result.tls.alert == alert
    assert f"the server sent alert {alert} ({tls.ALERT_NUMBERS[alert]})" in result.detail
    assert result.to_evidence()["tls"]["alert"] == alert


def test_a_server_that_requires_a_client_certificate_over_tls_1_2(ca: trustme.CA, ca_file: str) -> None:
    def mutual(context: ssl.SSLContext) -> None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.maximum_version = ssl.TLSVersion.TLSv1_2

    context = server_context(ca.issue_cert(servers.HOST), mutual)
    with servers.LoopbackServer(servers.healthy(), tls=context) as server:
        target = parse_target(f"https://{servers.HOST}:{server.port}")
        result = tls.probe_address(target, "127.0.0.1", timeout=TIMEOUT, ca_bundle=ca_file)
        assert servers.run_curl(result.curl, "--max-time", "5") == Failure.TLS_HANDSHAKE.curl_exit
    assert result.tls is not None and result.tls.alert == "handshake_failure"
    assert "requires a client certificate (mutual TLS)" in result.detail


def test_a_server_of_tls_1_1_and_older_answers_protocol_version(ca: trustme.CA, ca_file: str) -> None:
    def old(context: ssl.SSLContext) -> None:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the point: a server this old
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1

    result = probed(ca, ca_file, old)
    assert result.tls is not None and result.tls.alert == "protocol_version"
    assert "speaks no TLS version this client offers" in result.detail


def test_no_cipher_in_common_is_a_handshake_failure(ca: trustme.CA, ca_file: str) -> None:
    def anonymous_only(context: ssl.SSLContext) -> None:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers("aNULL")

    assert probed(ca, ca_file, anonymous_only).tls.alert == "handshake_failure"


def test_reasons_that_are_not_alerts_are_not_read_as_alerts() -> None:
    for reason in (
        "WRONG_VERSION_NUMBER",
        "CERTIFICATE_VERIFY_FAILED",
        "TLSV1_ALERT_NO_SUCH_THING",
        "",
        None,
    ):
        assert tls.received_alert(reason) is None
    assert tls.received_alert("TLSV13_ALERT_CERTIFICATE_REQUIRED") == "certificate_required"
    assert tls.received_alert("TLSV1_UNRECOGNIZED_NAME") == "unrecognized_name"
    # Without a reason (the ssl module has no name for it), OpenSSL's text says which alert it was.
    text = "[SSL] tlsv1 alert no application protocol (_ssl.c:1006)"
    assert tls.received_alert(None, text) == "no_application_protocol"
    assert tls.received_alert("SOMETHING_ELSE", text) is None


def _theory(ca: trustme.CA, ca_file: str, configure: Callable[[ssl.SSLContext], None]):
    result = probed(ca, ca_file, configure)
    facts = E.facts_of(("tls", result.to_evidence()), failed={"tls": result.detail}, host=servers.HOST)
    return R.tls_handshake(facts)


def test_the_handshake_theory_gives_the_cause_the_alert_names(ca: trustme.CA, ca_file: str) -> None:
    theory = _theory(ca, ca_file, sends("unrecognized_name"))
    assert theory is not None
    assert (
        "the server ends it with alert unrecognized_name (112): the server has no certificate or virtual "
        "host for the name sent (SNI)" in theory.title
    )
    assert any("Ingress's `tls` hosts" in fix and servers.HOST in fix for fix in theory.fix)
    other = _theory(ca, ca_file, sends("decode_error"))
    assert other is not None and "alert decode_error (50)" in other.title
    assert other.confidence < theory.confidence


@pytest.fixture
def openssl_mutual_tls_1_3(ca: trustme.CA, ca_file: str, tmp_path):
    """OpenSSL's own test server (``openssl s_server``) on loopback, TLS 1.3 only, requiring a client
    certificate: it completes the handshake and sends certificate_required when the client sent none."""
    pem = tmp_path / "server.pem"
    ca.issue_cert(servers.HOST).private_key_and_cert_chain_pem.write_to_path(str(pem))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(pem), "-Verify", "1"]
    command += ["-CAfile", ca_file, "-www", "-tls1_3", "-quiet"]
    process = subprocess.Popen(  # killed with this process, even by SIGKILL (the control plane's way)
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_die_with_parent,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"openssl s_server did not start: {process.stderr.read()[:300]!r}")
                time.sleep(0.05)
        yield port
    finally:
        process.kill()
        process.wait(10)
        process.stderr.close()


def test_a_tls_1_3_server_asking_for_a_client_certificate_says_so_after_the_handshake(
    openssl_mutual_tls_1_3: int, ca_file: str
) -> None:
    target = parse_target(f"https://{servers.HOST}:{openssl_mutual_tls_1_3}")
    result = http.probe_address(target, "127.0.0.1", timeout=TIMEOUT, ca_bundle=ca_file)
    assert result.failure is Failure.RECV_ERROR  # as curl says it (exit 56)
    assert (
        "the server sent TLS alert certificate_required (116): the server requires a client certificate"
        in (result.detail)
    )
    assert result.tls is not None and result.tls.alert == "certificate_required"
    # The diagnosis reads it as the handshake's verdict (mutual TLS), not as a backend that crashed.
    evidence = {**result.to_evidence(), "source": "dns"}
    facts = E.facts_of(("http_probe", evidence), failed={"api-health": result.detail}, host=servers.HOST)
    theory = R.tls_handshake(facts)
    assert theory is not None and "alert certificate_required (116)" in theory.title
    assert any("requires mutual TLS" in fix for fix in theory.fix)
    assert R.edge_reset(facts) is None
