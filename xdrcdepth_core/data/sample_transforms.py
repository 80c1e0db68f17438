"""Crops and resizes of a sample dict that keep image, radar, depth ground truth and K consistent.

A sample is the dict of :class:`~xdrcdepth_core.data.nuscenes_dataset.NuScenesDepthDataset` (``image``
H x W x 3 uint8, ``radar`` C x H x W, ``depth_gt`` H x W, ``K``). Sparse maps are never interpolated:
resizing moves each return/point to its scaled pixel (:func:`~xdrcdepth_core.data.radar.resize_sparse`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .geometry import crop_intrinsics, scale_intrinsics
from .radar import resize_sparse


@dataclass(frozen=True)
class Crop:
    """Keep the ``height`` x ``width`` window whose top-left pixel is ``(top, left)``."""

    top: int
    left: int
    height: int
    width: int

    def __call__(self, sample: dict) -> dict:
        h, w = sample["image"].shape[:2]
        if self.top < 0 or self.left < 0 or self.top + self.height > h or self.left + self.width > w:
            raise ValueError(f"crop {self} does not fit a {h} x {w} image")
        rows = slice(self.top, self.top + self.height)
        cols = slice(self.left, self.left + self.width)
        return {**sample, "image": sample["image"][rows, cols], "radar": sample["radar"][:, rows, cols],
                "depth_gt": sample["depth_gt"][rows, cols], "K": crop_intrinsics(sample["K"], self.top, self.left)}


@dataclass(frozen=True)
class Resize:
    """Resize to ``height`` x ``width``: bilinear (antialiased) image, sparse maps moved, K scaled."""

    height: int
    width: int

    def __call__(self, sample: dict) -> dict:
        src = sample["image"].shape[:2]
        dst = (self.height, self.width)
        image = np.asarray(Image.fromarray(sample["image"]).resize((self.width, self.height), Image.BILINEAR))
        return {**sample, "image": image, "radar": resize_sparse(sample["radar"], dst),
                "depth_gt": resize_sparse(sample["depth_gt"][None], dst)[0],
                "K": scale_intrinsics(sample["K"], src, dst)}
