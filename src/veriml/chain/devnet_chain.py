"""The chain side of `veriml devnet up --chain embedded|anvil` or `--rpc URL`: start the local chain process (or
use the given RPC), deploy the contracts, create and fund one Ethereum key per node, and return the node config
lines that put each node on chain."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from veriml.chain import local
from veriml.chain.connection import Chain, load_account, new_account_file
from veriml.chain.contracts import ETHER, DisputeParams, deploy
from veriml.devnet import free_port

DEVNET_STAKE = ETHER // 10
DEVNET_EXIT_DELAY = 600  # seconds: short, so that a devnet can show an exit end to end
DEVNET_ANCHOR_GAP = 600  # seconds without an anchor after which a devnet node can be reported stale
# Disputes on a devnet: a committee of 3 once there are 5 nodes (never the disputed node nor the challenger),
# short windows in blocks, a 5-minute challenge window (below the exit delay, as the contract requires).
DEVNET_DISPUTES = DisputeParams(committee_size=3, draw_delay=2, commit_window=25, reveal_window=25,
                                challenge_window=300)  # fmt: skip
NODE_FUNDS = ETHER  # for gas: an anchor costs ~0.0001 ether at 1 gwei


def setup_chain(
    root: Path, count: int, kind: str | None, rpc: str | None, anchor_interval: float
) -> tuple[dict[str, Any], list[list[str]]]:
    started = None
    if rpc is None:
        started = local.start(kind or "embedded", free_port(), root / "chain.log")
        rpc, faucet = started.rpc, load_account(started.faucet_key)
    else:
        faucet = load_account()  # VERIML_CHAIN_KEY: the account that pays for the deployment and funds nodes
    try:
        chain = Chain.connect(rpc)
        disputes = DEVNET_DISPUTES if count >= 5 else replace(DEVNET_DISPUTES, committee_size=1)
        deployment = deploy(chain, faucet, min_stake=DEVNET_STAKE, exit_delay=DEVNET_EXIT_DELAY,
                            max_anchor_gap=DEVNET_ANCHOR_GAP, disputes=disputes)  # fmt: skip
        deployment_path = root / "chain.json"
        deployment.save(deployment_path)
        lines = []
        for n in range(count):
            key_path = root / f"node{n}" / "eth.key"
            # `devnet up` again in the same directory keeps each node's account (and funds it on the new chain).
            account = load_account(key_file=key_path) if key_path.exists() else new_account_file(key_path)
            chain.fund(faucet, account.address, NODE_FUNDS + DEVNET_STAKE)
            lines.append([
                f"chain_rpc = {json.dumps(rpc)}",
                f"chain_id = {deployment.chain_id}",
                f"chain_deployment = {json.dumps(str(deployment_path))}",
                f"chain_key = {json.dumps(str(key_path))}",
                f"chain_stake = {DEVNET_STAKE}",
                f"anchor_interval = {anchor_interval}",
                f"dispute_interval = {min(anchor_interval, 1.0)}",
            ])  # fmt: skip
    except BaseException:
        if started is not None:
            local.stop(started)
        raise
    state = {
        "kind": started.kind if started else "rpc",
        "rpc": rpc,
        "pid": started.pid if started else None,
        "port": started.port if started else None,
        "deployment": str(deployment_path),
    }
    return state, lines
