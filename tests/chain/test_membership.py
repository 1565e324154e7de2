"""A node's chain membership against the embedded chain behind its JSON-RPC server: it registers once, corrects
its endpoint, refuses an account bound to another key, stops anchoring once withdrawn, and anchors its own log
with consistency proofs as it grows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eth_account import Account

from veriml.chain import Chain, Contracts, deploy, local
from veriml.chain.connection import EMBEDDED_KEYS
from veriml.chain.membership import ChainMembership
from veriml.devnet import free_port
from veriml.errors import InvalidInput
from veriml.identity import SigningKey
from veriml.node.config import NodeConfig
from veriml.tlog import Log


@pytest.fixture(scope="module")
def rpc(tmp_path_factory):  # type: ignore[no-untyped-def]
    chain = local.start("embedded", free_port(), tmp_path_factory.mktemp("chain") / "chain.log")
    yield chain.rpc
    local.stop(chain)


@pytest.fixture(scope="module")
def deployment(rpc, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("deployment") / "chain.json"
    deploy(Chain.connect(rpc), Account.from_key(EMBEDDED_KEYS[0])).save(path)
    return path


def config(tmp_path: Path, rpc: str, deployment: Path, key: str, port: int = 8700) -> NodeConfig:
    key_file = tmp_path / f"eth-{port}.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return NodeConfig(home=tmp_path / "home", port=port, chain_rpc=rpc, chain_deployment=str(deployment),
                      chain_key=str(key_file), anchor_interval=60)  # fmt: skip


def test_join_registers_then_corrects_the_endpoint(tmp_path, rpc, deployment):
    key = SigningKey.generate("member1.example")
    with Log(tmp_path / "log.sqlite", key) as log:
        first = ChainMembership(config(tmp_path, rpc, deployment, EMBEDDED_KEYS[3]), key, log)
        assert first.join()
        moved = ChainMembership(config(tmp_path, rpc, deployment, EMBEDDED_KEYS[3], port=8800), key, log)
        assert moved.join()
        node = moved.contracts.node(moved.account.address)
        assert (node.origin, node.endpoint) == ("member1.example", "http://127.0.0.1:8800")
        other = SigningKey.generate("member1b.example")
        with pytest.raises(InvalidInput, match="registered with another Ed25519 key"):
            ChainMembership(config(tmp_path, rpc, deployment, EMBEDDED_KEYS[3]), other, log).join()


def test_the_node_anchors_its_own_log(tmp_path, rpc, deployment):
    key = SigningKey.generate("member2.example")
    with Log(tmp_path / "log.sqlite", key) as log:
        member = ChainMembership(config(tmp_path, rpc, deployment, EMBEDDED_KEYS[4]), key, log)
        assert member.join()
        assert member.anchorer.anchor_now() is None  # no checkpoint yet: no transaction
        for count in (5, 300, 301):
            log.append_batch([(b"entry %d" % n, b"") for n in range(log.sequenced_size, count)])
            log.sign_checkpoint()
            member.anchorer.anchor_now()
        node = member.contracts.node(member.account.address)
        assert (node.anchored_size, node.anchored_root) == (301, log.root(301))
        assert member.anchorer.anchored == (300, 301)


def test_a_withdrawn_account_serves_without_anchoring(tmp_path, rpc, deployment):
    key = SigningKey.generate("member3.example")
    with Log(tmp_path / "log.sqlite", key) as log:
        member = ChainMembership(config(tmp_path, rpc, deployment, EMBEDDED_KEYS[5]), key, log)
        assert member.join()
        contracts = Contracts(Chain.connect(rpc), member.contracts.deployment)
        contracts.request_exit(member.account)
        assert member.join()  # exiting: still a member, the endpoint is left alone
        # Withdrawal needs the exit delay, which this RPC chain cannot skip; a fresh deployment with no delay can.
        quick = deploy(contracts.chain, Account.from_key(EMBEDDED_KEYS[0]), exit_delay=0)
        quick_path = tmp_path / "quick.json"
        quick.save(quick_path)
        gone = ChainMembership(config(tmp_path, rpc, quick_path, EMBEDDED_KEYS[5]), key, log)
        assert gone.join()
        Contracts(contracts.chain, quick).request_exit(gone.account)
        Contracts(contracts.chain, quick).withdraw(gone.account)
        assert gone.join() is False
