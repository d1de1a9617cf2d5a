"""Settings: CLI > environment > file > default, validation with one-line errors, and the report header.

Unit tests call ``resolve_settings`` with explicit environments and files; the pytester tests run real
pytest processes through the installed plugin and check exit status 4, the single ``ERROR:`` line and
the header.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_reachability.config import (
    SETTING_KEYS,
    Settings,
    SettingsError,
    TargetError,
    describe,
    env_name,
    parse_resolver,
    parse_target,
    resolve_settings,
    resolver_endpoint,
)

NO_CLI: dict[str, Any] = {}


def resolve(
    tmp_path: Path,
    cli: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    *,
    pyproject: str | None = None,
    config_option: str | None = None,
) -> Settings:
    """Resolve with ``tmp_path`` as rootdir and invocation dir, so nothing from the real machine leaks in."""
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    return resolve_settings(
        cli or NO_CLI, env or {}, rootpath=tmp_path, invocation_dir=tmp_path, config_option=config_option
    )


def error_of(tmp_path: Path, **kwargs: Any) -> str:
    with pytest.raises(ValueError) as caught:
        resolve(tmp_path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message, message
    return message


# --- defaults and precedence -------------------------------------------------------------------------


def test_defaults_when_nothing_is_configured(tmp_path: Path) -> None:
    settings = resolve(tmp_path)
    assert settings.target is None
    assert settings.namespace is None and settings.kubeconfig is None and settings.kube_context is None
    assert settings.resolvers == ["system"]
    assert settings.health_path == "/health"
    assert settings.probe_timeout == 5.0
    assert settings.gate_timeout == 300.0
    assert settings.config_file is None
    assert settings.tables == {}
    assert settings.sources == dict.fromkeys(SETTING_KEYS, "default")


def test_cli_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    pyproject = """
[tool.reachability]
target = "file.example.com"
namespace = "from-file"
kube-context = "file-context"
probe-timeout = 7
"""
    env = {"REACHABILITY_TARGET": "env.example.com", "REACHABILITY_NAMESPACE": "from-env"}
    cli = {"target": "cli.example.com:8443"}
    settings = resolve(tmp_path, cli, env, pyproject=pyproject)
    assert settings.target is not None and settings.target.host == "cli.example.com"
    assert settings.target.port == 8443
    assert settings.namespace == "from-env"
    assert settings.kube_context == "file-context"
    assert settings.probe_timeout == 7.0
    assert settings.health_path == "/health"
    assert settings.sources["target"] == "cli"
    assert settings.sources["namespace"] == "env"
    assert settings.sources["kube_context"] == "file"
    assert settings.sources["probe_timeout"] == "file"
    assert settings.sources["health_path"] == "default"
    assert settings.config_file == str(tmp_path / "pyproject.toml")


def test_every_setting_has_an_environment_variable(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        "REACHABILITY_TARGET": "https://api.example.com",
        "REACHABILITY_NAMESPACE": "prod",
        "REACHABILITY_KUBECONFIG": str(kubeconfig),
        "REACHABILITY_KUBE_CONTEXT": "prod-cluster",
        "REACHABILITY_RESOLVERS": "1.1.1.1, 8.8.8.8:53 [2001:db8::53]:5353,system",
        "REACHABILITY_HEALTH_PATH": "/healthz",
        "REACHABILITY_PROBE_TIMEOUT": "2.5",
        "REACHABILITY_CA_BUNDLE": str(bundle),
        "REACHABILITY_SANDBOX": "incident",
        "REACHABILITY_SANDBOX_APISERVER": "real",
        "REACHABILITY_INCIDENT_REPORT": "reports/incident.md",
        "REACHABILITY_RESULTS_JSON": "reports/results.json",
        "REACHABILITY_RESULTS_DB": "postgresql://ci:pw@db/results",
        "REACHABILITY_GATE_TIMEOUT": "60",
        "REACHABILITY_ALLOW_ALL_SKIPPED": "yes",
        "REACHABILITY_WAIT": "1m30s",
        "REACHABILITY_DISCOVER": "on",
        "REACHABILITY_DISCOVER_SELECTOR": "tier in (public, edge),team!=legacy",
        "REACHABILITY_SHARD": "2/4",
        "REACHABILITY_CONCURRENCY": "32",
    }
    assert set(env) == {env_name(key) for key in SETTING_KEYS}
    settings = resolve(tmp_path, env=env)
    assert settings.target == parse_target("https://api.example.com")
    assert settings.namespace == "prod"
    assert settings.kubeconfig == str(kubeconfig)
    assert settings.kube_context == "prod-cluster"
    assert settings.resolvers == ["1.1.1.1", "8.8.8.8:53", "[2001:db8::53]:5353", "system"]
    assert settings.health_path == "/healthz"
    assert settings.probe_timeout == 2.5
    assert settings.ca_bundle == str(bundle)
    assert settings.sandbox == "incident"
    assert settings.sandbox_apiserver == "real"
    assert settings.incident_report == "reports/incident.md"  # relative to where pytest runs
    assert settings.results_json == "reports/results.json"
    assert settings.results_db == "postgresql://ci:pw@db/results"
    assert settings.gate_timeout == 60.0
    assert settings.allow_all_skipped is True
    assert settings.wait == 90.0
    assert settings.discover is True and settings.discover_selector == "tier in (public, edge),team!=legacy"
    assert settings.shard == (2, 4) and settings.concurrency == 32
    assert settings.sources == dict.fromkeys(SETTING_KEYS, "env")


def test_empty_environment_variables_count_as_unset(tmp_path: Path) -> None:
    settings = resolve(
        tmp_path,
        env={"REACHABILITY_TARGET": "", "REACHABILITY_PROBE_TIMEOUT": "  "},
        pyproject='[tool.reachability]\ntarget = "file.example.com"\n',
    )
    assert settings.target is not None and settings.target.host == "file.example.com"
    assert settings.sources["target"] == "file"
    assert settings.probe_timeout == 5.0


def test_context_names_and_paths_may_hold_spaces(tmp_path: Path) -> None:
    settings = resolve(tmp_path, {"kube_context": "team a/prod", "incident_report": "my reports/incident.md"})
    assert settings.kube_context == "team a/prod"
    assert settings.incident_report == "my reports/incident.md"


def test_cli_resolvers_repeat_and_may_hold_commas(tmp_path: Path) -> None:
    settings = resolve(
        tmp_path,
        {"resolvers": ["1.1.1.1", "system,127.0.0.1:5353", "1.1.1.1"]},
        {"REACHABILITY_RESOLVERS": "9.9.9.9"},
    )
    assert settings.resolvers == ["1.1.1.1", "system", "127.0.0.1:5353"]
    assert settings.sources["resolvers"] == "cli"


def test_a_value_a_higher_source_overrides_is_still_validated(tmp_path: Path) -> None:
    message = error_of(tmp_path, cli={"probe_timeout": "3"}, env={"REACHABILITY_PROBE_TIMEOUT": "fast"})
    assert message.startswith("REACHABILITY_PROBE_TIMEOUT: 'fast' is not a number")


# --- validation of values from the command line and the environment ------------------------------------


@pytest.mark.parametrize(
    ("cli", "words"),
    [
        ({"target": "ftp://x"}, "--target: invalid target 'ftp://x': unsupported scheme 'ftp'"),
        ({"target": "http://admin:s3cret@h:99999"}, "--target: invalid target 'http://***:***@h:99999'"),
        ({"probe_timeout": "fast"}, "--probe-timeout: 'fast' is not a number; expected seconds"),
        (
            {"probe_timeout": "0"},
            "--probe-timeout: 0 seconds is out of range; expected seconds, a number > 0 and <= 300",
        ),
        ({"probe_timeout": "301"}, "--probe-timeout: 301 seconds is out of range"),
        ({"probe_timeout": "nan"}, "--probe-timeout: nan seconds is out of range"),
        ({"probe_timeout": "-1"}, "--probe-timeout: -1 seconds is out of range"),
        ({"gate_timeout": "0"}, "--gate-timeout: 0 seconds is out of range"),
        ({"gate_timeout": "inf"}, "--gate-timeout: inf seconds is out of range"),
        ({"health_path": "health"}, "--health-path: 'health' does not start with '/'"),
        ({"health_path": "/he alth"}, "--health-path: '/he alth' contains whitespace"),
        ({"health_path": "/health#x"}, "--health-path: '/health#x' contains a fragment"),
        ({"namespace": "Prod_1"}, "--namespace: 'Prod_1' is not a Kubernetes namespace name"),
        ({"namespace": "a" * 64}, "is not a Kubernetes namespace name"),
        ({"namespace": ""}, "--namespace: it is empty"),
        ({"kube_context": "  "}, "--kube-context: it is empty"),
        (
            {"kubeconfig": "/nonexistent/kubeconfig"},
            "--kubeconfig: file '/nonexistent/kubeconfig' does not exist",
        ),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "--ca-bundle: file '/nonexistent/ca.pem' does not exist"),
        (
            {"results_db": "mysql://u:s3cret@db/x"},
            "--results-db: unsupported database URL 'mysql://***:***@db/x'",
        ),
        (
            {"results_db": "mysql://u:p/s3cret@db/x"},
            "--results-db: unsupported database URL 'mysql://***:***@db/x'",
        ),
        (
            {"results_db": "mysql://db/x?password=s3cret"},
            "--results-db: unsupported database URL 'mysql://db/x?password=***'",
        ),
        (
            {"resolvers": ["dns.google"]},
            "--resolver: invalid resolver 'dns.google': 'dns.google' is not an IP address",
        ),
        (
            {"resolvers": ["1.1.1.1:0"]},
            "--resolver: invalid resolver '1.1.1.1:0': port '0' is not a number 1-65535",
        ),
        ({"resolvers": ["::1:53"]}, "ambiguous: write [::1]:53 or [::1:53]"),
        ({"resolvers": [","]}, "--resolver: no resolver given"),
    ],
)
def test_bad_cli_values_name_the_option(tmp_path: Path, cli: dict[str, Any], words: str) -> None:
    message = error_of(tmp_path, cli=cli)
    assert words in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"REACHABILITY_TARGET": "http://"}, "REACHABILITY_TARGET: invalid target 'http://': no host"),
        (
            {"REACHABILITY_RESOLVERS": "1.1.1.1 [::1"},
            "REACHABILITY_RESOLVERS: invalid resolver '[::1': unbalanced '['",
        ),
        ({"REACHABILITY_GATE_TIMEOUT": "soon"}, "REACHABILITY_GATE_TIMEOUT: 'soon' is not a number"),
        (
            {"REACHABILITY_NAMESPACE": "my namespace"},
            "REACHABILITY_NAMESPACE: 'my namespace' contains whitespace",
        ),
    ],
)
def test_bad_environment_values_name_the_variable(tmp_path: Path, env: dict[str, str], words: str) -> None:
    assert words in error_of(tmp_path, env=env)


@pytest.mark.parametrize(
    ("text", "canonical", "endpoint"),
    [
        ("system", "system", None),
        (" SYSTEM ", "system", None),
        ("1.1.1.1", "1.1.1.1", ("1.1.1.1", 53)),
        ("127.0.0.1:5353", "127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("2001:DB8::53", "2001:db8::53", ("2001:db8::53", 53)),
        ("[::1]:5353", "[::1]:5353", ("::1", 5353)),
        ("[::1]", "::1", ("::1", 53)),
    ],
)
def test_resolver_forms(text: str, canonical: str, endpoint: tuple[str, int] | None) -> None:
    assert parse_resolver(text) == canonical
    assert resolver_endpoint(text) == endpoint


@pytest.mark.parametrize(
    "text", ["", "dns.google", "1.1.1.1:", "1.1.1.1:x", "[::1]x", "[dns]:53", "1.2.3.4:5:6", "[::1"]
)
def test_bad_resolvers_raise_one_line(text: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_resolver(text)
    message = str(caught.value)
    assert message.startswith(f"invalid resolver {text!r}: ") and "\n" not in message
    assert "expected 'system', ADDR, ADDR:PORT or [IPv6]:PORT" in message


# --- configuration files --------------------------------------------------------------------------------


def test_pyproject_section_relative_paths_and_tables(tmp_path: Path) -> None:
    (tmp_path / "kube").mkdir()
    (tmp_path / "kube" / "config").write_text("apiVersion: v1\n")
    pyproject = """
[tool.reachability]
target = "https://97v.ru"
kubeconfig = "kube/config"
incident-report = "reports/incident.md"
results-db = "history.sqlite"
resolvers = ["system", "1.1.1.1"]
gate-timeout = 30
allow-all-skipped = true

[tool.reachability.database]
url-env = "DATABASE_URL"

[tool.reachability.integration]
flows = [{ name = "login", path = "/login" }]
"""
    settings = resolve(tmp_path, pyproject=pyproject)
    assert settings.target == parse_target("https://97v.ru")
    assert settings.kubeconfig == str(tmp_path / "kube" / "config")
    assert settings.incident_report == str(tmp_path / "reports" / "incident.md")
    assert settings.results_db == str(tmp_path / "history.sqlite")
    assert settings.resolvers == ["system", "1.1.1.1"]
    assert settings.gate_timeout == 30.0
    assert settings.allow_all_skipped is True
    assert settings.tables == {
        "database": {"url-env": "DATABASE_URL"},
        "integration": {"flows": [{"name": "login", "path": "/login"}]},
    }


@pytest.mark.parametrize(
    "given, expected", [(None, False), (True, True), ("on", True), ("0", False), ("No", False)]
)
def test_allow_all_skipped_is_a_yes_no_setting(tmp_path: Path, given: Any, expected: bool) -> None:
    # The command line's store_true gives True or None (not given); the environment gives words.
    settings = resolve(
        tmp_path,
        cli={"allow_all_skipped": given} if given is True else None,
        env={"REACHABILITY_ALLOW_ALL_SKIPPED": given} if isinstance(given, str) else None,
    )
    assert settings.allow_all_skipped is expected


def test_pyproject_without_reachability_section_is_no_config(tmp_path: Path) -> None:
    settings = resolve(tmp_path, pyproject='[tool.other]\nx = 1\n[project]\nname = "x"\n')
    assert settings.config_file is None
    assert settings.sources == dict.fromkeys(SETTING_KEYS, "default")


def test_explicit_file_with_top_level_keys_is_relative_to_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "deploy"
    folder.mkdir()
    (folder / "ca.pem").write_text("pem\n")
    (folder / "reachability.toml").write_text(
        'target = "api.example.com:443"\nca-bundle = "ca.pem"\nresults-db = "postgresql://db/x"\n'
    )
    settings = resolve(
        tmp_path,
        config_option="deploy/reachability.toml",
        pyproject='[tool.reachability]\nnamespace = "ignored"\n',
    )
    assert settings.config_file == str(folder / "reachability.toml")
    assert settings.target is not None and settings.target.scheme == "https"
    assert settings.ca_bundle == str(folder / "ca.pem")
    assert settings.results_db == "postgresql://db/x"
    assert settings.namespace is None  # an explicit file replaces pyproject.toml, it is not merged with it


def test_explicit_file_with_tool_table_reads_tool_reachability(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('[tool.reachability]\nnamespace = "prod"\n[tool.black]\nline-length = 1\n')
    settings = resolve(tmp_path, config_option=str(path))
    assert settings.namespace == "prod" and settings.sources["namespace"] == "file"


def test_config_file_from_environment_and_cli_wins(tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text('namespace = "from-env-file"\n')
    (tmp_path / "cli.toml").write_text('namespace = "from-cli-file"\n')
    env = {"REACHABILITY_CONFIG": str(tmp_path / "env.toml")}
    assert resolve(tmp_path, env=env).namespace == "from-env-file"
    assert resolve(tmp_path, env=env, config_option=str(tmp_path / "cli.toml")).namespace == "from-cli-file"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            "probe-timeout = 3\nprob-timeout = 3\n",
            "unknown key 'prob-timeout' in '{file}' top level; did you mean 'probe-timeout'?",
        ),
        (
            "kube_context = 'x'\n",
            "unknown key 'kube_context' in '{file}' top level; did you mean 'kube-context'?",
        ),
        (
            "colour = 'blue'\n",
            "unknown key 'colour' in '{file}' top level; expected one of target, namespace",
        ),
        (
            'probe-timeout = "fast"\n',
            "'probe-timeout' in '{file}' top level: expected seconds, a number > 0 and <= 300, got string "
            "'fast'",
        ),
        ("probe-timeout = true\n", "'probe-timeout' in '{file}' top level: expected seconds"),
        ("probe-timeout = 0\n", "'probe-timeout' in '{file}' top level: 0 seconds is out of range"),
        ("target = 80\n", "'target' in '{file}' top level: expected a string"),
        (
            "target = 'ftp://x'\n",
            "'target' in '{file}' top level: invalid target 'ftp://x': unsupported scheme 'ftp'",
        ),
        ("resolvers = [1]\n", "'resolvers' in '{file}' top level: expected an array of strings"),
        ("resolvers = []\n", "'resolvers' in '{file}' top level: the array is empty"),
        ("resolvers = ['1.1.1.1', 'nope']\n", "invalid resolver 'nope'"),
        ("[target]\nhost = 'x'\n", "'target' in '{file}' top level: expected a string"),
        ("kubeconfig = 'missing/config'\n", "file '{dir}/missing/config' does not exist"),
        ("health-path = 'health'\n", "'health-path' in '{file}' top level: 'health' does not start with '/'"),
        ("flows = [{ name = 'x' }]\n", "unknown key 'flows'"),
        ("target = \n", "is not valid TOML: Invalid value (at line 1, column 10)"),
        ("[tool.black]\nx = 1\n", "has a [tool] table but no [tool.reachability] table"),
    ],
)
def test_bad_config_file_names_key_and_file(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "reachability.toml"
    path.write_text(content)
    message = error_of(tmp_path, config_option=str(path))
    assert words.format(file=path, dir=tmp_path) in message


def test_bad_pyproject_key_names_the_pyproject(tmp_path: Path) -> None:
    message = error_of(tmp_path, pyproject="[tool.reachability]\nnamesapce = 'prod'\n")
    assert message == (
        f"unknown key 'namesapce' in '{tmp_path / 'pyproject.toml'}' [tool.reachability]; did you mean "
        "'namespace'?"
    )


def test_missing_config_file_is_named_with_its_origin(tmp_path: Path) -> None:
    message = error_of(tmp_path, config_option="nope.toml")
    assert (
        message == f"configuration file '{tmp_path / 'nope.toml'}' not found (given by --reachability-config)"
    )
    message = error_of(tmp_path, env={"REACHABILITY_CONFIG": str(tmp_path / "gone.toml")})
    assert message.endswith("not found (given by REACHABILITY_CONFIG)")
    assert "is not a file" in error_of(tmp_path, config_option=str(tmp_path))


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'namespace = "caf\xe9"\n')
    assert "is not valid TOML" in error_of(tmp_path, config_option=str(path))


# --- overrides (sandbox) and header ---------------------------------------------------------------------


def test_with_overrides_fills_only_what_the_user_did_not_give(tmp_path: Path) -> None:
    settings = resolve(tmp_path, {"namespace": "mine"}, {"REACHABILITY_PROBE_TIMEOUT": "9"})
    overridden = settings.with_overrides(
        target="127.0.0.1:18080",
        namespace="sandbox",
        kubeconfig=str(tmp_path / "not-yet-written"),
        resolvers=["127.0.0.1:15353"],
        probe_timeout=1,
        kube_context=None,
    )
    assert overridden.target == parse_target("127.0.0.1:18080")
    assert overridden.namespace == "mine"
    assert overridden.probe_timeout == 9.0
    assert overridden.kubeconfig == str(tmp_path / "not-yet-written")
    assert overridden.resolvers == ["127.0.0.1:15353"]
    assert overridden.kube_context is None
    assert overridden.sources["target"] == "override"
    assert overridden.sources["namespace"] == "cli"
    assert overridden.sources["kube_context"] == "default"
    assert settings.target is None and settings.sources["target"] == "default"  # the original is unchanged


def test_with_overrides_validates_and_rejects_unknown_keys(tmp_path: Path) -> None:
    settings = resolve(tmp_path)
    target = parse_target("[::1]:8443")
    assert settings.with_overrides(target=target).target is target
    with pytest.raises(TypeError, match="unknown setting 'tagret'"):
        settings.with_overrides(tagret="x")
    with pytest.raises(TargetError):
        settings.with_overrides(target="ftp://x")
    with pytest.raises(SettingsError):
        settings.with_overrides(probe_timeout=0)


def test_describe_states_what_is_in_force_with_secrets_masked(tmp_path: Path) -> None:
    settings = resolve(
        tmp_path,
        {
            "target": "https://admin:s3cret@api.example.com/v1",
            "namespace": "prod",
            "kube_context": "ctx",
            "resolvers": ["system", "1.1.1.1"],
            "sandbox": "incident",
        },
        pyproject="[tool.reachability]\nprobe-timeout = 2\n",
    )
    lines = describe(settings)
    text = "\n".join(lines)
    assert "s3cret" not in text and "admin" not in text
    assert lines[0] == "target: https://***:***@api.example.com/v1"
    assert lines[1] == "cluster: namespace=prod context=ctx kubeconfig=(default rules)"
    assert lines[2] == "resolvers: system, 1.1.1.1"
    assert lines[3] == "sandbox: incident"
    assert lines[4] == f"config file: {tmp_path / 'pyproject.toml'}"


def test_describe_without_configuration(tmp_path: Path) -> None:
    assert describe(resolve(tmp_path)) == [
        "target: not set (--target)",
        "cluster: namespace=(kubeconfig default) context=(current) kubeconfig=(default rules)",
        "resolvers: system",
    ]


# --- real pytest runs through the installed plugin ---------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The subprocess inherits os.environ: drop any REACHABILITY_* of the machine running these tests."""
    for name in list(os.environ):
        if name.startswith("REACHABILITY_"):
            monkeypatch.delenv(name)


def assert_usage_error(result: pytest.RunResult, *words: str) -> str:
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # 4
    output = result.outlines + result.errlines
    errors = [line for line in output if line.startswith("ERROR:")]
    assert len(errors) == 1, output
    assert not any("Traceback" in line for line in output), output
    for word in words:
        assert word in errors[0]
    return errors[0]


@pytest.mark.usefixtures("clean_env")
def test_run_with_bad_target_exits_4_with_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("--target", "http://admin:s3cret@example.com:99999")
    line = assert_usage_error(
        result, "--target", "port 99999 is out of range", "http://***:***@example.com:99999"
    )
    assert "s3cret" not in result.stdout.str() + result.stderr.str()
    assert line.startswith("ERROR: --target: invalid target")


@pytest.mark.usefixtures("clean_env")
def test_run_with_bad_environment_exits_4(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    monkeypatch.setenv("REACHABILITY_PROBE_TIMEOUT", "fast")
    result = pytester.runpytest_subprocess()
    assert_usage_error(result, "REACHABILITY_PROBE_TIMEOUT", "'fast' is not a number")


@pytest.mark.usefixtures("clean_env")
def test_run_with_bad_file_key_exits_4(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.makepyprojecttoml("[tool.reachability]\nprob-timeout = 3\n")
    result = pytester.runpytest_subprocess()
    assert_usage_error(
        result, "unknown key 'prob-timeout'", "pyproject.toml", "did you mean 'probe-timeout'?"
    )


@pytest.mark.usefixtures("clean_env")
def test_run_with_wrong_type_in_config_file_exits_4(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.makefile(".toml", settings='probe-timeout = "fast"\n')
    result = pytester.runpytest_subprocess("--reachability-config", "settings.toml")
    assert_usage_error(result, "'probe-timeout'", "settings.toml", "got string 'fast'")


@pytest.mark.usefixtures("clean_env")
def test_run_with_missing_or_invalid_config_file_exits_4(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    assert_usage_error(
        pytester.runpytest_subprocess("--reachability-config", "absent.toml"), "absent.toml", "not found"
    )
    pytester.makefile(".toml", broken="target = [\n")
    assert_usage_error(
        pytester.runpytest_subprocess("--reachability-config", "broken.toml"), "is not valid TOML"
    )


@pytest.mark.usefixtures("clean_env")
def test_header_shows_settings_with_password_masked(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.makepyprojecttoml('[tool.reachability]\nkube-context = "from-file"\nresolvers = ["system"]\n')
    monkeypatch.setenv("REACHABILITY_NAMESPACE", "from-env")
    result = pytester.runpytest_subprocess(
        "--target",
        "https://admin:s3cret@api.example.com:8443/v1",
        "--resolver",
        "127.0.0.1:5353",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    expected = [
        "reachability: target: https://***:***@api.example.com:8443/v1",
        "reachability: cluster: namespace=from-env context=from-file kubeconfig=(default rules)",
        "reachability: resolvers: 127.0.0.1:5353",
        f"reachability: config file: {pytester.path / 'pyproject.toml'}",
    ]
    header = result.outlines[: result.outlines.index("collected 1 item")]
    assert [line for line in header if line.startswith("reachability: ")] == expected
    assert "s3cret" not in result.stdout.str() + result.stderr.str()
