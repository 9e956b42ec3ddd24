"""The try-on GAN's parts: TPS warping, pose maps, the synthetic pairs, the generator and
its ONNX export, a few training steps, and bit-exact save/resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from drape.models.tryon.export import example_inputs, export_tryon_onnx
from drape.models.tryon.losses import LossWeights, ssim_loss
from drape.models.tryon.metrics import ssim
from drape.models.tryon.networks import (
    LIMBS,
    TryOnGenerator,
    TryOnSpec,
    limb_maps,
    pose_heatmaps,
    tps_sampling_grid,
)
from drape.models.tryon.sample import remap
from drape.models.tryon.synthetic import POSE_POINTS, synthetic_pair
from drape.models.tryon.training import (
    GENERATOR_INPUTS,
    SyntheticBatches,
    TrainSettings,
    TryOnTrainer,
    load_generator,
    to_tensors,
)
from drape.models.tryon.warp import tps_grid, tps_solve

SMALL = TryOnSpec(height=64, width=48, base_channels=8, flow_channels=4, depth=3)


def test_the_tps_sends_body_anchors_to_garment_landmarks():
    rng = np.random.default_rng(0)
    dst = rng.uniform([20, 20], [170, 230], size=(5, 2))
    src = rng.uniform([20, 20], [230, 230], size=(5, 2))
    control, params = tps_solve(dst, src, (256, 192), src_size=(256, 256))
    grid = tps_grid(control, params, 256, 192)
    for (x, y), (sx, sy) in zip(dst, src, strict=True):
        # The grid at a body anchor points (in [-1, 1]) at its garment landmark.
        gx, gy = grid[int(y), int(x)]
        assert abs((gx + 1) / 2 * 256 - sx) < 4 and abs((gy + 1) / 2 * 256 - sy) < 4
    torch_grid = tps_sampling_grid(
        torch.from_numpy(control)[None], torch.from_numpy(params)[None], 256, 192
    )
    assert np.abs(torch_grid[0].numpy() - grid).max() < 1e-4


def test_pose_heatmaps_peak_at_keypoints_and_ignore_missing_ones():
    points = torch.tensor([[[0.5, 0.25], [-0.5, 0.5]]])
    maps = pose_heatmaps(points, 64, 48, sigma=0.05)
    assert maps.shape == (1, 2, 64, 48)
    peak = torch.nonzero(maps[0, 0] == maps[0, 0].max())[0]
    assert abs(int(peak[0]) - 16) <= 1 and abs(int(peak[1]) - 24) <= 1
    assert maps[0, 1].max() == 0


def test_limb_maps_draw_segments_between_keypoints():
    points = torch.full((1, 10, 2), 0.5)
    points[0, POSE_POINTS.index("left_elbow")] = torch.tensor([0.25, 0.25])
    points[0, POSE_POINTS.index("left_wrist")] = torch.tensor([0.25, 0.75])
    points[0, POSE_POINTS.index("right_wrist")] = torch.tensor([-0.5, 0.5])  # missing
    maps = limb_maps(points, 64, 48, sigma=0.03)
    assert maps.shape == (1, len(LIMBS), 64, 48)
    forearm = maps[0, LIMBS.index((4, 6))]
    # On the segment (column 12, rows 16..48) the map is ~1; beyond its ends and to the
    # side it fades out.
    assert float(forearm[16:48, 12].min()) > 0.9
    assert float(forearm[:8, 12].max()) < 0.05 and float(forearm[56:, 12].max()) < 0.05
    assert float(forearm[32, 30:].max()) < 0.01
    assert float(maps[0, LIMBS.index((5, 7))].max()) == 0  # an end is missing


def test_a_crossing_forearm_is_where_the_pose_says():
    crossing = 0
    for seed in range(40):
        sample = synthetic_pair(np.random.default_rng([2, seed]), 256, 192)
        hips = sample.pose[[POSE_POINTS.index("left_hip"), POSE_POINTS.index("right_hip")]]
        centre, span = hips[:, 0].mean(), abs(hips[1, 0] - hips[0, 0])
        for name in ("left_wrist", "right_wrist"):
            wrist = sample.pose[POSE_POINTS.index(name)]
            if abs(wrist[0] - centre) < 0.3 * span and wrist[1] < hips[:, 1].min():
                # A hand in front of the torso: skin there, not garment.
                x, y = (wrist * [192, 256]).astype(int)
                crossing += 1
                assert sample.region[y, x] == 0
                assert not np.array_equal(sample.person[y, x], sample.agnostic[y, x])
    assert crossing >= 5


def test_the_ssim_loss_is_one_minus_the_ssim_metric():
    batch = to_tensors([synthetic_pair(np.random.default_rng([4, i]), 64, 48) for i in range(2)])
    target = batch["person"]
    fake = (batch["agnostic"].clone()).requires_grad_(True)
    loss = ssim_loss(fake, target)

    def as_uint8(t):
        return ((t.detach().permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)

    expected = np.mean([ssim(a, b) for a, b in zip(as_uint8(fake), as_uint8(target), strict=True)])
    assert abs((1 - float(loss.detach())) - expected) < 1e-4
    loss.backward()
    assert float(fake.grad.abs().sum()) > 0
    assert float(ssim_loss(target, target)) < 1e-6


def test_limb_inputs_can_be_added_to_a_trained_generator(tmp_path: Path):
    plain = TryOnTrainer(TrainSettings(spec=SMALL, batch_size=2))
    data = SyntheticBatches(SMALL, 2, seed=6)
    plain.step(data.batch(0))
    plain.save(tmp_path / "plain")
    path = tmp_path / "plain" / "generator.safetensors"

    limbs = replace(SMALL, limbs=True)
    trainer = TryOnTrainer(TrainSettings(spec=limbs, batch_size=2, weights=LossWeights(ssim=5.0)))
    trainer.init_generator(path)
    first = trainer.generator.generator.stem[0].weight
    assert first.shape[1] == plain.generator.generator.stem[0].weight.shape[1] + len(LIMBS)
    assert float(first[:, 13 : 13 + len(LIMBS)].abs().max()) == 0
    batch = data.batch(1)
    with torch.inference_mode():
        before = plain.generator.eval()(*(batch[k] for k in GENERATOR_INPUTS))["tryon"]
        after = trainer.generator.eval()(*(batch[k] for k in GENERATOR_INPUTS))["tryon"]
    assert float((before - after).abs().max()) < 1e-4  # it starts where the plain one was
    trainer.generator.train()
    losses = trainer.step(batch)
    assert 0 < losses["ssim"] < 1
    # Any other difference of spec is refused.
    other = TryOnTrainer(TrainSettings(spec=replace(SMALL, base_channels=4)))
    with pytest.raises(ValueError, match="this run trains"):
        other.init_generator(path)


def test_synthetic_pairs_are_consistent():
    rng = np.random.default_rng(1)
    sample = synthetic_pair(rng, 256, 192)
    assert sample.person.shape == sample.agnostic.shape == sample.garment.shape == (256, 192, 3)
    assert sample.pose.shape == (10, 2) and sample.tps_params.shape == (8, 2)
    region = sample.region > 0
    assert 0.08 < region.mean() < 0.5
    # The garment region is hidden in the agnostic person, the head is not.
    assert (sample.agnostic[region] == 128).all()
    assert np.array_equal(sample.agnostic[:20], sample.person[:20])
    # The keypoint TPS puts the garment roughly where the truth has it.
    coarse = (
        remap(sample.garment_mask, tps_grid(sample.tps_control, sample.tps_params, 256, 192)) > 127
    )
    assert (coarse & region).sum() / (coarse | region).sum() > 0.6
    again = synthetic_pair(np.random.default_rng(1), 256, 192)
    assert np.array_equal(again.person, sample.person)


def test_fitted_pairs_give_the_generator_a_garment_already_on_the_body():
    from drape.models.tryon.synthetic import fitted_pair

    for seed in range(4):
        sample = fitted_pair(np.random.default_rng([2, seed]), 256, 192)
        region, fitted = sample.region > 0, sample.garment_mask > 127
        assert sample.person.shape == sample.agnostic.shape == sample.garment.shape == (256, 192, 3)
        assert (sample.agnostic[region] == 128).all()
        assert np.array_equal(sample.agnostic[:20], sample.person[:20])  # the head is kept
        # The input is the garment already fitted (the TPS is the identity), close to where
        # the truth has it: what is left to learn is a refinement.
        grid = tps_grid(sample.tps_control, sample.tps_params, 256, 192)
        identity = tps_grid(*tps_solve(sample.pose[:3] * [192, 256], sample.pose[:3] * [192, 256],
                                       (256, 192)), 256, 192)  # fmt: skip
        assert np.abs(grid - identity).max() < 1e-3
        assert (fitted & region).sum() / (fitted | region).sum() > 0.6, seed
    again = fitted_pair(np.random.default_rng([2, 0]), 256, 192)
    assert np.array_equal(again.person, fitted_pair(np.random.default_rng([2, 0])).person)


def test_the_generator_composes_and_starts_from_the_keypoint_warp():
    generator = TryOnGenerator(SMALL)
    inputs = example_inputs(generator, 2)
    with torch.inference_mode():
        out = generator(*inputs)
    assert out["tryon"].shape == (2, 3, 64, 48)
    assert out["mask"].min() >= 0 and out["mask"].max() <= 1
    assert float(out["flow"].abs().max()) == 0.0  # refinement starts at the plain TPS
    composed = out["mask"] * out["warped"] + (1 - out["mask"]) * out["rendered"]
    expected = out["hidden"] * composed + (1 - out["hidden"]) * inputs[0]
    assert torch.allclose(out["tryon"], expected, atol=1e-6)
    # Outside the greyed-out region the person's own pixels are kept exactly.
    grey = torch.full((1, 3, 64, 48), 128 / 127.5 - 1)
    grey[..., :20, :] = inputs[0][:1, :, :20, :]
    with torch.inference_mode():
        kept = generator(grey, *(t[:1] for t in inputs[1:]))
    assert torch.equal(kept["tryon"][..., :20, :], grey[..., :20, :])
    assert kept["hidden"][..., 20:, :].min() == 1
    with pytest.raises(ValueError, match="divisible"):
        TryOnGenerator(TryOnSpec(height=250))


@pytest.mark.parametrize("spec", [SMALL, replace(SMALL, limbs=True)], ids=["plain", "limbs"])
def test_the_onnx_export_matches_torch(tmp_path: Path, spec: TryOnSpec):
    from drape.models.export import onnx_session

    generator = TryOnGenerator(spec)
    with torch.no_grad():  # non-trivial weights: perturb the zero-initialised flow head
        generator.refiner.out.weight.normal_(0, 0.01)
    path = export_tryon_onnx(generator, tmp_path / "tryon.onnx")
    inputs = example_inputs(generator, 4, seed=9)
    with torch.inference_mode():
        expected = generator(*inputs)["tryon"].numpy()
    names = ("agnostic", "garment", "garment_mask", "pose", "tps_control", "tps_params")
    actual = onnx_session(path).run(
        ["tryon"], {n: t.numpy() for n, t in zip(names, inputs, strict=True)}
    )[0]
    assert np.abs(actual - expected).max() <= 1e-4


def test_a_few_training_steps_lower_the_loss():
    trainer = TryOnTrainer(TrainSettings(spec=SMALL, batch_size=4))
    batch = SyntheticBatches(SMALL, 4, seed=0).batch(0)
    first = trainer.step(batch)
    for _ in range(19):
        last = trainer.step(batch)
    assert last["l1"] < first["l1"] * 0.85
    assert last["perceptual"] < first["perceptual"]
    assert last["g"] < first["g"]


def test_save_and_resume_are_bit_exact(tmp_path: Path):
    settings = TrainSettings(spec=SMALL, batch_size=2)
    batches = SyntheticBatches(SMALL, 2, seed=3)
    straight = TryOnTrainer(settings)
    for i in range(2):
        straight.step(batches.batch(i))
    straight.save(tmp_path / "ckpt")
    for i in range(2, 4):
        straight.step(batches.batch(i))

    resumed = TryOnTrainer(settings)
    resumed.load(tmp_path / "ckpt")
    assert resumed.step_count == 2
    for i in range(2, 4):
        resumed.step(batches.batch(i))
    for (name, a), (_, b) in zip(
        straight.generator.state_dict().items(), resumed.generator.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    served = load_generator(tmp_path / "ckpt" / "generator.safetensors")
    assert served.spec == SMALL


def test_pairs_from_real_photos_and_the_viton_hd_layout(analyzer, astronaut, tmp_path: Path):
    from drape.models.images import encode_png
    from drape.models.tryon.photos import self_supervised_pair, viton_pair, viton_pairs
    from drape.synthetic.garments import render_garment

    sample = self_supervised_pair(astronaut, analyzer, np.random.default_rng(0))
    assert sample is not None
    assert (
        sample.person.shape == (256, 192, 3) and sample.region.any() and sample.garment_mask.any()
    )
    # The garment is the person's own, cut out onto white.
    assert (sample.garment[sample.garment_mask > 0] != 255).any(axis=-1).mean() > 0.9
    assert (
        self_supervised_pair(
            np.full((300, 300, 3), 255, np.uint8), analyzer, np.random.default_rng(0)
        )
        is None
    )

    for folder in ("image", "cloth", "cloth-mask"):
        (tmp_path / folder).mkdir()
    shot = render_garment("t-shirt", "red", "solid", np.random.default_rng(0))
    (tmp_path / "image" / "000001_00.png").write_bytes(encode_png(astronaut))
    (tmp_path / "cloth" / "000001_00.png").write_bytes(encode_png(shot.image))
    (tmp_path / "cloth-mask" / "000001_00.png").write_bytes(encode_png(shot.mask))
    (tmp_path / "image" / "000002_00.png").write_bytes(encode_png(astronaut))  # no cloth: skipped
    pairs = viton_pairs(tmp_path)
    assert [p[0].name for p in pairs] == ["000001_00.png"]
    paired = viton_pair(pairs[0], analyzer)
    assert paired is not None and paired.garment_mask.any()
    with pytest.raises(FileNotFoundError, match="not a VITON-HD split"):
        viton_pairs(tmp_path / "image")
