"""Redaction: every form of secret masked by redact(), the run's known secrets collected, and a full run with
every output on (terminal -rA, JUnit, HTML, JSON, incident report; serial and -n 2) leaking none of them."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import yaml
from test_diagnosis_rules import SUITES, run_builtin_suite

from pytest_reachability.config import resolve_settings
from pytest_reachability.redact import (
    MASK,
    Redactor,
    collect_secrets,
    is_secret_variable,
    kubeconfig_secrets,
    redact,
    redact_target_text,
    secrets_in_value,
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA==' http://h/", "dXNlcjpwYXNzd29yZA"),
        ("Proxy-Authorization: Digest abc123def", "abc123def"),
        ("Cookie: session=9f8e7d6c; theme=dark", "9f8e7d6c"),
        ("set-cookie: sid=77aa88bb; Path=/", "77aa88bb"),
        ("GET https://user:hunter2pw@api.example.com/x", "hunter2pw"),
        ("postgresql://app:dbpass-1234@db:5432/app", "dbpass-1234"),
        ("redis://:onlypass99@cache:6379/0", "onlypass99"),
        ("https://h/cb?code=1&access_token=tok-aaaa1111&x=2", "tok-aaaa1111"),
        ("https://h/x?api_key=key-bbbb2222", "key-bbbb2222"),
        ("https://h/x?sig=sig-cccc3333", "sig-cccc3333"),
        ("host=db user=app password=pw-dddd4444 dbname=app", "pw-dddd4444"),
        ("client_secret=cs-eeee5555", "cs-eeee5555"),
        ("users:\n- name: u\n  user:\n    token: kube-ffff6666\n", "kube-ffff6666"),
        ("    client-key-data: LS0tLS1CRUdJTi1rZXk=\n", "LS0tLS1CRUdJTi1rZXk"),
        ('{"password": "json-pw-7777", "user": "app"}', "json-pw-7777"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\n-----END RSA PRIVATE KEY-----",
            "MIIEowIBAAKCAQEA1234",
        ),
    ],
)
def test_each_form_is_masked(text, secret):
    masked = redact(text)
    assert secret not in masked and MASK in masked


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("GET https://h/x?token=tok-1a2b&page=2", "GET https://h/x?token=***&page=2"),
        ("token: abc def", "token: *** def"),
        ('{"password": "p w", "user": "app"}', '{"password": "***", "user": "app"}'),
        ('{\\"token\\": \\"abc\\", \\"n\\": 1}', '{\\"token\\": \\"***\\", \\"n\\": 1}'),
        ("key=value; other=1", "key=***; other=1"),
        ("Cookie: sid=1; theme=dark\nnext line", "Cookie: ***\nnext line"),
        ("https://h/cb?code=1&access_token=t-1&x=2", "https://h/cb?code=1&access_token=***&x=2"),
    ],
)
def test_masking_keeps_what_surrounds_the_secret(text, shown):
    assert redact(text) == shown


def test_ordinary_text_is_left_alone():
    text = "curl -v --resolve 97v.test:80:127.0.10.57 http://97v.test/health # Basic checks; keyboard=us"
    assert redact(text) == text
    assert redact({"status": 200, "headers": {"Content-Type": "text/plain"}}) == {
        "status": 200,
        "headers": {"Content-Type": "text/plain"},
    }


def test_known_secrets_masked_anywhere_also_url_encoded():
    masked = redact("pw is p@ss w0rd! and encoded p%40ss%20w0rd%21", secrets=["p@ss w0rd!", "ab"])
    assert "p@ss" not in masked and "p%40ss" not in masked
    assert Redactor(["ab"])("abc") == "abc"  # too short to be masked everywhere


def test_data_walked_and_secret_keys_masked_whole():
    data = {
        "headers": {"Authorization": "whatever", "Cookie": "a=b"},
        "items": [("x", "token=zzz99999")],
        "n": 1,
        "ok": None,
    }
    assert redact(data) == {
        "headers": {"Authorization": MASK, "Cookie": MASK},
        "items": [("x", f"token={MASK}")],
        "n": 1,
        "ok": None,
    }


def test_collects_target_kubeconfig_env_and_table_secrets(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    token_file = tmp_path / "token"
    token_file.write_text("file-token-1234\n")
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "users": [
                    {"name": "a", "user": {"token": "kube-token-abcd"}},
                    {"name": "b", "user": {"client-key-data": "a2V5LWRhdGE=", "password": "basic-pw-99"}},
                    {"name": "c", "user": {"tokenFile": str(token_file)}},
                ]
            }
        )
    )
    assert sorted(kubeconfig_secrets([kubeconfig])) == sorted(
        ["kube-token-abcd", "a2V5LWRhdGE=", "basic-pw-99", "file-token-1234"]
    )
    settings = resolve_settings(
        {"target": "https://user:target-pw-5678@api.example.com", "kubeconfig": str(kubeconfig)}, {}
    )
    settings.tables["database"] = {"dsn": "postgresql://app:table-pw-42@db/app", "api_token": "tbl-token-77"}
    found = collect_secrets(
        settings,
        {
            "APP_DSN": "postgresql://app:env-pw-31@db/app",
            "MY_API_TOKEN": "env-token-8",
            "HOME": "/root",
            "PWD": "/srv/app/dir",
            "OLDPWD": "/srv/app",
            "GIT_TOKEN_FILE": "/run/secrets/t",
        },
    )
    for secret in (
        "target-pw-5678",
        "kube-token-abcd",
        "basic-pw-99",
        "file-token-1234",
        "table-pw-42",
        "tbl-token-77",
        "env-pw-31",
        "env-token-8",
    ):
        assert secret in found, secret
    for not_secret in ("/root", "/srv/app/dir", "/srv/app", "/run/secrets/t"):
        assert not_secret not in found
    assert collect_secrets(None, {}) == [] or all(len(s) >= 4 for s in collect_secrets(None, {}))


@pytest.mark.parametrize(
    ("text", "leaked", "shown"),
    [
        ("postgresql://u:p/ss@db/x", "ss@db", "postgresql://***:***@db/x"),  # "/" in an unescaped password
        ("http://u:p@ss@db:5432/x", "ss@", "http://***:***@db:5432/x"),  # "@" in an unescaped password
        ("see 'redis://:a/b@c@cache:6379/0' now", "b@c", "see 'redis://***:***@cache:6379/0' now"),
        ("https://api.example.com/x?q=1", None, "https://api.example.com/x?q=1"),  # no userinfo: left alone
        (
            "uses https://github.com/actions/checkout@v4",
            None,
            "uses https://github.com/actions/checkout@v4",
        ),  # "@" in a path
    ],
)
def test_url_userinfo_masked_up_to_the_last_at(text, leaked, shown):
    masked = redact(text)
    assert masked == shown
    if leaked:
        assert leaked not in masked


def test_environment_values_that_are_not_secrets_are_not_collected():
    environ = {
        "SECRET_KEY": "test",  # short: masked every "test" in node ids
        "TLS_SECRET_NAME": "api-tls-secret-name",  # names a Secret, is not one
        "FEATURE_TOKEN_ENABLED": "true",
        "TOKEN_TTL": "3600",
        "API_TOKEN_COUNT": "12345678",
        "SECRET_SIZE": "4096",
        "TOKEN_TIMEOUT": "30",
        "SECRET_ROTATION_ENABLE": "yes",
        "DB_PASSWORD": "falsefalse1",
        "GITHUB_TOKEN": "ghp-realtoken-123",
        "APP_SECRET": "1234567890",
    }
    found = collect_secrets(None, environ)
    assert "ghp-realtoken-123" in found and "falsefalse1" in found
    for value in (
        "test",
        "api-tls-secret-name",
        "true",
        "3600",
        "12345678",
        "4096",
        "30",
        "yes",
        "1234567890",
    ):
        assert value not in found, value
    assert Redactor(found)("suites/test_09_tls.py::test_api_tls") == "suites/test_09_tls.py::test_api_tls"


def test_kubeconfig_oidc_exec_and_token_file_credentials(tmp_path):
    token_file = tmp_path / "sa-token"
    token_file.write_text("sa-file-token-4242\n")
    document = {
        "users": [
            {
                "name": "oidc",
                "user": {
                    "auth-provider": {
                        "name": "oidc",
                        "config": {
                            "client-id": "kubernetes",
                            "client-secret": "oidc-client-secret-1",
                            "id-token": "eyJid-token-2",
                            "refresh-token": "refresh-token-3",
                            "idp-issuer-url": "https://issuer.example.com",
                        },
                    }
                },
            },
            {
                "name": "exec",
                "user": {
                    "exec": {
                        "command": "aws",
                        "env": [
                            {"name": "AWS_SECRET_ACCESS_KEY", "value": "aws-secret-key-4"},
                            {"name": "AWS_PROFILE", "value": "prod"},
                        ],
                    }
                },
            },
            {"name": "file", "user": {"tokenFile": str(token_file)}},
            {"name": "gone", "user": {"tokenFile": str(tmp_path / "missing")}},
        ]
    }
    expected = {
        "oidc-client-secret-1",
        "eyJid-token-2",
        "refresh-token-3",
        "aws-secret-key-4",
        "sa-file-token-4242",
    }
    from_content = kubeconfig_secrets(content=yaml.safe_dump(document))
    assert set(from_content) == expected  # not the client id, issuer, profile or token file path
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(document))
    assert set(kubeconfig_secrets([kubeconfig])) == expected
    assert kubeconfig_secrets(content="{not yaml: [") == [] and kubeconfig_secrets([tmp_path / "none"]) == []


def test_user_and_plugin_html_extras_are_masked():
    from pytest_reachability.report.hooks import redact_report

    secret = "extra-secret-8a7b"
    extras = [
        {
            "name": "log",
            "format_type": "text",
            "content": f"Authorization: Bearer {secret}",
            "mime_type": "text/plain",
            "extension": "txt",
        },
        {
            "name": "page",
            "format_type": "html",
            "content": f"<p>password {secret}</p>",
            "mime_type": None,
            "extension": None,
        },
        {
            "name": "link",
            "format_type": "url",
            "content": f"https://h/cb?token={secret}",
            "mime_type": None,
            "extension": None,
        },
        {
            "name": "shot",
            "format_type": "image",
            "content": "iVBORw0KGgo=",
            "mime_type": "image/png",
            "extension": "png",
        },
    ]
    # A passing call phase with nothing but extras: the report is not skipped as "nothing to mask".
    report = pytest.TestReport(
        "t.py::test_x", ("t.py", 1, "test_x"), {}, "passed", None, "call", extras=extras
    )
    redact_report(report, Redactor([secret]))
    assert all(secret not in str(extra["content"]) for extra in report.extras)
    assert (
        report.extras[0]["content"] == "Authorization: ***"
        and report.extras[2]["content"] == f"https://h/cb?token={MASK}"
    )
    assert report.extras[3]["content"] == "iVBORw0KGgo="  # binary content untouched


def test_html_summary_masks_secrets_before_escaping():
    from pytest_reachability.diagnosis.theory import Theory
    from pytest_reachability.report.hooks import summary_block
    from pytest_reachability.results import RunResults

    secret = "p&ss<w>o\"r'd-42"
    theory = Theory(
        rule="r",
        title=f"login as {secret} fails",
        confidence=0.9,
        evidence=[f"sent {secret}"],
        confirm=[f"curl -u u:{secret} http://h/"],
        fix=["rotate it"],
    )
    block = summary_block(
        RunResults(), [theory], {"previous_run": {"time": f"t {secret}"}}, Redactor([secret])
    )
    escaped = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert "ss&lt;w&gt;o" not in block and escaped not in block and secret not in block
    assert f"login as {MASK} fails" in block and f"sent {MASK}" in block


# --------------------------------------------------------------------------- a full run with every output on

LEAKY_TEST = textwrap.dedent("""
    import logging
    import os

    import yaml


    def secrets(target):
        kube = yaml.safe_load(open(os.environ["KUBECONFIG"]))["users"][0]["user"]["token"]
        dsn = os.environ["APP_DATABASE_DSN"]
        return {
            "bearer": os.environ["LEAK_A"], "query": os.environ["LEAK_B"], "cookie": os.environ["LEAK_C"],
            "dsn": dsn, "dsn_password": dsn.split(":")[2].split("@")[0],
            "target_password": target.password, "kube": kube,
        }


    def lines(s):
        return [
            f"Authorization: Bearer {s['bearer']}",
            f"GET https://api.example.com/x?token={s['query']}&page=2",
            f"Cookie: session={s['cookie']}",
            f"connecting to {s['dsn']}",
            f"database password {s['dsn_password']} target password {s['target_password']}"
            f" kube token {s['kube']}",
            f"curl -H 'Authorization: Bearer {s['bearer']}' 'http://user:{s['target_password']}@97v.test/'",
        ]


    def test_fails_with_secrets_everywhere(target, evidence, record_property):
        s = secrets(target)
        headers = {"Authorization": "Bearer " + s["bearer"], "Cookie": s["cookie"]}
        evidence.record("app_check", {"section": "other", "check": "leak", "ok": False,
                                      "observed": {"headers": headers}, "expected": lines(s),
                                      "url": f"https://api.example.com/x?token={s['query']}", "ms": 1})
        record_property("request", lines(s)[0])
        record_property("dsn", s["dsn"])
        for line in lines(s):
            print(line)
            logging.getLogger("leak").warning(line)
        assert False, "\\n".join(lines(s))


    def test_passes_and_prints_secrets(target):
        print("\\n".join(lines(secrets(target))))


    def test_attaches_html_extras_with_secrets(target, extras):
        import pytest_html

        s = secrets(target)
        extras.append(pytest_html.extras.text("\\n".join(lines(s)), name="request log"))
        extras.append(pytest_html.extras.html("<pre>" + "\\n".join(lines(s)) + "</pre>"))
        extras.append(pytest_html.extras.url(f"https://api.example.com/cb?token={s['query']}"))
""")


@pytest.fixture(scope="module")
def sandbox_info():
    from pytest_reachability.sandbox import Sandbox

    with Sandbox("incident-2025-12-08") as info:
        yield info


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist"])
def test_no_secret_reaches_any_output(tmp_path, sandbox_info, workers):
    info = sandbox_info
    target_password = "T4rget-Pw-0917"
    seeded = {
        "LEAK_A": "hdrTok-9f8e7d6c5b",
        "LEAK_B": "urlTok-1a2b3c4d",
        "LEAK_C": "cookieVal-5e6f7a8b",
        "APP_DATABASE_DSN": "postgresql://app:dsnPw-77aa88bb@db.internal:5432/app",
    }
    kube_token = yaml.safe_load(Path(info.kubeconfig).read_text())["users"][0]["user"]["token"]
    secrets = [
        target_password,
        kube_token,
        "hdrTok-9f8e7d6c5b",
        "urlTok-1a2b3c4d",
        "cookieVal-5e6f7a8b",
        "dsnPw-77aa88bb",
    ]
    env = {**info.environment(), **seeded}
    del env["REACHABILITY_TARGET"]
    shutil.copytree(SUITES, tmp_path / "suites", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "suites" / "test_99_leaky.py").write_text(LEAKY_TEST)
    # A collection error whose message carries a secret.
    (tmp_path / "suites" / "test_98_broken.py").write_text(
        "import os\nraise RuntimeError('cannot start: Authorization: Bearer ' + os.environ['LEAK_A'])\n"
    )
    args = [
        "--target",
        f"http://user:{target_password}@97v.test:{info.edge_port}",
        "--html",
        "out/report.html",
        "--self-contained-html",
        "--junitxml",
        "out/junit.xml",
        "--results-json",
        "out/results.json",
        "--incident-report",
        "out/incident.md",
        "-rA",
        "--log-level=INFO",
        "--log-cli-level=WARNING",
        "--log-file",
        "out/run.log",
        "--continue-on-collection-errors",
    ]
    if workers:
        args += ["-n", workers]
    run = run_builtin_suite(tmp_path, *args, env=env)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    assert "RuntimeError: cannot start: Authorization: ***" in run.stdout
    assert "BLOCKED suites/test_12_database.py::" in run.stdout  # the built-in suite ran too
    assert (
        "test_fails_with_secrets_everywhere" in run.stdout
        and "PASSED suites/test_99_leaky.py::test_passes_and_prints_secrets" in run.stdout
    )
    assert "PASSED suites/test_99_leaky.py::test_attaches_html_extras_with_secrets" in run.stdout
    outputs = {"terminal": run.stdout + run.stderr}
    for path in sorted((tmp_path / "out").iterdir()):
        outputs[path.name] = path.read_text(errors="replace")
    assert set(outputs) == {"terminal", "report.html", "junit.xml", "results.json", "incident.md", "run.log"}
    assert "GET https://api.example.com/x?token=***&page=2" in outputs["run.log"]
    for name, text in outputs.items():
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{name} leaks {leaked}"
    # the masked forms are what is shown instead
    assert "Authorization: ***" in outputs["terminal"] and "token=***" in outputs["junit.xml"]
    assert "postgresql://***:***@db.internal:5432/app" in outputs["terminal"]


# --------------------------------------------------------------------------- known secrets in every encoding

ENCODED_SECRET = "p@ss w/\"q'<&>\\x+=?#9"


@pytest.mark.parametrize(
    ("form", "encode"),
    [
        ("raw", lambda s: s),
        ("url", lambda s: __import__("urllib.parse").parse.quote(s, safe="")),
        (
            "url, lower-case hex",
            lambda s: __import__("re").sub(
                "%[0-9A-F]{2}",
                lambda m: m.group(0).lower(),
                __import__("urllib.parse").parse.quote(s, safe=""),
            ),
        ),
        ("url, plus for space", lambda s: __import__("urllib.parse").parse.quote_plus(s)),
        ("shell single quotes", lambda s: __import__("shlex").quote(s)),
        ("json", lambda s: __import__("json").dumps(s)[1:-1]),
        ("json in json", lambda s: __import__("json").dumps(__import__("json").dumps(s))[1:-1]),
        ("python repr", lambda s: repr(s)[1:-1]),
        ("html", lambda s: __import__("html").escape(s)),
        ("html without quotes", lambda s: __import__("html").escape(s, quote=False)),
        (
            "xml numeric",
            lambda s: (
                s.replace("&", "&amp;")
                .replace("<", "&lt;")
                .replace(">", "&gt;")
                .replace('"', "&#34;")
                .replace("'", "&#39;")
            ),
        ),
        ("base64", lambda s: __import__("base64").b64encode(s.encode()).decode()),
        ("base64 url-safe", lambda s: __import__("base64").urlsafe_b64encode(s.encode()).decode()),
    ],
)
def test_a_known_secret_is_masked_in_each_encoding(form, encode):
    text = f"before {encode(ENCODED_SECRET)} after"
    masked = redact(text, [ENCODED_SECRET])
    assert encode(ENCODED_SECRET) not in masked, form
    assert masked.startswith("before ") and masked.endswith(" after") and MASK in masked


@pytest.mark.parametrize("prefix", ["", "u:", "us:", "use:", "user-name:"])
def test_base64_of_a_text_holding_the_secret_is_masked_at_every_alignment(prefix):
    import base64

    secret = "Secret-Value-123"
    encoded = base64.b64encode(f"{prefix}{secret}".encode()).decode()  # e.g. a Basic header built elsewhere
    masked = Redactor([secret])(f"X-Upstream-Auth: {encoded}")
    assert encoded not in masked and MASK in masked


@pytest.mark.parametrize(
    "name",
    [
        "MYSQL_PWD",
        "DB_PASS",
        "GH_PAT",
        "SIGNING_KEY",
        "JWT",
        "SLACK_WEBHOOK",
        "APP_PASSPHRASE",
        "SLACK_WEBHOOK_URL",
        "PGPASSWORD",
        "slackWebhookUrl",
        "AWS_SECRET_ACCESS_KEY",
        "API_KEY",
        "COOKIE_SECRET",
        "SESSION_TOKEN",
        "DEPLOY_CREDS",
        "GOOGLE_CREDENTIALS",
        "OAUTH",
        "HMAC_KEY",
    ],
)
def test_secret_like_variable_names(name):
    assert is_secret_variable(name, "Val-ue-0987654321"), name


@pytest.mark.parametrize(
    "name",
    [
        "PWD",
        "OLDPWD",
        "TLS_SECRET_NAME",
        "TOKEN_TTL",
        "SSH_AUTH_SOCK",
        "PATH",
        "KEYBOARD_LAYOUT",
        "PASSTHROUGH_MODE",
        "BYPASS_CACHE",
        "AUTH_HEADER",
        "DATABASE_DSN",
        "SECRETS_DIR",
        "GITHUB_TOKEN_FILE",
        "OAUTH_TOKEN_URL",
        "DBUS_SESSION_BUS_ADDRESS",
        "COMPASS_URL",
        "HOME",
    ],
)
def test_variables_that_only_describe_secrets(name):
    assert not is_secret_variable(name, "Val-ue-0987654321"), name


def test_passwords_inside_values_libpq_fragments_and_token_users():
    found = secrets_in_value("postgresql://app:p@ss w/rd@db.internal:5432/app")
    assert (
        "p@ss w/rd" in found and "ss w/rd@db.internal" in found
    )  # libpq reads "ss w/rd@db.internal" as the host
    assert "tok-abcdefgh" in secrets_in_value("https://tok-abcdefgh@github.com/org/repo")
    assert "Pw-6655" in secrets_in_value("host=db user=app password='Pw-6655' dbname=x")
    assert "abcd1234" in secrets_in_value("/health?token=abcd1234 def")
    assert secrets_in_value("https://github.com/actions/checkout@v4") == []


def test_collects_mask_values_mask_env_and_a_token_user(monkeypatch):
    settings = resolve_settings(
        {
            "target": "https://ghp-user-token-12345@api.example.com",
            "mask": ["Plain-Value-42"],
            "mask_env": ["DEPLOY_NONCE"],
        },
        {},
    )
    found = collect_secrets(settings, {"DEPLOY_NONCE": "nonce-99", "UNRELATED": "whatever-value"})
    assert {"ghp-user-token-12345", "Plain-Value-42", "nonce-99"} <= set(
        found
    ) and "whatever-value" not in found
    assert redact_target_text("ghp-user-token-12345@api.example.com:8443") == "***@api.example.com:8443"


def test_masking_is_linear_on_adversarial_text_of_each_shape():
    """1 MB shaped to make a backtracking pattern retry what
    it read; the measured figures are in benchmarks/."""
    import importlib.util
    import time

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_masking.py"
    spec = importlib.util.spec_from_file_location("bench_masking", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for shape, make in bench.ADVERSARIAL.items():
        text = make(1 << 20)
        started = time.perf_counter()
        redact(text, ["known-secret-value"])
        elapsed = time.perf_counter() - started
        # Linear masking takes well under a second here; a quadratic pattern takes minutes. The bound leaves
        # room for a loaded machine without letting a super-linear pattern through.
        assert elapsed < 3.0, f"{shape}: {elapsed:.2f}s for 1 MB"


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("args", "env", "secret"),
    [
        (["--results-db", "postgresql://app:pa ss-Word1@db/x"], {}, "ss-Word1"),
        (["--results-db", "mysql://app:My-Pw-2@db/x"], {}, "My-Pw-2"),
        (["--health-path", "/health?token=Tok-En-33 x"], {}, "Tok-En-33"),
        (["--target", "ghp-Token-4444@api.example.com:99999"], {}, "ghp-Token-4444"),
        (["--target", "https://user:Pw 55@api.example.com"], {}, "Pw 55"),
        (
            ["--namespace", "bad ns"],
            {"REACHABILITY_RESULTS_DB": "postgresql://u:Env-Pw-66@db/x x"},
            "Env-Pw-66",
        ),
        (["--mask", "abc"], {}, "abc"),
        (["--resolver", "1.1.1.1:"], {"DB_PASSWORD": "Db-Pass-777"}, "Db-Pass-777"),
    ],
)
def test_usage_errors_mask_what_the_user_typed(pytester, args, env, secret):
    pytester.makepyfile("def test_ok():\n    pass\n")
    for name, value in env.items():
        pytester._monkeypatch.setenv(name, value)
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == 4, text
    errors = [line for line in text.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, text
    assert secret not in text, errors[0]


def test_a_dsn_pasted_where_a_variable_name_belongs_is_not_printed(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.makefile(
        ".toml",
        reachability='[tool.reachability.database]\nfield = "db"\nexpect = "ok"\n'
        'dsn-env = "postgresql://app:Pasted-Pw-8@db:5432/app"\n',
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--reachability-config", "reachability.toml")
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == 4 and "dsn-env" in text and "Pasted-Pw-8" not in text, text
