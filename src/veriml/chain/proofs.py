"""Proofs verified by contracts: EZKL's Solidity verifier for a model version, compiled with solcjs and
deployed; the example consumer contract bound to a manifest; and EZKL's calldata split into the consumer's
arguments (proof bytes, public instances)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from veriml.chain.build import compile_solidity, compile_vyper
from veriml.chain.connection import Chain
from veriml.chain.contracts import Contracts
from veriml.codec import Digest
from veriml.errors import InvalidInput

VERIFY_PROOF_SELECTOR = bytes.fromhex("1e8e1e13")  # verifyProof(bytes,uint256[])


def deploy_verifier(chain: Chain, account: Any, source: Path) -> str:
    """Compile EZKL's Verifier.sol (contract Halo2Verifier) and deploy it; its address."""
    artifact = compile_solidity(Path(source).read_text())
    return chain.deploy(account, artifact.abi, artifact.bytecode, what="EZKL verifier")


def deploy_consumer(contracts: Contracts, account: Any, manifest: Digest, outputs: int) -> Any:
    """The example consumer (contracts/ProvenConsumer.vy) for one model version; the contract object."""
    artifact = compile_vyper("ProvenConsumer")
    address = contracts.chain.deploy(
        account, artifact.abi, artifact.bytecode, contracts.deployment.model_registry, manifest.value, outputs,
        what="ProvenConsumer",
    )  # fmt: skip
    return contracts.chain.contract(address, artifact.abi)


def split_calldata(chain: Chain, calldata: bytes) -> tuple[bytes, list[int]]:
    """EZKL's calldata for verifyProof(bytes proof, uint256[] instances) as (proof, instances)."""
    if calldata[:4] != VERIFY_PROOF_SELECTOR:
        raise InvalidInput("proof calldata: not a verifyProof(bytes,uint256[]) call")
    proof, instances = chain.w3.codec.decode(["bytes", "uint256[]"], calldata[4:])
    return bytes(proof), list(instances)
