"""A generated set of garment product shots: every catalog category drawn as a distinct
silhouette (sleeves, collars, hoods, lapels, lengths), in each colour and pattern, on a
light studio background with shading, an outline and random pose jitter.

No garment photos ship offline, so tests, the demo and the encoder's fine-tuning use this
set; a real catalog replaces it through `drape ingest`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drape.synthetic.vocabulary import CATEGORIES, COLOUR_RGB, COLOURS, PATTERNS


@dataclass(frozen=True)
class GarmentShot:
    image: np.ndarray  # (S, S, 3) uint8
    mask: np.ndarray  # (S, S) uint8 0/255
    category: str
    colour: str
    pattern: str


def _silhouette(category: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Polygons in unit coordinates (x in [-1, 1] from the centre, y in [0, 1] from the
    top) for one garment; the first is the body."""
    j = lambda scale=0.04: float(rng.normal(0, scale))  # noqa: E731
    shoulder = 0.42 + j(0.02)
    neck = 0.13 + j(0.01)
    arm_drop = 0.55 + j(0.05)  # how far sleeves angle down (0 = horizontal)
    length = {"t-shirt": 0.62, "shirt": 0.66, "blouse": 0.56, "sweater": 0.62, "hoodie": 0.66,
              "jacket": 0.64, "dress": 0.98, "coat": 0.98}[category] + j(0.02)  # fmt: skip
    top = 0.08 if category != "hoodie" else 0.2
    hem_half = {"dress": 0.62, "blouse": 0.46, "coat": 0.5}.get(category, 0.4) + j(0.02)
    waist_y = top + 0.45 * (length - top)
    waist_half = {"dress": 0.27, "blouse": 0.33}.get(category, 0.38)
    body = np.array([
        (-neck, top), (-shoulder, top + 0.04), (-waist_half, waist_y), (-hem_half, top + length),
        (hem_half, top + length), (waist_half, waist_y), (shoulder, top + 0.04), (neck, top),
        (0.0, top + (0.16 if category in ("blouse", "dress") else 0.06)),
    ])  # fmt: skip
    if category == "dress":  # straps, no sleeves
        body[1] = (-0.3, top + 0.02)
        body[6] = (0.3, top + 0.02)
    polygons = [body]
    sleeve_len = {"t-shirt": 0.2, "dress": 0.0, "blouse": 0.42}.get(category, 0.56) + j(0.03)
    width = 0.15 if category != "blouse" else 0.2
    for side in (-1, 1):
        if sleeve_len <= 0:
            continue
        sx, sy = side * shoulder, top + 0.04
        direction = np.array([side * np.cos(arm_drop * 1.2), np.sin(arm_drop * 1.2)])
        normal = np.array([-direction[1], direction[0]])
        end = np.array([sx, sy]) + sleeve_len * direction
        cuff = width * (1.25 if category == "blouse" else 0.8)
        polygons.append(np.array([
            (sx, sy), end - normal * cuff / 2 * side, end + normal * cuff / 2 * side,
            (side * (shoulder - 0.02), sy + width * 1.3),
        ]))  # fmt: skip
    if category == "hoodie":  # the hood
        polygons.append(
            np.array(
                [(-0.2, 0.22), (-0.2, 0.06), (-0.1, 0.0), (0.1, 0.0), (0.2, 0.06), (0.2, 0.22)]
            )
        )
    return polygons


def _details(category: str, canvas: np.ndarray, to_px, outline: tuple[int, int, int]) -> None:
    """Seams, collars, plackets, pockets: drawn in the outline colour."""
    line = lambda a, b, w=2: cv2.line(canvas, to_px(a), to_px(b), outline, w, cv2.LINE_AA)  # noqa: E731
    if category == "shirt":
        line((-0.13, 0.08), (-0.02, 0.2), 3)
        line((0.13, 0.08), (0.02, 0.2), 3)
        line((0.0, 0.14), (0.0, 0.72))
        for y in np.linspace(0.22, 0.68, 6):
            cv2.circle(canvas, to_px((0.03, y)), 2, outline, -1)
    elif category in ("jacket", "coat"):
        bottom = 0.72 if category == "jacket" else 1.06
        line((-0.13, 0.08), (-0.03, 0.42), 3)
        line((0.13, 0.08), (0.03, 0.42), 3)
        line((0.0, 0.42), (0.0, bottom), 3)
        for y in np.linspace(0.5, bottom - 0.08, 3 if category == "jacket" else 5):
            cv2.circle(canvas, to_px((-0.08, y)), 3, outline, -1)
            if category == "coat":
                cv2.circle(canvas, to_px((0.08, y)), 3, outline, -1)
    elif category == "hoodie":
        cv2.ellipse(canvas, to_px((0.0, 0.2)), (18, 10), 0, 0, 180, outline, 2, cv2.LINE_AA)
        line((-0.2, 0.56), (0.2, 0.56))
        line((-0.26, 0.74), (-0.2, 0.56))
        line((0.26, 0.74), (0.2, 0.56))
        line((-0.04, 0.22), (-0.05, 0.36))
        line((0.04, 0.22), (0.05, 0.36))
    elif category == "sweater":
        line((-0.4, 0.64), (0.4, 0.64), 3)
        line((-0.12, 0.11), (0.12, 0.11), 3)
    elif category == "dress":
        line((-0.27, 0.45), (0.27, 0.45), 2)


def _pattern(
    kind: str, rgb: tuple[int, int, int], size: int, rng: np.random.Generator
) -> np.ndarray:
    base = np.array(rgb, dtype=np.float32)
    accent = np.where(base.mean() > 128, base * 0.45, np.minimum(255, base * 0.5 + 140))
    tile = np.empty((size, size, 3), np.float32)
    tile[:] = base
    ys, xs = np.mgrid[0:size, 0:size]
    period = int(rng.integers(12, 22))
    if kind == "striped":
        angle = rng.choice([0.0, np.pi / 2, np.pi / 4])
        coord = xs * np.cos(angle) + ys * np.sin(angle)
        tile[(coord % period) < period / 2.5] = accent
    elif kind == "checked":
        tile[((xs // period) + (ys // period)) % 2 == 0] = accent
        tile[(xs % period < 2) | (ys % period < 2)] = accent * 0.8
    elif kind == "dotted":
        tile[
            ((xs % period - period / 2) ** 2 + (ys % period - period / 2) ** 2) < (period / 5) ** 2
        ] = accent
    elif kind == "floral":
        canvas = tile.copy()
        for _ in range(int(size * size / 900)):
            cx, cy = rng.integers(0, size, 2)
            petal = rng.integers(3, 6)
            for angle in np.linspace(0, 2 * np.pi, 5, endpoint=False):
                px, py = (
                    int(cx + 1.6 * petal * np.cos(angle)),
                    int(cy + 1.6 * petal * np.sin(angle)),
                )
                cv2.circle(canvas, (px, py), int(petal), accent.tolist(), -1)
            cv2.circle(canvas, (int(cx), int(cy)), int(petal * 0.7), (235.0, 200.0, 60.0), -1)
        tile = canvas
    return tile


def render_garment(
    category: str, colour: str, pattern: str, rng: np.random.Generator, size: int = 256
) -> GarmentShot:
    """One product shot of a garment, with its exact mask."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
    zoom = float(rng.uniform(0.86, 1.0))
    scale_x, scale_y = size * 0.5 * zoom, size * 0.84 * zoom
    centre_x = size / 2 + rng.normal(0, size * 0.015)
    top_y = size * float(rng.uniform(0.02, 0.05))
    angle = float(rng.normal(0, 0.05))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def to_px(point) -> tuple[int, int]:
        x, y = rotation @ np.asarray(point, dtype=np.float64)
        return int(centre_x + x * scale_x), int(top_y + y * scale_y)

    mask = np.zeros((size, size), np.uint8)
    for polygon in _silhouette(category, rng):
        cv2.fillPoly(mask, [np.array([to_px(p) for p in polygon], np.int32)], 255, cv2.LINE_AA)
    mask = np.where(mask > 127, 255, 0).astype(np.uint8)
    fabric = _pattern(pattern, COLOUR_RGB[colour], size, rng)
    # Soft studio light: brighter towards the top-left, fabric folds as low-frequency shading.
    ys, xs = np.mgrid[0:size, 0:size] / size
    light = 1.0 + 0.08 * (0.5 - (xs + ys) / 2) + 0.04 * np.sin(xs * rng.uniform(6, 12) + ys * 3)
    fabric = np.clip(fabric * light[..., None], 0, 255)
    background = np.full((size, size, 3), float(rng.integers(236, 252)), np.float32)
    image = np.where(mask[..., None] > 0, fabric, background).astype(np.uint8)
    outline = tuple(int(v) for v in np.clip(np.array(COLOUR_RGB[colour]) * 0.55, 0, 255))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, outline, 1, cv2.LINE_AA)
    _details(category, image, to_px, outline)
    image = np.where(mask[..., None] > 0, image, background.astype(np.uint8))
    return GarmentShot(image, mask, category, colour, pattern)


def garment_set(per_combination: int = 1, seed: int = 0, size: int = 256) -> list[GarmentShot]:
    """Every category x colour x pattern, ``per_combination`` shots each."""
    rng = np.random.default_rng(seed)
    return [
        render_garment(category, colour, pattern, rng, size)
        for category in CATEGORIES
        for colour in COLOURS
        for pattern in PATTERNS
        for _ in range(per_combination)
    ]
