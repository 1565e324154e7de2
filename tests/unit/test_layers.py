"""The import graph points one way (DESIGN §8): ground <- concepts <- flows <- faces, and concepts do not import
each other except receipts, which reads hub and runtime types."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "src" / "veriml"

ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "fsutil": set(),
    "background": set(),
    "bounded_get": set(),  # httpx only
    "codec": {"errors"},
    "identity": {"errors", "codec", "fsutil"},
    "examples": set(),
    "hub": {"errors", "codec", "identity", "fsutil"},
    "runtime": {"errors", "codec", "identity"},
    "tlog": {"errors", "codec", "identity", "fsutil", "background", "bounded_get"},
    "zk": {"errors", "codec", "identity", "fsutil"},
    "receipts": {"errors", "codec", "identity", "fsutil", "hub", "runtime"},
    "service": {"errors", "codec", "identity", "fsutil", "hub", "runtime", "tlog", "receipts", "zk"},
    "sim": set(),  # the dispute economics model: numpy only
    "verify": {"errors", "codec", "identity", "fsutil", "hub", "runtime", "tlog", "receipts", "zk"},
}
FACES = {"node", "client", "chain", "cli", "devnet", "explorer", "integrations", "compat"}


def unit_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def imported_units(path: Path) -> set[str]:
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "veriml" and len(parts) > 1:
                units.add(parts[1])
    return units


def test_imports_point_one_way():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue  # the public API re-exports from every layer
        unit = unit_of(path)
        allowed = ALLOWED.get(unit)
        if allowed is None:
            assert unit in FACES, f"{path}: unit {unit!r} has no place in the layering; add it to this test"
            continue
        for imported in imported_units(path) - {unit}:
            if imported not in allowed:
                violations.append(f"{path.relative_to(PACKAGE)} imports veriml.{imported}")
    assert violations == []
