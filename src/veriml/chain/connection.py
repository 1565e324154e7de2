"""One connection to an EVM chain — an RPC URL, or the in-process eth-tester chain — and sending transactions from
a local key, with chain failures turned into veriml errors a user can act on: an unreachable RPC, a wrong chain
id, an account without funds, a reverted transaction (with its revert reason)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veriml.errors import Conflict, InvalidInput, PermissionDenied, Unavailable

# eth-tester's genesis accounts, funded with 1M ether each; their keys are public (0x...01, 0x...02, ...).
EMBEDDED_KEYS = tuple(f"0x{n:064x}" for n in range(1, 11))
# anvil's default account #0: public knowledge, for local chains only.
ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
MAX_TIP = 2 * 10**9  # wei per gas


def _web3():  # type: ignore[no-untyped-def]
    limit = sys.getrecursionlimit()
    try:
        import web3
    except ImportError as exc:
        raise Unavailable("web3 is not installed: `pip install 'veriml[chain]'` (make install does)") from exc
    finally:
        # web3's dependencies (py_ecc) raise the limit to 100,000 on import, past what the C stack holds: a node
        # would then die on a deeply nested JSON request body instead of refusing it. The client needs no more.
        sys.setrecursionlimit(limit)
    return web3


@dataclass
class Chain:
    w3: Any  # web3.Web3
    where: str  # the RPC URL, or "embedded"
    tester: Any = None  # the EthereumTester behind an embedded chain (time travel in tests)

    @classmethod
    def connect(cls, rpc: str, chain_id: int | None = None, timeout: float = 30.0, check: bool = True) -> Chain:
        """Connect to an RPC URL; with `chain_id`, refuse a chain with another id (a wrong network). With
        `check=False` nothing is sent yet (a node starting before its chain is reachable)."""
        web3 = _web3()
        if not rpc.startswith(("http://", "https://")):
            raise InvalidInput(f"chain RPC {rpc!r}: expected an http(s) URL")
        w3 = web3.Web3(web3.HTTPProvider(rpc, request_kwargs={"timeout": timeout}))
        chain = cls(w3, rpc)
        if check:
            chain.check_chain_id(chain_id)
        return chain

    @classmethod
    def embedded(cls) -> Chain:
        """The in-process chain (eth-tester on py-evm): for one process — the SDK, tests, benchmarks."""
        web3 = _web3()
        from eth_tester import EthereumTester

        tester = fast_estimates(EthereumTester())
        return cls(web3.Web3(web3.EthereumTesterProvider(tester)), "embedded", tester)

    @property
    def chain_id(self) -> int:
        return int(self._call(lambda: self.w3.eth.chain_id, "chain id"))

    def check_chain_id(self, expected: int | None) -> int:
        found = self.chain_id
        if expected is not None and found != expected:
            raise InvalidInput(f"chain RPC {self.where}: chain id is {found}, expected {expected} (wrong network?)")
        return found

    def _call(self, fn: Any, what: str) -> Any:
        import requests

        try:
            return fn()
        except requests.exceptions.RequestException as exc:
            raise Unavailable(
                f"chain RPC {self.where}: unreachable while reading {what} ({type(exc).__name__})"
            ) from exc

    def balance(self, address: str) -> int:
        return int(self._call(lambda: self.w3.eth.get_balance(address), f"balance of {address}"))

    def contract(self, address: str, abi: list[dict[str, Any]]) -> Any:
        return self.w3.eth.contract(address=self.w3.to_checksum_address(address), abi=abi)

    def send(self, account: Any, call: Any, value: int = 0, what: str = "transaction") -> Any:
        """Sign and send a contract call (`contract.functions.f(...)`, or a constructor) from a local account and
        wait for it to be mined. Reverts raise Conflict with the contract's reason; nothing is sent then, since
        gas estimation runs the call first."""
        from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError

        sender = account.address
        try:
            tx = call.build_transaction({"from": sender, "value": value, "nonce": self._nonce(sender), **self._fees()})
        except ContractLogicError as exc:
            raise Conflict(f"{what}: reverted: {_reason(exc)}") from exc
        except Web3RPCError as exc:
            raise self._rpc_error(exc, sender, what) from exc
        except Exception as exc:
            self._reraise_unreachable(exc, what)
            if type(exc).__name__ == "TransactionFailed":  # eth-tester's revert, with the reason in its text
                raise Conflict(f"{what}: reverted: {_reason(exc)}") from exc
            if _no_funds(exc):  # eth-tester estimates gas by running the call, which fails without funds
                raise PermissionDenied(f"{what}: account {sender} has {self.balance(sender)} wei, too little for"
                                       f" value {value} wei plus gas: fund it first") from exc  # fmt: skip
            raise
        # A margin over the estimate: nodes' estimates stop within a tolerance of the least gas that succeeds
        # (anvil's was seen exactly at the edge, and the mined transaction ran out of gas). Unused gas is refunded.
        tx["gas"] = int(tx["gas"]) * 5 // 4 + 10_000
        self._check_funds(sender, tx, what)
        signed = account.sign_transaction(tx)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        except Web3RPCError as exc:
            raise self._rpc_error(exc, sender, what) from exc
        except TimeExhausted as exc:
            raise Unavailable(f"{what}: not mined within 120 s") from exc
        except Exception as exc:
            self._reraise_unreachable(exc, what)
            raise
        if receipt["status"] != 1:
            raise Conflict(
                f"{what}: reverted on chain after passing its gas estimate (transaction 0x{tx_hash.hex()}, gas used"
                f" {receipt['gasUsed']} of {tx['gas']})"
            )
        return receipt

    def _fees(self) -> dict[str, int]:
        """EIP-1559 fees: twice the base fee plus a tip capped at MAX_TIP. Without the cap a local chain's tip
        suggestion (from the tips recently paid) feeds on itself and grows with every transaction."""
        base = int(self._call(lambda: self.w3.eth.get_block("latest").get("baseFeePerGas", 0), "base fee"))
        if not base:
            return {}  # a chain without EIP-1559: web3 fills a legacy gas price
        tip = min(int(self._call(lambda: self.w3.eth.max_priority_fee, "tip")), MAX_TIP)
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}

    def _nonce(self, sender: str) -> int:
        return int(self._call(lambda: self.w3.eth.get_transaction_count(sender, "pending"), "nonce"))

    def _check_funds(self, sender: str, tx: dict[str, Any], what: str) -> None:
        price = int(tx.get("maxFeePerGas") or tx.get("gasPrice") or 0)
        needed = int(tx.get("value", 0)) + int(tx["gas"]) * price
        balance = self.balance(sender)
        if balance < needed:
            raise PermissionDenied(
                f"{what}: account {sender} has {balance} wei, needs {needed} wei (value plus gas): fund it first"
            )

    def _rpc_error(self, exc: Exception, sender: str, what: str) -> Exception:
        text = str(exc)
        if _no_funds(exc):
            return PermissionDenied(
                f"{what}: account {sender} has {self.balance(sender)} wei, too little for value plus gas: fund it first"
            )
        if "revert" in text.lower():
            return Conflict(f"{what}: reverted: {_reason(exc)}")
        return Unavailable(f"{what}: chain RPC {self.where} refused it: {text[:300]}")

    def _reraise_unreachable(self, exc: Exception, what: str) -> None:
        import requests

        if isinstance(exc, requests.exceptions.RequestException):
            raise Unavailable(f"{what}: chain RPC {self.where} unreachable ({type(exc).__name__})") from exc

    def deploy(self, account: Any, abi: list[dict[str, Any]], bytecode: bytes, *args: Any, what: str) -> str:
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        receipt = self.send(account, factory.constructor(*args), what=f"deploy {what}")
        return str(receipt["contractAddress"])

    def fund(self, account: Any, to: str, wei: int) -> None:
        """A plain ether transfer from a local account (the faucet of a local chain, say)."""
        tx = {
            "from": account.address,
            "to": self.w3.to_checksum_address(to),
            "value": wei,
            "nonce": self._nonce(account.address),
            "chainId": self.chain_id,
            "gas": 21000,
            "gasPrice": int(self._call(lambda: self.w3.eth.gas_price, "gas price")) * 2,
        }
        self._check_funds(account.address, tx, f"fund {to}")
        signed = account.sign_transaction(tx)
        self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_raw_transaction(signed.raw_transaction))

    def wait_past(self, block: int, timeout: float = 120.0) -> None:
        """Return once the chain's latest block is after `block` (a reveal must land, and be estimated, in a
        later block than its commitment). A local chain that mines only on transactions is asked to mine one."""
        deadline = time.monotonic() + timeout
        while self._call(lambda: self.w3.eth.block_number, "block number") <= block:
            if self.tester is not None:
                self.tester.mine_blocks()
                continue
            with contextlib.suppress(Exception):  # anvil and hardhat mine on request; other chains refuse
                self.w3.provider.make_request("evm_mine", [])
            if self._call(lambda: self.w3.eth.block_number, "block number") > block:
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"chain: no block after {block} within {timeout:.0f} s")
            time.sleep(1.0)

    def increase_time(self, seconds: int) -> None:
        """Move a local chain's clock forward (exit delays in tests and demos); other chains refuse."""
        if self.tester is not None:
            self.tester.time_travel(int(self.tester.get_block_by_number("latest")["timestamp"]) + seconds)
            self.tester.mine_blocks()
            return
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])


def _one_shot_estimate(state: Any, transaction: Any) -> int:
    """Gas estimate from one run at the block gas limit: what it used, plus 1/63 for the gas a call must keep
    (EIP-150). py-evm's default binary search runs a transaction ~13 times, which made an Ed25519 check
    (~0.7M gas, tens of seconds in py-evm) cost minutes; `Chain.send` adds its own margin on top."""
    from eth.vm.spoof import SpoofTransaction

    spoofed = SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0)
    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(spoofed)
        if computation.is_error:
            raise computation.error
        used = transaction.intrinsic_gas + computation.get_gas_used()
    finally:
        state.revert(snapshot)
    return min(state.gas_limit, used * 64 // 63 + 2300)


def fast_estimates(tester: Any) -> Any:
    """Give an eth-tester chain the one-run gas estimator (also to chains it recreates on a revert)."""
    chain = tester.backend.chain
    type(chain).gas_estimator = staticmethod(_one_shot_estimate)
    chain.gas_estimator = _one_shot_estimate
    return tester


def _no_funds(exc: Exception) -> bool:
    text = str(exc).lower()
    return "insufficient funds" in text or "cannot afford" in text


def _reason(exc: Exception) -> str:
    """The revert reason alone, from web3's differently worded errors."""
    message = getattr(exc, "message", None) or (exc.args[0] if exc.args else str(exc))
    if isinstance(message, dict):
        message = message.get("message", str(message))
    message = str(message)
    match = re.search(r"execution reverted:?\s*(.*)", message, re.S)
    reason = (match.group(1) if match else message).strip()
    return reason or "no reason given"


def load_account(key: str | None = None, key_file: Path | None = None) -> Any:
    """A local Ethereum account from a hex private key, a key file (0600, hex), or VERIML_CHAIN_KEY."""
    from eth_account import Account

    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise InvalidInput(f"chain key file {path}: no such file")
        if path.stat().st_mode & 0o077:
            raise PermissionDenied(f"chain key file {path}: readable by others; chmod 600 it")
        key = path.read_text().strip()
    key = key or os.environ.get("VERIML_CHAIN_KEY")
    if not key:
        raise InvalidInput("chain: no account key: pass --key-file FILE or set VERIML_CHAIN_KEY")
    try:
        return Account.from_key(key)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("chain key: not a 32-byte hex private key") from exc


def new_account_file(path: Path) -> Any:
    """Create a fresh Ethereum key in a 0600 file and return its account."""
    from eth_account import Account

    account = Account.create()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(account.key.hex() + "\n")
    return account
