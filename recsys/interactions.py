"""Implicit-feedback strength of events: weighted by type, decayed with age."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

US_PER_DAY = 86_400 * 1_000_000


def interaction_strength(
    events: pd.DataFrame,
    weights: Mapping[str, float],
    half_life_days: float,
    now_us: int,
) -> np.ndarray:
    """Confidence each event adds: ``weights[type] * 0.5 ** (age / half_life)``.

    Events of types missing from ``weights`` count zero; events from the future
    (clock skew) count as new.
    """
    type_weight = events["type"].map(weights).fillna(0.0).to_numpy(dtype=np.float64)
    age_days = np.maximum(now_us - events["occurred_at_us"].to_numpy(), 0) / US_PER_DAY
    return type_weight * np.exp2(-age_days / half_life_days)
