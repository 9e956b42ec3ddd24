"""A throwaway PostgreSQL server on 127.0.0.1 (initdb + pg_ctl from the OS packages), for
the tests and the benchmarks that measure the PostgreSQL store; stopped and deleted after."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drape.cli.stack import free_ports


def postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


class LocalPostgres:
    """A server (as the postgres user when run as root: initdb refuses root) in a temporary
    folder; ``kill`` stops it as a crash would (SIGKILL), ``start`` brings it back with its
    data (PostgreSQL recovers from its write-ahead log)."""

    def __init__(self, bindir: Path, settings: str = "-c fsync=on") -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="drape-pg-"))
        self.data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(sock, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self.port = free_ports(1)[0]
        self.options = f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 {settings}"
        subprocess.run([*self.run_as, str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8"], check=True, capture_output=True, timeout=120)  # fmt: skip
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> LocalPostgres:
        subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", self.options,
                        "-l", str(self.root / "log"), "-w", "-t", "60", "start"],
                       check=True, capture_output=True, timeout=90)  # fmt: skip
        return self

    def kill(self) -> None:
        """SIGKILL to the postmaster, as when its machine dies."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                        "stop"], capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def local_postgres(bindir: Path, settings: str = "-c fsync=on") -> Iterator[str]:
    """Starts a server and yields its URL; ``settings`` are extra server options."""
    server = LocalPostgres(bindir, settings).start()
    try:
        yield server.url
    finally:
        server.stop()
