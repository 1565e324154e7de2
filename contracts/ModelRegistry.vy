# pragma version ~=0.4.3
"""
@title veriml model registry: what the chain knows about a model version, registered only by its publisher
@notice A model version is registered from the canonical bytes of its manifest (RFC 8785 JSON, the bytes the
        publisher signed): the manifest id is their SHA-256, computed here. A manifest that is meant for a chain
        carries a top-level section `"chain":{"account":"0x<40 hex>","exact":<bool>}`, signed with the rest;
        the account is the only one that may register it, and `exact` (which the manifest parser requires to
        equal `policy.kind == "exact"`) is what the node registry's equivocation rule reads. Nobody chooses the
        exactness, and nobody but the publisher's account can claim the entry or set its verifier.
@dev    Why a fixed position is sound: canonical JSON sorts keys, and "blob" sorts before every other top-level
        key of a manifest, so the bytes start `{"blob":"sha256:` + 64 hex digits + `",` — no quote or
        backslash can hide in 64 hex digits, so the key after it is a top-level key, and the only top-level key
        that sorts next is "chain". The section is then `{"account":"0x…","exact":true|false}` at offsets
        80..159 (keys sorted too). Bytes that do not parse as a manifest hash to an id no client uses.
"""

MAX_MANIFEST: constant(uint256) = 65536
HEAD: constant(uint256) = 160

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


@internal
@pure
def _hex(data: Bytes[HEAD], start: uint256, count: uint256) -> uint256:
    """The value of `count` lowercase hex digits at `start`; reverts on any other byte."""
    value: uint256 = 0
    for i: uint256 in range(64):
        if i >= count:
            break
        c: uint256 = convert(slice(data, start + i, 1), uint256)
        digit: uint256 = 0
        if c >= 48 and c <= 57:
            digit = c - 48
        elif c >= 97 and c <= 102:
            digit = c - 87
        else:
            raise "manifest: expected lowercase hex digits"
        value = (value << 4) | digit
    return value


@internal
@pure
def _chain_section(head: Bytes[HEAD]) -> (address, bool):
    assert slice(head, 0, 16) == b'{"blob":"sha256:', "manifest: not a canonical manifest (must start with its blob)"
    self._hex(head, 16, 64)
    assert slice(head, 80, 24) == b'","chain":{"account":"0x', "manifest: has no chain section (not registrable)"
    account: address = convert(convert(self._hex(head, 104, 40), uint160), address)
    assert slice(head, 144, 10) == b'","exact":', "manifest: malformed chain section"
    if slice(head, 154, 5) == b"true}":
        return account, True
    assert slice(head, 154, 6) == b"false}", "manifest: malformed chain section"
    return account, False


@external
def register_model(manifest: Bytes[MAX_MANIFEST], verifier: address) -> bytes32:
    """@notice Register a model version from its canonical manifest bytes; returns the manifest id."""
    assert len(manifest) >= HEAD, "manifest: too short"
    account: address = empty(address)
    exact: bool = False
    account, exact = self._chain_section(slice(manifest, 0, HEAD))
    assert account == msg.sender, "only the account named in the signed manifest may register it"
    manifest_id: bytes32 = sha256(manifest)
    assert self.models[manifest_id].publisher == empty(address), "manifest already registered"
    self.models[manifest_id] = Model(publisher=msg.sender, exact=exact, verifier=verifier)
    log ModelRegistered(manifest=manifest_id, publisher=msg.sender, exact=exact, verifier=verifier)
    return manifest_id


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
