"""Property tests for the tensor codec: round trips, equal values give equal digests, any change is seen."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from veriml.codec import DTYPES, decode_tensor, encode_tensor, tensor_digest, tensor_from_json, tensor_to_json

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
arrays = st.sampled_from(sorted(DTYPES)).flatmap(lambda name: hnp.arrays(DTYPES[name], shapes))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@given(arrays)
def test_binary_round_trip(array):
    assert same_bits(decode_tensor(encode_tensor(array)), array)


@given(arrays)
def test_json_round_trip(array):
    assert same_bits(tensor_from_json(tensor_to_json(array)), array)


@given(arrays)
def test_equal_values_give_equal_digests_whatever_the_memory_layout(array):
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    fortran = np.array(array, order="F")  # asfortranarray would make a 0-d array 1-d
    assert tensor_digest(array) == tensor_digest(big_endian) == tensor_digest(fortran) == tensor_digest(array.copy())


@given(arrays.filter(lambda a: a.size > 0), st.data())
def test_any_changed_element_changes_the_digest(array, data):
    index = data.draw(st.integers(0, array.size - 1))
    changed = array.copy().reshape(-1)
    raw = changed.view(np.uint8).reshape(changed.size, -1) if changed.dtype != bool else None
    if raw is None:
        changed[index] = not changed[index]
    else:
        byte = data.draw(st.integers(0, raw.shape[1] - 1))
        raw[index, byte] ^= data.draw(st.integers(1, 255))
    assert tensor_digest(changed.reshape(array.shape)) != tensor_digest(array)


@given(arrays, st.sampled_from(sorted(DTYPES)))
def test_dtype_or_shape_is_part_of_the_digest(array, other_dtype):
    if DTYPES[other_dtype] != array.dtype:
        with np.errstate(invalid="ignore", over="ignore"):
            converted = array.astype(DTYPES[other_dtype])
        assert tensor_digest(converted) != tensor_digest(array)
    assert tensor_digest(array.reshape(1, *array.shape)) != tensor_digest(array)


@settings(max_examples=200)
@given(arrays.filter(lambda a: a.size > 0), st.data())
def test_any_flipped_byte_in_the_encoding_is_refused_or_decodes_differently(array, data):
    encoded = bytearray(encode_tensor(array))
    at = data.draw(st.integers(0, len(encoded) - 1))
    encoded[at] ^= data.draw(st.integers(1, 255))
    try:
        decoded = decode_tensor(bytes(encoded))
    except Exception as exc:  # any refusal is fine, silence is not
        assert type(exc).__name__ == "InvalidInput"
        return
    assert not same_bits(decoded, array)
