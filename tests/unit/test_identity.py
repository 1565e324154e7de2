import os

import pytest

from veriml.errors import InvalidInput, NotFound, PermissionDenied, VerificationFailed
from veriml.identity import Domain, SigningKey, VerifyingKey


def test_key_text_round_trips_and_names_the_key():
    key = SigningKey.generate("alice")
    parsed = VerifyingKey.parse(key.public.vkey)
    assert parsed == key.public
    name, key_hash, _ = key.public.vkey.split("+", 2)
    assert (name, len(key_hash)) == ("alice", 8)
    assert key.key_id == f"alice+{key_hash}"
    assert SigningKey.parse_private(key.private_text()).public == key.public


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\there"])
def test_key_names_follow_signed_note_rules(name):
    with pytest.raises(InvalidInput, match="no spaces or"):
        SigningKey.generate(name)


def test_verifier_key_with_wrong_hash_is_refused():
    text = SigningKey.generate("alice").public.vkey
    name, key_hash, rest = text.split("+", 2)
    wrong = f"{name}+{'0' * 8 if key_hash != '0' * 8 else '1' * 8}+{rest}"
    with pytest.raises(InvalidInput, match="key hash does not match"):
        VerifyingKey.parse(wrong)
    with pytest.raises(InvalidInput, match="expected '<name>"):
        VerifyingKey.parse("alice")


def test_signatures_are_separated_by_domain():
    key = SigningKey.generate("node")
    signature = key.sign(Domain.RECEIPT, b"payload")
    key.public.verify(Domain.RECEIPT, b"payload", signature)
    with pytest.raises(VerificationFailed, match="not valid for key node"):
        key.public.verify(Domain.MANIFEST, b"payload", signature)
    with pytest.raises(VerificationFailed):
        SigningKey.generate("node").public.verify(Domain.RECEIPT, b"payload", signature)


def test_key_file_is_written_0600_and_loads(tmp_path):
    key = SigningKey.generate("alice")
    path = tmp_path / "keys" / "alice.key"
    key.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert SigningKey.load(path).public == key.public
    with pytest.raises(InvalidInput, match="already exists"):
        SigningKey.generate("other").save(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path, mode):
    path = tmp_path / "alice.key"
    SigningKey.generate("alice").save(path)
    os.chmod(path, mode)
    with pytest.raises(PermissionDenied, match=f"mode {mode:04o} lets others read it; expected 0600"):
        SigningKey.load(path)


def test_missing_or_garbled_key_file(tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        SigningKey.load(tmp_path / "none.key")
    path = tmp_path / "bad.key"
    path.write_text("not a key")
    os.chmod(path, 0o600)
    with pytest.raises(InvalidInput, match="PRIVATE\\+KEY\\+"):
        SigningKey.load(path)
