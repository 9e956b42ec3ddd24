"""Quality measures of embedding spaces."""

from __future__ import annotations

import numpy as np


def knn_accuracy(embeddings: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out kNN accuracy: each item takes the majority label of its ``k`` nearest
    other items under cosine similarity (ties go to the label of the nearest)."""
    if len(embeddings) <= k:
        raise ValueError(f"need more than k={k} items, got {len(embeddings)}")
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :k]
    correct = 0
    for row, label in zip(neighbours, labels, strict=True):
        votes: dict[object, int] = {}
        for neighbour_label in labels[row]:  # nearest first: first to reach the max wins ties
            votes[neighbour_label] = votes.get(neighbour_label, 0) + 1
        correct += max(votes, key=votes.__getitem__) == label
    return correct / len(labels)
