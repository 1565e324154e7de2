"""The runtime fingerprint a receipt records: engine, version, provider, settings, and the CPU features that
select numeric kernels. Results are comparable only within one runtime class."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from veriml.codec import Digest, canonical_json_of_plain
from veriml.errors import InvalidInput

# CPU flags that change which kernels numeric libraries pick, and so their bits: the instruction sets
# onnxruntime's MLAS dispatches on (SSE4, AVX, AVX2 with FMA, F16C, the AVX-512 families, VNNI, AMX) and their
# Arm counterparts (NEON dot product and half precision, SVE, I8MM, BF16). A flag listed here that a library
# ignores only splits runtime classes more finely (more "not comparable"); a flag left out would let honest
# nodes on different CPUs be judged as disagreeing.
_NUMERIC_FLAGS = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512cd", "avx512dq", "avx512bw", "avx512vl",
    "avx512ifma", "avx512vbmi", "avx512_vbmi2", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
    "avx_vnni_int8", "avx_ne_convert", "amx_bf16", "amx_fp16", "amx_int8", "amx_tile",
    "asimd", "asimdhp", "asimddp", "sve", "sve2", "i8mm", "bf16",
)  # fmt: skip
# The CPU features are part of onnxruntime's class: kernels are chosen at run time by instruction set.
_CLASS_FIELDS = ("engine", "engine_version", "provider", "graph_optimization", "machine", "cpu_features")
# llama.cpp: the instruction sets it was compiled for pick its kernels (a fixed-ISA build gives the same logits on
# every CPU that runs it), and veriml's sampler turns logits to tokens.
_CLASS_FIELDS_BY_ENGINE = {
    "llama.cpp": ("engine", "engine_version", "provider", "build", "machine", "sampler", "kernels")
}


@cache
def cpu_features() -> tuple[str, ...]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
            break
    return tuple(flag for flag in _NUMERIC_FLAGS if flag in flags)


def machine() -> str:
    return platform.machine()


# A fingerprint is a few hundred bytes of names and numbers. A receipt comes from anyone (`/v1/attest`, bundles),
# so its fingerprint is bounded before it is canonicalized: a huge one cost seconds per receipt.
MAX_FINGERPRINT_KEYS = 64
MAX_FINGERPRINT_TEXT = 16_384  # characters in all keys, strings and numbers' digits together
_SCALARS = (str, int, float, bool, type(None))


def _check_shape(fields: dict[str, Any]) -> None:
    if len(fields) > MAX_FINGERPRINT_KEYS:
        raise InvalidInput(f"runtime fingerprint: more than {MAX_FINGERPRINT_KEYS} fields")
    budget = MAX_FINGERPRINT_TEXT
    for key, value in fields.items():
        items = value if isinstance(value, list) else [value]
        if len(items) > MAX_FINGERPRINT_TEXT:
            raise InvalidInput(f"runtime fingerprint: field {key!r:.40} is too long")
        for item in (key, *items):
            if not isinstance(item, _SCALARS):
                raise InvalidInput(f"runtime fingerprint: field {key!r:.40} must hold text, numbers or a list of them")
            if isinstance(item, int) and abs(item) > 2**53:  # RFC 8785 writes numbers as IEEE doubles
                raise InvalidInput(f"runtime fingerprint: field {key!r:.40} holds an integer past 2^53")
            budget -= len(item) if isinstance(item, str) else 24
            if budget < 0:
                raise InvalidInput(f"runtime fingerprint: over {MAX_FINGERPRINT_TEXT} characters")


@dataclass(frozen=True, slots=True)
class RuntimeFingerprint:
    """A JSON object describing the runtime, with its canonical bytes and digest worked out once."""

    fields: dict[str, Any]
    canonical: bytes = field(init=False, repr=False, compare=False)
    digest: Digest = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.fields, dict) or not isinstance(self.fields.get("engine"), str):
            raise InvalidInput("runtime fingerprint: must be an object naming its engine")
        _check_shape(self.fields)
        canonical = canonical_json_of_plain(self.fields)
        object.__setattr__(self, "canonical", canonical)
        object.__setattr__(self, "digest", Digest.of(canonical))

    @property
    def runtime_class(self) -> str:
        """What must match for two runs to be compared bitwise: everything that changes the bits, the CPU
        features that select kernels included. Across classes an exact policy says "not comparable"; a
        tolerance policy compares across classes, its bounds absorbing kernel differences."""
        keys = _CLASS_FIELDS_BY_ENGINE.get(self.fields["engine"], _CLASS_FIELDS)
        return "/".join(_class_part(self.fields.get(key)) for key in keys)


def _class_part(value: Any) -> str:
    if isinstance(value, list):  # a set of flags: its order is not part of the class
        return "+".join(sorted(str(item) for item in value)) or "none"
    return str(value)
