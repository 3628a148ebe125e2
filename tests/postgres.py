"""A throwaway PostgreSQL server for the tests: a fresh cluster in a temp dir on a free loopback
port, started from the server binaries `make install` puts on the machine (Debian's
postgresql), and a fresh database per test.

initdb refuses to run as root: as root the cluster belongs to the `postgres` user the Debian
package creates, and the server runs as that user (`runuser`). Clients connect over TCP on
127.0.0.1 with a password (scram-sha-256), so the services' password-file path is exercised.

`CLIPMESH_TEST_POSTGRES_DSN` (a superuser DSN, password included) points the tests at a
server of your own instead; the tests that stop and restart the server need the local one.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from clipmesh.runtime.postgres import DatabaseTarget

SUPERUSER = "clipmesh_admin"
SUPERUSER_PASSWORD = "test-only-" + uuid.uuid4().hex


def server_binaries() -> Path:
    """The directory of initdb and pg_ctl (Debian keeps them out of PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    found = candidates[0] if candidates else shutil.which("initdb")
    if not found:
        raise RuntimeError(
            "no PostgreSQL server binaries (initdb): run `make install`, or set "
            "CLIPMESH_TEST_POSTGRES_DSN to a server of your own"
        )
    return Path(found).parent


@dataclass
class PostgresServer:
    """A PostgreSQL server the tests may create databases on (and, when local, stop)."""

    admin_dsn: str
    cluster: Path | None = None
    port: int = 0

    @property
    def local(self) -> bool:
        return self.cluster is not None

    def create_database(self, directory: Path) -> DatabaseTarget:
        """A new empty database owned by a new role, and its target (password in a file under
        `directory`)."""
        name = "t_" + uuid.uuid4().hex[:16]
        password = uuid.uuid4().hex
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
            admin.execute(f"CREATE DATABASE {name} OWNER {name}")
        password_file = directory / f"{name}.password"
        password_file.write_text(password + "\n")
        parts = urlsplit(self.admin_dsn)
        netloc = f"{name}@{parts.hostname}:{parts.port or 5432}"
        dsn = urlunsplit((parts.scheme, netloc, f"/{name}", "", ""))
        return DatabaseTarget(dsn, password_file)

    # The local server only.

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast", "-w")

    def start(self) -> None:
        self._pg_ctl("start", "-w", "-l", str(self.cluster / "server.log"))

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast", "-w", "-l", str(self.cluster / "server.log"))

    def _pg_ctl(self, *args: str) -> None:
        assert self.local, "the tests were given a server of their own to use"
        _as_owner([str(server_binaries() / "pg_ctl"), "-D", str(self.cluster / "data"), *args])


def start_local_server(base: Path, port: int) -> PostgresServer:
    """initdb + start in `base`, listening on 127.0.0.1:`port` only."""
    binaries = server_binaries()
    base.mkdir(parents=True, exist_ok=True)
    pwfile = base / "superuser.password"
    pwfile.write_text(SUPERUSER_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    _as_owner(
        [
            str(binaries / "initdb"),
            "-D",
            str(base / "data"),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # a throwaway cluster: the tests do not outlive a power cut
        ]
    )
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{base}'",
        "max_connections": "300",
        "fsync": "off",  # see --no-sync; commits are still ordered and atomic
        "shared_buffers": "64MB",
        "log_min_messages": "warning",
    }
    with (base / "data" / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    server = PostgresServer(
        f"postgresql://{SUPERUSER}:{SUPERUSER_PASSWORD}@127.0.0.1:{port}/postgres", base, port
    )
    server.start()
    _wait_ready(server.admin_dsn)
    return server


def external_server() -> PostgresServer | None:
    dsn = os.environ.get("CLIPMESH_TEST_POSTGRES_DSN", "")
    return PostgresServer(dsn) if dsn else None


def _as_owner(command: list[str]) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


def _wait_ready(dsn: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
