"""A publisher plants a model whose work depends on an input's value (a Loop run n times), and a caller sends
n = 10**12: days of work from a 100-byte request. The model is small, so the node ran it on its event loop, and the
one request stopped the node answering anyone. Every run now has a time limit (max_run_seconds), and a run on the
event loop stops after 0.1 s and runs again in a worker thread, and a model with control flow or sizes from its
inputs' values never runs there: the node goes on answering while it runs, and the caller gets 422 run-too-long
once the limit passes."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest

from tests.adversarial.audit_support import attestations, info, publish_mlp, refusals, wait_audited, wait_checkpoint
from tests.adversarial.costly_models import counting_loop, deep_mlp
from veriml import devnet
from veriml.client import Client
from veriml.codec import Digest, tensors_from_json
from veriml.identity import SigningKey
from veriml.runtime.onnx_engine import OnnxEngine

SHORT_LIMIT = Path(__file__).with_name("short_run_limit_node.py")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("costlyrun")
    network = devnet.up(root, 1, audit_fraction=0.0, commands={0: [sys.executable, str(SHORT_LIMIT)]})
    publish_mlp(network, root)
    path = root / "count.onnx"
    onnx.save(counting_loop(), path)
    with Client(network.urls, admin_token=network.admin_token) as client:
        client.publish(path, "mallory/count", SigningKey.generate("mallory"))
    yield network
    devnet.down(root)


def test_a_run_for_days_is_stopped_and_the_node_answers_others_meanwhile(net):
    url = net.urls[0]
    answers: dict[str, object] = {}

    def costly() -> None:
        started = time.monotonic()
        answers["response"] = httpx.post(f"{url}/v1/infer", json={"model": "mallory/count",
                                         "inputs": {"n": 10**12, "x": [0.0]}}, timeout=60)  # fmt: skip
        answers["elapsed"] = time.monotonic() - started

    caller = threading.Thread(target=costly)
    caller.start()
    time.sleep(0.5)  # the costly run is under way
    x = np.zeros((1, 16), np.float32).tolist()
    with httpx.Client(timeout=10) as http:
        for _ in range(5):
            started = time.monotonic()
            assert http.get(f"{url}/v1/health").status_code == 200
            assert http.post(f"{url}/v1/infer", json={"model": "alice/mlp", "inputs": {"x": x}}).status_code == 200
            assert time.monotonic() - started < 2.0, "the node stopped answering while the costly run went on"
    caller.join(60)
    response = answers["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 422, response
    problem = response.json()
    assert problem["type"].endswith("/run-too-long") and "within 0.5 s" in problem["detail"], problem
    assert answers["elapsed"] < 5  # type: ignore[operator]


def test_the_same_model_still_answers_what_it_can_within_the_limit(net):
    response = httpx.post(f"{net.urls[0]}/v1/infer", json={"model": "mallory/count",
                          "inputs": {"n": 1000, "x": [0.5]}}, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    outputs = tensors_from_json(response.json()["bundle"]["outputs"], "outputs")
    assert outputs["y"].tolist() == [1000.5]


def test_an_auditor_whose_limit_a_run_passes_frames_no_one(tmp_path_factory):
    """Node 0 (a 60 s limit) answers a request that takes it seconds; node 1 audits every entry with a 0.5 s limit.
    Its re-execution is stopped, and the entry is recorded as over its limits: no refusal, no disagreement, as for
    entries over its other limits. The entry beside it, quick to re-execute, is attested as agreeing."""
    root = tmp_path_factory.mktemp("slowauditor")
    try:
        network = devnet.up(root, 2, checkpoint_interval=0.3, audit_fraction=1.0,
                            commands={1: [sys.executable, str(SHORT_LIMIT)]})  # fmt: skip
        path = root / "count.onnx"
        onnx.save(counting_loop(), path)
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.publish(path, "mallory/count", SigningKey.generate("mallory"), node=network.urls[0])
        served = info(network.urls[0])
        indices = {}
        for n in (1000, 4_000_000):  # seconds of iterations for the second, ten times the auditor's limit
            response = httpx.post(f"{network.urls[0]}/v1/infer", json={"model": "mallory/count",
                                  "inputs": {"n": n, "x": [0.0]}}, timeout=60)  # fmt: skip
            assert response.status_code == 200, response.text
            indices[n] = response.json()["log_index"]
        size = wait_checkpoint(network.urls[0], max(indices.values()) + 1)
        wait_audited(network.urls[1:], served["log_origin"], size, timeout=90)
        assert {a["log_index"] for a in attestations(network.urls[1], served["node"])} == {indices[1000]}
        assert not refusals(network.urls[1], served["node"])
        store = sqlite3.connect(Path(network.nodes[1].home, "audit", "audit.sqlite"))
        outcome = store.execute("SELECT outcome FROM examined WHERE log_index = ?", (indices[4_000_000],)).fetchone()
        store.close()
        assert outcome == ("over-limits",)
    finally:
        devnet.down(root)


def test_a_request_heavy_for_its_shape_leaves_the_event_loop(tmp_path_factory):
    """A small model whose work follows the batch size (40 layers) may run on the event loop, and 150,000 rows make
    seconds of work: the run there is stopped after the operator that passes 0.1 s, and runs again in a worker
    thread with the same result as onnxruntime alone. The node answers others meanwhile, and that model keeps off
    the event loop for a while."""
    root = tmp_path_factory.mktemp("heavyinline")
    try:
        network = devnet.up(root, 1, audit_fraction=0.0)
        model = deep_mlp()
        path = root / "deep.onnx"
        onnx.save(model, path)
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.publish(path, "mallory/deep", SigningKey.generate("mallory"))
        url, x = network.urls[0], np.full((150_000, 16), 0.5, np.float32)
        # A model's first run loads it in a worker thread; the heavy request comes after, to the event loop.
        warm = httpx.post(f"{url}/v1/infer", json={"model": "mallory/deep", "inputs": {"x": [[0.5] * 16]}}, timeout=30)
        assert warm.status_code == 200, warm.text
        answers: dict[str, httpx.Response] = {}
        body = {"model": "mallory/deep", "inputs": {"x": x.tolist()}}

        def heavy() -> None:
            answers["heavy"] = httpx.post(f"{url}/v1/infer", json=body, timeout=120)

        caller = threading.Thread(target=heavy)
        caller.start()
        time.sleep(1.0)  # the 10 MB body is read and decoded on the event loop, as any request's is
        with httpx.Client(timeout=30) as http:
            for _ in range(8):  # across the seconds the heavy run takes (all on the event loop before: 6.5 s)
                started = time.monotonic()
                assert http.get(f"{url}/v1/health").status_code == 200
                assert time.monotonic() - started < 3.0, "the heavy run held the event loop"
                time.sleep(0.2)
        caller.join(120)
        response = answers["heavy"]
        assert response.status_code == 200, response.text
        served = tensors_from_json(response.json()["bundle"]["outputs"], "outputs")["y"]
        alone = OnnxEngine().run(Digest.of(model.SerializeToString()), model.SerializeToString, {"x": x})["y"]
        assert served.tobytes() == alone.tobytes()
        assert "runs in worker threads" in Path(network.nodes[0].log).read_text()
    finally:
        devnet.down(root)


RUN_LIMIT = 4.0


def test_slow_runs_in_worker_threads_leave_threads_for_every_other_route(tmp_path_factory):
    """48 callers each send the planted model n = 10**12 at once, with a 4 s run limit here. Runs off the event loop
    take at most 8 worker threads (max_threaded_runs); the others wait their turn on the event loop, holding no
    thread. So /v1/info, which FastAPI answers in a worker thread, is answered at once, not after the runs: before,
    each of those callers held one of the 40 threads every such route shares, and /v1/info waited for the first runs
    to end (3.5 s). Answered at once means within half a run limit here: on 2 cores beside 8 spinning runs (and a
    busy machine's other tests) it took up to 1.1 s."""
    root = tmp_path_factory.mktemp("threadedruns")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("VERIML_NODE_MAX_RUN_SECONDS", str(RUN_LIMIT))
            network = devnet.up(root, 1, audit_fraction=0.0)
        path = root / "count.onnx"
        onnx.save(counting_loop(), path)
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.publish(path, "mallory/count", SigningKey.generate("mallory"))
        url = network.urls[0]
        body = {"model": "mallory/count", "inputs": {"n": 10**12, "x": [0.0]}}
        with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64)) as http, ThreadPoolExecutor(48) as pool:
            calls = [pool.submit(http.post, f"{url}/v1/infer", json=body) for _ in range(48)]
            time.sleep(0.5)
            for _ in range(3):
                started = time.monotonic()
                assert http.get(f"{url}/v1/info").status_code == 200
                assert time.monotonic() - started < RUN_LIMIT / 2, "the slow runs took the threads other routes need"
            statuses = [call.result().status_code for call in calls]
        assert statuses == [422] * 48
    finally:
        devnet.down(root)
