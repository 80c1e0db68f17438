"""Per-frame evaluation pictures: image + radar | ground truth | prediction // error | saliencies (``xdrcdepth
eval``), and image | radar overlay // prediction | LiDAR ground truth of a replayed frame (``replay-demo``).

Depths share one fixed Turbo scale (near = red, far = blue, no data = black); the error panel maps
|prediction - ground truth| on ground-truth pixels from 0 (blue) to ``error_scale`` metres (red). Sparse
maps (LiDAR, radar) are drawn with each point grown to a small square so they stay visible.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from xdrcdepth_core.data.radar import resize_sparse
from xdrcdepth_core.visualize import colorize_depth, overlay_saliency, sparse_overlay, turbo


def grow_sparse(depth: np.ndarray, radius: int) -> np.ndarray:
    """Each non-zero pixel of a sparse map copied to the pixels within ``radius`` (nearest value wins)."""
    empty = ~(np.asarray(depth) > 0)
    if radius <= 0 or empty.all():
        return np.asarray(depth)
    distance, (rows, cols) = ndimage.distance_transform_edt(empty, return_indices=True)
    return np.where(distance <= radius, depth[rows, cols], 0.0)


def error_image(pred: np.ndarray, gt: np.ndarray, error_scale: float, radius: int) -> np.ndarray:
    valid = np.isfinite(gt) & (gt > 0)
    err = np.where(valid, np.abs(pred - gt), 0.0)
    shown = grow_sparse(np.where(valid, err + 1e-6, 0.0), radius)   # +1e-6: zero error stays visible
    rgb = (turbo(shown / error_scale) * 255 + 0.5).astype(np.uint8)
    rgb[~(shown > 0)] = 0
    return rgb


def _titled(rgb: np.ndarray, title: str) -> np.ndarray:
    image = Image.fromarray(rgb)
    ImageDraw.Draw(image).text((4, 2), title, fill=(255, 255, 255))
    return np.asarray(image)


def evaluation_panel(image: np.ndarray, radar_depth: np.ndarray, gt: np.ndarray | None, pred: np.ndarray,
                     saliency: np.ndarray | None = None, teacher_saliency: np.ndarray | None = None,
                     max_depth: float = 80.0, error_scale: float = 10.0) -> np.ndarray:
    """2 x 3 grid (H x W tiles): image + radar, ground truth, prediction / error, saliency, teacher saliency."""
    h, w = image.shape[:2]
    radius = max(1, round(w / 400))
    blank = np.zeros_like(image)
    radar = grow_sparse(radar_depth, 2 * radius)
    with_radar = np.where((radar > 0)[..., None], colorize_depth(radar, max_depth), image)
    gt_rgb = colorize_depth(grow_sparse(gt, radius), max_depth) if gt is not None else blank
    tiles = [
        _titled(with_radar, "image + radar"),
        _titled(gt_rgb, "ground truth"),
        _titled(colorize_depth(pred, max_depth), f"prediction (0-{max_depth:g} m)"),
        _titled(error_image(pred, gt, error_scale, radius) if gt is not None else blank,
                f"|error| (0-{error_scale:g} m)"),
        _titled(overlay_saliency(image, saliency) if saliency is not None else blank, "student Grad-CAM"),
        _titled(overlay_saliency(image, teacher_saliency) if teacher_saliency is not None else blank,
                "teacher Grad-CAM"),
    ]
    assert all(t.shape == (h, w, 3) for t in tiles)
    return np.concatenate([np.concatenate(tiles[:3], axis=1), np.concatenate(tiles[3:], axis=1)], axis=0)


def replay_panel(image: np.ndarray, radar_depth: np.ndarray, pred: np.ndarray, gt: np.ndarray | None,
                 max_depth: float = 80.0, tile_width: int = 800) -> np.ndarray:
    """2 x 2 grid of one replayed frame, each tile ``tile_width`` wide (the image's aspect ratio): camera image |
    radar returns over it // predicted depth | LiDAR ground truth over the dimmed image ("no LiDAR" when
    ``gt`` is None). Depths on one fixed 0-``max_depth`` scale; sparse points keep their depth when scaled."""
    h, w = image.shape[:2]
    hw = (round(h * tile_width / w), tile_width)

    def scaled(rgb: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(rgb).resize((hw[1], hw[0]), Image.BILINEAR))

    small = scaled(image)
    radar = sparse_overlay(small, resize_sparse(radar_depth[None], hw)[0], max_depth, radius=3)
    truth = (sparse_overlay(small // 3, resize_sparse(gt[None], hw)[0], max_depth, radius=1) if gt is not None
             else small // 3)
    tiles = [_titled(small, "camera"), _titled(radar, "radar returns"),
             _titled(scaled(colorize_depth(pred, max_depth)), f"prediction (0-{max_depth:g} m)"),
             _titled(truth, "LiDAR ground truth" if gt is not None else "no LiDAR")]
    return np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)
