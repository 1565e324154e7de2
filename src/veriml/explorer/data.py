"""What the explorer's pages show, gathered from what the node's public API serves and nothing more.

Each function reads through the same calls the public endpoints make (`Node.info`, the registry behind
/v1/models, `Disclosure.entry` behind /v1/log/entries/{i} called with no credentials, the log behind the C2SP
tiles, the auditor's store behind /v1/evidence), so a page never shows a salt, an input or an output that an
anonymous caller of the API could not read. Every read is bounded: pages, never scans of the log.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from veriml.codec import Digest, b64encode
from veriml.errors import InvalidInput, NotFound, VerimlError
from veriml.hub import SignedManifest
from veriml.identity import VerifyingKey
from veriml.receipts import ReceiptLeaf, parse_signed_receipt
from veriml.tlog import SignedCheckpoint, TlogProof
from veriml.tlog.checkpoint import verify_cosignature
from veriml.tlog.merkle import MAX_SIZE

PAGE_SIZE = 25
CHECKPOINTS_SHOWN = 10
MODELS_PER_PAGE = 50
CHAIN_CACHE_SECONDS = 2.0
AUDIT_COUNTED = 100


def page_bounds(size: int, page: int, per_page: int) -> tuple[int, int, int]:
    """Entries newest first: page 0 holds the last `per_page` indexes. Returns (first, end, pages)."""
    pages = max(1, -(-size // per_page))
    if not 0 <= page < pages:
        raise NotFound(f"page {page}: the log has {pages} page(s) of {per_page} entries")
    end = size - page * per_page
    return max(0, end - per_page), end, pages


@dataclass
class CosignatureView:
    name: str
    key_id: str
    timestamp: int | None
    status: str  # "verified" (a known peer witness key and a valid cosignature), "invalid", "unknown key", "log"

    @property
    def when(self) -> str:
        if self.timestamp is None:
            return ""
        return datetime.fromtimestamp(self.timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class CheckpointView:
    origin: str
    size: int
    root: str
    text: str
    cosignatures: list[CosignatureView] = field(default_factory=list)


def _witness_keys(node: Any) -> dict[tuple[str, bytes], VerifyingKey]:
    """The cosigner keys this node knows: its peers' witness keys (what a reader would trust is theirs to say)."""
    return {(p.witness.name, p.witness.key_hash): p.witness for p in node.discovery.peers()}


def checkpoint_view(node: Any, signed: SignedCheckpoint) -> CheckpointView:
    checkpoint = signed.checkpoint
    known = _witness_keys(node)
    log_key = node.key.public
    views = []
    for signature in signed.note.signatures:
        key_id = f"{signature.name}+{signature.key_id.hex()}"
        if signature.matches(log_key):
            views.append(CosignatureView(signature.name, key_id, None, "log signature"))
            continue
        witness = known.get((signature.name, signature.key_id))
        if witness is None:
            views.append(CosignatureView(signature.name, key_id, None, "unknown key"))
            continue
        try:
            timestamp = verify_cosignature(checkpoint, signature, witness)
            views.append(CosignatureView(signature.name, key_id, timestamp, "verified"))
        except VerimlError:
            views.append(CosignatureView(signature.name, key_id, None, "invalid"))
    return CheckpointView(checkpoint.origin, checkpoint.size, b64encode(checkpoint.root), signed.to_text(), views)


def recent_checkpoints(node: Any, count: int = CHECKPOINTS_SHOWN) -> list[CheckpointView]:
    """The latest signed checkpoints (each one is public: every tlog-proof the node serves carries one)."""
    log = node.service.log
    rows = log.reader.db.execute("SELECT note FROM checkpoints ORDER BY size DESC LIMIT ?", (count,)).fetchall()
    return [checkpoint_view(node, SignedCheckpoint.parse(row[0], "stored checkpoint")) for row in rows]


# ---- the network ---------------------------------------------------------------------------------------------


class ChainView:
    """The chain registry's view of the nodes (stake, exit, anchors), cached for a few seconds: one page view
    must not cost a chain round trip per node."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = 0.0
        self._value: dict[str, Any] | None = None

    def get(self, node: Any) -> dict[str, Any] | None:
        membership = getattr(node, "membership", None)
        if membership is None:
            return None
        with self._lock:
            if self._value is not None and time.monotonic() - self._at < CHAIN_CACHE_SECONDS:
                return self._value
        try:
            nodes = membership.contracts.nodes()
            value: dict[str, Any] = {
                "account": membership.account.address,
                "nodes": [_chain_node(n) for n in nodes],
                "error": None,
            }
        except VerimlError as exc:
            value = {"account": membership.account.address, "nodes": [], "error": str(exc)}
        with self._lock:
            self._value, self._at = value, time.monotonic()
        return value

    def anchor_of(self, node: Any) -> dict[str, Any] | None:
        value = self.get(node)
        if value is None:
            return None
        own = node.key.public.name
        return next((n for n in value["nodes"] if n["origin"] == own), {"error": value["error"]})


def _count(rows: list[Any]) -> str:
    return f"{AUDIT_COUNTED}+" if len(rows) > AUDIT_COUNTED else str(len(rows))


def _chain_node(n: Any) -> dict[str, Any]:
    return {
        "account": n.account, "origin": n.origin, "endpoint": n.endpoint, "stake": n.stake, "exit_at": n.exit_at,
        "anchored_size": n.anchored_size, "anchored_root": b64encode(n.anchored_root), "anchored_at": n.anchored_at,
        "slashed": n.slashed, "withdrawn": n.withdrawn, "stale": n.stale, "active": n.active,
    }  # fmt: skip


def network(node: Any, chain: ChainView) -> dict[str, Any]:
    info = node.info()
    peers = {p.url: p for p in node.discovery.peers()}
    configured = list(getattr(node.discovery, "urls", ())) or list(peers)
    rows = []
    for url in configured:
        peer = peers.get(url)
        rows.append({
            "url": url,
            "reached": peer is not None,
            "node_id": None if peer is None else peer.node.key_id,
            "origin": None if peer is None else peer.node.name,
            "models": 0 if peer is None else len(peer.models),
            "audited": None if peer is None else info["audited"].get(peer.node.name),
            "refused_bytes": node.bad_peers.get(url),
        })  # fmt: skip
    store = node.auditor.store
    audit = {  # counted up to a bound: a page view never reads a whole store
        "disagreements": _count(store.attestations("disagree", limit=AUDIT_COUNTED + 1)),
        "attestations": _count(store.attestations(limit=AUDIT_COUNTED + 1)),
        "refusals": _count(store.refusals(limit=AUDIT_COUNTED + 1)),
    }
    latest = node.service.log.latest_checkpoint()
    return {
        "info": info,
        "peers": rows,
        "audit": audit,
        "checkpoint": None if latest is None else checkpoint_view(node, latest),
        "chain": chain.get(node),
    }


# ---- models ----------------------------------------------------------------------------------------------------


def _hosts(node: Any, name: str) -> list[str]:
    own = node.config.public_url or f"http://{node.config.host}:{node.config.port}"
    return [own, *(p.url for p in node.discovery.peers() if name in p.models)]


def models(node: Any, query: str, page: int) -> dict[str, Any]:
    registry = node.service.hub.registry
    query = query.strip()[:100]
    names = [n for n in registry.names() if query.lower() in n.lower()] if query else registry.names()
    pages = max(1, -(-len(names) // MODELS_PER_PAGE))
    if not 0 <= page < pages:
        raise NotFound(f"page {page}: {len(names)} model(s), {pages} page(s)")
    rows = []
    for name in names[page * MODELS_PER_PAGE : (page + 1) * MODELS_PER_PAGE]:
        latest = registry.get(name).body
        rows.append({"name": name, "version": latest.version, "publisher": latest.publisher.key_id,
                     "format": latest.format, "license": latest.license, "policy": latest.policy.describe(),
                     "size": latest.size, "description": latest.description,
                     "hosts": len(_hosts(node, name))})  # fmt: skip
    return {"models": rows, "query": query, "page": page, "pages": pages, "total": len(names)}


def model(node: Any, name: str) -> dict[str, Any]:
    registry = node.service.hub.registry
    versions = registry.versions(name)
    if not versions:
        raise NotFound(f"model {name}: not held here")
    return {"name": name, "versions": [manifest_row(m) for m in reversed(versions)], "hosts": _hosts(node, name)}


def manifest_row(manifest: SignedManifest) -> dict[str, Any]:
    body = manifest.body
    return {"id": str(manifest.id), "version": body.version, "created": body.created, "format": body.format,
            "size": body.size, "license": body.license, "policy": body.policy.describe(),
            "description": body.description}  # fmt: skip


def version(node: Any, name: str, number: int) -> dict[str, Any]:
    manifest = node.service.hub.registry.get(name, number)
    body = manifest.body
    try:
        manifest.check_signature()
        signature = f"valid: signed by publisher {body.publisher.key_id}"
    except VerimlError as exc:
        signature = f"INVALID: {exc}"
    try:
        zk = node.service.zk_document(manifest).to_json()
    except VerimlError:
        zk = None
    return {
        "manifest": manifest,
        "body": body,
        "id": str(manifest.id),
        "json": json.dumps(manifest.to_json(), indent=2, ensure_ascii=False),
        "signature": signature,
        "signature_b64": b64encode(manifest.signature),
        "zk": None if zk is None else json.dumps(zk, indent=2, ensure_ascii=False),
        "hosts": _hosts(node, name),
        "inputs": [s.describe() for s in body.inputs],
        "input_specs": body.inputs,
        "output_specs": body.outputs,
    }


# ---- the log -----------------------------------------------------------------------------------------------------


def _stored_receipt(node: Any, index: int) -> dict[str, Any] | None:
    """The signed receipt kept beside entry `index` (only the receipt: the salt and data beside it are not read
    out of this function)."""
    try:
        stored = json.loads(node.service.log.entry(index)[1])
    except (NotFound, ValueError):
        return None
    receipt = stored.get("receipt") if isinstance(stored, dict) else None
    return receipt if isinstance(receipt, dict) else None


def entries(node: Any, page: int) -> dict[str, Any]:
    log = node.service.log
    size = log.sequenced_size
    latest = log.latest_checkpoint()
    covered = 0 if latest is None else latest.checkpoint.size
    if size == 0:
        return {"size": 0, "covered": covered, "rows": [], "page": 0, "pages": 1}
    first, end, pages = page_bounds(size, page, PAGE_SIZE)
    names: dict[str, str] = {}
    rows = []
    for index in range(end - 1, first - 1, -1):
        receipt = _stored_receipt(node, index) or {}
        body = receipt.get("body", {})
        manifest = str(body.get("manifest", ""))
        if manifest and manifest not in names:
            try:
                names[manifest] = node.service.hub.registry.by_id(Digest.parse(manifest)).body.ref
            except VerimlError:
                names[manifest] = ""
        rows.append({"index": index, "model": names.get(manifest, ""), "manifest": manifest,
                     "timestamp": body.get("timestamp", ""), "mode": body.get("mode", ""),
                     "privacy": body.get("privacy", ""), "covered": index < covered})  # fmt: skip
    return {"size": size, "covered": covered, "rows": rows, "page": page, "pages": pages}


def _hashes(hashes: list[bytes]) -> list[str]:
    return [b64encode(h) for h in hashes]


def inclusion(node: Any, index: int, size: int | None) -> dict[str, Any]:
    log = node.service.log
    if size is None:
        latest = log.latest_checkpoint()
        size = 0 if latest is None else latest.checkpoint.size
    if not 0 <= index < size <= MAX_SIZE:
        raise InvalidInput(f"inclusion proof: index {index} must be below the tree size {size}")
    proof = log.inclusion_proof(index, size)
    leaf, _ = log.entry(index)
    return {"index": index, "size": size, "leaf": b64encode(leaf), "root": b64encode(log.root(size)),
            "hashes": _hashes(proof)}  # fmt: skip


def consistency(node: Any, old: int, new: int) -> dict[str, Any]:
    log = node.service.log
    if not 0 < old <= new <= MAX_SIZE:
        raise InvalidInput(f"consistency proof: sizes must satisfy 0 < old ({old}) <= new ({new})")
    proof = log.consistency_proof(old, new)
    return {"old": old, "new": new, "old_root": b64encode(log.root(old)), "new_root": b64encode(log.root(new)),
            "hashes": _hashes(proof)}  # fmt: skip


def evidence(node: Any, limit: int = 50) -> dict[str, Any]:
    store = node.auditor.store
    disagreements = []
    for item in store.attestations("disagree", limit=limit):
        body = item["attestation"].get("body", {})
        disagreements.append({"subject": item["subject"], "log_index": item["log_index"],
                              "detail": body.get("detail", ""), "timestamp": body.get("timestamp", ""),
                              "runtime_class": body.get("runtime_class", ""), "receipt": body.get("receipt", ""),
                              "json": json.dumps(item, indent=2, ensure_ascii=False)})  # fmt: skip
    return {"disagreements": disagreements, "refusals": store.refusals(limit=limit)}


# ---- one result ---------------------------------------------------------------------------------------------------


def result(node: Any, index: int, chain: ChainView) -> dict[str, Any]:
    """A receipt's page: exactly what GET /v1/log/entries/{index} answers an anonymous caller, explained."""
    entry = node.auditor.disclosure.entry(index, "GET", f"/v1/log/entries/{index}", {})
    signed = parse_signed_receipt(entry["receipt"])
    body = signed.body
    try:
        signed.check_signature()
        signature = f"valid: signed by node {body.node.key_id}"
    except VerimlError as exc:
        signature = f"INVALID: {exc}"
    try:
        manifest: SignedManifest | None = node.service.hub.registry.by_id(body.manifest)
    except VerimlError:
        manifest = None
    proof_view = None
    if entry["proof"] is not None:
        proof = TlogProof.parse(entry["proof"])
        leaf = ReceiptLeaf.of(signed).to_bytes()
        try:
            proof.verify(leaf, _log_policy(node))
            included = "verified against the node's signed checkpoint"
        except VerimlError as exc:
            included = f"INVALID: {exc}"
        proof_view = {"index": proof.index, "hashes": _hashes(list(proof.hashes)), "included": included,
                      "checkpoint": checkpoint_view(node, proof.checkpoint), "text": entry["proof"]}  # fmt: skip
    try:
        zk = node.proofs.status(signed.id)
        zk_status = zk["status"] + (f": {zk['error']}" if zk.get("error") else "")
    except VerimlError:
        zk_status = "no proof was requested at this node"
    anchor = chain.anchor_of(node)
    if anchor is not None and "anchored_size" in anchor:
        anchor = {**anchor, "covers": index < anchor["anchored_size"]}
    runtime = body.runtime
    return {
        "index": index,
        "receipt_id": str(signed.id),
        "body": body,
        "node_id": body.node.key_id,
        "own_node": body.node.public == node.key.public.public,
        "signature": signature,
        "manifest": manifest,
        "runtime_class": runtime.runtime_class,
        "runtime": json.dumps(runtime.fields, indent=2, ensure_ascii=False),
        "receipt_json": json.dumps(entry["receipt"], indent=2, ensure_ascii=False),
        "data": entry["data"],
        "inputs": _tensor_shapes(entry.get("inputs")),
        "outputs": _tensor_shapes(entry.get("outputs")),
        "proof": proof_view,
        "zk_status": zk_status,
        "anchor": anchor,
    }


def _tensor_shapes(tensors: Any) -> list[str] | None:
    if not isinstance(tensors, dict):
        return None
    return [f"{name}: {t.get('dtype')}{t.get('shape')}" for name, t in tensors.items() if isinstance(t, dict)]


def _log_policy(node: Any) -> Any:
    from veriml.tlog import TrustPolicy

    return TrustPolicy(node.key.public)
