"""Talking to other nodes: who they are (node info), and the few calls a node makes of its peers — manifests
and blobs for replication, add-checkpoint for witnessing. Discovery sits behind one interface so the on-chain
registry can replace the static peer list later."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpcore
import httpx

from veriml.background import BackgroundJob
from veriml.bounded_get import bounded_get, bounded_request, bounded_stream
from veriml.codec import Digest
from veriml.errors import InvalidInput, NotFound, PermissionDenied, Unavailable
from veriml.hub import SignedManifest, parse_signed_manifest
from veriml.identity import VerifyingKey
from veriml.identity.keys import COSIGNATURE_ED25519
from veriml.tlog import StaleOldSize
from veriml.zk import SignedZkDocument, parse_signed_zk_document

events = logging.getLogger("veriml.node")
# Lookups that ask every peer on a caller's behalf (a manifest id not held here): at most this many per second
# after a burst, across all callers.
LOOKUPS_PER_SECOND = 2.0
LOOKUP_BURST = 10
MAX_PEER_JSON_BYTES = 64 << 20  # the most a peer's JSON answer may hold; more is refused while it streams in
MAX_WITNESS_ANSWER_BYTES = 64 << 10  # a witness's cosignature lines (or its problem)


class EndpointPolicy:
    """Which endpoints that others registered (on chain) a node may fetch: http(s) URLs, without credentials,
    whose host resolves only to public addresses, or to networks the node's config allows. Private, loopback,
    link-local (cloud metadata at 169.254.169.254 included), shared, multicast and reserved addresses are
    refused. The address is checked when connecting, on the very address connected to, so a name that
    resolves elsewhere later (DNS rebinding) is caught too."""

    def __init__(self, allowed_networks: tuple[str, ...] = ()) -> None:
        self.allowed = tuple(ipaddress.ip_network(network, strict=False) for network in allowed_networks)

    def check_url(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - a malformed port raises here
        except ValueError as exc:
            raise PermissionDenied(f"endpoint {url!r}: not a URL ({exc})") from exc
        if parts.scheme not in ("http", "https") or not host:
            raise PermissionDenied(f"endpoint {url!r}: only http(s) URLs with a host are fetched")
        if parts.username is not None or parts.password is not None:
            raise PermissionDenied(f"endpoint {url!r}: URLs with credentials are not fetched")
        with contextlib.suppress(ValueError):  # a name: its addresses are checked when connecting
            self.check_address(host, url)

    def check_address(self, address: str, what: str) -> None:
        """PermissionDenied unless the address is public or in an allowed network; ValueError if not an IP."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allowed):
            return
        if not ip.is_global or ip.is_multicast:
            raise PermissionDenied(
                f"endpoint {what}: {ip} is not a public address; not fetched (a node's config may allow its "
                "network with allow_endpoint_networks)"
            )

    def transport(self) -> httpx.HTTPTransport:
        """An httpx transport that connects only to addresses this policy allows (no proxies, no redirects)."""
        transport = httpx.HTTPTransport()
        pool = transport._pool  # httpcore.ConnectionPool: the backend that opens sockets is its to choose
        if not hasattr(pool, "_network_backend"):
            raise RuntimeError("httpcore changed: the guarded peer transport needs ConnectionPool._network_backend")
        pool._network_backend = _GuardedBackend(self)
        return transport


class _GuardedBackend(httpcore.SyncBackend):
    def __init__(self, policy: EndpointPolicy) -> None:
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:  # fmt: skip
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        for address in addresses:  # every address the name has must be allowed, not just the first
            self.policy.check_address(address, f"{host}:{port}")
        last: Exception = httpcore.ConnectError(f"{host}: no address")
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last


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

    def __init__(self, url: str, timeout: float = 10.0, policy: EndpointPolicy | None = None) -> None:
        """With a `policy` (peers found on chain), the URL and every address connected to are checked first."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        if policy is None:
            self._http = httpx.Client(base_url=self.url, timeout=timeout)
        else:
            policy.check_url(self.url)
            self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=policy.transport(),
                                      trust_env=False, follow_redirects=False)  # fmt: skip

    def close(self) -> None:
        self._http.close()

    def _check_status(self, path: str, status: int) -> None:
        if status == 404:
            raise NotFound(f"peer {self.url}: {path} not found")
        if status >= 300:  # redirects are not followed: a peer answers at its own URL
            raise Unavailable(f"peer {self.url}: {path} answered {status}")

    def _json(self, path: str) -> Any:
        """A JSON answer of at most MAX_PEER_JSON_BYTES, read within a few timeouts however slowly it comes (its
        headers or its body dripped a byte at a time included)."""
        try:
            status, body = bounded_get(self._http, self.url + path, MAX_PEER_JSON_BYTES, 3 * self.timeout)
        except httpx.HTTPError as exc:
            raise Unavailable(f"peer {self.url}: {path}: {type(exc).__name__}") from exc
        self._check_status(path, status)
        if body is None:
            raise Unavailable(f"peer {self.url}: {path} answered more than {MAX_PEER_JSON_BYTES} bytes")
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
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

    def fetch_blob(self, blob: Digest, consume: Callable[[Iterator[bytes]], None]) -> None:
        """Hand the blob's bytes to `consume` as they arrive, in a worker thread, while the peer keeps up the rate
        `bounded_stream` asks of a sender (a peer dripping its bytes or its headers would otherwise hold a replication
        a caller waits for, or an auditor's re-execution, for as long as it liked); a slower peer gets Unavailable
        here, and `consume` an error at its next chunk (so it lets go of what it wrote there)."""

        def checked(status: int, chunks: Iterator[bytes]) -> None:
            if status == 404:
                raise NotFound(f"peer {self.url}: blob {blob} not held")
            if status >= 300:
                raise Unavailable(f"peer {self.url}: blob {blob} answered {status}")
            consume(chunks)

        try:
            bounded_stream(self._http, f"{self.url}/v1/blobs/{blob}", checked)
        except httpx.HTTPError as exc:
            raise Unavailable(f"peer {self.url}: blob {blob}: {exc}") from exc

    def add_checkpoint(self, body: bytes) -> bytes:
        """C2SP tlog-witness add-checkpoint; a 409 with the witness's size becomes StaleOldSize. The answer is read
        bounded (at most 64 KiB, within 3 timeouts however it drips): checkpoints are cosigned one witness after
        another, so one slow witness would hold up the rest."""
        try:
            status, headers, answer = bounded_request(
                self._http, "POST", f"{self.url}/add-checkpoint", MAX_WITNESS_ANSWER_BYTES, 3 * self.timeout,
                content=body,
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"witness {self.url}: {type(exc).__name__}") from exc
        if answer is None:
            raise Unavailable(f"witness {self.url}: add-checkpoint answered more than {MAX_WITNESS_ANSWER_BYTES} bytes")
        text = answer.decode("utf-8", "replace")
        if status == 409 and headers.get("content-type", "").startswith("text/x.tlog.size"):
            size = text.strip()
            if not size.isdigit() or len(size) > 18:
                raise Unavailable(f"witness {self.url}: 409 with a malformed size")
            raise StaleOldSize(f"witness {self.url}: stale old size", int(size))
        if status != 200:
            try:
                problem = json.loads(answer)
                detail = problem.get("detail", "") if isinstance(problem, dict) else text[:500]
            except (ValueError, RecursionError):
                detail = text[:500]
            raise Unavailable(f"witness {self.url}: add-checkpoint answered {status}: {detail}")
        return answer


class Discovery(Protocol):
    def peers(self) -> list[PeerInfo]: ...

    def unanswered(self) -> dict[str, str]:
        """Peers whose node info the latest refresh could not get (url -> why): what they hold is not known."""
        ...

    def client(self, url: str) -> PeerClient: ...


class RefreshGate:
    """Peer refreshes asked for on a caller's behalf (an unknown model name or log origin): one at a time, and at
    most one per `interval` seconds, shared. A caller waits for the first refresh that starts after it arrived
    (at most `interval` plus `max_wait` seconds: a slow peer cannot hold callers longer), then uses what is known.
    So unknown names sent at any rate cost the peers at most one round of /v1/info (and, on chain, one registry
    read) per interval, and a name published at a peer a moment ago is still found."""

    def __init__(self, refresh: Callable[[], None], interval: float, max_wait: float = 5.0) -> None:
        self._refresh = refresh
        self.interval, self.max_wait = interval, max_wait
        self._changed = threading.Condition()
        self._running = False
        self._started = float("-inf")  # when the last finished refresh started
        self._finished = float("-inf")
        self.count = 0  # refreshes made

    def __call__(self) -> bool:
        """Wait for a refresh that started after this call (running one if it is this call's turn); True if one
        did (this call's or another's), False if this call gave up waiting and what is known may be stale."""
        arrived = time.monotonic()
        deadline = arrived + self.interval + self.max_wait
        with self._changed:
            while True:
                now = time.monotonic()
                if self._started >= arrived:
                    return True  # a refresh that started after we arrived has finished: its result is ours
                if not self._running and now - self._finished >= self.interval:
                    break
                if now >= deadline:
                    return False
                wait = deadline - now if self._running else min(deadline, self._finished + self.interval) - now
                self._changed.wait(max(wait, 0.001))
            self._running = True
        started = time.monotonic()
        try:
            self._refresh()
        finally:
            with self._changed:
                self._running = False
                self._started, self._finished = started, time.monotonic()
                self.count += 1
                self._changed.notify_all()
        return True


class RateLimit:
    """A token bucket: `burst` at once, then `per_second`. Used for lookups that ask every peer (a manifest id
    that is not held here), which no cache can absorb when each request names another id."""

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second, self.burst = per_second, burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class NegativeCache:
    """Lookups that found nothing, remembered for `ttl` seconds (at most `size` of them, oldest dropped)."""

    def __init__(self, ttl: float, size: int = 4096) -> None:
        self.ttl, self.size = ttl, size
        self._found: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._found.get(key)
            if entry is None:
                return None
            if time.monotonic() - entry[0] >= self.ttl:
                del self._found[key]
                return None
            return entry[1]

    def add(self, key: str, why: str) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._found[key] = (time.monotonic(), why)
            self._found.move_to_end(key)
            while len(self._found) > self.size:
                self._found.popitem(last=False)


class StaticPeers(BackgroundJob):
    """The peer list from the node's config; node info is fetched, and refreshed, in the background."""

    def __init__(self, urls: tuple[str, ...], timeout: float = 10.0, refresh: float = 2.0) -> None:
        self.urls = urls
        self._clients = {url: PeerClient(url, timeout) for url in urls}
        self._infos: dict[str, PeerInfo] = {}
        self._unanswered: dict[str, str] = {}
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
                with self._lock:
                    self._unanswered[url] = str(exc) or type(exc).__name__
                continue
            with self._lock:
                self._infos[url] = info
                self._unanswered.pop(url, None)

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

    def unanswered(self) -> dict[str, str]:
        with self._lock:
            return dict(self._unanswered)

    def client(self, url: str) -> PeerClient:
        return self._clients[url]
