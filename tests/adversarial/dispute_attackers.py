"""Dishonest parties of the dispute game, each doing one dishonest thing through the real contracts (test-only;
the product has no switch for any of them)."""

from __future__ import annotations

import os
from typing import Any

from veriml.chain.disputes import DisputeGame, Vote


def copy_open(game: DisputeGame, copier: Any, node: str, leaf: bytes, index: int, size: int,
              proof: list[bytes], bond: int) -> Any:  # fmt: skip
    """Copy a pending `open` from the mempool and send it from another account (no commitment of its own)."""
    call = game.contract.functions.open(node, game._digests(leaf), index, size, proof, os.urandom(32))
    return game.chain.send(copier, call, value=bond, what="copied open")


def lazy_vote(claimed: bytes) -> Vote:
    """A member that does not re-execute: it votes the node's own output commitment, read from the leaf."""
    return Vote(claimed, True, os.urandom(32))


def swapped_reveal(committed: Vote, other_output: bytes) -> Vote:
    """Reveal another output than the one committed (after seeing the others' reveals), with the same nonce."""
    return Vote(other_output, committed.comparable, committed.nonce)


def penalize_directly(game: DisputeGame, attacker: Any, victim: str) -> Any:
    """Call the registry's stake hook without going through a dispute."""
    call = game.contracts.registry.functions.penalize(victim, 10**30, True)
    return game.chain.send(attacker, call, what="penalize directly")


def take_slasher_role(game: DisputeGame, attacker: Any) -> Any:
    call = game.contracts.registry.functions.set_slasher(attacker.address)
    return game.chain.send(attacker, call, what="take the slasher role")
