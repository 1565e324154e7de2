"""Tensors as bytes: dtype + shape + little-endian C-order data, the same bytes for the same value everywhere.

Binary form (what digests are taken over):
    u8 dtype code (the ONNX TensorProto element type) | u8 rank | rank x u64 LE dims | raw LE C-order data
JSON form (what travels): {"dtype": "float32", "shape": [1, 4], "data": "<base64 of the raw data>"}.
Equality is bitwise: -0.0 and 0.0, or two NaN payloads, are different values with different digests.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

import numpy as np

from veriml.codec.canonical import b64decode, b64encode, canonical_json_of_plain, utf16_order
from veriml.codec.digest import Digest
from veriml.errors import InvalidInput, shown

# dtype name -> (ONNX TensorProto element type, little-endian numpy dtype)
_DTYPE_TABLE: dict[str, tuple[int, str]] = {
    "float32": (1, "<f4"),
    "uint8": (2, "|u1"),
    "int8": (3, "|i1"),
    "uint16": (4, "<u2"),
    "int16": (5, "<i2"),
    "int32": (6, "<i4"),
    "int64": (7, "<i8"),
    "bool": (9, "|b1"),
    "float16": (10, "<f2"),
    "float64": (11, "<f8"),
    "uint32": (12, "<u4"),
    "uint64": (13, "<u8"),
}
DTYPES: dict[str, np.dtype] = {name: np.dtype(code) for name, (_, code) in _DTYPE_TABLE.items()}
_CODE_TO_NAME = {code: name for name, (code, _) in _DTYPE_TABLE.items()}
_NAME_OF_DTYPE = {dtype: name for name, dtype in DTYPES.items()}
_MAX_RANK = 32
_MAX_SAFE_DIM = 2**53 - 1  # larger integers are written by the general JSON writer

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A named tensor in a model's signature. A symbolic dim must take one value across all tensors of a call;
    `shape=None` means any rank."""

    name: str
    dtype: str
    shape: tuple[Dim, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": None if self.shape is None else list(self.shape),
        }

    @classmethod
    def from_json(cls, obj: object, what: str = "tensor spec") -> TensorSpec:
        if not isinstance(obj, dict) or set(obj) != {"name", "dtype", "shape"}:
            raise InvalidInput(f"{what}: expected an object with exactly name, dtype, shape")
        name, dtype, shape = obj["name"], obj["dtype"], obj["shape"]
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"{what}: name must be a non-empty string")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise InvalidInput(f"{what} {name!r}: unsupported dtype {shown(dtype)}")
        if shape is None:
            return cls(name, dtype, None)
        if not isinstance(shape, list) or len(shape) > _MAX_RANK:
            raise InvalidInput(f"{what} {name!r}: shape must be a list of at most {_MAX_RANK} dims or null")
        for dim in shape:
            ok = dim is None or (isinstance(dim, str) and dim) or (type(dim) is int and dim >= 0)
            if not ok:
                raise InvalidInput(f"{what} {name!r}: dim {shown(dim)} is not a size, a symbol or null")
        return cls(name, dtype, tuple(shape))

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.dtype}[*]"
        return f"{self.dtype}[{','.join('?' if d is None else str(d) for d in self.shape)}]"


def dtype_name(array: np.ndarray) -> str:
    dtype = array.dtype
    name = _NAME_OF_DTYPE.get(dtype) or _NAME_OF_DTYPE.get(dtype.newbyteorder("<"))
    if name is not None:
        return name
    raise InvalidInput(f"tensor dtype {array.dtype} is not supported; supported: {', '.join(DTYPES)}")


def describe_array(array: np.ndarray) -> str:
    try:
        name = dtype_name(array)
    except InvalidInput:
        name = str(array.dtype)
    return f"{name}[{','.join(str(d) for d in array.shape)}]"


def _little_endian(array: np.ndarray) -> np.ndarray:
    name = dtype_name(array)
    return np.asarray(array, dtype=DTYPES[name], order="C")  # ascontiguousarray would make 0-d arrays 1-d


def _header(name: str, shape: tuple[int, ...]) -> bytes:
    if len(shape) > _MAX_RANK:
        raise InvalidInput(f"tensor rank {len(shape)} exceeds {_MAX_RANK}")
    return struct.pack(f"<BB{len(shape)}Q", _DTYPE_TABLE[name][0], len(shape), *shape)


def encode_tensor(array: np.ndarray) -> bytes:
    name = dtype_name(array)
    data = _little_endian(array)
    return _header(name, data.shape) + data.tobytes()


def decode_tensor(data: bytes) -> np.ndarray:
    if len(data) < 2:
        raise InvalidInput("encoded tensor: shorter than its header")
    code, rank = data[0], data[1]
    if code not in _CODE_TO_NAME:
        raise InvalidInput(f"encoded tensor: unknown dtype code {code}")
    if rank > _MAX_RANK or len(data) < 2 + 8 * rank:
        raise InvalidInput(f"encoded tensor: rank {rank} does not fit the header")
    shape = struct.unpack_from(f"<{rank}Q", data, 2)
    return _array_from_raw(_CODE_TO_NAME[code], shape, data[2 + 8 * rank :], "encoded tensor")


def _array_from_raw(name: str, shape: tuple[int, ...], raw: bytes, what: str) -> np.ndarray:
    dtype = DTYPES[name]
    count = 1
    for dim in shape:
        count *= dim
    if count * dtype.itemsize != len(raw):
        raise InvalidInput(f"{what}: {name}{list(shape)} needs {count * dtype.itemsize} bytes of data, got {len(raw)}")
    try:
        array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    except ValueError as exc:  # an empty tensor whose other dims numpy cannot index (over 2^63 elements)
        raise InvalidInput(f"{what}: {name}{list(shape)} is not a shape an array can have") from exc
    if name == "bool" and raw and max(raw) > 1:
        # Only 0 and 1 are booleans; any other byte would give one value two encodings.
        raise InvalidInput(f"{what}: bool data holds bytes other than 0 and 1")
    return array


def tensor_digest(array: np.ndarray) -> Digest:
    """SHA-256 of the binary form, hashed without building it as one buffer."""
    name = dtype_name(array)
    data = _little_endian(array)
    hasher = hashlib.sha256(_header(name, data.shape))
    hasher.update(data.data if data.size else b"")
    return Digest.from_hasher(hasher)


def tensors_digest(tensors: Mapping[str, np.ndarray]) -> Digest:
    """The digest of a named set of tensors: SHA-256 of the canonical JSON map name -> tensor digest."""
    return _map_digest({name: str(tensor_digest(array)) for name, array in tensors.items()})


def _map_digest(digests: dict[str, str]) -> Digest:
    canonical = _canonical_object({name: f'"{text}"' for name, text in digests.items()})
    return Digest.of(canonical_json_of_plain(digests) if canonical is None else canonical)


def _canonical_object(members: dict[str, str]) -> bytes | None:
    """RFC 8785 bytes of an object whose values are given already as canonical JSON text, or None for names the
    short way does not write (the general writer then does). Keys sort by UTF-16 code units, as JCS sorts them;
    JSON's escaping of a key is JCS's."""
    try:
        names = sorted(members) if all(name.isascii() for name in members) else sorted(members, key=utf16_order)
        return ("{" + ",".join(f"{encode_basestring(name)}:{members[name]}" for name in names) + "}").encode()
    except (UnicodeEncodeError, TypeError, AttributeError):  # a lone surrogate, or a name that is not text
        return None


@dataclass(frozen=True, slots=True)
class EncodedTensors:
    """A named set of tensors encoded once for the per-inference path: the digest a receipt commits to, and the
    canonical JSON of its JSON form (`tensors_to_json`) that bundles and log companions carry. `holds` says
    whether a tensor map is still exactly what was encoded."""

    tensors: Mapping[str, np.ndarray]
    digest: Digest
    json: bytes
    _encoded: tuple[tuple[str, np.ndarray, str, tuple[int, ...], bytes], ...]  # name, array, dtype, shape, data

    def holds(self, tensors: Mapping[str, np.ndarray]) -> bool:
        """True if `tensors` is the very map encoded, with the same arrays holding the same dtype, shape and bytes:
        an array changed in place (or a map changed after) makes the encoding stale, and then it is not used."""
        if tensors is not self.tensors or len(tensors) != len(self._encoded):
            return False
        for name, array, dtype, shape, raw in self._encoded:
            current = tensors.get(name)
            if current is not array or array.shape != shape or dtype_name(array) != dtype:
                return False
            if _little_endian(array).tobytes() != raw:
                return False
        return True


def encode_tensors(tensors: Mapping[str, np.ndarray]) -> EncodedTensors:
    """`tensors_digest` and the canonical bytes of `tensors_to_json`, from one pass over each tensor's data.
    Property-tested equal to both."""
    digests, members, encoded_arrays = {}, {}, []
    for name, array in tensors.items():
        dtype = dtype_name(array)
        data = _little_endian(array)
        raw = data.tobytes()
        header = _header(dtype, data.shape)
        digests[name] = f"sha256:{hashlib.sha256(header + raw).hexdigest()}"
        encoded_arrays.append((name, array, dtype, array.shape, raw))
        if any(dim > _MAX_SAFE_DIM for dim in data.shape):
            members = None  # type: ignore[assignment]
        elif members is not None:
            shape = ",".join(map(str, data.shape))
            members[name] = f'{{"data":"{b64encode(raw)}","dtype":"{dtype}","shape":[{shape}]}}'
    encoded = None if members is None else _canonical_object(members)
    if encoded is None:
        encoded = canonical_json_of_plain(tensors_to_json(tensors))
    return EncodedTensors(tensors, _map_digest(digests), encoded, tuple(encoded_arrays))


def tensor_to_json(array: np.ndarray) -> dict[str, Any]:
    name = dtype_name(array)
    data = _little_endian(array)
    return {"dtype": name, "shape": list(data.shape), "data": b64encode(data.tobytes())}


def tensor_from_json(obj: object, what: str = "tensor") -> np.ndarray:
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise InvalidInput(f"{what}: expected an object with exactly dtype, shape, data")
    name, shape = obj["dtype"], obj["shape"]
    if not isinstance(name, str) or name not in DTYPES:
        raise InvalidInput(f"{what}: unsupported dtype {shown(name)}; supported: {', '.join(DTYPES)}")
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_RANK
        or not all(type(d) is int and 0 <= d < 2**63 for d in shape)
    ):
        raise InvalidInput(f"{what}: shape must be a list of at most {_MAX_RANK} non-negative integers")
    return _array_from_raw(name, tuple(shape), b64decode(obj["data"], f"{what} data"), what)


_NUMBER_TYPES = (int, float, bool)


def nested_list_shape(value: object, what: str, max_elements: int) -> tuple[int, ...]:
    """The shape of a number or a rectangular nested list of numbers, found without building any array: depth,
    raggedness and element count are checked level by level, and the walk stops as soon as the count would pass
    `max_elements`, so a huge or hostile list costs no more than the limit it is refused at."""
    shape: list[int] = []
    level: list[Any] = [value]
    count = 1
    while level and type(level[0]) is list:
        width = len(level[0])
        for item in level:
            if type(item) is not list:
                raise InvalidInput(f"{what}: expected numbers or nested lists of numbers, got lists mixed with values")
            if len(item) != width:
                raise InvalidInput(f"{what}: nested lists are ragged (lengths {width} and {len(item)} at depth "
                                   f"{len(shape)})")  # fmt: skip
        shape.append(width)
        if len(shape) > _MAX_RANK:
            raise InvalidInput(f"{what}: nested deeper than {_MAX_RANK} levels")
        count *= width
        if count > max_elements:
            raise InvalidInput(f"{what}: over {max_elements} elements ({' x '.join(map(str, shape))} so far)")
        if width and type(level[0][0]) is not list:
            for row in level:
                for item in row:
                    if type(item) not in _NUMBER_TYPES:
                        raise InvalidInput(f"{what}: expected numbers or nested lists of numbers, got "
                                           f"{type(item).__name__}")  # fmt: skip
            return tuple(shape)
        level = [item for row in level for item in row]
    if not shape and type(value) not in _NUMBER_TYPES:
        raise InvalidInput(f"{what}: expected numbers or nested lists of numbers, got {type(value).__name__}")
    return tuple(shape)


def tensors_to_json(tensors: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return {name: tensor_to_json(array) for name, array in tensors.items()}


def tensors_from_json(obj: object, what: str = "tensors") -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise InvalidInput(f"{what}: expected an object mapping names to tensors")
    return {name: tensor_from_json(value, f"{what} {name!r}") for name, value in obj.items()}
