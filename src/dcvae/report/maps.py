"""Anomaly maps as pictures: a heat-map overlay per image, and a contact sheet of the most anomalous
images beside their maps (``dcvae score --maps``, the report).

Every overlay of one call shares one colour scale (the 99th percentile of all the maps), so a
brighter map means a larger error in any image of the set, not only within its own.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from dcvae.models.generation import image_grid


def map_scale(maps: np.ndarray) -> float:
    """The colour scale shared by a set of maps: their 99th percentile (a few hot pixels do not
    wash out the rest), never zero."""
    top = float(np.percentile(maps, 99)) if maps.size else 0.0
    return top if top > 0 else 1.0


def overlay(image: np.ndarray, amap: np.ndarray, scale: float) -> np.ndarray:
    """``image`` (C, H, W) in [0, 1] under its map (C, H, W; summed over channels) in the inferno
    colours, half and half: uint8 (H, W, 3)."""
    gray = image.mean(axis=0) if image.shape[0] == 3 else image[0]
    heat = colormaps["inferno"](np.clip(amap.sum(axis=0) / scale, 0.0, 1.0))[..., :3]
    mixed = 0.5 * np.repeat(gray[..., None], 3, axis=2) + 0.5 * heat
    return np.clip(np.rint(mixed * 255.0), 0, 255).astype(np.uint8)


def contact_sheet(images: np.ndarray, maps: np.ndarray, scores: np.ndarray, *, top: int = 16,
                  scale: float | None = None) -> np.ndarray:
    """The ``top`` highest-scoring images, each beside its overlay, 4 pairs a row: uint8 (H', W', 3)."""
    order = np.argsort(-scores, kind="stable")[:top]
    scale = map_scale(maps) if scale is None else scale
    tiles = []
    for i in order:
        picture = images[i] if images[i].shape[0] == 3 else np.repeat(images[i], 3, axis=0)
        tiles += [picture, overlay(images[i], maps[i], scale).transpose(2, 0, 1) / 255.0]
    cols = 8
    rows = -(-len(tiles) // cols)
    blank = np.ones_like(tiles[0])
    grid = np.stack(tiles + [blank] * (rows * cols - len(tiles))).reshape(rows, cols, *tiles[0].shape)
    return image_grid(grid)
