"""The generated world: one vocabulary for the catalog, the shoppers and the product shots."""

from __future__ import annotations

import numpy as np
import pytest

from drape.synthetic.catalog import generate_catalog
from drape.synthetic.garments import garment_set, render_garment
from drape.synthetic.shoppers import generate_shoppers
from drape.synthetic.vocabulary import CATEGORIES, COLOUR_RGB, COLOURS, PATTERNS


def test_every_colour_has_the_rgb_it_is_drawn_in():
    assert set(COLOUR_RGB) == set(COLOURS)


def test_the_set_covers_every_category_colour_and_pattern():
    shots = garment_set(per_combination=1, seed=11)
    assert len(shots) == len(CATEGORIES) * len(COLOURS) * len(PATTERNS)
    assert {s.category for s in shots} == set(CATEGORIES)
    assert all(s.image.shape == (256, 256, 3) and s.mask.any() for s in shots)
    with pytest.raises(ValueError, match="unknown category"):
        render_garment("kilt", "red", "solid", np.random.default_rng(0))


def test_the_catalog_and_its_shoppers_speak_the_vocabulary():
    catalog = generate_catalog(300, seed=2)
    assert set(catalog.frame["category"]) <= set(CATEGORIES)
    assert set(catalog.frame["colour"]) <= set(COLOURS)
    assert set(catalog.frame["pattern"]) <= set(PATTERNS)
    shoppers = generate_shoppers(catalog, 40, 800, seed=2)
    assert set(shoppers.events["garment_id"]) <= set(catalog.ids)
    assert shoppers.category_taste.shape[1] == len(catalog.categories)
    np.testing.assert_allclose(shoppers.category_taste.sum(axis=1), 1.0, rtol=1e-6)
