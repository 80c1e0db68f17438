"""Camera key frames of a nuScenes-format folder with their radar raster and LiDAR depth ground truth.

Backed by the nuscenes-devkit (``NuScenes(version, dataroot)``), so the official dataset, the folder
assembled from the real samples and synthetic folders all load the same way. One item per key frame of
the chosen camera whose sample also has the requested radar key frames (and ``LIDAR_TOP``, unless
``require_lidar`` is off, in which case ``depth_gt`` is all zero)::

    {"image": H x W x 3 uint8 RGB, "radar": C x H x W float32 (ch 0 = depth m, 0 = empty),
     "depth_gt": H x W float32 (m, 0 = no GT), "K": 3 x 3 float64, "token": sample token}

and, when asked for:

* ``depth_gt_single`` (H x W float32) with ``lidar_sweeps`` > 1: the key-frame sweep alone (the evaluation GT;
  ``depth_gt`` is then the accumulated training GT);
* ``boxes`` (N x 7 float32, ``boxes=True``): annotated boxes in the image (:mod:`.boxes`), 0 x 7 when none;
* ``radar_confidence_gt`` (H x W uint8, ``confidence_gt=True``): CaFNet's radar-confidence labels
  (:mod:`.radar_confidence`: 1 positive, 0 negative, 255 ignore) against ``depth_gt``;
* ``depth_exact`` (H x W float32, ``exact_depth=True``): the renderer's depth
  ``<dataroot>/exact_depth/<camera sample_data token>.npy`` of synthetic folders, absent where there is none.

All maps are made at the camera's resolution; ``transform`` (e.g. a resize) then moves them together.

Splits: a name of ``nuscenes.utils.splits.create_splits_scenes()`` (``train``, ``val``, ``mini_train``, ...)
selects its scenes that exist in the folder; if none of them exists (synthetic folders have their own scene
names) all scenes are used and :attr:`NuScenesDepthDataset.split_fallback` says so. ``None``/``"all"``
means all scenes; a list selects scenes by name.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from .boxes import BOX_CATEGORIES, box_rectangles, box_table, camera_boxes, is_confidence_category, points_in_boxes
from .cache_file import REAL_DTYPE_KINDS
from .geometry import project_points
from .lidar import EGO_BODY_RADIUS, lidar_depth_map
from .nuscenes_sweeps import lidar_sweeps_in_camera, radar_points_in_camera
from .radar import DEFAULT_CHANNELS, KNOWN_RADAR_CHANNELS, nearest_per_pixel, rasterize_radar
from .radar_confidence import BOX_TOLERANCE, radar_confidence_gt

LOG = logging.getLogger(__name__)
LIDAR = "LIDAR_TOP"


#: the tables the devkit's ``NuScenes`` loads (nuscenes-devkit 1.1/1.2 ``NuScenes.table_names``); all must exist
DEVKIT_TABLES = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
                 "scene", "sample", "sample_data", "sample_annotation", "map")


class NuScenesLoadError(ValueError):
    """A folder the devkit cannot load as a nuScenes version, or a table record that is missing or malformed;
    the message names the folder and the table file (or the record it could not find)."""


class MissingRecordError(NuScenesLoadError, KeyError):
    """A token that no record of its table has (e.g. an ``ego_pose.json`` without a pose a ``sample_data`` links
    to), named with the table file. Our choice: both a :class:`NuScenesLoadError` (a ``ValueError``, so
    ``prepare`` names it as any unreadable sample, and ``--skip-bad`` skips it) and the ``KeyError`` the devkit's
    ``get`` raises (callers that catch that, as :func:`linked_record`, keep working)."""

    __str__ = BaseException.__str__     # the message, not KeyError's repr of it


def table_path(nusc, table: str) -> Path:
    """The JSON file of ``table`` in the folder ``nusc`` was loaded from (for messages that name it)."""
    return Path(nusc.dataroot) / nusc.version / f"{table}.json"


def read_table(path: str | os.PathLike) -> list[dict]:
    """The records of one nuScenes table file, checked to be what the devkit indexes: a JSON list of objects
    with a string ``token``; :class:`NuScenesLoadError` naming the file otherwise. The devkit's own reader
    names no file on a JSON error and accepts any JSON, which then fails as a bare ``TypeError`` or
    ``KeyError`` while indexing (``{"a": 1}`` iterates as its keys)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            table = json.load(f)
    except OSError as exc:
        raise NuScenesLoadError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NuScenesLoadError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise NuScenesLoadError(f"{path}: not a table (JSON nested too deeply to read)") from None
    if not isinstance(table, list):
        raise NuScenesLoadError(f"{path}: not a list of records (a JSON {type(table).__name__})")
    checks = FIELD_CHECKS.get(path.stem, {})
    for i, record in enumerate(table):
        if not isinstance(record, dict) or not isinstance(record.get("token"), str):
            raise NuScenesLoadError(f"{path}: record {i} is not an object with a string 'token'")
        for field, (check, what) in checks.items():
            if field in record and not check(record[field]):
                value = repr(record[field])
                raise NuScenesLoadError(f"{path}: record {record['token']}: '{field}' must be {what}, got "
                                        f"{value if len(value) <= 60 else value[:57] + '...'}")
    return table


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _vector(n: int):
    return lambda v: isinstance(v, list) and len(v) == n and all(map(_is_number, v))


#: The largest timestamp (microseconds) a ROS stamp can carry (``builtin_interfaces/Time.sec`` is an int32).
MAX_TIMESTAMP_US = 2**31 * 10**6
_TIMESTAMP = (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_TIMESTAMP_US,
              "microseconds since 1970, an integer below 2^31 s")
_STRING = (lambda v: isinstance(v, str), "a string")
#: The fields of each table the tools read, checked where a record has them (the devkit checks none: a
#: timestamp "abc", 1e30 or NaN, a rotation of 3 numbers or a channel 5 ended nuscenes2bag with a traceback).
FIELD_CHECKS = {
    "sample": {"timestamp": _TIMESTAMP},
    "sample_data": {"timestamp": _TIMESTAMP, "filename": _STRING, "channel": _STRING},
    "ego_pose": {"timestamp": _TIMESTAMP, "translation": (_vector(3), "3 finite numbers"),
                 "rotation": (_vector(4), "4 finite numbers (w, x, y, z)")},
    "calibrated_sensor": {"translation": (_vector(3), "3 finite numbers"),
                          "rotation": (_vector(4), "4 finite numbers (w, x, y, z)"),
                          "camera_intrinsic": (lambda v: v == [] or (isinstance(v, list) and len(v) == 3
                                                                     and all(map(_vector(3), v))),
                                               "a 3 x 3 matrix of finite numbers, or [] (not a camera)")},
    "sensor": {"channel": _STRING, "modality": _STRING},
    "scene": {"name": _STRING},
}


def load_nuscenes(dataroot: str | os.PathLike, version: str):
    """The devkit's ``NuScenes`` for ``dataroot/version``; :class:`NuScenesLoadError` naming the folder when
    it is missing or its tables do not load (the devkit itself only asserts), and the table file when one is
    not valid JSON or not a list of records with tokens (:func:`read_table`, which replaces the devkit's
    unchecked table reader). Its table summary is not printed."""
    from nuscenes.nuscenes import NuScenes

    class CheckedNuScenes(NuScenes):
        def __load_table__(self, table_name):   # noqa: N802 - the devkit's name
            return read_table(Path(self.table_root) / f"{table_name}.json")

        def getind(self, table_name, token):
            """The devkit's ``getind`` (under every ``get``), with :class:`MissingRecordError` naming the table
            file instead of a bare ``KeyError`` of the token (a traceback out of ``prepare``)."""
            try:
                return super().getind(table_name, token)
            except (KeyError, TypeError):   # TypeError: an unhashable token (a list or object in the JSON)
                raise MissingRecordError(f"{table_path(self, table_name)}: no record {token!r}") from None

    dataroot = Path(dataroot)
    if not (dataroot / version).is_dir():
        raise NuScenesLoadError(f"{dataroot}: no nuScenes table folder {version}/ here")
    missing = [f"{t}.json" for t in DEVKIT_TABLES if not (dataroot / version / f"{t}.json").is_file()]
    if missing:
        raise NuScenesLoadError(f"{dataroot / version}: cannot load the nuScenes tables (missing "
                                f"{', '.join(missing)})")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return CheckedNuScenes(version=version, dataroot=str(dataroot), verbose=False)
    except NuScenesLoadError as exc:   # read_table's message names the file
        raise NuScenesLoadError(f"{dataroot / version}: cannot load the nuScenes tables ({exc})") from None
    except AssertionError as exc:      # the devkit's own checks: 'map mask maps/<name>.png does not exist'
        hint = "; map.json's records name a mask image under maps/ each" if "map mask" in str(exc) else ""
        raise NuScenesLoadError(f"{dataroot / version}: cannot load the nuScenes tables "
                                f"({str(exc) or 'AssertionError'}{hint})") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NuScenesLoadError(f"{dataroot / version}: cannot load the nuScenes tables ({exc!r})") from None


def linked_record(nusc, table: str, token, referrer: str) -> dict:
    """``nusc.get(table, token)``; :class:`MissingRecordError` naming the table file, the token and
    ``referrer`` (the record and field that hold the token) when no record of ``table`` has it, instead of
    the devkit's bare ``KeyError`` (e.g. an ``ego_pose.json`` without the poses ``sample_data`` links to)."""
    try:
        return nusc.get(table, token)
    except (KeyError, TypeError):   # TypeError: an unhashable token (a list or object in the JSON)
        raise MissingRecordError(f"{table_path(nusc, table)}: no record {token!r} (the {referrer})") from None


def walk_links(nusc, table: str, token, link: str, referrer: str) -> Iterator[dict]:
    """The records of ``table`` from ``token`` on, following each record's ``link`` (``next`` or ``prev``)
    until it is empty; :class:`NuScenesLoadError` naming the table file when a link leads back to a record
    already passed (a chain that loops would never end, and its records would fill the memory)."""
    passed: set[str] = set()
    while token:
        record = linked_record(nusc, table, token, referrer)
        if token in passed:
            raise NuScenesLoadError(f"{table_path(nusc, table)}: the '{link}' links loop back to record "
                                    f"{token!r} (the {referrer})")
        passed.add(token)
        yield record
        token, referrer = record.get(link), f"{link} of {table} {token}"


class UnknownChannelError(ValueError):
    """A camera/radar channel the folder has no sensor for, or a raster channel name with no source."""


class UnknownSceneError(ValueError):
    """A split name the devkit does not know, or a scene name the folder does not have."""


def check_tables(nusc, camera: str, radar_sensors: Sequence[str], radar_channels: Sequence[str]) -> None:
    """Names the caller chose must exist (:class:`UnknownChannelError`), and every ``sample_data`` record
    must name its file (``ValueError`` naming the table and the record): a typo would otherwise give
    0 samples or an all-zero channel, a missing ``filename`` a bare ``KeyError`` deep in the devkit."""
    modality = {s["channel"]: s["modality"] for s in nusc.sensor}
    cameras = sorted(c for c, m in modality.items() if m == "camera")
    radars = sorted(c for c, m in modality.items() if m == "radar")
    if camera not in cameras:
        raise UnknownChannelError(f"no camera channel {camera!r} in {nusc.version} (cameras: {', '.join(cameras)})")
    unknown = [r for r in radar_sensors if r not in radars]
    if unknown:
        raise UnknownChannelError(f"no radar channel {', '.join(map(repr, unknown))} in {nusc.version} "
                                  f"(radars: {', '.join(radars)})")
    unknown = [c for c in radar_channels if c not in KNOWN_RADAR_CHANNELS]
    if unknown:
        raise UnknownChannelError(f"unknown radar raster channel {', '.join(map(repr, unknown))} (known: "
                                  f"{', '.join(KNOWN_RADAR_CHANNELS)})")
    for record in nusc.sample_data:
        if not isinstance(record.get("filename"), str) or not record["filename"]:
            raise ValueError(f"{table_path(nusc, 'sample_data')}: record "
                             f"{record.get('token', '?')} has no 'filename'")


def read_rgb_image(path: str | os.PathLike) -> np.ndarray:
    """H x W x 3 uint8 RGB image; ``ValueError`` naming the file if it cannot be decoded or is larger than
    :data:`~xdrcdepth_core.imageio.DEFAULT_MAX_IMAGE_PIXELS`, checked from its header before decoding (PIL's own
    bomb limit is lifted by nuscenes-devkit's map module: a 4.6 MB PNG of 40000 x 40000 took 6.7 GB)."""
    from xdrcdepth_core.imageio import DEFAULT_MAX_IMAGE_PIXELS

    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height <= DEFAULT_MAX_IMAGE_PIXELS:
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: cannot read image ({exc})") from None
    raise ValueError(f"{path}: image of {width} x {height} pixels, more than {DEFAULT_MAX_IMAGE_PIXELS} (4096 x 4096); "
                     "not decoded")


def read_exact_depth(path: str | os.PathLike, image_hw: tuple[int, int]) -> np.ndarray:
    """H x W float32 renderer depth from a ``.npy``; ``ValueError`` naming the file if unreadable or mis-sized."""
    try:   # memory-mapped: a header declaring a huge shape costs nothing before the shape check
        depth = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read exact depth ({exc})") from None
    if depth.shape != tuple(image_hw) or depth.dtype.kind not in REAL_DTYPE_KINDS:
        raise ValueError(f"{path}: exact depth of shape {depth.shape} ({depth.dtype}), image is {tuple(image_hw)}")
    return np.array(depth, dtype=np.float32)


def split_scene_names(nusc, split: str | Sequence[str] | None) -> tuple[list[str], bool]:
    """Names of the scenes of ``split`` present in ``nusc``, and whether it fell back to all scenes."""
    present = [scene["name"] for scene in nusc.scene]
    if split is None or split == "all":
        return present, False
    if isinstance(split, str):
        from nuscenes.utils.splits import create_splits_scenes

        splits = create_splits_scenes()
        if split not in splits:
            raise UnknownSceneError(f"unknown split {split!r}; use one of {', '.join(sorted(splits))} or 'all'")
        wanted = set(splits[split])
        chosen = [name for name in present if name in wanted]
        if not chosen:
            LOG.warning("no scene of split %r in this folder; using all %d scenes", split, len(present))
            return present, True
        return chosen, False
    missing = sorted(set(split) - set(present))
    if missing:
        raise UnknownSceneError(f"scenes not in this folder: {', '.join(missing)} (it has "
                                  f"{', '.join(present[:10])}{' ...' if len(present) > 10 else ''})")
    return [name for name in present if name in set(split)], False


class NuScenesDepthDataset:
    """Map-style dataset (``len``/``[i]``) of camera key frames; see the module docstring.

    ``radar_sweeps`` counts the radar key frame and its previous sweeps; ``lidar_sweeps`` counts LiDAR
    sweeps centred on the key frame (1 = the single key-frame sweep, the evaluation GT). ``transform``
    maps each sample dict to another (e.g. :class:`~xdrcdepth_core.data.sample_transforms.Crop`).
    ``boxes``, ``confidence_gt`` and ``exact_depth`` add the optional keys of the module docstring.
    """

    def __init__(self, dataroot: str | os.PathLike, version: str = "v1.0-mini",
                 split: str | Sequence[str] | None = None, camera: str = "CAM_FRONT",
                 radar_sensors: Sequence[str] = ("RADAR_FRONT",), radar_sweeps: int = 1, lidar_sweeps: int = 1,
                 radar_channels: Sequence[str] = DEFAULT_CHANNELS, disable_radar_filters: bool = False,
                 require_lidar: bool = True, ego_radius: float = EGO_BODY_RADIUS,
                 transform: Callable[[dict], dict] | None = None, nusc=None, boxes: bool = False,
                 confidence_gt: bool = False, exact_depth: bool = False) -> None:
        if radar_sweeps < 1 or lidar_sweeps < 1:
            raise ValueError(f"sweep counts must be >= 1, got radar {radar_sweeps}, LiDAR {lidar_sweeps}")
        if nusc is None:
            nusc = load_nuscenes(dataroot, version)
        check_tables(nusc, camera, radar_sensors, radar_channels)
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
        self.boxes = boxes
        self.confidence_gt = confidence_gt
        self.exact_depth = exact_depth
        self.scene_names, self.split_fallback = split_scene_names(nusc, split)
        self.sample_tokens: list[str] = []
        #: samples of the chosen scenes left out because a required channel is missing
        self.n_incomplete = 0
        required = (camera, *self.radar_sensors) + ((LIDAR,) if require_lidar else ())
        chosen = set(self.scene_names)
        for scene in nusc.scene:
            if scene["name"] not in chosen:
                continue
            for sample in walk_links(nusc, "sample", scene["first_sample_token"], "next",
                                     f"first_sample_token of scene {scene['name']}"):
                if all(channel in sample["data"] for channel in required):
                    self.sample_tokens.append(sample["token"])
                else:
                    self.n_incomplete += 1

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
            sweeps = lidar_sweeps_in_camera(self.nusc, data[LIDAR], camera_token, self.lidar_sweeps,
                                            self.ego_radius)
            depth_gt = lidar_depth_map(np.concatenate(sweeps), K, hw)
            depth_single = lidar_depth_map(sweeps[0], K, hw) if self.lidar_sweeps > 1 else None
        else:
            depth_gt = np.zeros(hw, dtype=np.float32)
            depth_single = depth_gt.copy() if self.lidar_sweeps > 1 else None
        sample = {"image": image, "radar": raster, "depth_gt": depth_gt, "K": K, "token": token}
        if depth_single is not None:
            sample["depth_gt_single"] = depth_single
        if self.boxes or self.confidence_gt:
            boxes = camera_boxes(self.nusc, camera_token)
            rects, visible = box_rectangles(boxes.corners(), K, hw)
            if self.boxes:
                keep = visible & np.array([c in BOX_CATEGORIES for c in boxes.categories], dtype=bool)
                sample["boxes"] = box_table(boxes, rects, keep)
            if self.confidence_gt:
                # the returns of the raster: projected as rasterize_radar does, the nearest per pixel
                uv, depth, keep = project_points(radar.xyz, K, hw)
                rows, cols = np.floor(uv[:, 1] + 0.5).astype(np.int64), np.floor(uv[:, 0] + 0.5).astype(np.int64)
                win = nearest_per_pixel(rows * hw[1] + cols, depth)
                candidates = np.array([is_confidence_category(c) for c in boxes.categories], dtype=bool)
                owner = points_in_boxes(radar.xyz[keep][win], boxes, candidates, BOX_TOLERANCE)
                sample["radar_confidence_gt"] = radar_confidence_gt(rows[win], cols[win], depth[win], owner,
                                                                    rects, visible, depth_gt)
        if self.exact_depth:
            path = Path(self.nusc.dataroot) / "exact_depth" / f"{camera_token}.npy"
            if path.is_file():
                sample["depth_exact"] = read_exact_depth(path, hw)
        return self.transform(sample) if self.transform else sample
