"""The README's service table says what the service table in the code says, and every link
between the documents leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from drape.services.table import MODEL_SERVER, SERVICES

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_service_table_matches_the_code():
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = re.match(r"\| \*\*(\w+)\*\* \|.*\| (\d+) \| (\d+) \|([^|]*)\|$", line)
        if match:
            name, grpc, metrics, calls = match.groups()
            callees = {c.strip() for c in calls.split(",") if c.strip() and "(" not in c}
            rows[name] = (int(grpc), int(metrics), callees)
    expected = {
        name: (entry.grpc_port, entry.metrics_port, set(entry.calls))
        for name, entry in SERVICES.items()
    }
    assert rows == expected
    readme = (ROOT / "README.md").read_text()
    ports = (MODEL_SERVER.grpc_port, MODEL_SERVER.http_port, MODEL_SERVER.metrics_port)
    assert "listens on {} (gRPC), {} (HTTP) and {} (metrics)".format(*ports) in readme


def test_links_between_documents_resolve():
    for page in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        for target in re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to {target}"
