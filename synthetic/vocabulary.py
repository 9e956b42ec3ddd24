"""The generated world's vocabulary: garment categories, colours (with the RGB they are
drawn in) and patterns. The catalog, the product-shot renderer and the synthetic try-on
pairs all draw from it."""

from __future__ import annotations

CATEGORIES = ("t-shirt", "shirt", "blouse", "sweater", "hoodie", "jacket", "dress", "coat")
COLOURS = ("black", "white", "navy", "red", "green", "beige", "grey", "yellow", "pink", "blue")
PATTERNS = ("solid", "striped", "checked", "dotted", "floral")
COLOUR_RGB = {
    "black": (28, 28, 30), "white": (246, 246, 243), "navy": (25, 40, 92), "red": (190, 30, 40),
    "green": (40, 120, 60), "beige": (214, 196, 160), "grey": (128, 128, 132),
    "yellow": (236, 200, 40), "pink": (236, 150, 180), "blue": (50, 110, 200),
}  # fmt: skip
