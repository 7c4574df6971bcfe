"""The API in-process: offline docs, token auth, JSON only, what answers echo, the contract."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from churnctl.serving.app import create_app
from churnctl.serving.security import TOKEN_ENV
from churnctl.workspace import Workspace
from tests.serving_demo import make_demo_workspace

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_demo_workspace(tmp_path_factory.mktemp("api"), users=300)


def loaded_app(workspace: Workspace, **options: Any) -> FastAPI:
    app = create_app(workspace, {"max_batch": 20, **options})
    app.state.holder.refresh()  # load now, without the background poller
    return app


@pytest.fixture(scope="module")
def client(workspace: Workspace) -> Iterator[TestClient]:
    yield TestClient(loaded_app(workspace))


@pytest.fixture(scope="module")
def user(workspace: Workspace) -> Any:
    frame = pd.read_parquet(next(workspace.artifacts.glob("features/*/latest.parquet")))
    return frame["user_id"].iloc[0]


def test_docs_page_uses_only_assets_the_app_serves(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert links, page.text
    urls = re.findall(r"(?:url|src|href)\s*[:=]\s*['\"]([^'\"]+)['\"]", page.text)
    assert not [u for u in urls if "//" in u], urls  # no CDN or any other host
    for link in links:
        asset = client.get(link)
        assert asset.status_code == 200, link
        assert len(asset.content) > 500, link
    assert "/openapi.json" in page.text
    assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN


def test_predict_needs_json_content_type(client: TestClient, user: Any) -> None:
    body = f'{{"user_id": {user!r}}}'.replace("'", '"')
    for path in ("/predict", "/predict/batch"):
        for headers in ({"content-type": "text/plain"}, {},
                        {"content-type": "application/x-www-form-urlencoded"}):
            answer = client.post(path, content=body, headers=headers)
            assert answer.status_code == 415, (path, headers, answer.text)
            assert "application/json" in answer.json()["message"]
    answer = client.post("/predict", content=body,
                         headers={"content-type": "application/json; charset=utf-8"})
    assert answer.status_code == 200, answer.text


def test_long_user_ids_and_field_names_are_not_echoed_whole(client: TestClient) -> None:
    huge = "x" * 1_000_000
    answer = client.post("/predict", json={"user_id": huge})
    assert answer.status_code == 404
    assert len(answer.text) < 1000 and "1,000,002 characters" in answer.text
    answer = client.post("/predict/batch", json={"customers": [{"user_id": huge}] * 3})
    assert answer.status_code == 404 and len(answer.text) < 2000
    answer = client.post("/predict", json={"features": {huge: 1}})
    assert answer.status_code == 422 and len(answer.text) < 5000


def test_ready_reason_names_no_filesystem_path(tmp_path: Any) -> None:
    empty = Workspace(tmp_path / "nothing-here").ensure()
    app = create_app(empty, {})
    app.state.holder.refresh()
    with TestClient(app) as client:
        answer = client.get("/ready")
        assert answer.status_code == 503
        reason = answer.json()["reason"]
        assert "no production model" in reason
        assert str(tmp_path) not in reason and "nothing-here" not in reason, reason
        message = client.post("/predict", json={"user_id": 1}).json()["message"]
        assert str(tmp_path) not in message


def test_token_auth_protects_data_and_leaves_probes_open(
        workspace: Workspace, user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "s3cret-token")
    client = TestClient(loaded_app(workspace))
    for path in ("/live", "/ready", "/metrics", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    for bad in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret-token"}):
        answer = client.post("/predict", json={"user_id": user}, headers=bad)
        assert answer.status_code == 401, bad
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/model", headers=bad).status_code == 401
    good = {"authorization": "Bearer s3cret-token"}
    assert client.post("/predict", json={"user_id": user}, headers=good).status_code == 200
    assert client.post("/predict/batch", json={"customers": [{"user_id": user}]},
                       headers=good).status_code == 200
    assert client.get("/model", headers=good).status_code == 200
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/live"]["get"]
    assert 'status="401"' in client.get("/metrics").text


def test_token_from_a_mounted_secret_file_and_protected_metrics(
        workspace: Workspace, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    secret = tmp_path / "token"
    secret.write_text("from-the-secret\n")
    client = TestClient(loaded_app(workspace, api_token_file=str(secret), protect_metrics=True))
    assert client.get("/metrics").status_code == 401
    assert client.get("/live").status_code == 200 and client.get("/ready").status_code == 200
    good = {"authorization": "Bearer from-the-secret"}
    assert client.get("/metrics", headers=good).status_code == 200
    assert client.get("/model", headers=good).status_code == 200
    with pytest.raises(ValueError, match="api_token_file"):
        create_app(workspace, {"api_token_file": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        create_app(workspace, {"api_token_file": str(tmp_path / "empty")})


def test_no_token_means_open_as_before(client: TestClient, user: Any) -> None:
    assert client.post("/predict", json={"user_id": user}).status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json()["components"]


def test_openapi_says_exactly_one_source_and_metrics_is_text(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    request = spec["components"]["schemas"]["PredictRequest"]
    branches = request["oneOf"]
    assert [b["required"] for b in branches] == [["features"], ["user_id"]]
    features = {"$ref": "#/components/schemas/CustomerFeatures"}
    assert branches[0]["properties"]["features"] == features
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert "415" in responses


@pytest.mark.parametrize("body", [{}, {"customers": [{}]},
                                  {"user_id": 1, "features": {}}, {"user_id": None}])
def test_bodies_the_schema_refuses_are_the_ones_answered_422(
        client: TestClient, body: dict[str, Any]) -> None:
    import jsonschema

    spec = client.get("/openapi.json").json()
    name = "BatchPredictRequest" if "customers" in body else "PredictRequest"
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": spec["components"]})
    assert not validator.is_valid(body)
    path = "/predict/batch" if "customers" in body else "/predict"
    assert client.post(path, json=body).status_code == 422


def test_scoring_routes_skip_fastapis_request_handler_and_keep_its_contract(
        client: TestClient, user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import fastapi.routing

    from churnctl.serving.direct_route import DirectRoute

    routes = {route.path: route for route in client.app.routes  # type: ignore[attr-defined]
              if getattr(route, "path", "").startswith("/predict")}
    assert {path: type(route) for path, route in routes.items()} == {
        "/predict": DirectRoute, "/predict/batch": DirectRoute}

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("FastAPI's dependency solving ran for a scoring route")

    # FastAPI's per-request handler starts with solve_dependencies: it must not run.
    monkeypatch.setattr(fastapi.routing, "solve_dependencies", refuse)
    assert client.post("/predict", json={"user_id": str(user)}).status_code == 200
    assert client.post("/predict/batch", json={"customers": [{"user_id": str(user)}]}
                       ).status_code == 200
    # What FastAPI did for the route still holds: 405 with Allow, the app's error handler,
    # the route in OpenAPI and in scope["route"] (the server span's name).
    wrong = client.get("/predict")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    refused = client.post("/predict", content=b"{}", headers={"content-type": "text/plain"})
    assert refused.status_code == 415 and "application/json" in refused.json()["message"]
    operations = client.get("/openapi.json").json()["paths"]
    assert {"post"} == set(operations["/predict"]) == set(operations["/predict/batch"])
    assert "404" in operations["/predict"]["post"]["responses"]


def test_the_batch_limit_is_in_the_document_and_answered_413(client: TestClient,
                                                             user: Any) -> None:
    # A schema-valid batch must be accepted (schemathesis' positive-data check): so the
    # document states the limit the API enforces, and what goes over it gets the 413 listed.
    document = client.get("/openapi.json").json()
    batch = document["components"]["schemas"]["BatchPredictRequest"]
    assert batch["properties"]["customers"]["maxItems"] == 20
    assert "413" in document["paths"]["/predict/batch"]["post"]["responses"]
    over = client.post("/predict/batch", json={"customers": [{"user_id": str(user)}] * 21})
    assert over.status_code == 413 and "limit is 20" in over.json()["message"]
    assert client.post("/predict/batch", json={"customers": [{"user_id": str(user)}] * 20}
                       ).status_code == 200
