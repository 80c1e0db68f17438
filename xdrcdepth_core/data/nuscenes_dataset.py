"""Camera key frames of a nuScenes-format folder with their radar raster and LiDAR depth ground truth.

Backed by the nuscenes-devkit (``NuScenes(version, dataroot)``), so the official dataset, the folder
assembled from the real samples and synthetic folders all load the same way. One item per key frame of
the chosen camera whose sample also has the requested radar key frames (and ``LIDAR_TOP``, unless
``require_lidar`` is off, in which case ``depth_gt`` is all zero)::

    {"image": H x W x 3 uint8 RGB, "radar": C x H x W float32 (ch 0 = depth m, 0 = empty),
     "depth_gt": H x W float32 (m, 0 = no GT), "K": 3 x 3 float64, "token": sample token}

Splits: a name of ``nuscenes.utils.splits.create_splits_scenes()`` (``train``, ``val``, ``mini_train``, ...)
selects its scenes that exist in the folder; if none of them exists (synthetic folders have their own scene
names) all scenes are used and :attr:`NuScenesDepthDataset.split_fallback` says so. ``None``/``"all"``
means all scenes; a list selects scenes by name.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .lidar import EGO_BODY_RADIUS, lidar_depth_map
from .nuscenes_sweeps import lidar_points_in_camera, radar_points_in_camera
from .radar import DEFAULT_CHANNELS, rasterize_radar

LOG = logging.getLogger(__name__)
LIDAR = "LIDAR_TOP"


def read_rgb_image(path: str | os.PathLike) -> np.ndarray:
    """H x W x 3 uint8 RGB image; ``ValueError`` naming the file if it cannot be decoded."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read image ({exc})") from None


def split_scene_names(nusc, split: str | Sequence[str] | None) -> tuple[list[str], bool]:
    """Names of the scenes of ``split`` present in ``nusc``, and whether it fell back to all scenes."""
    present = [scene["name"] for scene in nusc.scene]
    if split is None or split == "all":
        return present, False
    if isinstance(split, str):
        from nuscenes.utils.splits import create_splits_scenes

        splits = create_splits_scenes()
        if split not in splits:
            raise ValueError(f"unknown split {split!r}; use one of {sorted(splits)}, 'all', or scene names")
        wanted = set(splits[split])
        chosen = [name for name in present if name in wanted]
        if not chosen:
            LOG.warning("no scene of split %r in this folder; using all %d scenes", split, len(present))
            return present, True
        return chosen, False
    missing = sorted(set(split) - set(present))
    if missing:
        raise ValueError(f"scenes not in this folder: {missing}")
    return [name for name in present if name in set(split)], False


class NuScenesDepthDataset:
    """Map-style dataset (``len``/``[i]``) of camera key frames; see the module docstring.

    ``radar_sweeps`` counts the radar key frame and its previous sweeps; ``lidar_sweeps`` counts LiDAR
    sweeps centred on the key frame (1 = the single key-frame sweep, the evaluation GT). ``transform``
    maps each sample dict to another (e.g. :class:`~xdrcdepth_core.data.sample_transforms.Crop`).
    """

    def __init__(self, dataroot: str | os.PathLike, version: str = "v1.0-mini",
                 split: str | Sequence[str] | None = None, camera: str = "CAM_FRONT",
                 radar_sensors: Sequence[str] = ("RADAR_FRONT",), radar_sweeps: int = 1, lidar_sweeps: int = 1,
                 radar_channels: Sequence[str] = DEFAULT_CHANNELS, disable_radar_filters: bool = False,
                 require_lidar: bool = True, ego_radius: float = EGO_BODY_RADIUS,
                 transform: Callable[[dict], dict] | None = None, nusc=None) -> None:
        if radar_sweeps < 1 or lidar_sweeps < 1:
            raise ValueError(f"sweep counts must be >= 1, got radar {radar_sweeps}, LiDAR {lidar_sweeps}")
        if nusc is None:
            from nuscenes.nuscenes import NuScenes

            nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
        self.nusc = nusc
        self.camera = camera
        self.radar_sensors = tuple(radar_sensors)
        self.radar_sweeps = radar_sweeps
        self.lidar_sweeps = lidar_sweeps
        self.radar_channels = tuple(radar_channels)
        self.disable_radar_filters = disable_radar_filters
        self.require_lidar = require_lidar
        self.ego_radius = ego_radius
        self.transform = transform
        self.scene_names, self.split_fallback = split_scene_names(nusc, split)
        self.sample_tokens: list[str] = []
        #: samples of the chosen scenes left out because a required channel is missing
        self.n_incomplete = 0
        required = (camera, *self.radar_sensors) + ((LIDAR,) if require_lidar else ())
        chosen = set(self.scene_names)
        for scene in nusc.scene:
            if scene["name"] not in chosen:
                continue
            token = scene["first_sample_token"]
            while token:
                sample = nusc.get("sample", token)
                if all(channel in sample["data"] for channel in required):
                    self.sample_tokens.append(token)
                else:
                    self.n_incomplete += 1
                token = sample["next"]

    def __len__(self) -> int:
        return len(self.sample_tokens)

    def __getitem__(self, index: int) -> dict:
        token = self.sample_tokens[index]
        data = self.nusc.get("sample", token)["data"]
        camera_token = data[self.camera]
        camera = self.nusc.get("sample_data", camera_token)
        K = np.array(self.nusc.get("calibrated_sensor", camera["calibrated_sensor_token"])["camera_intrinsic"],
                     dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"{self.camera} of sample {token}: calibrated_sensor has no 3x3 camera_intrinsic")
        image = read_rgb_image(self.nusc.get_sample_data_path(camera_token))
        hw = image.shape[:2]
        radar = radar_points_in_camera(self.nusc, [data[s] for s in self.radar_sensors], camera_token,
                                       self.radar_sweeps, self.disable_radar_filters)
        raster = rasterize_radar(radar.xyz, radar.fields, K, hw, self.radar_channels)
        if LIDAR in data:
            lidar = lidar_points_in_camera(self.nusc, data[LIDAR], camera_token, self.lidar_sweeps, self.ego_radius)
            depth_gt = lidar_depth_map(lidar, K, hw)
        else:
            depth_gt = np.zeros(hw, dtype=np.float32)
        sample = {"image": image, "radar": raster, "depth_gt": depth_gt, "K": K, "token": token}
        return self.transform(sample) if self.transform else sample
