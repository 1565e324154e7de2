# pragma version ~=0.4.3
"""
@title Example consumer: accepts a model output only together with a zero-knowledge proof that verifies
@notice This is how a contract (a DeFi pool, say) uses an ML result it can trust. It is bound to one model
        version (manifest id); the EZKL verifier comes from the model registry, where the model's publisher
        set it. The proof's public instances carry the model's inputs (or their hash) and outputs, as
        fixed-point field elements; the outputs are the last `output_count` instances.
        The consumer decides what it asks: its owner calls `ask(inputs)` with the input instances it wants
        answered, and `submit` refuses a proof whose input instances are not among them, so a submitter
        cannot pick inputs whose output suits it. Each answer is stored under its question.
"""

interface Models:
    def verifierOf(manifest: bytes32) -> address: view

MAX_PROOF_BYTES: constant(uint256) = 16384
MAX_INSTANCES: constant(uint256) = 256

event Asked:
    question: indexed(bytes32)
    inputs: DynArray[uint256, MAX_INSTANCES]

event OutputAccepted:
    sender: indexed(address)
    manifest: indexed(bytes32)
    question: indexed(bytes32)
    outputs: DynArray[uint256, MAX_INSTANCES]

models: public(immutable(address))
manifest: public(immutable(bytes32))
output_count: public(immutable(uint256))
owner: public(immutable(address))
asked: public(HashMap[bytes32, bool])  # question id = keccak256 of the ABI-encoded input instances
answered: public(HashMap[bytes32, bool])
answers: public(HashMap[bytes32, DynArray[uint256, MAX_INSTANCES]])
accepted: public(uint256)


@deploy
def __init__(model_registry: address, manifest_id: bytes32, outputs: uint256):
    assert outputs > 0 and outputs <= MAX_INSTANCES, "output count out of range"
    models = model_registry
    manifest = manifest_id
    output_count = outputs
    owner = msg.sender


@internal
@pure
def _question(inputs: DynArray[uint256, MAX_INSTANCES]) -> bytes32:
    return keccak256(abi_encode(inputs))


@external
def ask(inputs: DynArray[uint256, MAX_INSTANCES]) -> bytes32:
    """@notice The owner names input instances it wants answered; returns the question id."""
    assert msg.sender == owner, "only the consumer's owner may ask"
    assert len(inputs) + output_count <= MAX_INSTANCES, "too many input instances"
    question: bytes32 = self._question(inputs)
    self.asked[question] = True
    log Asked(question=question, inputs=inputs)
    return question


@external
def submit(proof: Bytes[MAX_PROOF_BYTES], instances: DynArray[uint256, MAX_INSTANCES]):
    verifier: address = staticcall Models(models).verifierOf(manifest)
    assert verifier != empty(address), "no verifier registered for this model"
    assert len(instances) >= output_count, "fewer instances than outputs"
    inputs: DynArray[uint256, MAX_INSTANCES] = []
    for i: uint256 in range(MAX_INSTANCES):
        if i + output_count >= len(instances):
            break
        inputs.append(instances[i])
    question: bytes32 = self._question(inputs)
    assert self.asked[question], "proof is for inputs this consumer did not ask about"
    ok: bool = False
    answer: Bytes[32] = b""
    ok, answer = raw_call(
        verifier,
        abi_encode(proof, instances, method_id=method_id("verifyProof(bytes,uint256[])")),
        max_outsize=32,
        revert_on_failure=False,
    )
    assert ok and len(answer) == 32 and convert(answer, uint256) == 1, "proof does not verify"
    outputs: DynArray[uint256, MAX_INSTANCES] = []
    first: uint256 = len(instances) - output_count
    for i: uint256 in range(MAX_INSTANCES):
        if i >= len(instances):
            break
        if i >= first:
            outputs.append(instances[i])
    self.answers[question] = outputs
    self.answered[question] = True
    self.accepted += 1
    log OutputAccepted(sender=msg.sender, manifest=manifest, question=question, outputs=outputs)
