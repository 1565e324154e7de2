import numpy as np
import pytest

from veriml.codec import TensorSpec
from veriml.errors import InvalidInput
from veriml.runtime import OnnxEngine, RuntimeSettings, coerce_inputs, validate_inputs

SPECS = (TensorSpec("x", "float32", ("N", 4)), TensorSpec("mask", "bool", ("N",)))


def ok_inputs(n=2):
    return {"x": np.zeros((n, 4), np.float32), "mask": np.ones(n, bool)}


def check(inputs, max_bytes=1 << 20, allow_nan=False):
    validate_inputs(SPECS, inputs, max_bytes, allow_nan)


def test_valid_inputs_pass():
    check(ok_inputs())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"y": np.zeros(1)}, "input 'y': the model has no such input; it takes mask, x"),
        ({"x": np.zeros((2, 4), np.int64)}, r"input 'x': expected float32\[N,4\], got int64\[2,4\]"),
        ({"x": np.zeros((2, 4, 1), np.float32)}, r"input 'x': expected float32\[N,4\], got float32\[2,4,1\]"),
        ({"x": np.zeros((2, 5), np.float32)}, r"input 'x': expected float32\[N,4\], got float32\[2,5\]"),
        ({"mask": np.ones(3, bool)}, r"input 'mask': dim 0 \(N\) is 3, but N is 2 in input 'x'"),
    ],
)
def test_wrong_name_dtype_rank_shape_are_refused(change, message):
    with pytest.raises(InvalidInput, match=message):
        check({**ok_inputs(), **change})


def test_missing_input_names_the_expected_tensor():
    with pytest.raises(InvalidInput, match=r"input 'mask': missing; the model expects bool\[N\]"):
        check({"x": np.zeros((2, 4), np.float32)})


def test_size_limit():
    with pytest.raises(InvalidInput, match="exceed the limit of 100 bytes"):
        check(ok_inputs(n=10), max_bytes=100)


def test_nan_is_refused_unless_the_policy_allows_it():
    inputs = ok_inputs()
    inputs["x"][1, 2] = np.nan
    with pytest.raises(InvalidInput, match="input 'x': holds NaN, which the model's comparison policy forbids"):
        check(inputs)
    check(inputs, allow_nan=True)


def test_plain_lists_take_the_declared_dtype_and_refuse_lossy_values():
    specs = (TensorSpec("x", "float32", (None, 2)), TensorSpec("k", "uint8", (1,)))
    arrays = coerce_inputs(specs, {"x": [[1, 2.5]], "k": [7]})
    assert arrays["x"].dtype == np.float32 and arrays["k"].dtype == np.uint8
    with pytest.raises(InvalidInput, match="do not fit uint8"):
        coerce_inputs(specs, {"k": [300]})
    with pytest.raises(InvalidInput, match="do not fit uint8"):
        coerce_inputs(specs, {"k": [1.5]})
    with pytest.raises(InvalidInput, match="ragged"):
        coerce_inputs(specs, {"x": [[1, 2], [3]]})
    with pytest.raises(InvalidInput, match="expected numbers"):
        coerce_inputs(specs, {"x": [["a", "b"]]})
    with pytest.raises(InvalidInput, match="do not fit float16"):
        coerce_inputs((TensorSpec("h", "float16", (1,)),), {"h": [1e6]})


def test_runs_are_bit_identical_and_batch_rows_match_single_runs(service, published):
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((8, 16)).astype(np.float32)
    _, first = service.run(published, {"x": batch})
    for _ in range(20):
        _, again = service.run(published, {"x": batch})
        assert again["y"].tobytes() == first["y"].tobytes()
    _, single = service.run(published, {"x": batch[:1]})
    assert single["y"][0].tobytes() == first["y"][0].tobytes()


def test_fingerprint_records_pinned_settings():
    engine = OnnxEngine(RuntimeSettings())
    fields = engine.fingerprint.fields
    assert fields["engine"] == "onnxruntime"
    assert fields["provider"] == "CPUExecutionProvider"
    assert (fields["intra_op_threads"], fields["inter_op_threads"]) == (1, 1)
    assert fields["execution_mode"] == "sequential" and fields["deterministic_compute"] is True
    assert fields["graph_optimization"] == "basic"
    assert isinstance(fields["cpu_features"], list)
    assert engine.runtime_class.startswith("onnxruntime/")


def test_session_cache_is_bounded(model_dir):
    from veriml.codec import Digest

    engine = OnnxEngine(RuntimeSettings(session_cache_size=2))
    loads = []
    paths = [model_dir / "mlp.onnx", model_dir / "mlp_v2.onnx", model_dir / "cnn.onnx"]
    blobs = {Digest.of(p.read_bytes()): p.read_bytes() for p in paths}

    def loader(blob_id):
        def load():
            loads.append(blob_id)
            return blobs[blob_id]

        return load

    ids = list(blobs)
    for blob_id in ids + ids[-1:]:
        engine.session(blob_id, loader(blob_id))
    assert len(engine._sessions) == 2 and loads == ids  # the repeat was a cache hit
    engine.session(ids[0], loader(ids[0]))  # evicted, so loaded again
    assert loads == [*ids, ids[0]]


def test_settings_are_validated():
    with pytest.raises(InvalidInput, match="graph_optimization"):
        RuntimeSettings(graph_optimization="turbo")
    with pytest.raises(InvalidInput, match="at least 1"):
        RuntimeSettings(intra_op_threads=0)
