import numpy as np
import pytest

from veriml.errors import InvalidInput
from veriml.hub import ComparisonPolicy, compare_outputs


def test_exact_is_bitwise():
    a = {"y": np.array([0.0, 1.0], np.float32)}
    assert compare_outputs(ComparisonPolicy(), a, {"y": a["y"].copy()}).agree
    negative_zero = {"y": np.array([-0.0, 1.0], np.float32)}
    result = compare_outputs(ComparisonPolicy(), a, negative_zero)
    assert not result.agree and "not bit-identical (1 bytes differ)" in result.detail


def test_tolerance_bounds_absolute_and_relative_error():
    policy = ComparisonPolicy.tolerance(atol=1e-3, rtol=1e-2)
    a = {"y": np.array([1.0, 100.0], np.float32)}
    assert compare_outputs(policy, a, {"y": np.array([1.0009, 100.9], np.float32)}).agree
    result = compare_outputs(policy, a, {"y": np.array([1.0, 102.0], np.float32)})
    assert not result.agree and "element 1 differs by 2" in result.detail


def test_tolerance_treats_nan_and_inf_by_position():
    policy = ComparisonPolicy.tolerance(atol=1.0, allow_nan=True)
    a = {"y": np.array([np.nan, np.inf], np.float64)}
    assert compare_outputs(policy, a, {"y": np.array([np.nan, np.inf])}).agree
    assert not compare_outputs(policy, a, {"y": np.array([0.0, np.inf])}).agree
    assert not compare_outputs(policy, a, {"y": np.array([np.nan, -np.inf])}).agree


def test_integer_outputs_are_exact_even_under_tolerance():
    policy = ComparisonPolicy.tolerance(atol=10)
    assert not compare_outputs(policy, {"k": np.array([1])}, {"k": np.array([2])}).agree


def test_shape_dtype_and_names_must_match():
    a = {"y": np.zeros(2, np.float32)}
    assert "output names differ" in compare_outputs(ComparisonPolicy(), a, {"z": a["y"]}).detail
    assert not compare_outputs(ComparisonPolicy(), a, {"y": np.zeros(3, np.float32)}).agree
    assert not compare_outputs(ComparisonPolicy(), a, {"y": np.zeros(2, np.float64)}).agree


def test_policy_json_is_strict():
    for policy in (ComparisonPolicy(), ComparisonPolicy.tolerance(0.5, 0.1, True)):
        assert ComparisonPolicy.from_json(policy.to_json()) == policy
    with pytest.raises(InvalidInput, match="exactly the fields"):
        ComparisonPolicy.from_json({"kind": "exact", "allow_nan": False, "atol": 1})
    with pytest.raises(InvalidInput, match="finite number"):
        ComparisonPolicy.tolerance(float("inf"))
    with pytest.raises(InvalidInput, match="kind"):
        ComparisonPolicy.from_json({"kind": "fuzzy"})
