"""LiDAR ground truth: reading nuScenes ``.pcd.bin`` sweeps and projecting them into sparse depth maps.

A sweep file is N packed records of 5 little-endian float32 ``x y z intensity ring`` in the LIDAR_TOP
frame (nuscenes-devkit ``LidarPointCloud``; papers.md §6.1). The depth map of a camera holds the optical
z in metres of the nearest point per pixel, 0 = no ground truth — the evaluation GT of the radar-camera
depth papers (single key-frame sweep) or, accumulated over several sweeps, their training GT.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from xdrcdepth_core.data.sensor_file import read_sensor_file

from .geometry import project_points
from .radar import scatter_nearest

#: float32 values per LiDAR point: x, y, z, intensity, ring.
LIDAR_POINT_FLOATS = 5
#: Half-size in metres of the square around the sensor whose points are dropped as the ego vehicle's
#: own body (nuscenes-devkit ``LidarPointCloud.remove_close`` with ``min_distance`` 1.0).
EGO_BODY_RADIUS = 1.0


def read_lidar_bin(path: str | os.PathLike) -> np.ndarray:
    """N x 5 float32 points of a nuScenes LiDAR ``.pcd.bin``; ``ValueError`` naming a malformed file."""
    path = Path(path)
    raw = read_sensor_file(path)
    record = 4 * LIDAR_POINT_FLOATS
    if not raw:   # a sweep always has points; an empty file is a copy cut short, not a frame without ground truth
        raise ValueError(f"{path}: empty file (0 bytes; a LiDAR sweep has points: a copy cut short?)")
    if len(raw) % record:
        raise ValueError(f"{path}: {len(raw)} bytes is not a whole number of {record}-byte LiDAR points "
                         "(truncated or not a nuScenes .pcd.bin)")
    points = np.frombuffer(raw, dtype="<f4").reshape(-1, LIDAR_POINT_FLOATS).astype(np.float32)
    if not np.all(np.isfinite(points[:, :3])):
        raise ValueError(f"{path}: LiDAR points with non-finite coordinates")
    return points


def off_ego_mask(xyz_sensor: np.ndarray, radius: float = EGO_BODY_RADIUS) -> np.ndarray:
    """True for points outside the ``radius`` square around the sensor in x/y (i.e. not on the ego car)."""
    xyz_sensor = np.asarray(xyz_sensor)
    return ~((np.abs(xyz_sensor[:, 0]) < radius) & (np.abs(xyz_sensor[:, 1]) < radius))


def lidar_depth_map(points_cam: np.ndarray, K: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """H x W float32 depth map (optical z, metres; 0 = none) of optical-frame points, nearest wins."""
    uv, depth, _ = project_points(points_cam, K, image_hw)
    rows = np.floor(uv[:, 1] + 0.5)
    cols = np.floor(uv[:, 0] + 0.5)
    return scatter_nearest(rows, cols, depth, depth[None], image_hw)[0]
