"""Real photos that ship inside packages (skimage, matplotlib) and the generated garment set."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


@pytest.fixture(scope="session")
def analyzer():
    from drape.models.person import PersonAnalyzer

    analyzer = PersonAnalyzer()
    yield analyzer
    analyzer.close()
