"""C2SP signed-note key vectors.

Source: golang.org/x/mod/sumdb/note, note_test.go (the reference implementation of C2SP signed-note v1.0.0):
the PeterNeumann signer and verifier keys, and the signature of its example text.
"""

import base64

from veriml.identity import SigningKey, VerifyingKey

VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
TEXT = b"If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
SIGNATURE = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="


def test_signer_key_text_gives_the_reference_verifier_key():
    key = SigningKey.parse_private(SKEY)
    assert key.public.vkey == VKEY
    assert key.private_text() == SKEY
    assert VerifyingKey.parse(VKEY).key_hash.hex() == "c74f20a3"


def test_signature_matches_the_reference_note_signature():
    key = SigningKey.parse_private(SKEY)
    # A note signature line carries the 4-byte key hash, then the Ed25519 signature (deterministic).
    assert base64.b64encode(key.public.key_hash + key.sign_raw(TEXT)).decode() == SIGNATURE
    VerifyingKey.parse(VKEY).verify_raw(TEXT, base64.b64decode(SIGNATURE)[4:])
