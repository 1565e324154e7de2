import sqlite3
import threading
import time

import pytest

from veriml.errors import Conflict, InvalidInput, NotFound, PermissionDenied, VerificationFailed
from veriml.identity import SigningKey
from veriml.tlog import (
    Log,
    StaleOldSize,
    TlogProof,
    TrustPolicy,
    Witness,
    add_checkpoint_body,
    merkle,
    parse_tile_path,
    read_entries,
    read_tile,
)


@pytest.fixture
def key():
    return SigningKey.generate("example.com/log")


@pytest.fixture
def log(tmp_path, key):
    with Log(tmp_path / "log.sqlite", key) as opened:
        yield opened


def fill(log, count, prefix=b"entry"):
    return log.append_batch([(prefix + b" %d" % i, b"") for i in range(count)])


def test_indices_are_sequential_under_concurrent_appends(log):
    results = []

    def worker(n):
        results.extend(log.append(b"w%d-%d" % (n, i)) for i in range(50))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(400))
    assert log.sequenced_size == 400


def test_checkpoints_are_signed_only_when_the_tree_grew(log, key):
    fill(log, 10)
    first = log.sign_checkpoint()
    assert (first.checkpoint.origin, first.checkpoint.size) == ("example.com/log", 10)
    TrustPolicy(key.public).check(first)
    assert log.sign_checkpoint().to_text() == first.to_text()
    fill(log, 5)
    assert log.sign_checkpoint().checkpoint.size == 15
    assert [c.checkpoint.size for c in log.checkpoints()] == [10, 15]


def test_proofs_from_the_log_verify(log, key):
    fill(log, 300)
    checkpoint = log.sign_checkpoint()
    for index in (0, 1, 127, 255, 256, 299):
        proof = TlogProof.parse(log.prove(index).to_text())
        proof.verify(b"entry %d" % index, TrustPolicy(key.public))
        with pytest.raises(VerificationFailed):
            proof.verify(b"entry %d" % (index + 1), TrustPolicy(key.public))
    for old in (1, 7, 256, 299):
        merkle.verify_consistency(old, 300, log.consistency_proof(old, 300), log.root(old), checkpoint.checkpoint.root)


def test_proof_requests_outside_the_tree(log, key):
    fill(log, 3)
    # The batch was signed as it was committed: its entries are provable at once, before any cadence.
    TlogProof.parse(log.prove(0).to_text()).verify(b"entry 0", TrustPolicy(key.public))
    log.sign_checkpoint()
    with pytest.raises(NotFound, match="no checkpoint covers it yet"):
        log.prove(3)
    with pytest.raises(InvalidInput, match="not in a tree of size 3"):
        log.inclusion_proof(5, 3)
    with pytest.raises(NotFound, match="integrated only 3"):
        log.inclusion_proof(0, 4)
    with pytest.raises(InvalidInput, match="old size 3 is larger than new size 2"):
        log.consistency_proof(3, 2)
    with pytest.raises(InvalidInput, match="1 to 65535 bytes"):
        log.append(b"")


def test_tiles_and_entry_bundles(log):
    fill(log, 70_000 // 100)  # 700 entries: 2 full level-0 tiles and a partial one of 188
    log.integrate()
    full = read_tile(log, parse_tile_path("tile/0/001"))
    assert len(full) == 8192
    assert full[:32] == merkle.leaf_hash(b"entry 256")
    assert len(read_tile(log, parse_tile_path("tile/0/002.p/188"))) == 188 * 32
    assert read_tile(log, parse_tile_path("tile/1/000.p/2")) == log.root(256) + merkle.root_hash(
        256, lambda keys: log.reader.hashes([(lvl, idx + (1 if lvl == 8 else 256 >> lvl)) for lvl, idx in keys])
    )
    bundle = read_entries(log, parse_tile_path("tile/entries/002.p/3"))
    assert bundle == b"".join(len(e).to_bytes(2, "big") + e for e in (b"entry 512", b"entry 513", b"entry 514"))
    for missing in ("tile/0/002", "tile/0/002.p/189", "tile/1/000", "tile/entries/003.p/1"):
        with pytest.raises(NotFound):
            read_tile(log, parse_tile_path(missing))


def test_log_reopens_with_its_state(tmp_path, key):
    with Log(tmp_path / "log.sqlite", key) as log:
        fill(log, 20)
        root = log.sign_checkpoint().checkpoint.root
    with Log(tmp_path / "log.sqlite", key) as log:
        assert log.sequenced_size == 20 and log.latest_checkpoint().checkpoint.root == root
        fill(log, 1)
        assert log.sign_checkpoint().checkpoint.size == 21
        assert log.verify_integrity() == 21
    with pytest.raises(Conflict, match="belongs to origin"):
        Log(tmp_path / "log.sqlite", SigningKey.generate("example.com/other"))


FORGE_SLOT = "forge tile 0 slot"  # overwrite one 32-byte slot of tile 0 with other bytes


def tamper(path, sql, *args):
    db = sqlite3.connect(path)
    if sql == FORGE_SLOT:
        (blob,) = db.execute("SELECT hashes FROM tiles WHERE idx = 0").fetchone()
        offset = args[0]
        forged = blob[:offset] + bytes(b ^ 0xFF for b in blob[offset : offset + 32]) + blob[offset + 32 :]
        db.execute("UPDATE tiles SET hashes = ? WHERE idx = 0", (forged,))
    else:
        db.execute(sql, args)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("sql", "args", "message"),
    [
        ("UPDATE entries SET leaf = ? WHERE idx = 3", (b"forged",), "entry 3 does not match its integrated hash"),
        ("DELETE FROM entries WHERE idx = 4", (), "entry 4 is missing"),
        (
            "UPDATE entries SET leaf = CASE idx WHEN 1 THEN ? ELSE ? END WHERE idx IN (1, 2)",
            (b"entry 2", b"entry 1"),
            "entry 1 does not match",
        ),
        (FORGE_SLOT, (0 * 32,), "entry 0 does not match"),
        (FORGE_SLOT, (384 * 32,), r"subtree \(2, 0\) \(leaves 0..\)"),  # slot of level 2, index 0
    ],
)
def test_tampering_with_stored_entries_is_detected(tmp_path, key, sql, args, message):
    path = tmp_path / "log.sqlite"
    with Log(path, key) as log:
        fill(log, 10)
        log.sign_checkpoint()
        assert log.verify_integrity() == 10
    tamper(path, sql, *args)
    with Log(path, key) as log, pytest.raises(VerificationFailed, match=message):
        log.verify_integrity()


def test_log_refuses_to_sign_over_a_rewritten_history(tmp_path, key):
    path = tmp_path / "log.sqlite"
    with Log(path, key) as log:
        fill(log, 8)
        log.sign_checkpoint()
    tamper(path, FORGE_SLOT, 448 * 32)  # the root of leaves 0..7: level 3, index 0
    with Log(path, key) as log:
        fill(log, 2)
        with pytest.raises(VerificationFailed, match=r"refusing to sign size 10.*not consistent with the checkpoint"):
            log.sign_checkpoint()
        assert [c.checkpoint.size for c in log.checkpoints()] == [8]


@pytest.fixture
def witness(tmp_path, key):
    w = Witness(
        tmp_path / "witness.sqlite", SigningKey.generate("witness.example/w1"), {"example.com/log": [key.public]}
    )
    yield w
    w.close()


def test_witness_follows_a_growing_log(log, witness, key):
    fill(log, 5)
    first = log.sign_checkpoint()
    with pytest.raises(StaleOldSize) as stale:
        witness.add_checkpoint(add_checkpoint_body(3, [], first))
    assert stale.value.size == 0
    response = witness.add_checkpoint(add_checkpoint_body(0, [], first)).decode()
    assert response.startswith("— witness.example/w1 ") and response.endswith("\n")
    fill(log, 7)
    second = log.sign_checkpoint()
    lines = witness.add_checkpoint(add_checkpoint_body(5, log.consistency_proof(5, 12), second))
    cosigned = log.add_cosignatures(12, [s for s in __import__("veriml").tlog.parse_note(
        second.to_text() + lines.decode()).signatures if s.name == "witness.example/w1"])  # fmt: skip
    TrustPolicy(key.public, (witness.public,), 1).check(cosigned)
    assert witness.latest("example.com/log")[0] == 12


def test_witness_refusals(log, witness, key, tmp_path):
    fill(log, 4)
    first = log.sign_checkpoint()
    witness.cosign(0, [], first)
    fill(log, 4)
    second = log.sign_checkpoint()
    before = witness.latest("example.com/log")
    proof = log.consistency_proof(4, 8)
    bad_proof = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    with pytest.raises(VerificationFailed, match="not consistent with the cosigned size 4"):
        witness.cosign(4, bad_proof, second)
    with pytest.raises(InvalidInput, match="larger than the checkpoint size"):
        witness.cosign(9, proof, second)
    stranger = Log(tmp_path / "other.sqlite", SigningKey.generate("example.com/unknown"))
    stranger.append(b"x")
    with pytest.raises(NotFound, match="not one this witness follows"):
        witness.cosign(0, [], stranger.sign_checkpoint())
    stranger.close()
    impostor = Log(tmp_path / "impostor.sqlite", SigningKey.generate("example.com/log"))
    impostor.append(b"x")
    with pytest.raises(PermissionDenied, match="not signed by any of the expected keys"):
        witness.cosign(4, proof, impostor.sign_checkpoint())
    impostor.close()
    with pytest.raises(InvalidInput, match="first line must be 'old <size>'"):
        witness.add_checkpoint(b"new 4\n\n" + second.to_text().encode())
    with pytest.raises(InvalidInput, match="no blank line"):
        witness.add_checkpoint(b"old 4\n")
    assert witness.latest("example.com/log") == before  # no refusal changed the witness's state


def test_witness_catches_a_log_that_rewrote_history(tmp_path, key, witness):
    """A log that forks after a witness cosigned: the witness refuses the next checkpoint."""
    with Log(tmp_path / "honest.sqlite", key) as honest:
        fill(honest, 6)
        witness.cosign(0, [], honest.sign_checkpoint())
    with Log(tmp_path / "fork.sqlite", key) as fork:  # same key, rewritten entries
        fill(fork, 6, prefix=b"rewritten")
        fill(fork, 2)
        forked = fork.sign_checkpoint()
        with pytest.raises(VerificationFailed, match="not consistent with the cosigned size 6"):
            witness.cosign(6, fork.consistency_proof(6, 8), forked)


def test_checkpoints_follow_the_cadence_not_the_traffic(log, witness, key):
    from veriml.tlog import CheckpointPublisher

    with CheckpointPublisher(log, interval=0.2, witnesses=[(witness.public, witness.add_checkpoint)]) as publisher:
        for _ in range(20):
            log.append_batch([(b"burst %d" % i, b"") for i in range(50)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            latest = log.latest_published()
            if latest is not None and latest.checkpoint.size == 1000 and len(latest.note.signatures) == 2:
                break
            time.sleep(0.05)
    latest = log.latest_checkpoint()
    assert latest.checkpoint.size == 1000
    assert 1 <= len(log.checkpoints()) <= 5  # 1,000 entries in 20 batches: a handful of witnessed checkpoints
    assert publisher.publish_now() is None  # nothing new: nothing signed
    TrustPolicy(key.public, (witness.public,), 1).check(latest)


def test_a_caller_that_stops_waiting_does_not_stop_the_writer(log):
    abandoned = log.submit_batch([(b"abandoned", b"")])
    abandoned.cancel()  # what asyncio does to the future when a request is cancelled
    assert log.append(b"after") in (0, 1)
    assert log.sign_checkpoint().checkpoint.size == log.sequenced_size


def test_readers_racing_an_integration_never_corrupt_tiles(log):
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            size = log.integrated_size
            if size:
                log.reader.tile(0)
                log.inclusion_proof(size - 1, size)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(40):
            log.append_batch([(b"race %d-%d" % (round_, i), b"") for i in range(7)])
            log.integrate()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert log.verify_integrity() == 280


def test_a_fresh_log_serves_a_checkpoint_of_size_0(log, key):
    """C2SP logs serve a checkpoint from the start: size 0, the empty root, signed by the log's key."""
    from veriml.tlog import read_checkpoint
    from veriml.tlog.checkpoint import SignedCheckpoint

    signed = SignedCheckpoint.parse(read_checkpoint(log))
    assert (signed.checkpoint.size, signed.checkpoint.root) == (0, merkle.EMPTY_ROOT)
    TrustPolicy(key.public).check(signed)
    assert log.verify_integrity() == 0


def test_every_batch_is_durable_under_a_signed_checkpoint_when_its_indices_come_back(log, key):
    """Group commit signs one checkpoint per batch, in the batch's transaction: whatever index an append hands back
    is provable at once, under a checkpoint whose root is the tree's, consistent with every later one."""
    sizes = []
    for round_ in range(5):
        indices = log.append_batch([(b"batch %d-%d" % (round_, i), b"") for i in range(round_ + 1)])
        latest = log.signed_checkpoint
        assert latest.checkpoint.size == indices[-1] + 1 == log.sequenced_size
        assert latest.to_text() == log.latest_checkpoint().to_text()
        assert latest.checkpoint.root == log.root(latest.checkpoint.size)
        for index in indices:
            log.prove(index, latest).verify(b"batch %d-%d" % (round_, index - indices[0]), TrustPolicy(key.public))
        sizes.append(latest.checkpoint.size)
    assert log.checkpoints() == []  # none published yet: witnessing follows the cadence, not the batches
    assert log.sign_checkpoint().checkpoint.size == sizes[-1]  # publishing reuses the batch's signature
    assert log.verify_integrity() == sizes[-1]


def test_two_writers_on_one_log_take_in_each_others_entries(tmp_path, key):
    """Two Log objects on one file (as two processes on one home): neither reuses the other's indices, both sign
    checkpoints over the whole tree, and the stored log stays consistent."""
    path = tmp_path / "log.sqlite"
    with Log(path, key) as first, Log(path, key) as second:
        assert first.append(b"a") == 0
        assert second.append(b"b") == 1  # not 0: the second writer took the first one's entry in
        assert first.append(b"c") == 2
        for log in (first, second):
            assert log.signed_checkpoint.checkpoint.root == merkle.root_of_leaves(
                merkle.leaf_hash(e) for e in (b"a", b"b", b"c")[: log.signed_checkpoint.checkpoint.size]
            )
        second.prove(2, first.signed_checkpoint).verify(b"c", TrustPolicy(key.public))
        for index, entry in enumerate((b"a", b"b", b"c")):  # what each had hashed only in memory is still provable
            first.prove(index, first.signed_checkpoint).verify(entry, TrustPolicy(key.public))
        assert second.sign_checkpoint().checkpoint.size == 3
        assert first.verify_integrity() == 3


def test_an_event_loop_commits_its_turns_and_nothing_waits_forever(log, key):
    """The node's path: entries submitted on the loop, one commit per turn, the next commit held while a batch's
    fsync runs and made right after it, and the cadence holding the log meanwhile. Every entry comes back once,
    at consecutive indices, durable under a signed checkpoint that proves it."""
    import asyncio

    async def main() -> list[tuple[bytes, int]]:
        answered: list[tuple[bytes, int]] = []

        async def request(n: int) -> None:
            leaf = b"turn entry %d" % n
            future = log.submit_on_loop([(leaf, b"")])
            log.commit_on_loop()
            index = (await future)[0]
            signed = log.signed_checkpoint
            assert signed is not None and signed.checkpoint.size > index  # durable under a signed checkpoint
            log.prove(index, signed, leaf).verify(leaf, TrustPolicy(key.public))
            answered.append((leaf, index))

        tasks = []
        for turn in range(40):
            tasks += [asyncio.ensure_future(request(turn * 5 + k)) for k in range(5)]
            if turn % 10 == 3:
                await asyncio.to_thread(log.sign_checkpoint)  # the writer thread holds the log a moment
            await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        return answered

    answered = asyncio.run(main())
    indices = sorted(index for _, index in answered)
    assert len(answered) == 200 and indices == list(range(indices[0], indices[0] + 200))
    assert log.batches_committed < 200  # turns were batched, not committed one entry at a time
    for leaf, index in answered:
        assert log.entry(index)[0] == leaf


def test_no_checkpoint_covers_an_entry_before_its_fsync(log, key):
    """A node must never serve a signed checkpoint over entries a power cut could take back (that is a signed fork
    of its own log): while a committed batch's fsync is held, neither the served checkpoint nor the one proofs use
    covers it, and its caller has no index; once the fsync returns, all three do."""
    fill(log, 3)
    held, release = threading.Event(), threading.Event()
    sync = log._sync_wal

    def slow_sync() -> None:
        held.set()
        assert release.wait(10)
        sync()

    log._sync_wal = slow_sync
    future = log.submit_batch([(b"not yet durable", b"")])
    assert held.wait(10)
    assert log.sequenced_size == 4  # committed to the database
    assert log.latest_checkpoint().checkpoint.size == 3
    assert log.signed_checkpoint.checkpoint.size == 3
    assert not future.done()
    release.set()
    assert future.result(10) == [3]
    assert log.latest_checkpoint().checkpoint.size == 4 and log.signed_checkpoint.checkpoint.size == 4
