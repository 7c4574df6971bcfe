"""The test double itself: the kmock emulator with server-side apply behaves as an API server.

The deploy tests trust tests/kube_emulator.py to answer like a real server; these tests pin
down the server behaviour they rely on, over raw HTTP (no churnctl code involved).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube_emulator import APPLY_PATCH, Emulator, running_emulator

pytestmark = [
    pytest.mark.emulator,
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]
CONFIGMAP = "/api/v1/namespaces/churn/configmaps/settings"


NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "churn"}}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with running_emulator(tmp_path) as running:
        status, _ = call(running, "PATCH", "/api/v1/namespaces/churn", NAMESPACE, fieldManager="t")
        assert status == 201
        yield running


def call(
    emulator: Emulator,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    content_type: str = APPLY_PATCH,
    **params: str,
) -> tuple[int, dict[str, Any]]:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(emulator.url + path + query, data=data, method=method)
    if body is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def configmap(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "churn", "labels": {"team": "churn"}},
        "data": data,
    }


def test_apply_creates_with_201_then_updates_with_200(emulator: Emulator) -> None:
    assert call(emulator, "GET", CONFIGMAP)[0] == 404
    status, created = call(emulator, "PATCH", CONFIGMAP, configmap(a="1"), fieldManager="me")
    assert status == 201
    assert created["data"] == {"a": "1"}
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["resourceVersion"]
    assert [m["manager"] for m in meta["managedFields"]] == ["me"]
    assert call(emulator, "GET", CONFIGMAP) == (200, created)

    status, same = call(emulator, "PATCH", CONFIGMAP, configmap(a="1"), fieldManager="me")
    assert status == 200
    assert same["metadata"]["resourceVersion"] == meta["resourceVersion"]  # nothing changed
    status, changed = call(emulator, "PATCH", CONFIGMAP, configmap(a="2"), fieldManager="me")
    assert (status, changed["data"]) == (200, {"a": "2"})
    assert changed["metadata"]["uid"] == meta["uid"]
    assert changed["metadata"]["resourceVersion"] != meta["resourceVersion"]


def test_apply_needs_a_field_manager_and_a_matching_name(emulator: Emulator) -> None:
    assert call(emulator, "PATCH", CONFIGMAP, configmap(a="1"))[0] == 400
    other = configmap(a="1")
    other["metadata"]["name"] = "other"
    assert call(emulator, "PATCH", CONFIGMAP, other, fieldManager="me")[0] == 400


def test_fields_a_manager_stops_applying_are_removed_others_kept(emulator: Emulator) -> None:
    call(emulator, "PATCH", CONFIGMAP, configmap(a="1", b="2"), fieldManager="me")
    # Another manager adds a key with a plain merge patch (kubectl edit, a controller).
    status, _ = call(
        emulator, "PATCH", CONFIGMAP, {"data": {"c": "3"}},
        content_type="application/merge-patch+json", fieldManager="kubectl-edit",
    )  # fmt: skip
    assert status == 200
    trimmed = configmap(a="1")
    del trimmed["metadata"]["labels"]
    status, after = call(emulator, "PATCH", CONFIGMAP, trimmed, fieldManager="me")
    assert status == 200
    assert after["data"] == {"a": "1", "c": "3"}  # b was ours and is gone; c is not ours
    assert "labels" not in after["metadata"]


def test_a_recreated_object_owns_nothing_of_the_deleted_one(emulator: Emulator) -> None:
    call(emulator, "PATCH", CONFIGMAP, configmap(a="1"), fieldManager="me")
    assert call(emulator, "DELETE", CONFIGMAP)[0] == 200
    assert call(emulator, "GET", CONFIGMAP)[0] == 404
    assert emulator.handler.applied.get(CONFIGMAP) is None
    status, created = call(emulator, "PATCH", CONFIGMAP, configmap(b="2"), fieldManager="me")
    assert (status, created["data"]) == (201, {"b": "2"})


def test_named_list_items_merge_by_name(emulator: Emulator) -> None:
    path = "/apis/apps/v1/namespaces/churn/deployments/api"
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "churn"},
        "spec": {"template": {"spec": {"containers": [{"name": "api", "env": env}]}}},
    }
    assert call(emulator, "PATCH", path, deployment, fieldManager="me")[0] == 201
    stored = emulator.stored("deployments", "churn", "api")
    stored["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "C", "value": "3"})
    emulator.replace("deployments", "churn", "api", stored)  # set by someone else
    del env[0]
    _, after = call(emulator, "PATCH", path, deployment, fieldManager="me")
    names = [e["name"] for e in after["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names == ["B", "C"]
    assert after["metadata"]["generation"] == 2


def test_dry_run_answers_the_result_and_stores_nothing(emulator: Emulator) -> None:
    status, would = call(
        emulator, "PATCH", CONFIGMAP, configmap(a="1"), fieldManager="me", dryRun="All"
    )
    assert (status, would["data"]) == (201, {"a": "1"})
    assert call(emulator, "GET", CONFIGMAP)[0] == 404

    _, live = call(emulator, "PATCH", CONFIGMAP, configmap(a="1"), fieldManager="me")
    status, would = call(
        emulator, "PATCH", CONFIGMAP, configmap(b="2"), fieldManager="me", dryRun="All"
    )
    assert (status, would["data"]) == (200, {"b": "2"})
    assert call(emulator, "GET", CONFIGMAP) == (200, live)
    # The dry run did not move the ownership either: the next real apply still removes `a`.
    _, after = call(emulator, "PATCH", CONFIGMAP, configmap(c="3"), fieldManager="me")
    assert after["data"] == {"c": "3"}


def test_nothing_is_created_in_a_missing_namespace(emulator: Emulator) -> None:
    path = "/api/v1/namespaces/elsewhere/configmaps/settings"
    obj = configmap(a="1")
    obj["metadata"]["namespace"] = "elsewhere"
    for params in ({}, {"dryRun": "All"}):
        status, answer = call(emulator, "PATCH", path, obj, fieldManager="me", **params)
        assert (status, answer["message"]) == (404, 'namespaces "elsewhere" not found')


def test_cluster_scoped_namespaces_apply_the_same_way(emulator: Emulator) -> None:
    namespace: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "other", "labels": {"a": "1", "b": "2"}},
    }
    path = "/api/v1/namespaces/other"
    assert call(emulator, "PATCH", path, namespace, fieldManager="me", dryRun="All")[0] == 201
    assert call(emulator, "GET", path)[0] == 404
    assert call(emulator, "PATCH", path, namespace, fieldManager="me")[0] == 201
    del namespace["metadata"]["labels"]["b"]
    status, after = call(emulator, "PATCH", path, namespace, fieldManager="me")
    assert (status, after["metadata"]["labels"]) == (200, {"a": "1"})
    assert call(emulator, "GET", path) == (200, after)
