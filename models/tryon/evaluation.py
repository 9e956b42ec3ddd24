"""Evaluation of a try-on generator: SSIM, PSNR and perceptual distance of a trained try-on generator on
held-out synthetic pairs, against the naive paste of the keypoint-warped garment and the
untrained generator; and a real photo (skimage's astronaut, or matplotlib's Grace Hopper)
with a generated garment, with the garment's coverage of the upper-body region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from drape.models.person import PersonAnalysis
from drape.models.tryon.inference import generate, person_inputs, run_generator
from drape.models.tryon.losses import PerceptualDistance
from drape.models.tryon.metrics import psnr, ssim
from drape.models.tryon.networks import TryOnGenerator
from drape.models.tryon.sample import TryOnSample, remap
from drape.models.tryon.synthetic import synthetic_pair
from drape.models.tryon.warp import tps_grid

EVAL_SEED = 10_000  # training draws from other seeds


def naive_paste(sample: TryOnSample) -> np.ndarray:
    """The baseline: the keypoint-TPS-warped garment pasted onto the agnostic person."""
    h, w = sample.person.shape[:2]
    grid = tps_grid(sample.tps_control, sample.tps_params, h, w)
    warped = remap(sample.garment, grid, border=255)
    mask = remap(sample.garment_mask, grid) > 127
    return np.where(mask[..., None], warped, sample.agnostic)


def _scores(
    outputs: np.ndarray, samples: list[TryOnSample], perceptual: PerceptualDistance
) -> dict[str, float]:
    targets = np.stack([s.person for s in samples])
    to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    with torch.inference_mode():
        distance = float(perceptual(to_t(outputs), to_t(targets)))
    return {
        "ssim": float(np.mean([ssim(o, t) for o, t in zip(outputs, targets, strict=True)])),
        "psnr": float(np.mean([psnr(o, t) for o, t in zip(outputs, targets, strict=True)])),
        "perceptual": distance,
    }


def evaluate(generator: TryOnGenerator, pairs: int = 64) -> dict[str, dict[str, float]]:
    spec = generator.spec
    samples = [
        synthetic_pair(np.random.default_rng([EVAL_SEED, i]), spec.height, spec.width)
        for i in range(pairs)
    ]
    perceptual = PerceptualDistance()
    torch.manual_seed(0)
    untrained = TryOnGenerator(spec).eval()
    results = {}
    for name, outputs in (
        ("naive paste", np.stack([naive_paste(s) for s in samples])),
        ("untrained generator", _batched(untrained, samples)),
        ("trained generator", _batched(generator, samples)),
    ):
        results[name] = _scores(outputs, samples, perceptual)
    return results


def _batched(generator: TryOnGenerator, samples: list[TryOnSample], size: int = 16) -> np.ndarray:
    return np.concatenate(
        [generate(generator, samples[i : i + size])["tryon"] for i in range(0, len(samples), size)]
    )


# Product shots every photo is tried with: a print, a check, a plain colour, a floral.
PHOTO_GARMENTS = (
    ("t-shirt", "blue", "striped"),
    ("shirt", "red", "checked"),
    ("sweater", "green", "solid"),
    ("blouse", "pink", "floral"),
)


def evaluate_photos(
    generator: TryOnGenerator, photos: list[tuple[str, np.ndarray]], out_dir: Path | None = None
) -> dict[str, object]:
    """The preview measures (:mod:`drape.models.tryon.quality`) of every photo with every
    garment of :data:`PHOTO_GARMENTS`, with a summary: the share of photos the person
    analysis accepts, each measure's mean, and the share of previews that meet each target.
    With ``out_dir``, writes one PNG per photo: the photo, then each preview spliced into it."""

    from drape.models.person import PersonAnalyzer
    from drape.models.tryon.fitting import REFINEMENT_AGREEMENT, preview, refinement_agreement
    from drape.models.tryon.quality import assess, measure_outputs
    from drape.synthetic.garments import render_garment

    spec = generator.spec
    shots = [render_garment(c, colour, pattern, np.random.default_rng([3, i]))
             for i, (c, colour, pattern) in enumerate(PHOTO_GARMENTS)]  # fmt: skip
    analyzer = PersonAnalyzer()
    per_photo, previews = [], []
    try:
        for name, photo in photos:
            # As the try-on service does: the whole photo analysed once, the model's crop
            # around the person, the rendering spliced back into the photo.
            analysis = analyzer.analyze(np.ascontiguousarray(photo))
            samples, box = [], None
            for shot in shots:
                sample, box = person_inputs(photo, analysis, shot.image, shot.mask,
                                            spec.height, spec.width)  # fmt: skip
                if sample is None:
                    break
                samples.append(sample)
            if not samples:
                per_photo.append({"photo": name, "usable": False, "reason": analysis.reason})
                continue
            out = run_generator(generator, samples)
            shown = [preview(sample, out, i) for i, sample in enumerate(samples)]
            rows, composites = [], []
            for i, (garment, sample) in enumerate(zip(PHOTO_GARMENTS, samples, strict=True)):
                result = assess(measure_outputs(sample, out, i, shown=shown[i]))
                composite, kept = _kept_in_composite(photo, *shown[i], box, analysis)
                composites.append(composite)
                agreement = refinement_agreement(sample, out, i)
                rows.append({"photo": name, "garment": " ".join(garment), "score": result.score,
                             "short": list(result.short), **result.measures.as_dict(), **kept,
                             "refinement_agreement": agreement,
                             "refined": agreement >= REFINEMENT_AGREEMENT})  # fmt: skip
            previews += rows
            per_photo.append({"photo": name, "usable": True,
                              "mean_score": float(np.mean([r["score"] for r in rows]))})  # fmt: skip
            if out_dir is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                _contact_sheet([photo, *composites]).save(out_dir / f"{Path(name).stem}.png")
    finally:
        analyzer.close()
    return {"photos": per_photo, "previews": previews, "summary": _summary(per_photo, previews)}


def _contact_sheet(images: list[np.ndarray], height: int = 320):
    """The images side by side, each scaled to ``height``."""
    from PIL import Image

    tiles = [Image.fromarray(i).resize((round(i.shape[1] * height / i.shape[0]), height),
                                       Image.Resampling.LANCZOS) for i in images]  # fmt: skip
    sheet = Image.new("RGB", (sum(t.width for t in tiles), height))
    x = 0
    for tile in tiles:
        sheet.paste(tile, (x, 0))
        x += tile.width
    return sheet


def _kept_in_composite(
    photo: np.ndarray,
    rendered: np.ndarray,
    garment: np.ndarray,
    box: tuple[int, int, int, int],
    analysis: PersonAnalysis,
) -> tuple[np.ndarray, dict[str, float]]:
    """The rendering of the photo's ``box`` spliced back into it (as the splice service
    does), and how well the face (SSIM) and everything outside the garment's band (mean
    difference) are kept."""
    from drape.models.splice import changed_region, compose, preservation

    mask = garment.astype(np.uint8) * 255
    composite = compose(photo, rendered, mask, box)
    face = None
    if analysis.face_box is not None:
        x0, y0, x1, y1 = analysis.face_box
        h, w = photo.shape[:2]
        face = (int(y0 * h), int(x0 * w), int(y1 * h), int(x1 * w))
    face_ssim, background = preservation(
        photo, composite, changed_region(photo.shape[:2], mask, box), face
    )
    return composite, {"face_ssim": face_ssim, "background_difference": background}


def _summary(per_photo: list[dict], previews: list[dict]) -> dict[str, float]:
    from drape.models.tryon.quality import RAMPS

    summary: dict[str, float] = {
        "photos": len(per_photo),
        "usable_share": sum(p["usable"] for p in per_photo) / max(len(per_photo), 1),
        "previews": len(previews),
    }
    if not previews:
        return summary
    summary["mean_score"] = float(np.mean([r["score"] for r in previews]))
    for name, (zero, full) in RAMPS.items():
        values = np.array([r[name] for r in previews])
        summary[f"mean_{name}"] = float(values.mean())
        met = values <= full if full < zero else values >= full  # Delta E: lower is better
        summary[f"{name}_target_met_share"] = float(met.mean())
    faces = np.array([r["face_ssim"] for r in previews if r["face_ssim"] > 0])
    if faces.size:
        summary["mean_face_ssim"] = float(faces.mean())
        summary["face_ssim_target_met_share"] = float((faces >= 0.97).mean())
    summary["max_background_difference"] = float(max(r["background_difference"] for r in previews))
    # How often the generator's refinement was shown rather than the fitted garment.
    summary["refined_share"] = float(np.mean([r["refined"] for r in previews]))
    return summary
