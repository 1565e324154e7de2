"""What a node says of its own configuration when it starts."""

import logging

import pytest

from veriml.node import Node, NodeConfig


@pytest.mark.parametrize(("retention", "warned"), [(10.0, True), (86400.0, False), (7 * 86400.0, False)])
def test_a_retention_under_what_auditors_hold_nodes_to_is_warned_of(tmp_path, caplog, retention, warned):
    with caplog.at_level(logging.WARNING, logger="veriml.node"):
        node = Node(NodeConfig(home=tmp_path / "node", audit_fraction=0, audit_retention=retention))
        node.stop()
    found = [r.getMessage() for r in caplog.records if "audit_retention" in r.getMessage()]
    assert bool(found) == warned, found
    if warned:
        assert "10 s is under the 86400 s" in found[0] and "recorded as refused" in found[0]
