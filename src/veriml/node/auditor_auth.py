"""Authenticated auditors (issue 11): a request for a receipt's inputs, outputs and salt is signed by a node key,
and the serving node discloses them only to a registered peer, fresh, not replayed, within a rate limit.

A signed request carries four headers: the auditor's verifier key, a Unix timestamp, a fresh nonce, and an Ed25519
signature under the `veriml/audit-request/v1` domain over the canonical JSON of method, path, timestamp, nonce and
the serving node's verifier key — so a signature made for one node, path or moment is worth nothing at another.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from veriml.codec import b64decode, b64encode, canonical_json
from veriml.errors import InvalidInput, PermissionDenied, VerificationFailed
from veriml.identity import Domain, SigningKey, VerifyingKey

AUDITOR_HEADER = "x-veriml-auditor"
TIMESTAMP_HEADER = "x-veriml-timestamp"
SIGNATURE_HEADER = "x-veriml-signature"
NONCE_HEADER = "x-veriml-nonce"  # 32 hex digits, fresh per request: two requests are never signed alike
FRESHNESS = 60.0  # seconds a signed request stays valid either side of the serving node's clock
RATE = 100.0  # disclosures per second per auditor, sustained
BURST = 500  # disclosures an auditor may take at once


class RateLimited(PermissionDenied):
    """An auditor asked for more disclosures than the node allows; the same request may succeed later."""

    kind = "rate-limited"
    http_status = 429


def request_payload(method: str, path: str, timestamp: int, nonce: str, serving_node: VerifyingKey) -> bytes:
    return canonical_json(
        {"method": method, "path": path, "timestamp": timestamp, "nonce": nonce, "node": serving_node.vkey}
    )


def sign_request(key: SigningKey, method: str, path: str, serving_node: VerifyingKey,
                 now: float | None = None) -> dict[str, str]:  # fmt: skip
    """The headers that authenticate `key` as an auditor for one request to `serving_node`."""
    timestamp, nonce = int(time.time() if now is None else now), secrets.token_hex(16)
    signature = key.sign(Domain.AUDIT_REQUEST, request_payload(method, path, timestamp, nonce, serving_node))
    return {AUDITOR_HEADER: key.public.vkey, TIMESTAMP_HEADER: str(timestamp), NONCE_HEADER: nonce,
            SIGNATURE_HEADER: b64encode(signature)}  # fmt: skip


def is_signed(headers: Mapping[str, str]) -> bool:
    return any(name in headers for name in (AUDITOR_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER))


@dataclass
class _Bucket:
    tokens: float
    at: float


class AuditorGate:
    """Checks signed auditor requests for one serving node. `peers` gives the node keys registered now (the
    static peer list's, or the on-chain registry's); an unknown key is refused, never looked up on demand."""

    def __init__(self, node: VerifyingKey, peers: Callable[[], Iterable[VerifyingKey]], freshness: float = FRESHNESS,
                 rate: float = RATE, burst: int = BURST) -> None:  # fmt: skip
        self.node, self.peers = node, peers
        self.freshness, self.rate, self.burst = freshness, rate, burst
        self._seen: dict[bytes, float] = {}  # signature -> when it stops being fresh (replay guard)
        self._buckets: dict[bytes, _Bucket] = {}
        self._pruned = 0.0
        self._lock = threading.Lock()

    def authenticate(self, method: str, path: str, headers: Mapping[str, str], entries: int = 1) -> VerifyingKey:
        """The auditor's key, or PermissionDenied naming what was wrong (RateLimited over the limit). A request
        for several entries counts as that many disclosures against the rate limit."""
        try:
            key = VerifyingKey.parse(headers.get(AUDITOR_HEADER), "auditor key")
            text = headers.get(TIMESTAMP_HEADER, "")
            if not text.isdigit() or len(text) > 12:
                raise InvalidInput("auditor request: timestamp must be Unix seconds")
            nonce = headers.get(NONCE_HEADER, "")
            if len(nonce) != 32 or not all(c in "0123456789abcdef" for c in nonce):
                raise InvalidInput("auditor request: nonce must be 32 lower-case hex digits")
            signature = b64decode(headers.get(SIGNATURE_HEADER, ""), "auditor request signature")
        except InvalidInput as exc:
            raise PermissionDenied(f"auditor request: malformed ({exc})") from exc
        timestamp, now = int(text), time.time()
        if abs(now - timestamp) > self.freshness:
            raise PermissionDenied(
                f"auditor request: timestamp {timestamp} is {now - timestamp:+.0f} s from this node's clock"
                f" (at most {self.freshness:.0f} s allowed)"
            )
        if not any(key.public == peer.public for peer in self.peers()):
            raise PermissionDenied(f"auditor {key.key_id}: not a registered peer of this node")
        try:
            key.verify(Domain.AUDIT_REQUEST, request_payload(method, path, timestamp, nonce, self.node), signature)
        except VerificationFailed as exc:
            raise PermissionDenied(f"auditor request: {exc} (over {method} {path} to {self.node.key_id})") from exc
        with self._lock:
            if now - self._pruned > 1.0:
                self._seen = {s: until for s, until in self._seen.items() if until > now}
                self._pruned = now
            if self._seen.get(signature, 0) > now:
                raise PermissionDenied("auditor request: this signature was used already (replay)")
            self._seen[signature] = timestamp + self.freshness
            bucket = self._buckets.setdefault(key.public, _Bucket(float(self.burst), now))
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens < entries:
                raise RateLimited(f"auditor {key.key_id}: over {self.rate:.0f} disclosures per second; retry later")
            bucket.tokens -= entries
        return key
