"""Talking to other nodes: who they are (node info), and the few calls a node makes of its peers — manifests
and blobs for replication, add-checkpoint for witnessing. Discovery sits behind one interface so the on-chain
registry can replace the static peer list later."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from veriml.background import BackgroundJob
from veriml.codec import Digest
from veriml.errors import InvalidInput, NotFound, Unavailable
from veriml.hub import SignedManifest, parse_signed_manifest
from veriml.identity import VerifyingKey
from veriml.identity.keys import COSIGNATURE_ED25519
from veriml.tlog import StaleOldSize
from veriml.zk import SignedZkDocument, parse_signed_zk_document

events = logging.getLogger("veriml.node")


@dataclass(frozen=True, slots=True)
class PeerInfo:
    url: str
    node: VerifyingKey  # signs receipts and its log's checkpoints; its name is the log origin
    witness: VerifyingKey  # the same key in the cosigner role (type 0x04)
    models: frozenset[str]

    @classmethod
    def from_json(cls, url: str, obj: dict[str, Any]) -> PeerInfo:
        try:
            return cls(
                url=url,
                node=VerifyingKey.parse(obj["node"], "peer node key"),
                witness=VerifyingKey.parse(obj["witness"], "peer witness key", COSIGNATURE_ED25519),
                models=frozenset(obj.get("models", [])),
            )
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"peer {url}: node info is malformed ({exc})") from exc


class PeerClient:
    """Synchronous calls to one peer. Errors come back as veriml errors, never as raw HTTP failures."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.get(path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"peer {self.url}: {type(exc).__name__}") from exc
        if response.status_code == 404:
            raise NotFound(f"peer {self.url}: {path} not found")
        if response.status_code >= 400:
            raise Unavailable(f"peer {self.url}: {path} answered {response.status_code}")
        return response

    def _json(self, path: str) -> Any:
        response = self._get(path)
        try:
            return response.json()
        except ValueError as exc:
            raise Unavailable(f"peer {self.url}: {path} did not answer JSON") from exc

    def info(self) -> PeerInfo:
        body = self._json("/v1/info")
        if not isinstance(body, dict):
            raise Unavailable(f"peer {self.url}: node info is not an object")
        return PeerInfo.from_json(self.url, body)

    def manifest_chain(self, name: str) -> list[SignedManifest]:
        owner, model = name.split("/", 1)
        body = self._json(f"/v1/models/{owner}/{model}/versions")
        if not isinstance(body, dict) or not isinstance(body.get("versions"), list):
            raise Unavailable(f"peer {self.url}: malformed version list for {name}")
        return [parse_signed_manifest(item) for item in body["versions"]]

    def manifest(self, manifest_id: Digest) -> SignedManifest:
        return parse_signed_manifest(self._json(f"/v1/manifests/{manifest_id}"))

    def zk_document(self, manifest_id: Digest) -> SignedZkDocument:
        return parse_signed_zk_document(self._json(f"/v1/zk-documents/{manifest_id}"))

    def stream_blob(self, blob: Digest) -> Iterator[bytes]:
        try:
            with self._http.stream("GET", f"/v1/blobs/{blob}") as response:
                if response.status_code == 404:
                    raise NotFound(f"peer {self.url}: blob {blob} not held")
                if response.status_code >= 400:
                    raise Unavailable(f"peer {self.url}: blob {blob} answered {response.status_code}")
                yield from response.iter_bytes(1 << 20)
        except httpx.HTTPError as exc:
            raise Unavailable(f"peer {self.url}: {type(exc).__name__} while streaming {blob}") from exc

    def add_checkpoint(self, body: bytes) -> bytes:
        """C2SP tlog-witness add-checkpoint; a 409 with the witness's size becomes StaleOldSize."""
        try:
            response = self._http.post("/add-checkpoint", content=body)
        except httpx.HTTPError as exc:
            raise Unavailable(f"witness {self.url}: {type(exc).__name__}") from exc
        if response.status_code == 409 and response.headers.get("content-type", "").startswith("text/x.tlog.size"):
            size = response.text.strip()
            if not size.isdigit() or len(size) > 18:
                raise Unavailable(f"witness {self.url}: 409 with a malformed size")
            raise StaleOldSize(f"witness {self.url}: stale old size", int(size))
        if response.status_code != 200:
            try:
                problem = response.json()
                detail = problem.get("detail", "") if isinstance(problem, dict) else response.text[:500]
            except ValueError:
                detail = response.text[:500]
            raise Unavailable(f"witness {self.url}: add-checkpoint answered {response.status_code}: {detail}")
        return response.content


class Discovery(Protocol):
    def peers(self) -> list[PeerInfo]: ...

    def client(self, url: str) -> PeerClient: ...


class StaticPeers(BackgroundJob):
    """The peer list from the node's config; node info is fetched, and refreshed, in the background."""

    def __init__(self, urls: tuple[str, ...], timeout: float = 10.0, refresh: float = 2.0) -> None:
        self.urls = urls
        self._clients = {url: PeerClient(url, timeout) for url in urls}
        self._infos: dict[str, PeerInfo] = {}
        self._lock = threading.Lock()
        self._refresh = refresh
        super().__init__("peer discovery")

    def stop(self) -> None:
        super().stop()
        for client in self._clients.values():
            client.close()

    def refresh(self) -> None:
        for url, client in self._clients.items():
            try:
                info = client.info()
            except Exception as exc:  # a misbehaving peer must not stop discovery of the others
                events.debug("peer %s not reachable: %s", url, exc)
                continue
            with self._lock:
                self._infos[url] = info

    def _run(self) -> None:
        while True:
            self.refresh()
            with self._lock:
                complete = len(self._infos) == len(self.urls)
            # Quickly while peers are still coming up, then at the normal pace.
            if self._stop.wait(self._refresh if complete else 0.2):
                return

    def peers(self) -> list[PeerInfo]:
        with self._lock:
            return list(self._infos.values())

    def client(self, url: str) -> PeerClient:
        return self._clients[url]
