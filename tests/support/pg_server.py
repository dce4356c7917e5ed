"""A private PostgreSQL cluster that a test can restart without touching the machine's own.

Restarting the shared server (port 5432) broke every other suite running on the machine at the
time; a cluster of the test's own, in its temporary directory, on a free port, does not.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from broker.local_stack import free_port


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def missing() -> str | None:
    """Why a private cluster cannot be made here, or None."""
    return None if _binaries() else "PostgreSQL's initdb is not installed"


class PrivatePostgres:
    """initdb into a directory of its own, trust auth for ``root``, on 127.0.0.1 only.

    Not under pytest's tmp_path: as root the server runs as the postgres user, who cannot
    enter root's private temporary directories.
    """

    def __init__(self) -> None:
        self.bin = _binaries()
        assert self.bin, missing()
        self.workdir = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
        self.data = self.workdir / "data"
        self.sockets = self.workdir / "sockets"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://root@127.0.0.1:{self.port}/test"

    def _run(self, *args: str) -> None:
        # initdb and postgres refuse to run as root: as root, run them as the postgres user
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> PrivatePostgres:
        for directory in (self.workdir, self.data, self.sockets):
            directory.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(directory, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "root", "--auth=trust",
                  "--no-sync")
        self.start()
        engine = sa.create_engine(self.url.replace("/test", "/postgres"),
                                  isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE test"))
        engine.dispose()
        return self

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off")
        # -l: the server writes to its own log, not to the pipes this process waits on
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.workdir / "log"),
                  "-o", options, "-w", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop the server and delete its files."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, pause: float = 0.5) -> None:
        self.stop()
        time.sleep(pause)
        self.start()
