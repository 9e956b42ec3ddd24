"""Training state on disk without pickle: the tensors of a nested structure (optimiser and
RNG states) in a safetensors file, the rest (numbers, strings, tuples, dicts with int or str
keys) as JSON that names each tensor. Loading executes nothing, whatever is in the files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

JSON_SUFFIX = ".json"
TENSORS_SUFFIX = ".safetensors"


def _encode(value: object, tensors: dict[str, torch.Tensor]) -> object:
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous()
        return {"tensor": key}
    if isinstance(value, dict):
        return {"dict": [[k, _encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a training state")


def _decode(value: object, tensors: dict[str, torch.Tensor]) -> object:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        ((kind, body),) = value.items()
        if kind == "tensor":
            return tensors[body]
        if kind == "dict":
            return {k: _decode(v, tensors) for k, v in body}
        if kind == "tuple":
            return tuple(_decode(v, tensors) for v in body)
        if kind == "float":
            return float(body)
        raise ValueError(f"unknown entry {kind!r} in a training state")
    return value


def save_state(state: object, path: Path) -> None:
    """Writes ``path.json`` and ``path.safetensors`` (``path`` without a suffix)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, tensors)
    save_file(tensors, str(path.with_suffix(TENSORS_SUFFIX)))
    path.with_suffix(JSON_SUFFIX).write_text(json.dumps(skeleton))


def load_state(path: Path) -> object:
    from safetensors.torch import load_file

    tensors = load_file(str(path.with_suffix(TENSORS_SUFFIX)))
    return _decode(json.loads(path.with_suffix(JSON_SUFFIX).read_text()), tensors)
