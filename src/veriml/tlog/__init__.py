"""The transparency log: RFC 9162 Merkle trees, C2SP signed notes, checkpoints, cosignatures, tiles, proofs and
witnesses. Depends only on `codec`, `identity` and `errors`, and on httpx for reading a remote log's tiles
(`tile_reader`)."""

from veriml.tlog.checkpoint import Checkpoint, SignedCheckpoint, TrustPolicy, cosign, verify_cosignature
from veriml.tlog.log import Log
from veriml.tlog.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    node_hash,
    root_of_leaves,
    verify_consistency,
    verify_inclusion,
)
from veriml.tlog.note import Note, NoteSignature, parse_note, sign_note, verify_note
from veriml.tlog.proof_text import TlogProof
from veriml.tlog.publisher import CheckpointPublisher
from veriml.tlog.tiles import TileRef, encode_index, parse_tile_path, read_checkpoint, read_entries, read_tile
from veriml.tlog.witness import StaleOldSize, Witness, add_checkpoint_body, parse_add_checkpoint

__all__ = [
    "EMPTY_ROOT",
    "Checkpoint",
    "CheckpointPublisher",
    "Log",
    "Note",
    "NoteSignature",
    "SignedCheckpoint",
    "StaleOldSize",
    "TileRef",
    "TlogProof",
    "TrustPolicy",
    "Witness",
    "add_checkpoint_body",
    "cosign",
    "encode_index",
    "leaf_hash",
    "node_hash",
    "parse_add_checkpoint",
    "parse_note",
    "parse_tile_path",
    "read_checkpoint",
    "read_entries",
    "read_tile",
    "root_of_leaves",
    "sign_note",
    "verify_consistency",
    "verify_cosignature",
    "verify_inclusion",
    "verify_note",
]
