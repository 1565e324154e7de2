"""Small models run on the node's event loop, and a run there that passes 0.1 s sends its model to worker threads
for a minute (tests/adversarial/test_cost_model_run.py: a run heavy for its shape). A run that passed 0.1 s only
because the machine was busy (its thread descheduled, no CPU used) does not: else any busy moment would send a
microsecond model through worker threads for a minute, at half the node's throughput."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import numpy as np

from tests.adversarial.audit_support import publish_mlp
from tests.integration.descheduled_run_node import BEFORE_RUN, DURING_RUN
from veriml import devnet
from veriml.codec import Digest, tensors_from_json
from veriml.runtime.onnx_engine import OnnxEngine

NODE = Path(__file__).with_name("descheduled_run_node.py")


def test_a_run_descheduled_on_the_event_loop_keeps_its_model_there(tmp_path):
    network = devnet.up(tmp_path, 1, audit_fraction=0.0, commands={0: [sys.executable, str(NODE)]})
    try:
        model = publish_mlp(network, tmp_path).read_bytes()
        url = network.urls[0]
        for mark in (0.5, DURING_RUN, BEFORE_RUN, 0.5):  # the first run loads the model, in a worker thread
            x = np.full((1, 16), mark, np.float32)
            response = httpx.post(f"{url}/v1/infer", json={"model": "alice/mlp", "inputs": {"x": x.tolist()}},
                                  timeout=30)  # fmt: skip
            assert response.status_code == 200, response.text
            served = tensors_from_json(response.json()["bundle"]["outputs"], "outputs")
            alone = OnnxEngine().run(Digest.of(model), lambda: model, {"x": x})
            assert {k: v.tobytes() for k, v in served.items()} == {k: v.tobytes() for k, v in alone.items()}
        log = Path(network.nodes[0].log).read_text()
        assert "runs in worker threads" not in log
    finally:
        devnet.down(tmp_path)
