# pragma version ~=0.4.3
"""
@title veriml model registry: what the chain knows about a model version
@notice A contract cannot read a signed manifest, so the publisher tells the chain, from its account, what it
        needs: whether the manifest's comparison policy is exact (the node registry slashes equivocation only
        for exact models) and, optionally, the address of the EZKL verifier deployed for the model version.
        The first account to register a manifest id owns the entry; the policy never changes afterwards
        (it is part of the signed manifest), and the verifier can be set once.
"""

struct Model:
    publisher: address
    exact: bool
    verifier: address

event ModelRegistered:
    manifest: indexed(bytes32)
    publisher: indexed(address)
    exact: bool
    verifier: address

event VerifierSet:
    manifest: indexed(bytes32)
    verifier: address

models: public(HashMap[bytes32, Model])


@external
def register_model(manifest: bytes32, exact: bool, verifier: address):
    assert manifest != empty(bytes32), "manifest id is empty"
    assert self.models[manifest].publisher == empty(address), "manifest already registered"
    self.models[manifest] = Model(publisher=msg.sender, exact=exact, verifier=verifier)
    log ModelRegistered(manifest=manifest, publisher=msg.sender, exact=exact, verifier=verifier)


@external
def set_verifier(manifest: bytes32, verifier: address):
    model: Model = self.models[manifest]
    assert model.publisher != empty(address), "manifest not registered"
    assert model.publisher == msg.sender, "only the model's publisher account may set its verifier"
    assert model.verifier == empty(address), "verifier already set"
    assert verifier != empty(address), "verifier address is empty"
    self.models[manifest].verifier = verifier
    log VerifierSet(manifest=manifest, verifier=verifier)


@external
@view
def isExact(manifest: bytes32) -> bool:
    return self.models[manifest].exact


@external
@view
def verifierOf(manifest: bytes32) -> address:
    return self.models[manifest].verifier
