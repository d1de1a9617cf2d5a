"""Seeded secrets: every way a run learns a secret, echoed back in every encoding, reaches no output.

The secrets: the target's password, a kubeconfig token, a DSN password holding "@", environment values
under secret-like names (MYSQL_PWD, DB_PASS, GH_PAT, SIGNING_KEY, JWT, SLACK_WEBHOOK, APP_PASSPHRASE), a
``--mask`` value and a ``mask-env`` variable. A real loopback target echoes them back in its body,
headers and a redirect, URL-encoded, JSON-escaped, HTML-escaped and in base64; a fake Kubernetes API
server echoes the token in its 401; libpq, urllib3 and the kubernetes client quote them in their errors;
a test prints, logs, asserts, records and attaches them in every form, shell-quoted curl lines included.
The built-in suite runs with every output on -- terminal (-rA, live logs), pytest-html, JUnit, results
JSON, incident report, ``--log-file`` and the history database -- serially and under ``-n 2``, and no
output may hold any form of any secret.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shlex
import shutil
import socket
import sqlite3
import textwrap
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import servers
import yaml
from test_diagnosis_rules import SUITES, run_builtin_suite

TARGET_USER = "deploy"
TARGET_PASSWORD = "Tgt pw/\"q'<&>+=9"
KUBE_TOKEN = "kube-Tok3n-7/+=Zq"
DSN_PASSWORD = "dsn@Pw-4x"  # libpq reads "x@127.0.0.1" ... as the host: "Pw-4x@127.0.0.1"
ENVIRONMENT = {
    "MYSQL_PWD": "my-Pwd\"x'<y>&z/1",
    "DB_PASS": "dbPass+Val=ue/2 sp",
    "GH_PAT": "ghp_" + "Aa0Bb1Cc2Dd3Ee4Ff5Gg6Hh7Ii8Jj9Kk0Ll1",
    "SIGNING_KEY": 'sign\\Key-"3"-<>',
    "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWVkZWQifQ.c2lnbmF0dXJlLXNlZWRlZA",
    "SLACK_WEBHOOK": "https://hooks.slack.test/services/T000/B000/Wh00kS3cr3tPath",
    "APP_PASSPHRASE": "pass phrase & more 'words'",
    "BUILD_LABEL": "Plain-Mask-Value-5",  # a name nothing would guess: masked only because of --mask
    "DEPLOY_NONCE": "N0nce-Value-6<>",  # masked only because mask-env names it
}
SECRETS = [TARGET_PASSWORD, KUBE_TOKEN, DSN_PASSWORD, "Pw-4x@127.0.0.1", *ENVIRONMENT.values()]


def forms(secret: str) -> dict[str, str]:
    """The encodings checked in the outputs, computed here independently of the masking code."""
    found = {
        "raw": secret,
        "url": quote(secret, safe=""),
        "url-path": quote(secret),
        "url-plus": quote_plus(secret),
        "shell": shlex.quote(secret),
        "json": json.dumps(secret)[1:-1],
        "json-ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "html": html.escape(secret),
        "html-noquote": html.escape(secret, quote=False),
        "html-of-json": html.escape(json.dumps(secret)[1:-1]),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64-url": base64.urlsafe_b64encode(secret.encode()).decode(),
    }
    return {name: value for name, value in found.items() if len(value) >= 8}


# --------------------------------------------------------------------------- the peers


def echo_block(authorization: str) -> str:
    """Every secret in every encoding, and the Authorization header the client sent."""
    lines = [f"auth={authorization}"]
    for secret in SECRETS:
        lines += [
            f"json {json.dumps(secret)}",
            f"html {html.escape(secret)}",
            f"url {quote(secret, safe='')}",
            f"b64 {base64.b64encode(secret.encode()).decode()}",
        ]
    return "\n".join(lines)


def echo_headers() -> dict[str, str]:
    return {
        "X-Echo-B64": base64.b64encode(ENVIRONMENT["DB_PASS"].encode()).decode(),
        "X-Echo-Url": quote(ENVIRONMENT["APP_PASSPHRASE"], safe=""),
        "Set-Cookie": f"sid={quote(ENVIRONMENT['SIGNING_KEY'], safe='')}; Path=/",
        "X-Debug": f"webhook={ENVIRONMENT['SLACK_WEBHOOK']} "
        f"nonce={quote(ENVIRONMENT['DEPLOY_NONCE'], safe='')}",
    }


def authorization_of(request: bytes) -> str:
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"authorization":
            return value.strip().decode("latin-1")
    return ""


def echoing_target(conn: socket.socket, server: servers.LoopbackServer) -> None:
    """/health redirects with secrets in the query; /health/ok
    is healthy and echoes; /echo echoes everything."""
    request = servers.read_request(conn)
    path = servers.request_path(request)
    if path == "/health":
        location = (
            f"/health/ok?token={quote(ENVIRONMENT['GH_PAT'], safe='')}"
            f"&state={quote(ENVIRONMENT['MYSQL_PWD'], safe='')}&jwt={ENVIRONMENT['JWT']}"
        )
        conn.sendall(servers.http_answer(302, b"", "Found", {"Location": location, **echo_headers()}))
        return
    document = {
        "status": "ok",
        "dependencies": {"database": {"status": "ok", "latency_ms": 1}},
        "echo": echo_block(authorization_of(request)),
    }
    body = (
        json.dumps(document).encode()
        if path.startswith("/health")
        else echo_block(authorization_of(request)).encode()
    )
    kind = "application/json" if path.startswith("/health") else "text/html"
    conn.sendall(servers.http_answer(200, body, "OK", {"Content-Type": kind, **echo_headers()}))


def kube_api_echoing_the_token(conn: socket.socket, server: servers.LoopbackServer) -> None:
    """Any request: 401 whose Status message quotes the
    Authorization header, as a leaky proxy in front might."""
    request = servers.read_request(conn)
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "Unauthorized",
            "code": 401,
            "message": f"Unauthorized: rejected {authorization_of(request)}",
        }
    ).encode()
    conn.sendall(
        servers.http_answer(
            401,
            body,
            "Unauthorized",
            {"Content-Type": "application/json", "Www-Authenticate": f"Bearer realm={KUBE_TOKEN}"},
        )
    )


LEAKY_TEST = textwrap.dedent("""
    import base64, html, json, logging, os, shlex
    from urllib.parse import quote

    import pytest
    import requests
    import yaml

    NAMES = %(names)r


    def secrets(target):
        kube = yaml.safe_load(open(os.environ["KUBECONFIG"]))["users"][0]["user"]["token"]
        return [target.password, kube, os.environ["APP_DATABASE_DSN"]] + [os.environ[name] for name in NAMES]


    def every_form(values):
        lines = []
        for s in values:
            curl = "curl -H " + shlex.quote("X-Token: " + s) + " " + shlex.quote("https://x.test/?q=" + s)
            encoded = base64.b64encode(s.encode()).decode()
            lines += [s, quote(s, safe=""), json.dumps(s), html.escape(s), encoded, curl]
        return lines


    def test_fails_with_every_form(target, evidence, record_property, http):
        values = secrets(target)
        response = http.get("/echo")
        evidence.record("app_check", {"section": "other", "check": "echo", "ok": False,
                                      "observed": response.text, "expected": every_form(values),
                                      "headers": dict(response.headers)})
        record_property("forms", "\\n".join(every_form(values)))
        record_property("echo_headers", json.dumps(dict(response.headers)))
        for line in every_form(values) + [response.text, repr(dict(response.headers))]:
            print(line)
            logging.getLogger("leaky").warning(line)
        assert False, "\\n".join(every_form(values) + [response.text])


    def test_third_party_errors_quote_secrets(target):
        import kubernetes
        import psycopg

        messages = []
        try:
            psycopg.connect(os.environ["APP_DATABASE_DSN"], connect_timeout=2)
        except psycopg.Error as error:
            messages.append(f"libpq: {error}")
        pat, key = os.environ["GH_PAT"], os.environ["SIGNING_KEY"]
        try:
            port = os.environ["REFUSED_PORT"]
            requests.get(f"http://127.0.0.1:{port}/x?token={quote(pat)}&key={quote(key)}", timeout=2)
        except requests.RequestException as error:
            messages.append(f"urllib3: {error}")
        client = kubernetes.config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
        try:
            kubernetes.client.CoreV1Api(client).list_namespaced_pod("default", _request_timeout=3)
        except kubernetes.client.ApiException as error:
            messages.append(f"kubernetes: {error}")
            logging.getLogger("leaky").exception("the cluster said no")
        for message in messages:
            print(message)
            logging.getLogger("leaky").error(message)
        assert len(messages) == 3 and False, "\\n".join(messages)


    def test_passes_and_attaches_every_form(target, extras):
        import pytest_html

        lines = every_form(secrets(target))
        print("\\n".join(lines))
        extras.append(pytest_html.extras.text("\\n".join(lines), name="request log"))
        extras.append(pytest_html.extras.html("<pre>" + html.escape("\\n".join(lines)) + "</pre>"))
        extras.append(pytest_html.extras.json({"lines": lines}))
""") % {"names": sorted(ENVIRONMENT)}

CONFIG = textwrap.dedent("""
    [tool.reachability]
    mask-env = ["DEPLOY_NONCE"]

    [tool.reachability.database]
    field = "dependencies.database.status"
    expect = "ok"
    dsn-env = "APP_DATABASE_DSN"
""")


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist"])
def test_no_form_of_any_secret_reaches_any_output(tmp_path: Path, workers: str | None) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    with (
        servers.LoopbackServer(echoing_target) as target,
        servers.LoopbackServer(kube_api_echoing_the_token) as api,
    ):
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "seeded",
                    "clusters": [{"name": "seeded", "cluster": {"server": f"http://127.0.0.1:{api.port}"}}],
                    "users": [{"name": "seeded", "user": {"token": KUBE_TOKEN}}],
                    "contexts": [
                        {
                            "name": "seeded",
                            "context": {"cluster": "seeded", "user": "seeded", "namespace": "default"},
                        }
                    ],
                }
            )
        )
        (tmp_path / "reachability.toml").write_text(CONFIG)
        shutil.copytree(SUITES, tmp_path / "suites", ignore=shutil.ignore_patterns("__pycache__"))
        (tmp_path / "suites" / "test_99_leaky.py").write_text(LEAKY_TEST)
        env = {
            **ENVIRONMENT,
            "KUBECONFIG": str(kubeconfig),
            "REFUSED_PORT": str(servers.refused_port()),
            "APP_DATABASE_DSN": f"postgresql://app:{DSN_PASSWORD}@127.0.0.1:1/app",
        }
        out = tmp_path / "out"
        args = [
            f"--target=http://{TARGET_USER}:{quote(TARGET_PASSWORD, safe='')}@127.0.0.1:{target.port}",
            f"--reachability-config={tmp_path / 'reachability.toml'}",
            "--mask",
            ENVIRONMENT["BUILD_LABEL"],
            "--probe-timeout",
            "3",
            "--html",
            "out/report.html",
            "--self-contained-html",
            "--junitxml",
            "out/junit.xml",
            "--results-json",
            "out/results.json",
            "--incident-report",
            "out/incident.md",
            "--results-db",
            "out/history.sqlite",
            "--log-file",
            "out/run.log",
            "--log-level=INFO",
            "--log-cli-level=WARNING",
            "-rA",
        ]
        if workers:
            args += ["-n", workers]
        run = run_builtin_suite(tmp_path, *args, env=env)
    assert run.returncode == 1, run.stdout[-4000:] + run.stderr[-2000:]

    outputs = {"terminal": run.stdout + run.stderr}
    for path in sorted(out.iterdir()):
        if path.suffix not in (".sqlite", ".sqlite-wal", ".sqlite-shm"):
            outputs[path.name] = path.read_text(errors="replace")
    outputs["history rows"] = history_text(out / "history.sqlite")
    assert {
        "terminal",
        "report.html",
        "junit.xml",
        "results.json",
        "incident.md",
        "run.log",
        "history rows",
    } <= set(outputs)

    # The run did what it should: the leaky tests ran and
    # failed, the database check met libpq, the cluster refused.
    terminal = outputs["terminal"]
    assert "FAILED suites/test_99_leaky.py::test_fails_with_every_form" in terminal, terminal[-3000:]
    assert "FAILED suites/test_99_leaky.py::test_third_party_errors_quote_secrets" in terminal
    assert "PASSED suites/test_99_leaky.py::test_passes_and_attaches_every_form" in terminal
    # libpq words a name it cannot resolve differently across psycopg's wheels.
    assert re.search(
        r"libpq: (failed to resolve host|connection is bad: Name or service not known)", terminal
    )
    assert "kubernetes: (401)" in terminal and "urllib3:" in terminal
    assert (
        "suites/test_12_database.py" in terminal
        and "masked too: 1 --mask value; variables DEPLOY_NONCE" in terminal
    )

    leaks = [
        f"{output}: {name} form of secret #{SECRETS.index(secret)}"
        for output, text in outputs.items()
        for secret in SECRETS
        for name, form in forms(secret).items()
        if form in text
    ]
    assert not leaks, "\n".join(leaks)
    assert "***" in outputs["report.html"] and "***" in outputs["junit.xml"] and "***" in outputs["run.log"]


def history_text(path: Path) -> str:
    """Every text value of every row of the history database, and the raw bytes of its files."""
    assert path.exists(), "the history database was not written"
    connection = sqlite3.connect(path)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        values = [
            str(value)
            for table in tables
            for row in connection.execute(f"SELECT * FROM {table}")
            for value in row
        ]
    finally:
        connection.close()
    raw = "".join(p.read_bytes().decode("latin-1") for p in path.parent.glob(path.name + "*"))
    assert any("suites/test_99_leaky.py" in value for value in values)
    return "\n".join(values) + raw
