"""Write a nuScenes ``v1.0-*`` table folder that ``nuscenes.nuscenes.NuScenes(version, dataroot)`` loads.

The devkit (1.2.0, ``nuscenes/nuscenes.py``) loads the 13 tables named in :data:`TABLE_NAMES` from
``<dataroot>/<version>/<table>.json``, requires every ``map`` record to carry ``log_tokens`` and a
``filename`` of an existing mask image (``MapMask`` asserts the file exists), indexes ``sample.data`` by the
channel of every ``is_key_frame`` sample_data, and resolves ``sample_data.calibrated_sensor_token`` ->
``calibrated_sensor.sensor_token`` -> ``sensor``. The field lists below follow the nuScenes schema
(https://www.nuscenes.org/nuscenes#data-format); empty annotation tables are valid.

:class:`NuScenesTables` collects records, links the ``prev``/``next`` chains itself (samples per scene,
sample_data per scene and channel, annotations per instance, all in timestamp order), fills
``scene.first/last_sample_token`` / ``nbr_samples`` and ``instance`` counters, checks every foreign key,
and writes each table atomically (:mod:`xdrcdepth_core.atomic`).

Tokens: nuScenes tokens are 32 lowercase hex digits. :func:`token_for` derives one deterministically from
a key, so the same synthetic seed gives the same tokens and file names.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from xdrcdepth_core.atomic import atomic_write_bytes

#: The tables ``NuScenes()`` loads, in its loading order.
TABLE_NAMES: tuple[str, ...] = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor",
                                "ego_pose", "log", "scene", "sample", "sample_data", "sample_annotation", "map")

#: nuScenes visibility levels (token, level, description), as in the official table.
VISIBILITY_LEVELS: tuple[tuple[str, str, str], ...] = (
    ("1", "v0-40", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "visibility of whole object is between 80 and 100%"),
)


def token_for(*key: Any) -> str:
    """A 32-hex-digit token derived from ``key`` (deterministic: same key, same token)."""
    return hashlib.md5("/".join(map(str, key)).encode("utf-8")).hexdigest()


def write_map_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a map mask PNG (uint8, 255 = drivable) atomically.

    The devkit's ``MapMask`` reads row 0 as the largest global y: pixel ``(col, row)`` covers
    ``x = col * resolution``, ``y = (H - row) * resolution`` with ``NuScenes(map_resolution=0.1)`` by default.
    """
    import cv2  # the devkit depends on opencv; imported here so table writing alone does not need it

    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != np.uint8 or mask.size == 0:
        raise ValueError(f"{path}: map mask must be a non-empty 2-D uint8 array, got {mask.dtype} {mask.shape}")
    ok, encoded = cv2.imencode(".png", mask)
    if not ok:
        raise ValueError(f"{path}: PNG encoding of the map mask failed")
    atomic_write_bytes(path, encoded.tobytes())


def _floats(values: Iterable[float], n: int, what: str) -> list[float]:
    out = [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]
    if len(out) != n or not all(np.isfinite(out)):
        raise ValueError(f"{what}: expected {n} finite numbers, got {out}")
    return out


class NuScenesTables:
    """Records of one nuScenes table folder; ``add_*`` return the new record's token, :meth:`write` saves.

    Linking fields (``prev``/``next``, ``first_sample_token``, ``nbr_samples``, instance counters) are
    filled by :meth:`finalize`, which :meth:`write` calls; callers only give the facts of each record.
    Records may be copied verbatim from an official table with :meth:`add_record`.
    """

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLE_NAMES}

    # -- generic ----------------------------------------------------------------------------------------------
    def add_record(self, table: str, record: dict[str, Any]) -> str:
        """Append ``record`` (must carry a ``token``) to ``table``; returns its token."""
        if table not in self.tables:
            raise ValueError(f"unknown nuScenes table {table!r}")
        token = record.get("token")
        if not isinstance(token, str) or not token:
            raise ValueError(f"{table} record without a token: {record}")
        self.tables[table].append(dict(record))
        return token

    def has(self, table: str, token: str) -> bool:
        return any(r["token"] == token for r in self.tables[table])

    # -- static description -----------------------------------------------------------------------------------
    def add_sensor(self, channel: str, modality: str, token: str | None = None) -> str:
        if modality not in ("camera", "lidar", "radar"):
            raise ValueError(f"sensor {channel}: modality {modality!r} is not camera/lidar/radar")
        return self.add_record("sensor", {"token": token or token_for("sensor", channel),
                                          "channel": channel, "modality": modality})

    def add_calibrated_sensor(self, sensor_token: str, translation: Sequence[float], rotation_wxyz: Sequence[float],
                              camera_intrinsic: np.ndarray | None = None, token: str | None = None) -> str:
        """Sensor -> ego pose; ``camera_intrinsic`` 3x3 for cameras, ``[]`` otherwise (as nuScenes)."""
        intrinsic: list = [] if camera_intrinsic is None else [
            _floats(row, 3, "camera_intrinsic row") for row in np.asarray(camera_intrinsic, dtype=np.float64)]
        if camera_intrinsic is not None and len(intrinsic) != 3:
            raise ValueError(f"camera_intrinsic must be 3x3, got {np.shape(camera_intrinsic)}")
        translation = _floats(translation, 3, "calibrated_sensor translation")
        rotation = _floats(rotation_wxyz, 4, "calibrated_sensor rotation")
        token = token or token_for("calibrated_sensor", sensor_token, translation, rotation, intrinsic)
        return self.add_record("calibrated_sensor", {"token": token, "sensor_token": sensor_token,
                                                     "translation": translation, "rotation": rotation,
                                                     "camera_intrinsic": intrinsic})

    def add_ego_pose(self, timestamp: int, rotation_wxyz: Sequence[float], translation: Sequence[float],
                     token: str | None = None) -> str:
        """Ego -> global pose at ``timestamp`` (microseconds)."""
        token = token or token_for("ego_pose", timestamp, translation)
        return self.add_record("ego_pose", {"token": token, "timestamp": int(timestamp),
                                            "rotation": _floats(rotation_wxyz, 4, "ego_pose rotation"),
                                            "translation": _floats(translation, 3, "ego_pose translation")})

    def add_log(self, logfile: str, vehicle: str, date_captured: str, location: str,
                token: str | None = None) -> str:
        return self.add_record("log", {"token": token or token_for("log", logfile), "logfile": logfile,
                                       "vehicle": vehicle, "date_captured": date_captured, "location": location})

    def add_map(self, log_tokens: Sequence[str], filename: str, category: str = "semantic_prior",
                token: str | None = None) -> str:
        """A map record; ``filename`` is relative to the dataroot (e.g. ``maps/<token>.png``)."""
        return self.add_record("map", {"token": token or token_for("map", filename), "log_tokens": list(log_tokens),
                                       "category": category, "filename": filename})

    def add_category(self, name: str, description: str = "") -> str:
        return self.add_record("category", {"token": token_for("category", name), "name": name,
                                            "description": description})

    def add_attribute(self, name: str, description: str = "") -> str:
        return self.add_record("attribute", {"token": token_for("attribute", name), "name": name,
                                             "description": description})

    def add_visibility_levels(self) -> None:
        """The four official visibility records (tokens ``"1"`` .. ``"4"``)."""
        for token, level, description in VISIBILITY_LEVELS:
            self.add_record("visibility", {"token": token, "level": level, "description": description})

    # -- recordings -------------------------------------------------------------------------------------------
    def add_scene(self, log_token: str, name: str, description: str, token: str | None = None) -> str:
        return self.add_record("scene", {"token": token or token_for("scene", name), "log_token": log_token,
                                         "name": name, "description": description})

    def add_sample(self, scene_token: str, timestamp: int, token: str | None = None) -> str:
        return self.add_record("sample", {"token": token or token_for("sample", scene_token, timestamp),
                                          "timestamp": int(timestamp), "scene_token": scene_token})

    def add_sample_data(self, sample_token: str, ego_pose_token: str, calibrated_sensor_token: str,
                        timestamp: int, filename: str, fileformat: str, is_key_frame: bool,
                        width: int = 0, height: int = 0, token: str | None = None) -> str:
        """A sensor reading. Sweeps (``is_key_frame=False``) belong to the next key frame's sample."""
        token = token or token_for("sample_data", filename)
        return self.add_record("sample_data", {
            "token": token, "sample_token": sample_token, "ego_pose_token": ego_pose_token,
            "calibrated_sensor_token": calibrated_sensor_token, "timestamp": int(timestamp),
            "fileformat": fileformat, "is_key_frame": bool(is_key_frame), "height": int(height),
            "width": int(width), "filename": filename})

    def add_instance(self, category_token: str, token: str) -> str:
        return self.add_record("instance", {"token": token, "category_token": category_token})

    def add_sample_annotation(self, sample_token: str, instance_token: str, translation: Sequence[float],
                              size_wlh: Sequence[float], rotation_wxyz: Sequence[float], num_lidar_pts: int,
                              num_radar_pts: int, visibility_token: str = "4",
                              attribute_tokens: Sequence[str] = ()) -> str:
        """A 3-D box in global coordinates (centre, size width/length/height, rotation)."""
        token = token_for("sample_annotation", sample_token, instance_token)
        return self.add_record("sample_annotation", {
            "token": token, "sample_token": sample_token, "instance_token": instance_token,
            "visibility_token": visibility_token, "attribute_tokens": list(attribute_tokens),
            "translation": _floats(translation, 3, "annotation translation"),
            "size": _floats(size_wlh, 3, "annotation size"),
            "rotation": _floats(rotation_wxyz, 4, "annotation rotation"),
            "num_lidar_pts": int(num_lidar_pts), "num_radar_pts": int(num_radar_pts)})

    # -- linking and checks -----------------------------------------------------------------------------------
    @staticmethod
    def _link(records: list[dict[str, Any]]) -> None:
        for i, r in enumerate(records):
            r["prev"] = records[i - 1]["token"] if i > 0 else ""
            r["next"] = records[i + 1]["token"] if i + 1 < len(records) else ""

    def finalize(self) -> None:
        """Fill the linking fields and check every foreign key; raises ``ValueError`` naming the record."""
        t = self.tables
        for name, records in t.items():
            tokens = [r["token"] for r in records]
            if len(set(tokens)) != len(tokens):
                raise ValueError(f"table {name}: duplicate tokens")
        index = {name: {r["token"]: r for r in records} for name, records in t.items()}

        def check(table: str, record: dict, field: str, target: str) -> None:
            if record[field] not in index[target]:
                raise ValueError(f"{table} {record['token']}: {field} {record[field]!r} is not a {target} token")

        for r in t["calibrated_sensor"]:
            check("calibrated_sensor", r, "sensor_token", "sensor")
        for r in t["map"]:
            for log_token in r["log_tokens"]:
                if log_token not in index["log"]:
                    raise ValueError(f"map {r['token']}: log token {log_token!r} is not a log token")
        mapped_logs = {lt for r in t["map"] for lt in r["log_tokens"]}
        for r in t["log"]:
            if r["token"] not in mapped_logs:
                raise ValueError(f"log {r['token']} ({r['logfile']}) has no map record (the devkit requires one)")

        samples_by_scene: dict[str, list[dict]] = defaultdict(list)
        for r in t["sample"]:
            check("sample", r, "scene_token", "scene")
            samples_by_scene[r["scene_token"]].append(r)
        for r in t["scene"]:
            check("scene", r, "log_token", "log")
            samples = sorted(samples_by_scene.get(r["token"], []), key=lambda s: s["timestamp"])
            if not samples:
                raise ValueError(f"scene {r['token']} ({r['name']}) has no samples")
            self._link(samples)
            r.update(nbr_samples=len(samples), first_sample_token=samples[0]["token"],
                     last_sample_token=samples[-1]["token"])

        sensor_of = {c["token"]: index["sensor"][c["sensor_token"]]["channel"] for c in t["calibrated_sensor"]}
        chains: dict[tuple[str, str], list[dict]] = defaultdict(list)
        keyframes: dict[tuple[str, str], str] = {}
        for r in t["sample_data"]:
            for field, target in (("sample_token", "sample"), ("ego_pose_token", "ego_pose"),
                                  ("calibrated_sensor_token", "calibrated_sensor")):
                check("sample_data", r, field, target)
            scene = index["sample"][r["sample_token"]]["scene_token"]
            channel = sensor_of[r["calibrated_sensor_token"]]
            chains[(scene, channel)].append(r)
            if r["is_key_frame"]:
                if (r["sample_token"], channel) in keyframes:
                    raise ValueError(f"sample {r['sample_token']} has two {channel} key frames "
                                     f"({keyframes[(r['sample_token'], channel)]} and {r['token']})")
                keyframes[(r["sample_token"], channel)] = r["token"]
        for chain in chains.values():
            chain.sort(key=lambda s: s["timestamp"])
            self._link(chain)

        for r in t["instance"]:
            check("instance", r, "category_token", "category")
        annotations: dict[str, list[dict]] = defaultdict(list)
        sample_time = {s["token"]: s["timestamp"] for s in t["sample"]}
        for r in t["sample_annotation"]:
            for field, target in (("sample_token", "sample"), ("instance_token", "instance"),
                                  ("visibility_token", "visibility")):
                check("sample_annotation", r, field, target)
            for a in r["attribute_tokens"]:
                if a not in index["attribute"]:
                    raise ValueError(f"sample_annotation {r['token']}: attribute {a!r} is not an attribute token")
            annotations[r["instance_token"]].append(r)
        for r in t["instance"]:
            anns = sorted(annotations.get(r["token"], []), key=lambda a: sample_time[a["sample_token"]])
            if not anns:
                raise ValueError(f"instance {r['token']} has no sample_annotation")
            self._link(anns)
            r.update(nbr_annotations=len(anns), first_annotation_token=anns[0]["token"],
                     last_annotation_token=anns[-1]["token"])

    def write(self, version_dir: str | os.PathLike) -> None:
        """Finalize, then write the 13 ``<table>.json`` files into ``version_dir`` (each atomically).

        The map mask files the ``map`` records name must be written by the caller (:func:`write_map_mask`).
        """
        self.finalize()
        version_dir = Path(version_dir)
        for name in TABLE_NAMES:
            atomic_write_bytes(version_dir / f"{name}.json",
                               json.dumps(self.tables[name], indent=0).encode("utf-8"))
