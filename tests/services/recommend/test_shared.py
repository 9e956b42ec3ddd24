"""The pod's saved bases: what a worker finds when the directory holds none, or a broken one."""

from __future__ import annotations

import json
import logging

from drape.services.recommend.shared import SharedBases


def test_no_base_and_a_broken_one_are_none_and_a_broken_one_is_logged(tmp_path, caplog):
    bases = SharedBases(tmp_path / "pod")
    assert bases.latest() is None  # nothing saved yet: nothing to say
    (tmp_path / "pod" / "CURRENT").write_text("base-1-7\n")
    (tmp_path / "pod" / "base-1-7").mkdir()
    manifest = tmp_path / "pod" / "base-1-7" / "manifest.json"
    for broken in ("not json", json.dumps({"about": {"key": "k", "generation": 1}}),
                   json.dumps({"about": {"key": "k", "generation": 1, "watermark": 5}})):  # fmt: skip
        manifest.write_text(broken)
        caplog.clear()
        with caplog.at_level(logging.WARNING, "drape.recommend"):
            assert bases.latest() is None
        assert "shared base unreadable" in caplog.text
    manifest.write_text(json.dumps({"about": {
        "key": "k", "generation": 3, "watermark": {"position": 9, "seen": ["a", "b"]},
    }}))  # fmt: skip
    found = bases.latest()
    assert found is not None and (found.key, found.generation) == ("k", 3)
    assert found.watermark.position == 9 and found.watermark.seen == {"a", "b"}
