from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from drape.recsys import artifacts
from drape.recsys.catalog import Catalog
from drape.recsys.datasets import attribute_vectors, generated
from drape.recsys.evaluation import evaluate
from drape.recsys.index import EmbeddingIndex
from drape.recsys.interactions import InteractionMatrix
from drape.recsys.training import TrainSettings, shopper_sample, train
from drape.synthetic.catalog import generate_catalog
from drape.synthetic.shoppers import generate_shoppers

W = {"view": 1.0, "tryon_view": 2.0, "add_to_cart": 4.0, "purchase": 8.0}


def test_train_save_load_publish(tmp_path):
    catalog = generate_catalog(500, seed=5)
    events = generate_shoppers(catalog, 200, 8000, seed=5).events
    embeddings = EmbeddingIndex.build(catalog.ids, attribute_vectors(catalog))
    trained, report = train(events, catalog, embeddings, TrainSettings(weights=W))
    assert report.validation_ndcg is not None and report.users == 200
    assert artifacts.current_version(tmp_path) is None
    with pytest.raises(artifacts.NoArtifacts, match="drape train recsys"):
        artifacts.load(tmp_path)
    artifacts.save(tmp_path, trained)
    assert artifacts.current_version(tmp_path) == trained.version
    loaded = artifacts.load(tmp_path)
    np.testing.assert_array_equal(loaded.als.item_factors, trained.als.item_factors)
    assert list(loaded.users.ids) == list(trained.users.ids)
    assert loaded.params == trained.params and loaded.embeddings is not None
    assert loaded.sequential is not None and loaded.sequential.rules.nnz > 0
    np.testing.assert_array_equal(
        loaded.sequential.rules.toarray(), trained.sequential.rules.toarray()
    )
    # Versions trained before the sequential channel existed still load, without it.
    shutil.rmtree(tmp_path / trained.version / "sequential")
    assert artifacts.load(tmp_path).sequential is None
    with pytest.raises(FileExistsError):
        artifacts.save(tmp_path, trained)  # versions are immutable
    assert not list(tmp_path.glob(".staging-*"))


def test_a_catalog_is_named_by_its_content(tmp_path):
    catalog = generate_catalog(300, seed=2)
    catalog.save(tmp_path / "a.sqlite")
    catalog.save(tmp_path / "b.sqlite")
    same = Catalog.load(tmp_path / "a.sqlite").fingerprint
    assert same == Catalog.load(tmp_path / "b.sqlite").fingerprint == catalog.fingerprint
    # Any field of any garment, or the garments' order, makes another catalog.
    frame = catalog.frame.copy()
    frame.loc[7, "in_stock"] = not frame.loc[7, "in_stock"]
    assert Catalog(frame).fingerprint != same
    assert Catalog(catalog.frame.iloc[::-1]).fingerprint != same


def test_evaluation_on_generated_data_orders_models_sensibly():
    report = evaluate(
        generated(n_garments=800, n_users=500, n_events=30_000, seed=2),
        log=lambda _: None,
        tune=False,
    )
    rows = {row["model"]: row for row in report["results"]}
    # The generated shoppers have a taste structure: learned models beat popularity ...
    assert rows["als"]["ndcg@10"] > rows["popularity"]["ndcg@10"]
    # ... the tuned hybrid is at least as good as ALS alone on validation, close on test ...
    assert rows["hybrid"]["ndcg@10"] >= 0.9 * rows["als"]["ndcg@10"]
    # ... and only embedding channels reach garments held out of training.
    assert rows["als"]["cold_recall@20"] == 0.0
    assert rows["hybrid"]["cold_recall@20"] > 0.0


def test_a_large_log_is_tuned_on_a_sample_of_whole_shoppers():
    catalog = generate_catalog(300, seed=3)
    events = generate_shoppers(catalog, 400, 12000, seed=3).events
    sample = shopper_sample(events, 4000)
    kept = set(sample["user_id"])
    # Every event of a sampled shopper, none of the others; about the share asked for.
    assert len(sample) == events["user_id"].isin(kept).sum()
    assert 2000 < len(sample) < 6000 and 0.15 < len(kept) / events["user_id"].nunique() < 0.5
    assert shopper_sample(events, len(events)) is events
    # Tuned on the sample; fitted on everything.
    settings = TrainSettings(weights=W, tuning_events=4000)
    trained, report = train(events, catalog, None, settings)
    assert report.validation_ndcg is not None and report.users == events["user_id"].nunique()
    assert trained.params.weights != TrainSettings(weights=W).params.weights


def test_the_matrix_and_rules_built_beside_the_tuning_are_those_built_alone():
    catalog = generate_catalog(300, seed=4)
    events = generate_shoppers(catalog, 300, 9000, seed=4).events
    settings = TrainSettings(weights=W)
    trained, report = train(events, catalog, None, settings)
    now = int(events["occurred_at_us"].max())
    alone = InteractionMatrix.build(events, W, settings.half_life_days, now, keep_timeline=True)
    assert list(trained.users.ids) == list(alone.users.ids)
    assert list(trained.items.ids) == list(alone.items.ids)
    rules = alone.sequential_rules(settings.sequential).rules
    assert trained.sequential is not None and rules.nnz > 0
    assert (trained.sequential.rules != rules).nnz == 0
    # Every stage timed; the stages on the two threads overlap, within the total.
    seconds = report.seconds
    assert list(seconds) == ["tune", "matrix", "als", "sequential", "total"]
    assert seconds["tune"] + seconds["als"] <= seconds["total"] + 1e-6
    assert seconds["matrix"] + seconds["sequential"] <= seconds["total"] + 1e-6
    # A failure on the side thread is raised, not lost.
    with pytest.raises(KeyError, match="occurred_at_us"):
        train(events.drop(columns="occurred_at_us"), catalog, None, replace(settings, tune=False),
              now_us=now)  # fmt: skip
