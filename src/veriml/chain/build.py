"""Contracts built from source when they are needed: Vyper sources under contracts/ with the vyper package, and
EZKL's Solidity verifier with solcjs from the project's node_modules. No bytecode is committed."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veriml.errors import InvalidInput, NotFound, Unavailable

CONTRACT_NAMES = ("NodeRegistry", "ModelRegistry", "ProvenConsumer", "Ed25519", "Disputes")
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes


def contracts_dir() -> Path:
    """contracts/ of a source checkout, or the copy a wheel carries inside the package."""
    for candidate in (_HERE.parents[2] / "contracts", _HERE / "contracts"):
        if (candidate / "NodeRegistry.vy").is_file():
            return candidate
    raise NotFound("contracts: no contracts/NodeRegistry.vy beside the package or in the source checkout")


def node_modules() -> Path:
    """The project-local node_modules that `make install` fills (`npm ci`); VERIML_NODE_MODULES overrides."""
    override = os.environ.get("VERIML_NODE_MODULES")
    candidates = [Path(override)] if override else [_HERE.parents[2] / "node_modules", Path.cwd() / "node_modules"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise NotFound("node_modules: not found; run `make install` (it runs `npm ci` for anvil and solc)")


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "veriml" / "contracts"


@functools.cache
def compile_vyper(name: str) -> Artifact:
    """ABI and bytecode of contracts/<name>.vy. The output is cached on disk by the hash of the source and the
    compiler version (a node process then starts without importing the compiler); it is never committed."""
    if name not in CONTRACT_NAMES:
        raise InvalidInput(f"contract {name!r}: expected one of {', '.join(CONTRACT_NAMES)}")
    source = (contracts_dir() / f"{name}.vy").read_text()
    try:
        compiler = importlib.metadata.version("vyper")
    except importlib.metadata.PackageNotFoundError as exc:
        raise Unavailable("vyper is not installed: `pip install 'veriml[chain]'` (make install does)") from exc
    key = hashlib.sha256(f"{compiler}\0{name}\0{source}".encode()).hexdigest()
    cached = _cache_dir() / f"{name}-{key}.json"
    try:
        body = json.loads(cached.read_text())
        return Artifact(name, body["abi"], bytes.fromhex(body["bytecode"]))
    except (OSError, ValueError, KeyError):
        pass
    import vyper

    output = vyper.compile_code(source, output_formats=["abi", "bytecode"], contract_path=f"{name}.vy")
    artifact = Artifact(name, output["abi"], bytes.fromhex(output["bytecode"].removeprefix("0x")))
    try:  # a cache that cannot be written only costs the next process a compile
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"abi": artifact.abi, "bytecode": artifact.bytecode.hex()}))
        partial.replace(cached)
    except OSError:
        pass
    return artifact


# solcjs through a short Node program: standard JSON in, standard JSON out (the solcjs CLI has no JSON mode).
_SOLCJS = """
const solc = require(process.argv[1]);
let input = '';
process.stdin.on('data', c => input += c);
process.stdin.on('end', () => process.stdout.write(solc.compile(input)));
"""


def compile_solidity(source: str, contract: str = "Halo2Verifier") -> Artifact:
    """Compile one Solidity contract (EZKL's verifier) with solcjs, optimizer on as EZKL's own build does."""
    node = shutil.which("node")
    if node is None:
        raise Unavailable("solidity: `node` is not installed (needed to run solcjs)")
    solc = node_modules() / "solc"
    if not (solc / "index.js").is_file():
        raise NotFound(f"solidity: solcjs not found in {solc.parent}; run `make install`")
    request = {
        "language": "Solidity",
        "sources": {"Verifier.sol": {"content": source}},
        "settings": {
            "optimizer": {"enabled": True, "runs": 1},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    run = subprocess.run(
        [node, "-e", _SOLCJS, str(solc)], input=json.dumps(request), capture_output=True, text=True, timeout=300
    )
    if run.returncode != 0:
        raise Unavailable(f"solidity: solcjs failed: {run.stderr.strip().splitlines()[-1:]}")
    result = json.loads(run.stdout)
    errors = [e["formattedMessage"] for e in result.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise InvalidInput(f"solidity: {contract} does not compile: {errors[0].splitlines()[0]}")
    compiled = result["contracts"]["Verifier.sol"].get(contract)
    if compiled is None:
        raise InvalidInput(f"solidity: no contract {contract} in the source")
    return Artifact(contract, compiled["abi"], bytes.fromhex(compiled["evm"]["bytecode"]["object"]))
