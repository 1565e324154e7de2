"""A node that answers another prompt than the messages it was sent: it tokenizes the rendered conversation with
"France" turned into "Germany", then generates, signs and reports that honestly. Test-only; usage:
substitution_chat_prompt.py --config node.toml"""

from veriml.node.__main__ import main
from veriml.service.service import Service

honest_tokenize = Service.tokenize


def other_prompt(self, manifest, text, params):  # type: ignore[no-untyped-def]
    return honest_tokenize(self, manifest, text.replace("France", "Germany"), params)


Service.tokenize = other_prompt  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
