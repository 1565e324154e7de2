"""Shared helpers for tests that forge bundles."""

from __future__ import annotations

import numpy as np

from veriml.codec import tensors_digest
from veriml.identity import Signed, SigningKey
from veriml.receipts import Bundle, Receipt


def resign(bundle: Bundle, node_key: SigningKey, outputs: dict[str, np.ndarray] | None = None) -> Bundle:
    """A bundle whose receipt was signed by `node_key` (for other outputs, if given): what a lying node makes."""
    outputs = bundle.outputs if outputs is None else outputs
    old = bundle.receipt.body
    receipt = Receipt(
        manifest=old.manifest,
        blob=old.blob,
        input_digest=old.input_digest,
        output_digest=tensors_digest(outputs),
        runtime=old.runtime,
        mode=old.mode,
        request_id=old.request_id,
        timestamp=old.timestamp,
        node=node_key.public,
    )
    return Bundle(bundle.manifest, Signed.sign(receipt, node_key), bundle.inputs, outputs)
