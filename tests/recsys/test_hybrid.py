from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drape.recsys.als import ALSModel, ALSParams
from drape.recsys.catalog import Catalog
from drape.recsys.hybrid import BlendWeights, HybridModel, HybridParams
from drape.recsys.index import EmbeddingIndex
from drape.recsys.interactions import US_PER_DAY, InteractionMatrix
from drape.recsys.ranking import RankRequest, excluded_by_user
from drape.synthetic.catalog import generate_catalog
from drape.synthetic.shoppers import generate_shoppers

NOW = 1_800_000_000_000_000
W = {"view": 1.0, "tryon_view": 2.0, "add_to_cart": 4.0, "purchase": 8.0}


def attribute_vectors(catalog, seed=0):
    f = catalog.frame
    colour = f["colour"].factorize(sort=True)[0]
    x = np.concatenate(
        [np.eye(len(catalog.categories))[catalog.category_codes], np.eye(colour.max() + 1)[colour]],
        axis=1,
    )
    return x + 0.05 * np.random.default_rng(seed).normal(size=x.shape)


@pytest.fixture(scope="module")
def world():
    catalog = generate_catalog(600, seed=4)
    shoppers = generate_shoppers(catalog, 300, 15_000, seed=4, start_us=NOW - 60 * US_PER_DAY)
    matrix = InteractionMatrix.build(shoppers.events, W, 14, NOW)
    als = ALSModel.fit(matrix.matrix, ALSParams(factors=16, iterations=8), use_gpu=False)
    embeddings = EmbeddingIndex.build(catalog.ids, attribute_vectors(catalog))
    return catalog, shoppers, matrix, als, embeddings


def _model(world, **params):
    catalog, shoppers, matrix, als, embeddings = world
    return HybridModel(
        catalog,
        matrix,
        als,
        embeddings,
        excluded_by_user(catalog, shoppers.events),
        HybridParams(**params),
    )


def test_every_item_names_its_channels_and_filters_hold(world):
    catalog, shoppers, _matrix, *_ = world
    model = _model(world)
    user = shoppers.events["user_id"].iloc[0]
    ranked = model.rank(RankRequest(user, k=20, categories=("coat", "dress")))
    assert len(ranked) == 20
    bought = set(model.excluded(user).tolist())
    assert bought, "the shopper bought something: the repeat policy has work to do"
    for item in ranked:
        assert item.channels, "every item says where it came from"
        assert catalog.frame["category"].iloc[item.position] in ("coat", "dress")
        assert catalog.in_stock[item.position]
        assert item.position not in bought
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)


def test_cold_user_gets_popularity_and_photo_channels(world):
    catalog, *_, embeddings = world
    model = _model(world)
    plain = model.rank(RankRequest("never-seen", k=5))
    assert all(set(r.channels) == {"popularity"} for r in plain)
    photo = embeddings.vector(catalog.ids[10])
    with_photo = model.rank(RankRequest("never-seen", k=5), photo_embedding=photo)
    assert "photo" in with_photo[0].channels
    # The garment in the photo, or its near twins, comes first.
    assert catalog.category_codes[with_photo[0].position] == catalog.category_codes[10]


def test_new_garment_without_interactions_is_reachable_through_embeddings(world):
    catalog, shoppers, matrix, als, _embeddings = world
    user = shoppers.events["user_id"].iloc[0]
    history = _model(world).history(user)[0]
    favourite = history[np.argmax(_model(world).history(user)[1])]
    # A twin of the user's favourite garment appears in the catalog after training.
    frame = catalog.frame.copy()
    twin = frame.iloc[[favourite]].assign(garment_id="new-twin", in_stock=True)
    grown = Catalog(pd.concat([frame, twin], ignore_index=True))
    index = EmbeddingIndex.build(
        grown.ids, np.vstack([attribute_vectors(catalog), attribute_vectors(catalog)[[favourite]]])
    )
    model = HybridModel(
        grown, matrix, als, index, {}, HybridParams(weights=BlendWeights.only("visual"))
    )
    top = model.rank(RankRequest(user, k=50))
    assert "new-twin" in {grown.ids[r.position] for r in top}


def test_unknown_user_with_fresh_interactions_is_folded_in(world):
    _catalog, shoppers, matrix, als, _embeddings = world
    model = _model(world, weights=BlendWeights.only("collaborative"))
    user = shoppers.events["user_id"].iloc[0]
    row = matrix.user_row(user)
    folded = model.user_vector("someone-new", row)
    assert folded is not None
    trained = als.user_factors[matrix.users.index_of(user)]
    cosine = folded @ trained / (np.linalg.norm(folded) * np.linalg.norm(trained))
    assert cosine > 0.9


def test_mmr_increases_variety(world):
    catalog, shoppers, *_ = world
    user = shoppers.events["user_id"].iloc[3]
    plain = _model(world).rank(RankRequest(user, k=10))
    diverse = _model(world, mmr_lambda=0.5).rank(RankRequest(user, k=10))
    distinct = lambda items: len({catalog.category_codes[i.position] for i in items})  # noqa: E731
    assert distinct(diverse) >= distinct(plain)
    assert len(diverse) == 10 and len({i.position for i in diverse}) == 10


def test_similar_garments(world):
    catalog, *_ = world
    model = _model(world)
    similar = model.similar(catalog.ids[3], RankRequest("x", k=5, include_out_of_stock=True))
    assert len(similar) == 5 and all(r.position != 3 for r in similar)
    assert all(catalog.category_codes[r.position] == catalog.category_codes[3] for r in similar)


def test_first_time_visitor_falls_back_to_popularity_even_when_its_weight_is_zero(world):
    model = _model(world, weights=BlendWeights(popularity=0.0))
    ranked = model.rank(RankRequest("first-visit", k=5))
    assert len(ranked) == 5 and all(set(r.channels) == {"popularity"} for r in ranked)
    assert [r.position for r in ranked] == [int(p) for p in model._pop_order[:5]]
    strict = _model(world, weights=BlendWeights(popularity=0.0), cold_start_fallback=False)
    assert strict.rank(RankRequest("first-visit", k=5)) == []
