"""`make replica-demo`: a primary and a hot standby, a kb server on each, on loopback ports, until Ctrl+C.

    .venv/bin/python -m kb.stores.postgres.replica_demo [--folder .pgdemo] [--port 8001]

The primary and its standby (streaming replication, `pg_basebackup -R`) keep their data in
``--folder`` (git-ignored); the corpus folder is loaded into the primary with `kb build`. Then:
- a kb server on ``--port`` that writes to the primary (KB_PG_DSN) and reads from it;
- a kb server on ``--port`` + 1 that reads from the standby (KB_PG_READ_DSN); its writes would go
  to the primary.
It prints their URLs and the write key, and stops everything on Ctrl+C.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from kb.stores.postgres.cluster import LocalCluster, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=".pgdemo")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    folder = Path(args.folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    primary = LocalCluster(folder / "primary", free_port()).ensure_running()
    wait_for(primary.dsn())
    env = {**os.environ, "KB_STORE": "postgres", "KB_PG_DSN": primary.dsn(), "HF_HUB_OFFLINE": "1"}
    print(f"primary: {primary.dsn()} ({primary.data})", flush=True)
    subprocess.run([sys.executable, "-m", "kb.cli", "build"], env=env, check=True)
    standby = primary.standby(folder / "standby", free_port())
    wait_for(standby.dsn())
    print(f"standby: {standby.dsn()} ({standby.data})", flush=True)
    key = os.environ.get("KB_API_KEY") or secrets.token_urlsafe(16)
    servers = [
        subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--port", str(args.port)],
                         env={**env, "KB_API_KEY": key}),
        subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--port", str(args.port + 1)],
                         env={**env, "KB_PG_READ_DSN": standby.dsn()}),
    ]
    print(f"\nkb on the primary (writes, KB_API_KEY={key}): http://127.0.0.1:{args.port}/\n"
          f"kb on the standby (reads):                  http://127.0.0.1:{args.port + 1}/\n"
          f"try: curl -X POST -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
          f"-d '{{\"text\": \"A note.\"}}' http://127.0.0.1:{args.port}/api/documents\n"
          "Ctrl+C stops the servers and both clusters.", flush=True)
    try:
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        while all(server.poll() is None for server in servers):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
        standby.stop()
        primary.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
