"""A throwaway PostgreSQL server on 127.0.0.1 (initdb + pg_ctl from the OS packages), for
the tests and the benchmarks that measure the PostgreSQL store; stopped and deleted after."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
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


@contextmanager
def local_postgres(bindir: Path, settings: str = "-c fsync=on") -> Iterator[str]:
    """Starts a server (as the postgres user when run as root: initdb refuses root) and yields
    its URL; ``settings`` are extra server options."""
    root = Path(tempfile.mkdtemp(prefix="drape-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_ports(1)[0]
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True, timeout=120)  # fmt: skip
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 {settings}"
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                    str(root / "log"), "-w", "-t", "60", "start"],
                   check=True, capture_output=True, timeout=90)  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
