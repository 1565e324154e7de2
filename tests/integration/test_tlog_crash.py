"""Crash test: a process appending under load is killed with SIGKILL at random moments, 20 times. After each
restart every acknowledged entry is present at its index, the root matches a full recomputation, and every
checkpoint ever signed is consistent with the current tree."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from veriml.identity import SigningKey
from veriml.tlog import Log, merkle

CHILD = Path(__file__).with_name("tlog_crash_child.py")
ROUNDS = 20


def run_and_kill(log_path: Path, key_path: Path, round_: int, delay: float) -> tuple[list[str], str]:
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(log_path), str(key_path), str(round_)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in child.stdout:  # type: ignore[union-attr]
            if line.endswith("\n"):  # a line cut by the kill was never fully acknowledged
                lines.append(line.rstrip("\n"))
                if line == "ready\n":
                    ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(30), f"child did not start: {child.stderr.read() if child.poll() is not None else ''}"
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
        reader.join(10)
    return lines, child.stderr.read()  # type: ignore[union-attr]


def test_acknowledged_entries_survive_sigkill(tmp_path):
    key = SigningKey.generate("crash.example/log")
    key_path = tmp_path / "log.key"
    key.save(key_path)
    log_path = tmp_path / "log.sqlite"
    acknowledged: dict[int, bytes] = {}
    rng = random.Random(9162)
    checkpoints_seen = 0
    for round_ in range(ROUNDS):
        lines, stderr = run_and_kill(log_path, key_path, round_, rng.uniform(0.02, 0.4))
        assert "Traceback" not in stderr, stderr
        for line in lines:
            kind, _, rest = line.partition(" ")
            if kind == "ack":
                index, data = rest.split(" ", 1)
                assert int(index) not in acknowledged, f"index {index} acknowledged twice"
                acknowledged[int(index)] = data.encode()
            elif kind == "checkpoint":
                checkpoints_seen += 1
        with Log(log_path, key) as log:
            for index, data in acknowledged.items():
                assert log.entry(index)[0] == data, f"round {round_}: acknowledged entry {index} changed or lost"
            latest = log.sign_checkpoint()
            size = latest.checkpoint.size
            assert size >= len(acknowledged)
            entries = [log.entry(i)[0] for i in range(size)]
            assert latest.checkpoint.root == merkle.root_of_leaves(merkle.leaf_hash(e) for e in entries)
            for signed in log.checkpoints():
                old = signed.checkpoint
                merkle.verify_consistency(old.size, size, log.consistency_proof(old.size, size), old.root,
                                          latest.checkpoint.root)  # fmt: skip
            assert log.verify_integrity() == size
    assert len(acknowledged) > ROUNDS * 10, "the load was too light to test anything"
    assert checkpoints_seen > ROUNDS
