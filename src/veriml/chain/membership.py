"""A node's life on chain: register its Ed25519 key, log origin and endpoint with a stake (or correct the
endpoint), then anchor its log on a cadence and find its peers in the registry. Enabled by the node config's
`chain_*` settings; a node without them runs on its static peer list as before."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from veriml.background import BackgroundJob
from veriml.chain.anchor import Anchorer, AnchorSource
from veriml.chain.connection import Chain, load_account
from veriml.chain.contracts import Contracts, Deployment
from veriml.chain.discovery import ChainPeers
from veriml.errors import InvalidInput, NotFound, VerimlError
from veriml.identity import SigningKey
from veriml.node.config import NodeConfig
from veriml.node.peers import EndpointPolicy
from veriml.tlog import Log

events = logging.getLogger("veriml.chain")


class ChainMembership(BackgroundJob):
    def __init__(self, config: NodeConfig, key: SigningKey, log: Log) -> None:
        if not (config.chain_rpc and config.chain_deployment and config.chain_key):
            raise InvalidInput("node config: chain_rpc needs chain_deployment and chain_key too")
        deployment = Deployment.load(Path(config.chain_deployment))
        if config.chain_id is not None and config.chain_id != deployment.chain_id:
            raise InvalidInput(f"node config: chain_id {config.chain_id}, but {config.chain_deployment} is for"
                               f" chain {deployment.chain_id}")  # fmt: skip
        # Nothing is sent before the join thread runs: a node may start before its chain answers.
        self.contracts = Contracts(Chain.connect(config.chain_rpc, check=False), deployment, check=False)
        self.account = load_account(key_file=Path(config.chain_key))
        self.key = key
        self.stake = config.chain_stake
        self.endpoint = config.public_url or f"http://{config.host}:{config.port}"
        self.discovery = ChainPeers(self.contracts, self.account.address, config.peer_timeout,
                                    policy=EndpointPolicy(config.allow_endpoint_networks))  # fmt: skip
        source = AnchorSource(log.latest_checkpoint, log.consistency_proof)
        self.anchorer = Anchorer(self.contracts, self.account, source, config.anchor_interval)
        self.joined = threading.Event()
        super().__init__("chain membership")

    def join(self) -> bool:
        """Register, or bring the registered endpoint up to date; an account bound to another key is refused.
        False when the account was slashed or has withdrawn: the node then serves without anchoring."""
        self.contracts.chain.check_chain_id(self.contracts.deployment.chain_id)
        try:
            node = self.contracts.node(self.account.address)
        except NotFound:
            self.contracts.register(self.account, self.key, self.endpoint, self.stake)
            events.info("registered on chain as %s from %s", self.key.public.name, self.account.address)
            return True
        if node.ed25519 != self.key.public.public:
            raise InvalidInput(f"chain: account {self.account.address} is registered with another Ed25519 key")
        if node.slashed or node.withdrawn:
            events.error("chain: account %s was %s: not anchoring", self.account.address,
                         "slashed" if node.slashed else "withdrawn")  # fmt: skip
            return False
        if node.endpoint != self.endpoint and node.exit_at == 0:
            self.contracts.set_endpoint(self.account, self.endpoint)
        return True

    def _run(self) -> None:
        anchoring = False
        while not self._stop.is_set():
            try:
                anchoring = self.join()
                break
            except VerimlError as exc:
                events.warning("chain: could not join, retrying: %s", exc)
                self._stop.wait(2.0)
        if self._stop.is_set():
            return
        self.joined.set()
        self.discovery.start()
        if anchoring:
            self.anchorer.start()

    def stop(self) -> None:
        super().stop()
        self.anchorer.stop()
        self.discovery.stop()
