"""The model hub: content-addressed blobs, signed version manifests, and the registry of names and owners."""

from veriml.hub.blobs import BlobStore
from veriml.hub.gguf_model import GgufDescription, describe_gguf, is_gguf
from veriml.hub.hub import Hub, NameOwned, Published, VersionConflict
from veriml.hub.manifest import LlmSection, Manifest, SignedManifest, parse_signed_manifest
from veriml.hub.onnx_model import OnnxDescription, describe_onnx
from veriml.hub.policy import Comparison, ComparisonPolicy, compare_outputs
from veriml.hub.refs import ModelRef, check_model_name
from veriml.hub.registry import Registry

__all__ = [
    "BlobStore",
    "Comparison",
    "ComparisonPolicy",
    "GgufDescription",
    "Hub",
    "LlmSection",
    "Manifest",
    "ModelRef",
    "NameOwned",
    "OnnxDescription",
    "Published",
    "Registry",
    "SignedManifest",
    "VersionConflict",
    "check_model_name",
    "compare_outputs",
    "describe_gguf",
    "describe_onnx",
    "is_gguf",
    "parse_signed_manifest",
]
