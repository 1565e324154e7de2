"""Regenerate docs/screenshots/*.png: the explorer's main pages on a small devnet (tests/browser/world.py), taken in
Debian's headless Chromium.

Usage: python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.world import build, launch  # noqa: E402
from veriml import devnet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="veriml-screenshots-") as tmp:
        root = Path(tmp) / "net"
        world = build(root)
        try:
            pages = {
                "network": "/",
                "models": "/models",
                "model-version": "/models/alice/mlp/v/1",
                "hostile-description": "/models/mallory/xss/v/1",
                "log": "/log",
                "result": f"/results/{world.bundle_index}",
                "evidence": "/evidence",
            }
            with sync_playwright() as playwright:
                context = launch(playwright, Path(tmp) / "profile")
                page = context.new_page()
                for name, path in pages.items():
                    page.goto(world.url + path)
                    page.screenshot(path=str(args.out / f"{name}.png"), full_page=name not in ("result", "log"))
                    print(f"{name}: {world.url}{path}")
                page.goto(world.url + "/verify")
                page.fill("#bundle", world.bundle.to_bytes().decode())
                page.fill("#publishers", world.publisher.public.vkey)
                page.fill("#nodes", world.infos[0]["node"])
                page.fill("#witnesses", "\n".join(world.witnesses))
                page.fill("#quorum", "2")
                page.click("#run")
                page.wait_for_selector("#verdict[data-verdict]")
                page.screenshot(path=str(args.out / "verify.png"), full_page=True)
                print("verify: /verify with the logged bundle and its trusted keys")
                context.close()
        finally:
            devnet.down(root)


if __name__ == "__main__":
    main()
