import base64

import pytest

from veriml.errors import InvalidInput, VerificationFailed
from veriml.identity import SigningKey, VerifyingKey
from veriml.tlog import Checkpoint, SignedCheckpoint, TrustPolicy, cosign, parse_note, sign_note, verify_note

LOG = SigningKey.generate("example.com/log")
ROOT = base64.b64encode(bytes(32)).decode()
TEXT = f"example.com/log\n5\n{ROOT}\n"


def signed_text(key=LOG, text=TEXT):
    return sign_note(text, key).to_text()


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("no newline at the end", "must end with a newline"),
        (f"{TEXT}— example.com/log AAAA\n", "no blank line"),
        (f"{TEXT}\n", "no signature lines"),
        (f"{TEXT}\n- example.com/log AAAAAAAA\n", "must start with '— '"),
        (f"{TEXT}\n— example.com/log not*base64\n", "not valid base64"),
        (f"{TEXT}\n— example.com/log AAAA\n", "shorter than a key ID"),
        (f"{TEXT}\n— bad name AAAAAAAA\n", "expected '— <key name> <base64 signature>'"),
        ("a\tb\n\n— k AAAAAAAA\n", "control character 0x09"),
    ],
)
def test_malformed_notes(note, message):
    with pytest.raises(InvalidInput, match=message):
        parse_note(note.encode())


def test_duplicate_signers_are_refused():
    line = signed_text().split("\n\n")[1]
    with pytest.raises(InvalidInput, match="signs twice"):
        parse_note(f"{TEXT}\n{line}{line}".encode())


def test_unknown_signatures_are_ignored_and_bad_known_ones_reject():
    other = SigningKey.generate("example.com/other")
    note = parse_note(signed_text()).with_signatures(parse_note(signed_text(other)).signatures)
    assert verify_note(note, [LOG.public]) == [LOG.public]
    with pytest.raises(VerificationFailed, match="not signed by any of the expected keys"):
        verify_note(note, [SigningKey.generate("example.com/third").public])
    forged = parse_note(signed_text().replace("\n5\n", "\n6\n"))
    with pytest.raises(VerificationFailed, match="signature is not valid"):
        verify_note(forged, [LOG.public])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("example.com/log\n5\n", "at least 3 lines"),
        (f"example.com/log\n05\n{ROOT}\n", "without leading zeroes"),
        (f"example.com/log\nfive\n{ROOT}\n", "not a decimal"),
        ("example.com/log\n5\nAAAA\n", "32-byte hash"),
        ("example.com/log\n5\n!!!!\n", "not valid base64"),
        (f"\n5\n{ROOT}\n", "origin line is empty"),
        (f"example.com/log\n5\n{ROOT}\n\nx\n", "extension lines must not be empty"),
    ],
)
def test_malformed_checkpoints(text, message):
    with pytest.raises(InvalidInput, match=message):
        SignedCheckpoint.parse(sign_note(text, LOG).to_text())


def test_cosignatures_and_trust_policy():
    checkpoint = Checkpoint("example.com/log", 5, bytes(32))
    signed = SignedCheckpoint(checkpoint, sign_note(checkpoint.text(), LOG))
    witnesses = [SigningKey.generate(f"witness.example/w{i}") for i in range(3)]
    cosigned = signed.with_cosignatures([cosign(checkpoint, w, timestamp=1700000000) for w in witnesses[:2]])
    publics = tuple(w.cosigner_public for w in witnesses)
    assert TrustPolicy(LOG.public, publics, 2).check(cosigned) == list(publics[:2])
    with pytest.raises(VerificationFailed, match="cosigned by 2 of the trusted witnesses, 3 required"):
        TrustPolicy(LOG.public, publics, 3).check(cosigned)
    reparsed = SignedCheckpoint.parse(cosigned.to_text())
    assert TrustPolicy(LOG.public, publics, 2).check(reparsed)
    # A cosignature is over the checkpoint: moved onto another checkpoint it fails.
    other = Checkpoint("example.com/log", 6, bytes(32))
    moved = SignedCheckpoint(other, sign_note(other.text(), LOG)).with_cosignatures(cosigned.note.signatures[1:])
    with pytest.raises(VerificationFailed, match="not valid"):
        TrustPolicy(LOG.public, publics, 1).check(moved)
    with pytest.raises(VerificationFailed, match="origin"):
        TrustPolicy(SigningKey.generate("example.com/else").public).check(signed)
    with pytest.raises(InvalidInput, match="quorum"):
        TrustPolicy(LOG.public, publics, 4)
    with pytest.raises(InvalidInput, match="cosigner keys"):
        TrustPolicy(LOG.public, (LOG.public,), 1)


def test_witness_key_ids_use_signature_type_4():
    witness = SigningKey.generate("witness.example/w1")
    assert witness.cosigner_public.key_hash != witness.public.key_hash
    assert base64.b64decode(witness.cosigner_public.vkey.split("+", 2)[2])[0] == 0x04


def test_verifier_keys_of_unknown_signature_types_are_refused():
    raw = base64.b64decode(LOG.public.vkey.split("+", 2)[2])
    ecdsa_typed = f"{LOG.public.key_id}+{base64.b64encode(bytes([0x02]) + raw[1:]).decode()}"
    with pytest.raises(InvalidInput, match="type byte 0x01 or 0x04"):
        VerifyingKey.parse(ecdsa_typed)


def test_tlog_proof_text_is_parsed_strictly():
    from veriml.tlog import TlogProof

    checkpoint = Checkpoint("example.com/log", 5, bytes(32))
    note = sign_note(checkpoint.text(), LOG).to_text()
    good = f"c2sp.org/tlog-proof@v1\nindex 3\n{ROOT}\n{ROOT}\n\n{note}"
    proof = TlogProof.parse(good)
    assert (proof.index, len(proof.hashes)) == (3, 2) and TlogProof.parse(proof.to_text()) == proof
    with_extra = TlogProof.parse(good.replace("\nindex", "\nextra aGVsbG8=\nindex"))
    assert with_extra.extra == b"hello" and TlogProof.parse(with_extra.to_text()) == with_extra
    for bad, message in [
        (good.replace("tlog-proof@v1", "tlog-proof@v2"), "first line must be"),
        (good.replace("index 3", "index 03"), "without leading zeroes"),
        (good.replace("index 3", "idx 3"), "expected an 'index <N>' line"),
        (good.replace(f"\n{ROOT}\n\n", "\nAAAA\n\n"), "32-byte hash"),
        ("c2sp.org/tlog-proof@v1\nindex 3\n", "no blank line"),
        ("c2sp.org/tlog-proof@v1\nindex 3\n" + f"{ROOT}\n" * 64 + f"\n{note}", "more than 63"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            TlogProof.parse(bad)
    with pytest.raises(VerificationFailed, match="outside the checkpoint"):
        TlogProof.parse(good.replace("index 3", "index 5")).verify(b"x", TrustPolicy(LOG.public))
