"""Canonical bytes and digests: the one way veriml turns values into bytes that can be hashed and signed."""

from veriml.codec.canonical import (
    Fragment,
    b64decode,
    b64encode,
    canonical_json,
    canonical_json_of_plain,
    expect_document,
    json_string,
    parse_json,
)
from veriml.codec.digest import Digest
from veriml.codec.tensor import (
    DTYPES,
    EncodedTensors,
    TensorSpec,
    decode_tensor,
    encode_tensor,
    encode_tensors,
    tensor_digest,
    tensor_from_json,
    tensor_to_json,
    tensors_digest,
    tensors_from_json,
    tensors_to_json,
)

__all__ = [
    "DTYPES",
    "Digest",
    "EncodedTensors",
    "Fragment",
    "TensorSpec",
    "b64decode",
    "b64encode",
    "canonical_json",
    "canonical_json_of_plain",
    "decode_tensor",
    "encode_tensor",
    "encode_tensors",
    "expect_document",
    "json_string",
    "parse_json",
    "tensor_digest",
    "tensor_from_json",
    "tensor_to_json",
    "tensors_digest",
    "tensors_from_json",
    "tensors_to_json",
]
