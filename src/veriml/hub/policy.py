"""The comparison policy a publisher signs into a manifest: when two runs of the model agree.

`exact` is bitwise equality (required for integer and quantized models, and right wherever honest runs are
bit-identical); `tolerance` bounds the absolute and relative error per output element, for float models whose
kernels differ across CPU features. `allow_nan` says whether NaN may appear in inputs at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from veriml.errors import InvalidInput, shown


@dataclass(frozen=True, slots=True)
class ComparisonPolicy:
    kind: Literal["exact", "tolerance"] = "exact"
    atol: float = 0.0
    rtol: float = 0.0
    allow_nan: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("exact", "tolerance"):
            raise InvalidInput(f"comparison policy: kind must be 'exact' or 'tolerance', got {shown(self.kind)}")
        for label, value in (("atol", self.atol), ("rtol", self.rtol)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise InvalidInput(f"comparison policy: {label} must be a finite number >= 0, got {shown(value)}")
        if self.kind == "exact" and (self.atol or self.rtol):
            raise InvalidInput("comparison policy: 'exact' takes no atol or rtol")
        if not isinstance(self.allow_nan, bool):
            raise InvalidInput("comparison policy: allow_nan must be true or false")

    @classmethod
    def tolerance(cls, atol: float, rtol: float = 0.0, allow_nan: bool = False) -> ComparisonPolicy:
        return cls("tolerance", float(atol), float(rtol), allow_nan)

    def to_json(self) -> dict[str, Any]:
        if self.kind == "exact":
            return {"kind": "exact", "allow_nan": self.allow_nan}
        return {"kind": "tolerance", "atol": self.atol, "rtol": self.rtol, "allow_nan": self.allow_nan}

    @classmethod
    def from_json(cls, obj: object) -> ComparisonPolicy:
        if not isinstance(obj, dict) or obj.get("kind") not in ("exact", "tolerance"):
            raise InvalidInput("comparison policy: expected an object with kind 'exact' or 'tolerance'")
        expected = {"kind", "allow_nan"} | ({"atol", "rtol"} if obj["kind"] == "tolerance" else set())
        if set(obj) != expected:
            raise InvalidInput(f"comparison policy: expected exactly the fields {sorted(expected)}")
        if obj["kind"] == "exact":
            return cls("exact", allow_nan=obj["allow_nan"])
        return cls("tolerance", obj["atol"], obj["rtol"], obj["allow_nan"])

    def describe(self) -> str:
        if self.kind == "exact":
            return "exact (bitwise)"
        return f"tolerance (atol={self.atol:g}, rtol={self.rtol:g})"


@dataclass(frozen=True, slots=True)
class Comparison:
    agree: bool
    detail: str
    max_abs_error: float = 0.0


def compare_outputs(
    policy: ComparisonPolicy, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]
) -> Comparison:
    """Judge two sets of outputs under the policy; the detail names the first output that disagrees."""
    if set(expected) != set(actual):
        return Comparison(False, f"output names differ: {sorted(expected)} vs {sorted(actual)}")
    worst = 0.0
    for name in sorted(expected):
        a, b = expected[name], actual[name]
        if a.dtype != b.dtype or a.shape != b.shape:
            return Comparison(False, f"output {name!r}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}")
        if policy.kind == "exact" or a.dtype.kind not in "fc":
            if a.tobytes() != b.tobytes():
                differing = int(np.count_nonzero(a.view(np.uint8) != b.view(np.uint8)))
                return Comparison(False, f"output {name!r}: not bit-identical ({differing} bytes differ)")
            continue
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        nan_a, nan_b = np.isnan(a64), np.isnan(b64)
        if not np.array_equal(nan_a, nan_b):
            return Comparison(False, f"output {name!r}: NaN in different places")
        with np.errstate(invalid="ignore"):
            error = np.where(nan_a, 0.0, np.abs(a64 - b64))
            bound = policy.atol + policy.rtol * np.abs(a64)
            inf_mismatch = np.isinf(a64) & (a64 != b64)
        if inf_mismatch.any():
            return Comparison(False, f"output {name!r}: infinities differ")
        error = np.where(np.isinf(a64), 0.0, error)
        worst = max(worst, float(error.max(initial=0.0)))
        if (error > bound).any():
            index = int(np.argmax(error - bound))
            return Comparison(
                False,
                f"output {name!r}: element {index} differs by {error.flat[index]:.3g}, "
                f"over the bound {bound.flat[index]:.3g}",
                worst,
            )
    return Comparison(True, f"agree under {policy.describe()}", worst)
