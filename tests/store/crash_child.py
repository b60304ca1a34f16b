"""Child process for the crash test: a burst of 10,000 events through a real StoreWriter.

Prints the id of every acknowledged security commit as soon as commit() returns, so the parent
knows exactly which rows were promised durable before it sends SIGKILL.
"""

from __future__ import annotations

import sys
from pathlib import Path

from store.audit import load_or_create_key
from store.writer import StoreWriter


def main() -> None:
    db_path, key_path = Path(sys.argv[1]), Path(sys.argv[2])
    writer = StoreWriter(db_path, load_or_create_key(key_path), max_delay=0.01).start()
    print("ready", flush=True)
    for i in range(10_000):
        if i % 10 == 0:
            row = writer.commit("sec.test", run_id="r1", actor="child", text=f"security {i}",
                                data={"i": i})
            print(row["id"], flush=True)
        else:
            writer.record("bulk.test", run_id="r1", text=f"bulk event {i}", data={"i": i})
            writer.record_output("r1", "stdout", f"output line {i}")
    writer.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
