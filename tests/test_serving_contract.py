"""schemathesis against the app in-process: no 5xx, answers as documented (a short run)."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode, checks  # noqa: E402

from churnctl.workspace import Workspace  # noqa: E402
from tests.serving_demo import make_demo_workspace  # noqa: E402

CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.positive_data_acceptance]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> object:
    from churnctl.serving.app import create_app

    workspace: Workspace = make_demo_workspace(tmp_path_factory.mktemp("contract"), users=200)
    app = create_app(workspace, {"max_batch": 20})
    app.state.holder.refresh()
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_api_matches_its_openapi_document(api_schema: object) -> None:
    """Every operation, with generated valid and invalid inputs (schemathesis' pytest plugin
    is not used: it does not load under this pytest)."""
    tested = []
    for result in api_schema.get_all_operations():  # type: ignore[attr-defined]
        operation = result.ok()
        tested.append(operation.label)

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
               | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def run(case: object) -> None:
            case.call_and_validate(checks=CHECKS)  # type: ignore[attr-defined]

        run()
    assert {"POST /predict", "POST /predict/batch", "GET /metrics", "GET /ready"} <= set(tested)
