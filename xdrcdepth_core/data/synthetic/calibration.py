"""Sensor placement and rates of the synthetic rig: the real nuScenes CAM_FRONT / RADAR_FRONT / LIDAR_TOP.

The calibrated_sensor values (sensor -> ego, quaternions ``[w, x, y, z]``) and the CAM_FRONT intrinsics are
those of nuScenes v1.0-mini records ``1d31c729...`` (CAM_FRONT), ``f4d2a6c2...`` (RADAR_FRONT) and
``a1830499...`` (LIDAR_TOP) of log n015-2018-07-24-11-22-45+0800 (nuScenes, CC BY-NC-SA 4.0; a test checks
them against ``../shared/data/nuscenes_samples/frames.json``). Rates are the nuScenes ones: camera 12 Hz,
radar 13 Hz, LiDAR 20 Hz, key frames (samples) 2 Hz.
"""

from __future__ import annotations

import numpy as np

from xdrcdepth_core.data.geometry import scale_intrinsics, transform_from_pose

CAMERA_HW = (900, 1600)
CAMERA_K = np.array([[1266.417203046554, 0.0, 816.2670197447984],
                     [0.0, 1266.417203046554, 491.50706579294757],
                     [0.0, 0.0, 1.0]])
#: channel -> (translation, rotation [w, x, y, z]) sensor -> ego.
SENSOR_TO_EGO: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "CAM_FRONT": ((1.70079118954, 0.0159456324149, 1.51095763913),
                  (0.4998015430569128, -0.5030316162024876, 0.4997798114386805, -0.49737083824542755)),
    "RADAR_FRONT": ((3.412, 0.0, 0.5), (0.9999984769132877, 0.0, 0.0, 0.0017453283658983088)),
    "LIDAR_TOP": ((0.943713, 0.0, 1.84023),
                  (0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817)),
}
MODALITY = {"CAM_FRONT": "camera", "RADAR_FRONT": "radar", "LIDAR_TOP": "lidar"}
RATE_HZ = {"CAM_FRONT": 12.0, "RADAR_FRONT": 13.0, "LIDAR_TOP": 20.0}
KEYFRAME_HZ = 2.0


def sensor_to_ego(channel: str) -> np.ndarray:
    """4x4 sensor -> ego transform of ``channel``."""
    translation, rotation = SENSOR_TO_EGO[channel]
    return transform_from_pose(rotation, translation)


def camera_model(image_scale: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Intrinsics and ``(height, width)`` of CAM_FRONT resized by ``image_scale`` (pixel centres preserved)."""
    if not 0.01 <= image_scale <= 1.0:
        raise ValueError(f"image scale must be in [0.01, 1], got {image_scale}")
    hw = (int(round(CAMERA_HW[0] * image_scale)), int(round(CAMERA_HW[1] * image_scale)))
    return scale_intrinsics(CAMERA_K, CAMERA_HW, hw), hw
