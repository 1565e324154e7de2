"""The real prover, EZKL, driven offline: settings, calibration, compiled circuit, SRS, keys; witness, proof,
verification; and reading a proof's public values back as numbers.

EZKL works on files; each call here gets a private working directory. Its SRS download (`get_srs`) is never
used: a development SRS is generated with `gen_srs`, or a ceremony SRS is read from a file the user gives.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from veriml.errors import InvalidInput, VerificationFailed
from veriml.zk.preflight import check_memory, check_operators, default_memory_cap

CALIBRATION_TARGETS = ("resources", "accuracy")


def _ezkl() -> Any:
    # EZKL keeps a cache under ~/.ezkl unless told otherwise; keep it beside the work instead.
    os.environ.setdefault("EZKL_REPO_PATH", str(Path.home() / ".veriml" / "ezkl"))
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
) -> SetupFiles:
    """One-time setup per model version. Parameters are fixed into the circuit, so the verification key
    commits to the weights; outputs are public; inputs public or hashed."""
    if calibration not in CALIBRATION_TARGETS:
        raise InvalidInput(f"zk setup: calibration must be one of {CALIBRATION_TARGETS}")
    check_operators(model)
    ezkl = _ezkl()
    workdir.mkdir(parents=True, exist_ok=True)
    files = {name: workdir / name for name in ("settings.json", "network.compiled", "vk.key", "pk.key", "input.json")}
    _write_input(files["input.json"], sample_inputs)
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


def _write_input(path: Path, inputs: Mapping[str, np.ndarray]) -> None:
    path.write_text(
        json.dumps({"input_data": [np.asarray(v, np.float64).reshape(-1).tolist() for v in inputs.values()]})
    )


def prove(inputs: Mapping[str, np.ndarray], compiled: Path, pk: Path, srs: Path, workdir: Path) -> dict[str, Any]:
    ezkl = _ezkl()
    workdir.mkdir(parents=True, exist_ok=True)
    _write_input(workdir / "input.json", inputs)
    try:
        ezkl.gen_witness(str(workdir / "input.json"), str(compiled), str(workdir / "witness.json"))
        ezkl.prove(str(workdir / "witness.json"), str(compiled), str(pk), str(workdir / "proof.json"), str(srs))
    except RuntimeError as exc:
        raise InvalidInput(f"zk prove: {str(exc).splitlines()[0]}") from exc
    return json.loads((workdir / "proof.json").read_text())


def expected_instances(inputs: Mapping[str, np.ndarray], compiled: Path, workdir: Path) -> list[str]:
    """The public instances a proof of the circuit on `inputs` must carry: the inputs as field elements (or
    their Poseidon hash, for hashed inputs), then the outputs — recomputed here by witness generation, which is
    deterministic and takes milliseconds, so a verifier compares them exactly."""
    ezkl = _ezkl()
    workdir.mkdir(parents=True, exist_ok=True)
    _write_input(workdir / "input.json", inputs)
    try:
        ezkl.gen_witness(str(workdir / "input.json"), str(compiled), str(workdir / "witness.json"))
    except RuntimeError as exc:
        raise InvalidInput(f"zk witness: the inputs do not fit the circuit: {str(exc).splitlines()[0]}") from exc
    witness = json.loads((workdir / "witness.json").read_text())
    hashed = (witness.get("processed_inputs") or {}).get("poseidon_hash")
    inputs_part = list(hashed) if hashed else [felt for tensor in witness["inputs"] for felt in tensor]
    return inputs_part + [felt for tensor in witness["outputs"] for felt in tensor]


def prove_checked(inputs: Mapping[str, np.ndarray], artifacts: Mapping[str, Path]) -> dict[str, Any]:
    """A proof of the circuit on `inputs`, checked against the verification key before it is returned.

    Module-level and self-contained so a node can run it in a worker process: EZKL holds the GIL for a whole
    proof, which would stall the node's event loop for seconds if it ran on a thread."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="veriml-prove-") as tmp:
        proof = prove(inputs, artifacts["compiled"], artifacts["pk"], artifacts["srs"], Path(tmp) / "p")
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


def public_values(proof: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    """(public inputs, public outputs) as floats after EZKL's fixed-point scaling."""
    ezkl = _ezkl()
    instances = proof["instances"][0]
    output_scale = settings["model_output_scales"][0]
    output_count = sum(
        int(np.prod(shape)) for shape in settings["model_instance_shapes"][-len(settings["model_output_scales"]) :]
    )
    input_scale = settings["model_input_scales"][0]
    outputs = [ezkl.felt_to_float(f, output_scale) for f in instances[len(instances) - output_count :]]
    inputs = [ezkl.felt_to_float(f, input_scale) for f in instances[: len(instances) - output_count]]
    return inputs, outputs


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
