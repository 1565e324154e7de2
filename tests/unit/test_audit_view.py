"""Which checkpoint an audit round holds a peer's log to (`Auditor._view`), with the peer's answers and tiles made
up here: the round never settles on a history its witness did not vouch for because a tile failed."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from veriml.errors import Unavailable, VerificationFailed
from veriml.identity import SigningKey
from veriml.node import audit
from veriml.node.audit import Auditor, AuditStore
from veriml.tlog import Checkpoint, SignedCheckpoint, merkle, sign_note

KEY = SigningKey.generate("example.org/log")
REAL = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(10)]
SHADOW = [*REAL[:2], merkle.leaf_hash(b"an honest entry in place of a lie"), *REAL[3:]]


def signed(leaves: list[bytes]) -> SignedCheckpoint:
    checkpoint = Checkpoint(KEY.name, len(leaves), merkle.root_of_leaves(leaves))
    return SignedCheckpoint(checkpoint, sign_note(checkpoint.text(), KEY))


class PeerTiles:
    """The peer's tiles of the shadow tree; with `failing`, the consistency proof any tie needs is not served."""

    def __init__(self, size: int, failing: bool) -> None:
        self.leaves, self.size, self.failing = SHADOW[:size], size, failing

    def hashes(self, keys):  # type: ignore[no-untyped-def]
        return [merkle.root_of_leaves(self.leaves[i << level : (i + 1) << level]) for level, i in keys]

    def consistency_proof(self, old: int) -> list[bytes]:
        if self.failing:
            raise Unavailable("tile 0/000.p/10 answered 500")
        return merkle.consistency_proof(old, self.size, self.hashes)


def round_of(tmp_path: Path, monkeypatch, failing: bool) -> tuple[SignedCheckpoint, AuditStore]:  # type: ignore[no-untyped-def]
    """A round where the auditor's view holds the shadow history (size 10, what the peer shows auditors) and its
    witness the real one (size 6, what clients see cosigned), and the peer serves the shadow checkpoint."""
    view, witnessed = signed(SHADOW), signed(REAL[:6])
    store = AuditStore(tmp_path / "audit.sqlite")
    store.set_view(KEY.public.vkey, view)
    fake = SimpleNamespace(store=store, node=SimpleNamespace(witness=SimpleNamespace(cosigned=lambda _: witnessed)),
                           _http=None, _stop=threading.Event(), _trusted=Auditor._trusted)  # fmt: skip
    fake._tie = lambda url, key, candidates: Auditor._tie(fake, url, key, candidates)
    monkeypatch.setattr(audit, "bounded_get", lambda *args, **kwargs: (200, view.to_text().encode()))
    monkeypatch.setattr(audit, "TileLog", lambda url, size, http=None: PeerTiles(size, failing))
    held, _ = Auditor._view(fake, "http://peer.example", KEY.public, 0.0)  # type: ignore[arg-type]
    return held, store


def test_a_failing_tile_does_not_hide_a_fork_between_view_and_witness(tmp_path, monkeypatch):
    held, store = round_of(tmp_path, monkeypatch, failing=True)
    assert held.checkpoint == signed(REAL[:6]).checkpoint  # what clients rely on, not the history shown to auditors
    # The view is not moved by an untied round.
    assert store.view(KEY.public.vkey).checkpoint == signed(SHADOW).checkpoint
    assert not store.forks()


def test_with_the_tiles_served_the_same_round_proves_the_fork(tmp_path, monkeypatch):
    with pytest.raises(VerificationFailed):
        round_of(tmp_path, monkeypatch, failing=False)
    assert AuditStore(tmp_path / "audit.sqlite").forks()
