"""A node: the service (hub, engine, log) plus what makes it part of a network — a witness for its peers' logs,
checkpoints published on a cadence with the peers' cosignatures, and replication of models from peers."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool

from veriml.codec import Digest
from veriml.errors import InvalidInput, NotFound, RunTooLong, Unavailable, VerificationFailed, VerimlError
from veriml.hub import ModelRef, SignedManifest
from veriml.node.audit import MIN_RETENTION, Auditor
from veriml.node.config import NodeConfig
from veriml.node.peers import (
    LOOKUP_BURST,
    LOOKUPS_PER_SECOND,
    Discovery,
    NegativeCache,
    PeerInfo,
    RateLimit,
    RefreshGate,
    StaticPeers,
)
from veriml.node.proofs import ProofJobs
from veriml.receipts import DEFAULT_PRIVACY, Bundle
from veriml.runtime import RuntimeSettings
from veriml.service import Home, Service
from veriml.tlog import CheckpointPublisher, Witness

events = logging.getLogger("veriml.node")
INLINE_MODEL_BYTES = 4 << 20  # models up to this size run on the event loop; their inference takes microseconds
# A run on the event loop stops after this long and runs again in a worker thread, under max_run_seconds; its model
# then runs in worker threads for INLINE_PAUSE seconds (as after a run that took this long: the watchdog can stop a
# run only between two operators). Models whose work may follow a request's values never run there. A run counts as
# heavy only if it also used INLINE_HEAVY_CPU of the loop thread's CPU (a hundred times what a model that belongs
# there takes): one that took long on the clock without it was descheduled (a busy machine), and pausing its model
# would send a microsecond run through worker threads. A heavy run on a busy machine still gets that much.
INLINE_RUN_SECONDS = 0.1
INLINE_HEAVY_CPU = 0.01
INLINE_PAUSE = 60.0
SILENT_PEERS_NAMED = 3  # peers named in a 503 for a name that peers which did not answer may hold (the rest counted)


class Node:
    def __init__(self, config: NodeConfig, discovery: Discovery | None = None) -> None:
        self.config = config
        self.home = Home(config.home)
        settings = RuntimeSettings(max_input_bytes=config.max_input_bytes, llm_max_sequences=config.llm_max_sequences,
                                   max_run_seconds=config.max_run_seconds)  # fmt: skip
        self.service = Service(self.home, settings)
        self.key = self.service.node_key
        self._commit_scheduled = False  # a log commit is queued on the event loop
        self._inline_paused: dict[Digest, float] = {}  # blob -> until when its runs keep off the event loop
        self._fetching: dict[Digest, threading.Lock] = {}  # blob -> held while it is fetched from peers
        self._threaded_runs = asyncio.Semaphore(config.max_threaded_runs)  # waited for on the loop, holding no thread
        self._fetching_lock = threading.Lock()
        self.witness = Witness(self.home.root / "witness" / "witness.sqlite", self.key)
        self.membership: Any = None
        if discovery is None and config.chain_rpc:
            from veriml.chain.membership import ChainMembership  # web3 is loaded only for nodes on a chain

            self.membership = ChainMembership(config, self.key, self.service.log)
            discovery = self.membership.discovery
        self.discovery = discovery or StaticPeers(config.peers, config.peer_timeout)
        self.publisher = CheckpointPublisher(self.service.log, config.checkpoint_interval, self._witnesses)
        self.auditor = Auditor(self, config.audit_fraction, config.audit_interval)
        if config.audit_retention < MIN_RETENTION:
            # Allowed (tests shorten it), but peers hold every node to a day: data deleted sooner is a refusal.
            events.warning(
                "audit_retention %.0f s is under the %.0f s auditors hold every node to: auditable data "
                "deleted before then is recorded as refused",
                config.audit_retention,
                MIN_RETENTION,
            )
        self.disputes: Any = None
        if self.membership is not None and config.disputes and self.membership.contracts.deployment.disputes:
            from veriml.node.disputes import DisputeParticipant

            self.disputes = DisputeParticipant(self, self.membership.contracts, self.membership.account,
                                               config.dispute_interval)  # fmt: skip
            self.auditor.on_disagreement = self.disputes.on_disagreement
        self.proofs = ProofJobs(self.home.root / "proofs" / "jobs.sqlite", self.service, config.provers,
                                config.max_proof_jobs_queued, config.proof_jobs_kept)  # fmt: skip
        # Work done at peers on a caller's behalf is bounded: refreshes gated, id lookups rate-limited and
        # their misses remembered (docs/limits.md).
        self._refresh_gate = RefreshGate(self._refresh_now, config.peer_refresh_interval)
        self._lookups = RateLimit(LOOKUPS_PER_SECOND, LOOKUP_BURST)
        self._unknown = NegativeCache(config.peer_negative_ttl)
        self.bad_peers: dict[str, str] = {}  # peer url -> why it was last refused (wrong bytes, say)
        # Blobs held here and checked runnable (content-addressed: for good) -> whether they may run on the event loop:
        # small, and their work follows their inputs' shapes only (hub.value_sized).
        self._runnable: dict[Digest, bool] = {}

    def start(self) -> Node:
        if isinstance(self.discovery, StaticPeers):
            self.discovery.start()
        if self.membership is not None:
            self.membership.start()  # registers, then starts chain discovery and anchoring
        self.publisher.start()
        self.auditor.start()
        if self.disputes is not None:
            self.disputes.start()
        self.proofs.start()
        return self

    def stop(self) -> None:
        self.proofs.stop()
        if self.disputes is not None:
            self.disputes.stop()
        self.auditor.stop()
        self.publisher.stop()
        if self.membership is not None:
            self.membership.stop()
        if isinstance(self.discovery, StaticPeers):
            self.discovery.stop()
        self.witness.close()
        self.service.close()

    # ---- identity and witnessing ----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        log = self.service.log
        latest = log.latest_checkpoint()
        return {
            "node": self.key.public.vkey,
            "node_id": self.key.key_id,
            "witness": self.key.cosigner_public.vkey,
            "log_origin": log.origin,
            "log_size": log.sequenced_size,
            "checkpoint_size": None if latest is None else latest.checkpoint.size,
            "models": self.service.hub.registry.names(),
            "peers": [peer.url for peer in self.discovery.peers()],
            "runtime_class": self.service.engine.runtime_class,
            "llm": self._llm_info(),
            "audit": self.auditor.public_info(),
            "audited": {p.node.name: self.auditor.audited_size(p.node) for p in self.discovery.peers()},
        }

    def _llm_info(self) -> dict[str, Any] | None:
        """The language-model engine's runtime class and this node's generation limits; None if not installed."""
        try:
            runtime_class = self.service.llm.runtime_class
        except Unavailable:
            return None
        return {"runtime_class": runtime_class, "max_tokens": self.config.llm_max_tokens,
                "n_ctx": self.config.llm_n_ctx, "n_batch": self.config.llm_n_batch}  # fmt: skip

    def follow_peers(self) -> None:
        """Witness the logs of the peers known now."""
        for peer in self.discovery.peers():
            self.witness.follow(peer.node.name, peer.node)

    def add_checkpoint(self, body: bytes) -> bytes:
        """C2SP tlog-witness for the peers' logs; a log not yet known is looked up among the peers once."""
        self.follow_peers()
        try:
            return self.witness.add_checkpoint(body)
        except NotFound:
            self._refresh_peers()
            self.follow_peers()
            return self.witness.add_checkpoint(body)

    def _refresh_peers(self) -> bool:
        """Refresh what the peers hold (gated); False if no refresh finished in time and that may be stale."""
        if isinstance(self.discovery, StaticPeers) and not self.discovery.urls:
            return True  # no peers configured: a refresh could find nothing, so nobody waits for one
        return self._refresh_gate()

    def _refresh_now(self) -> None:
        refresh = getattr(self.discovery, "refresh", None)  # StaticPeers and ChainPeers can refresh on demand
        if refresh is not None:
            refresh()

    def _witnesses(self) -> list[tuple[Any, Any]]:
        return [(peer.witness, self.discovery.client(peer.url).add_checkpoint) for peer in self.discovery.peers()]

    # ---- replication -----------------------------------------------------------------------------------

    def resolve(self, ref: str) -> SignedManifest:
        """The manifest for a reference, taken in from a peer (with all its earlier versions) if not held here."""
        try:
            return self.service.resolve(ref)
        except NotFound:
            pass
        parsed = ModelRef.parse(ref)
        name = parsed.name or self._name_of(parsed.manifest_id)
        reasons = []
        fresh = self._refresh_peers()  # what peers hold changes; asking is cheap next to a replication
        # Only peers that list the name are asked: a name no peer holds costs the peers no request.
        for peer in (p for p in self._peers_for(name, refresh=False) if name in p.models):
            try:
                self.service.hub.add_replica(self.discovery.client(peer.url).manifest_chain(name))
                return self.service.resolve(ref)
            except VerimlError as exc:
                reasons.append(f"{peer.url}: {exc}")
        if reasons:
            raise NotFound(f"model {ref}: not held here or by any reachable peer ({'; '.join(reasons)})")
        # Nobody lists it. That is an answer only if every peer said what it holds, just now: a busy peer's
        # silence is not its absence, and a caller told 404 would not try again.
        silent = self.discovery.unanswered()
        if not fresh or silent:
            named = [f"{url}: {reason[:200]}" for url, reason in list(silent.items())[:SILENT_PEERS_NAMED]]
            if len(silent) > len(named):
                named.append(f"{len(silent) - len(named)} more")
            why = "; ".join(named) or "no refresh finished in time"
            raise Unavailable(f"model {ref}: not held here, and not every peer said what it holds ({why}); try again")
        raise NotFound(f"model {ref}: not held here, and no peer lists it")

    def _name_of(self, manifest_id: Digest | None) -> str:
        """The model name of a manifest id, from the first peer that holds the manifest. This asks every peer, so
        it is rate-limited, and an id no peer holds is remembered for a while."""
        key = f"manifest {manifest_id}"
        known = self._unknown.get(key)
        if known is not None:
            raise NotFound(known)
        if not self._lookups.take():
            raise Unavailable(f"{key}: not held here, and lookups at peers are rate-limited; retry in a second")
        for peer in self._peers_for(""):
            try:
                return self.discovery.client(peer.url).manifest(manifest_id).verified().body.name  # type: ignore[arg-type]
            except VerimlError:
                continue
        why = f"{key}: not held here or by any reachable peer"
        self._unknown.add(key, why)
        raise NotFound(why)

    def ensure_blob(self, manifest: SignedManifest) -> None:
        """Fetch the manifest's blob from a peer if it is not here; bytes that hash wrong are refused. Callers
        asking for one blob at once wait for one fetch (a peer that holds a model alone is not asked N times)."""
        hub, blob = self.service.hub, manifest.body.blob
        hub.refused(manifest)  # refused before: no fetch again
        if hub.blobs.has(blob):
            hub.check_model_blob(manifest)
            return
        with self._fetching_lock:
            fetching = self._fetching.setdefault(blob, threading.Lock())
        try:
            with fetching:
                if hub.blobs.has(blob):  # fetched while this caller waited
                    hub.check_model_blob(manifest)
                    return
                self._fetch_from_peers(manifest)
        finally:
            with self._fetching_lock:
                if not fetching.locked():
                    self._fetching.pop(blob, None)

    def _fetch_from_peers(self, manifest: SignedManifest) -> None:
        hub, blob = self.service.hub, manifest.body.blob
        reasons = []
        for peer in self._peers_for(manifest.body.name):
            try:
                self._fetch_blob(peer, blob, manifest.body.size)
                hub.check_model_blob(manifest)  # a model whose honest runs differ is not kept or run
                return
            except InvalidInput:
                raise
            except VerificationFailed as exc:
                self.bad_peers[peer.url] = str(exc)
                events.warning("peer %s served wrong bytes for %s: %s", peer.url, blob, exc)
                reasons.append(f"{peer.url}: {exc}")
            except VerimlError as exc:
                reasons.append(f"{peer.url}: {exc}")
        raise Unavailable(f"blob {blob}: no peer served it ({'; '.join(reasons) or 'no peers'})")

    def ensure_zk(self, manifest: SignedManifest) -> None:
        """Take in the model's publisher-signed ZK document and its artifacts from a peer if not held here.
        The document's signature and publisher are checked, and every artifact must hash to its id."""
        try:
            self.service.zk_document(manifest)
            return
        except NotFound:
            pass
        reasons = []
        for peer in self._peers_for(manifest.body.name):
            try:
                document = self.discovery.client(peer.url).zk_document(manifest.id).verified()
                for blob in document.body.artifacts.values():
                    if not self.service.hub.blobs.has(blob):
                        self._fetch_blob(peer, blob, self.config.max_blob_bytes)
                self.service.add_zk_document(document)
                events.info("replicated zk document for %s from %s", manifest.body.ref, peer.url)
                return
            except VerimlError as exc:
                reasons.append(f"{peer.url}: {exc}")
        raise NotFound(
            f"model {manifest.body.ref}: no zero-knowledge circuit here or at any reachable peer"
            f" ({'; '.join(reasons) or 'no peers'}); the publisher runs `veriml zk setup` first"
        )

    def _fetch_blob(self, peer: PeerInfo, blob: Digest, size: int) -> None:
        def store(chunks: Iterator[bytes]) -> None:
            with self.service.hub.blobs.writer(expected=blob) as writer:
                for chunk in chunks:
                    writer.write(chunk)
                    if writer.size > size:
                        raise VerificationFailed(f"peer {peer.url} sent more than the {size} bytes of {blob}")
                writer.commit()

        self.discovery.client(peer.url).fetch_blob(blob, store)
        events.info("replicated blob %s from %s", blob, peer.url)

    def _peers_for(self, name: str, refresh: bool = True) -> list[PeerInfo]:
        """Peers that say they host the model first, peers that served bad bytes last."""
        if refresh:
            self._refresh_peers()  # what peers host changes; asking is cheap next to a replication
        peers = self.discovery.peers()
        return sorted(peers, key=lambda p: (p.url in self.bad_peers, name not in p.models))

    def pin(self, ref: str) -> SignedManifest:
        manifest = self.resolve(ref)
        self.ensure_blob(manifest)
        return manifest

    # ---- inference -------------------------------------------------------------------------------------

    def infer(
        self,
        ref: str,
        inputs: Mapping[str, Any],
        request_id: str | None,
        salt: bytes | None = None,
        privacy: str = DEFAULT_PRIVACY,
    ) -> tuple[Bundle, int]:
        return self._infer_held(self.pin(ref), inputs, request_id, salt, privacy)

    async def infer_async(
        self,
        ref: str,
        inputs: Mapping[str, Any],
        request_id: str | None,
        salt: bytes | None = None,
        privacy: str = DEFAULT_PRIVACY,
    ) -> tuple[Bundle, int]:
        """`infer` for the event loop: small models run inline (a thread hop costs more than their inference),
        anything that may block runs in a worker thread: replication, large models, models whose work may follow a
        request's values, a model whose session is not loaded yet, and a run that passes INLINE_RUN_SECONDS on the
        loop (at most `max_threaded_runs` runs in worker threads at once). The durable log append is awaited, not
        waited for. The bundle carries its inclusion proof under the checkpoint signed with its batch."""
        manifest = self.held(ref)
        if manifest is None:  # resolved or fetched from peers first: that waits on them, not on a model run
            manifest = await run_in_threadpool(self.pin, ref)
            if not self._held_blob(manifest):
                raise Unavailable(f"model {manifest.body.ref}: its blob is not held here after fetching it")
        blob = manifest.body.blob
        # A model's first run (or first after its session left the cache) reads, re-hashes and loads it: milliseconds
        # to seconds of CPU that the event loop does not spend.
        if not self._runnable[blob] or self._paused(blob) or not self.service.engine.holds(blob):
            async with self._threaded_runs:
                return await run_in_threadpool(self._infer_held, manifest, inputs, request_id, salt, privacy)
        started, cpu = time.monotonic(), time.thread_time()
        try:
            bundle, logged = self.service.infer_submit(manifest, inputs, request_id, salt=salt, privacy=privacy,
                                                       log_on_loop=True, time_limit=INLINE_RUN_SECONDS)  # fmt: skip
        except RunTooLong:
            self._pause_if_heavy(manifest, cpu)
            async with self._threaded_runs:
                return await run_in_threadpool(self._infer_held, manifest, inputs, request_id, salt, privacy)
        if time.monotonic() - started > INLINE_RUN_SECONDS:  # one operator may run long: the watchdog stops none
            self._pause_if_heavy(manifest, cpu)
        assert isinstance(logged, asyncio.Future)
        self._commit_log_soon()
        index = (await logged)[0]
        return self.service.attach_proof(bundle, index), index

    def _infer_held(
        self, manifest: SignedManifest, inputs: Mapping[str, Any], request_id: str | None, salt: bytes | None,
        privacy: str,
    ) -> tuple[Bundle, int]:  # fmt: skip
        bundle, index = self.service.infer_logged(manifest, inputs, request_id, salt=salt, privacy=privacy)
        assert index is not None
        return bundle, index

    def _pause_if_heavy(self, manifest: SignedManifest, cpu_before: float) -> None:
        """Keep the model off the event loop for INLINE_PAUSE seconds if the run that passed INLINE_RUN_SECONDS
        there (begun at this thread's CPU time `cpu_before`) used at least INLINE_HEAVY_CPU of the CPU."""
        used = time.thread_time() - cpu_before
        if used < INLINE_HEAVY_CPU:
            events.debug("model %s: a run on the event loop passed %g s using %.3f s of CPU (descheduled): it stays "
                         "there", manifest.body.ref, INLINE_RUN_SECONDS, used)  # fmt: skip
            return
        self._inline_paused[manifest.body.blob] = time.monotonic() + INLINE_PAUSE
        events.info("model %s ran past %g s on the event loop: runs in worker threads for %g s",
                    manifest.body.ref, INLINE_RUN_SECONDS, INLINE_PAUSE)  # fmt: skip

    def _paused(self, blob: Digest) -> bool:
        until = self._inline_paused.get(blob)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._inline_paused[blob]
        return False

    def _commit_log_soon(self) -> None:
        """Commit the log once this loop turn's requests have all been submitted (or, while a batch's fsync runs,
        right after it): one transaction and one signed checkpoint for all of them, on the loop (a thread hop per
        batch costs more than the commit)."""
        if not self._commit_scheduled:
            self._commit_scheduled = True
            asyncio.get_running_loop().call_soon(self._commit_log)

    def _commit_log(self) -> None:
        self._commit_scheduled = False
        self.service.log.commit_on_loop()

    def held(self, ref: str) -> SignedManifest | None:
        """The manifest if this node holds it and its blob, without asking any peer."""
        try:
            manifest = self.service.resolve(ref)
        except NotFound:
            return None
        return manifest if self._held_blob(manifest) else None

    def _held_blob(self, manifest: SignedManifest) -> bool:
        blob = manifest.body.blob
        if blob not in self._runnable:  # a stat and a check per request cost more than a small model's run
            if not self.service.hub.blobs.has(blob):
                return False
            self.service.hub.check_model_blob(manifest)  # once per blob; a refused one raises InvalidInput
            self._runnable[blob] = (manifest.body.size <= INLINE_MODEL_BYTES
                                    and self.service.hub.value_sized(manifest) is None)  # fmt: skip
        return True
