"""Training data of the try-on GAN: batches of synthetic pairs mixed with real ones
(self-supervised pairs from person photos, or VITON-HD pairs), each batch a pure function of
the run's seed and the step number, built in this process or by spawned workers."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from drape.models.tryon.networks import TryOnSpec
from drape.models.tryon.recipe import TrainSection
from drape.models.tryon.training import TrainSettings, to_tensors

ANALYSES_FILE = "person-analyses.npz"


def bundled_photos() -> list[np.ndarray]:
    """Real person photos that ship inside installed packages."""
    from matplotlib import cbook
    from PIL import Image

    photos = []
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos.append(np.asarray(Image.open(handle).convert("RGB")))
    try:
        from skimage import data

        photos.append(data.astronaut())
    except ImportError:
        pass
    return photos


_ARRAYS = ("keypoints", "person_mask", "upper_body_mask", "agnostic")


def write_analyses(memo: dict, path: Path) -> None:
    """Person analyses by key as one .npz: their arrays, and the rest as JSON (no pickle)."""
    arrays: dict[str, np.ndarray] = {}
    index = []
    for i, (key, analysis) in enumerate(memo.items()):
        index.append({"key": key, "status": analysis.status.value, "reason": analysis.reason,
                      "width": analysis.width, "height": analysis.height, "face_box": analysis.face_box,
                      "upper_body_box": analysis.upper_body_box})  # fmt: skip
        for name in _ARRAYS:
            value = getattr(analysis, name)
            if value is not None:
                arrays[f"{i}.{name}"] = value
    arrays["index"] = np.frombuffer(json.dumps(index).encode(), np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def read_analyses(path: Path) -> dict:
    """What :func:`write_analyses` wrote; object arrays (pickles) are refused by numpy."""
    from drape.models.person import PersonAnalysis, PersonStatus

    memo = {}
    with np.load(path, allow_pickle=False) as data:
        for i, entry in enumerate(json.loads(data["index"].tobytes())):
            arrays = {name: data[f"{i}.{name}"] for name in _ARRAYS if f"{i}.{name}" in data.files}
            boxes = {
                b: tuple(entry[b]) if entry[b] is not None else None
                for b in ("face_box", "upper_body_box")
            }
            memo[entry["key"]] = PersonAnalysis(PersonStatus(entry["status"]), entry["reason"], entry["width"],
                                                entry["height"], **boxes, **arrays)  # fmt: skip
    return memo


class MemoAnalyzer:
    """Person analysis memoised by the pixels analysed, kept in a file beside the run.

    Self-supervised pairs analyse the same few crops (each photo, mirrored or not) over and
    over; the memo turns that into one MediaPipe call per crop, and its file lets a run go on
    where MediaPipe is not installed. MediaPipe is loaded on the first miss only, so the memo
    pickles cleanly into data-loading workers."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._analyzer = None
        self._memo: dict[str, object] = {}
        if path is not None and path.exists():
            self._memo = read_analyses(path)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_analyzer": None}

    @staticmethod
    def key(rgb: np.ndarray) -> str:
        return f"{rgb.shape}:{hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()}"

    def analyze(self, rgb: np.ndarray):  # -> PersonAnalysis
        key = self.key(rgb)
        if key not in self._memo:
            if self._analyzer is None:
                from drape.models.person import PersonAnalyzer

                self._analyzer = PersonAnalyzer()
            self._memo[key] = self._analyzer.analyze(rgb)
            if self.path is not None:
                # Data-loading workers miss at the same time: each stages its own file, and
                # the last complete one wins (entries another worker found are found again).
                staging = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
                write_analyses(self._memo, staging)
                os.replace(staging, self.path)
        return self._memo[key]

    def close(self) -> None:
        if self._analyzer is not None:
            self._analyzer.close()
            self._analyzer = None


class RealPairs:
    """Self-supervised pairs from person photos, or VITON-HD pairs, drawn deterministically
    (pair ``i`` of a run is always built from the same photo and random draw)."""

    def __init__(self, train: TrainSection, spec: TryOnSpec, run_dir: Path | None = None) -> None:
        from drape.models.images import decode_image
        from drape.models.tryon.photos import photo_folder, viton_pairs

        self.spec = spec
        self.viton = viton_pairs(Path(train.viton)) if train.viton else []
        if train.photos == "bundled":
            self.photos = bundled_photos()
        elif train.photos:
            self.photos = [
                decode_image(p.read_bytes()).pixels for p in photo_folder(Path(train.photos))
            ]
        else:
            self.photos = []
        if not self.viton and not self.photos:
            raise ValueError("real_share > 0 needs `photos` or `viton` in [train]")
        # VITON-HD photos are each analysed once an epoch: nothing to gain from a memo.
        memo = run_dir / ANALYSES_FILE if run_dir is not None and not self.viton else None
        self.analyzer = MemoAnalyzer(memo)

    def pair(self, index: int, seed: int):  # -> TryOnSample | None
        from drape.models.tryon.photos import self_supervised_pair, viton_pair

        h, w = self.spec.height, self.spec.width
        if self.viton:
            return viton_pair(self.viton[index % len(self.viton)], self.analyzer, h, w)
        rng = np.random.default_rng([seed, 1, index])
        return self_supervised_pair(self.photos[index % len(self.photos)], self.analyzer, rng, h, w)

    def close(self) -> None:
        self.analyzer.close()


def _batch(step: int, settings: TrainSettings, real: RealPairs | None,
           real_share: float, fitted_share: float = 0.0) -> dict[str, torch.Tensor]:  # fmt: skip
    from drape.models.tryon.synthetic import fitted_pair, synthetic_pair

    count = settings.batch_size
    n_real = round(count * real_share) if real else 0
    rng = np.random.default_rng([settings.seed, 0, step])
    h, w = settings.spec.height, settings.spec.width
    samples = []
    for i in range(n_real):
        sample = real.pair(step * count + i, settings.seed) if real else None
        if sample is not None:
            samples.append(sample)
    synthetic = count - len(samples)
    # Recipes without fitted pairs draw exactly what they always drew.
    n_fitted = round(synthetic * fitted_share) if fitted_share else 0
    fitted_rng = np.random.default_rng([settings.seed, 1, step])
    samples += [fitted_pair(fitted_rng, h, w) for _ in range(n_fitted)]
    samples += [synthetic_pair(rng, h, w) for _ in range(synthetic - n_fitted)]
    return to_tensors(samples)


class TrainBatches(torch.utils.data.Dataset):
    """Batch ``step`` of a run, the same whichever process builds it (so ``workers`` changes
    the speed of a run, never its result)."""

    def __init__(self, settings: TrainSettings, real: RealPairs | None, real_share: float,
                 fitted_share: float = 0.0) -> None:  # fmt: skip
        self.settings, self.real, self.real_share = settings, real, real_share
        self.fitted_share = fitted_share

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        return _batch(step, self.settings, self.real, self.real_share, self.fitted_share)


def batches(dataset: TrainBatches, steps: range, workers: int) -> Iterable[dict[str, torch.Tensor]]:
    """The run's batches in step order, built by ``workers`` processes ahead of the GPU (or
    in this process when 0). Workers are spawned, never forked from a process holding CUDA."""
    if workers <= 0:
        return (dataset[step] for step in steps)
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, sampler=steps, num_workers=workers, prefetch_factor=4,
        multiprocessing_context="spawn", persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )  # fmt: skip
