"""ZKML end to end (slow: a circuit setup and a proof): OpenGradient's `InferenceMode.ZKML` through the drop-in, and
`level=proven` through the MCP server, return the circuit's outputs with a proof checked here against the
publisher-signed verification key, and a bundle that verifies at level `proven` offline."""

from __future__ import annotations

import os

import anyio
import numpy as np
import pytest

from veriml import devnet, examples
from veriml.client import Client
from veriml.compat import opengradient as og
from veriml.identity import SigningKey
from veriml.integrations.gateway import Gateway
from veriml.service import Home, Service
from veriml.verify import verify_bundle

pytest.importorskip("mcp", reason="the integrations extra")
from mcp import Client as McpClient

from veriml.integrations.mcp_server import build_server

pytestmark = pytest.mark.slow


def test_zkml_mode_and_proven_level_return_checked_proofs(tmp_path, monkeypatch):
    monkeypatch.setenv("EZKL_REPO_PATH", str(tmp_path / "ezkl"))
    publisher = SigningKey.generate("alice")
    home = Home(tmp_path / "publisher")
    publisher.save(home.publisher_key_path)
    model = examples.save(examples.mlp(), tmp_path / "mlp.onnx")
    with Service(home) as local:
        manifest = local.publish(model, name="alice/mlp").manifest
        document = local.zk_setup("alice/mlp")
        artifacts = {str(b): local.hub.blobs.read_verified(b) for b in document.body.artifacts.values()}
    network = devnet.up(tmp_path / "net", 2, checkpoint_interval=0.3, audit_fraction=0.0)
    try:
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.push(manifest, model, node=network.urls[0])
            client.push_zk(document, lambda digest: artifacts[str(digest)], node=network.urls[0])
        x = np.random.default_rng(4).standard_normal((1, 16)).astype(np.float32)
        result = og.Alpha(nodes=network.urls).infer("alice/mlp", og.InferenceMode.ZKML, {"x": x})
        assert result.verification["level"] == "proven"
        assert result.bundle.zk_proof is not None and result.bundle.log_proof is not None
        assert result.model_output["y"].tobytes() == result.bundle.outputs["y"].tobytes()  # the circuit's outputs
        check = {c["name"]: c["status"] for c in result.verification["report"]["checks"]}
        assert check["zk.proof"] == "pass" and check["log.inclusion"] == "pass"
        assert result.verification["verdict"] == "unanchored"  # no publisher named to trust

        with Gateway(network.urls, publishers=[publisher.public.vkey]) as gateway:
            report = verify_bundle(result.bundle, level="proven", load_blob=gateway.load_blob,
                                   trusted_publishers=[publisher.public.vkey])  # fmt: skip
            assert report.verified, report.failures()

            async def session():  # type: ignore[no-untyped-def]
                async with McpClient(build_server(gateway)) as mcp_client:
                    return await mcp_client.call_tool("infer", {"model": "alice/mlp", "inputs": {"x": x.tolist()},
                                                                "level": "proven"})  # fmt: skip

            proven = anyio.run(session).structured_content
        assert proven["verification"]["verdict"] == "verified" and proven["verification"]["level"] == "proven"
    finally:
        devnet.down(tmp_path / "net")
        os.environ.pop("EZKL_REPO_PATH", None)
