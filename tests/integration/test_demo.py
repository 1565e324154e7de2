"""`make demo` is the first thing a newcomer runs: both demos, as the CLI runs them, end verified (a demo that broke
once went unnoticed because nothing ran it)."""

import os
import subprocess
import sys

import pytest

from veriml import examples


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from veriml.cli import main; main()", "demo", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env={**os.environ, "COLUMNS": "100"})


def test_local_demo_ends_verified():
    done = run_demo("--local")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "demo complete" in done.stdout and "Traceback" not in done.stderr


@pytest.mark.skipif(examples.smollm2_path() is None, reason="the demo's chat needs the llm extra and the GGUF")
def test_network_demo_ends_verified_with_chat_replayed():
    done = run_demo()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "demo complete" in done.stdout and "Traceback" not in done.stderr
    assert done.stdout.count("verdict: VERIFIED") >= 1
