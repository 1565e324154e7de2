"""Before an expensive setup: is the model provable here at all? Operators EZKL cannot turn into a circuit are
named, and the memory proving would take is estimated from the circuit size, against a cap."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from veriml.errors import InvalidInput

# Operators with control flow, recurrence, randomness, strings or sequences: not expressible in EZKL circuits.
UNSUPPORTED_OPS = frozenset({
    "If", "Loop", "Scan", "LSTM", "GRU", "RNN", "NonMaxSuppression", "TopK", "Unique", "RandomNormal",
    "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli", "StringNormalizer",
    "TfIdfVectorizer", "SequenceAt", "SequenceConstruct", "SequenceInsert", "SequenceLength", "SplitToSequence",
    "ConcatFromSequence", "NonZero", "Compress", "OptionalHasElement", "OptionalGetElement",
})  # fmt: skip
# Peak proving memory per circuit row, from the measurements in FACTS.md (MLP 16-32-8 at 2^15 rows: 350 MiB;
# CNN at 2^18: 5.5 GiB; 4x512 MLP at 2^20: 9.4 GiB), taking the largest ratio seen.
BYTES_PER_ROW = 22 * 1024


def default_memory_cap() -> int:
    """Three quarters of this machine's memory."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.75)
    except (ValueError, OSError):
        return 8 << 30


def check_operators(model: Path) -> None:
    with open(model, "rb") as handle:
        if handle.read(4) == b"GGUF":
            raise InvalidInput("zk setup: this is a GGUF language model; zero-knowledge proofs cover ONNX models only")
    try:
        graph = onnx.load(str(model), load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise InvalidInput(f"zk setup: not an ONNX model ({type(exc).__name__})") from exc
    found = sorted({node.op_type for node in graph.node} & UNSUPPORTED_OPS)
    if found:
        raise InvalidInput(f"zk preflight: the model uses {', '.join(found)}, which EZKL cannot prove")


def estimated_memory(logrows: int) -> int:
    return (1 << logrows) * BYTES_PER_ROW


def check_memory(logrows: int, cap: int) -> None:
    need = estimated_memory(logrows)
    if need > cap:
        raise InvalidInput(
            f"zk preflight: proving at logrows {logrows} needs about {need / (1 << 30):.1f} GiB, over the cap of "
            f"{cap / (1 << 30):.1f} GiB (raise the cap, or calibrate for resources)"
        )
