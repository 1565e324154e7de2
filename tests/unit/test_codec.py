import json

import numpy as np
import pytest

from veriml.codec import (
    Digest,
    b64decode,
    b64encode,
    canonical_json,
    decode_tensor,
    encode_tensor,
    parse_json,
    tensor_from_json,
    tensor_to_json,
    tensors_digest,
)
from veriml.errors import InvalidInput


def test_digest_has_one_text_form():
    digest = Digest.of(b"abc")
    assert str(digest) == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert Digest.parse(str(digest)) == digest
    for bad in (str(digest).upper(), "sha512:" + "0" * 64, "sha256:" + "0" * 63, 42, None):
        with pytest.raises(InvalidInput, match="expected 'sha256:' and 64 lowercase hex"):
            Digest.parse(bad)


def test_parse_json_refuses_duplicate_keys_nan_and_bad_utf8():
    with pytest.raises(InvalidInput, match="key 'a' twice"):
        parse_json(b'{"a": 1, "a": 2}')
    with pytest.raises(InvalidInput, match="NaN"):
        parse_json(b'{"a": NaN}')
    with pytest.raises(InvalidInput, match="not UTF-8"):
        parse_json(b'{"a": "\xff"}')
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_json(b'{"a": ')


def test_base64_must_be_canonical():
    assert b64decode(b64encode(b"\x00\x01"), "x") == b"\x00\x01"
    with pytest.raises(InvalidInput, match="canonical"):
        b64decode("AAF=", "x")  # stray bits in the last character: same bytes as "AAE="
    with pytest.raises(InvalidInput, match="not valid base64"):
        b64decode("A A=", "x")
    with pytest.raises(InvalidInput, match="expected a base64 string"):
        b64decode(5, "x")


def test_canonical_json_sorts_keys_and_writes_compactly():
    assert canonical_json({"b": [1, True, None], "a": "é\n"}) == '{"a":"é\\n","b":[1,true,null]}'.encode()
    assert canonical_json({"x": 1.0, "y": 1e-7}) == b'{"x":1,"y":1e-7}'
    with pytest.raises(InvalidInput):
        canonical_json({"x": float("nan")})
    with pytest.raises(InvalidInput):
        canonical_json({"x": 2**60})  # beyond IEEE 754 exact integers, RFC 8785 has no spelling


def test_tensor_binary_form_is_dtype_rank_dims_and_little_endian_data():
    array = np.array([[1, 2]], dtype=np.int32)
    encoded = encode_tensor(array)
    assert encoded == bytes([6, 2]) + (1).to_bytes(8, "little") + (2).to_bytes(8, "little") + b"\x01\0\0\0\x02\0\0\0"
    big_endian = array.astype(">i4")
    assert encode_tensor(big_endian) == encoded
    assert np.array_equal(decode_tensor(encoded), array)


def test_decode_refuses_wrong_lengths_and_non_boolean_bytes():
    encoded = encode_tensor(np.zeros((2, 2), np.float32))
    with pytest.raises(InvalidInput, match="needs 16 bytes of data, got 15"):
        decode_tensor(encoded[:-1])
    with pytest.raises(InvalidInput, match="unknown dtype code"):
        decode_tensor(bytes([99, 0]))
    with pytest.raises(InvalidInput, match="bytes other than 0 and 1"):
        tensor_from_json({"dtype": "bool", "shape": [1], "data": b64encode(b"\x02")})


def test_tensor_json_form_is_strict():
    good = tensor_to_json(np.arange(3, dtype=np.float64))
    assert np.array_equal(tensor_from_json(good), np.arange(3, dtype=np.float64))
    with pytest.raises(InvalidInput, match="exactly dtype, shape, data"):
        tensor_from_json({**good, "extra": 1})
    with pytest.raises(InvalidInput, match="unsupported dtype 'bfloat16'"):
        tensor_from_json({**good, "dtype": "bfloat16"})
    with pytest.raises(InvalidInput, match="non-negative integers"):
        tensor_from_json({**good, "shape": [-3]})
    with pytest.raises(InvalidInput, match="tensor dtype <U1 is not supported"):
        encode_tensor(np.array(["a"]))


def test_tensors_digest_is_canonical_json_of_tensor_digests():
    tensors = {"b": np.ones(2, np.float32), "a": np.zeros(1, np.int64)}
    from veriml.codec import tensor_digest

    expected = json.dumps({k: str(tensor_digest(v)) for k, v in sorted(tensors.items())}, separators=(",", ":"))
    assert tensors_digest(tensors) == Digest.of(expected.encode())


def test_timestamps_are_rfc3339_utc_with_microseconds_and_track_the_clock():
    import re
    from datetime import UTC, datetime

    from veriml.codec.clock import utc_timestamp

    before = datetime.now(UTC)
    stamps = [utc_timestamp() for _ in range(2000)]
    after = datetime.now(UTC)
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
        parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert before.replace(microsecond=0) <= parsed <= after
    assert stamps == sorted(stamps)
