"""A node whose chat text is not what its signed tokens decode to: it generates and signs honestly, then adds a
sentence to the text it sends (streamed and not). Test-only; usage: substitution_chat_text.py --config node.toml"""

from dataclasses import replace

from veriml.node.__main__ import main
from veriml.service.service import Service

ADDED = " Trust me."
honest_generate_submit = Service.generate_submit


def lying(self, manifest, prompt_tokens, params, request_id=None, on_text=None, **options):  # type: ignore[no-untyped-def]
    bundle, generation, logged = honest_generate_submit(
        self, manifest, prompt_tokens, params, request_id, on_text, **options
    )
    if on_text is not None:
        on_text(ADDED)
    return bundle, replace(generation, text=generation.text + ADDED), logged


Service.generate_submit = lying  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
