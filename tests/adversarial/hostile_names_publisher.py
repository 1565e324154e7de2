"""Test-only attacker: a publisher whose model names its inputs and outputs in the zones where a fast JSON writer
and RFC 8785 part ways (names past U+E000, which JCS sorts by UTF-16 units, an astral name that sorts first there
and last by code point, escapes), hoping the node's one-pass tensor encoding digests or writes them otherwise than
a JCS verifier does, so that honest nodes' answers fail verification (framed) or a node may commit to another form.
With it, a node that commits to the code-point-ordered map (what a writer without JCS's key order gives)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import msgspec
import onnx
from onnx import TensorProto, helper

from veriml.codec import Digest
from veriml.codec.tensor import tensor_digest
from veriml.receipts import Bundle, sign_receipt
from veriml.receipts.commitment import commit
from veriml.service import Service

# Two inputs whose code point order (U+FFEF < U+1F600) is the reverse of their UTF-16 order (D83D < FFEF), and
# outputs named with a private-use character, an escape and a control character.
INPUTS = ("\uffef", "\U0001f600")
OUTPUTS = ("\ue000y", 'quote"\\', "tab\t")


def hostile_model(path: Path) -> Path:
    """Out_k = a + b for every output: a model any onnxruntime runs, with only its names hostile."""
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4]) for name in INPUTS]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4]) for name in OUTPUTS]
    nodes = [helper.make_node("Add", list(INPUTS), [name]) for name in OUTPUTS]
    graph = helper.make_graph(nodes, "hostile-names", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def code_point_digest(tensors: dict) -> Digest:  # type: ignore[type-arg]
    """The digest of the tensor map written with code-point key order (msgspec's), not JCS's."""
    names = {name: str(tensor_digest(array)) for name, array in tensors.items()}
    return Digest("sha256", hashlib.sha256(msgspec.json.encode(names, order="sorted")).digest())


def node_committing_to_code_point_order(service: Service, bundle: Bundle) -> Bundle:
    """A node re-signing an honest answer with commitments over the code-point-ordered maps."""
    body = bundle.receipt.body
    receipt = sign_receipt(
        service.node_key, manifest=body.manifest, blob=body.blob,
        input_commitment=commit(bundle.salt, code_point_digest(bundle.inputs)),
        output_commitment=commit(bundle.salt, code_point_digest(bundle.outputs)),
        runtime=body.runtime, mode=body.mode, privacy=body.privacy, request_id=body.request_id,
    )  # fmt: skip
    return replace(bundle, receipt=receipt, log_proof=None)
