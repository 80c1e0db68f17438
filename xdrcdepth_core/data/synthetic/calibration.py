"""Sensor placement and rates of the synthetic rig: the nuScenes CAM_FRONT / RADAR_FRONT / LIDAR_TOP.

The calibration is the real nuScenes one, read at run time from the samples beside the checkout
(``frames.json`` key frame 0: calibrated_sensor sensor -> ego with quaternions ``[w, x, y, z]``, and the
CAM_FRONT intrinsics). Those values are nuScenes data (CC BY-NC-SA 4.0), so they are read, never copied
into this repository. Where the samples are absent, an idealised rig of our own design is used: the same
mounting positions rounded to centimetres, axis-aligned mounts, fx = fy = 1266 and the principal point at
(816, 491). Rates are the nuScenes ones: camera 12 Hz, radar 13 Hz, LiDAR 20 Hz, key
frames (samples) 2 Hz.

No samples where nobody said there are some (an installed package has no ``../shared``) is the normal case
outside the checkout, logged at INFO; a samples file that is there but unreadable, or a folder that
``$XDRCDEPTH_NUSCENES_SAMPLES`` names without samples, is a WARNING.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass

import numpy as np

from xdrcdepth_core.data.geometry import scale_intrinsics, transform_from_pose
from xdrcdepth_core.data.real_samples import DEFAULT_SAMPLES_DIR, SAMPLES_ENV

LOG = logging.getLogger(__name__)
CAMERA_HW = (900, 1600)
MODALITY = {"CAM_FRONT": "camera", "RADAR_FRONT": "radar", "LIDAR_TOP": "lidar"}
RATE_HZ = {"CAM_FRONT": 12.0, "RADAR_FRONT": 13.0, "LIDAR_TOP": 20.0}
KEYFRAME_HZ = 2.0

_HALF = float(np.sqrt(0.5))
#: Our idealised stand-in rig: channel -> (translation, rotation [w, x, y, z]) sensor -> ego.
DESIGN_SENSOR_TO_EGO = {
    "CAM_FRONT": ((1.70, 0.02, 1.51), (0.5, -0.5, 0.5, -0.5)),   # optical frame: z forward, x right, y down
    "RADAR_FRONT": ((3.41, 0.0, 0.50), (1.0, 0.0, 0.0, 0.0)),
    "LIDAR_TOP": ((0.94, 0.0, 1.84), (_HALF, 0.0, 0.0, -_HALF)),  # x to the right, as the HDL-32E mount
}
DESIGN_CAMERA_K = np.array([[1266.0, 0.0, 816.0], [0.0, 1266.0, 491.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Rig:
    camera_K: np.ndarray                                   # CAM_FRONT intrinsics at CAMERA_HW
    sensor_to_ego: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
    source: str


@functools.lru_cache(maxsize=1)
def rig() -> Rig:
    """The nuScenes rig from the shared samples, else our idealised stand-in (said once, see the module doc)."""
    frames = DEFAULT_SAMPLES_DIR / "frames.json"
    try:
        frame = json.loads(frames.read_text())["frames"][0]
        poses = {ch: (tuple(frame[ch]["sensor2ego"]["translation"]), tuple(frame[ch]["sensor2ego"]["rotation"]))
                 for ch in MODALITY}
        return Rig(np.array(frame["CAM_FRONT"]["camera_intrinsic"], dtype=np.float64), poses, str(frames))
    except (OSError, KeyError, IndexError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError) and not os.environ.get(SAMPLES_ENV):
            LOG.info("no nuScenes samples in %s (%s names their folder): using an idealised nuScenes-like rig",
                     DEFAULT_SAMPLES_DIR, SAMPLES_ENV)
        else:
            LOG.warning("nuScenes calibration not readable (%s: %s); using an idealised nuScenes-like rig",
                        frames, exc)
        return Rig(DESIGN_CAMERA_K.copy(), dict(DESIGN_SENSOR_TO_EGO), "idealised nuScenes-like rig")


def sensor_to_ego(channel: str) -> np.ndarray:
    """4x4 sensor -> ego transform of ``channel``."""
    translation, rotation = rig().sensor_to_ego[channel]
    return transform_from_pose(rotation, translation)


def camera_model(image_scale: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Intrinsics and ``(height, width)`` of CAM_FRONT resized by ``image_scale`` (pixel centres preserved)."""
    if not 0.01 <= image_scale <= 1.0:
        raise ValueError(f"image scale must be in [0.01, 1], got {image_scale}")
    hw = (int(round(CAMERA_HW[0] * image_scale)), int(round(CAMERA_HW[1] * image_scale)))
    return scale_intrinsics(rig().camera_K, CAMERA_HW, hw), hw
