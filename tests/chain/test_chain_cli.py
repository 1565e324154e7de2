"""`veriml chain ...` against the embedded chain behind its JSON-RPC server (a real process on 127.0.0.1): a
deploy/register/status round trip, and one clear error line for each way the chain can fail a user."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from veriml.chain import local
from veriml.chain.connection import EMBEDDED_KEYS
from veriml.cli.app import app
from veriml.devnet import free_port

runner = CliRunner()


@pytest.fixture(scope="module")
def rpc(tmp_path_factory):  # type: ignore[no-untyped-def]
    chain = local.start("embedded", free_port(), tmp_path_factory.mktemp("chain") / "chain.log")
    yield chain.rpc
    local.stop(chain)


def key_file(directory: Path, key: str, name: str) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return path


def veriml(home: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--home", str(home), *args], env={"COLUMNS": "250"})


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def deployed(rpc, tmp_path_factory):  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("deploy")
    deployer = key_file(directory, EMBEDDED_KEYS[0], "deployer.key")
    out = directory / "chain.json"
    result = veriml(directory / "home", "chain", "deploy", "--rpc", rpc, "--key-file", str(deployer), "--out",
                    str(out), "--exit-delay", "60")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_register_then_status_lists_the_node(rpc, deployed, tmp_path):
    home = tmp_path / "home"
    assert veriml(home, "keygen", "--node", "--name", "node1.example").exit_code == 0
    operator = key_file(tmp_path, EMBEDDED_KEYS[1], "node.key")
    args = ["--rpc", rpc, "--deployment", str(deployed), "--key-file", str(operator)]
    result = veriml(home, "chain", "register", *args, "--endpoint", "http://127.0.0.1:9", "--stake", "0.2")
    assert result.exit_code == 0, result.output
    status = veriml(home, "chain", "status", "--rpc", rpc, "--deployment", str(deployed))
    assert status.exit_code == 0 and "node1.example" in status.stdout and "0.2" in status.stdout
    again = veriml(home, "chain", "register", *args, "--endpoint", "http://127.0.0.1:9")
    assert again.exit_code == 2
    assert one_error_line(again) == "error: register node node1.example: reverted: account already registered"


def test_no_funds(rpc, deployed, tmp_path):
    home = tmp_path / "home"
    assert veriml(home, "keygen", "--node", "--name", "node2.example").exit_code == 0
    broke = key_file(tmp_path, "0x" + "42" * 32, "broke.key")
    result = veriml(home, "chain", "register", "--rpc", rpc, "--deployment", str(deployed), "--key-file", str(broke),
                    "--endpoint", "http://127.0.0.1:9")  # fmt: skip
    assert result.exit_code == 2
    assert "has 0 wei" in one_error_line(result) and "fund it first" in result.stderr


def test_unreachable_rpc(deployed, tmp_path):
    result = veriml(tmp_path, "chain", "status", "--rpc", f"http://127.0.0.1:{free_port()}", "--deployment",
                    str(deployed))  # fmt: skip
    assert result.exit_code == 2
    assert "unreachable" in one_error_line(result)


def test_wrong_chain_id(rpc, deployed, tmp_path):
    wrong = tmp_path / "chain.json"
    wrong.write_text(deployed.read_text().replace('"chain_id": ', '"chain_id": 1'))
    result = veriml(tmp_path, "chain", "status", "--rpc", rpc, "--deployment", str(wrong))
    assert result.exit_code == 2
    assert "expected 1" in one_error_line(result) and "wrong network" in result.stderr


def test_every_chain_command_has_help_with_an_example():
    for command in ("deploy", "register", "register-model", "deploy-verifier", "anchor", "status", "evidence"):
        result = runner.invoke(app, ["chain", command, "--help"])
        assert result.exit_code == 0 and "Example: veriml chain" in result.stdout, command


def test_anchor_reads_the_nodes_tiles_and_anchors_once(rpc, deployed, log, served, tmp_path):
    from eth_account import Account

    from veriml.chain import Chain, Contracts, Deployment

    contracts = Contracts(Chain.connect(rpc), Deployment.load(deployed))
    operator = Account.from_key(EMBEDDED_KEYS[2])
    contracts.register(operator, log.key, served, 10**17)
    log.append_batch([(b"entry %d" % n, b"") for n in range(5)])
    log.sign_checkpoint()
    args = ["chain", "anchor", "--rpc", rpc, "--deployment", str(deployed), "--node", served, "--key-file",
            str(key_file(tmp_path, EMBEDDED_KEYS[2], "node.key"))]  # fmt: skip
    result = veriml(tmp_path, *args)
    assert result.exit_code == 0, result.output
    assert "anchored tree size 5 (previous anchor 0)" in result.stdout
    log.append_batch([(b"entry %d" % n, b"") for n in range(5, 300)])
    log.sign_checkpoint()
    assert "anchored tree size 300 (previous anchor 5)" in veriml(tmp_path, *args).stdout
    assert "nothing to anchor" in veriml(tmp_path, *args).stdout
    assert contracts.node(operator.address).anchored_root == log.root(300)
    stranger = [*args[:-1], str(key_file(tmp_path, EMBEDDED_KEYS[0], "deployer.key"))]
    assert "is not a registered node" in one_error_line(veriml(tmp_path, *stranger))


def test_dispute_commands_show_and_refuse_in_one_line(rpc, deployed, tmp_path):
    where = ["--rpc", rpc, "--deployment", str(deployed)]
    me = ["--key-file", str(key_file(tmp_path, EMBEDDED_KEYS[3], "me.key"))]
    listed = veriml(tmp_path, "chain", "dispute", "status", *where)
    assert listed.exit_code == 0 and "no disputes" in listed.stdout
    missing = veriml(tmp_path, "chain", "dispute", "status", "999", *where)
    assert missing.exit_code == 2 and one_error_line(missing) == "error: dispute 999: no such dispute"
    early = veriml(tmp_path, "chain", "dispute", "resolve", "1", *where, *me)
    assert one_error_line(early) == "error: resolve dispute 1: reverted: resolve: dispute is not voting"
    novotes = veriml(tmp_path, "chain", "dispute", "reveal", "1", *where, *me, "--votes", str(tmp_path / "v.json"))
    assert one_error_line(novotes) == f"error: dispute reveal: {tmp_path / 'v.json'}: no such file"
    for command in ("open", "status", "reveal"):
        result = runner.invoke(app, ["chain", "dispute", command, "--help"])
        assert result.exit_code == 0 and "Example: veriml chain dispute" in result.stdout, command
