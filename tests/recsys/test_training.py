from __future__ import annotations

import shutil

import numpy as np
import pytest

from drape.recsys import artifacts
from drape.recsys.datasets import attribute_vectors, generated
from drape.recsys.evaluation import evaluate
from drape.recsys.index import EmbeddingIndex
from drape.recsys.training import TrainSettings, train
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
