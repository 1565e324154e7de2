"""The operator's publish policy on the open path: with an allow-list only listed publisher keys publish, and a
closed node takes models from its operator (admin token) only. A refused publisher gets `publisher-not-allowed`
and nothing is stored. The real node app, in process (its HTTP face is what is under test)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.adversarial.publishing_attackers import sign_as
from veriml import examples
from veriml.identity import SigningKey
from veriml.node.app import create_app
from veriml.node.config import NodeConfig
from veriml.node.node import Node


@pytest.fixture
def model(tmp_path):
    return examples.save(examples.mlp(), tmp_path / "mlp.onnx")


def node_app(tmp_path, **settings) -> TestClient:
    config = NodeConfig.load(None, env={}, home=tmp_path / "node", admin_token="operator-token", **settings)
    return TestClient(create_app(Node(config)))


def publish(client: TestClient, signed, model, headers=None):
    answer = client.post("/v1/publish", json=signed.to_json(), headers=headers or {})
    if answer.status_code == 202:
        answer = client.put(answer.json()["upload"], content=model.read_bytes())
    return answer


def test_allow_list_refuses_unlisted_publishers(tmp_path, model):
    listed, stranger = SigningKey.generate("listed"), SigningKey.generate("stranger")
    client = node_app(tmp_path, publish_policy="allow-list", publish_allow=(listed.public.vkey,))
    refused = publish(client, sign_as(model, "stranger/mlp", 1, None, stranger), model)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("/publisher-not-allowed") and "not on this node's allow-list" in refused.text
    assert client.get("/v1/models/stranger/mlp").status_code == 404
    stored = publish(client, sign_as(model, "listed/mlp", 1, None, listed), model)
    assert stored.status_code == 201 and stored.json()["ref"] == "listed/mlp@1"


def test_closed_node_takes_models_from_its_operator_only(tmp_path, model):
    alice = SigningKey.generate("alice")
    client = node_app(tmp_path, publish_policy="closed")
    signed = sign_as(model, "alice/mlp", 1, None, alice)
    refused = publish(client, signed, model)
    assert refused.status_code == 403 and refused.json()["type"].endswith("/publisher-not-allowed"), refused.text
    assert client.get(f"/v1/blobs/{signed.body.blob}").status_code == 404
    # The operator still publishes with the admin token.
    admin = {"Authorization": "Bearer operator-token"}
    assert client.put(f"/v1/blobs/{signed.body.blob}", content=model.read_bytes(), headers=admin).status_code == 201
    assert client.post("/v1/manifests", json=signed.to_json(), headers=admin).status_code == 201


def test_policy_settings_are_checked(tmp_path):
    from veriml.errors import InvalidInput

    with pytest.raises(InvalidInput, match="publish_policy 'sometimes'"):
        NodeConfig.load(None, env={}, home=tmp_path, publish_policy="sometimes")
    config = NodeConfig.load(None, env={"VERIML_NODE_PUBLISH_ALLOW": "a,b", "VERIML_NODE_PUBLISH_QUOTA_BYTES": "7"},
                             home=tmp_path)  # fmt: skip
    assert config.publish_allow == ("a", "b") and config.publish_quota_bytes == 7
