"""Prometheus for a local stack: the scrape configuration (file_sd targets, one job per service
as the service table names them, and the model server), the rule files, and a server started
on loopback (``drape up --prometheus``, the integration tests), plus a small query client."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import yaml

from drape.cli.stack import free_ports

RULES = Path(__file__).resolve().parent / "rules"


class PrometheusError(RuntimeError):
    pass


def targets(metrics_ports: Mapping[str, int | None], host: str = "127.0.0.1") -> list[dict]:
    """file_sd target groups: one job per service, named as in the service table."""
    return [{"targets": [f"{host}:{port}"], "labels": {"job": name}}
            for name, port in sorted(metrics_ports.items()) if port]  # fmt: skip


def config(targets_file: Path, rule_files: list[Path], scrape_s: float = 15,
           evaluate_s: float = 15) -> dict:  # fmt: skip
    return {
        "global": {"scrape_interval": f"{scrape_s:g}s", "evaluation_interval": f"{evaluate_s:g}s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": "drape", "file_sd_configs": [{"files": [str(targets_file)]}]}],
    }  # fmt: skip


class LocalPrometheus:
    """A Prometheus server on 127.0.0.1 scraping the given ports with the given rules; its
    data lives in a temporary folder removed on stop."""

    def __init__(self, metrics_ports: Mapping[str, int | None], rule_files: list[Path] | None = None,
                 scrape_s: float = 15, evaluate_s: float = 15, port: int = 0) -> None:  # fmt: skip
        self.root = Path(tempfile.mkdtemp(prefix="drape-prometheus-"))
        self.port = port or free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets_file = self.root / "targets.json"
        self.set_targets(metrics_ports)
        rules = rule_files if rule_files is not None else sorted(RULES.glob("*.yml"))
        (self.root / "prometheus.yml").write_text(yaml.safe_dump(
            config(self.targets_file, rules, scrape_s, evaluate_s), sort_keys=False))  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None

    def set_targets(self, metrics_ports: Mapping[str, int | None]) -> None:
        """Rewrites the targets (Prometheus re-reads file_sd files by itself)."""
        staging = self.targets_file.with_suffix(".tmp")
        staging.write_text(json.dumps(targets(metrics_ports)))
        staging.replace(self.targets_file)

    def start(self, timeout: float = 60) -> LocalPrometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusError("prometheus is not installed (scripts/install.sh installs it)")
        self._proc = subprocess.Popen(
            [binary, f"--config.file={self.root / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.root / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-lifecycle"],
            stdout=open(self.root / "prometheus.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PrometheusError(f"prometheus exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise PrometheusError(f"prometheus was not ready within {timeout:.0f} s")

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "prometheus.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def _get(self, path: str, **params: str) -> object:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = json.loads(reply.read())
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body}")
        return body["data"]

    def page(self, name: str) -> str:
        """The address of one of the web UI's pages (``rules``, ``alerts``, ``targets``):
        Prometheus' own builds serve them at the root, distribution builds without the
        React UI (Debian's) only under ``/classic``."""
        for url in (f"{self.url}/{name}", f"{self.url}/classic/{name}"):
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    if reply.status == 200:
                        return url
            except OSError:
                continue
        raise PrometheusError(f"prometheus serves no {name} page")

    def query(self, promql: str) -> list[dict]:
        """An instant query's samples: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        return self._get("/api/v1/query", query=promql)["result"]  # type: ignore[index]

    def alerts(self) -> list[dict]:
        return self._get("/api/v1/alerts")["alerts"]  # type: ignore[index]

    def rules(self) -> list[dict]:
        return self._get("/api/v1/rules")["groups"]  # type: ignore[index]

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
