"""`drape keys`: a new key is printed once and only its hash is stored; ids, scopes and
limits are checked; revoke removes exactly one key; a bad file is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from drape.cli.main import main
from drape.services.gateway.auth import digest, load_keys


def test_new_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    keys = tmp_path / "api-keys.yaml"
    assert (
        main(
            [
                "keys",
                "new",
                "shop-eu",
                "--file",
                str(keys),
                "--scopes",
                "recommend,track",
                "--rate",
                "5",
            ]
        )
        == 0
    )
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("drape_shop-eu_") and len(key) > 50
    assert key not in keys.read_text() and digest(key) in keys.read_text()
    entry = load_keys(keys)["shop-eu"]
    assert entry.scopes == {"recommend", "track"} and entry.rate_per_s == 5 and entry.burst == 40
    assert main(["keys", "new", "shop-us", "--file", str(keys)]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--file", str(keys)]) == 0
    listed = capsys.readouterr().out
    assert (
        "shop-eu: recommend, track; 5/s, burst 40" in listed
        and "shop-us:" in listed
        and "drape_" not in listed
    )
    assert main(["keys", "revoke", "shop-eu", "--file", str(keys)]) == 0
    assert set(load_keys(keys)) == {"shop-us"}


@pytest.mark.parametrize(("args", "message"), [
    (["shop-us"], "already holds a key 'shop-us'"),
    (["Shop_EU"], "id 'Shop_EU' must be 1-40 of a-z, 0-9 and '-'"),
    (["x", "--scopes", "recommend,admin"], "scopes must be a non-empty list of recommend, tryon, track"),
    (["x", "--rate", "0"], "rate_per_s must be > 0 and burst >= 1"),
])  # fmt: skip
def test_bad_keys_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
):
    keys = tmp_path / "api-keys.yaml"
    assert main(["keys", "new", "shop-us", "--file", str(keys)]) == 0
    capsys.readouterr()
    assert main(["keys", "new", *args, "--file", str(keys)]) == 2
    assert message in capsys.readouterr().out
    assert set(load_keys(keys)) == {"shop-us"}  # nothing lost


def test_a_broken_keys_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    keys = tmp_path / "api-keys.yaml"
    keys.write_text("keys:\n  - {id: a, sha256: abc, scopes: [recommend]}\n")
    assert main(["keys", "list", "--file", str(keys)]) == 2
    assert "keys[0] (a): sha256 must be 64 hex digits" in capsys.readouterr().out
