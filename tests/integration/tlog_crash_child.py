"""Child process for the crash test: appends from several threads and signs checkpoints until it is killed.

Prints `ack <index> <data>` after each append returns (the entry is durable by then) and `checkpoint <size>`
after each checkpoint is signed. Usage: tlog_crash_child.py LOG_PATH KEY_PATH ROUND
"""

import sys
import threading
import time
from pathlib import Path

from veriml.identity import SigningKey
from veriml.tlog import Log

path, key_path, round_ = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
log = Log(path, SigningKey.load(key_path), max_batch=64)
output = threading.Lock()


def say(line: str) -> None:
    with output:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def appender(thread: int) -> None:
    count = 0
    while True:
        data = f"round{round_}-thread{thread}-{count}"
        say(f"ack {log.append(data.encode())} {data}")
        count += 1


def checkpointer() -> None:
    while True:
        time.sleep(0.01)
        say(f"checkpoint {log.sign_checkpoint().checkpoint.size}")


for n in range(4):
    threading.Thread(target=appender, args=(n,), daemon=True).start()
threading.Thread(target=checkpointer, daemon=True).start()
say("ready")
time.sleep(3600)
