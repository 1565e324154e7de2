"""Reading an ONNX model file: run the checker, refuse operators whose honest runs can differ, then read the
signature a manifest records."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto, numpy_helper

from veriml.codec import DTYPES, TensorSpec
from veriml.errors import InvalidInput

_ONNX_DTYPES = {
    TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.DOUBLE: "float64",
    TensorProto.INT8: "int8", TensorProto.INT16: "int16", TensorProto.INT32: "int32", TensorProto.INT64: "int64",
    TensorProto.UINT8: "uint8", TensorProto.UINT16: "uint16", TensorProto.UINT32: "uint32",
    TensorProto.UINT64: "uint64", TensorProto.BOOL: "bool",
}  # fmt: skip
assert set(_ONNX_DTYPES.values()) == set(DTYPES)


# Operators whose every run draws new random numbers: two honest runs of the same model on the same input differ,
# so an agreement check could name an honest node as wrong, and an exact model could get it slashed for
# "equivocation". A seed does not help: onnxruntime keeps one generator per kernel, so the next run of a seeded
# op gives the next numbers. Refused under every comparison policy, since the outputs differ by arbitrary amounts.
RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Bernoulli", "Multinomial",
})  # fmt: skip
# onnxruntime's contrib operators (domain com.microsoft) that draw random masks.
_CONTRIB_RANDOM_OPS = frozenset({"BiasDropout", "BitmaskDropout", "BitmaskBiasDropout", "Dropout"})
# Domains whose operators are known here. Any other domain (a custom op library) is refused: nothing says its
# runs are deterministic, and a node never loads custom op libraries anyway.
_KNOWN_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")


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


def _walk(model: onnx.ModelProto) -> Iterator[tuple[NodeProto, str]]:
    """Every node of the model with where it sits: the main graph, the subgraphs of If, Loop and Scan (at any
    depth), and the bodies of the model's local functions. An explicit stack: a hostile file may nest deeply."""
    stack: list[tuple[GraphProto | list[NodeProto], str]] = [(model.graph, "the main graph")]
    for function in model.functions:
        stack.append((list(function.node), f"function {function.domain}.{function.name}"))
    while stack:
        graph, where = stack.pop()
        nodes = graph.node if isinstance(graph, GraphProto) else graph
        for node in nodes:
            yield node, where
            for attribute in node.attribute:
                inside = f"{where} > {node.op_type} {node.name!r} attribute {attribute.name!r}"
                if attribute.type == AttributeProto.GRAPH:
                    stack.append((attribute.g, inside))
                elif attribute.type == AttributeProto.GRAPHS:
                    stack.extend((g, f"{inside}[{n}]") for n, g in enumerate(attribute.graphs))


def _graphs(model: onnx.ModelProto) -> Iterator[GraphProto]:
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        yield graph
        for node in graph.node:
            for attribute in node.attribute:
                stack.extend([attribute.g] if attribute.type == AttributeProto.GRAPH else attribute.graphs)


def _constant_false(name: str, constants: dict[str, TensorProto]) -> bool:
    tensor = constants.get(name)
    if tensor is None:
        return False
    try:
        return not np.asarray(numpy_helper.to_array(tensor)).any()
    except Exception:  # a malformed constant is not known to be false
        return False


def nondeterministic_op(model: onnx.ModelProto) -> str | None:
    """A description of the first operator whose honest runs can differ, or None when there is none."""
    local_domains = {function.domain for function in model.functions}
    constants: dict[str, TensorProto] = {}
    for graph in _graphs(model):
        constants.update((t.name, t) for t in graph.initializer)
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
                tensors = (a.t for a in node.attribute if a.name == "value" and a.type == AttributeProto.TENSOR)
                value = next(tensors, None)
                if value is not None:
                    constants[node.output[0]] = value
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    for node, where in _walk(model):
        op, domain = node.op_type, node.domain
        label = f"operator {op} (node {node.name!r} in {where})"
        if domain in ("", "ai.onnx"):
            if op in RANDOM_OPS:
                return f"{label} draws random numbers"
            if op == "Dropout":
                # From opset 12 a third input switches training mode on, which drops at random; before opset 7
                # the is_test attribute did.
                training = node.input[2] if len(node.input) > 2 else ""
                if training and not _constant_false(training, constants):
                    return f"{label} may run in training mode (its training_mode input is not a constant false)"
                is_test = next((a.i for a in node.attribute if a.name == "is_test"), None)
                if opset < 7 and not is_test:
                    return f"{label} runs in training mode (is_test is not set)"
        elif domain == "com.microsoft":
            if op in _CONTRIB_RANDOM_OPS:
                return f"{label} in domain com.microsoft draws random masks"
        elif domain not in _KNOWN_DOMAINS and domain not in local_domains:
            return f"{label} is in domain {domain!r}, whose operators are not known to be deterministic"
    return None


# Operators whose output size follows the values of some of their inputs (their positions here), not only shapes:
# fed from a request's values, one small request could ask for any amount of work. A node runs a model with one
# (or with control flow, or with operators outside the standard domain) only in a worker thread, never on its event
# loop; every run is bounded by max_run_seconds in any case.
_SIZE_INPUTS: dict[str, tuple[int, ...]] = {
    "Range": (0, 1, 2), "ConstantOfShape": (0,), "Expand": (1,), "Tile": (1,), "Reshape": (1,), "Resize": (1, 2, 3),
    "Upsample": (1,), "Pad": (1,), "CenterCropPad": (1,), "OneHot": (1,), "Col2Im": (1, 2), "DFT": (1,),
    "STFT": (1, 2, 3), "HannWindow": (0,), "HammingWindow": (0,), "BlackmanWindow": (0,), "MelWeightMatrix": (0,),
    "MaxUnpool": (2,),
}  # fmt: skip
_OPEN_ENDED = frozenset({"Loop", "Scan", "If", "SequenceMap"})  # work that follows values however it is fed
_SHAPE_ONLY = frozenset({"Shape", "Size"})  # outputs that follow an input's shape, never its values


def value_sized_op(model: onnx.ModelProto) -> str | None:
    """The first operator whose work may follow a request's values rather than its shapes (so one small request may
    ask for any amount of it), or None: control flow, an operator outside the standard domain or in a local
    function, or a size (a shape, a count, a length) computed from the graph's inputs' values."""
    for node, where in _walk(model):
        label = f"operator {node.op_type} (node {node.name!r} in {where})"
        if node.domain not in ("", "ai.onnx") or node.op_type in _OPEN_ENDED or node.op_type.startswith("Sequence"):
            return label
    valued = {value.name for value in model.graph.input}  # an input may also name an initializer: a caller sets it
    for node in model.graph.node:
        inputs = list(node.input)
        sizes = [inputs[n] for n in _SIZE_INPUTS.get(node.op_type, ()) if n < len(inputs)]
        if any(name in valued for name in sizes):
            return f"{label.replace(' in the main graph', '')}: a size from a request's values"
        if node.op_type not in _SHAPE_ONLY and any(name in valued for name in inputs):
            valued.update(node.output)
    return None


def check_deterministic(model: onnx.ModelProto, what: str) -> None:
    """Raise InvalidInput naming the operator if two honest runs of the model could differ."""
    found = nondeterministic_op(model)
    if found is not None:
        raise InvalidInput(
            f"{what}: {found}; two honest runs of this model would differ, so no node could be checked against "
            "another (models with random operators are refused under every comparison policy)"
        )


def check_onnx_bytes(data: bytes, what: str) -> onnx.ModelProto:
    """The checks a node makes of an ONNX blob before it runs it: it parses, and its runs cannot differ."""
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # DecodeError, RecursionError from a hostile nesting, and others
        raise InvalidInput(f"{what}: not an ONNX model ({type(exc).__name__})") from exc
    check_deterministic(model, what)
    return model


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
    check_deterministic(model, str(path))
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = tuple(_spec(v, path) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_spec(v, path) for v in model.graph.output)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return OnnxDescription(opset, inputs, outputs, model.doc_string)
