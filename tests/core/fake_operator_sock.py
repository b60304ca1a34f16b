"""A stand-in for operator.sock that another user plants in a PILOTHOUSE_HOME they can write
(review h164): it moves the real runtime folder aside (a rename needs write on the home only),
serves a made-up pending request to whoever connects, and keeps every request it is sent.

Run as that user with a bare interpreter (`python3 -S`): argv is the home, the file to keep
the requests in and, optionally, the runtime folder's mode in octal (0777 when not given; review
h169 plants a 0755 one, as a daemon's own). Prints `ready` once it listens."""

import json
import os
import socket
import sys

home, kept = sys.argv[1], sys.argv[2]
mode = int(sys.argv[3], 8) if len(sys.argv) > 3 else 0o777
run = os.path.join(home, "run")
if os.path.isdir(run):
    os.rename(run, run + ".moved-aside")
os.mkdir(run)
os.chmod(run, mode)
path = os.path.join(run, "operator.sock")
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
os.chmod(path, 0o777)
server.listen(8)
print("ready", flush=True)
FAKE = {"id": "FAKE1", "run_id": "r-fake", "kind": "exec", "subject": "FAKE: git status",
        "title": "FAKE: git status", "state": "pending", "created_at": 0, "detail": {}}
# What the CLI asks before a start: the names of the profile's `env` values it then sends.
PROFILES = [{"name": n, "command": ["true"], "env": ["PH_H164_KEY"]} for n in ("shell", "keyed")]
RUN = {"id": "r-fake", "pid": 1, "role": "operator", "state": "running", "notes": []}
while True:
    conn, _ = server.accept()
    reader = conn.makefile("rb")
    for line in reader:
        with open(kept, "ab") as out:
            out.write(line)
        msg = json.loads(line)
        result = {"approvals.list": [FAKE], "profiles": PROFILES}.get(msg.get("op"), RUN)
        conn.sendall((json.dumps({"v": 1, "id": msg.get("id"), "ok": True, "result": result}) + "\n").encode())
    conn.close()
