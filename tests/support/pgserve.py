"""A throwaway PostgreSQL server for tests: `initdb` into a temporary folder, loopback only.

Uses Debian's server binaries (`apt-get install postgresql`; found through `pg_config`,
/usr/lib/postgresql/*/bin or $APP_PACKAGE_PG_BIN). PostgreSQL refuses to run as root, so under
root the server runs as the `postgres` system user (`runuser`). Nothing needs to be started
beforehand; `stop()` removes everything.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_USER = "app"
PG_ROOTS = Path("/usr/lib/postgresql")  # Debian/Ubuntu: <version>/bin


class PostgresMissing(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def pg_bindir() -> Path:
    """The folder holding `initdb`, `postgres` and `pg_ctl`."""
    candidates = []
    if os.environ.get("APP_PACKAGE_PG_BIN"):
        candidates.append(Path(os.environ["APP_PACKAGE_PG_BIN"]))
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(Path(out.stdout.strip()))
    candidates += sorted(PG_ROOTS.glob("*/bin"), reverse=True)
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    raise PostgresMissing(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install them with "
        "`apt-get install postgresql` (Debian/Ubuntu; .ci/run does) or set APP_PACKAGE_PG_BIN "
        "to their folder"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One server on 127.0.0.1:<free port>, trust authentication, user `app`."""

    def __init__(self) -> None:
        self.bindir = pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="pgserve-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # postgres will not run as root
            shutil.chown(self.root, user="postgres", group="postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self.as_user, str(self.bindir / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    def start(self) -> PostgresServer:
        opts = (
            f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off -c full_page_writes=off "
            "-c synchronous_commit=off -c max_connections=200"
        )
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                  "-l", str(self.root / "postgres.log"), "-o", opts)  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: clients are disconnected, like a restart or failover)."""
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
