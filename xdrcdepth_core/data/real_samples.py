"""A nuScenes-format folder from the real scene-0061 samples in ``../shared`` (``frames.json``).

``../shared/data/nuscenes_samples`` beside the repository (CC BY-NC-SA 4.0, see its ``SOURCES.md``) holds
key frames 0-5 of scene-0061 (CAM_FRONT + RADAR_FRONT, and LIDAR_TOP for key frame 0) with their calibration and ego poses in
``frames.json``, and 5 official v1.0-mini tables, but no ``sample_data``/``ego_pose``/``map`` tables.
:func:`assemble_real_samples` builds a folder ``NuScenes(version, out_dir)`` loads:

* data files are **symlinks** to the shared files under the official ``samples/<CHANNEL>/<name>`` paths
  (key frames 1-5 link to the re-encoded CAM_FRONT JPEGs), so nothing licensed is copied;
* ``sensor``, ``calibrated_sensor``, ``log``, ``scene`` and ``sample`` records are the official ones (the
  writer re-links ``prev``/``next`` and ``nbr_samples`` to the 6 samples present);
* ``ego_pose`` and ``sample_data`` come from ``frames.json``: exact records (and tokens) for key frame 0,
  CAN-bus poses (yaw only) and derived tokens for key frames 1-5, with ``ego_pose.token ==
  sample_data.token`` as in nuScenes; only key frames exist, so each channel's chain links key frames;
* ``map`` points to a 1x1 all-zero placeholder mask (the real map is not among the samples; the devkit
  only needs the file to exist); annotation tables are empty apart from the 4 official visibility levels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from xdrcdepth_core.data.nuscenes_tables import NuScenesTables, token_for, write_map_mask

#: the environment variable that names the real samples' folder (the one holding ``frames.json``)
SAMPLES_ENV = "XDRCDEPTH_NUSCENES_SAMPLES"
#: Default location of the real samples (read-only, never copied into the repo or the package): ``$SAMPLES_ENV``,
#: else ``../shared/data/nuscenes_samples`` beside the repository checkout (an installed package has no such
#: neighbour: it then needs the variable).
DEFAULT_SAMPLES_DIR = Path(os.environ.get(SAMPLES_ENV, "")
                           or Path(__file__).resolve().parents[3] / "shared" / "data" / "nuscenes_samples")
CHANNELS: dict[str, tuple[str, str]] = {"CAM_FRONT": ("camera", "jpg"), "RADAR_FRONT": ("radar", "pcd"),
                                        "LIDAR_TOP": ("lidar", "pcd")}


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the nuScenes sample table ({exc})") from None


def _link(target: Path, link: Path) -> None:
    if not target.is_file():
        raise ValueError(f"{target}: data file named in frames.json is missing")
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(target.resolve(), link)


def assemble_real_samples(out_dir: str | os.PathLike, samples_dir: str | os.PathLike = DEFAULT_SAMPLES_DIR,
                          version: str = "v1.0-mini") -> Path:
    """Build the folder in ``out_dir`` (created; outside the repo) and return it. See the module docstring."""
    samples_dir, out_dir = Path(samples_dir), Path(out_dir)
    if out_dir.resolve().is_relative_to(samples_dir.resolve()):
        raise ValueError(f"{out_dir}: output must not lie inside the read-only samples folder {samples_dir}")
    frames = _load_json(samples_dir / "frames.json").get("frames")
    if not frames:
        raise ValueError(f"{samples_dir / 'frames.json'}: no frames")
    official = {name: _load_json(samples_dir / "v1.0-mini" / f"{name}.json")
                for name in ("sensor", "calibrated_sensor", "log", "scene", "sample")}
    by_token = {name: {r["token"]: r for r in records} for name, records in official.items()}

    tables = NuScenesTables()
    tables.add_visibility_levels()
    sample_records = [by_token["sample"][f["sample_token"]] for f in frames]
    scene = by_token["scene"][sample_records[0]["scene_token"]]
    log = by_token["log"][scene["log_token"]]
    tables.add_record("log", log)
    tables.add_record("scene", {k: scene[k] for k in ("token", "log_token", "name", "description")})
    map_file = f"maps/{token_for('placeholder-map', log['token'])}.png"
    tables.add_map([log["token"]], map_file)
    write_map_mask(out_dir / map_file, np.zeros((1, 1), dtype=np.uint8))
    for record in sample_records:
        tables.add_record("sample", {k: record[k] for k in ("token", "timestamp", "scene_token")})

    for frame in frames:
        for channel, (modality, fileformat) in CHANNELS.items():
            reading = frame.get(channel)
            if reading is None:
                continue
            cs = by_token["calibrated_sensor"][reading["calibrated_sensor_token"]]
            sensor = by_token["sensor"][cs["sensor_token"]]
            if sensor["channel"] != channel or sensor["modality"] != modality:
                raise ValueError(f"frames.json: {channel} calibrated sensor {cs['token']} is {sensor['channel']}")
            if not tables.has("sensor", sensor["token"]):
                tables.add_record("sensor", sensor)
                tables.add_record("calibrated_sensor", cs)
            filename = f"samples/{channel}/{Path(reading['file']).name}"
            _link(samples_dir / reading["file"], out_dir / filename)
            token = reading.get("sample_data_token") or token_for("sample_data", filename)
            pose = reading["ego_pose"]
            tables.add_ego_pose(pose["timestamp"], pose["rotation"], pose["translation"], token=token)
            tables.add_sample_data(frame["sample_token"], token, cs["token"], reading["timestamp"], filename,
                                   fileformat, True, width=reading.get("width", 0),
                                   height=reading.get("height", 0), token=token)
    tables.write(out_dir / version)
    return out_dir
