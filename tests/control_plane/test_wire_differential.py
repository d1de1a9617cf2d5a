"""The sandbox's API server and kube-apiserver on the wire: Status bodies, list shapes, selectors, discovery.

The same scenario (``scenarios/denied-reads.yaml``: the healthy world, Secrets and production's pod logs
refused) is served by both; the same requests, with each server's reader, must get the same answers.
Documented exceptions (docs/control-plane.md) are asserted as such, so a change on either side shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from pytest_reachability.sandbox.control_plane import ADMIN, ControlPlane
from pytest_reachability.sandbox.scenario import load_scenario

from .snapshots import embedded_server, real_server

pytestmark = pytest.mark.control_plane

SCENARIO = Path(__file__).parent / "scenarios" / "denied-reads.yaml"
NAMESPACE = "production"


class Peer:
    def __init__(self, kubeconfig: str, token: str | None = None) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        self.url = cluster["server"]
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = cluster["certificate-authority"]
        self.token = token or config["users"][0]["user"]["token"]

    def get(
        self, path: str, *, token: str | None = None, accept: str = "application/json", **params: str
    ) -> requests.Response:
        return self.session.get(
            self.url + path,
            params=params or None,
            timeout=30,
            headers={"Authorization": f"Bearer {token or self.token}", "Accept": accept},
        )

    def json(self, path: str, **params: str) -> tuple[int, Any]:
        response = self.get(path, **params)
        return response.status_code, response.json()


@pytest.fixture(scope="module")
def peers(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Peer]]:
    scenario = load_scenario(SCENARIO)
    directory = tmp_path_factory.mktemp("wire")
    with (
        embedded_server(scenario, directory) as embedded,
        real_server(scenario, control_plane, directory) as (real, _),
    ):
        yield {
            "embedded": Peer(embedded),
            "real": Peer(real),
            "real-admin": Peer(real, control_plane.users[ADMIN].token),
        }


def same_user(status: dict[str, Any]) -> dict[str, Any]:
    return {**status, "message": re.sub(r'User "[^"]*"', 'User "<reader>"', status.get("message", ""))}


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/namespaces/{NAMESPACE}/pods/missing",
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/missing",
        f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/ingresses/missing",
        "/api/v1/nodes/missing",
        f"/api/v1/namespaces/{NAMESPACE}/pods/missing/log",
        f"/api/v1/namespaces/{NAMESPACE}/secrets",
        "/api/v1/secrets",
        f"/api/v1/namespaces/{NAMESPACE}/pods/api-847495fbc4-686tk/log",
        f"/api/v1/namespaces/{NAMESPACE}/pods",
    ],
)
def test_status_bodies_are_the_same(path: str, peers: dict[str, Peer]) -> None:
    embedded, real = peers["embedded"].get(path), peers["real"].get(path)
    assert embedded.status_code == real.status_code, (embedded.text, real.text)
    if real.status_code >= 400:
        assert same_user(embedded.json()) == same_user(real.json())


def test_unauthorized_and_unknown_paths(peers: dict[str, Peer]) -> None:
    embedded, real = peers["embedded"], peers["real"]
    assert (
        embedded.get("/api/v1/pods", token="wrong").json() == real.get("/api/v1/pods", token="wrong").json()
    )
    # An identity allowed to read everything meets the unknown resource; RBAC decides before that on a
    # real server, so the comparison is with its admin.
    unknown = f"/api/v1/namespaces/{NAMESPACE}/nosuchthings"
    assert embedded.json(unknown) == peers["real-admin"].json(unknown)


@pytest.mark.parametrize(
    "field_selector",
    [
        "spec.bogus=1",
        "status.phase=Running",
        "metadata.name=api-847495fbc4-686tk",
        "status.phase!=Running",
        "spec.nodeName=pool-prod-k8s-x1a2c",
    ],
)
def test_field_selectors(field_selector: str, peers: dict[str, Peer]) -> None:
    results = {}
    for side in ("embedded", "real"):
        code, body = peers[side].json("/api/v1/pods", fieldSelector=field_selector)
        results[side] = (code, body if code >= 400 else [i["metadata"]["name"] for i in body["items"]])
    assert results["embedded"] == results["real"]


@pytest.mark.parametrize(
    "label_selector",
    [
        "app=api",
        "app in (api,digital-twin-bot)",
        "app notin (api)",
        "!pod-template-hash",
        "pod-template-hash",
        "app!=api,k8s-app",
    ],
)
def test_label_selectors(label_selector: str, peers: dict[str, Peer]) -> None:
    names = {}
    for side in ("embedded", "real"):
        code, body = peers[side].json("/api/v1/pods", labelSelector=label_selector)
        assert code == 200, body
        names[side] = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in body["items"]]
    assert names["embedded"] == names["real"]


def test_unparsable_label_selector_is_a_bad_request_on_both(peers: dict[str, Peer]) -> None:
    """Documented exception: the parse error's wording differs (kube-apiserver's lexer names the token)."""
    bodies = [
        peers[side].json("/api/v1/pods", labelSelector="app in (api")[1] for side in ("embedded", "real")
    ]
    for body in bodies:
        assert (body["code"], body["reason"]) == (400, "BadRequest")
        assert body["message"].startswith("unable to parse requirement")


def test_list_shapes(peers: dict[str, Peer]) -> None:
    shapes = {}
    for side in ("embedded", "real"):
        code, body = peers[side].json(f"/api/v1/namespaces/{NAMESPACE}/pods", limit="1")
        assert code == 200
        shapes[side] = (
            sorted(body),
            body["kind"],
            body["apiVersion"],
            sorted(body["metadata"]),
            body["metadata"]["remainingItemCount"],
            sorted(body["items"][0]),
        )
    assert shapes["embedded"] == shapes["real"]


def test_metadata_only_lists(peers: dict[str, Peer]) -> None:
    accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
    answers = {}
    for side in ("embedded", "real"):
        answers[side] = []
        for namespace in (NAMESPACE, "kube-public"):  # the second is empty
            response = peers[side].get(f"/api/v1/namespaces/{namespace}/services", accept=accept)
            body = response.json()
            answers[side].append(
                (
                    response.status_code,
                    response.headers["Content-Type"],
                    body["kind"],
                    body["apiVersion"],
                    sorted(body["metadata"]),
                    body["items"]
                    and [(i["kind"], i["apiVersion"], i["metadata"]["name"]) for i in body["items"]],
                )
            )
    assert answers["embedded"] == answers["real"]


def test_discovery_names_every_served_resource_alike(peers: dict[str, Peer]) -> None:
    """Kind, scope and short names of each resource the sandbox serves, as kube-apiserver lists them.

    Documented exception: the sandbox is read-only, so its verbs are get and list only.
    """
    embedded, real = peers["embedded"], peers["real-admin"]
    versions = ["/api/v1"] + [
        f"/apis/{v['groupVersion']}" for g in embedded.json("/apis")[1]["groups"] for v in g["versions"]
    ]
    compared = 0
    for path in versions:
        served = {r["name"]: r for r in embedded.json(path)[1]["resources"]}
        code, body = real.json(path)
        assert code == 200, (path, body)
        actual = {r["name"]: r for r in body["resources"]}
        for name, resource in served.items():
            assert name in actual, f"{path}: the sandbox serves {name}, kube-apiserver does not"
            for key in ("kind", "namespaced", "shortNames", "singularName", "group", "version"):
                assert resource.get(key) == actual[name].get(key), (path, name, key)
            assert set(resource["verbs"]) <= set(actual[name]["verbs"]), (path, name)
            compared += 1
    assert compared >= 20
