"""Radar returns: reading with the devkit's filters, and rasterising them into camera-aligned images.

The radar input of the CaFNet family (papers.md §2, "radar = single RADAR_FRONT frame, channels
depth/RCS/vx/vy") is a sparse C x H x W image: each return projected into the camera, ``depth`` = optical
z in metres, the other channels its PCD fields, 0 = no return. :func:`rasterize_radar` builds it from
optical-frame points (offline in ``xdrcdepth prepare`` and live in the ROS node — one code path), and
:func:`resize_sparse` moves a sparse raster (radar, or a 1-channel LiDAR depth map) to another size.
Velocities are stored as the PCD gives them (radar frame, m/s); that is our choice, as in the reference
code, which does not rotate them into the camera frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .geometry import project_points, transform_points
from .radar_pcd import RADAR_FIELDS, read_radar_pcd

#: Raster channels of the CaFNet-family radar input (papers.md §2.3: radar_input_channels 4).
DEFAULT_CHANNELS: tuple[str, ...] = ("depth", "rcs", "vx_comp", "vy_comp")
#: Every raster channel name with a source: the optical depth and the 18 nuScenes radar PCD fields.
KNOWN_RADAR_CHANNELS: tuple[str, ...] = ("depth", *RADAR_FIELDS)

# nuscenes-devkit 1.2.0 ``RadarPointCloud.default_filters()``: the returns kept by default.
DEVKIT_INVALID_STATES: tuple[int, ...] = (0,)
DEVKIT_DYNPROP_STATES: tuple[int, ...] = tuple(range(7))  # 0..6; 7 "stopped" is dropped
DEVKIT_AMBIG_STATES: tuple[int, ...] = (3,)


@dataclass(frozen=True)
class RadarPoints:
    """Radar returns: ``xyz`` (N x 3 float64, metres, in the frame named by the caller) and all PCD fields."""

    xyz: np.ndarray
    fields: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.xyz)

    def select(self, mask: np.ndarray) -> RadarPoints:
        """The returns where ``mask`` is true."""
        return RadarPoints(self.xyz[mask], {k: v[mask] for k, v in self.fields.items()})

    def transformed(self, T: np.ndarray) -> RadarPoints:
        """The same returns with ``xyz`` moved by the 4x4 transform ``T`` (fields unchanged)."""
        return RadarPoints(transform_points(T, self.xyz), self.fields)

    @staticmethod
    def concatenate(parts: Sequence[RadarPoints]) -> RadarPoints:
        """All returns of ``parts`` in order (an empty cloud for no parts)."""
        if not parts:
            return RadarPoints(np.zeros((0, 3)), {k: np.zeros(0, np.float32) for k in RADAR_FIELDS})
        return RadarPoints(np.concatenate([p.xyz for p in parts]),
                           {k: np.concatenate([p.fields[k] for p in parts]) for k in parts[0].fields})


def devkit_filter_mask(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """Returns the devkit keeps by default: valid, dynamic property 0..6, unambiguous Doppler."""
    return (np.isin(fields["invalid_state"], DEVKIT_INVALID_STATES)
            & np.isin(fields["dyn_prop"], DEVKIT_DYNPROP_STATES)
            & np.isin(fields["ambig_state"], DEVKIT_AMBIG_STATES))


def read_radar_points(path: str | os.PathLike, disable_filters: bool = False) -> RadarPoints:
    """Returns of a nuScenes radar PCD in the sensor frame (x forward, y left, z = 0).

    By default only the returns the devkit keeps (:func:`devkit_filter_mask`); ``disable_filters``
    keeps all. Raises ``ValueError`` naming the file if it is malformed.
    """
    fields = read_radar_pcd(path)
    points = RadarPoints(np.stack([fields["x"], fields["y"], fields["z"]], axis=1).astype(np.float64),
                         fields)
    return points if disable_filters else points.select(devkit_filter_mask(fields))


def scatter_nearest(rows: np.ndarray, cols: np.ndarray, depth: np.ndarray, values: np.ndarray,
                    image_hw: tuple[int, int]) -> np.ndarray:
    """C x H x W float32 image with ``values[:, i]`` at pixel ``(rows[i], cols[i])``, 0 elsewhere.

    Where several entries share a pixel the one with the smallest ``depth`` wins (the nearest surface
    occludes the others). ``rows``/``cols`` must lie inside ``image_hw``.
    """
    h, w = image_hw
    out = np.zeros((values.shape[0], h, w), dtype=np.float32)
    if len(depth) == 0:
        return out
    pixel = rows.astype(np.int64) * w + cols.astype(np.int64)
    winners = nearest_per_pixel(pixel, depth)
    out.reshape(values.shape[0], -1)[:, pixel[winners]] = values[:, winners]
    return out


def nearest_per_pixel(pixel: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Indices of the entries that win their pixel (the smallest ``depth`` among those sharing a ``pixel``
    index), in ascending pixel order: the entries :func:`scatter_nearest` writes."""
    order = np.lexsort((depth, pixel))  # by pixel, then nearest first
    first = np.ones(len(order), dtype=bool)
    first[1:] = pixel[order][1:] != pixel[order][:-1]
    return order[first]


def rasterize_radar(points_cam: np.ndarray, features: Mapping[str, np.ndarray], K: np.ndarray,
                    image_hw: tuple[int, int], channels: Sequence[str] = DEFAULT_CHANNELS) -> np.ndarray:
    """C x H x W float32 radar image of optical-frame returns ``points_cam`` (N x 3).

    Channel ``"depth"`` is the optical z in metres; any other channel is ``features[name]`` (N values;
    a name absent from ``features`` gives a zero channel). The nearest return wins a pixel; 0 = empty.
    """
    uv, depth, keep = project_points(points_cam, K, image_hw)
    cols = np.floor(uv[:, 0] + 0.5)
    rows = np.floor(uv[:, 1] + 0.5)
    values = np.zeros((len(channels), len(depth)))
    for c, name in enumerate(channels):
        if name == "depth":
            values[c] = depth
        elif name in features:
            values[c] = np.asarray(features[name], dtype=np.float64)[keep]
    return scatter_nearest(rows, cols, depth, values, image_hw)


def resize_sparse(raster: np.ndarray, dst_hw: tuple[int, int]) -> np.ndarray:
    """Resample a sparse C x H x W raster (channel 0 = depth, 0 = empty) to ``dst_hw``.

    Each non-empty pixel moves to the pixel holding its scaled centre (``u -> (u + 0.5) * s - 0.5``, the
    convention of ``geometry.scale_intrinsics``), the nearest depth winning collisions, so the result is
    what projecting the points with the scaled intrinsics gives up to the sub-pixel position of each
    point within its source pixel. Values are never interpolated.
    """
    raster = np.asarray(raster, dtype=np.float32)
    _, h, w = raster.shape
    rows, cols = np.nonzero(raster[0] > 0)
    dst_rows = np.floor((rows + 0.5) * (dst_hw[0] / h)).astype(np.int64)
    dst_cols = np.floor((cols + 0.5) * (dst_hw[1] / w)).astype(np.int64)
    return scatter_nearest(dst_rows, dst_cols, raster[0, rows, cols], raster[:, rows, cols], dst_hw)
