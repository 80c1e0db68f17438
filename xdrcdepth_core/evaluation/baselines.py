"""Reference predictors that give the model's numbers a meaning (``xdrcdepth eval`` prints them beside it).

- ``radar_only``: every pixel takes the depth of the nearest radar return in the image (Euclidean pixel
  distance; a pixel equally far from two returns takes the one scipy's exact distance transform finds, not
  a documented choice); a frame without any return gets the constant below. This is what
  the radar alone says about the scene — a model that does not beat it learnt nothing from the camera.
- ``constant``: one depth for every pixel, the median LiDAR depth of the training set (stored in the
  checkpoint by ``xdrcdepth train``), i.e. the best constant in the L1 sense on training data.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def radar_nearest_depth(radar_depth: np.ndarray, fallback: float) -> np.ndarray:
    """Dense H x W depth: each pixel gets the depth of the nearest non-zero radar pixel (``fallback`` if none)."""
    radar_depth = np.asarray(radar_depth, dtype=np.float32)
    empty = ~(radar_depth > 0)
    if empty.all():
        return np.full(radar_depth.shape, fallback, dtype=np.float32)
    _, (rows, cols) = ndimage.distance_transform_edt(empty, return_indices=True)
    return radar_depth[rows, cols]


def constant_depth(shape: tuple[int, int], value: float) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)
