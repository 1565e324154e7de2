"""veriml: verifiable AI inference. Publish a model, run it, and get a signed receipt anyone can check.

import numpy as np, veriml
service = veriml.Service(veriml.Home.default())
published = service.publish("mlp.onnx", name="alice/mlp")
bundle = service.infer("alice/mlp", {"x": np.ones((1, 16), np.float32)})
report = veriml.verify_bundle(bundle, level="reexecuted", load_blob=service.hub.blobs.read_verified,
                              trusted_publishers=[published.manifest.body.publisher.vkey])
assert report.verified  # relative to the publisher key named; with no key named the verdict is "unanchored"
"""

from typing import TYPE_CHECKING, Any

from veriml.codec import Digest, TensorSpec
from veriml.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unavailable,
    VerificationFailed,
    VerimlError,
)
from veriml.hub import ComparisonPolicy, Manifest, ModelRef
from veriml.identity import SigningKey, VerifyingKey
from veriml.receipts import Bundle, Receipt
from veriml.runtime import RuntimeSettings
from veriml.runtime.generation import GenerationParams
from veriml.service import Home, Service
from veriml.verify import Report, verify_bundle

if TYPE_CHECKING:
    from veriml.client import AsyncClient, ChatResult, Client, Disagreement

__version__ = "0.1.0"

_CLIENT_NAMES = ("AsyncClient", "ChatResult", "Client", "Disagreement")


def __getattr__(name: str) -> Any:
    # The SDK over HTTP (veriml.Client, veriml.AsyncClient) loads on first use: `import veriml` stays light.
    if name in _CLIENT_NAMES:
        from veriml import client

        return getattr(client, name)
    raise AttributeError(f"module 'veriml' has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "Bundle",
    "ChatResult",
    "Client",
    "ComparisonPolicy",
    "Conflict",
    "Digest",
    "Disagreement",
    "GenerationParams",
    "Home",
    "InvalidInput",
    "Manifest",
    "ModelRef",
    "NotFound",
    "PermissionDenied",
    "Receipt",
    "Report",
    "RuntimeSettings",
    "Service",
    "SigningKey",
    "TensorSpec",
    "Unavailable",
    "VerificationFailed",
    "VerifyingKey",
    "VerimlError",
    "verify_bundle",
]
