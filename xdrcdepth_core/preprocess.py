"""Model-input preprocessing: the one code path shared by training, evaluation and the ROS node.

A frame arrives as an RGB image (H x W x 3 uint8), a sparse radar raster at the same resolution
(C x H x W float32, channel 0 = depth in metres, 0 = empty; see :mod:`xdrcdepth_core.data.radar`) and
intrinsics K. The network runs at a fixed ``input_hw`` stored in the checkpoint:

* the image is resized (bilinear, antialiased) to ``input_hw`` — anisotropically when aspect ratios
  differ; that is valid for a pinhole camera because K is scaled per axis
  (:func:`xdrcdepth_core.data.geometry.scale_intrinsics`), and depth along the optical axis does not change
  under image resizing;
* the radar raster is moved to ``input_hw`` with ``resize_sparse`` (nearest return wins), which equals
  projecting the points with the scaled K;
* the image is normalised with ImageNet statistics, radar channels divided by fixed per-channel scales.

Our choice: the per-channel radar scales (:data:`xdrcdepth_core.data.radar_channels.RADAR_CHANNEL_SCALES`, not
given by the papers) bring each channel to roughly [-1, 1] for nuScenes ranges; depth is scaled by 1/100 m to
match max_depth = 100 of LiRCDepth/CaFNet.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from xdrcdepth_core.data.radar import resize_sparse
from xdrcdepth_core.data.radar_channels import RADAR_CHANNEL_SCALES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_image(image) -> None:
    """``TypeError`` unless ``image`` is a numpy array, ``ValueError`` unless it is H x W x 3 uint8 with at least
    one pixel (an empty image has no size to resize the depth back to)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be an H x W x 3 uint8 RGB numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image of at least 1 x 1 pixels, got {image.shape} "
                         f"{image.dtype}")


def image_to_tensor(image: np.ndarray, input_hw: tuple[int, int]) -> torch.Tensor:
    """RGB uint8 H x W x 3 -> normalised float tensor 3 x h x w at ``input_hw`` (:func:`check_image`'s errors)."""
    check_image(image)
    t = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1).float()[None]
    h, w = input_hw
    # The antialiased resize is separable; done as two calls on the channels-last tensor, it costs ~0.7x the one
    # call here (450 x 800 -> 128 x 256, rows first: 2.7 vs 3.7 ms, one thread) and equals it up to float rounding
    # (8e-7 after normalisation). The axis whose pass leaves the smaller intermediate goes first (rows for camera
    # frames): a 1 x 16M-pixel frame, within the node's pixel limit, resized rows first was 128 x 16M (25 GB).
    # 1/255 is applied after the (linear) resize, on the small image.
    rows, cols = t.shape[2:]
    for size in ([(h, cols), (h, w)] if h * cols <= rows * w else [(rows, w), (h, w)]):
        if tuple(t.shape[2:]) != size:
            t = _antialiased_resize(t, size)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (t[0] / 255.0 - mean) / std


def _antialiased_resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear antialiased resize of a B x C x H x W tensor. torch 2.13's CPU kernel puts the first output row in
    every row of a one-pixel-wide tensor (3000 x 1 -> 4 x 1: four equal values) and resizes a one-pixel-high one
    right, so a one-pixel-wide tensor is resized transposed (one pixel in all: no row to repeat)."""
    if t.shape[3] == 1 and t.shape[2] > 1:
        t, size = t.transpose(2, 3), size[::-1]
        return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True).transpose(2, 3)
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)


def radar_to_tensor(raster: np.ndarray, channels: tuple[str, ...],
                    input_hw: tuple[int, int]) -> torch.Tensor:
    """Sparse radar raster C x H x W (metres, raw units) -> scaled float tensor C x h x w at ``input_hw``."""
    if raster.ndim != 3 or raster.shape[0] != len(channels):
        raise ValueError(f"radar raster of shape {raster.shape} does not match channels {channels}")
    if tuple(raster.shape[1:]) != tuple(input_hw):
        raster = resize_sparse(raster, tuple(input_hw))
    scales = np.array([RADAR_CHANNEL_SCALES.get(c, 1.0) for c in channels], dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(raster / scales[:, None, None], dtype=np.float32))


def depth_to_input_resolution(depth: torch.Tensor, output_hw: tuple[int, int]) -> torch.Tensor:
    """Resize a B x 1 x h x w network depth map back to the input image size (bilinear)."""
    if tuple(depth.shape[-2:]) == tuple(output_hw):
        return depth
    return F.interpolate(depth, size=tuple(output_hw), mode="bilinear", align_corners=False)
