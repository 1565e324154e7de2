"""C2SP signed-note, tlog-checkpoint and tlog-tiles examples.

Sources: golang.org/x/mod/sumdb/note note_test.go (the PeterNeumann signed note) and the C2SP specifications
tlog-tiles.md (tile index encoding, partial tile widths) and tlog-checkpoint.md (example checkpoint text)."""

import pytest

from veriml.identity import SigningKey, VerifyingKey
from veriml.tlog import Checkpoint, SignedCheckpoint, parse_note, sign_note, verify_note
from veriml.tlog.tiles import TileRef, encode_index, parse_tile_path

VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
SIGNED = (
    TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_reference_note_signs_and_verifies_byte_for_byte():
    assert sign_note(TEXT, SigningKey.parse_private(SKEY)).to_text() == SIGNED
    note = parse_note(SIGNED.encode())
    assert note.text == TEXT
    assert verify_note(note, [VerifyingKey.parse(VKEY)]) == [VerifyingKey.parse(VKEY)]


def test_reference_checkpoint_text_parses():
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = Checkpoint.parse_text(text)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.text() == text
    signature = "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8="
    signed = SignedCheckpoint.parse(f"{text}\n— example.com/behind-the-sofa {signature}\n")
    assert signed.checkpoint == checkpoint and len(signed.note.signatures) == 1


@pytest.mark.parametrize(
    ("index", "encoded"), [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")]
)
def test_tile_index_encoding(index, encoded):
    assert encode_index(index) == encoded
    assert parse_tile_path(f"tile/0/{encoded}").index == index


def test_tile_paths():
    assert parse_tile_path("tile/3/x001/x234/067.p/8") == TileRef(3, 1234067, 8)
    assert parse_tile_path("tile/entries/000.p/112") == TileRef(None, 0, 112)
    assert TileRef(1, 0, 17).path == "tile/1/000.p/17"
    assert TileRef(0, 273, 256).path == "tile/0/273"
    for bad in ["tile/0/1", "tile/64/000", "tile/0/000.p/0", "tile/0/000.p/256", "tile/01/000", "tile/0/x000/001",
                "tile/0/001/002", "tile/x/000"]:  # fmt: skip
        with pytest.raises(Exception, match="tile path"):
            parse_tile_path(bad)
