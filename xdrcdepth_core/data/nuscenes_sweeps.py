"""Radar and LiDAR sweeps of a nuScenes folder (via the devkit) moved into a camera at its own timestamp.

Every sweep is moved with its own poses: sensor(t_s) -> ego(t_s) -> global -> ego(t_c) -> camera(t_c)
(:func:`xdrcdepth_core.data.geometry.sensor_to_sensor`), so the ego motion between the sweep and the image is
compensated; objects that move themselves are not (papers.md §6.1: sensors are not triggered together).
Neighbouring sweeps are found through the ``prev``/``next`` links of ``sample_data``; a chain ends at the
scene boundary, so fewer sweeps than asked come back there.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .geometry import sensor_to_sensor, transform_from_pose, transform_points
from .lidar import EGO_BODY_RADIUS, off_ego_mask, read_lidar_bin
from .radar import RadarPoints, read_radar_points


def sensor_poses(nusc, sample_data_token: str) -> tuple[np.ndarray, np.ndarray]:
    """``(sensor2ego, ego2global)`` 4x4 transforms of a sample_data record."""
    sd = nusc.get("sample_data", sample_data_token)
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    ego = nusc.get("ego_pose", sd["ego_pose_token"])
    return (transform_from_pose(cs["rotation"], cs["translation"]),
            transform_from_pose(ego["rotation"], ego["translation"]))


def camera_from_sensor(nusc, sample_data_token: str, camera_token: str) -> np.ndarray:
    """4x4 transform from a sweep's sensor frame into the camera (``camera_token`` sample_data)."""
    sensor2ego, ego2global = sensor_poses(nusc, sample_data_token)
    cam2ego, cam_ego2global = sensor_poses(nusc, camera_token)
    return sensor_to_sensor(sensor2ego, ego2global, cam_ego2global, cam2ego)


def sweep_chain(nusc, sample_data_token: str, n_before: int = 0, n_after: int = 0) -> list[str]:
    """The sample_data token itself, then up to ``n_before`` earlier and ``n_after`` later ones."""
    if n_before < 0 or n_after < 0:
        raise ValueError(f"sweep counts must be >= 0, got {n_before} before and {n_after} after")
    tokens = [sample_data_token]
    for link, count in (("prev", n_before), ("next", n_after)):
        current = sample_data_token
        for _ in range(count):
            current = nusc.get("sample_data", current)[link]
            if not current:
                break
            tokens.append(current)
    return tokens


def radar_points_in_camera(nusc, radar_tokens: Sequence[str], camera_token: str, n_sweeps: int = 1,
                           disable_filters: bool = False) -> RadarPoints:
    """Returns of each radar key frame in ``radar_tokens`` and its ``n_sweeps - 1`` previous sweeps, in the
    camera's optical frame (``xyz``) with their PCD fields; devkit default filters unless disabled."""
    if n_sweeps < 1:
        raise ValueError(f"radar sweeps must be >= 1, got {n_sweeps}")
    parts = []
    for radar_token in radar_tokens:
        for token in sweep_chain(nusc, radar_token, n_before=n_sweeps - 1):
            points = read_radar_points(nusc.get_sample_data_path(token), disable_filters=disable_filters)
            parts.append(points.transformed(camera_from_sensor(nusc, token, camera_token)))
    return RadarPoints.concatenate(parts)


def lidar_sweeps_in_camera(nusc, lidar_token: str, camera_token: str, n_sweeps: int = 1,
                           ego_radius: float = EGO_BODY_RADIUS) -> list[np.ndarray]:
    """One N_i x 3 array per LiDAR sweep in the camera's optical frame, the key frame first, then up to
    ``(n_sweeps - 1) // 2`` earlier and the rest later sweeps; points on the ego car (``ego_radius``) dropped."""
    if n_sweeps < 1:
        raise ValueError(f"LiDAR sweeps must be >= 1, got {n_sweeps}")
    n_before = (n_sweeps - 1) // 2
    parts = []
    for token in sweep_chain(nusc, lidar_token, n_before=n_before, n_after=n_sweeps - 1 - n_before):
        xyz = read_lidar_bin(nusc.get_sample_data_path(token))[:, :3]
        xyz = xyz[off_ego_mask(xyz, ego_radius)]
        parts.append(transform_points(camera_from_sensor(nusc, token, camera_token), xyz))
    return parts


def lidar_points_in_camera(nusc, lidar_token: str, camera_token: str, n_sweeps: int = 1,
                           ego_radius: float = EGO_BODY_RADIUS) -> np.ndarray:
    """N x 3 LiDAR points in the camera's optical frame from ``n_sweeps`` sweeps centred on the key frame
    (``(n_sweeps - 1) // 2`` before, the rest after); points on the ego car (``ego_radius``) are dropped."""
    return np.concatenate(lidar_sweeps_in_camera(nusc, lidar_token, camera_token, n_sweeps, ego_radius))
