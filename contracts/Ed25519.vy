# pragma version ~=0.4.3
"""
@title Ed25519 signature verification (RFC 8032 §5.1.7) in EVM code
@notice Used by the node registry to check that a node key signed its account binding and its checkpoints.
        SHA-512 runs in EVM code; field inverses and square roots use the MODEXP precompile (0x05); the two
        scalar multiplications share one double-and-add (Shamir's trick) in extended twisted Edwards
        coordinates. Cofactorless check, as libsodium and `cryptography` do: encode([S]B - [k]A) == R, S < L;
        keys of small order are refused, as libsodium refuses them.
        ~0.8M gas for a short message, ~0.2M more per 128-byte SHA-512 block.
"""

P: constant(uint256) = 57896044618658097711785492504343953926634992332820282019728792003956564819949  # 2^255-19
L: constant(uint256) = 7237005577332262213973186563042994240857116359379907606001950938285454250989  # group order
ED_D: constant(uint256) = 37095705934669439343138083508754565189542113879843219016388785533085940283555
ED_D2: constant(uint256) = 16295367250680780974490674513165176452449235426866156013048779062215315747161
SQRT_M1: constant(uint256) = 19681161376707505956807079304988542015446066515923890162744021073123829784752
BX: constant(uint256) = 15112221349535400772501151409588531511454012693041857206046113283949847762202
BY: constant(uint256) = 46316835694926478169428394003475163141307993866256225615783033603165251855960
# y of the points of order 8 (the others of small order have y = 0, 1 or P - 1), as libsodium lists them
SMALL_ORDER_Y1: constant(uint256) = 2707385501144840649318225287225658788936804267575313519463743609750303402022
SMALL_ORDER_Y2: constant(uint256) = 55188659117513257062467267217118295137698188065244968500265048394206261417927
TWO256_MOD_L: constant(uint256) = 7237005577332262213973186563042994240413239274941949949428319933631315875101
MASK64: constant(uint256) = 2**64 - 1
MAX_SIGNED: constant(uint256) = 512  # bytes of a message signed with Ed25519 that the contract checks
SHA_IN: constant(uint256) = MAX_SIGNED + 64  # R || A || message
SHA_BLOCKS: constant(uint256) = (SHA_IN + 17 + 127) // 128
MODEXP: constant(address) = 0x0000000000000000000000000000000000000005
SHA512_K: constant(uint256[80]) = [
    4794697086780616226,
    8158064640168781261,
    13096744586834688815,
    16840607885511220156,
    4131703408338449720,
    6480981068601479193,
    10538285296894168987,
    12329834152419229976,
    15566598209576043074,
    1334009975649890238,
    2608012711638119052,
    6128411473006802146,
    8268148722764581231,
    9286055187155687089,
    11230858885718282805,
    13951009754708518548,
    16472876342353939154,
    17275323862435702243,
    1135362057144423861,
    2597628984639134821,
    3308224258029322869,
    5365058923640841347,
    6679025012923562964,
    8573033837759648693,
    10970295158949994411,
    12119686244451234320,
    12683024718118986047,
    13788192230050041572,
    14330467153632333762,
    15395433587784984357,
    489312712824947311,
    1452737877330783856,
    2861767655752347644,
    3322285676063803686,
    5560940570517711597,
    5996557281743188959,
    7280758554555802590,
    8532644243296465576,
    9350256976987008742,
    10552545826968843579,
    11727347734174303076,
    12113106623233404929,
    14000437183269869457,
    14369950271660146224,
    15101387698204529176,
    15463397548674623760,
    17586052441742319658,
    1182934255886127544,
    1847814050463011016,
    2177327727835720531,
    2830643537854262169,
    3796741975233480872,
    4115178125766777443,
    5681478168544905931,
    6601373596472566643,
    7507060721942968483,
    8399075790359081724,
    8693463985226723168,
    9568029438360202098,
    10144078919501101548,
    10430055236837252648,
    11840083180663258601,
    13761210420658862357,
    14299343276471374635,
    14566680578165727644,
    15097957966210449927,
    16922976911328602910,
    17689382322260857208,
    500013540394364858,
    748580250866718886,
    1242879168328830382,
    1977374033974150939,
    2944078676154940804,
    3659926193048069267,
    4368137639120453308,
    4836135668995329356,
    5532061633213252278,
    6448918945643986474,
    6902733635092675308,
    7801388544844847127,
]
SHA512_IV: constant(uint256[8]) = [
    7640891576956012808,
    13503953896175478587,
    4354685564936845355,
    11912009170470909681,
    5840696475078001361,
    11170449401992604703,
    2270897969802886507,
    6620516959819538809,
]


@internal
@pure
def _rev(x: uint256) -> uint256:
    """Reverse the 32 bytes of a word (Ed25519 encodes integers little-endian)."""
    v: uint256 = x
    m: uint256 = convert(0x00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF, uint256)
    v = ((v >> 8) & m) | ((v & m) << 8)
    m = convert(0x0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF, uint256)
    v = ((v >> 16) & m) | ((v & m) << 16)
    m = convert(0x00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF, uint256)
    v = ((v >> 32) & m) | ((v & m) << 32)
    m = convert(0x0000000000000000FFFFFFFFFFFFFFFF0000000000000000FFFFFFFFFFFFFFFF, uint256)
    v = ((v >> 64) & m) | ((v & m) << 64)
    return (v >> 128) | ((v & (2**128 - 1)) << 128)


@internal
@pure
def _word(data: Bytes[SHA_IN], n: uint256, total: uint256, pos: uint256) -> uint256:
    """The big-endian 64-bit word at `pos` of the SHA-512-padded message."""
    if pos + 8 <= n:
        return convert(slice(data, pos, 8), uint256)
    v: uint256 = 0
    for k: uint256 in range(8):
        i: uint256 = pos + k
        b: uint256 = 0
        if i < n:
            b = convert(slice(data, i, 1), uint256)
        elif i == n:
            b = 128
        elif i >= total - 8:
            b = ((n * 8) >> (8 * (total - 1 - i))) & 255
        v = (v << 8) | b
    return v


@internal
@pure
def _sha512(data: Bytes[SHA_IN]) -> (uint256, uint256):
    """SHA-512 (FIPS 180-4): the digest's first and last 32 bytes, each as a big-endian word."""
    n: uint256 = len(data)
    total: uint256 = (n + 17 + 127) // 128 * 128
    h: uint256[8] = SHA512_IV
    w: uint256[80] = empty(uint256[80])
    for blk: uint256 in range(SHA_BLOCKS):
        if blk * 128 >= total:
            break
        for j: uint256 in range(16):
            w[j] = self._word(data, n, total, blk * 128 + j * 8)
        for j: uint256 in range(16, 80):
            x: uint256 = w[j - 15]
            y: uint256 = w[j - 2]
            s0: uint256 = ((((x >> 1) | (x << 63))) & MASK64) ^ ((((x >> 8) | (x << 56))) & MASK64) ^ (x >> 7)
            s1: uint256 = ((((y >> 19) | (y << 45))) & MASK64) ^ ((((y >> 61) | (y << 3))) & MASK64) ^ (y >> 6)
            w[j] = unsafe_add(unsafe_add(w[j - 16], s0), unsafe_add(w[j - 7], s1)) & MASK64
        a: uint256 = h[0]
        b: uint256 = h[1]
        c: uint256 = h[2]
        d: uint256 = h[3]
        e: uint256 = h[4]
        f: uint256 = h[5]
        g: uint256 = h[6]
        hh: uint256 = h[7]
        for j: uint256 in range(80):
            t1: uint256 = unsafe_add(
                unsafe_add(hh, ((((e >> 14) | (e << 50))) & MASK64) ^ ((((e >> 18) | (e << 46))) & MASK64) ^ ((((e >> 41) | (e << 23))) & MASK64)),
                unsafe_add(unsafe_add((e & f) ^ ((e ^ MASK64) & g), SHA512_K[j]), w[j]),
            ) & MASK64
            t2: uint256 = unsafe_add(
                ((((a >> 28) | (a << 36))) & MASK64) ^ ((((a >> 34) | (a << 30))) & MASK64) ^ ((((a >> 39) | (a << 25))) & MASK64), (a & b) ^ (a & c) ^ (b & c)
            ) & MASK64
            hh = g
            g = f
            f = e
            e = unsafe_add(d, t1) & MASK64
            d = c
            c = b
            b = a
            a = unsafe_add(t1, t2) & MASK64
        h[0] = unsafe_add(h[0], a) & MASK64
        h[1] = unsafe_add(h[1], b) & MASK64
        h[2] = unsafe_add(h[2], c) & MASK64
        h[3] = unsafe_add(h[3], d) & MASK64
        h[4] = unsafe_add(h[4], e) & MASK64
        h[5] = unsafe_add(h[5], f) & MASK64
        h[6] = unsafe_add(h[6], g) & MASK64
        h[7] = unsafe_add(h[7], hh) & MASK64
    return (h[0] << 192) | (h[1] << 128) | (h[2] << 64) | h[3], (h[4] << 192) | (h[5] << 128) | (h[6] << 64) | h[7]


@internal
@view
def _pow(base: uint256, exponent: uint256) -> uint256:
    out: Bytes[32] = raw_call(
        MODEXP, abi_encode(convert(32, uint256), convert(32, uint256), convert(32, uint256), base, exponent, P),
        max_outsize=32, is_static_call=True,
    )
    return convert(out, uint256)


@internal
@pure
def _ed_add(x1: uint256, y1: uint256, z1: uint256, t1: uint256,
            x2: uint256, y2: uint256, z2: uint256, t2: uint256) -> (uint256, uint256, uint256, uint256):
    # add-2008-hwcd-3 for a = -1, extended coordinates
    a: uint256 = uint256_mulmod(uint256_addmod(y1, P - x1, P), uint256_addmod(y2, P - x2, P), P)
    b: uint256 = uint256_mulmod(uint256_addmod(y1, x1, P), uint256_addmod(y2, x2, P), P)
    c: uint256 = uint256_mulmod(uint256_mulmod(t1, ED_D2, P), t2, P)
    d: uint256 = uint256_mulmod(uint256_addmod(z1, z1, P), z2, P)
    e: uint256 = uint256_addmod(b, P - a, P)
    f: uint256 = uint256_addmod(d, P - c, P)
    g: uint256 = uint256_addmod(d, c, P)
    h: uint256 = uint256_addmod(b, a, P)
    return uint256_mulmod(e, f, P), uint256_mulmod(g, h, P), uint256_mulmod(f, g, P), uint256_mulmod(e, h, P)


@internal
@view
def _ed_decompress(encoded: bytes32) -> (bool, uint256, uint256):
    v: uint256 = self._rev(convert(encoded, uint256))
    sign: uint256 = v >> 255
    y: uint256 = v & (2**255 - 1)
    if y >= P:
        return False, 0, 0
    yy: uint256 = uint256_mulmod(y, y, P)
    u: uint256 = uint256_addmod(yy, P - 1, P)
    w: uint256 = uint256_addmod(uint256_mulmod(ED_D, yy, P), 1, P)
    w3: uint256 = uint256_mulmod(uint256_mulmod(w, w, P), w, P)
    w7: uint256 = uint256_mulmod(uint256_mulmod(w3, w3, P), w, P)
    x: uint256 = uint256_mulmod(uint256_mulmod(u, w3, P), self._pow(uint256_mulmod(u, w7, P), (P - 5) // 8), P)
    wxx: uint256 = uint256_mulmod(w, uint256_mulmod(x, x, P), P)
    if wxx != u:
        if uint256_addmod(wxx, u, P) != 0:
            return False, 0, 0
        x = uint256_mulmod(x, SQRT_M1, P)
    if x == 0 and sign == 1:
        return False, 0, 0
    if x & 1 != sign:
        x = P - x
    return True, x, y


@internal
@view
def _ed25519_verify(pubkey: bytes32, message: Bytes[MAX_SIGNED], signature: Bytes[64]) -> bool:
    """RFC 8032 §5.1.7, cofactorless: encode([S]B - [k]A) == R, k = SHA-512(R || A || M) mod L."""
    if len(signature) != 64:
        return False
    r: bytes32 = convert(slice(signature, 0, 32), bytes32)
    s: uint256 = self._rev(convert(slice(signature, 32, 32), uint256))
    if s >= L:
        return False
    ok: bool = False
    ax: uint256 = 0
    ay: uint256 = 0
    ok, ax, ay = self._ed_decompress(pubkey)
    if not ok:
        return False
    # A key of small order lets anyone sign (the neutral point with R = neutral, S = 0 signs every message):
    # refused, as libsodium and veriml's own verifiers refuse it.
    if ay == 0 or ay == 1 or ay == P - 1 or ay == SMALL_ORDER_Y1 or ay == SMALL_ORDER_Y2:
        return False
    first: uint256 = 0
    last: uint256 = 0
    first, last = self._sha512(concat(r, pubkey, message))
    k: uint256 = uint256_addmod(self._rev(first) % L, uint256_mulmod(self._rev(last), TWO256_MOD_L, L), L)
    # [S]B + [k](-A) by one double-and-add over both scalars (Shamir's trick)
    nax: uint256 = 0
    if ax != 0:
        nax = P - ax
    nat: uint256 = uint256_mulmod(nax, ay, P)
    bt: uint256 = uint256_mulmod(BX, BY, P)
    sx: uint256 = 0
    sy: uint256 = 0
    sz: uint256 = 0
    st: uint256 = 0
    sx, sy, sz, st = self._ed_add(BX, BY, 1, bt, nax, ay, 1, nat)
    qx: uint256 = 0
    qy: uint256 = 1
    qz: uint256 = 1
    qt: uint256 = 0
    for i: uint256 in range(253):
        bit: uint256 = 252 - i
        # double (dbl-2008-hwcd, a = -1)
        a: uint256 = uint256_mulmod(qx, qx, P)
        b: uint256 = uint256_mulmod(qy, qy, P)
        c: uint256 = uint256_mulmod(uint256_addmod(qz, qz, P), qz, P)
        ab: uint256 = uint256_addmod(a, b, P)
        e: uint256 = uint256_addmod(qx, qy, P)
        e = uint256_addmod(uint256_mulmod(e, e, P), P - ab, P)
        g: uint256 = uint256_addmod(b, P - a, P)
        f: uint256 = uint256_addmod(g, P - c, P)
        h: uint256 = (P - ab) % P
        qx = uint256_mulmod(e, f, P)
        qy = uint256_mulmod(g, h, P)
        qz = uint256_mulmod(f, g, P)
        qt = uint256_mulmod(e, h, P)
        sb: uint256 = (s >> bit) & 1
        kb: uint256 = (k >> bit) & 1
        if sb == 0 and kb == 0:
            continue
        # add (add-2008-hwcd-3, a = -1) the precomputed point for this pair of bits
        px: uint256 = sx
        py: uint256 = sy
        pz: uint256 = sz
        pt: uint256 = st
        if kb == 0:
            px = BX
            py = BY
            pz = 1
            pt = bt
        elif sb == 0:
            px = nax
            py = ay
            pz = 1
            pt = nat
        a = uint256_mulmod(uint256_addmod(qy, P - qx, P), uint256_addmod(py, P - px, P), P)
        b = uint256_mulmod(uint256_addmod(qy, qx, P), uint256_addmod(py, px, P), P)
        c = uint256_mulmod(uint256_mulmod(qt, ED_D2, P), pt, P)
        d: uint256 = uint256_mulmod(uint256_addmod(qz, qz, P), pz, P)
        e = uint256_addmod(b, P - a, P)
        f = uint256_addmod(d, P - c, P)
        g = uint256_addmod(d, c, P)
        h = uint256_addmod(b, a, P)
        qx = uint256_mulmod(e, f, P)
        qy = uint256_mulmod(g, h, P)
        qz = uint256_mulmod(f, g, P)
        qt = uint256_mulmod(e, h, P)
    zinv: uint256 = self._pow(qz, P - 2)
    x: uint256 = uint256_mulmod(qx, zinv, P)
    y: uint256 = uint256_mulmod(qy, zinv, P)
    return (y | ((x & 1) << 255)) == self._rev(convert(r, uint256))


@external
@view
def verify(key: bytes32, message: Bytes[MAX_SIGNED], signature: Bytes[64]) -> bool:
    return self._ed25519_verify(key, message, signature)
