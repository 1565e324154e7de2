"""The `veriml` command against a devnet on the embedded chain, as a new user runs it: publish to a node with
one's own key (open publishing) and browse the node's hub; `devnet status --json`; make and fund a chain key and
read `chain status --json`; and `devnet up` again after `devnet down` in the same directory."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from veriml import examples
from veriml.cli.app import app

runner = CliRunner()
DOCS = Path(__file__).parents[2] / "docs"


def veriml(*args: str, home: Path | None = None):
    return runner.invoke(app, [*(["--home", str(home)] if home else []), *args])


def ok(result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("clinet") / "devnet"
    ok(veriml("devnet", "up", "--nodes", "1", "--dir", str(root), "--anchor-interval", "1"))
    yield root
    veriml("devnet", "down", "--dir", str(root))


def registered(root: Path, wait: float = 30.0) -> dict:
    """`chain status --json` once the devnet's node has registered (it does so right after it starts)."""
    chain = status(root)["chain"]
    deadline = time.monotonic() + wait
    while True:
        found = json.loads(ok(veriml("chain", "status", "--rpc", chain["rpc"], "--deployment", chain["deployment"],
                                     "--json")))  # fmt: skip
        if found["nodes"] or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def status(root: Path) -> dict:
    return json.loads(ok(veriml("devnet", "status", "--dir", str(root), "--json")))


def test_publish_to_a_node_with_ones_own_key_and_browse_its_hub(net, tmp_path):
    url = status(net)["nodes"][0]["url"]
    alice, mallory = tmp_path / "alice", tmp_path / "mallory"
    ok(veriml("keygen", "--name", "alice", home=alice))
    ok(veriml("keygen", "--name", "alice", home=mallory))
    model = examples.save(examples.mlp(), tmp_path / "mlp.onnx")
    published = ok(veriml("publish", str(model), "--name", "alice/mlp", "--node", url, home=alice))
    assert f"published on {url}: alice/mlp@1" in published
    again = ok(veriml("publish", str(model), "--name", "alice/mlp", "--node", url, home=alice))
    assert "already published (same bytes)" in again

    listed = json.loads(ok(veriml("models", "list", "--node", url, "--json")))
    assert [(m["name"], m["version"]) for m in listed] == [("alice/mlp", 1)]
    assert "alice/mlp" in ok(veriml("models", "search", "16-32", "--node", url))  # the description matches
    assert "no models matching" in ok(veriml("models", "search", "nothing-like-it", "--node", url))
    shown = json.loads(ok(veriml("models", "show", "alice/mlp", "--node", url, "--json")))
    assert shown == httpx.get(f"{url}/v1/models/alice/mlp").json()
    assert "x: float32[N,16]" in ok(veriml("models", "show", "alice/mlp@1", "--node", url))

    # Another key under the same owner name: one line, nothing published.
    other = examples.save(examples.mlp(seed=1), tmp_path / "other.onnx")
    refused = veriml("publish", str(other), "--name", "alice/mlp", "--node", url, home=mallory)
    assert refused.exit_code == 2 and "owned by key alice+" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.output
    assert httpx.get(f"{url}/v1/models/alice/mlp").json()["body"]["version"] == 1


def test_devnet_status_json(net):
    state = status(net)
    (node,) = state["nodes"]
    assert node["up"] and node["key"].startswith("veriml.local/node-") and node["url"].startswith("http://127.0.0.1:")
    assert state["chain"]["kind"] == "embedded" and state["chain"]["rpc"].startswith("http://127.0.0.1:")


def test_make_and_fund_a_chain_key_and_read_chain_status_json(net, tmp_path):
    chain = status(net)["chain"]
    key_file = tmp_path / "eth.key"
    made = ok(veriml("chain", "key", "new", "--out", str(key_file)))
    address = re.search(r"address: (0x[0-9a-fA-F]{40})", made).group(1)
    assert key_file.stat().st_mode & 0o777 == 0o600
    refused = veriml("chain", "key", "new", "--out", str(key_file))
    assert refused.exit_code == 2 and "refusing to overwrite a key" in refused.stderr
    funded = ok(veriml("chain", "fund", str(key_file), "--rpc", chain["rpc"], "--amount", "1.5"))
    assert f"funded {address} with 1.5 ether" in funded and "balance 1.5 ether" in funded

    on_chain = registered(net)
    assert len(on_chain["nodes"]) == 1 and on_chain["nodes"][0]["active"]
    # The docs name the embedded chain's id, the one `veriml devnet up` runs (anvil's is 31337).
    documented = {int(n) for n in re.findall(r"chain_id\s*=\s*(\d+)", (DOCS / "chain.md").read_text())}
    assert documented == {on_chain["chain_id"]}
    table = ok(veriml("chain", "status", "--rpc", chain["rpc"], "--deployment", chain["deployment"]))
    assert max(len(line) for line in table.splitlines()) <= 80


def test_devnet_up_again_after_down_in_the_same_directory(net):
    key_before = (net / "node0" / "eth.key").read_text()
    account_before = registered(net)["nodes"][0]["account"]
    ok(veriml("devnet", "down", "--dir", str(net)))
    ok(veriml("devnet", "up", "--nodes", "1", "--dir", str(net), "--anchor-interval", "1"))
    state = status(net)
    assert state["nodes"][0]["up"]
    assert (net / "node0" / "eth.key").read_text() == key_before  # the node keeps its account
    assert [n["account"] for n in registered(net)["nodes"]] == [account_before]  # on the new chain
