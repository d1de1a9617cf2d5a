"""JSON nobody on the team wrote: bodies nested deeper than Python reads, NaN and Infinity.

``json.loads`` raises ``RecursionError`` (not ``ValueError``) on a document nested ~1,000 deep -- a 2 kB
body of ``[`` -- and reads ``NaN``/``Infinity``, which JSON does not have; ``json.dumps`` writes them back.
Against a real loopback target answering such bodies, a results file holding a test's NaN evidence, and
the ``merge`` command given such files: every reader says "not JSON" in one line, every writer writes JSON
that a strict reader accepts.
"""

from __future__ import annotations

import json
import math
import ssl
import subprocess
import sys
from pathlib import Path

import hostile
import jsonschema
import pytest
import servers
import test_cluster
import test_dead_targets
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_reachability import jsontext
from pytest_reachability.cluster import Cluster, ClusterError, ClusterErrorKind
from pytest_reachability.config import parse_target
from pytest_reachability.health_body import read_health
from pytest_reachability.probes.http import probe_address
from pytest_reachability.report.json import schema_path

DEEP_ARRAY = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"status": ' * 5000 + '"ok"' + "}" * 5000


def strict(text: str) -> object:
    """What a strict reader (JavaScript's JSON.parse, Go) makes of ``text``: NaN and Infinity refused."""

    def refuse(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("text", [DEEP_ARRAY, DEEP_OBJECT])
def test_a_document_nested_too_deeply_is_not_json_rather_than_a_crash(text: str) -> None:
    with pytest.raises(RecursionError):
        json.loads(text)  # what the standard library does: not a ValueError
    with pytest.raises(ValueError, match="nested too deeply"):
        jsontext.loads(text)
    with pytest.raises(ValueError, match="nested too deeply"):
        jsontext.loads(text.encode())


def test_nan_and_infinity_are_read_leniently_by_default_and_refused_when_asked() -> None:
    assert math.isnan(jsontext.loads('{"latency": NaN}')["latency"])  # a Python service's json.dumps
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match=f"{constant} is not a JSON number"):
            jsontext.loads(f'{{"duration": {constant}}}', numbers_only=True)
    assert jsontext.loads('{"duration": 1.5}', numbers_only=True) == {"duration": 1.5}


def test_dumps_writes_json_for_values_json_does_not_have() -> None:
    value = {"p99": float("nan"), "max": float("inf"), "min": -math.inf, "ok": [1.5, {"x": float("nan")}]}
    with pytest.raises(ValueError):
        json.dumps(value, allow_nan=False)
    assert strict(jsontext.dumps(value)) == {
        "p99": "NaN",
        "max": "Infinity",
        "min": "-Infinity",
        "ok": [1.5, {"x": "NaN"}],
    }
    assert value["ok"][1]["x"] != value["ok"][1]["x"]  # the caller's document is left as it was


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSONISH)
def test_whatever_is_written_a_strict_reader_reads_and_finite_values_survive(value: object) -> None:
    read = strict(jsontext.dumps(value))

    def same(original: object, back: object) -> bool:
        if isinstance(original, float) and not math.isfinite(original):
            return back in ("NaN", "Infinity", "-Infinity")
        if isinstance(original, dict):
            return original.keys() == back.keys() and all(same(original[k], back[k]) for k in original)
        if isinstance(original, list):
            return len(original) == len(back) and all(map(same, original, back))
        return original == back

    assert same(value, read)


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT])
def test_a_health_body_nested_too_deeply_reads_as_not_json(body: str) -> None:
    assert read_health(body).shape == "not-json"
    assert read_health(body.encode()).shape == "not-json"


def test_a_body_check_against_a_deeply_nested_answer_is_a_mismatch_not_a_crash() -> None:
    """The HTTP probe with a JSON body expectation, against a real loopback server answering 200 with a
    body nested 5,000 deep."""
    with servers.LoopbackServer(hostile.recording(DEEP_OBJECT.encode())) as server:
        result = probe_address(
            parse_target(f"http://{servers.HOST}:{server.port}"),
            "127.0.0.1",
            timeout=2.0,
            expect_body={"status": "ok"},
            body_cap=64 * 1024,
        )
    assert result.status == 200
    assert not result.ok
    assert "body is not JSON" in result.detail, result.detail


def test_the_suite_against_a_target_answering_a_deeply_nested_body_reports_and_writes_json(
    tmp_path: Path,
) -> None:
    """The built-in suite, as a user runs it, against a real loopback target whose every answer is 200
    with a body nested 5,000 deep: no check errors out with a RecursionError, the health-body check
    says the body is not JSON, and the results file is JSON a strict reader accepts."""
    with servers.LoopbackServer(hostile.recording(DEEP_ARRAY.encode())) as server:
        document = test_dead_targets.run_suite(tmp_path, f"http://127.0.0.1:{server.port}")
    strict((tmp_path / "results.json").read_text())
    crashed = [
        test["nodeid"]
        for test in document["tests"]
        if "RecursionError" in json.dumps(test.get("reason")) + json.dumps(test.get("message"))
    ]
    assert not crashed, crashed
    errors = [test["nodeid"] for test in document["tests"] if test["outcome"] == "error"]
    assert not errors, errors
    (body_check,) = [t for t in document["tests"] if "test_health_body_reports_healthy" in t["nodeid"]]
    assert body_check["outcome"] == "passed", body_check


def test_a_tests_nan_evidence_leaves_the_results_file_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_latency(evidence):
            evidence.record("latency", {"p99": float("nan"), "max": float("inf"), "n": 3})
            assert False, "too slow"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--results-json=results.json")
    result.assert_outcomes(failed=1)
    document = strict((pytester.path / "results.json").read_text())
    errors = list(
        jsonschema.Draft202012Validator(json.loads(schema_path().read_text())).iter_errors(document)
    )
    assert not errors, [error.message for error in errors]
    (test,) = document["tests"]
    (record,) = [r for r in test["evidence"] if r["kind"] == "latency"]
    assert record["data"] == {"p99": "NaN", "max": "Infinity", "n": 3}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (DEEP_ARRAY, "nested too deeply"),
        ('{"schema_version": "1.2", "run": {"duration": NaN}}', "NaN is not a JSON number"),
    ],
)
def test_merge_refuses_such_files_in_one_line(tmp_path: Path, text: str, words: str) -> None:
    given_file = tmp_path / "shard.json"
    given_file.write_text(text)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest_reachability", "merge", str(given_file), "--results-json", "out.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in completed.stderr, completed.stderr
    assert not (tmp_path / "out.json").exists()


def deep_api_server(conn, server) -> None:
    """An API server answering /version 200 and everything else 403, each with a body nested 5,000 deep."""
    request = servers.read_request(conn)
    status = 200 if b" /version" in request.split(b"\r\n", 1)[0] else 403
    conn.sendall(
        servers.http_answer(status, DEEP_OBJECT.encode(), headers={"Content-Type": "application/json"})
    )


def test_an_api_server_answering_deeply_nested_json_is_a_classified_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ca, ca_file: str
) -> None:
    """A real TLS server on loopback, reached through a kubeconfig as the client reaches any API server:
    its version and its refusals (read for their ``Status``) are nested too deeply to read. Each read
    fails as one ClusterError, never a RecursionError out of the read."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    with servers.LoopbackServer(deep_api_server, tls=tls) as server:
        kubeconfig = tmp_path / "kubeconfig"
        test_cluster._write_two_context_kubeconfig(
            kubeconfig, f"https://127.0.0.1:{server.port}", f"https://127.0.0.1:{server.port}", ca_file
        )
        view = Cluster.connect(kubeconfig=str(kubeconfig), timeout=3.0)
        try:
            with pytest.raises(ClusterError, match="nested too deeply") as raised:
                view.version()
            assert "\n" not in str(raised.value)
            for read in (view.endpoint_slices, view.pods):  # the refusal is read from its status code
                with pytest.raises(ClusterError) as raised:
                    read()
                assert raised.value.kind is ClusterErrorKind.FORBIDDEN, str(raised.value)
        finally:
            view.close()
