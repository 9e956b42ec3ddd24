"""`drape web` in front of a gateway: it prints where its pages are, serves them, and stops
cleanly on SIGINT and SIGTERM; a taken address is a clear error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from drape.cli.stack import free_ports


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_drape_web_serves_its_pages_and_stops_cleanly(tmp_path, stop: signal.Signals):
    """SIGTERM is how Kubernetes stops a web pod: it drains like Ctrl-C, not dies at once."""
    (port,) = free_ports(1)
    env = {**os.environ, "DRAPE_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "drape.cli", "web", "--gateway", "127.0.0.1:9",
               "--address", f"127.0.0.1:{port}"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)  # fmt: skip
    try:
        line = process.stdout.readline()
        assert f"storefront http://127.0.0.1:{port}/" in line, (line, process.stderr.read())
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(base + "/", timeout=10) as reply:
            page = reply.read().decode()
            assert "Drape storefront" in page
            assert "script-src 'self'" in reply.headers["content-security-policy"]
        with urllib.request.urlopen(base + "/openapi.json", timeout=10) as reply:
            assert "/v1/recommend" in json.load(reply)["paths"]
        # A second one on the same address says so and exits 1.
        taken = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        assert taken.returncode == 1 and "did not start" in taken.stderr
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
        assert "stopping..." in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    assert (tmp_path / "data" / "preview-signing.keys").exists()
