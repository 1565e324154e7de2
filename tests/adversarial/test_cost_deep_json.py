"""An unauthenticated caller sends a deeply nested JSON body to a node that is on a chain: importing web3 raises
the process's recursion limit past what the C stack holds (py_ecc sets 100,000), so such a body used to kill the
node with a segmentation fault instead of being refused. Also: a library user who imports web3 and parses a
hostile bundle."""

from __future__ import annotations

import subprocess
import sys

import httpx

from veriml import devnet
from veriml.chain.connection import _web3
from veriml.codec import parse_json


def test_importing_web3_through_veriml_keeps_the_recursion_limit():
    limit = sys.getrecursionlimit()
    _web3()
    assert sys.getrecursionlimit() == limit


def test_deeply_nested_json_is_refused_even_with_a_raised_recursion_limit():
    # In a child process: the old behaviour was a segfault, which would take the test runner with it.
    code = (
        "import sys; sys.setrecursionlimit(100000)\n"
        "from veriml.codec import parse_json\nfrom veriml.errors import InvalidInput\n"
        "try:\n    parse_json(b'[' * 200000 + b']' * 200000, 'bundle')\n"
        "except InvalidInput as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-500:]
    assert "bundle: JSON nested more than 256 deep" in done.stdout
    # Brackets inside strings are text, not nesting.
    assert parse_json('{"a": "' + "[" * 5000 + '"}') == {"a": "[" * 5000}


def test_node_on_a_chain_survives_a_deeply_nested_request_body(tmp_path):
    network = devnet.up(tmp_path / "net", 1, chain="anvil")
    try:
        url = network.urls[0]
        body = b'{"model": "a/b", "inputs": {"x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}}"
        answer = httpx.post(f"{url}/v1/infer", content=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert 400 <= answer.status_code < 500, answer.text[:300]
        assert httpx.get(f"{url}/v1/health", timeout=10).json() == {"status": "ok"}
    finally:
        devnet.down(tmp_path / "net")
