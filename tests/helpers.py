"""Shared helpers for tests that forge bundles or set up a devnet's models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from veriml import examples
from veriml.codec import tensors_digest
from veriml.identity import Signed, SigningKey
from veriml.receipts import Bundle, Receipt, commit


def resign(bundle: Bundle, node_key: SigningKey, outputs: dict[str, np.ndarray] | None = None) -> Bundle:
    """A bundle whose receipt was signed by `node_key` (for other outputs, if given): what a lying node makes."""
    outputs = bundle.outputs if outputs is None else outputs
    old = bundle.receipt.body
    receipt = Receipt(
        manifest=old.manifest,
        blob=old.blob,
        input_commitment=old.input_commitment,
        output_commitment=commit(bundle.salt, tensors_digest(outputs)),
        runtime=old.runtime,
        mode=old.mode,
        privacy=old.privacy,
        request_id=old.request_id,
        timestamp=old.timestamp,
        node=node_key.public,
    )
    return replace(bundle, receipt=Signed.sign(receipt, node_key), outputs=outputs, log_proof=None, attestations=())


def publish_mlp_everywhere(net: Any, models: Path, name: str = "alice/mlp") -> Any:
    """The example MLP published on a devnet's first node by a fresh publisher and pinned on every other node; its
    signed manifest."""
    from veriml.client import Client

    path = examples.save(examples.mlp(), Path(models) / "mlp.onnx")
    with Client(net.urls, admin_token=net.admin_token) as client:
        manifest = client.publish(path, name, SigningKey.generate(name.split("/")[0]), node=net.urls[0])
        for url in net.urls[1:]:
            client.pin(name, url)
    return manifest
