"""`drape health`: exit 0 for a serving service, 1 for one that is down, 2 for a name that
is no service; without a name, the service the container's first process serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from drape.cli.health import served_here
from drape.cli.stack import Stack, ephemeral
from drape.services.runtime.config import DrapeConfig


def _health(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drape.cli", "health", *args], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_health_of_a_running_then_stopped_service(tmp_path: Path):
    config = ephemeral(DrapeConfig(data_dir=tmp_path / "data"))
    stack = Stack(config, ["splice"], run_dir=tmp_path / "run").start(timeout=60)
    address = stack.address("splice")
    try:
        up = _health("splice", "--address", address)
        assert up.returncode == 0 and "SERVING" in up.stdout, up.stdout + up.stderr
    finally:
        stack.stop()
    down = _health("splice", "--address", address, "--timeout", "1")
    assert down.returncode == 1 and "UNAVAILABLE" in down.stdout
    unknown = _health("nonesuch")
    assert unknown.returncode == 2 and "unknown service 'nonesuch'" in unknown.stdout


def test_the_container_s_own_service_is_read_from_its_first_process(tmp_path: Path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/opt/venv/bin/python\0/opt/venv/bin/drape\0serve\0recommend\0")
    assert served_here(cmdline) == "recommend"
    cmdline.write_bytes(b"drape\0train\0recsys\0")
    assert served_here(cmdline) is None
    assert served_here(tmp_path / "absent") is None
