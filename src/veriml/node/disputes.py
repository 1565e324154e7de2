"""A node's part in the dispute game (contracts/Disputes.vy, docs/chain.md), without an operator: it opens a
dispute on a receipt its auditor found wrong, draws committees whose draw block has passed, re-executes a
dispute it was drawn onto and commits then reveals its vote within the windows, resolves disputes whose reveal
window closed, and claims what disputes paid it.

A committee member gets the disputed request's inputs, outputs and salt the way an auditor does: a signed
auditor request to the disputed node (/v1/log/entries/{index}), which serves them to registered peers only. A
node that withholds them from its committee gains nothing: the challenger, when it is a node, kept the entry its
auditor was disclosed and relays it to the drawn members only (/v1/disputes/{id}/entry, a signed request from a
member of that dispute's committee). The member re-executes with the auditor's own function (`Service.attest`),
after checking that the entry is the disputed leaf (the salt must open its commitments): a runtime class it
cannot reproduce, a private or deleted request, or no data from either, make its vote "not comparable" — never
a verdict against the node. Work per round is bounded (disputes scanned, one
re-execution), and votes are kept on disk so that a restart still reveals them."""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from veriml.background import BackgroundJob
from veriml.bounded_get import bounded_get
from veriml.chain.contracts import Contracts
from veriml.chain.disputes import DisputeGame, DisputeState, Vote, leaf_hash
from veriml.codec import parse_json, tensors_from_json
from veriml.errors import NotFound, PermissionDenied, Unavailable, VerimlError
from veriml.fsutil import atomic_write
from veriml.node.audit import FETCH_DEADLINE, MAX_ANSWER_BYTES
from veriml.node.auditor_auth import sign_request
from veriml.node.limits import check_reexecution
from veriml.node.peers import EndpointPolicy, PeerClient
from veriml.receipts import ReceiptLeaf, SignedReceipt, parse_signed_receipt
from veriml.receipts.commitment import parse_salt

if TYPE_CHECKING:
    from veriml.node.node import Node

events = logging.getLogger("veriml.disputes")
MAX_SCANNED_PER_ROUND = 50  # disputes read per round
MAX_PENDING_OPENS = 100  # disagreements waiting for their entry to be anchored


class DisputeParticipant(BackgroundJob):
    def __init__(self, node: Node, contracts: Contracts, account: Any, interval: float) -> None:
        self.node = node
        self.game = DisputeGame(contracts)
        self.contracts = contracts
        self.account = account
        self.interval = interval
        self.path = node.home.root / "disputes" / "votes.json"
        self.votes: dict[str, dict[str, Any]] = self._load()
        # (node key, index, leaf, the entry as disclosed to this node's auditor)
        self.pending: deque[tuple[bytes, int, bytes, dict[str, Any]]] = deque(maxlen=MAX_PENDING_OPENS)
        self._queueing = threading.Lock()
        self.entries = node.home.root / "disputes" / "entries"  # kept for the committee until the dispute ends
        self.opened: dict[tuple[bytes, int], int] = {}
        self.finished: set[int] = set()
        self.policy = EndpointPolicy(node.config.allow_endpoint_networks)
        self._draw_grace: int | None = None
        self._busy = False  # re-executed this round
        super().__init__("disputes")

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            return dict(json.loads(Path(self.path).read_text()))
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(self.votes, indent=1).encode(), mode=0o600)

    # ---- opening ----------------------------------------------------------------------------------------

    def on_disagreement(self, receipt: SignedReceipt, index: int, entry: dict[str, Any]) -> None:
        """The auditor found entry `index` of a peer's log wrong: dispute it once it is anchored."""
        key = (receipt.body.node.public, index)
        with self._queueing:  # called from every audit thread at once, beside this job's own thread
            # list() copies the deque in one step, so the disputes thread's pops and appends cannot break the walk.
            if key not in self.opened and all(p[:2] != key for p in list(self.pending)):
                kept = {k: entry[k] for k in ("receipt", "salt", "inputs", "outputs") if k in entry}
                self.pending.append((*key, ReceiptLeaf.of(receipt).to_bytes(), kept))

    def _open_pending(self) -> None:
        for _ in range(len(self.pending)):
            node_key, index, leaf, entry = self.pending.popleft()
            try:
                owner = self.contracts.registry.functions.key_owner(node_key).call()
                if int(owner, 16) == 0:
                    continue
                inclusion = self.game.leaf_inclusion(owner, leaf, index)
                dispute_id = self.game.open(self.account, owner, inclusion, bond=0)  # this node's stake backs it
            except Unavailable as exc:  # not anchored yet: next round
                self.pending.append((node_key, index, leaf, entry))
                events.info("dispute on entry %d waits: %s", index, exc)
                continue
            except VerimlError as exc:
                events.warning("could not open a dispute on entry %d: %s", index, exc)
                continue
            self.opened[(node_key, index)] = dispute_id
            self.entries.mkdir(parents=True, exist_ok=True)
            atomic_write(self.entries / f"{dispute_id}.json", json.dumps(entry).encode(), mode=0o600)
            events.warning(json.dumps({"event": "dispute-opened", "id": dispute_id, "node": owner, "index": index}))

    def serve_entry(self, dispute_id: int, method: str, path: str, headers: Any) -> dict[str, Any]:
        """The disputed entry this node's auditor was disclosed, for a member of the dispute's committee only
        (a signed auditor request from a registered node whose account was drawn)."""
        key = self.node.auditor.disclosure.gate.authenticate(method, path, headers)
        state = self.game.state(dispute_id)
        if state.challenger != self.account.address:
            raise NotFound(f"dispute {dispute_id}: this node is not its challenger")
        owner = self.contracts.registry.functions.key_owner(key.public).call()
        if owner not in state.committee:
            raise PermissionDenied(f"dispute {dispute_id}: {key.key_id} is not on its committee")
        try:
            return dict(json.loads((self.entries / f"{dispute_id}.json").read_text()))
        except (OSError, ValueError) as exc:
            raise NotFound(f"dispute {dispute_id}: this node keeps no entry for it") from exc

    # ---- the committee's work ---------------------------------------------------------------------------

    def _entry(self, owner: str, path: str) -> tuple[dict[str, Any], Any]:
        on_chain = self.contracts.node(owner)
        client = PeerClient(on_chain.endpoint, self.node.config.peer_timeout, self.policy)
        try:
            info = client.info()
            if info.node.public != on_chain.ed25519:
                raise Unavailable(f"dispute: {on_chain.endpoint} answers with another key than {owner}'s")
            headers = sign_request(self.node.key, "GET", path, info.node)
            try:  # what the disputed node serves is read as an auditor reads it: bounded, never decompressed
                status, body = bounded_get(client._http, on_chain.endpoint.rstrip("/") + path, MAX_ANSWER_BYTES,
                                           FETCH_DEADLINE, headers)  # fmt: skip
            except httpx.HTTPError as exc:
                raise Unavailable(f"dispute: {on_chain.endpoint} did not answer ({type(exc).__name__})") from exc
            if status != 200 or body is None:
                raise Unavailable(f"dispute: {on_chain.endpoint} answered {status} for {path}"
                                  + ("" if body is not None else f", over {MAX_ANSWER_BYTES} bytes"))  # fmt: skip
            entry = parse_json(body, f"dispute entry from {on_chain.endpoint}")  # depth-limited
            if not isinstance(entry, dict) or "receipt" not in entry:
                raise Unavailable(f"dispute: {on_chain.endpoint} served no receipt for {path}")
            return entry, info
        finally:
            client.close()

    def _disputed_entry(self, state: DisputeState) -> tuple[dict[str, Any] | None, str]:
        """The disputed entry with its data: from the disputed node, else from the challenger's node."""
        sources = [(state.node, f"/v1/log/entries/{state.index}"), (state.challenger, f"/v1/disputes/{state.id}/entry")]
        why = ""
        for owner, path in sources:
            try:
                entry, _ = self._entry(owner, path)
                receipt = parse_signed_receipt(entry["receipt"])
            except (VerimlError, ValueError, KeyError) as exc:
                why += f"{path}: {exc}; "
                continue
            if leaf_hash(ReceiptLeaf.of(receipt).to_bytes()) != state.leaf_hash:
                why += f"{path}: another entry than the disputed leaf; "
                continue
            if receipt.body.privacy == "private" or not all(k in entry for k in ("salt", "inputs", "outputs")):
                why += f"{path}: no data ({entry.get('data')}); "
                continue
            return entry, path
        return None, why

    def compute_vote(self, state: DisputeState) -> tuple[Vote, str]:
        """Re-execute the disputed request; (vote, why). Anything short of a comparable re-execution is a
        not-comparable vote."""
        entry, source = self._disputed_entry(state)
        if entry is None:
            return Vote.not_comparable(), f"no data: {source}"
        try:
            receipt = parse_signed_receipt(entry["receipt"])
            manifest = self.node.pin(str(receipt.body.manifest))
            inputs = tensors_from_json(entry.get("inputs"), "disclosed inputs")
            check_reexecution(self.node.config, manifest, inputs)
            # attest checks that the salt, inputs and outputs open the leaf's commitments
            attestation = self.node.service.attest(
                manifest, receipt, parse_salt(entry.get("salt"), "disclosed salt"), inputs,
                tensors_from_json(entry.get("outputs"), "disclosed outputs"),
            )  # fmt: skip
        except (VerimlError, ValueError, KeyError) as exc:
            return Vote.not_comparable(), f"not re-executed: {exc}"
        verdict = attestation.body.verdict
        if verdict == "not-comparable":
            return Vote.not_comparable(), attestation.body.detail
        if state.exact:
            output = attestation.body.observed_output.value
        else:
            output = state.claimed if verdict == "agree" else self.game.disagree()
        return Vote.fresh(output), f"{verdict} (data from {source})"

    # ---- one round --------------------------------------------------------------------------------------

    def round(self) -> None:
        self._busy = False
        self._open_pending()
        me = self.account.address
        block = self.contracts.chain.w3.eth.block_number
        scanned = 0
        for dispute_id in range(1, self.game.count() + 1):
            if dispute_id in self.finished:
                continue
            if scanned >= MAX_SCANNED_PER_ROUND or self._stop.is_set():
                break
            scanned += 1
            try:
                self._step(dispute_id, me, block)
            except VerimlError as exc:  # another node did it first, a window closed: the next round sees
                events.info("dispute %d: %s", dispute_id, exc)
            except Exception as exc:  # whatever one dispute's parties serve, the others are still voted on
                events.warning("dispute %d stopped this round: %s: %s", dispute_id, type(exc).__name__, str(exc)[:300])
        try:
            if self.game.claimable(me) > 0:
                self.game.claim(self.account)
        except VerimlError as exc:
            events.info("dispute claim: %s", exc)

    def _step(self, dispute_id: int, me: str, block: int) -> None:
        state = self.game.state(dispute_id)
        key = str(dispute_id)
        if state.status in ("node-right", "node-wrong", "no-verdict"):
            self.finished.add(dispute_id)
            (self.entries / f"{dispute_id}.json").unlink(missing_ok=True)
            if key in self.votes:
                del self.votes[key]
                self._save()
            return
        if state.status == "open":
            # The challenger draws; anyone else only if it has not some blocks later (not every node at once).
            if block > state.draw_block and (me == state.challenger or block > state.draw_block + self._grace()):
                self.game.draw(self.account, dispute_id)
            return
        mine = self.votes.get(key)
        if me in state.committee:
            if mine is None and block <= state.commit_end:
                if self._busy:
                    return  # one re-execution per round: the next round takes this one
                self._busy = True
                vote, why = self.compute_vote(state)
                self.votes[key] = {"vote": vote.to_json(), "revealed": False}
                self._save()
                self.game.commit_vote(self.account, dispute_id, vote)
                events.warning(json.dumps({"event": "dispute-vote", "id": dispute_id, "comparable": vote.comparable,
                                           "why": why[:200]}))  # fmt: skip
                return
            if mine is not None and not mine["revealed"] and state.commit_end < block <= state.reveal_end:
                self.game.reveal_vote(self.account, dispute_id, Vote.from_json(mine["vote"]))
                mine["revealed"] = True
                self._save()
                return
        involved = me in state.committee or me == state.challenger
        if involved and (block > state.reveal_end or all(self._revealed(dispute_id, m) for m in state.committee)):
            self.game.resolve(self.account, dispute_id)

    def _grace(self) -> int:
        if self._draw_grace is None:
            self._draw_grace = 2 * self.game.param("draw_delay")
        return self._draw_grace

    def _revealed(self, dispute_id: int, member: str) -> bool:
        return int(self.game.contract.functions.revealed(dispute_id, member).call()) != 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            membership = self.node.membership
            if membership is not None and not membership.joined.is_set():
                continue  # not registered yet
            try:
                self.round()
            except Exception as exc:  # the chain or a peer failing must not end the node's part
                events.warning("disputes round stopped: %s", exc)
