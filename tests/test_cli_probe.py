"""``python -m pytest_reachability probe``: one line per address, JSON on demand, exit codes 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import servers

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest_reachability", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_healthy_address_exits_zero_with_one_line() -> None:
    with servers.LoopbackServer(servers.healthy()) as server:
        completed = run_cli(
            "probe", f"http://{servers.HOST}:{server.port}", "--address", "127.0.0.1", "--timeout", "2"
        )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"127.0.0.1:{server.port} http ")
    assert "connect " in lines[0] and "ttfb " in lines[0] and "status 200 ok" in lines[0]


def test_one_failing_address_exits_one_and_names_the_class() -> None:
    with servers.LoopbackServer(servers.empty_reply) as edge:
        # The edge listens on 127.0.0.1 only; 127.0.0.2 reaches the same port on nothing: refused.
        completed = run_cli(
            "probe",
            f"http://{servers.HOST}:{edge.port}",
            "--address",
            "127.0.0.1",
            "--address",
            "127.0.0.2",
            "--timeout",
            "2",
        )
    assert completed.returncode == 1
    lines = completed.stdout.splitlines()
    address_lines = [line for line in lines if line.startswith("127.0.0.")]
    assert len(address_lines) == 2
    assert "empty_reply" in address_lines[0] and "[curl exit 52]" in address_lines[0]
    assert "tcp_refused" in address_lines[1] and "[curl exit 7]" in address_lines[1]
    assert (
        f"reproduce: curl -v --resolve {servers.HOST}:{edge.port}:127.0.0.1 "
        f"http://{servers.HOST}:{edge.port}/health" in completed.stdout
    )


def test_json_output_has_the_documented_fields() -> None:
    with servers.LoopbackServer(servers.healthy(status=503)) as server:
        completed = run_cli(
            "probe",
            f"http://{servers.HOST}:{server.port}",
            "--address",
            "127.0.0.1",
            "--json",
            "--path",
            "ready",
        )
    assert completed.returncode == 1
    rows = json.loads(completed.stdout)
    assert len(rows) == 1
    row = rows[0]
    assert {"address", "port", "scheme", "status", "failure", "curl_exit", "phases"} <= set(row)
    assert (row["address"], row["port"], row["scheme"], row["status"]) == (
        "127.0.0.1",
        server.port,
        "http",
        503,
    )
    assert row["failure"] == "http_status" and row["curl_exit"] == 22
    assert row["path"] == "/ready"
    assert all(isinstance(ms, (int, float)) for ms in row["phases"].values())


def test_resolves_through_the_given_resolver(tmp_path: Path) -> None:
    if servers.require_tool("dnsmasq") is None:
        pytest.skip("dnsmasq not installed; required when CI=true")
    with (
        servers.LoopbackServer(servers.healthy()) as server,
        servers.Dnsmasq("--address=/api.test/127.0.0.1") as resolver,
    ):
        completed = run_cli(
            "probe",
            f"http://api.test:{server.port}",
            "--resolver",
            resolver.resolver,
            "--timeout",
            "2",
            "--json",
        )
        text = run_cli(
            "probe", f"http://api.test:{server.port}", "--resolver", resolver.resolver, "--timeout", "2"
        )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    rows = json.loads(completed.stdout)
    assert [row["address"] for row in rows] == ["127.0.0.1"]
    assert rows[0]["phases"]["dns"] > 0 and rows[0]["failure"] is None and rows[0]["curl_exit"] == 0
    assert (
        text.stdout.splitlines()[0]
        == f"dns api.test: {resolver.resolver}=127.0.0.1 ({_ms(text.stdout)}ms) -> agree"
    )


def _ms(stdout: str) -> str:
    first = stdout.splitlines()[0]
    return first.split("(", 1)[1].split("ms)", 1)[0]


def test_unresolvable_name_exits_one_with_the_dns_class() -> None:
    with servers.SilentResolver() as dead:
        completed = run_cli(
            "probe", "http://api.test", "--resolver", dead.resolver, "--timeout", "0.5", "--json"
        )
    assert completed.returncode == 1
    rows = json.loads(completed.stdout)
    assert rows[0]["failure"] == "dns_timeout" and rows[0]["curl_exit"] == 6 and rows[0]["address"] == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["probe", "http://[bad"], "invalid target"),
        (["probe", "api.test", "--resolver", "dns.google"], "is not an IP address"),
        (["probe", "api.test", "--address", "not-an-ip"], "--address 'not-an-ip'"),
        (
            ["probe", "api.test", "--timeout", "0"],
            "--timeout: 0 seconds is out of range; expected seconds, a number > 0 and <= 300",
        ),
        (["probe", "api.test", "--timeout", "inf"], "--timeout: inf seconds is out of range"),
        (["probe", "api.test", "--timeout", "1e300"], "--timeout: 1e+300 seconds is out of range"),
        (["probe", "api.test", "--timeout", "nan"], "--timeout: nan seconds is out of range"),
        (["probe", "api.test", "--timeout", "301"], "<= 300"),
        (["probe", "api.test", "--timeout", "soon"], "--timeout: 'soon' is not a number; expected seconds"),
        (["probe", "api.test", "--probe-timeout", "0"], "--timeout: 0 seconds is out of range"),
        (
            ["probe", "https://api.test", "--ca-bundle", "/nonexistent/ca.pem"],
            "--ca-bundle: file '/nonexistent/ca.pem' does not exist",
        ),
        (["probe", "api.test", "--health-path", "/health#x"], "contains a fragment"),
        (["probe", "api.test", "--resolver", "1.1.1.1:"], "port '' is not a number"),
        (["probe", "api.test", "--resolver", "::1:53"], "ambiguous: write [::1]:53 or [::1:53]"),
        (["probe", "api.test", "--resolver", "[::1%lo]:53"], "only meaningful on a link-local"),
        (["probe", "api.test", "--mask", "ab"], "--mask: a value of 2 characters is too short"),
        (["probe"], "required"),
        ([], "required"),
        (["teleport"], "invalid choice"),
    ],
)
def test_bad_input_exits_two_with_one_line(args: list[str], needle: str) -> None:
    completed = run_cli(*args)
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert needle in completed.stderr and "Traceback" not in completed.stderr


def test_help_lists_the_probe_command() -> None:
    completed = run_cli("--help")
    assert completed.returncode == 0 and "probe" in completed.stdout


TARGET_PASSWORD = "Tgt-Pw-3131"


def leaky_server(conn, server) -> None:
    """Answers 503 with a session cookie, a redirect carrying a token, and the target password in the body."""
    servers.read_request(conn)
    conn.sendall(
        servers.http_answer(
            503,
            f"debug: login user:{TARGET_PASSWORD} failed; Authorization: Bearer body-tok-77aa".encode(),
            "Unavailable",
            {"Set-Cookie": "session=cookie-val-99bb; Path=/", "Location": "/login?token=redirect-tok-55cc"},
        )
    )


@pytest.mark.parametrize("json_output", [False, True], ids=["lines", "json"])
def test_printed_results_mask_headers_urls_body_and_the_target_password(json_output: bool) -> None:
    with servers.LoopbackServer(leaky_server) as server:
        args = [
            "probe",
            f"http://user:{TARGET_PASSWORD}@{servers.HOST}:{server.port}",
            "--address",
            "127.0.0.1",
            "--timeout",
            "2",
        ]
        completed = run_cli(*args, *(["--json"] if json_output else []))
    assert completed.returncode == 1, completed.stderr
    output = completed.stdout + completed.stderr
    for secret in (TARGET_PASSWORD, "cookie-val-99bb", "redirect-tok-55cc", "body-tok-77aa"):
        assert secret not in output, secret
    if json_output:
        row = json.loads(completed.stdout)[0]
        assert row["status"] == 503 and "***" in json.dumps(row)
    else:
        assert "status 503" in completed.stdout and "reproduce: curl" in completed.stdout


def test_the_plugins_option_names_work_here_too() -> None:
    with servers.LoopbackServer(servers.healthy()) as server:
        completed = run_cli(
            "probe",
            f"http://{servers.HOST}:{server.port}",
            "--address",
            "127.0.0.1",
            "--health-path",
            "/ready",
            "--probe-timeout",
            "2",
            "--json",
        )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)[0]["path"] == "/ready"


RESOLVER_SPELLINGS = [
    "system",
    "1.1.1.1",
    "1.1.1.1:53",
    "1.1.1.1:",
    "1.1.1.1:0",
    "::1",
    "::1:53",
    "[::1]:53",
    "[::1]",
    "[fe80::1%eth0]:53",
    "[fe80::1%25eth0]:53",
    "[::1%lo]:53",
    "fe80::1%",
    "dns.google",
    "01.1.1.1",
    "[::1]x",
    "1.2.3.4:5:6",
    "[2001:db8::53]:5353",
]


@pytest.mark.parametrize("spelling", RESOLVER_SPELLINGS)
def test_probe_and_plugin_accept_and_refuse_the_same_resolvers(spelling: str) -> None:
    from pytest_reachability.config import parse_resolver
    from pytest_reachability.probes import dns

    try:
        canonical = parse_resolver(spelling)
    except ValueError:
        canonical = None
    if spelling == "system" or canonical == "system":
        return
    try:
        endpoint = dns.parse_resolver(spelling)
    except ValueError:
        endpoint = None
    assert (canonical is None) == (endpoint is None), (spelling, canonical, endpoint)
    completed = run_cli(
        "probe", "127.0.0.1", "--resolver", spelling, "--address", "127.0.0.1", "--timeout", "0.2"
    )
    assert (completed.returncode == 2) == (canonical is None), (spelling, completed.stderr)


def test_probe_masks_what_the_plugin_masks() -> None:
    """Environment secrets under secret-like names and --mask values are masked in lines and JSON alike."""
    import os

    def echoing(conn, server) -> None:
        servers.read_request(conn)
        conn.sendall(
            servers.http_answer(
                503,
                b"pat=Gh-Pat-Value-31 key=Sign-Key-Value-32 label=Plain-Label-33",
                "Unavailable",
                {"X-Echo": "Gh-Pat-Value-31", "X-Label": "Plain-Label-33"},
            )
        )

    environment = {**os.environ, "GH_PAT": "Gh-Pat-Value-31", "SIGNING_KEY": "Sign-Key-Value-32"}
    with servers.LoopbackServer(echoing) as server:
        for extra in ([], ["--json"]):
            completed = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest_reachability",
                    "probe",
                    f"http://{servers.HOST}:{server.port}",
                    "--address",
                    "127.0.0.1",
                    "--timeout",
                    "2",
                    "--mask",
                    "Plain-Label-33",
                    *extra,
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
                env=environment,
                check=False,
            )
            assert completed.returncode == 1, completed.stderr
            output = completed.stdout + completed.stderr
            for secret in ("Gh-Pat-Value-31", "Sign-Key-Value-32", "Plain-Label-33"):
                assert secret not in output, (extra, secret)


def test_usage_errors_mask_what_was_typed() -> None:
    completed = run_cli("probe", "https://user:Typed-Pw-44@api.test", "--timeout", "soon")
    assert completed.returncode == 2 and "Typed-Pw-44" not in completed.stderr
    completed = run_cli("probe", "ghp-typed-token-55@api.test:99999")
    assert completed.returncode == 2 and "ghp-typed-token-55" not in completed.stderr
    completed = run_cli("probe", "api.test", "--token=Unknown-Opt-66")  # argparse quotes unknown options
    assert (
        completed.returncode == 2
        and "Unknown-Opt-66" not in completed.stderr
        and completed.stderr.count("\n") == 1
    )


def test_addresses_beyond_the_cap_are_named_as_not_probed() -> None:
    import hostile
    from test_hostile_dns import tcp_answers, truncated

    addresses = hostile.many_addresses(40)
    port = servers.refused_port()
    with hostile.HostileDns(truncated, tcp_answers(addresses)) as resolver:
        completed = run_cli(
            "probe", f"http://api.hostile.test:{port}", "--resolver", resolver.resolver, "--timeout", "3"
        )
    assert completed.returncode == 1, completed.stderr
    lines = completed.stdout.splitlines()
    assert "24 more addresses not probed (at most 16 per family)" in lines[1], lines[:3]
    assert sum(1 for line in lines if line.startswith("127.1.")) == 16
