"""Inputs at the edge: turning what a user sends into tensors, and checking them against a model's signature
before anything runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from veriml.codec import DTYPES, TensorSpec, tensor_from_json
from veriml.codec.tensor import describe_array, dtype_name, nested_list_shape
from veriml.errors import InvalidInput


def coerce_inputs(
    specs: Sequence[TensorSpec], raw: Mapping[str, Any], max_bytes: int = 64 << 20
) -> dict[str, np.ndarray]:
    """Arrays pass through; the JSON tensor form is decoded; plain (nested) lists and numbers take the dtype
    the model declares, and are refused if that would change a value (1.5 into an int, 300 into a uint8).

    Names the model does not take are refused first, and nested lists are sized (depth, raggedness, element
    count against `max_bytes` over all inputs) before any is converted: nothing oversized becomes an array."""
    by_name = {spec.name: spec for spec in specs}
    for name in raw:
        if name not in by_name:
            expected = ", ".join(sorted(by_name))
            raise InvalidInput(f"input {name!r}: the model has no such input; it takes {expected}")
    budget = max_bytes
    result: dict[str, np.ndarray] = {}
    for name, value in raw.items():
        if isinstance(value, np.ndarray):
            result[name] = value
        elif isinstance(value, dict):
            result[name] = tensor_from_json(value, f"input {name!r}")
        else:
            dtype = by_name[name].dtype
            itemsize = max(DTYPES[dtype].itemsize, 1)
            shape = nested_list_shape(value, f"input {name!r}", budget // itemsize)
            elements = 1
            for dim in shape:
                elements *= dim
            budget -= elements * itemsize
            result[name] = _from_plain(name, value, dtype)
        if isinstance(value, np.ndarray | dict):
            budget -= result[name].nbytes
        if budget < 0:
            raise InvalidInput(f"inputs: over the limit of {max_bytes} bytes")
    return result


def _from_plain(name: str, value: Any, dtype: str) -> np.ndarray:
    try:
        loose = np.array(value)
    except ValueError as exc:
        raise InvalidInput(f"input {name!r}: nested lists are ragged ({exc})") from exc
    if loose.dtype == object or loose.dtype.kind not in "biuf":
        raise InvalidInput(f"input {name!r}: expected numbers or nested lists of numbers")
    target = DTYPES[dtype]
    with np.errstate(all="ignore"):
        converted = loose.astype(target)
    if target.kind == "f":
        # Numbers into a float target are rounded, which is what a user writing 0.1 means; overflow is not.
        if np.count_nonzero(np.isfinite(converted)) != np.count_nonzero(np.isfinite(loose)):
            raise InvalidInput(f"input {name!r}: values do not fit {dtype} without change")
        return converted
    with np.errstate(all="ignore"):
        back = converted.astype(loose.dtype)
    if not np.array_equal(back, loose, equal_nan=loose.dtype.kind == "f"):
        raise InvalidInput(f"input {name!r}: values do not fit {dtype} without change")
    return converted


def validate_inputs(
    specs: Sequence[TensorSpec], inputs: Mapping[str, np.ndarray], max_bytes: int, allow_nan: bool
) -> None:
    """Raise InvalidInput naming the first input that does not match the signature or the limits."""
    expected = {spec.name for spec in specs}
    for name in inputs:
        if name not in expected:
            raise InvalidInput(f"input {name!r}: the model has no such input; it takes {', '.join(sorted(expected))}")
    symbols: dict[str, tuple[int, str]] = {}
    total = 0
    for spec in specs:
        if spec.name not in inputs:
            raise InvalidInput(f"input {spec.name!r}: missing; the model expects {spec.describe()}")
        array = inputs[spec.name]
        try:
            name = dtype_name(array)
        except InvalidInput:
            name = None
        if name != spec.dtype or (spec.shape is not None and array.ndim != len(spec.shape)):
            raise InvalidInput(f"input {spec.name!r}: expected {spec.describe()}, got {describe_array(array)}")
        for axis, dim in enumerate(spec.shape or ()):
            size = array.shape[axis]
            if isinstance(dim, int) and size != dim:
                raise InvalidInput(f"input {spec.name!r}: expected {spec.describe()}, got {describe_array(array)}")
            if isinstance(dim, str):
                bound = symbols.setdefault(dim, (size, spec.name))
                if bound[0] != size:
                    raise InvalidInput(
                        f"input {spec.name!r}: dim {axis} ({dim}) is {size}, "
                        f"but {dim} is {bound[0]} in input {bound[1]!r}"
                    )
        total += array.nbytes
    if total > max_bytes:
        raise InvalidInput(f"inputs: {total} bytes exceed the limit of {max_bytes} bytes")
    if not allow_nan:
        for spec in specs:
            array = inputs[spec.name]
            if array.dtype.kind == "f" and np.isnan(array).any():
                raise InvalidInput(f"input {spec.name!r}: holds NaN, which the model's comparison policy forbids")
