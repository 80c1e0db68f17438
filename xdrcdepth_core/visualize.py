"""Pictures for people: depth colormaps and saliency overlays (used by the demo, tests and the node).

The colormap is Turbo (Mikhailov, Google AI Blog 2019) evaluated with its published polynomial
approximation (Ruofei Du's fit: a degree-5 polynomial per channel), so no matplotlib is needed at runtime.
Near = red/yellow, far = blue; invalid (non-finite or <= 0) pixels are black.
"""

from __future__ import annotations

import numpy as np

_TURBO_COEFFS = np.array([
    # 1, x, x^2, x^3, x^4, x^5 for red, green, blue
    [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
    [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
    [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
])


def turbo(x: np.ndarray) -> np.ndarray:
    """Turbo RGB in [0, 1] for values ``x`` in [0, 1] (clipped); output shape ``x.shape + (3,)``."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    powers = np.stack([x ** k for k in range(6)], axis=-1)
    return np.clip(powers @ _TURBO_COEFFS.T, 0.0, 1.0)


def colorize_depth(depth: np.ndarray, max_depth: float = 80.0, min_depth: float = 0.0) -> np.ndarray:
    """H x W metres -> H x W x 3 uint8 RGB; near is warm, far is cool, invalid is black.

    The scale is fixed (``min_depth``..``max_depth``), never per-frame min-max, so colours mean the same
    distance in every frame.
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    x = 1.0 - (np.where(valid, depth, max_depth) - min_depth) / max(max_depth - min_depth, 1e-9)
    rgb = (turbo(x) * 255.0 + 0.5).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def overlay_saliency(image: np.ndarray, saliency: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend a [0, 1] saliency map as Turbo colours over an RGB uint8 image, opacity ``alpha * saliency``
    per pixel, so non-salient regions keep the plain image."""
    s = np.clip(np.nan_to_num(np.asarray(saliency, dtype=np.float64), nan=0.0), 0.0, 1.0)[..., None]
    heat = turbo(s[..., 0]) * 255.0
    weight = alpha * s
    return (image.astype(np.float64) * (1.0 - weight) + heat * weight + 0.5).clip(0, 255).astype(np.uint8)


def draw_points(image: np.ndarray, uv: np.ndarray, depth: np.ndarray, max_depth: float = 80.0,
                radius: int = 3) -> np.ndarray:
    """Draw projected points (N x 2 pixel coordinates) coloured by depth onto a copy of an RGB image."""
    out = image.copy()
    colours = colorize_depth(np.asarray(depth).reshape(1, -1), max_depth)[0]
    h, w = out.shape[:2]
    for (u, v), c in zip(np.floor(np.asarray(uv) + 0.5).astype(int), colours):
        out[max(v - radius, 0):min(v + radius + 1, h), max(u - radius, 0):min(u + radius + 1, w)] = c
    return out


def sparse_overlay(image: np.ndarray, sparse_depth: np.ndarray, max_depth: float = 80.0, radius: int = 3) -> np.ndarray:
    """The non-zero pixels of a sparse H x W depth map (radar, LiDAR) drawn as depth-coloured squares on a copy
    of an RGB image of the same size."""
    rows, cols = np.nonzero(sparse_depth)
    return draw_points(image, np.column_stack([cols, rows]), sparse_depth[rows, cols], max_depth, radius)
