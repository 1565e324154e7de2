"""The embedded chain (eth-tester on py-evm) with veriml's contracts deployed, for the contract tests."""

from __future__ import annotations

import pytest
from eth_account import Account

from veriml.chain import Chain, Contracts, deploy
from veriml.chain.connection import EMBEDDED_KEYS

MIN_STAKE = 10**17
EXIT_DELAY = 3600


@pytest.fixture()
def chain() -> Chain:
    return Chain.embedded()


@pytest.fixture()
def accounts():  # type: ignore[no-untyped-def]
    return [Account.from_key(key) for key in EMBEDDED_KEYS]


@pytest.fixture()
def contracts(chain, accounts) -> Contracts:  # type: ignore[no-untyped-def]
    deployment = deploy(chain, accounts[0], min_stake=MIN_STAKE, exit_delay=EXIT_DELAY, reporter_bps=5000)
    return Contracts(chain, deployment)
