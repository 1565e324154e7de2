"""The HTTP API against its own OpenAPI document: the committed copy is what the node serves, and schemathesis
(bounded in examples and time) finds no server error and no answer that is not RFC 9457 problem JSON."""

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from veriml import examples
from veriml.identity import SigningKey
from veriml.node import Node, NodeConfig, create_app

COMMITTED = Path(__file__).parents[2] / "docs" / "openapi.json"
OPENAI_PATHS = {"/v1/chat/completions", "/v1/completions"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    node = Node(NodeConfig(home=root / "node", admin_token="secret", audit_fraction=0))
    path = examples.save(examples.mlp(), root / "mlp.onnx")
    node.service.publish(path, name="alice/mlp", publisher=SigningKey.generate("alice"))
    node.service.infer("alice/mlp", {"x": [[0.5] * 16]})
    node.service.log.sign_checkpoint()
    yield create_app(node)
    node.stop()


def test_committed_openapi_document_is_the_served_one(app):
    served = app.openapi()
    assert json.loads(COMMITTED.read_text()) == served, "run: python -m veriml.node.openapi > docs/openapi.json"


def test_no_server_errors_and_problem_json_for_every_refusal(app):
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call()
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
            if response.status_code >= 400 and case.path in OPENAI_PATHS and response.status_code != 413:
                # OpenAI's error shape, which its clients parse (413 comes from the body limit, before routing).
                error = response.json()["error"]
                assert isinstance(error["message"], str) and error["type"], where
            elif response.status_code >= 400:
                content_type = response.headers.get("content-type") or [""]
                content_type = content_type[0] if isinstance(content_type, list) else content_type
                assert content_type.startswith("application/problem+json"), where
                body = response.json()
                assert body["status"] == response.status_code
                assert body["type"].startswith("https://veriml.dev/problems/")

        check()
