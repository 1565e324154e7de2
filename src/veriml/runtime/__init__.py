"""Running models: engines with pinned determinism, input checks, and the fingerprint a receipt records."""

from veriml.runtime.fingerprint import RuntimeFingerprint, cpu_features
from veriml.runtime.inputs import coerce_inputs, validate_inputs
from veriml.runtime.onnx_engine import OnnxEngine
from veriml.runtime.settings import RuntimeSettings

__all__ = [
    "OnnxEngine",
    "RuntimeFingerprint",
    "RuntimeSettings",
    "coerce_inputs",
    "cpu_features",
    "validate_inputs",
]
