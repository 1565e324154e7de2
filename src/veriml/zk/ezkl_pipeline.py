"""The real prover, EZKL, driven offline: settings, calibration, compiled circuit, SRS, keys; witness, proof,
verification; and reading a proof's public values back as numbers.

EZKL works on files; each call here gets a private working directory. Its SRS download (`get_srs`) is never
used: a development SRS is generated with `gen_srs`, or a ceremony SRS is read from a file the user gives.

EZKL reads inputs by position, so every input file is written in the model's declared input order (the ONNX
graph's, which the manifest keeps), never in the order of a dict that came from canonical (sorted) JSON. Its
outputs are fixed point: a circuit's result is the integers it computes over 2^scale, per output.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from veriml.codec import TensorSpec
from veriml.errors import InvalidInput, VerificationFailed
from veriml.zk.preflight import check_memory, check_operators, default_memory_cap

CALIBRATION_TARGETS = ("resources", "accuracy")


def default_repo_path() -> Path:
    """EZKL's cache directory: `ezkl` under the veriml home (VERIML_HOME, else ~/.veriml)."""
    return Path(os.environ.get("VERIML_HOME") or Path.home() / ".veriml") / "ezkl"


def use_repo_path(path: Path) -> None:
    """Keep EZKL's cache under this home, unless the user named one (EZKL_REPO_PATH) already."""
    os.environ.setdefault("EZKL_REPO_PATH", str(path))


def _ezkl() -> Any:
    # EZKL keeps a cache under ~/.ezkl unless told otherwise; keep it under the veriml home instead.
    use_repo_path(default_repo_path())
    import ezkl

    return ezkl


def prover_version() -> str:
    from importlib.metadata import version

    return f"ezkl {version('ezkl')}"


@dataclass(frozen=True, slots=True)
class SetupFiles:
    settings: Path
    compiled: Path
    vk: Path
    pk: Path
    srs: Path
    logrows: int


def setup(
    model: Path,
    sample_inputs: Mapping[str, np.ndarray],
    workdir: Path,
    shape_bindings: Mapping[str, int],
    input_visibility: str = "public",
    calibration: str = "resources",
    srs: Path | None = None,
    memory_cap: int | None = None,
    input_names: Sequence[str] | None = None,
) -> SetupFiles:
    """One-time setup per model version. Parameters are fixed into the circuit, so the verification key
    commits to the weights; outputs are public; inputs public or hashed. `input_names` is the model's declared
    input order (the manifest's); it must be the ONNX graph's, which is what EZKL's positional inputs follow."""
    if calibration not in CALIBRATION_TARGETS:
        raise InvalidInput(f"zk setup: calibration must be one of {CALIBRATION_TARGETS}")
    check_operators(model)
    names = list(input_names) if input_names is not None else graph_input_names(model)
    if names != graph_input_names(model):
        raise InvalidInput(f"zk setup: input order {names} is not the model graph's {graph_input_names(model)}")
    ezkl = _ezkl()
    workdir.mkdir(parents=True, exist_ok=True)
    files = {name: workdir / name for name in ("settings.json", "network.compiled", "vk.key", "pk.key", "input.json")}
    _write_input(files["input.json"], sample_inputs, names)
    args = ezkl.PyRunArgs()
    args.input_visibility = "public" if input_visibility == "public" else "hashed"
    args.output_visibility = "public"
    args.param_visibility = "fixed"
    args.variables = list(shape_bindings.items())
    try:
        ezkl.gen_settings(str(model), str(files["settings.json"]), py_run_args=args)
        ezkl.calibrate_settings(str(files["input.json"]), str(model), str(files["settings.json"]), calibration)
        ezkl.compile_circuit(str(model), str(files["network.compiled"]), str(files["settings.json"]))
        logrows = json.loads(files["settings.json"].read_text())["run_args"]["logrows"]
        check_memory(logrows, memory_cap or default_memory_cap())  # before the SRS and keys, the costly part
        srs_path = workdir / "kzg.srs"
        if srs is None:
            ezkl.gen_srs(str(srs_path), logrows)
        else:
            shutil.copyfile(srs, srs_path)
        ezkl.setup(str(files["network.compiled"]), str(files["vk.key"]), str(files["pk.key"]), str(srs_path))
    except RuntimeError as exc:
        raise InvalidInput(f"zk setup: EZKL refused the model: {str(exc).splitlines()[0]}") from exc
    return SetupFiles(files["settings.json"], files["network.compiled"], files["vk.key"], files["pk.key"],
                      srs_path, logrows)  # fmt: skip


def graph_input_names(model: Path) -> list[str]:
    """The ONNX graph's inputs in declared order, initializers left out (as the manifest reads them)."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    initializers = {tensor.name for tensor in graph.initializer}
    return [value.name for value in graph.input if value.name not in initializers]


def ordered_inputs(inputs: Mapping[str, np.ndarray], input_names: Sequence[str]) -> list[np.ndarray]:
    """The inputs in the model's declared order: EZKL takes them by position."""
    if len(set(input_names)) != len(input_names) or set(inputs) != set(input_names):
        raise InvalidInput(f"zk inputs: expected exactly the inputs {list(input_names)}, got {sorted(inputs)}")
    return [np.asarray(inputs[name]) for name in input_names]


def _write_input(path: Path, inputs: Mapping[str, np.ndarray], input_names: Sequence[str]) -> None:
    tensors = ordered_inputs(inputs, input_names)
    path.write_text(json.dumps({"input_data": [np.asarray(v, np.float64).reshape(-1).tolist() for v in tensors]}))


def prove(
    inputs: Mapping[str, np.ndarray], input_names: Sequence[str], compiled: Path, pk: Path, srs: Path, workdir: Path
) -> dict[str, Any]:
    ezkl = _ezkl()
    workdir.mkdir(parents=True, exist_ok=True)
    _write_input(workdir / "input.json", inputs, input_names)
    try:
        ezkl.gen_witness(str(workdir / "input.json"), str(compiled), str(workdir / "witness.json"))
        ezkl.prove(str(workdir / "witness.json"), str(compiled), str(pk), str(workdir / "proof.json"), str(srs))
    except RuntimeError as exc:
        raise InvalidInput(f"zk prove: {str(exc).splitlines()[0]}") from exc
    return json.loads((workdir / "proof.json").read_text())


def _witness(
    inputs: Mapping[str, np.ndarray], input_names: Sequence[str], compiled: Path, workdir: Path
) -> dict[str, Any]:
    ezkl = _ezkl()
    workdir.mkdir(parents=True, exist_ok=True)
    _write_input(workdir / "input.json", inputs, input_names)
    try:
        ezkl.gen_witness(str(workdir / "input.json"), str(compiled), str(workdir / "witness.json"))
    except RuntimeError as exc:
        raise InvalidInput(f"zk witness: the inputs do not fit the circuit: {str(exc).splitlines()[0]}") from exc
    return json.loads((workdir / "witness.json").read_text())


def expected_instances(
    inputs: Mapping[str, np.ndarray], input_names: Sequence[str], compiled: Path, workdir: Path
) -> list[str]:
    """The public instances a proof of the circuit on `inputs` must carry: the inputs as field elements (or
    their Poseidon hash, for hashed inputs), then the outputs — recomputed here by witness generation, which is
    deterministic and takes milliseconds, so a verifier compares them exactly."""
    witness = _witness(inputs, input_names, compiled, workdir)
    hashed = (witness.get("processed_inputs") or {}).get("poseidon_hash")
    inputs_part = list(hashed) if hashed else [felt for tensor in witness["inputs"] for felt in tensor]
    return inputs_part + [felt for tensor in witness["outputs"] for felt in tensor]


def output_count(settings: Mapping[str, Any]) -> int:
    """How many of a proof's public instances are outputs (they come last)."""
    shapes = settings["model_instance_shapes"][-len(settings["model_output_scales"]) :]
    return sum(int(np.prod(shape)) for shape in shapes)


def output_values(
    felts: Sequence[str], settings: Mapping[str, Any], outputs: Sequence[TensorSpec]
) -> dict[str, np.ndarray]:
    """A circuit's output field elements as the model's output tensors, in their declared dtype, shape and
    order: output i is the integers k the circuit computed, each k / 2^scale_i — exact in float64, then in the
    declared dtype: exactly when it holds the value (float32 holds 24 significant bits), else, for a float
    dtype, the nearest value (IEEE round to nearest even; a scale of 2^-26 on outputs near 3 needs 28 bits).
    Either way the bits are a function of k alone, so they pin the output. An integer dtype must hold the value
    exactly."""
    ezkl = _ezkl()
    scales = settings["model_output_scales"]
    shapes = settings["model_instance_shapes"][-len(scales) :]
    if len(scales) != len(outputs):
        raise InvalidInput(f"zk outputs: the circuit has {len(scales)} outputs, the model {len(outputs)}")
    if len(felts) != output_count(settings):
        raise InvalidInput(f"zk outputs: {len(felts)} output values, the circuit has {output_count(settings)}")
    values, start = {}, 0
    for spec, scale, shape in zip(outputs, scales, shapes, strict=True):
        size = int(np.prod(shape))
        integers = np.array([ezkl.felt_to_int(felt) for felt in felts[start : start + size]], dtype=np.float64)
        start += size
        if np.max(np.abs(integers), initial=0) >= 2**53:
            raise InvalidInput(f"zk outputs: output {spec.name!r} is out of range")
        exact = np.ldexp(integers, -int(scale)).reshape(shape)  # k * 2^-scale: a power of two, exact in float64
        dtype = np.dtype(spec.dtype)
        array = exact.astype(dtype)
        if dtype.kind != "f" and not np.array_equal(array.astype(np.float64), exact):
            raise InvalidInput(f"zk outputs: output {spec.name!r}: the proven values do not fit {spec.dtype} exactly")
        values[spec.name] = array
    return values


def circuit_outputs(
    inputs: Mapping[str, np.ndarray],
    input_names: Sequence[str],
    outputs: Sequence[TensorSpec],
    compiled: Path,
    settings: Path,
    workdir: Path,
) -> dict[str, np.ndarray]:
    """What the circuit computes on `inputs` (witness generation: deterministic, milliseconds): the outputs a
    proof of it will carry, dequantized exactly."""
    witness = _witness(inputs, input_names, compiled, workdir)
    felts = [felt for tensor in witness["outputs"] for felt in tensor]
    return output_values(felts, json.loads(settings.read_text()), outputs)


def prove_checked(
    inputs: Mapping[str, np.ndarray], input_names: Sequence[str], artifacts: Mapping[str, Path]
) -> dict[str, Any]:
    """A proof of the circuit on `inputs`, checked against the verification key before it is returned.

    Module-level and self-contained so a node can run it in a worker process: EZKL holds the GIL for a whole
    proof, which would stall the node's event loop for seconds if it ran on a thread."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="veriml-prove-") as tmp:
        proof = prove(inputs, input_names, artifacts["compiled"], artifacts["pk"], artifacts["srs"], Path(tmp) / "p")
        verify(proof, artifacts["settings"], artifacts["vk"], artifacts["srs"], Path(tmp) / "v")
    return proof


def verify(proof: Mapping[str, Any], settings: Path, vk: Path, srs: Path, workdir: Path) -> None:
    """Raise VerificationFailed unless EZKL accepts the proof under the verification key."""
    ezkl = _ezkl()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "proof.json").write_text(json.dumps(proof))
    try:
        ok = ezkl.verify(str(workdir / "proof.json"), str(settings), str(vk), str(srs))
    except RuntimeError as exc:
        raise VerificationFailed(f"zk proof does not verify: {str(exc).splitlines()[0]}") from exc
    if not ok:
        raise VerificationFailed("zk proof does not verify")


def evm_verifier(settings: Path, vk: Path, srs: Path, out: Path) -> Path:
    """EZKL's Solidity verifier (contract `Halo2Verifier`) for a verification key, written to `out`.

    EZKL writes the source and then tries to download solc to compile it, which fails offline; the source is
    what is wanted here (the chain layer compiles it with solcjs), so that failure is expected."""
    import asyncio

    ezkl = _ezkl()
    out.parent.mkdir(parents=True, exist_ok=True)
    abi = out.with_suffix(".abi.json")

    async def create() -> None:
        await ezkl.create_evm_verifier(str(vk), str(settings), str(out), str(abi), str(srs))

    try:
        asyncio.run(create())
    except RuntimeError as exc:
        if not out.is_file() or "contract Halo2Verifier" not in out.read_text():
            raise InvalidInput(
                f"zk evm-verifier: EZKL could not write the verifier: {str(exc).splitlines()[0]}"
            ) from exc
    return out


def evm_calldata(proof: Mapping[str, Any], workdir: Path) -> bytes:
    """The calldata (4-byte selector included) that submits `proof` to the EZKL Solidity verifier."""
    ezkl = _ezkl()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "proof.json").write_text(json.dumps(proof))
    return bytes(ezkl.encode_evm_calldata(str(workdir / "proof.json"), str(workdir / "calldata.bin")))
