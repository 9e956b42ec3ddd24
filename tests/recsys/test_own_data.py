"""Bring your own data: reading exports, clear errors on bad data, basket-safe splits and the
evaluation a team runs on its own log."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from drape.recsys.datasets import FileOptions, from_files, replenishment
from drape.recsys.evaluation import BASELINES, basket_keys, evaluate, time_split
from drape.recsys.loading import DataError, load_events, load_items
from drape.synthetic.replenishment import generate_replenishment

W = {"view": 1.0, "add_to_cart": 4.0, "purchase": 8.0}
T0 = 1_735_689_600


def _write(frame: pd.DataFrame, path):
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("times", "form"),
    [
        ([T0, T0 + 60], "epoch s"),
        ([T0 * 1000, (T0 + 60) * 1000], "epoch ms"),
        ([T0 * 10**6, (T0 + 60) * 10**6], "epoch us"),
        ([T0 * 10**9, (T0 + 60) * 10**9], "epoch ns"),
        (["2025-01-01T00:00:00Z", "2025-01-01T00:01:00+00:00"], "ISO 8601"),
        (pd.to_datetime(["2025-01-01 00:00", "2025-01-01 00:01"]), "datetimes"),
    ],
)
def test_times_in_any_common_form(tmp_path, times, form):
    path = _write(
        pd.DataFrame({"user": ["a", "b"], "item": [1, 2], "timestamp": times}),
        tmp_path / "events.parquet",
    )
    loaded = load_events(path, W)
    assert loaded.frame["occurred_at_us"].tolist() == [T0 * 10**6, (T0 + 60) * 10**6]
    assert f"times read as {form}" in loaded.notes


def test_bad_rows_are_named_by_row_column_and_reason(tmp_path):
    path = _write(
        pd.DataFrame({
            "customer_id": ["a", None, "c", "d", "e"],
            "article_id": [1, 2, 3, 4, 5],
            "t_dat": ["2025-01-01", "2025-01-02", "yesterday", None, "2025-01-05"],
            "event": ["purchase", "view", "view", "view", "wishlist"],
        }),
        tmp_path / "log.csv",
    )  # fmt: skip
    with pytest.raises(DataError) as caught:
        load_events(path, W)
    message = str(caught.value)
    assert "row 2, column 'customer_id': is empty" in message
    assert "row 3, column 't_dat': 'yesterday' is not a time" in message
    assert "row 4, column 't_dat'" in message
    # An event type without a weight is refused, not silently weighed zero.
    assert "row 5, column 'event': type 'wishlist' (1 row) has no weight" in message
    assert "--weight wishlist=W" in message and "--drop-invalid" in message
    kept = load_events(path, W, drop_invalid=True)
    assert kept.frame["user_id"].tolist() == ["a"]
    assert "skipped 4 invalid rows of 5" in kept.notes
    # Given a weight, the type counts.
    assert len(load_events(path, {**W, "wishlist": 2.0}, drop_invalid=True).frame) == 2


def test_missing_columns_and_unreadable_files_say_what_to_do(tmp_path):
    path = _write(pd.DataFrame({"who": ["a"], "what": ["x"], "when": [T0]}), tmp_path / "log.csv")
    with pytest.raises(DataError, match=r"column 'user_id': missing: name it one of user_id"):
        load_events(path, W)
    mapped = load_events(path, W, {"user_id": "who", "garment_id": "what", "occurred_at": "when"})
    assert mapped.frame[["user_id", "garment_id"]].values.tolist() == [["a", "x"]]
    with pytest.raises(DataError, match="given for user_id but the file has no such column"):
        load_events(path, W, {"user_id": "customer"})
    (tmp_path / "log.json").write_text("{}")
    with pytest.raises(DataError, match=r"not \.csv, \.tsv, \.txt or \.parquet"):
        load_events(tmp_path / "log.json", W)
    with pytest.raises(FileNotFoundError, match="no file at"):
        load_events(tmp_path / "absent.csv", W)


def test_weights_that_leave_the_matrix_empty_are_refused(tmp_path):
    path = _write(
        pd.DataFrame({"user": ["a"], "item": ["x"], "time": [T0], "type": ["impression"]}),
        tmp_path / "log.csv",
    )
    with pytest.raises(DataError, match="every event weighs zero: the interaction matrix"):
        load_events(path, {"impression": 0.0})
    weight = _write(
        pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"], "time": [T0, T0], "weight": [1, -2]}),
        tmp_path / "weights.csv",
    )
    with pytest.raises(DataError, match=r"row 2, column 'weight': -2 is not a finite weight >= 0"):
        load_events(weight, W)


def test_integer_ids_in_events_meet_string_ids_in_items(tmp_path):
    store = generate_replenishment(n_users=150, seed=1)
    numbers = {g: i for i, g in enumerate(store.catalog.ids)}
    events = store.events.assign(garment_id=store.events["garment_id"].map(numbers))
    _write(events.drop(columns=["event_id"]), tmp_path / "events.parquet")
    items = store.catalog.frame.assign(garment_id=[str(numbers[g]) for g in store.catalog.ids])
    # A category left empty does not crash a channel; fashion columns are not required.
    items.loc[0, "category"] = None
    _write(items[["garment_id", "title", "category"]], tmp_path / "items.csv")
    options = FileOptions(weights=W, columns={}, item_columns={})
    data, notes = from_files(tmp_path / "events.parquet", tmp_path / "items.csv", options)
    assert data.vectors is not None and data.cold_share == 0.1
    assert not any("dropped" in n for n in notes)  # every event found its item
    assert any(n.startswith("replenishable (inferred") and "socks" in n for n in notes)
    report = evaluate(data, log=lambda _: None, tune=False)
    assert report["test_users"] > 50
    # Items whose ids match none of the events: refused, with examples of both.
    _write(items.assign(garment_id="A" + items["garment_id"]), tmp_path / "other.csv")
    with pytest.raises(DataError, match=r"none of the .* item ids of the events is in the items"):
        from_files(tmp_path / "events.parquet", tmp_path / "other.csv", options)


def test_an_evaluation_without_items_or_without_users_to_score(tmp_path):
    store = generate_replenishment(n_users=150, seed=2)
    _write(store.events.drop(columns=["event_id"]), tmp_path / "events.csv")
    data, _ = from_files(tmp_path / "events.csv", None, FileOptions(W, {}, {}))
    assert data.vectors is None and data.cold_share == 0.0
    report = evaluate(data, log=lambda _: None, tune=False)
    models = [row["model"] for row in report["results"]]
    assert "embedding" not in models and set(BASELINES) <= set(models)
    # One purchase per shopper: no shopper has history before a test basket.
    single = store.events[store.events["type"] == "purchase"].drop_duplicates("user_id")
    _write(single.drop(columns=["event_id"]), tmp_path / "single.csv")
    lone, _ = from_files(tmp_path / "single.csv", None, FileOptions(W, {}, {}))
    with pytest.raises(ValueError, match="no user can be evaluated"):
        evaluate(lone, log=lambda _: None, tune=False)


@pytest.mark.parametrize("split", ["per_user", "global", "last_basket"])
def test_a_basket_is_never_split(split):
    data = replenishment(n_users=200, seed=3)
    data.split = split
    parts = time_split(data, cold_share=0.0)
    side = pd.concat([
        pd.Series(i, index=part.index) for i, part in enumerate((parts.train, parts.validation, parts.test))
    ])  # fmt: skip
    events = data.events.loc[side.index]
    keys = basket_keys(events)
    sides_per_basket = pd.Series(side.to_numpy()).groupby(keys).nunique()
    assert (sides_per_basket == 1).all()
    assert len(side) == len(data.events)
    if split == "last_basket":
        # The test holds each shopper's last order, and nothing earlier.
        test = parts.test[parts.test["type"] == "purchase"]
        last = data.events[data.events["type"] == "purchase"].groupby("user_id")["basket_id"].last()
        assert set(test["basket_id"]) == set(last.loc[test["user_id"].unique()])


def test_the_hybrid_beats_the_obvious_on_a_store_with_replenishment():
    report = evaluate(replenishment(n_users=500, seed=4), log=lambda _: None, tune=False)
    rows = {row["model"]: row["ndcg@10"] for row in report["results"]}
    assert rows["hybrid"] >= rows["baseline: personal frequency"]
    assert rows["hybrid"] >= 1.2 * rows["baseline: ALS with repeats"]


def test_the_cli_evaluates_a_file_and_refuses_a_bad_one(tmp_path):
    store = generate_replenishment(n_users=150, seed=5)
    events = store.events.rename(columns={"user_id": "customer", "garment_id": "sku",
                                          "occurred_at_us": "ts", "basket_id": "order_id"})  # fmt: skip
    events["ts"] = events["ts"] // 1000
    _write(events.drop(columns=["event_id"]), tmp_path / "log.csv")
    command = [sys.executable, "-m", "drape.cli", "eval", "recsys", "--events", str(tmp_path / "log.csv"),
               "--no-tune", "--out", str(tmp_path / "report.json")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "times read as epoch ms" in done.stdout and "baseline: personal frequency" in done.stdout
    assert (tmp_path / "report.json").exists()
    bad = events.drop(columns=["event_id"]).astype({"ts": object})
    bad.loc[3, "ts"] = "soon"
    _write(bad, tmp_path / "bad.csv")
    command[command.index(str(tmp_path / "log.csv"))] = str(tmp_path / "bad.csv")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "row 4, column 'ts': 'soon' is not a time" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_item_tables_are_read_with_any_attributes(tmp_path):
    path = _write(
        pd.DataFrame({
            "product_id": [10, 11, 12], "product_type_name": ["Sock", "Sock", None],
            "prod_name": ["blue cotton socks", "red wool socks", "summer dress with flowers"],
            "price": [1.0, 2.0, 3.0], "replenishable": ["yes", "yes", "no"],
        }),
        tmp_path / "items.csv",
    )  # fmt: skip
    catalog, vectors, notes = load_items(path)
    assert list(catalog.ids) == ["10", "11", "12"] and list(catalog.replenishable) == [
        True,
        True,
        False,
    ]
    assert vectors is not None and vectors.shape[0] == 3
    # The two socks are closer to each other than to the dress.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert "prod_name (text)" in notes[-1] and "price" not in notes[-1]
    _write(pd.DataFrame({"sku": ["a", "a"]}), tmp_path / "dupes.csv")
    with pytest.raises(DataError, match="row 2, column 'sku': 'a' appears again"):
        load_items(tmp_path / "dupes.csv")
    _write(pd.DataFrame({"sku": ["a"], "replenishable": ["often"]}), tmp_path / "flag.csv")
    with pytest.raises(DataError, match="row 1, column 'replenishable': 'often' is not true/false"):
        load_items(tmp_path / "flag.csv")


def test_train_recsys_from_an_exported_log(tmp_path):
    store = generate_replenishment(n_users=120, seed=6)
    data_dir = tmp_path / "data"
    store.catalog.save(data_dir / "catalog.db")
    config = tmp_path / "drape.json"
    config.write_text(f'{{"data_dir": "{data_dir}"}}')
    export = store.events.rename(columns={"occurred_at_us": "timestamp"}).drop(columns=["event_id"])
    export["timestamp"] = pd.to_datetime(export["timestamp"], unit="us")
    _write(export, tmp_path / "log.parquet")
    command = [sys.executable, "-m", "drape.cli", "train", "recsys", "--config", str(config),
               "--events", str(tmp_path / "log.parquet"), "--no-tune", "--factors", "8"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "times read as datetimes" in done.stdout and "published" in done.stdout
    assert (data_dir / "artifacts" / "recsys" / "CURRENT").exists()
    # A log of other ids than the catalog's is refused before anything is trained.
    _write(export.assign(garment_id="x" + export["garment_id"]), tmp_path / "other.parquet")
    command[command.index(str(tmp_path / "log.parquet"))] = str(tmp_path / "other.parquet")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert (
        done.returncode == 2 and "none of the" in done.stdout and "is in the catalog" in done.stdout
    )
