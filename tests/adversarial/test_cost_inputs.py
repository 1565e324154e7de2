"""Unbounded work through nested-list inputs: plain JSON lists used to become numpy arrays (several copies, 8 bytes
an element) before the size limit was checked. Now their depth, raggedness and element count are checked first,
level by level, and an oversized input is refused before any array exists, in bounded time and memory."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from veriml import devnet, examples
from veriml.client import Client
from veriml.identity import SigningKey

LIMIT = 1 << 20  # the node's max_input_bytes here: 262,144 float32 elements


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputnet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VERIML_NODE_MAX_INPUT_BYTES", str(LIMIT))  # read by the node processes' config
        network = devnet.up(root, 1, checkpoint_interval=0.3, audit_fraction=0.0)
    with Client(network.urls, admin_token=network.admin_token) as client:
        path = examples.save(examples.mlp(), root / "mlp.onnx")
        client.publish(path, "alice/mlp", SigningKey.generate("alice"), node=network.urls[0])
    yield network
    devnet.down(root)


def _nested(depth: int) -> list:
    value: list = [0]
    for _ in range(depth - 1):
        value = [value]
    return value


def infer(net, inputs, **kwargs):
    return httpx.post(f"{net.urls[0]}/v1/infer", json={"model": "alice/mlp", "inputs": inputs}, timeout=60, **kwargs)


def test_huge_nested_list_is_refused_before_conversion(net):
    assert infer(net, {"x": [[0.5] * 16]}).status_code == 200  # a model input as plain lists is fine
    before = peak_rss(net.nodes[0].pid)
    rows = 4 * LIMIT // 16  # 4,194,304 elements: 16 MiB as float32, 32 MiB as numpy's first float64 copy
    body = b'{"model":"alice/mlp","inputs":{"x":[' + b",".join([b"[" + b",".join([b"0"] * 16) + b"]"] * rows) + b"]}}"
    start = time.monotonic()
    answer = httpx.post(f"{net.urls[0]}/v1/infer", content=body, headers={"content-type": "application/json"},
                        timeout=60)  # fmt: skip
    took = time.monotonic() - start
    assert answer.status_code == 400, answer.text
    assert answer.json()["type"].endswith("/invalid-input")
    assert "input 'x': over 262144 elements (262144 x 16 so far)" in answer.json()["detail"]
    assert took < 5, took
    # What parsing the JSON body costs stays; no array of the input was ever made (32+ MiB for numpy alone).
    assert peak_rss(net.nodes[0].pid) - before < 160 << 20
    assert httpx.get(f"{net.urls[0]}/v1/info").json()["log_size"] == 1  # nothing more was signed or logged


@pytest.mark.parametrize(
    ("value", "refusal"),
    [
        (0.5, None),
        (_nested(40), "nested deeper than 32 levels"),
        ([[0.5] * 16, [0.5] * 15], "nested lists are ragged (lengths 16 and 15 at depth 1)"),
        ([[0.5] * 15 + [[0.5]]], "expected numbers or nested lists of numbers, got list"),
        ([[0.5] * 15 + ["x"]], "expected numbers or nested lists of numbers, got str"),
    ],
)
def test_hostile_nested_lists_are_refused_with_a_specific_error(net, value, refusal):
    answer = infer(net, {"x": value})
    assert answer.status_code == 400, answer.text
    assert refusal is None or refusal in answer.json()["detail"]


def test_inputs_the_model_does_not_take_are_refused_before_any_conversion(net):
    answer = infer(net, {f"extra{n}": [[0.5] * 16] for n in range(1000)} | {"x": [[0.5] * 16]})
    assert answer.status_code == 400
    assert "input 'extra0': the model has no such input; it takes x" in answer.json()["detail"]
