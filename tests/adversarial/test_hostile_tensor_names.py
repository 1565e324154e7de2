"""A publisher plants a model whose tensor names sit where a fast JSON writer and RFC 8785 part ways (issue 12
moved the per-answer tensor digests and bundle bytes onto a one-pass writer; issue 10's soundness must hold): the
node's answer, its log entry and its receipt's commitments are exactly what the rfc8785 package gives, so an
honest node is never framed, and a node committing to another ordering of the same map is refused."""

from __future__ import annotations

import numpy as np
import pytest
import rfc8785

from tests.adversarial.hostile_names_publisher import (
    INPUTS,
    OUTPUTS,
    code_point_digest,
    hostile_model,
    node_committing_to_code_point_order,
)
from veriml.codec import Digest, parse_json, tensors_to_json
from veriml.codec.tensor import tensor_digest
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.receipts.commitment import commit
from veriml.service import Home, Service
from veriml.verify import verify_bundle


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-names")
    home = Home(root / "home")
    SigningKey.generate("mallory").save(home.publisher_key_path)
    service = Service(home)
    manifest = service.publish(hostile_model(root / "names.onnx"), name="mallory/names").manifest
    inputs = {name: np.arange(4, dtype=np.float32).reshape(1, 4) * (k + 1) for k, name in enumerate(INPUTS)}
    bundle, index = service.infer_logged(manifest, inputs)
    yield service, bundle, index
    service.close()


def _jcs_digest(tensors):
    return Digest.of(rfc8785.dumps({name: str(tensor_digest(array)) for name, array in tensors.items()}))


def test_the_hostile_names_really_order_differently():
    assert sorted(INPUTS) != sorted(INPUTS, key=lambda name: name.encode("utf-16-be", "surrogatepass"))


def test_the_nodes_answer_and_log_entry_are_the_jcs_bytes(served):
    service, bundle, index = served
    assert set(bundle.outputs) == set(OUTPUTS)
    assert bundle.to_bytes() == rfc8785.dumps(bundle.to_json())  # what the browser verifier and contracts hash
    body = bundle.receipt.body
    assert body.input_commitment == commit(bundle.salt, _jcs_digest(bundle.inputs))
    assert body.output_commitment == commit(bundle.salt, _jcs_digest(bundle.outputs))
    _, extra = service.log.entry(index)
    expected = {"receipt": bundle.receipt.to_json(), "salt": bundle.salt.hex(),
                "inputs": tensors_to_json(bundle.inputs), "outputs": tensors_to_json(bundle.outputs)}  # fmt: skip
    assert extra == rfc8785.dumps(expected)
    report = verify_bundle(Bundle.from_bytes(bundle.to_bytes()), level="reexecuted", engine=service.engine,
                           load_blob=lambda blob: service.hub.blobs.read_verified(blob))  # fmt: skip
    assert not report.failures(), report.failures()
    for name in ("receipt.signature", "inputs.digest", "outputs.digest", "reexec"):
        assert report.check(name).status == "pass", report.check(name)


def test_a_node_committing_to_code_point_order_is_refused(served):
    service, bundle, _ = served
    assert code_point_digest(bundle.inputs) != _jcs_digest(bundle.inputs)  # the attack changes something
    forged = node_committing_to_code_point_order(service, bundle)
    assert forged.receipt.verified()  # its signature is good: only the commitment is wrong
    report = verify_bundle(Bundle.from_bytes(forged.to_bytes()))
    assert not report.consistent
    # Only the inputs' names order otherwise by code point (the outputs' do not): exactly that commitment fails.
    assert [check.name for check in report.failures()] == ["inputs.digest"], report.failures()
    parse_json(forged.to_bytes())  # the forgery is well-formed JSON: refused by the check, not by the parser
