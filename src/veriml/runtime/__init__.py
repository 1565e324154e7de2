"""Running models: engines with pinned determinism, input checks, and the fingerprint a receipt records."""

from veriml.runtime.engine import BlobLoader, Engine
from veriml.runtime.fingerprint import RuntimeFingerprint, cpu_features
from veriml.runtime.generation import GENERATION_INPUTS, GENERATION_OUTPUTS, GenerationParams, generation_inputs
from veriml.runtime.inputs import coerce_inputs, validate_inputs
from veriml.runtime.llama_engine import Generation, LlamaEngine, Replay
from veriml.runtime.onnx_engine import OnnxEngine
from veriml.runtime.settings import RuntimeSettings

__all__ = [
    "GENERATION_INPUTS",
    "GENERATION_OUTPUTS",
    "BlobLoader",
    "Engine",
    "Generation",
    "GenerationParams",
    "LlamaEngine",
    "OnnxEngine",
    "Replay",
    "RuntimeFingerprint",
    "RuntimeSettings",
    "coerce_inputs",
    "cpu_features",
    "generation_inputs",
    "validate_inputs",
]
