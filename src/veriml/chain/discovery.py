"""Peer discovery from the on-chain registry, in place of the static peer list (the `Discovery` interface of
veriml.node.peers). A listed node is taken as a peer only when its endpoint answers with the Ed25519 key and log
origin registered on chain: the endpoint alone proves nothing. Anyone can register an endpoint, so one is fetched
only if it passes the node's EndpointPolicy (http(s), public addresses unless configured otherwise)."""

from __future__ import annotations

import logging
import threading

from veriml.background import BackgroundJob
from veriml.chain.contracts import Contracts
from veriml.node.peers import EndpointPolicy, PeerClient, PeerInfo

events = logging.getLogger("veriml.chain")


class ChainPeers(BackgroundJob):
    def __init__(self, contracts: Contracts, own_account: str | None = None, timeout: float = 10.0,
                 refresh: float = 2.0, policy: EndpointPolicy | None = None) -> None:  # fmt: skip
        self.contracts = contracts
        self.policy = policy or EndpointPolicy()
        self.own_account = own_account
        self.timeout = timeout
        self._refresh = refresh
        self._clients: dict[str, PeerClient] = {}
        self._infos: dict[str, PeerInfo] = {}
        self._unanswered: dict[str, str] = {}
        self._lock = threading.Lock()
        super().__init__("chain discovery")

    def stop(self) -> None:
        super().stop()
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.close()

    def refresh(self) -> None:
        try:
            listed = [n for n in self.contracts.nodes() if n.account != self.own_account]
        except Exception as exc:  # the chain may be briefly unreachable: keep the peers known so far
            events.warning("chain discovery: registry not readable: %s", exc)
            return
        infos: dict[str, PeerInfo] = {}
        unanswered: dict[str, str] = {}
        for node in listed:
            try:
                if self.contracts.is_stale(node.account):  # stopped anchoring: its answers are not attributable
                    continue
            except Exception as exc:
                events.warning("chain discovery: registry not readable: %s", exc)
                return
            try:
                info = self.client(node.endpoint).info()
            except Exception as exc:  # a misbehaving peer must not stop discovery of the others
                events.debug("peer %s not reachable: %s", node.endpoint, exc)
                unanswered[node.endpoint] = str(exc) or type(exc).__name__
                continue
            if info.node.public != node.ed25519 or info.node.name != node.origin:
                events.warning("peer %s answers with a key or origin other than its on-chain one", node.endpoint)
                continue
            infos[node.endpoint] = info
        with self._lock:
            self._infos, self._unanswered = infos, unanswered

    def _run(self) -> None:
        while True:
            self.refresh()
            with self._lock:
                found = len(self._infos)
            if self._stop.wait(self._refresh if found else 0.5):
                return

    def peers(self) -> list[PeerInfo]:
        with self._lock:
            return list(self._infos.values())

    def unanswered(self) -> dict[str, str]:
        with self._lock:
            return dict(self._unanswered)

    def client(self, url: str) -> PeerClient:
        with self._lock:
            if url not in self._clients:
                self._clients[url] = PeerClient(url, self.timeout, self.policy)
            return self._clients[url]


def node_urls(contracts: Contracts) -> list[str]:
    """The endpoints of the listed nodes, for an SDK client: `Client(node_urls(contracts))`."""
    return [node.endpoint for node in contracts.nodes() if node.active and not contracts.is_stale(node.account)]
