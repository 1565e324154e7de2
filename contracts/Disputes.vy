# pragma version ~=0.4.3
"""
@title veriml disputes: a committee of staked nodes re-executes a receipt that someone says is wrong
@notice Anyone staked in the node registry, or any account posting a bond, disputes one receipt leaf of a node:
        the leaf, proven (RFC 9162 inclusion, SHA-256 here) under the first tree the node anchored that covers
        it, within `challenge_window` seconds of that anchor. Opening is commit-reveal (the dispute's reward goes
        to the account that committed first). `draw_delay` blocks after opening, anyone calls `draw`: a committee
        of K listed, active, staked nodes, never the disputed node nor the challenger, is drawn from the hash of
        that later block, which nobody knew when the dispute opened. Each member re-executes the request off
        chain (it gets the input through the disputed node's authenticated auditor disclosure path) and commits
        to its output within `commit_window` blocks, then reveals it within `reveal_window` blocks. For an exact
        manifest the output is the member's commitment SHA-256(salt || output digest), compared bit for bit with
        the leaf's; for a tolerance manifest it is the leaf's own output commitment when the member's outputs are
        within the policy, DISAGREE otherwise. A member that cannot reproduce the receipt's runtime class (or
        gets no data) reveals "not comparable". `resolve` decides when a strict majority of K revealed one value:
          - the leaf's output: the challenger was frivolous and loses its bond (to the node and the majority);
          - another value: the node is wrong and loses its whole stake: `reporter_bps` to the challenger,
            `committee_bps` to the majority, the rest locked here for good;
          - no strict majority (not comparable, split, too few reveals): no verdict; the bond goes back.
        Members that do not reveal, or reveal a comparable value against a verdict, lose `absent_bps` of stake.
        A receipt whose window passed with no dispute won against it is final (`is_final_undisputed`).
@dev    Payouts are pulled (`claim`). Randomness: blockhash(draw block) mixed with the prevrandao of the block
        that runs `draw`; see docs/chain.md for its bias bounds.
"""

MAX_PROOF: constant(uint256) = 64
MAX_COMMITTEE: constant(uint256) = 15
BPS: constant(uint256) = 10000
DISAGREE: constant(bytes32) = keccak256("veriml/dispute/disagree")  # a tolerance manifest's "outside the policy"

# status
NOT_DISPUTED: constant(uint8) = 0
OPEN: constant(uint8) = 1  # waiting for draw
VOTING: constant(uint8) = 2  # committee drawn: commit, then reveal
NODE_RIGHT: constant(uint8) = 3  # the committee's majority reproduced the node's output: frivolous challenge
NODE_WRONG: constant(uint8) = 4  # the majority reproduced another output: the node was slashed
NO_VERDICT: constant(uint8) = 5  # not comparable, no majority, or no committee could be drawn

interface Registry:
    def roots(account: address, size: uint256) -> bytes32: view
    def anchor_info(account: address, size: uint256) -> uint256: view
    def node_count() -> uint256: view
    def node_list(i: uint256) -> address: view
    def standing(account: address) -> (bool, bool, uint256): view
    def is_slashed(account: address) -> bool: view
    def min_stake() -> uint256: view
    def exit_delay() -> uint256: view
    def penalize(account: address, amount: uint256, expel: bool) -> uint256: nonpayable

interface ModelRegistry:
    def isExact(manifest: bytes32) -> bool: view

struct Receipt:
    manifest: bytes32
    input_digest: bytes32  # salted commitments (receipt v2) or digests (v1), see NodeRegistry.vy
    output_digest: bytes32
    runtime_digest: bytes32
    receipt: bytes32

struct Dispute:
    node: address
    challenger: address
    leaf_hash: bytes32
    manifest: bytes32
    claimed: bytes32  # the leaf's output commitment
    index: uint256
    tree_size: uint256
    bond: uint256  # wei posted; 0 when a staked node's stake backs the challenge
    exact: bool
    status: uint8
    draw_block: uint256
    commit_end: uint256  # last block for a commitment
    reveal_end: uint256  # last block for a reveal
    verdict: bytes32  # the majority's value, once resolved with a verdict

event Opened:
    id: indexed(uint256)
    node: indexed(address)
    challenger: indexed(address)
    leaf_hash: bytes32
    index: uint256
    tree_size: uint256
    draw_block: uint256

event Drawn:
    id: indexed(uint256)
    committee: DynArray[address, MAX_COMMITTEE]
    commit_end: uint256
    reveal_end: uint256

event VoteCommitted:
    id: indexed(uint256)
    member: indexed(address)

event VoteRevealed:
    id: indexed(uint256)
    member: indexed(address)
    output: bytes32
    comparable: bool

event Resolved:
    id: indexed(uint256)
    status: uint8
    verdict: bytes32
    slashed: uint256

registry: public(immutable(address))
models: public(immutable(address))
committee_size: public(immutable(uint256))
draw_delay: public(immutable(uint256))  # blocks
commit_window: public(immutable(uint256))  # blocks
reveal_window: public(immutable(uint256))  # blocks
challenge_window: public(immutable(uint256))  # seconds from the first anchor covering the leaf
min_bond: public(immutable(uint256))
reporter_bps: public(immutable(uint256))
committee_bps: public(immutable(uint256))
absent_bps: public(immutable(uint256))
node_bps: public(immutable(uint256))  # share of a lost bond that goes to the disputed node

dispute_count: public(uint256)
disputes: public(HashMap[uint256, Dispute])
committee: public(HashMap[uint256, DynArray[address, MAX_COMMITTEE]])
vote_commitments: public(HashMap[uint256, HashMap[address, bytes32]])
votes: public(HashMap[uint256, HashMap[address, bytes32]])  # revealed output; empty: none
revealed: public(HashMap[uint256, HashMap[address, uint8]])  # 0 none, 1 comparable, 2 not comparable
# keccak256(node, leaf hash) -> the latest dispute id on it (ids start at 1)
leaf_dispute: public(HashMap[bytes32, uint256])
claimable: public(HashMap[address, uint256])
burned: public(uint256)
open_commitments: public(HashMap[address, HashMap[bytes32, uint256]])  # block of an open's commitment


@deploy
def __init__(node_registry: address, model_registry: address, size: uint256, delay_blocks: uint256,
             commit_blocks: uint256, reveal_blocks: uint256, window_seconds: uint256, bond: uint256,
             reporter_share: uint256, committee_share: uint256, absent_share: uint256, node_share: uint256):
    assert node_registry != empty(address) and model_registry != empty(address), "registry address is empty"
    assert size > 0 and size <= MAX_COMMITTEE and size % 2 == 1, "committee size must be odd, 1 to 15"
    assert delay_blocks > 0 and commit_blocks > 0 and reveal_blocks > 0, "windows must be positive"
    assert reporter_share + committee_share <= BPS and absent_share <= BPS and node_share <= BPS, "share above 100%"
    assert bond > 0, "minimum bond must be positive"
    # A node can leave only after the exit delay: the window must close well before, so a stake disputed in
    # time is still there.
    assert window_seconds > 0 and window_seconds < staticcall Registry(node_registry).exit_delay(), \
        "challenge window must be shorter than the registry's exit delay"
    registry = node_registry
    models = model_registry
    committee_size = size
    draw_delay = delay_blocks
    commit_window = commit_blocks
    reveal_window = reveal_blocks
    challenge_window = window_seconds
    min_bond = bond
    reporter_bps = reporter_share
    committee_bps = committee_share
    absent_bps = absent_share
    node_bps = node_share


@external
@payable
def __default__():
    """@notice Receives stake the registry hands over in `penalize`."""
    assert msg.sender == registry, "send ether with open, not directly"


@internal
@pure
def _node_hash(left: bytes32, right: bytes32) -> bytes32:
    return sha256(concat(b"\x01", left, right))


@internal
@pure
def _leaf_hash(leaf: Receipt) -> bytes32:
    return sha256(concat(b"\x00", leaf.manifest, leaf.input_digest, leaf.output_digest, leaf.runtime_digest,
                         leaf.receipt))


@internal
@pure
def _inclusion_root(index: uint256, tree_size: uint256, leaf: bytes32, proof: DynArray[bytes32, MAX_PROOF]) -> bytes32:
    # RFC 9162 §2.1.3.2: the root the proof leads to; empty(bytes32) when the proof has the wrong length.
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


@internal
@view
def _anchored_at(node: address, index: uint256, tree_size: uint256, leaf_hash: bytes32,
                 proof: DynArray[bytes32, MAX_PROOF]) -> uint256:
    """When the leaf was first anchored: tree_size must be the first anchored tree covering `index`, and the
    proof must reach its root. 0 if not."""
    if index >= tree_size:
        return 0
    root: bytes32 = staticcall Registry(registry).roots(node, tree_size)
    if root == empty(bytes32):
        return 0
    info: uint256 = staticcall Registry(registry).anchor_info(node, tree_size)
    if info & (2**64 - 1) > index:  # an earlier anchor already covered it: name that one
        return 0
    if self._inclusion_root(index, tree_size, leaf_hash, proof) != root:
        return 0
    return info >> 64


@internal
@view
def _node_state(account: address) -> (bool, bool, uint256):
    """(registered, active, stake) of a registry node; active: listed, not exiting, not slashed nor stale."""
    return staticcall Registry(registry).standing(account)


@external
@pure
def open_commitment(challenger: address, node: address, leaf: Receipt, nonce: bytes32) -> bytes32:
    return keccak256(abi_encode(challenger, node, self._leaf_hash(leaf), nonce))


@external
def commit_open(commitment: bytes32):
    """@notice First step of `open`: a hash naming the challenger (see open_commitment)."""
    assert commitment != empty(bytes32), "commitment is empty"
    assert self.open_commitments[msg.sender][commitment] == 0, "already committed"
    self.open_commitments[msg.sender][commitment] = block.number


@external
@payable
def open(node: address, leaf: Receipt, index: uint256, tree_size: uint256, proof: DynArray[bytes32, MAX_PROOF],
         nonce: bytes32) -> uint256:
    """@notice Dispute a receipt leaf of `node`, committed to from this account in an earlier block. With
            msg.value >= min_bond the value is the bond; with none, the sender must be an active staked node,
            whose stake backs the challenge for min_bond."""
    registered: bool = False
    active: bool = False
    stake: uint256 = 0
    registered, active, stake = self._node_state(node)
    assert registered, "dispute: not a registered node"
    assert active or stake > 0, "dispute: node has no stake left"
    assert msg.sender != node, "dispute: a node cannot dispute itself"
    if msg.value == 0:
        mine_active: bool = False
        mine_stake: uint256 = 0
        registered, mine_active, mine_stake = self._node_state(msg.sender)
        assert mine_active and mine_stake >= min_bond, "dispute: post a bond or be an active staked node"
    else:
        assert msg.value >= min_bond, "dispute: bond below the minimum"
    leaf_hash: bytes32 = self._leaf_hash(leaf)
    commitment: bytes32 = keccak256(abi_encode(msg.sender, node, leaf_hash, nonce))
    committed: uint256 = self.open_commitments[msg.sender][commitment]
    assert committed != 0, "dispute: no commitment from this account for this dispute"
    assert committed < block.number, "dispute: open in a later block than its commitment"
    self.open_commitments[msg.sender][commitment] = 0
    anchored_at: uint256 = self._anchored_at(node, index, tree_size, leaf_hash, proof)
    assert anchored_at != 0, "dispute: the leaf is not proven under the first anchored tree that covers it"
    assert block.timestamp <= anchored_at + challenge_window, "dispute: the challenge window has passed"
    key: bytes32 = keccak256(abi_encode(node, leaf_hash))
    previous: uint256 = self.leaf_dispute[key]
    if previous != 0:
        status: uint8 = self.disputes[previous].status
        assert status != OPEN and status != VOTING, "dispute: this receipt is already under dispute"
        assert status == NO_VERDICT, "dispute: this receipt was already decided"
    did: uint256 = self.dispute_count + 1
    self.dispute_count = did
    self.leaf_dispute[key] = did
    self.disputes[did] = Dispute(
        node=node, challenger=msg.sender, leaf_hash=leaf_hash, manifest=leaf.manifest, claimed=leaf.output_digest,
        index=index, tree_size=tree_size, bond=msg.value,
        exact=staticcall ModelRegistry(models).isExact(leaf.manifest), status=OPEN,
        draw_block=block.number + draw_delay, commit_end=0, reveal_end=0, verdict=empty(bytes32),
    )
    log Opened(id=did, node=node, challenger=msg.sender, leaf_hash=leaf_hash, index=index, tree_size=tree_size,
               draw_block=block.number + draw_delay)
    return did


@external
def draw(did: uint256):
    """@notice Draw the committee from blockhash(draw_block), once that block exists. Past 256 blocks the hash is
            gone: the draw block moves draw_delay blocks ahead instead (nobody can pick a known hash)."""
    assert self.disputes[did].status == OPEN, "draw: dispute is not waiting for its committee"
    draw_block: uint256 = self.disputes[did].draw_block
    assert block.number > draw_block, "draw: the draw block is not mined yet"
    seed: bytes32 = empty(bytes32)
    if block.number - draw_block <= 256:
        seed = blockhash(draw_block)
    if seed == empty(bytes32):
        self.disputes[did].draw_block = block.number + draw_delay
        return
    # The draw block's proposer can grind its hash, but not the RANDAO value of the block this runs in, which is
    # fixed per slot before that block exists; that block's proposer can only include this call or leave it.
    seed = keccak256(concat(seed, block.prevrandao))
    count: uint256 = staticcall Registry(registry).node_count()
    min_stake: uint256 = staticcall Registry(registry).min_stake()
    disputed: address = self.disputes[did].node
    challenger: address = self.disputes[did].challenger
    chosen: DynArray[address, MAX_COMMITTEE] = []
    for i: uint256 in range(MAX_COMMITTEE):
        if i >= committee_size:
            break
        start: uint256 = convert(keccak256(abi_encode(seed, did, i)), uint256) % max(count, 1)
        # Linear probe from a random start: the next eligible node not chosen yet (bounded by the list).
        for j: uint256 in range(1024):
            if j >= count:
                break
            candidate: address = staticcall Registry(registry).node_list((start + j) % count)
            if candidate == disputed or candidate == challenger or candidate in chosen:
                continue
            registered: bool = False
            active: bool = False
            stake: uint256 = 0
            registered, active, stake = self._node_state(candidate)
            if active and stake >= min_stake:
                chosen.append(candidate)
                break
    if len(chosen) < committee_size:  # not enough eligible nodes: no verdict is possible
        self._finish(did, NO_VERDICT, empty(bytes32), 0)
        return
    self.committee[did] = chosen
    commit_end: uint256 = block.number + commit_window
    self.disputes[did].status = VOTING
    self.disputes[did].commit_end = commit_end
    self.disputes[did].reveal_end = commit_end + reveal_window
    log Drawn(id=did, committee=chosen, commit_end=commit_end, reveal_end=commit_end + reveal_window)


@external
@pure
def vote_commitment(member: address, did: uint256, output: bytes32, comparable: bool, nonce: bytes32) -> bytes32:
    return keccak256(abi_encode(member, did, output, comparable, nonce))


@external
def commit_vote(did: uint256, commitment: bytes32):
    assert self.disputes[did].status == VOTING, "vote: dispute is not voting"
    assert msg.sender in self.committee[did], "vote: not on this dispute's committee"
    assert block.number <= self.disputes[did].commit_end, "vote: the commit window has closed"
    assert commitment != empty(bytes32), "vote: commitment is empty"
    self.vote_commitments[did][msg.sender] = commitment
    log VoteCommitted(id=did, member=msg.sender)


@external
def reveal_vote(did: uint256, output: bytes32, comparable: bool, nonce: bytes32):
    assert self.disputes[did].status == VOTING, "vote: dispute is not voting"
    assert block.number > self.disputes[did].commit_end, "vote: reveal after the commit window"
    assert block.number <= self.disputes[did].reveal_end, "vote: the reveal window has closed"
    assert self.revealed[did][msg.sender] == 0, "vote: already revealed"
    committed: bytes32 = self.vote_commitments[did][msg.sender]
    assert committed != empty(bytes32), "vote: no commitment from this member"
    assert committed == keccak256(abi_encode(msg.sender, did, output, comparable, nonce)), \
        "vote: reveal does not match the commitment"
    if comparable:
        assert output != empty(bytes32), "vote: a comparable vote needs an output"
        if not self.disputes[did].exact:
            assert output == self.disputes[did].claimed or output == DISAGREE, \
                "vote: a tolerance vote is the claim or DISAGREE"
        self.votes[did][msg.sender] = output
        self.revealed[did][msg.sender] = 1
    else:
        self.revealed[did][msg.sender] = 2
    log VoteRevealed(id=did, member=msg.sender, output=output, comparable=comparable)


@internal
def _finish(did: uint256, status: uint8, verdict: bytes32, slashed: uint256):
    self.disputes[did].status = status
    self.disputes[did].verdict = verdict
    log Resolved(id=did, status=status, verdict=verdict, slashed=slashed)


@external
@nonreentrant
def resolve(did: uint256):
    """@notice Decide a dispute once the reveal window has closed (or every member revealed)."""
    d: Dispute = self.disputes[did]
    assert d.status == VOTING, "resolve: dispute is not voting"
    members: DynArray[address, MAX_COMMITTEE] = self.committee[did]
    all_revealed: bool = True
    for m: address in members:
        if self.revealed[did][m] == 0:
            all_revealed = False
    assert block.number > d.reveal_end or all_revealed, "resolve: the reveal window is still open"
    # The value a strict majority of the whole committee revealed, if any.
    verdict: bytes32 = empty(bytes32)
    for m: address in members:
        value: bytes32 = self.votes[did][m]
        if value == empty(bytes32):
            continue
        same: uint256 = 0
        for other: address in members:
            if self.votes[did][other] == value:
                same += 1
        if same * 2 > committee_size:
            verdict = value
            break
    # Who is paid: members in the majority. Who pays: members that did not reveal, and comparable votes against
    # a verdict (an unreasoned "agree with the node" costs stake when the majority computed otherwise).
    winners: DynArray[address, MAX_COMMITTEE] = []
    penalties: uint256 = 0
    min_stake: uint256 = staticcall Registry(registry).min_stake()
    for m: address in members:
        state: uint8 = self.revealed[did][m]
        if verdict != empty(bytes32) and self.votes[did][m] == verdict:
            winners.append(m)
        elif state == 0 or (verdict != empty(bytes32) and state == 1):
            penalties += extcall Registry(registry).penalize(m, min_stake * absent_bps // BPS, False)
    self.burned += penalties
    if verdict == empty(bytes32):
        self.claimable[d.challenger] += d.bond
        self._finish(did, NO_VERDICT, verdict, 0)
        return
    if verdict == d.claimed:  # the node was right: the challenge was frivolous
        bond: uint256 = d.bond
        if bond == 0:  # a staked challenger's stake backs its challenge
            bond = extcall Registry(registry).penalize(d.challenger, min_bond, False)
        to_node: uint256 = bond * node_bps // BPS
        self.claimable[d.node] += to_node
        self._share(winners, bond - to_node)
        self._finish(did, NODE_RIGHT, verdict, 0)
        return
    taken: uint256 = extcall Registry(registry).penalize(d.node, max_value(uint256), True)
    reward: uint256 = taken * reporter_bps // BPS
    to_committee: uint256 = taken * committee_bps // BPS
    self.claimable[d.challenger] += d.bond + reward
    self._share(winners, to_committee)
    self.burned += taken - reward - to_committee
    self._finish(did, NODE_WRONG, verdict, taken)


@internal
def _share(winners: DynArray[address, MAX_COMMITTEE], amount: uint256):
    if len(winners) == 0:
        self.burned += amount
        return
    each: uint256 = amount // len(winners)
    for w: address in winners:
        self.claimable[w] += each
    self.burned += amount - each * len(winners)


@external
@nonreentrant
def claim():
    """@notice Withdraw what disputes paid this account (bonds back, rewards)."""
    amount: uint256 = self.claimable[msg.sender]
    assert amount > 0, "claim: nothing to claim"
    self.claimable[msg.sender] = 0
    send(msg.sender, amount)


@external
@view
def committee_of(did: uint256) -> DynArray[address, MAX_COMMITTEE]:
    return self.committee[did]


@external
@view
def is_final_undisputed(node: address, leaf: Receipt, index: uint256, tree_size: uint256,
                        proof: DynArray[bytes32, MAX_PROOF]) -> bool:
    """@notice Whether a receipt leaf of `node` is final: proven under the first anchored tree covering it, its
            challenge window passed, no dispute on it is open or ended without the committee confirming it, and
            the node was never slashed."""
    leaf_hash: bytes32 = self._leaf_hash(leaf)
    anchored_at: uint256 = self._anchored_at(node, index, tree_size, leaf_hash, proof)
    if anchored_at == 0 or block.timestamp <= anchored_at + challenge_window:
        return False
    if staticcall Registry(registry).is_slashed(node):
        return False
    did: uint256 = self.leaf_dispute[keccak256(abi_encode(node, leaf_hash))]
    return did == 0 or self.disputes[did].status == NODE_RIGHT
