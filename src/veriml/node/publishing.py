"""Open publishing: a publisher's signature is the credential. A node takes a publisher-signed manifest and its
blob without an admin token, under the operator's policy (open, an allow-list of publisher keys, or closed) and
per-publisher quotas (bytes, model names, publishes per hour), and serves a read-only view of its hub.

Two steps, so that no byte is taken before the manifest is judged: `POST /v1/publish` with the signed manifest
checks signature, policy, name ownership (the first key to publish under `owner/` holds it), version and parent,
and the quotas; the bytes then go to `PUT /v1/publish/{manifest_id}/blob`, are hashed while they stream into a
temporary file, and are stored only if they hash to the signed blob id and every rule still holds. Every refusal
is an RFC 9457 problem with its own type, and nothing is stored.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from veriml.codec import Digest
from veriml.codec.digest import new_hasher
from veriml.errors import InvalidInput, NotFound, PermissionDenied, Unavailable, VerificationFailed
from veriml.hub import Published, SignedManifest, parse_signed_manifest
from veriml.identity import VerifyingKey
from veriml.node.node import Node

PENDING_TTL = 600.0  # seconds a judged manifest waits for its bytes
PENDING_PER_PUBLISHER = 2
PENDING_TOTAL = 32
RATE_WINDOW = 3600.0
SEARCH_LIMIT = 500


class PublisherNotAllowed(PermissionDenied):
    kind = "publisher-not-allowed"


class QuotaExceeded(PermissionDenied):
    kind = "quota-exceeded"


class PublishRateLimited(Unavailable):
    kind = "publish-rate-limited"
    http_status = 429


class BlobMismatch(VerificationFailed):
    kind = "blob-mismatch"


class ModelRefused(InvalidInput):
    kind = "model-refused"


class NoPendingPublish(NotFound):
    kind = "no-pending-publish"


@dataclass(frozen=True)
class Pending:
    signed: SignedManifest
    expires: float


class Ledger:
    """What open publishing stored for each publisher key: the quotas are counted here (replicas taken in from
    peers and the operator's own admin publishes are not a publisher's use of this node)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS publishes (publisher TEXT NOT NULL, manifest_id TEXT PRIMARY KEY, "
                "name TEXT NOT NULL, size INTEGER NOT NULL, at REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS publishes_by_key ON publishes(publisher, at)")

    def usage(self, publisher: str, since: float) -> tuple[int, set[str], int]:
        """(bytes, names, publishes since `since`) of one publisher key."""
        with self._lock:
            size = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM publishes WHERE publisher = ?",
                                    (publisher,)).fetchone()[0]  # fmt: skip
            names = {row[0] for row in self._db.execute("SELECT name FROM publishes WHERE publisher = ?", (publisher,))}
            recent = self._db.execute("SELECT COUNT(*) FROM publishes WHERE publisher = ? AND at >= ?",
                                      (publisher, since)).fetchone()[0]  # fmt: skip
        return int(size), names, int(recent)

    def total(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM publishes").fetchone()[0])

    def record(self, signed: SignedManifest) -> None:
        body = signed.body
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO publishes VALUES (?, ?, ?, ?, ?)",
                             (body.publisher.vkey, str(signed.id), body.name, body.size, time.time()))  # fmt: skip

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Publishing:
    """The node's side of open publishing: judge a signed manifest, then take its bytes."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.config = node.config
        self.hub = node.service.hub
        self.ledger = Ledger(node.home.root / "publishing" / "ledger.sqlite")
        self.incoming = node.home.root / "publishing" / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.allowed = frozenset(
            VerifyingKey.parse(key, "publish_allow key").public for key in self.config.publish_allow
        )
        self._pending: dict[str, Pending] = {}
        self._lock = threading.RLock()  # judging and storing one publish at a time keeps the quotas exact

    def _check_policy(self, signed: SignedManifest) -> None:
        policy = self.config.publish_policy
        key = signed.body.publisher
        if policy == "closed":
            raise PublisherNotAllowed("this node takes models from its operator only (publish_policy = closed)")
        if policy == "allow-list" and key.public not in self.allowed:
            raise PublisherNotAllowed(f"publisher key {key.key_id} is not on this node's allow-list")

    def _check_quotas(self, signed: SignedManifest) -> None:
        body, config = signed.body, self.config
        used, names, recent = self.ledger.usage(body.publisher.vkey, time.time() - RATE_WINDOW)
        if recent >= config.publish_rate_per_hour:
            raise PublishRateLimited(
                f"publisher {body.publisher.key_id}: {recent} publishes in the last hour, the limit is "
                f"{config.publish_rate_per_hour}; try again later"
            )
        if body.name not in names and len(names) >= config.publish_quota_models:
            raise QuotaExceeded(
                f"publisher {body.publisher.key_id}: quota of {config.publish_quota_models} model names reached"
            )
        if used + body.size > config.publish_quota_bytes:
            raise QuotaExceeded(
                f"publisher {body.publisher.key_id}: {body.size:,} more bytes would pass the quota of "
                f"{config.publish_quota_bytes:,} ({used:,} used)"
            )
        if self.ledger.total() + body.size > config.publish_total_bytes:
            raise QuotaExceeded("this node takes no more openly published bytes (publish_total_bytes reached)")
        if body.size > config.max_blob_bytes:
            raise QuotaExceeded(
                f"model of {body.size:,} bytes: over this node's blob limit of {config.max_blob_bytes:,}"
            )

    def judge(self, signed_manifest: Any) -> tuple[int, dict[str, Any]]:
        """Check a signed manifest before any byte: (status, answer)."""
        signed = parse_signed_manifest(signed_manifest).verified()
        with self._lock:
            self._check_policy(signed)
            existing = self.hub.admissible(signed, namespace=True)
            if existing is not None:
                return 200, _answer(Published(existing, created=False))
            self._check_quotas(signed)
            try:
                self.hub.refused(signed)  # bytes refused before (random operators): no upload
            except InvalidInput as exc:
                raise ModelRefused(str(exc)) from exc
            if self.hub.blobs.has(signed.body.blob):
                return 201, _answer(self._store(signed, None))
            self._hold(signed)
        return 202, {"manifest_id": str(signed.id), "ref": signed.body.ref, "created": False,
                     "upload": f"/v1/publish/{signed.id}/blob", "size": signed.body.size}  # fmt: skip

    def _hold(self, signed: SignedManifest) -> None:
        now = time.monotonic()
        for manifest_id in [m for m, p in self._pending.items() if p.expires < now]:
            del self._pending[manifest_id]
        key = signed.body.publisher.public
        mine = [m for m, p in self._pending.items() if p.signed.body.publisher.public == key]
        if str(signed.id) not in self._pending:
            if len(mine) >= PENDING_PER_PUBLISHER:
                raise PublishRateLimited(
                    f"publisher {signed.body.publisher.key_id}: {len(mine)} uploads already pending"
                )
            if len(self._pending) >= PENDING_TOTAL:
                raise PublishRateLimited("this node has too many uploads pending; try again later")
        self._pending[str(signed.id)] = Pending(signed, now + PENDING_TTL)

    def pending(self, manifest_id: str) -> SignedManifest:
        digest = Digest.parse(manifest_id, "manifest id")
        with self._lock:
            held = self._pending.get(str(digest))
        if held is None or held.expires < time.monotonic():
            raise NoPendingPublish(f"manifest {digest}: no publish waiting for its bytes (POST /v1/publish first)")
        return held.signed

    def _store(self, signed: SignedManifest, blob: Path | None) -> Published:
        with self._lock:
            self._check_policy(signed)
            if self.hub.admissible(signed, namespace=True) is None:
                self._check_quotas(signed)
            try:
                published = self.hub.publish(signed, blob, namespace=True)
            except InvalidInput as exc:  # the model itself is refused (random operators, a wrong size)
                raise ModelRefused(str(exc)) from exc
            if published.created:
                self.ledger.record(signed)
            self._pending.pop(str(signed.id), None)
        return published

    async def receive(self, manifest_id: str, request: Request) -> dict[str, Any]:
        """Stream the bytes into a temporary file while hashing; store them only if they are the signed blob."""
        signed = self.pending(manifest_id)
        body = signed.body
        hasher, size = new_hasher(), 0
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.incoming)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > body.size:
                        raise BlobMismatch(f"blob {body.blob}: more than the {body.size:,} bytes the manifest signs")
                    hasher.update(chunk)
                    handle.write(chunk)
            digest = Digest.from_hasher(hasher)
            if digest != body.blob or size != body.size:
                raise BlobMismatch(
                    f"blob: the manifest signs {body.blob} ({body.size:,} bytes); the bytes sent hash to {digest} "
                    f"({size:,} bytes). Nothing was stored"
                )
            published = await run_in_threadpool(self._store, signed, path)
        finally:
            path.unlink(missing_ok=True)
        return _answer(published)

    def search(self, query: str, limit: int) -> list[dict[str, Any]]:
        """Latest versions whose name or description contains `query` (case-insensitive); all with no query."""
        registry, wanted, found = self.hub.registry, query.lower(), []
        for name in registry.names():
            latest = registry.latest(name)
            if latest is None:
                continue
            body = latest.body
            if wanted and wanted not in name.lower() and wanted not in body.description.lower():
                continue
            found.append({"name": name, "version": body.version, "manifest_id": str(latest.id),
                          "blob": str(body.blob), "size": body.size, "format": body.format,
                          "publisher": body.publisher.vkey, "license": body.license,
                          "description": body.description[:200]})  # fmt: skip
            if len(found) >= limit:
                break
        return found


def _answer(published: Published) -> dict[str, Any]:
    return {"manifest_id": str(published.manifest.id), "ref": published.manifest.body.ref,
            "created": published.created}  # fmt: skip


def create_router(node: Node) -> APIRouter:
    router = APIRouter(tags=["publishing"])
    publishing = Publishing(node)

    @router.post("/v1/publish", status_code=201)
    def publish(signed_manifest: dict[str, Any]) -> JSONResponse:
        """Open publishing, step 1: a publisher-signed manifest, without an admin token. The node checks the
        signature, its publish policy, name ownership (the first key to publish under `owner/` holds it), version
        and parent, and the publisher's quotas. 201: stored (the bytes were here); 200: these bytes already are a
        version of the name; 202: send the bytes to `upload`. Refusals: publisher-not-allowed, name-owned,
        version-conflict, quota-exceeded, publish-rate-limited (429), model-refused."""
        status, answer = publishing.judge(signed_manifest)
        return JSONResponse(answer, status_code=status)

    @router.put("/v1/publish/{manifest_id}/blob", status_code=201)
    async def publish_blob(manifest_id: str, request: Request) -> dict[str, Any]:
        """Open publishing, step 2: the model's bytes, streamed; stored only if they hash to the blob id the
        manifest signs (else blob-mismatch, and nothing is stored) and every rule still holds."""
        return await publishing.receive(manifest_id, request)

    @router.get("/v1/hub/models", tags=["models"])
    def hub_models(q: str = "", limit: int = 100) -> dict[str, Any]:
        """Browse this node's hub: the latest version of each model whose name or description contains `q`."""
        if len(q) > 200:
            raise InvalidInput("q: at most 200 characters")
        return {"models": publishing.search(q, max(1, min(limit, SEARCH_LIMIT)))}

    return router
