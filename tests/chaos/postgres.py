"""A PostgreSQL cluster of the chaos run's own, which it may restart and kill.

The machine's shared server is used by other tests and is never restarted: this one is made
with Debian's ``initdb`` in a temporary directory (data and socket there), runs as the
``postgres`` OS user on a free loopback port, trusts local connections, and is removed after.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg

from tests.databases import schema_url

ADMIN_DSN = (os.environ.get("BYLINE_TEST_POSTGRES_DSN") or os.environ.get("BYLINE_BENCH_POSTGRES")
             or "postgresql://postgres@127.0.0.1:5432/postgres")
"""Where scenarios on the machine's shared server make their scratch schema (as ``make test``
finds PostgreSQL)."""


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    assert on_path, f"PostgreSQL's {name} is not installed (Debian's postgresql package has it)"
    return on_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateCluster:
    """One PostgreSQL cluster: ``start``, ``restart`` (fast shutdown), ``kill`` (SIGKILL the
    postmaster, then start: crash recovery), ``stop``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.log = root / "postgres.log"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        """Where Byline connects."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # The server's own output goes to its log file (-l); pg_ctl's to a file too, never to a
        # pipe, which the server it starts would hold open.
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run([*self._as_postgres, *args], stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, text=True, timeout=120)
            out.seek(0)
            text = out.read()
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed ({done.returncode}): {text[-2000:]}")
        return subprocess.CompletedProcess(done.args, done.returncode, text, "")

    def init(self) -> None:
        """Make the cluster (owned by the postgres user when run as root)."""
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        """Start it and wait until it takes connections."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200 -c shared_buffers=64MB")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, as in a failover or an upgrade."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "-t", "60",
                  "restart")

    def kill(self, down_seconds: float = 0.0) -> None:
        """SIGKILL the postmaster (its backends go with it), wait, and start it again."""
        pid_file = self.data / "postmaster.pid"
        pid = int(pid_file.read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                time.sleep(0.05)
                continue
            break
        # The backends notice their postmaster is gone within moments; shared memory is freed
        # when the last one exits, and the next start recovers from the WAL.
        time.sleep(max(down_seconds, 0.5))
        self.start()

    def stop(self) -> None:
        """Stop it (immediately: nothing of it is kept)."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A started cluster, stopped and removed after."""
    root = Path(tempfile.mkdtemp(prefix="byline-chaos-pg-"))
    cluster = PrivateCluster(root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def scratch_schema(name: str) -> AsyncIterator[str]:
    """A fresh schema ``name`` in the shared server's database (dropped after); the URL whose
    connections look in it alone, as every storage test's do. Not a database of its own:
    PostgreSQL finishes a checkpoint before it drops a database, from seconds to a minute and
    more while the other tests write."""
    admin = await asyncpg.connect(ADMIN_DSN, timeout=10)
    try:
        await _drop_schema(admin, name)
        await admin.execute(f"CREATE SCHEMA {name}")
        yield schema_url(ADMIN_DSN, name)
    finally:
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            await _drop_schema(admin, name)
        await admin.close()


async def _drop_schema(admin: asyncpg.Connection, name: str) -> None:
    """Drop ``name`` with everything in it, ending first any session still holding a lock in it
    (one of a replica killed mid-transaction that the server has not yet seen go), as a
    database's ``DROP … WITH (FORCE)`` would."""
    await admin.execute(
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()",
        name,
    )
    await admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
