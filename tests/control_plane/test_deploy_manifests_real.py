"""The Job manifests of deploy/, checked by a real kube-apiserver: created with ``dryRun=All`` and strict
field validation, so a misspelt or misplaced field, or a value the API refuses (an Indexed Job without
completions, a per-index backoff on a pod that restarts), fails here as it would on ``kubectl apply``.
Nothing is stored but the namespace the manifests name, removed again."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pytest_reachability.sandbox.control_plane import ControlPlane
from pytest_reachability.sandbox.control_plane_load import ApiError, LoadReport, clear_objects, load_objects

from .suite_runs import admin

pytestmark = pytest.mark.control_plane

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COLLECTIONS = {"CronJob": "cronjobs", "Job": "jobs"}


@pytest.mark.parametrize("name", ["cronjob-sharded.yaml", "cronjob.yaml", "job.yaml"])
def test_the_api_server_accepts_the_job_manifest(control_plane: ControlPlane, name: str) -> None:
    (doc,) = [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    namespace = doc["metadata"]["namespace"]
    client = admin(control_plane)
    report = LoadReport()
    try:
        load_objects(
            client, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}], report
        )
        path = f"/apis/batch/v1/namespaces/{namespace}/{COLLECTIONS[doc['kind']]}"
        created = client.request("POST", path, doc, params={"dryRun": "All", "fieldValidation": "Strict"})
        assert created["metadata"]["name"] == doc["metadata"]["name"]
        with pytest.raises(ApiError) as refused:  # the control: a field the API does not know is refused
            client.request(
                "POST",
                path,
                {**doc, "spec": {**doc["spec"], "completionsMode": "Indexed"}},
                params={"dryRun": "All", "fieldValidation": "Strict"},
            )
        assert refused.value.code == 400 and "completionsMode" in str(refused.value)
    finally:
        clear_objects(client, report)
        client.close()
