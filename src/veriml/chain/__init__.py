"""The chain face: veriml's contracts (Vyper, built from source), a typed client over web3.py, on-chain peer
discovery, checkpoint anchoring from a node, and slashing evidence built from logs (DESIGN §7)."""

from veriml.chain.build import compile_solidity, compile_vyper
from veriml.chain.connection import Chain, load_account
from veriml.chain.contracts import Contracts, Deployment, Inclusion, OnChainNode, deploy

__all__ = [
    "Chain",
    "Contracts",
    "Deployment",
    "Inclusion",
    "OnChainNode",
    "compile_solidity",
    "compile_vyper",
    "deploy",
    "load_account",
]
