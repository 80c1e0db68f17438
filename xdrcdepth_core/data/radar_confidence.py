"""Radar-confidence ground truth of CaFNet (papers.md 3.2): which pixels a radar return's depth is right for.

Each radar return of the raster (the nearest one per pixel, as the network sees it) gets a region:

* a return inside an annotated vehicle/pedestrian box (:func:`.boxes.points_in_boxes`, 0.5 m tolerance) is
  tied to that box's image rectangle (the pixels whose centres lie in it);
* any other return gets a patch of ``2 * 50 + 1`` rows by ``2 * 150 + 1`` columns centred on its pixel at the
  nuScenes 900 x 1600 image size, scaled per axis with the image size (CaFNet's dataloader takes
  ``x - 150 : x + 150`` and ``y - 50 : y + 50`` for ``--patch_size 50 150``; we make it symmetric).

Labels (uint8), our rule, matching what CaFNet's loss sees (its BCE is masked with ``depth_gt > 0.01``):

* :data:`IGNORE` (255) where the LiDAR ground truth has no depth: nothing to compare with;
* :data:`POSITIVE` (1) where the ground truth depth lies within ``max_dist`` (0.4 m, CaFNet's
  ``max_dist_correspondence``, strict ``<``) of the depth of a return whose region covers the pixel;
* :data:`NEGATIVE` (0) at every other pixel with ground truth, inside a region or not.

Overlapping regions are united (a pixel is positive if any covering return matches); CaFNet's loop lets the
last return overwrite earlier ones, which depends on point order. CaFNet compares against the interpolated
accumulated LiDAR; we use the cache's ``depth_gt`` (accumulated when ``--lidar-sweeps`` > 1), not interpolated,
so labels exist only at LiDAR pixels.
"""

from __future__ import annotations

import math

import numpy as np

POSITIVE, NEGATIVE, IGNORE = 1, 0, 255
#: CaFNet ``--max_dist_correspondence`` (m).
MAX_DIST_CORRESPONDENCE = 0.4
#: CaFNet ``--patch_size 50 150``: rows / columns on each side of the return at :data:`REFERENCE_HW`.
PATCH_HALF_HW: tuple[int, int] = (50, 150)
REFERENCE_HW: tuple[int, int] = (900, 1600)
#: Box tolerance (m) for tying a return to a box (CaFNet's ``cartesian_uncertainty``).
BOX_TOLERANCE = 0.5


def patch_half_size(image_hw: tuple[int, int], half_hw: tuple[int, int] = PATCH_HALF_HW,
                    reference_hw: tuple[int, int] = REFERENCE_HW) -> tuple[int, int]:
    """Rows / columns on each side of a return for an image of ``image_hw`` (rounded half up)."""
    return (int(math.floor(half_hw[0] * image_hw[0] / reference_hw[0] + 0.5)),
            int(math.floor(half_hw[1] * image_hw[1] / reference_hw[1] + 0.5)))


def rectangle_pixels(rect: np.ndarray, image_hw: tuple[int, int]) -> tuple[slice, slice]:
    """Row and column slices of the pixels whose centres lie in a pixel-edge rectangle ``x0, y0, x1, y1``."""
    x0, y0, x1, y1 = (float(v) for v in rect)
    h, w = image_hw
    rows = slice(max(math.ceil(y0 - 0.5), 0), min(math.floor(y1 - 0.5), h - 1) + 1)
    cols = slice(max(math.ceil(x0 - 0.5), 0), min(math.floor(x1 - 0.5), w - 1) + 1)
    return rows, cols


def radar_confidence_gt(return_rows: np.ndarray, return_cols: np.ndarray, return_depth: np.ndarray,
                        return_box: np.ndarray, rects: np.ndarray, rect_valid: np.ndarray, depth_gt: np.ndarray,
                        max_dist: float = MAX_DIST_CORRESPONDENCE,
                        half_hw: tuple[int, int] | None = None) -> np.ndarray:
    """H x W uint8 labels (module docstring) for the raster's returns.

    ``return_rows`` / ``return_cols`` / ``return_depth``: pixel and depth of each return (one per pixel, the
    raster's winners); ``return_box``: index of the box each return is tied to (-1 = none); ``rects`` /
    ``rect_valid``: the boxes' pixel-edge rectangles (a return tied to a box without a valid rectangle gets a
    patch); ``half_hw``: patch half size, default scaled from CaFNet's by the image size.
    """
    depth_gt = np.asarray(depth_gt, dtype=np.float32)
    h, w = depth_gt.shape
    if half_hw is None:
        half_hw = patch_half_size((h, w))
    labels = np.full((h, w), IGNORE, dtype=np.uint8)
    gt_rows, gt_cols = np.nonzero(depth_gt > 0)
    labels[gt_rows, gt_cols] = NEGATIVE
    rows = np.asarray(return_rows, dtype=np.int64)
    cols = np.asarray(return_cols, dtype=np.int64)
    if len(rows) == 0 or len(gt_rows) == 0:
        return labels
    # inclusive pixel bounds (top, bottom, left, right) of each return's region
    bounds = np.stack([np.maximum(rows - half_hw[0], 0), np.minimum(rows + half_hw[0], h - 1),
                       np.maximum(cols - half_hw[1], 0), np.minimum(cols + half_hw[1], w - 1)], axis=1)
    boxes = np.asarray(return_box, dtype=np.int64)
    for i in np.flatnonzero(boxes >= 0):
        if rect_valid[boxes[i]]:
            r, c = rectangle_pixels(rects[boxes[i]], (h, w))
            bounds[i] = (r.start, r.stop - 1, c.start, c.stop - 1)
    depths = np.asarray(return_depth, dtype=np.float64)
    gt = depth_gt[gt_rows, gt_cols]
    positive = np.zeros(len(gt), dtype=bool)
    step = max(1, 4_000_000 // len(gt))  # returns per chunk: at most ~4 M (return, GT pixel) pairs at once
    for start in range(0, len(rows), step):
        b, d = bounds[start:start + step, :, None], depths[start:start + step, None]
        covered = ((gt_rows >= b[:, 0]) & (gt_rows <= b[:, 1]) & (gt_cols >= b[:, 2]) & (gt_cols <= b[:, 3]))
        positive |= np.any(covered & (np.abs(gt - d) < max_dist), axis=0)
    labels[gt_rows[positive], gt_cols[positive]] = POSITIVE
    return labels
