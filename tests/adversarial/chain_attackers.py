"""Malicious parties on the chain, test-only: each one copies what an honest party sends (a registration, a
manifest registration, a slash report) or forges what it would like the contracts to accept. They drive the real
contracts through the product's typed client, never through a product flag.

A copy is what a front-runner can do: a pending transaction's calldata is public, so the attacker sends the
same call (or the same commitment) from its own account first."""

from __future__ import annotations

import functools
from typing import Any

from veriml.chain import Contracts
from veriml.chain.contracts import Inclusion, ShadowCheckpoint
from veriml.identity import Domain, SigningKey, VerifyingKey
from veriml.tlog import Checkpoint, SignedCheckpoint, sign_note

# A verifier that accepts every proof: what a front-runner would register beside someone else's model, and
# the stand-in for a SNARK verifier in the consumer test (anyone can prove any input; what matters is whether
# the consumer asked for that input).
ACCEPT_ALL = """
# pragma version ~=0.4.3
@external
@view
def verifyProof(proof: Bytes[16384], instances: DynArray[uint256, 256]) -> uint256:
    return 1
"""


@functools.cache
def _accept_all() -> tuple[list[Any], bytes]:
    import vyper

    out = vyper.compile_code(ACCEPT_ALL, output_formats=["abi", "bytecode"])
    return out["abi"], bytes.fromhex(out["bytecode"].removeprefix("0x"))


def deploy_accept_all_verifier(contracts: Contracts, account: Any) -> str:
    abi, bytecode = _accept_all()
    return contracts.chain.deploy(account, abi, bytecode, what="accept-everything verifier")


def copy_manifest_registration(contracts: Contracts, attacker: Any, canonical: bytes, verifier: str) -> Any:
    """Send the publisher's pending register_model call (its calldata: the manifest bytes) from the attacker."""
    return contracts.register_model(attacker, canonical, verifier)


def copy_registration(contracts: Contracts, attacker: Any, key: VerifyingKey, endpoint: str, stake: int,
                      signature: bytes) -> Any:  # fmt: skip
    """A registration call (key, origin, endpoint, the key's binding signature) sent from the attacker."""
    return contracts.register_signed(attacker, key, endpoint, stake, signature)


def forge_binding(contracts: Contracts, attacker: Any, key: VerifyingKey) -> bytes:
    """The best an attacker without the node's private key can do: sign the binding with a key of its own."""
    payload = contracts.binding(attacker.address, key)
    prefix = Domain.CHAIN_BINDING.message(b"")
    return SigningKey.generate(key.name).sign(Domain.CHAIN_BINDING, payload[len(prefix) :])


def shadow_checkpoint(key: SigningKey, size: int, root: bytes) -> ShadowCheckpoint:
    """A checkpoint the node signs for a tree it does not anchor (what it shows some clients)."""
    checkpoint = Checkpoint(key.name, size, root)
    return ShadowCheckpoint.of(SignedCheckpoint(checkpoint, sign_note(checkpoint.text(), key)))


def copy_commitment(contracts: Contracts, attacker: Any, commitment: bytes) -> Any:
    """A pending commit, sent by the attacker: the same hash under the attacker's account."""
    return contracts.commit(attacker, commitment, what="copied commitment")


def copy_slash_reveal(contracts: Contracts, copier: Any, node: str, first: Inclusion, second: Inclusion,
                      nonce: bytes) -> Any:  # fmt: skip
    """The reporter's pending reveal (the evidence and nonce are in its calldata), sent by the copier."""
    return contracts.reveal_slash(copier, node, first, second, nonce)
