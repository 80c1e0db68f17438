"""Crops and resizes of a sample dict that keep image, radar, ground truths, boxes and K consistent.

A sample is the dict of :class:`~xdrcdepth_core.data.nuscenes_dataset.NuScenesDepthDataset` or of a
``prepare`` cache file: ``image`` H x W x 3 uint8, ``radar`` C x H x W, ``depth_gt`` H x W, ``K``, and the
optional ``depth_gt_single`` (H x W), ``radar_confidence_gt`` (H x W uint8, 255 = ignore), ``depth_exact``
(H x W) and ``boxes`` (N x 7, pixel-edge rectangles, see :mod:`.boxes`). Other keys pass through unchanged.

Resizing (the one code path of ``prepare --resize`` and the training loader):

* image: bilinear, antialiased (PIL);
* sparse maps (``radar``, ``depth_gt``, ``depth_gt_single``) are never interpolated: each return/point moves to
  its scaled pixel, the nearest winning (:func:`~xdrcdepth_core.data.radar.resize_sparse`);
* ``radar_confidence_gt`` moves with ``depth_gt``: a labelled pixel goes where its ground-truth point goes and
  keeps its label, so labels stay exactly where the resized ``depth_gt`` has depth (labels are defined at the
  ground-truth pixels only; nearest-neighbour sampling of the label map would keep a label only where the sampled
  source pixel happens to hold a LiDAR point, i.e. drop most of them when shrinking);
* ``depth_exact`` (dense): nearest neighbour on pixel centres, so depths are never mixed across object edges;
* ``K`` scaled per axis (:func:`~xdrcdepth_core.data.geometry.scale_intrinsics`), boxes scaled per axis
  (pixel-edge coordinates: ``x -> x * W'/W``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .geometry import crop_intrinsics, scale_intrinsics
from .radar import resize_sparse
from .radar_confidence import IGNORE

#: H x W maps that hold sparse points (0 = none).
SPARSE_KEYS: tuple[str, ...] = ("depth_gt", "depth_gt_single")
#: H x W dense maps resized by nearest neighbour.
DENSE_NEAREST_KEYS: tuple[str, ...] = ("depth_exact",)
#: H x W label map that lives on the ``depth_gt`` pixels.
LABEL_KEY = "radar_confidence_gt"


def resize_nearest(array: np.ndarray, dst_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of the last two axes: target pixel ``i`` takes source ``floor((i + 0.5) * h / H)``
    (the pixel holding the scaled centre, the convention of ``geometry.scale_intrinsics``)."""
    h, w = array.shape[-2:]
    rows = np.minimum(np.floor((np.arange(dst_hw[0]) + 0.5) * (h / dst_hw[0])).astype(np.int64), h - 1)
    cols = np.minimum(np.floor((np.arange(dst_hw[1]) + 0.5) * (w / dst_hw[1])).astype(np.int64), w - 1)
    return array[..., rows[:, None], cols[None, :]]


def resize_labels_with_depth(labels: np.ndarray, depth_gt: np.ndarray, dst_hw: tuple[int, int]) -> np.ndarray:
    """Move a label map defined on the ground-truth pixels along with ``depth_gt`` (nearest point's label wins);
    target pixels without a ground-truth point get :data:`~.radar_confidence.IGNORE`."""
    moved = resize_sparse(np.stack([depth_gt.astype(np.float32), labels.astype(np.float32)]), dst_hw)
    return np.where(moved[0] > 0, moved[1], IGNORE).astype(np.uint8)


def scale_boxes(boxes: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """Boxes (N x 7, pixel-edge rectangles in columns 0-3) after resizing the image ``src_hw -> dst_hw``."""
    out = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 7)
    out[:, [0, 2]] *= dst_hw[1] / src_hw[1]
    out[:, [1, 3]] *= dst_hw[0] / src_hw[0]
    return out


def crop_boxes(boxes: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Boxes after a crop: shifted, clipped to the window, dropped where nothing of them is left."""
    out = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 7)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]] - left, 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]] - top, 0, height)
    return out[(out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])]


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
        out = {**sample, "image": sample["image"][rows, cols], "radar": sample["radar"][:, rows, cols],
               "K": crop_intrinsics(sample["K"], self.top, self.left)}
        for key in (*SPARSE_KEYS, *DENSE_NEAREST_KEYS, LABEL_KEY):
            if key in sample:
                out[key] = sample[key][rows, cols]
        if "boxes" in sample:
            out["boxes"] = crop_boxes(sample["boxes"], self.top, self.left, self.height, self.width)
        return out


@dataclass(frozen=True)
class Resize:
    """Resize to ``height`` x ``width`` (module docstring): bilinear image, sparse maps moved, labels moved with
    ``depth_gt``, dense depth nearest, K and boxes scaled."""

    height: int
    width: int

    def __call__(self, sample: dict) -> dict:
        src = sample["image"].shape[:2]
        dst = (self.height, self.width)
        if tuple(src) == dst:
            return dict(sample)
        image = np.asarray(Image.fromarray(sample["image"]).resize((self.width, self.height), Image.BILINEAR))
        out = {**sample, "image": image, "radar": resize_sparse(sample["radar"], dst),
               "K": scale_intrinsics(sample["K"], src, dst)}
        for key in SPARSE_KEYS:
            if key in sample:
                out[key] = resize_sparse(sample[key][None], dst)[0]
        for key in DENSE_NEAREST_KEYS:
            if key in sample:
                out[key] = resize_nearest(sample[key], dst)
        if LABEL_KEY in sample:
            out[LABEL_KEY] = resize_labels_with_depth(sample[LABEL_KEY], sample["depth_gt"], dst)
        if "boxes" in sample:
            out["boxes"] = scale_boxes(sample["boxes"], src, dst)
        return out
