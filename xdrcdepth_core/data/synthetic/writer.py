"""Write synthetic scenes as a nuScenes-format folder (the layout of the official dataset).

``<out>/``
  ``<version>/*.json``  the 13 tables (:mod:`xdrcdepth_core.data.nuscenes_tables`), ``maps/<token>.png``
  (drivable-area mask per scene, 0.1 m/pixel), ``samples/<CHANNEL>/`` key frames and ``sweeps/<CHANNEL>/``
  the other readings: ``CAM_FRONT`` JPEG, ``RADAR_FRONT`` 18-field ``.pcd``, ``LIDAR_TOP`` ``.pcd.bin``;
  ``exact_depth/<sample_data_token>.npy``: the renderer's exact depth of every CAM_FRONT key frame,
  float32 H x W, metres along the optical axis, 0 = no surface (sky);
  ``radar_truth/<sample_data_token>.npz``: for every RADAR_FRONT key frame, per point (file order):
  ``kind`` (0 target, 1 clutter, 2 ghost; see :mod:`.radar`), ``true_range`` (noise-free range of targets,
  NaN otherwise), ``object`` (scene object index, -1 for clutter);
  ``synthetic.json``: generator settings, noise sigmas and each scene's condition.

The annotation tables hold exact 3-D boxes of the vehicles and pedestrians seen at each key frame
(:mod:`.annotations`).

Timing as nuScenes: LiDAR sweeps at 20 Hz define the samples (every 10th sweep = 2 Hz key frames, the
sample timestamp is the LiDAR key frame's); the camera (12 Hz) and radar (13 Hz) key frame of a sample is
their reading nearest to it. Sweeps belong to the sample of the next key frame (devkit convention); each
stream starts 0.5 s before the first key frame so the first sample has previous sweeps, and ends at its
last key frame. Every reading has its own ego pose (token = sample_data token, as nuScenes).

Randomness: one seeded stream per (scene, purpose[, sensor, frame]), so the scene geometry, radar and LiDAR
do not depend on the condition or on whether camera sweeps are rendered.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from xdrcdepth_core.atomic import atomic_write_bytes
from xdrcdepth_core.data.geometry import matrix_to_quaternion
from xdrcdepth_core.data.nuscenes_tables import NuScenesTables, token_for, write_map_mask
from xdrcdepth_core.data.radar_pcd import write_radar_pcd
from xdrcdepth_core.data.synthetic import calibration as C
from xdrcdepth_core.data.synthetic import lidar, radar
from xdrcdepth_core.data.synthetic.annotations import add_taxonomy, annotate_keyframe
from xdrcdepth_core.data.synthetic.camera import render
from xdrcdepth_core.data.synthetic.conditions import draw_condition, expose
from xdrcdepth_core.data.synthetic.layout import AHEAD_M, EGO_X0, ROAD_Y, SceneLayout, make_layout

LEAD_IN_US = 500_000
KEYFRAME_US = int(1e6 / C.KEYFRAME_HZ)
MAP_RESOLUTION_M = 0.1
_STREAM_LAYOUT, _STREAM_CONDITION, _STREAM_SENSOR = 0, 1, 2
_SENSOR_INDEX = {"CAM_FRONT": 0, "RADAR_FRONT": 1, "LIDAR_TOP": 2}
_FIRST_TIMESTAMP_US = 1_600_000_000_000_000


@dataclass
class SynthConfig:
    out: Path
    scenes: int
    keyframes: int  # key frames (samples) per scene
    seed: int = 0
    image_scale: float = 1.0
    conditions: tuple[str, ...] = ("clear",)
    camera_sweeps: bool = True
    version: str = "v1.0-mini"


@dataclass
class Reading:
    channel: str
    timestamp: int
    is_key_frame: bool
    sample_index: int  # index of the sample this reading belongs to


def schedule(keyframes: int, camera_sweeps: bool) -> tuple[list[int], list[Reading]]:
    """Sample offsets (us from the scene start) and every sensor reading, by the nuScenes timing rules."""
    samples = [LEAD_IN_US + m * KEYFRAME_US for m in range(keyframes)]
    phase = {"LIDAR_TOP": 0, "CAM_FRONT": -35_000, "RADAR_FRONT": 16_000}  # like scene-0061's offsets
    readings: list[Reading] = []
    for channel in ("CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP"):
        period = 1e6 / C.RATE_HZ[channel]
        n = int((samples[-1] + period) / period) + 2
        times = np.array([int(round(phase[channel] + j * period)) for j in range(n)])
        times = times[times >= 0]
        key = [int(np.argmin(np.abs(times - s))) for s in samples]
        for j, ts in enumerate(times[:key[-1] + 1]):
            is_key = j in key
            if not is_key and channel == "CAM_FRONT" and not camera_sweeps:
                continue
            readings.append(Reading(channel, int(ts), is_key, int(np.searchsorted(key, j))))
    return samples, readings


def _frame_rng(seed: int, scene: int, channel: str, timestamp: int) -> np.random.Generator:
    return np.random.default_rng([seed, scene, _STREAM_SENSOR, _SENSOR_INDEX[channel], timestamp])


def _map_mask(layout: SceneLayout, duration_s: float) -> np.ndarray:
    """Drivable area (the road) in global coordinates from (0, 0), row 0 = largest y (devkit ``MapMask``)."""
    x_max = EGO_X0 + layout.ego_speed * duration_s + AHEAD_M + 20.0
    y_max = ROAD_Y + 60.0
    h, w = int(y_max / MAP_RESOLUTION_M), int(x_max / MAP_RESOLUTION_M)
    y = (h - np.arange(h)) * MAP_RESOLUTION_M
    rows = np.abs(y - ROAD_Y) <= layout.road_half_width
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[rows] = 255
    return mask


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _sensor_records(tables: NuScenesTables, K: np.ndarray) -> dict[str, str]:
    """Sensor + calibrated_sensor records of the rig; returns channel -> calibrated_sensor token."""
    cs_tokens = {}
    for channel, (translation, rotation) in C.rig().sensor_to_ego.items():
        sensor = tables.add_sensor(channel, C.MODALITY[channel])
        cs_tokens[channel] = tables.add_calibrated_sensor(sensor, translation, rotation,
                                                          K if channel == "CAM_FRONT" else None)
    return cs_tokens


def write_scene(config: SynthConfig, index: int, tables: NuScenesTables, cs_tokens: dict[str, str],
                taxonomy: dict[str, str], K: np.ndarray, hw: tuple[int, int], on_reading: Callable[[], None]) -> dict:
    """Simulate scene ``index`` and write its files and table records; returns its summary."""
    samples, readings = schedule(config.keyframes, config.camera_sweeps)
    duration_s = (samples[-1] + KEYFRAME_US) / 1e6
    layout = make_layout(np.random.default_rng([config.seed, index, _STREAM_LAYOUT]), duration_s)
    condition_name = config.conditions[index % len(config.conditions)]
    condition = draw_condition(condition_name, np.random.default_rng([config.seed, index, _STREAM_CONDITION]))
    start_us = _FIRST_TIMESTAMP_US + index * 3_600_000_000

    logfile = f"synthetic-seed{config.seed}-{index:04d}"
    log = tables.add_log(logfile, "synthetic", "2026-01-01", "synthetic-street")
    map_file = f"maps/{token_for('map', logfile)}.png"
    write_map_mask(config.out / map_file, _map_mask(layout, duration_s))
    tables.add_map([log], map_file)
    moving = sum(1 for o in layout.objects if np.any(o.velocity != 0))
    scene = tables.add_scene(log, f"synth-{config.seed}-{index:04d}",
                             f"synthetic, {condition_name}, ego {layout.ego_speed:.1f} m/s, "
                             f"{layout.lanes_per_direction} lane(s) per direction, {moving} moving objects")
    sample_tokens = [tables.add_sample(scene, start_us + s) for s in samples]
    radar_keyframes: dict[int, radar.RadarSweep] = {}
    instances: set[str] = set()
    annotations = 0

    for reading in readings:
        t = reading.timestamp / 1e6
        ts = start_us + reading.timestamp
        channel = reading.channel
        folder = "samples" if reading.is_key_frame else "sweeps"
        extension = {"CAM_FRONT": "jpg", "RADAR_FRONT": "pcd", "LIDAR_TOP": "pcd.bin"}[channel]
        filename = f"{folder}/{channel}/{logfile}__{channel}__{ts}.{extension}"
        token = token_for("sample_data", filename)
        ego = layout.ego_to_world(t)
        tables.add_ego_pose(ts, matrix_to_quaternion(ego[:3, :3]), ego[:3, 3], token=token)
        pose = ego @ C.sensor_to_ego(channel)
        prims = layout.primitives_at(t)
        rng = _frame_rng(config.seed, index, channel, reading.timestamp)
        if channel == "CAM_FRONT":
            frame = render(layout, prims, pose, K, hw, condition.lighting, ego)
            atomic_write_bytes(config.out / filename, _jpeg(expose(frame, condition, rng)))
            if reading.is_key_frame:
                depth = np.where(np.isfinite(frame.depth), frame.depth, 0.0).astype(np.float32)
                atomic_write_bytes(config.out / "exact_depth" / f"{token}.npy", _npy(depth))
        elif channel == "RADAR_FRONT":
            sweep = radar.sweep(layout, prims, t, pose, rng)
            write_radar_pcd(config.out / filename, sweep.fields)
            if reading.is_key_frame:
                atomic_write_bytes(config.out / "radar_truth" / f"{token}.npz",
                                   _npz(kind=sweep.kind, true_range=sweep.true_range, object=sweep.obj))
                radar_keyframes[reading.sample_index] = sweep
        else:
            scan = lidar.scan(layout, prims, pose, rng)
            atomic_write_bytes(config.out / filename, scan.points.astype("<f4").tobytes())
            if reading.is_key_frame:  # readings come channel by channel, so the radar key frame is known
                annotations += annotate_keyframe(tables, taxonomy, instances, logfile, layout, prims, t,
                                                 sample_tokens[reading.sample_index], scan, pose,
                                                 radar_keyframes[reading.sample_index])
        tables.add_sample_data(sample_tokens[reading.sample_index], token, cs_tokens[channel], ts, filename,
                               "jpg" if channel == "CAM_FRONT" else "pcd", reading.is_key_frame,
                               width=hw[1] if channel == "CAM_FRONT" else 0,
                               height=hw[0] if channel == "CAM_FRONT" else 0, token=token)
        on_reading()
    return {"name": f"synth-{config.seed}-{index:04d}", "condition": condition_name,
            "ego_speed_mps": round(layout.ego_speed, 3), "objects": len(layout.objects),
            "annotations": annotations}


def synthesize(config: SynthConfig, progress: bool = True) -> dict:
    """Write ``config.scenes`` scenes into ``config.out``; returns the summary also saved as synthetic.json."""
    from tqdm import tqdm

    if config.scenes < 1 or config.keyframes < 1:
        raise ValueError(f"need at least 1 scene and 1 key frame, got {config.scenes} and {config.keyframes}")
    for name in config.conditions:
        draw_condition(name, np.random.default_rng(0))  # fail early on an unknown name
    config.out = Path(config.out)
    if config.out.exists() and any(config.out.iterdir()):
        raise ValueError(f"{config.out}: output folder is not empty; choose a new folder")
    K, hw = C.camera_model(config.image_scale)
    tables = NuScenesTables()
    tables.add_visibility_levels()
    cs_tokens = _sensor_records(tables, K)
    taxonomy = add_taxonomy(tables)
    per_scene = len(schedule(config.keyframes, config.camera_sweeps)[1])
    scenes = []
    with tqdm(total=per_scene * config.scenes, unit="reading", desc="synth", disable=not progress) as bar:
        for index in range(config.scenes):
            scenes.append(write_scene(config, index, tables, cs_tokens, taxonomy, K, hw, lambda: bar.update(1)))
    tables.write(config.out / config.version)
    summary = {
        "generator": "xdrcdepth_core.data.synthetic", "seed": config.seed, "version": config.version,
        "keyframes_per_scene": config.keyframes, "image_hw": list(hw), "camera_sweeps": config.camera_sweeps,
        "noise": {"radar_range_sigma_m": radar.RANGE_SIGMA_M, "radar_azimuth_sigma_deg": radar.AZIMUTH_SIGMA_DEG,
                  "radar_xy_quantum_m": radar.XY_QUANTUM_M, "radar_velocity_sigma_mps": radar.VELOCITY_SIGMA,
                  "lidar_range_sigma_m": lidar.RANGE_SIGMA_M, "lidar_dropout": lidar.DROPOUT},
        "scenes": scenes, "readings": per_scene * config.scenes,
    }
    atomic_write_bytes(config.out / "synthetic.json", json.dumps(summary, indent=1).encode("utf-8"))
    return summary
