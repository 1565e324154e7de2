"""Proofs verified by contracts: EZKL's Solidity verifier for a model version, compiled with solcjs and deployed
on anvil (started by the test), registered beside the manifest id; the example consumer contract accepts the
model's output only together with a proof that verifies."""

from __future__ import annotations

import os

import numpy as np
import pytest
from eth_account import Account

from veriml.chain import Chain, Contracts, deploy, local
from veriml.chain.connection import ANVIL_KEY
from veriml.chain.proofs import deploy_consumer, deploy_verifier, split_calldata
from veriml.devnet import free_port
from veriml.errors import Conflict


@pytest.fixture(scope="session")
def proven_mlp(tmp_path_factory):  # type: ignore[no-untyped-def]
    """An EZKL setup and a proven bundle for the MLP: seconds of work, done once per session."""
    from veriml import examples
    from veriml.identity import SigningKey
    from veriml.service import Home, Service

    root = tmp_path_factory.mktemp("zk-chain")
    os.environ["EZKL_REPO_PATH"] = str(root / "ezkl")
    home = Home(root / "home")
    SigningKey.generate("alice").save(home.publisher_key_path)
    service = Service(home)
    publisher = Account.from_key(ANVIL_KEY).address.lower()  # the account that alone may register it on chain
    service.publish(examples.save(examples.mlp(), root / "mlp.onnx"), name="alice/mlp", chain_account=publisher)
    service.zk_setup("alice/mlp")
    x = {"x": np.random.default_rng(4).standard_normal((1, 16)).astype(np.float32)}
    bundle = service.prove(service.infer("alice/mlp", x, prove=True, circuit=True))
    verifier_source = service.zk_evm_verifier("alice/mlp", root / "Verifier.sol")
    yield service, bundle, verifier_source
    service.close()


@pytest.fixture(scope="module")
def anvil(tmp_path_factory):  # type: ignore[no-untyped-def]
    chain = local.start("anvil", free_port(), tmp_path_factory.mktemp("anvil") / "anvil.log")
    yield chain
    local.stop(chain)


def test_consumer_accepts_an_output_only_with_a_proof_that_verifies(proven_mlp, anvil):
    service, bundle, verifier_source = proven_mlp
    chain = Chain.connect(anvil.rpc)
    publisher = Account.from_key(ANVIL_KEY)
    contracts = Contracts(chain, deploy(chain, publisher))
    manifest = bundle.manifest.id
    outputs = int(np.prod(bundle.outputs["y"].shape))
    consumer = deploy_consumer(contracts, publisher, manifest, outputs)
    proof, instances = split_calldata(chain, service.zk_evm_calldata(bundle))

    with pytest.raises(Conflict, match="no verifier registered for this model"):
        chain.send(publisher, consumer.functions.submit(proof, instances), what="submit")

    verifier = deploy_verifier(chain, publisher, verifier_source)
    contracts.register_model(publisher, service.resolve("alice/mlp"), verifier=verifier)
    assert contracts.model(manifest)[2] == verifier

    user = Account.create()
    chain.fund(publisher, user.address, 10**18)
    with pytest.raises(Conflict, match="proof is for inputs this consumer did not ask about"):
        chain.send(user, consumer.functions.submit(proof, instances), what="submit")
    question = instances[: len(instances) - outputs]
    with pytest.raises(Conflict, match="only the consumer's owner may ask"):
        chain.send(user, consumer.functions.ask(question), what="ask")
    chain.send(publisher, consumer.functions.ask(question), what="ask")
    receipt = chain.send(user, consumer.functions.submit(proof, instances), what="submit")
    assert receipt["gasUsed"] > 300_000  # the pairing check ran
    assert consumer.functions.accepted().call() == 1
    asked = chain.w3.keccak(chain.w3.codec.encode(["uint256[]"], [question]))
    accepted = [consumer.functions.answers(asked, i).call() for i in range(outputs)]
    assert accepted == instances[-outputs:]

    tampered = list(instances)
    tampered[-1] = tampered[-2]  # claim another output value
    with pytest.raises(Conflict, match="proof does not verify"):
        chain.send(user, consumer.functions.submit(proof, tampered), what="submit")
    forged = bytearray(proof)
    forged[100] ^= 1
    with pytest.raises(Conflict, match="proof does not verify"):
        chain.send(user, consumer.functions.submit(bytes(forged), instances), what="submit")
    assert consumer.functions.accepted().call() == 1
