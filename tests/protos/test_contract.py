"""The API contract: stubs are fresh, protos are lint-clean, and every service exists."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.protogen import PROTO_ROOT, stale_files

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_up_to_date():
    assert stale_files() == [], "run `python tools/protogen.py` and commit the result"


def test_buf_lint_is_clean():
    buf = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    if not Path(buf).exists():
        pytest.fail("buf is not installed (pip install buf-bin)")
    result = subprocess.run([buf, "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_all_six_services_are_defined():
    from drape.v1 import events_pb2, features_pb2, gateway_pb2, recommend_pb2, splice_pb2, tryon_pb2

    methods = {
        (svc.name, m.name)
        for module in (events_pb2, features_pb2, gateway_pb2, recommend_pb2, splice_pb2, tryon_pb2)
        for svc in module.DESCRIPTOR.services_by_name.values()
        for m in svc.methods
    }
    assert methods == {
        ("GatewayService", "Recommend"),
        ("GatewayService", "TryOn"),
        ("GatewayService", "Track"),
        ("RecommendService", "Recommend"),
        ("RecommendService", "SimilarGarments"),
        ("FeaturesService", "EmbedGarments"),
        ("FeaturesService", "EmbedUser"),
        ("FeaturesService", "AnalyzePerson"),
        ("TryOnService", "Generate"),
        ("SpliceService", "Compose"),
        ("EventsService", "Record"),
        ("EventsService", "LogExposures"),
    }
    embed = features_pb2.DESCRIPTOR.services_by_name["FeaturesService"].methods_by_name[
        "EmbedGarments"
    ]
    assert embed.client_streaming and embed.server_streaming


def test_stale_check_detects_an_edit(tmp_path: Path):
    copy = tmp_path / "protos"
    shutil.copytree(PROTO_ROOT, copy)
    common = copy / "drape" / "v1" / "common.proto"
    common.write_text(
        common.read_text().replace("int32 height = 4;", "int32 height = 4;\n  int32 depth = 5;")
    )
    assert "drape/v1/common_pb2.py" in stale_files(copy)
