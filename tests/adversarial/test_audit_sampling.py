"""Audit evasion (issue 10, attack 3): the audited node cannot dodge a sample fixed by the auditor's committed
seed. Refusing, or serving an entry without its receipt, is recorded as evidence beside the node's own signed
checkpoint; nothing is redrawn, and nothing unexamined is recorded as audited."""

from __future__ import annotations

import hashlib
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tests.adversarial.audit_support import (
    attestations,
    forks,
    infer,
    info,
    publish_mlp,
    refusals,
    seed_of,
    wait_audited,
    wait_checkpoint,
)
from veriml import devnet
from veriml.identity import VerifyingKey
from veriml.node.audit import sampled
from veriml.tlog import SignedCheckpoint, TrustPolicy
from veriml.tlog.tile_reader import TileLog

REFUSING = Path(__file__).with_name("audit_refusing_node.py")
DODGING = Path(__file__).with_name("audit_dodging_node.py")
FORGETFUL = Path(__file__).with_name("audit_forgetful_node.py")
SUBSTITUTING = Path(__file__).with_name("audit_substituting_node.py")
POISONING = Path(__file__).with_name("audit_poisoning_node.py")
FORKING = Path(__file__).with_name("audit_forking_node.py")
BACKDATING = Path(__file__).with_name("audit_backdating_node.py")
HIDING = Path(__file__).with_name("audit_hiding_node.py")
PADDING = Path(__file__).with_name("audit_padding_node.py")
SMALL_CAP = Path(__file__).with_name("small_answer_cap_node.py")
OUTWAITING = Path(__file__).with_name("audit_outwaiting_node.py")
SHORT_WINDOW = Path(__file__).with_name("short_window_auditor_node.py")
IMPATIENT = Path(__file__).with_name("impatient_auditor_node.py")
PATIENT = Path(__file__).with_name("patient_auditor_node.py")
SQUATTING = Path(__file__).with_name("audit_squatting_node.py")
SLOW_REEXECUTION = Path(__file__).with_name("slow_reexecution_auditor_node.py")
FRACTION = 0.3
ENTRIES = 60


def _network_with(script: Path, root: Path, entries: int, *args: str, audited: bool = True,  # type: ignore[no-untyped-def]
                  auditor: Path | None = None):  # fmt: skip
    commands = {2: [sys.executable, str(script), *args]}
    if auditor is not None:
        commands.update({n: [sys.executable, str(auditor)] for n in (0, 1)})
    network = devnet.up(root, 3, checkpoint_interval=0.3, audit_fraction=FRACTION, commands=commands)
    publish_mlp(network, root)
    rng = np.random.default_rng(3)
    positive = set()
    for _ in range(entries):
        x = rng.standard_normal((1, 16)).astype(np.float32)
        index, _ = infer(network.urls[2], x)
        if x.flat[0] > 0:
            positive.add(index)
    info_of = info(network.urls[2])
    size = wait_checkpoint(network.urls[2], entries)
    assert size >= entries
    if audited:
        wait_audited(network.urls[:2], info_of["log_origin"], size)
    return network, info_of, size, positive


@contextmanager
def _attacked_by(script: Path, tmp_path_factory, entries: int, *args: str, audited: bool = True,  # type: ignore[no-untyped-def]
                 auditor: Path | None = None):  # fmt: skip
    """A network whose node 2 runs `script` (and nodes 0 and 1 `auditor`, if given), after `entries` requests to
    it were audited (or only sent, when not `audited`): (network, audited log origin, audited node key, log size,
    indices of requests with a positive first input)."""
    root = tmp_path_factory.mktemp(script.stem)
    try:
        network, audited, size, positive = _network_with(script, root, entries, *args, audited=audited,
                                                         auditor=auditor)  # fmt: skip
        yield network, audited["log_origin"], audited["node"], size, positive
    finally:
        devnet.down(root)


@pytest.fixture(scope="module")
def refusing(tmp_path_factory):
    with _attacked_by(REFUSING, tmp_path_factory, ENTRIES) as (network, origin, subject, size, _):
        yield network, origin, subject, size


def _sample(node, origin: str, size: int) -> set[int]:  # type: ignore[no-untyped-def]
    seed = seed_of(node)
    return {i for i in range(size) if sampled(seed, origin, i, FRACTION)}


def _findings(url: str, subject: str) -> tuple[set[int], set[int], dict[int, str]]:
    """What an auditor recorded of `subject`: agreeing and disagreeing entries, and refusals with their reasons."""
    found = attestations(url, subject)
    agree, disagree = ({a["log_index"] for a in found if a["verdict"] == v} for v in ("agree", "disagree"))
    return agree, disagree, {r["log_index"]: r["reason"] for r in refusals(url, subject)}


def test_node_refusing_sampled_entries_is_recorded_as_evidence(refusing):
    network, origin, subject, size = refusing
    policy = TrustPolicy(VerifyingKey.parse(subject))
    for n, url in enumerate(network.urls[:2]):
        # The sample is the one the auditor committed to before anything was logged.
        seed = seed_of(network.nodes[n])
        assert info(url)["audit"]["seed_commitment"] == "sha256:" + hashlib.sha256(seed).hexdigest()
        sample = _sample(network.nodes[n], origin, size)
        assert 0 < len(sample) < size
        found = refusals(url, subject)
        # Evidence for exactly the sampled entries the node would not serve: none redrawn, none dropped.
        assert {r["log_index"] for r in found} == {i for i in sample if i % 3 != 2}
        for refusal in found:
            expected = "answered 500" if refusal["log_index"] % 3 == 0 else "no receipt served"
            assert expected in refusal["reason"], refusal
            # The node's own signed checkpoint covers the entry it refused: it cannot deny the entry exists.
            checkpoint = SignedCheckpoint.parse(refusal["checkpoint"])
            policy.check(checkpoint)
            assert checkpoint.checkpoint.size > refusal["log_index"]
        # The entries it served were re-executed, and only sampled ones.
        served = {a["log_index"] for a in attestations(url, subject)}
        assert served == {i for i in sample if i % 3 == 2}
    # A refusal is asked again next round (the sample is not redrawn) and stays evidence while unanswered.
    first = {r["log_index"]: r["attempts"] for r in refusals(network.urls[0], subject)}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        again = {r["log_index"]: r["attempts"] for r in refusals(network.urls[0], subject)}
        if all(again[i] > first[i] for i in first):
            break
        time.sleep(0.3)
    assert set(again) == set(first) and all(again[i] > first[i] for i in first)


def test_unexamined_entries_are_never_recorded_as_audited(refusing):
    network, origin, subject, _ = refusing
    for n, url in enumerate(network.urls[:2]):
        audited_size = info(url)["audited"][origin]
        assert audited_size <= wait_checkpoint(network.urls[2], 0)  # never past what the node signed
        recorded = {a["log_index"] for a in attestations(url, subject)}
        recorded |= {r["log_index"] for r in refusals(url, subject)}
        sample = _sample(network.nodes[n], origin, audited_size)
        assert sample <= recorded  # every sampled entry below the audited size was examined or is evidence
        assert all(i < audited_size for i in recorded)
    # A node that goes silent is not audited past: the audited size and the records stay as they are.
    devnet.stop_pid(network.nodes[2].pid, config=str(Path(network.nodes[2].home).parent / "node.toml"))
    before = [(info(url)["audited"][origin], len(attestations(url, subject))) for url in network.urls[:2]]
    time.sleep(2.5)  # five audit rounds
    assert [(info(url)["audited"][origin], len(attestations(url, subject))) for url in network.urls[:2]] == before


def test_audit_sample_cannot_be_dodged(tmp_path_factory):
    """The node lies on every request whose first input is positive and refuses every odd entry to auditors.
    Each auditor catches exactly the lies its committed sample holds: as disagreement where the node served the
    entry, as refusal evidence where it did not. None escapes the sample, and the count is at the sample rate."""
    with _attacked_by(DODGING, tmp_path_factory, 80) as (network, origin, subject, size, lied):
        assert 25 <= len(lied) <= 55
        for n, url in enumerate(network.urls[:2]):
            sample = _sample(network.nodes[n], origin, size)
            agree, disagree, reasons = _findings(url, subject)
            refused = set(reasons)
            assert disagree == {i for i in sample & lied if i % 2 == 0}
            assert agree == {i for i in sample - lied if i % 2 == 0}
            assert refused == {i for i in sample if i % 2 == 1}
            caught = disagree | (refused & lied)
            assert caught == sample & lied  # every sampled lie is evidence of one kind or the other
            expected, spread = FRACTION * len(lied), 6 * (len(lied) * FRACTION * (1 - FRACTION)) ** 0.5
            assert abs(len(caught) - expected) <= spread, (len(caught), expected)


@pytest.mark.parametrize("states", ["zero", "--nan"])
def test_node_deleting_data_before_auditors_ask_is_recorded_as_evidence(tmp_path_factory, states):
    """The node deletes every request's data at once (retention 0, or stated as "nan", which compares false with
    everything): each sampled entry it deleted is a refusal, not an examined entry, because the network's minimum
    retention had not passed."""
    args = ["--nan"] if states == "--nan" else []
    with _attacked_by(FORGETFUL, tmp_path_factory, 20, *args) as (network, origin, subject, size, _):
        assert info(network.urls[2])["audit"]["retention"] == (0 if states == "zero" else "nan")
        for n, url in enumerate(network.urls[:2]):
            sample = _sample(network.nodes[n], origin, size)
            found = refusals(url, subject)
            examined = {a["log_index"] for a in attestations(url, subject)}
            refused = {r["log_index"] for r in found}
            assert refused and refused | examined == sample and not refused & examined
            assert all("deleted before" in r["reason"] for r in found)


def test_backdated_receipts_do_not_end_the_retention_window_early(tmp_path_factory):
    """The node lies on positive first inputs, dates its receipts two days back and says each request's data is
    deleted at once. Its receipts say the network's one-day minimum retention has passed; the auditors saw its log
    without those entries minutes ago, so each sampled entry logged since is a refusal naming the date it claims."""
    with _attacked_by(BACKDATING, tmp_path_factory, 5) as (network, origin, subject, first, _):
        rng = np.random.default_rng(4)
        later = {infer(network.urls[2], rng.standard_normal((1, 16)).astype(np.float32))[0] for _ in range(30)}
        size = wait_checkpoint(network.urls[2], max(later) + 1)
        wait_audited(network.urls[:2], origin, size)
        assert min(later) >= first
        for n, url in enumerate(network.urls[:2]):
            sample = _sample(network.nodes[n], origin, size) & later
            agree, disagree, refused = _findings(url, subject)
            assert sample and not (agree | disagree) & later
            assert sample <= set(refused)
            for index in sample:
                assert "deleted before" in refused[index] and "though dated" in refused[index], refused[index]


@pytest.mark.parametrize("script", [SUBSTITUTING, FORKING], ids=["another-index", "another-history"])
def test_auditor_is_not_shown_another_entry_than_it_asked_for(tmp_path_factory, script):
    """The node lies on every request whose first input is positive, and answers an auditor asking for a lie with
    the nearest honest entry before it: valid receipt and data, proven for another index (another-index), or at
    the index asked for under a checkpoint the node signed for a shadow tree, its log with the lie replaced
    (another-history). Neither is the entry at that index of the history the node's witnesses cosigned: each such
    sampled lie is a refusal, and none is recorded as an agreeing re-execution."""
    with _attacked_by(script, tmp_path_factory, 80) as (network, origin, subject, size, lied):
        assert 20 <= len(lied) <= 60
        for n, url in enumerate(network.urls[:2]):
            sample = _sample(network.nodes[n], origin, size)
            agree, _, refused = _findings(url, subject)
            substituted = {i for i in sample & lied if any(j < i and j not in lied for j in range(i))}
            assert substituted, "no sampled lie has an honest entry before it: a rare draw of the secret seed"
            assert not agree & lied
            assert agree == sample - lied
            assert set(refused) == substituted
            for index in substituted:
                assert f"not entry {index} of the checkpoint" in refused[index], refused[index]


def test_a_checkpoint_of_another_history_is_recorded_as_a_fork(tmp_path_factory):
    """The node also serves the shadow tree's checkpoint at /checkpoint, while its witnesses get the real one. Each
    auditor records the two signed checkpoints as a fork (they are not one history: the node's own tiles show
    which is real), and holds the node to the history its witness cosigned: no lie is recorded as agreeing."""
    with _attacked_by(FORKING, tmp_path_factory, 40, "--checkpoint", audited=False) as (network, _, subject, _, lied):
        policy = TrustPolicy(VerifyingKey.parse(subject))
        deadline = time.monotonic() + 60
        while not all(forks(url, subject) for url in network.urls[:2]) and time.monotonic() < deadline:
            time.sleep(0.3)
        for url in network.urls[:2]:
            found = forks(url, subject)
            assert found, f"{url} recorded no fork"
            for fork in found:
                held, other = (SignedCheckpoint.parse(fork[k]) for k in ("held", "other"))
                policy.check(held)
                policy.check(other)  # both signed by the node: it cannot deny either
                real = []
                for checkpoint in (held.checkpoint, other.checkpoint):
                    with TileLog(network.urls[2], checkpoint.size) as tiles:
                        real.append(tiles.root() == checkpoint.root)
                assert real.count(False) == 1, (fork["detail"], real)
            agree, _, _ = _findings(url, subject)
            assert not agree & lied


@pytest.mark.parametrize("hides", ["--tiles", "--corrupt-tiles", "--checkpoint"])
def test_a_log_that_hides_its_read_side_is_still_audited(tmp_path_factory, hides):
    """Auditors prove each sampled entry from the node's tiles under the checkpoint they hold it to. The node answers
    every tile request with 500, or serves its tiles with a bit flipped, or withholds /checkpoint from auditors
    (its witnesses still get every checkpoint). Hiding the tiles, each sampled entry is a refusal; corrupt tiles
    are not taken for a fork, and each entry they cannot prove is a refusal; withholding the checkpoint, the
    auditors hold the log to the one their witness cosigned and catch the lies. Either way the audit reaches the
    end of the log. (Entry 0 may be examined when its tiles are hidden: in a checkpoint of size 1 its leaf is the
    root.)"""
    with _attacked_by(HIDING, tmp_path_factory, 30, hides) as (network, origin, subject, size, lied):
        for n, url in enumerate(network.urls[:2]):
            sample = _sample(network.nodes[n], origin, size)
            agree, disagree, refused = _findings(url, subject)
            assert sample - {0} and not forks(url, subject) and not agree & lied
            if hides == "--checkpoint":
                assert not refused and (agree, disagree) == (sample - lied, sample & lied)
            elif hides == "--tiles":
                assert set(refused) >= sample - {0} and (agree | disagree) <= {0}
                assert all("tile" in reason for reason in refused.values()), refused
            else:  # an entry whose proof misses the flipped hash is proven, and examined
                assert refused and set(refused) | agree | disagree == sample and not set(refused) & (agree | disagree)
                assert disagree == sample & lied - set(refused)
                assert all("not entry" in reason for reason in refused.values()), refused


def test_a_dripping_peer_is_refused_and_holds_up_no_other_audit(tmp_path_factory):
    """The node sends every answer for log entries a byte at a time, each byte well inside a read timeout. Its
    auditors (here with a 2 s deadline per answer and 4 s per round) record each sampled entry as unanswered, and
    go on auditing their other peer: node 1's entries are audited meanwhile."""
    with _attacked_by(HIDING, tmp_path_factory, 20, "--drip", auditor=IMPATIENT) as (network, origin, subject, size, _):
        for n, url in enumerate(network.urls[:2]):
            sample = _sample(network.nodes[n], origin, size)
            _, _, refused = _findings(url, subject)
            assert sample and set(refused) == sample
            assert all("unanswered" in reason for reason in refused.values()), refused
        rng = np.random.default_rng(5)
        other = info(network.urls[1])
        for _ in range(10):
            infer(network.urls[1], rng.standard_normal((1, 16)).astype(np.float32))
        wait_audited(network.urls[:1], other["log_origin"], wait_checkpoint(network.urls[1], 10), timeout=30)


def test_a_peer_holding_its_round_open_holds_up_no_other_peers_audit(tmp_path_factory):
    """Node 2 drips its answers; its auditors here wait 30 s for an answer and 60 s for a round (the product: 60 s
    and 180 s). While node 2's round is held open, node 1's new entries are audited all the same: peers are audited
    side by side, not one after another."""
    with _attacked_by(HIDING, tmp_path_factory, 20, "--drip", audited=False, auditor=PATIENT) as (
        network, origin, subject, size, _,
    ):  # fmt: skip
        assert _sample(network.nodes[0], origin, size)
        time.sleep(2)  # rounds start every 0.5 s: node 2's is under way, its answer dripping
        started = time.monotonic()
        other = info(network.urls[1])
        rng = np.random.default_rng(7)
        for _ in range(10):
            infer(network.urls[1], rng.standard_normal((1, 16)).astype(np.float32))
        wait_audited(network.urls[:1], other["log_origin"], wait_checkpoint(network.urls[1], 10), timeout=20)
        assert time.monotonic() - started < 25  # inside node 2's first answer's 30 s
        assert info(network.urls[0])["audited"].get(origin, 0) < size
        assert not _findings(network.urls[0], subject)[2]  # nothing recorded of node 2 yet: its round is open


def test_a_node_taking_another_nodes_origin_is_audited_as_a_log_of_its_own(tmp_path_factory):
    """Node 2 names its log with node 1's origin and lies on every request. Node 1's log is audited past 40
    entries first; node 2's 20 entries are audited all the same, from its first, and its sampled lies found:
    an auditor keeps each log's records under its origin and its key, so neither peer's records move the other's."""
    root = tmp_path_factory.mktemp("squatting")
    try:
        network = devnet.up(root, 3, checkpoint_interval=0.3, audit_fraction=FRACTION,
                            commands={2: [sys.executable, str(SQUATTING)]})  # fmt: skip
        publish_mlp(network, root)
        honest, squatter = info(network.urls[1]), info(network.urls[2])
        assert honest["log_origin"] == squatter["log_origin"] and honest["node"] != squatter["node"]
        origin, rng = honest["log_origin"], np.random.default_rng(11)
        for _ in range(40):
            infer(network.urls[1], -np.abs(rng.standard_normal((1, 16))).astype(np.float32))
        size = wait_checkpoint(network.urls[1], 40)
        audited = _sample(network.nodes[0], origin, size)
        _wait_for(lambda: {a["log_index"] for a in attestations(network.urls[0], honest["node"])} >= audited,
                  "node 1's sample audited")  # fmt: skip
        for _ in range(20):
            infer(network.urls[2], np.abs(rng.standard_normal((1, 16))).astype(np.float32))  # all lies
        lies = _sample(network.nodes[0], origin, wait_checkpoint(network.urls[2], 20))
        assert lies
        _wait_for(lambda: _findings(network.urls[0], squatter["node"])[1] >= lies, "node 2's sampled lies found")
        agree, disagree, refused = _findings(network.urls[0], honest["node"])
        assert agree >= audited and not disagree and not refused  # node 1's record is its own
    finally:
        devnet.down(root)


def test_a_peers_costly_reexecutions_do_not_use_up_another_peers_round(tmp_path_factory):
    """Node 2's requests each take its auditors 2 s to re-execute, and nodes 0 and 1 here give a round 4 s.
    Re-executions take turns; node 1's round does not count the time it waited for node 2's, so node 1's sampled
    entries are all examined and none is refused: one peer's costly entries cannot make another look unwilling."""
    root = tmp_path_factory.mktemp("costly")
    try:
        network = devnet.up(root, 3, checkpoint_interval=0.3, audit_fraction=FRACTION,
                            commands={n: [sys.executable, str(SLOW_REEXECUTION)] for n in (0, 1)})  # fmt: skip
        publish_mlp(network, root)
        rng = np.random.default_rng(13)
        for _ in range(30):  # side by side, so that node 1's rounds run while node 2's hold the re-executions
            infer(network.urls[2], np.abs(rng.standard_normal((1, 16))).astype(np.float32))  # 2 s each to audit
            infer(network.urls[1], -np.abs(rng.standard_normal((1, 16))).astype(np.float32))
            time.sleep(0.1)
        honest = info(network.urls[1])
        sample = _sample(network.nodes[0], honest["log_origin"], wait_checkpoint(network.urls[1], 30))
        assert sample

        def examined() -> set[int]:
            agree, disagree, refused = _findings(network.urls[0], honest["node"])
            return agree | disagree | set(refused)

        _wait_for(lambda: examined() >= sample, "node 1's sample examined")
        agree, disagree, refused = _findings(network.urls[0], honest["node"])
        assert agree >= sample and not disagree and not refused, refused
    finally:
        devnet.down(root)


def _wait_for(condition, what: str, timeout: float = 40) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.3)


def test_waiting_out_the_retention_window_does_not_close_a_refusal(tmp_path_factory):
    """The node keeps its auditors from proving its entries (tiles hidden) while their data must be kept, then
    serves its tiles, says the data is deleted, and waits the window out (10 s here). The refusals recorded inside
    the window stay open: withheld, then deleted."""
    until = tmp_path_factory.mktemp("until") / "now"
    with _attacked_by(OUTWAITING, tmp_path_factory, 20, "--until", str(until), auditor=SHORT_WINDOW) as (
        network, origin, subject, size, _,
    ):  # fmt: skip
        before = {n: _findings(url, subject)[2] for n, url in enumerate(network.urls[:2])}
        until.touch()
        time.sleep(14)  # past the 10 s window, and many rounds of retries
        for n, url in enumerate(network.urls[:2]):
            sample = _sample(network.nodes[n], origin, size)
            refused_before = set(before[n])
            assert refused_before >= sample - {0}
            _, _, refused = _findings(url, subject)
            assert set(refused) == refused_before  # none closed
            asked_again = [i for i in refused if "then deleted" in refused[i]]
            assert asked_again, refused  # the retries did find the data deleted, and kept the refusal


@pytest.mark.parametrize("padded", ["batches", "--all"])
def test_an_answer_over_the_auditors_cap_is_not_held(tmp_path_factory, padded):
    """The node pads its answers past what its auditors hold (here 64 KiB). Padding only answers for several
    entries, the auditors ask again in halves, down to single entries, and examine everything; padding every
    answer, each sampled entry is a refusal naming the cap. Either way the audit reaches the end of the log."""
    args = ["--all"] if padded == "--all" else []
    with _attacked_by(PADDING, tmp_path_factory, 40, *args, auditor=SMALL_CAP) as (network, origin, subject, size, lie):
        for n, url in enumerate(network.urls[:2]):
            sample = _sample(network.nodes[n], origin, size)
            agree, disagree, refused = _findings(url, subject)
            assert sample
            if padded == "--all":
                assert not agree | disagree and set(refused) == sample
                assert all("over 65536 bytes" in reason for reason in refused.values()), refused
            else:
                assert not refused and (agree, disagree) == (sample - lie, sample & lie)


@pytest.mark.parametrize("poison", ["--signature", "--deep"])
def test_answers_an_auditor_cannot_finish_are_refusals_not_a_stall(tmp_path_factory, poison):
    """The node answers what an auditor cannot finish examining: an entry's real receipt body under a made-up
    signature (its leaf and proof still check), or JSON nested past any parser's depth. Each such entry is a
    refusal, and the audit goes on past it: the auditors reach the end of the log (the setup waits for that)."""
    with _attacked_by(POISONING, tmp_path_factory, 30, poison) as (network, origin, subject, size, lied):
        met = 0  # poisoned entries the auditors drew: one auditor's sample may hold no even entry (0.7**15, 0.5%)
        for n, url in enumerate(network.urls[:2]):
            sample = _sample(network.nodes[n], origin, size)
            agree, disagree, refused = _findings(url, subject)
            poisoned = sample if poison == "--deep" else {i for i in sample if i % 2 == 0}
            met += len(poisoned)
            assert set(refused) == poisoned
            assert (agree, disagree) == (sample - poisoned - lied, (sample - poisoned) & lied)
            expected = "nested more than" if poison == "--deep" else "signature"
            assert all(expected in reason for reason in refused.values()), refused
        assert met > 0
