# pragma version ~=0.4.3
"""
@title veriml node registry: stake, exit delay, checkpoint anchoring on a cadence, slashing for equivocation
@notice A node registers from its Ethereum account with a stake, its Ed25519 key, its log origin and its
        endpoint, and an Ed25519 signature by that key over a binding statement that names this registry, the
        chain and the account (verified here, ~1M gas once): nobody else can claim its key, nor copy its pending
        registration. Registration anchors the empty tree; from then on
        the node anchors its log's checkpoints (size, root) at least every `max_anchor_gap` seconds (the same
        root again when the log has not grown); each larger tree must come with an RFC 9162 consistency proof
        from the previous anchor, checked here, so a node's anchored history is append-only. A node that
        stops anchoring can be reported stale by anyone: it is delisted and its exit starts (its stake stays
        slashable for the exit delay). Anything included under an anchored root is attributable to the node's
        account: two inclusion proofs of receipt leaves, opened to the same manifest (registered with the
        exact policy), input and runtime but different outputs, slash the whole stake, part of it to the
        reporter. So does a checkpoint the node signed (its Ed25519 signature, checked here) that contradicts
        its anchored history: the same size with another root, or a leaf index where the signed tree and an
        anchored tree hold different leaves (a shadow history). Reports are commit-reveal: the reward goes to
        the account that committed to the report in an earlier block, never to the reported account.
@dev    Leaf layout (veriml.receipts.leaf): manifest id | input commitment | output commitment | runtime
        digest | receipt id, five 32-byte digests; a commitment is SHA-256(salt || digest), opened by
        (salt, digest). A zero salt opens a receipt v1 leaf, whose digests are unsalted.
        leaf hash = SHA-256(0x00 || leaf), node = SHA-256(0x01 || l || r).
"""

MAX_SIGNED: constant(uint256) = 512  # bytes of a message signed with Ed25519 that the contract checks
BINDING_DOMAIN: constant(Bytes[24]) = b"veriml/chain-binding/v1\x00"

interface Ed25519Verifier:
    def verify(key: bytes32, message: Bytes[MAX_SIGNED], signature: Bytes[64]) -> bool: view

interface ModelRegistry:
    def isExact(manifest: bytes32) -> bool: view

MAX_PROOF: constant(uint256) = 64  # hashes; a tree below 2^48 leaves needs fewer
MAX_SIZE: constant(uint256) = 2**48  # the same bound as veriml.tlog.merkle.MAX_SIZE
MAX_NODES: constant(uint256) = 1024
BPS: constant(uint256) = 10000
EMPTY_ROOT: constant(bytes32) = 0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  # SHA-256("")

struct Node:
    ed25519: bytes32  # raw Ed25519 public key that signs the node's receipts and checkpoints
    origin: String[128]  # the log origin (the C2SP key name of the node key)
    endpoint: String[256]  # base URL of the node's HTTP API
    stake: uint256
    exit_at: uint256  # 0 while active; the time from which the stake can be withdrawn
    anchored_size: uint256
    anchored_root: bytes32
    anchored_at: uint256
    slashed: bool
    withdrawn: bool
    stale: bool  # reported for not anchoring within max_anchor_gap

struct Receipt:
    manifest: bytes32
    input_digest: bytes32
    output_digest: bytes32
    runtime_digest: bytes32
    receipt: bytes32

struct Opening:
    salt: bytes32  # zero for a receipt v1 leaf (unsalted digests)
    input_digest: bytes32
    output_digest: bytes32

struct SignedCheckpoint:
    size: uint256
    root: bytes32
    note: Bytes[MAX_SIGNED]  # the C2SP note text the node signed: origin, size, base64 root, extensions
    signature: Bytes[64]  # the node key's Ed25519 signature over the note text

struct Fork:
    anchored_size: uint256  # a size the node anchored; equal to the checkpoint's size for a root mismatch
    index: uint256  # otherwise: a leaf index below both sizes...
    signed_leaf: bytes32  # ...the leaf hash there under the signed checkpoint's root
    signed_proof: DynArray[bytes32, MAX_PROOF]
    anchored_leaf: bytes32  # ...and a different leaf hash there under the anchored root
    anchored_proof: DynArray[bytes32, MAX_PROOF]

struct Inclusion:
    leaf: Receipt
    index: uint256
    tree_size: uint256  # must be a size the node anchored
    proof: DynArray[bytes32, MAX_PROOF]
    opening: Opening

event Registered:
    node: indexed(address)
    ed25519: bytes32
    origin: String[128]
    endpoint: String[256]
    stake: uint256

event EndpointChanged:
    node: indexed(address)
    endpoint: String[256]

event ExitRequested:
    node: indexed(address)
    exit_at: uint256

event Withdrawn:
    node: indexed(address)
    amount: uint256

event Anchored:
    node: indexed(address)
    tree_size: uint256
    root: bytes32

event Committed:
    account: indexed(address)
    commitment: bytes32

event Stale:
    node: indexed(address)
    reporter: indexed(address)
    anchored_at: uint256

event SlasherSet:
    slasher: indexed(address)

event Penalized:
    node: indexed(address)
    slasher: indexed(address)
    amount: uint256
    expelled: bool

event Slashed:
    node: indexed(address)
    reporter: indexed(address)
    manifest: bytes32
    reward: uint256
    burned: uint256

models: public(immutable(address))
ed25519_verifier: public(immutable(address))  # contracts/Ed25519.vy (its own contract: code size)
min_stake: public(immutable(uint256))
exit_delay: public(immutable(uint256))
reward_bps: public(immutable(uint256))
max_anchor_gap: public(immutable(uint256))

nodes: public(HashMap[address, Node])
node_list: public(DynArray[address, MAX_NODES])
# Every anchored root by tree size: evidence names the size it was proven against.
roots: public(HashMap[address, HashMap[uint256, bytes32]])
key_owner: public(HashMap[bytes32, address])
origin_owner: public(HashMap[bytes32, address])  # keccak256(origin) -> account
burned: public(uint256)
# Per node and anchored size: (anchor time << 64) | the previously anchored size. A dispute names the first
# anchored tree that covers its leaf (previous size <= index < size), whose time starts the challenge window.
anchor_info: public(HashMap[address, HashMap[uint256, uint256]])
# The dispute contract (contracts/Disputes.vy), set once by the deployer: it alone may call `penalize`.
slasher: public(address)
deployer: public(immutable(address))
# commitments[account][commitment] = block number of the commit; a reveal needs a commit from an earlier block
commitments: public(HashMap[address, HashMap[bytes32, uint256]])


@deploy
def __init__(model_registry: address, ed25519: address, minimum_stake: uint256, exit_delay_seconds: uint256,
             reporter_bps: uint256, max_anchor_gap_seconds: uint256):
    assert model_registry != empty(address), "model registry address is empty"
    assert ed25519 != empty(address), "Ed25519 verifier address is empty"
    ed25519_verifier = ed25519
    assert minimum_stake > 0, "minimum stake must be positive"
    assert reporter_bps <= BPS, "reporter share above 100%"
    assert max_anchor_gap_seconds > 0, "anchor gap must be positive"
    max_anchor_gap = max_anchor_gap_seconds
    models = model_registry
    min_stake = minimum_stake
    exit_delay = exit_delay_seconds
    reward_bps = reporter_bps
    deployer = msg.sender


@external
def set_slasher(account: address):
    """@notice Name the dispute contract, once, from the deploying account (it is deployed after this one)."""
    assert msg.sender == deployer, "only the deployer sets the slasher"
    assert self.slasher == empty(address), "slasher already set"
    assert account != empty(address), "slasher address is empty"
    self.slasher = account
    log SlasherSet(slasher=account)


@external
@nonreentrant
def penalize(account: address, amount: uint256, expel: bool) -> uint256:
    """@notice The dispute contract takes up to `amount` of a node's stake (to itself, which pays it out);
            with `expel` the node is also marked slashed and delisted (a wrong result decided by a committee).
            Returns what was taken."""
    assert msg.sender == self.slasher and msg.sender != empty(address), "only the dispute contract penalizes"
    if self.nodes[account].ed25519 == empty(bytes32) or self.nodes[account].slashed or self.nodes[account].withdrawn:
        return 0
    stake: uint256 = self.nodes[account].stake
    taken: uint256 = min(amount, stake)
    self.nodes[account].stake = stake - taken
    if expel:
        self.nodes[account].slashed = True
        self._unlist(account)
    log Penalized(node=account, slasher=msg.sender, amount=taken, expelled=expel)
    if taken > 0:
        send(msg.sender, taken)
    return taken


@external
def commit(commitment: bytes32):
    """@notice First step of `register` and `slash`: a hash that names the sender (see those functions)."""
    assert commitment != empty(bytes32), "commitment is empty"
    assert self.commitments[msg.sender][commitment] == 0, "already committed"
    self.commitments[msg.sender][commitment] = block.number
    log Committed(account=msg.sender, commitment=commitment)


@internal
def _reveal(commitment: bytes32, what: String[32]):
    committed: uint256 = self.commitments[msg.sender][commitment]
    assert committed != 0, concat("no commitment from this account for this ", what)
    assert committed < block.number, concat("reveal a ", what, " in a later block than its commitment")
    self.commitments[msg.sender][commitment] = 0


@external
@view
def binding_message(account: address, origin: String[128]) -> Bytes[MAX_SIGNED]:
    """@notice What a node key signs to be registered by `account`: domain, chain id, registry, account, origin."""
    return concat(BINDING_DOMAIN, convert(chain.id, bytes32), convert(self, bytes20), convert(account, bytes20),
                  convert(origin, Bytes[128]))


@external
@payable
def register(ed25519: bytes32, origin: String[128], endpoint: String[256], signature: Bytes[64]):
    """@notice Register from this account; `signature` is the node key's over binding_message(this account)."""
    assert self.nodes[msg.sender].ed25519 == empty(bytes32), "account already registered"
    assert msg.value >= min_stake, "stake below the minimum"
    assert ed25519 != empty(bytes32), "Ed25519 key is empty"
    assert len(origin) > 0, "log origin is empty"
    assert len(endpoint) > 0, "endpoint is empty"
    assert self.key_owner[ed25519] == empty(address), "Ed25519 key registered by another account"
    origin_hash: bytes32 = keccak256(origin)
    assert self.origin_owner[origin_hash] == empty(address), "log origin registered by another account"
    message: Bytes[MAX_SIGNED] = concat(BINDING_DOMAIN, convert(chain.id, bytes32), convert(self, bytes20),
                                        convert(msg.sender, bytes20), convert(origin, Bytes[128]))
    assert self._ed25519_verify(ed25519, message, signature), \
        "the Ed25519 key did not sign this account's registration"
    self.key_owner[ed25519] = msg.sender
    self.origin_owner[origin_hash] = msg.sender
    self.nodes[msg.sender] = Node(
        ed25519=ed25519, origin=origin, endpoint=endpoint, stake=msg.value, exit_at=0,
        anchored_size=0, anchored_root=EMPTY_ROOT, anchored_at=block.timestamp, slashed=False, withdrawn=False,
        stale=False,
    )
    self.roots[msg.sender][0] = EMPTY_ROOT
    self.node_list.append(msg.sender)
    log Registered(node=msg.sender, ed25519=ed25519, origin=origin, endpoint=endpoint, stake=msg.value)


@internal
@view
def _active(account: address) -> bool:
    node: Node = self.nodes[account]
    return node.ed25519 != empty(bytes32) and not node.slashed and not node.withdrawn and node.exit_at == 0


@external
@view
def is_slashed(account: address) -> bool:
    return self.nodes[account].slashed


@external
@view
def standing(account: address) -> (bool, bool, uint256):
    """@notice (registered, active, stake), reading only those fields: the committee draw asks it per candidate."""
    registered: bool = self.nodes[account].ed25519 != empty(bytes32)
    active: bool = registered and not self.nodes[account].slashed and not self.nodes[account].withdrawn and \
        self.nodes[account].exit_at == 0 and not self.nodes[account].stale
    return registered, active, self.nodes[account].stake


@external
@payable
def add_stake():
    assert self._active(msg.sender), "not an active node"
    self.nodes[msg.sender].stake += msg.value


@external
def set_endpoint(endpoint: String[256]):
    assert self._active(msg.sender), "not an active node"
    assert len(endpoint) > 0, "endpoint is empty"
    self.nodes[msg.sender].endpoint = endpoint
    log EndpointChanged(node=msg.sender, endpoint=endpoint)


@external
def request_exit():
    assert self._active(msg.sender), "not an active node"
    exit_at: uint256 = block.timestamp + exit_delay
    self.nodes[msg.sender].exit_at = exit_at
    log ExitRequested(node=msg.sender, exit_at=exit_at)


@internal
def _unlist(account: address):
    count: uint256 = len(self.node_list)
    for i: uint256 in range(MAX_NODES):
        if i >= count:
            break
        if self.node_list[i] == account:
            self.node_list[i] = self.node_list[count - 1]
            self.node_list.pop()
            return


@external
@nonreentrant
def withdraw():
    node: Node = self.nodes[msg.sender]
    assert node.ed25519 != empty(bytes32), "not a registered node"
    assert not node.slashed, "stake was slashed"
    assert not node.withdrawn, "stake already withdrawn"
    assert node.exit_at != 0, "request an exit first"
    assert block.timestamp >= node.exit_at, "exit delay has not passed"
    amount: uint256 = node.stake
    self.nodes[msg.sender].stake = 0
    self.nodes[msg.sender].withdrawn = True  # its key, origin and roots stay bound to the account for good
    self._unlist(msg.sender)
    log Withdrawn(node=msg.sender, amount=amount)
    send(msg.sender, amount)


@internal
@pure
def _node_hash(left: bytes32, right: bytes32) -> bytes32:
    return sha256(concat(b"\x01", left, right))


@internal
@pure
def _consistent(old_size: uint256, new_size: uint256, old_root: bytes32, new_root: bytes32,
                proof: DynArray[bytes32, MAX_PROOF]) -> bool:
    # RFC 9162 §2.1.4.2, for 0 < old_size < new_size.
    if len(proof) == 0:
        return False
    fn: uint256 = old_size - 1
    sn: uint256 = new_size - 1
    first: uint256 = 0
    fr: bytes32 = proof[0]
    if old_size & (old_size - 1) == 0:  # old_size is a power of two: the old root starts the path
        fr = old_root
        first = 0
    else:
        first = 1
    for _: uint256 in range(64):
        if fn & 1 == 0:
            break
        fn = fn >> 1
        sn = sn >> 1
    sr: bytes32 = fr
    for i: uint256 in range(MAX_PROOF):
        if i >= len(proof):
            break
        if i < first:
            continue
        c: bytes32 = proof[i]
        if sn == 0:
            return False
        if fn & 1 == 1 or fn == sn:
            fr = self._node_hash(c, fr)
            sr = self._node_hash(c, sr)
            if fn & 1 == 0:
                for _: uint256 in range(64):
                    if fn & 1 == 1 or fn == 0:
                        break
                    fn = fn >> 1
                    sn = sn >> 1
        else:
            sr = self._node_hash(sr, c)
        fn = fn >> 1
        sn = sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


@internal
@pure
def _leaf_hash(leaf: Receipt) -> bytes32:
    return sha256(concat(b"\x00", leaf.manifest, leaf.input_digest, leaf.output_digest, leaf.runtime_digest,
                         leaf.receipt))


@internal
@pure
def _inclusion_root(index: uint256, tree_size: uint256, leaf: bytes32, proof: DynArray[bytes32, MAX_PROOF]) -> bytes32:
    # RFC 9162 §2.1.3.2: the root the proof leads to; empty(bytes32) when the proof has the wrong length.
    assert index < tree_size, "evidence: leaf index outside its tree"
    fn: uint256 = index
    sn: uint256 = tree_size - 1
    r: bytes32 = leaf
    for p: bytes32 in proof:
        if sn == 0:
            return empty(bytes32)
        if fn & 1 == 1 or fn == sn:
            r = self._node_hash(p, r)
            if fn & 1 == 0:
                for _: uint256 in range(64):
                    if fn & 1 == 1 or fn == 0:
                        break
                    fn = fn >> 1
                    sn = sn >> 1
        else:
            r = self._node_hash(r, p)
        fn = fn >> 1
        sn = sn >> 1
    if sn != 0:
        return empty(bytes32)
    return r


@external
def anchor(tree_size: uint256, root: bytes32, proof: DynArray[bytes32, MAX_PROOF]):
    """@notice Anchor a larger tree with its consistency proof, or the same (size, root) again as a heartbeat."""
    node: Node = self.nodes[msg.sender]
    assert node.ed25519 != empty(bytes32) and not node.slashed and not node.withdrawn, "not a registered node"
    assert not node.stale, "node was reported stale"
    assert tree_size < MAX_SIZE, "tree size out of range"
    if tree_size == node.anchored_size:
        assert root == node.anchored_root and len(proof) == 0, "same tree size with another root"
        self.nodes[msg.sender].anchored_at = block.timestamp
        log Anchored(node=msg.sender, tree_size=tree_size, root=root)
        return
    assert tree_size > node.anchored_size, "tree size must grow"
    if node.anchored_size == 0:
        assert len(proof) == 0, "first anchor takes no proof"
    else:
        assert self._consistent(node.anchored_size, tree_size, node.anchored_root, root, proof), \
            "consistency proof does not hold"
    self.nodes[msg.sender].anchored_size = tree_size
    self.nodes[msg.sender].anchored_root = root
    self.nodes[msg.sender].anchored_at = block.timestamp
    self.roots[msg.sender][tree_size] = root
    self.anchor_info[msg.sender][tree_size] = (block.timestamp << 64) | node.anchored_size
    log Anchored(node=msg.sender, tree_size=tree_size, root=root)


@internal
@view
def _is_stale(node: Node) -> bool:
    return block.timestamp > node.anchored_at + max_anchor_gap


@external
@view
def is_stale(account: address) -> bool:
    """@notice Whether a listed node has gone longer than max_anchor_gap without anchoring (reported or not)."""
    node: Node = self.nodes[account]
    return node.stale or (node.ed25519 != empty(bytes32) and self._is_stale(node))


@external
def report_stale(account: address):
    """@notice Delist a node that has not anchored for max_anchor_gap and start its exit: it stays slashable
            for the exit delay, for everything it anchored."""
    node: Node = self.nodes[account]
    assert self._active(account), "not an active node"
    assert self._is_stale(node), "node anchored within the allowed gap"
    self.nodes[account].stale = True
    self.nodes[account].exit_at = block.timestamp + exit_delay
    self._unlist(account)
    log Stale(node=account, reporter=msg.sender, anchored_at=node.anchored_at)
    log ExitRequested(node=account, exit_at=block.timestamp + exit_delay)


@external
@view
def verify_inclusion(account: address, inclusion: Inclusion) -> bool:
    """@notice Whether a receipt leaf is included under a root the account anchored."""
    anchored: bytes32 = self.roots[account][inclusion.tree_size]
    if anchored == empty(bytes32) or inclusion.index >= inclusion.tree_size:
        return False
    leaf: bytes32 = self._leaf_hash(inclusion.leaf)
    return self._inclusion_root(inclusion.index, inclusion.tree_size, leaf, inclusion.proof) == anchored


@internal
@pure
def _opens(opening: Opening, leaf: Receipt) -> bool:
    if opening.salt == empty(bytes32):  # receipt v1: the leaf holds the digests themselves
        return opening.input_digest == leaf.input_digest and opening.output_digest == leaf.output_digest
    return sha256(concat(opening.salt, opening.input_digest)) == leaf.input_digest and \
        sha256(concat(opening.salt, opening.output_digest)) == leaf.output_digest


@external
@pure
def slash_commitment(reporter: address, account: address, a: Receipt, b: Receipt, nonce: bytes32) -> bytes32:
    return keccak256(abi_encode(reporter, account, self._leaf_hash(a), self._leaf_hash(b), nonce))


@external
@nonreentrant
def slash(account: address, a: Inclusion, b: Inclusion, nonce: bytes32):
    """@notice Reveal a report committed from this account in an earlier block (see slash_commitment)."""
    node: Node = self.nodes[account]
    assert node.ed25519 != empty(bytes32), "evidence: not a registered node"
    assert not node.slashed, "evidence: node already slashed"
    assert not node.withdrawn, "evidence: node has withdrawn its stake"
    assert msg.sender != account, "evidence: a node cannot report itself"
    assert a.leaf.manifest == b.leaf.manifest, "evidence: receipts are for different manifests"
    assert a.leaf.runtime_digest == b.leaf.runtime_digest, "evidence: receipts are for different runtimes"
    assert self._opens(a.opening, a.leaf), "evidence: first opening does not match its commitments"
    assert self._opens(b.opening, b.leaf), "evidence: second opening does not match its commitments"
    assert a.opening.input_digest == b.opening.input_digest, "evidence: receipts are for different inputs"
    assert a.opening.output_digest != b.opening.output_digest, "evidence: outputs are the same"
    assert staticcall ModelRegistry(models).isExact(a.leaf.manifest), "evidence: manifest is not registered as exact"
    root_a: bytes32 = self.roots[account][a.tree_size]
    root_b: bytes32 = self.roots[account][b.tree_size]
    assert root_a != empty(bytes32) and root_b != empty(bytes32), "evidence: tree size was not anchored by the node"
    leaf_a: bytes32 = self._leaf_hash(a.leaf)
    leaf_b: bytes32 = self._leaf_hash(b.leaf)
    self._reveal(keccak256(abi_encode(msg.sender, account, leaf_a, leaf_b, nonce)), "report")
    assert self._inclusion_root(a.index, a.tree_size, leaf_a, a.proof) == root_a, "evidence: first inclusion proof does not hold"
    assert self._inclusion_root(b.index, b.tree_size, leaf_b, b.proof) == root_b, "evidence: second inclusion proof does not hold"

    self._take_stake(account, a.leaf.manifest)


@internal
def _take_stake(account: address, manifest: bytes32):
    stake: uint256 = self.nodes[account].stake
    reward: uint256 = stake * reward_bps // BPS
    self.nodes[account].stake = 0
    self.nodes[account].slashed = True
    self.burned += stake - reward  # locked here for good: nobody can withdraw it
    self._unlist(account)
    log Slashed(node=account, reporter=msg.sender, manifest=manifest, reward=reward, burned=stake - reward)
    if reward > 0:
        send(msg.sender, reward)


@internal
@pure
def _base64_root(root: bytes32) -> Bytes[44]:
    """Standard base64 of 32 bytes (44 characters, one '=' of padding), as in a checkpoint's root line."""
    v: uint256 = convert(root, uint256)
    head: uint256 = 0  # characters 0..31
    tail: uint256 = 0  # characters 32..43, left-aligned
    for i: uint256 in range(44):
        d: uint256 = 0
        if i < 42:
            d = (v >> (250 - 6 * i)) & 63
        elif i == 42:
            d = (v & 15) << 2
        c: uint256 = 61  # '='
        if i < 43:
            if d < 26:
                c = 65 + d
            elif d < 52:
                c = 71 + d
            elif d < 62:
                c = d - 4
            elif d == 62:
                c = 43
            else:
                c = 47
        if i < 32:
            head = head | (c << (8 * (31 - i)))
        else:
            tail = tail | (c << (8 * (63 - i)))
    return concat(convert(head, bytes32), slice(convert(tail, bytes32), 0, 12))


@external
@pure
def shadow_commitment(reporter: address, account: address, note: Bytes[MAX_SIGNED], nonce: bytes32) -> bytes32:
    return keccak256(abi_encode(reporter, account, keccak256(note), nonce))


@external
@nonreentrant
def slash_shadow(account: address, checkpoint: SignedCheckpoint, fork: Fork, nonce: bytes32):
    """@notice Slash a node whose signed checkpoint contradicts its anchored history (commit first)."""
    node: Node = self.nodes[account]
    assert node.ed25519 != empty(bytes32), "evidence: not a registered node"
    assert not node.slashed, "evidence: node already slashed"
    assert not node.withdrawn, "evidence: node has withdrawn its stake"
    assert msg.sender != account, "evidence: a node cannot report itself"
    assert checkpoint.size < MAX_SIZE, "evidence: tree size out of range"
    prefix: Bytes[256] = concat(convert(node.origin, Bytes[128]), b"\n", convert(uint2str(checkpoint.size), Bytes[78]),
                                b"\n", self._base64_root(checkpoint.root), b"\n")
    assert len(checkpoint.note) >= len(prefix) and slice(checkpoint.note, 0, len(prefix)) == prefix, \
        "evidence: the note is not a checkpoint of this node's log with that size and root"
    assert self._ed25519_verify(node.ed25519, checkpoint.note, checkpoint.signature), \
        "evidence: the node's key did not sign this checkpoint"
    anchored: bytes32 = self.roots[account][fork.anchored_size]
    assert anchored != empty(bytes32), "evidence: tree size was not anchored by the node"
    if fork.anchored_size == checkpoint.size:
        assert anchored != checkpoint.root, "evidence: the checkpoint agrees with the anchored root"
    else:
        assert fork.index < checkpoint.size and fork.index < fork.anchored_size, "evidence: leaf index outside a tree"
        assert fork.signed_leaf != fork.anchored_leaf, "evidence: the leaves are the same"
        assert self._inclusion_root(fork.index, checkpoint.size, fork.signed_leaf, fork.signed_proof) == \
            checkpoint.root, "evidence: inclusion proof under the signed checkpoint does not hold"
        assert self._inclusion_root(fork.index, fork.anchored_size, fork.anchored_leaf, fork.anchored_proof) == \
            anchored, "evidence: inclusion proof under the anchored root does not hold"
    self._reveal(keccak256(abi_encode(msg.sender, account, keccak256(checkpoint.note), nonce)), "report")
    self._take_stake(account, empty(bytes32))


@internal
@view
def _ed25519_verify(key: bytes32, message: Bytes[MAX_SIGNED], signature: Bytes[64]) -> bool:
    return staticcall Ed25519Verifier(ed25519_verifier).verify(key, message, signature)


@external
@view
def node_count() -> uint256:
    return len(self.node_list)
