"""Reading an ONNX model file: run the checker, then read the signature a manifest records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from veriml.codec import DTYPES, TensorSpec
from veriml.errors import InvalidInput

_ONNX_DTYPES = {
    TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.DOUBLE: "float64",
    TensorProto.INT8: "int8", TensorProto.INT16: "int16", TensorProto.INT32: "int32", TensorProto.INT64: "int64",
    TensorProto.UINT8: "uint8", TensorProto.UINT16: "uint16", TensorProto.UINT32: "uint32",
    TensorProto.UINT64: "uint64", TensorProto.BOOL: "bool",
}  # fmt: skip
assert set(_ONNX_DTYPES.values()) == set(DTYPES)


@dataclass(frozen=True, slots=True)
class OnnxDescription:
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    doc: str


def _spec(value: onnx.ValueInfoProto, path: Path) -> TensorSpec:
    if not value.type.HasField("tensor_type"):
        raise InvalidInput(f"{path}: graph value {value.name!r} is not a tensor; only tensor inputs are supported")
    tensor = value.type.tensor_type
    dtype = _ONNX_DTYPES.get(tensor.elem_type)
    if dtype is None:
        type_name = TensorProto.DataType.Name(tensor.elem_type)
        raise InvalidInput(f"{path}: graph value {value.name!r} has element type {type_name}, which is not supported")
    if not tensor.HasField("shape"):
        return TensorSpec(value.name, dtype, None)
    dims: list[int | str | None] = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(dim.dim_value)
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return TensorSpec(value.name, dtype, tuple(dims))


def describe_onnx(path: Path) -> OnnxDescription:
    """Check the model with onnx.checker and read its opset and tensor signature."""
    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path}: no such file") from exc
    except Exception as exc:  # onnx raises DecodeError, ValueError and others for non-ONNX bytes
        raise InvalidInput(f"{path}: not an ONNX model ({type(exc).__name__})") from exc
    if not model.HasField("graph") or not model.opset_import:
        raise InvalidInput(f"{path}: not an ONNX model (no graph or no opset)")
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            raise InvalidInput(f"{path}: weights in external data files are not supported; save as one file")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"{path}: fails the ONNX checker: {first_line}") from exc
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = tuple(_spec(v, path) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_spec(v, path) for v in model.graph.output)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return OnnxDescription(opset, inputs, outputs, model.doc_string)
