"""Shared helpers for tests that forge bundles."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

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
