"""A real PostgreSQL server for the tests: Debian's `postgresql` package, started in a temporary folder.

Its own cluster (initdb), on a free loopback port, with password (SCRAM) authentication, so the
service reaches it through a DATABASE_URL exactly as it would a managed database. PostgreSQL
refuses to run as root: as root, the cluster belongs to the `postgres` user the package creates.
Every suite builds its fixture from it (digit_testing.pgserver).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from digit_testing.processes import free_port
from digit_testing.tooling import unavailable

INSTALL = "apt-get install postgresql"


def find_bin() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin that has pg_ctl (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


class PostgresServer:
    """One cluster: `start()`, `stop()` (a clean shutdown: what was committed stays), `url(db)`."""

    def __init__(self) -> None:
        bin_dir = find_bin()
        if bin_dir is None:
            unavailable(f"PostgreSQL is missing: {INSTALL}")
        self.bin = bin_dir
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                unavailable(f"running as root and there is no `postgres` user to run PostgreSQL as: {INSTALL}")
            self.user = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="digit-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.role = "digit"
        if self.user:
            shutil.chown(self.root, self.user)
        pwfile = self.root / "password"
        pwfile.write_text(self.password + "\n")
        if self.user:
            shutil.chown(pwfile, self.user)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.role,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        pwfile.unlink()

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin / tool), *args], user=self.user, capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.role, password=self.password, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.role}:{self.password}@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server
