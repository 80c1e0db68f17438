"""Convert a nuScenes-format folder into rosbag2 files, one bag per scene:
``xdrcdepth nuscenes2bag --dataroot D --version V --out BAG [--scene NAME] [--storage mcap|sqlite3]``.

The tables are read with nuscenes-devkit; messages are built with the ``rosbags`` typestore
(``Stores.ROS2_KILTED``) and written as CDR, so no rclpy is needed. Topic layout follows the nuScenes bag
converters (foxglove ``nuscenes2mcap``), with lower-case names; ``frame_id`` is the lower-case channel:

* ``/cam_front/image_rect_compressed`` (sensor_msgs/CompressedImage): the JPEG bytes of the file as they are;
* ``/cam_front/camera_info`` (sensor_msgs/CameraInfo): K of calibrated_sensor, D = 0 (plumb_bob), R = I,
  P = [K|0], width and height of the image;
* ``/radar_front`` (sensor_msgs/PointCloud2): all 18 PCD fields packed as in the file, each with the
  PointField datatype of its PCD type (F4 -> FLOAT32, I1 -> INT8, I2 -> INT16);
* ``/lidar_top`` (sensor_msgs/PointCloud2): x y z intensity ring, float32;
* ``/tf_static`` (tf2_msgs/TFMessage): base_link -> every sensor (calibrated_sensor; nuScenes camera frames
  are already optical frames), once at the bag start, offered latched;
* ``/tf`` (tf2_msgs/TFMessage): odom -> base_link from every ego_pose used, at its timestamp.

Every sample_data record of the chosen channels (key frames and sweeps) becomes one message stamped with
its timestamp (header stamp = bag receive time). ``odom`` is the nuScenes global frame, so the ego-motion
compensated chain radar(t_r) -> odom -> camera(t_c) of the depth node uses the same poses as the dataset.
``--out`` is the bag folder when ``--scene`` names one scene, otherwise the folder that receives one bag
per scene named after it. Bags are written atomically (:mod:`xdrcdepth_ros.bag.files`) as mcap with
chunk CRCs; ``--overwrite`` replaces only a recognisable bag; temporaries left by a killed run are removed.

Every camera image is decoded once: a truncated or garbled file, or one whose header declares more than
``--max-image-pixels`` (default 4096 x 4096, the depth node's ``max_image_pixels``; checked before decoding,
so a decompression bomb allocates nothing), stops the conversion with a line naming it (exit code 2, no bag),
or with ``--skip-bad`` is left out, warned about and counted. A malformed table (not JSON, not a list of
records with tokens) or a record linking to one that is absent: one line naming the table file (exit code 2).
A channel named twice in ``--channels`` is converted once. Ctrl-C: one line, exit code 130, no partial bag;
a bag whose last message was written when it came is finished and reported first, and the line counts it. A
Ctrl-C once the program has finished (while the interpreter exits) is ignored: exit code 0, nothing printed
(:mod:`xdrcdepth_ros.entry_points`, which ``python -m xdrcdepth_ros.bag.nuscenes2bag`` runs too).
An output that exists (without ``--overwrite``) or is not a bag: one line, exit code 2. An output the OS
cannot write (read-only, full disk, a file where a folder must go): ``cannot write <path>: <cause>``,
exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xdrcdepth_core.cli_args import (EXIT_INTERRUPTED, ArgumentParser, add_no_progress, interrupted_line,
                                     os_error_line, path_argument, positive_int, say, sigint_held)
from xdrcdepth_core.data.sensor_file import read_sensor_file
from xdrcdepth_core.file_names import MAX_STEM, is_token_file_name
from xdrcdepth_core.imageio import DEFAULT_MAX_IMAGE_PIXELS   # the depth node's default: no bag holds what it rejects
from xdrcdepth_ros.bag.files import STORAGE_CHOICES, atomic_bag_writer, latched_qos, remove_stale_bag_temporaries

DEFAULT_CHANNELS = ("CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP")
BASE_FRAME = "base_link"
ODOM_FRAME = "odom"
LIDAR_FIELDS = ("x", "y", "z", "intensity", "ring")
#: numpy type (kind + size) -> sensor_msgs/PointField datatype name.
POINT_FIELD_NAMES = {"i1": "INT8", "u1": "UINT8", "i2": "INT16", "u2": "UINT16", "i4": "INT32",
                     "u4": "UINT32", "f4": "FLOAT32", "f8": "FLOAT64"}


class ConversionError(RuntimeError):
    """Input the converter cannot use; the message names the folder or file."""


class BadReading(ConversionError):
    """One sensor file is unreadable (truncated or garbled image, bad PCD); ``--skip-bad`` skips it."""


def camera_topics(channel: str) -> tuple[str, str]:
    """``(compressed image topic, camera_info topic)`` of a camera channel."""
    name = channel.lower()
    return f"/{name}/image_rect_compressed", f"/{name}/camera_info"


def cloud_topic(channel: str) -> str:
    """Topic of a radar or LiDAR channel."""
    return f"/{channel.lower()}"


@dataclass
class Reading:
    """One sample_data record with what the converter needs from its linked records."""

    timestamp_us: int
    channel: str
    modality: str
    path: Path
    calibrated_sensor: dict
    ego_pose: dict


@dataclass
class SceneSummary:
    """Counts for the one-line report of one bag."""

    scene: str
    bag: Path
    storage: str
    messages: dict[str, int] = field(default_factory=dict)
    start_us: int = 0
    end_us: int = 0
    seconds: float = 0.0
    bad: list[str] = field(default_factory=list)          # files skipped with --skip-bad
    stale_removed: int = 0                                 # temporaries of killed runs cleaned up

    def line(self) -> str:
        size = sum(p.stat().st_size for p in self.bag.rglob("*") if p.is_file()) / 1e6
        counts = ", ".join(f"{n} {topic}" for topic, n in self.messages.items())
        text = (f"nuscenes2bag: {self.scene} -> {self.bag} ({self.storage}, {size:.1f} MB): "
                f"{sum(self.messages.values())} messages over {(self.end_us - self.start_us) / 1e6:.2f} s "
                f"of data ({counts}) in {self.seconds:.1f} s")
        if self.bad:
            text += f"; skipped {len(self.bad)} unreadable files (--skip-bad)"
        if self.stale_removed:
            text += f"; removed {self.stale_removed} stale temporaries of a killed run"
        return text


class MessageFactory:
    """rosbags typestore messages for nuScenes records (``serialize`` gives their CDR bytes)."""

    def __init__(self, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
        from rosbags.typesys import Stores, get_typestore

        self.max_image_pixels = max_image_pixels
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        self.types = self.typestore.types

    def serialize(self, msg) -> bytes:
        return bytes(self.typestore.serialize_cdr(msg, msg.__msgtype__))

    def header(self, stamp_ns: int, frame_id: str):
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        return self.types["std_msgs/msg/Header"](
            stamp=self.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id)

    def compressed_image(self, path: Path, header) -> tuple[object, tuple[int, int]]:
        """The image file's bytes as a CompressedImage, and its ``(width, height)``.

        The image is decoded in full once: a truncated or garbled JPEG/PNG (which would go into the bag
        byte for byte and fail only in the node) is a :class:`BadReading` naming the file. So is one whose
        header declares more than ``max_image_pixels``, checked before decoding: a 30 kB JPEG can declare
        60000 x 60000 pixels (10.8 GB as RGB), and PIL's own bomb limit is lifted by the devkit's map code."""
        from PIL import Image as PILImage

        try:
            data = read_sensor_file(path)
            with warnings.catch_warnings():   # PIL warns above 89 Mpx at open: max_image_pixels decides here
                warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
                img = PILImage.open(io.BytesIO(data))
            with img:
                size, fmt = img.size, img.format
                if fmt not in ("JPEG", "PNG"):
                    raise BadReading(f"{path}: camera image is {fmt}, not JPEG or PNG")
                if size[0] * size[1] > self.max_image_pixels:
                    raise BadReading(f"{path}: camera image of {size[0]}x{size[1]} = {size[0] * size[1]} pixels "
                                     f"> --max-image-pixels {self.max_image_pixels} (not decoded)")
                img.load()
        except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
            raise BadReading(f"{path}: cannot read the camera image ({exc})") from None
        msg = self.types["sensor_msgs/msg/CompressedImage"](
            header=header, format=fmt.lower(), data=np.frombuffer(data, dtype=np.uint8))
        return msg, size

    def camera_info(self, K, size: tuple[int, int], header):
        """Rectified camera: K, zero plumb_bob distortion, R = I, P = [K|0]."""
        K = np.asarray(K, dtype=np.float64)
        P = np.zeros((3, 4))
        P[:, :3] = K
        roi = self.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                             do_rectify=False)
        return self.types["sensor_msgs/msg/CameraInfo"](
            header=header, height=size[1], width=size[0], distortion_model="plumb_bob", d=np.zeros(5),
            k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0, roi=roi)

    def point_cloud(self, columns: dict[str, np.ndarray], header, source: Path):
        """PointCloud2 of packed little-endian records, one field per column, in the columns' order."""
        point_field = self.types["sensor_msgs/msg/PointField"]
        dtype = np.dtype([(name, col.dtype.newbyteorder("<")) for name, col in columns.items()])
        n = len(next(iter(columns.values())))
        records = np.zeros(n, dtype=dtype)
        fields = []
        for name, col in columns.items():
            kind = col.dtype.str[1:]
            if kind not in POINT_FIELD_NAMES:
                raise ConversionError(f"{source}: field {name} of type {col.dtype} has no PointField datatype")
            fields.append(point_field(name=name, offset=dtype.fields[name][1],
                                      datatype=getattr(point_field, POINT_FIELD_NAMES[kind]), count=1))
            records[name] = col
        xyz_finite = all(np.all(np.isfinite(columns[c])) for c in "xyz")
        return self.types["sensor_msgs/msg/PointCloud2"](
            header=header, height=1, width=n, fields=fields, is_bigendian=False, point_step=dtype.itemsize,
            row_step=dtype.itemsize * n, data=np.frombuffer(records.tobytes(), dtype=np.uint8),
            is_dense=bool(xyz_finite))

    def transform(self, stamp_ns: int, parent: str, child: str, rotation_wxyz, translation):
        """TransformStamped parent -> child from a nuScenes pose (quaternion reordered to x, y, z, w)."""
        t = self.types
        w, x, y, z = (float(v) for v in rotation_wxyz)
        tx, ty, tz = (float(v) for v in translation)
        return t["geometry_msgs/msg/TransformStamped"](
            header=self.header(stamp_ns, parent), child_frame_id=child,
            transform=t["geometry_msgs/msg/Transform"](
                translation=t["geometry_msgs/msg/Vector3"](x=tx, y=ty, z=tz),
                rotation=t["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)))

    def tf_message(self, transforms: list):
        return self.types["tf2_msgs/msg/TFMessage"](transforms=transforms)


def load_nuscenes(dataroot: str | Path, version: str):
    """The devkit's ``NuScenes`` for a folder; :class:`ConversionError` naming the folder if it cannot load."""
    from xdrcdepth_core.data.nuscenes_dataset import NuScenesLoadError, load_nuscenes as load

    try:
        return load(dataroot, version)
    except NuScenesLoadError as exc:
        raise ConversionError(str(exc)) from None


def linked(nusc, table: str, token, referrer: str) -> dict:
    """The ``table`` record ``token`` that ``referrer`` (record and field) links to; :class:`ConversionError`
    naming the table file and the token when it is absent
    (:func:`xdrcdepth_core.data.nuscenes_dataset.linked_record`)."""
    from xdrcdepth_core.data.nuscenes_dataset import NuScenesLoadError, linked_record

    try:
        return linked_record(nusc, table, token, referrer)
    except NuScenesLoadError as exc:
        raise ConversionError(str(exc)) from None


def select_scenes(nusc, names: list[str]) -> list[dict]:
    """Scene records by name (all scenes when ``names`` is empty); unknown names are an error. Every bag
    folder of all scenes is named by its scene: a name that is no plain file name (``../x``, ``/tmp/x``: read
    from an untrusted table, it would put the bag anywhere) is an error before anything is written."""
    table = Path(nusc.dataroot) / nusc.version / "scene.json"   # names are strings (read_table checks)
    by_name = {s["name"]: s for s in nusc.scene}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConversionError(f"{nusc.dataroot}: no scene {', '.join(unknown)} in {nusc.version} "
                              f"(scenes: {', '.join(sorted(by_name))})")
    if names:
        return [by_name[n] for n in names]
    for name in by_name:
        if not is_token_file_name(name):
            raise ConversionError(f"{table}: the scene name {name!r} is no plain file name (letters, digits, "
                                  f"_ - . only, no leading dot, at most {MAX_STEM} characters), which its bag "
                                  "folder would be named by; convert it with --scene and --out")
    return list(nusc.scene)


def chain(nusc, table: str, token, link: str, referrer: str):
    """:func:`xdrcdepth_core.data.nuscenes_dataset.walk_links`, its errors as :class:`ConversionError`."""
    from xdrcdepth_core.data.nuscenes_dataset import NuScenesLoadError, walk_links

    try:
        yield from walk_links(nusc, table, token, link, referrer)
    except NuScenesLoadError as exc:
        raise ConversionError(str(exc)) from None


def _in_scene(nusc, sd: dict, scene_token: str) -> bool:
    return linked(nusc, "sample", sd["sample_token"], f"sample_token of sample_data {sd['token']}")[
        "scene_token"] == scene_token


def scene_readings(nusc, scene: dict, channels: list[str]) -> list[Reading]:
    """Every sample_data (key frames and sweeps) of ``channels`` in the scene, in timestamp order.

    Each channel's readings form one ``prev``/``next`` chain per scene (nuScenes schema): it is walked from
    the channel's first key frame back to its start, then forward to its end, never past the scene. A
    channel named twice is walked once (its messages would otherwise be written twice).
    """
    from xdrcdepth_core.data.nuscenes_dataset import table_path

    channels = list(dict.fromkeys(channels))
    known = {s["channel"] for s in nusc.sensor}
    unknown = [c for c in channels if c not in known]
    if unknown:
        raise ConversionError(f"{nusc.dataroot}: no sensor channel {', '.join(unknown)} in {nusc.version} "
                              f"(channels: {', '.join(sorted(known))})")
    samples = list(chain(nusc, "sample", scene["first_sample_token"], "next",
                         f"first_sample_token of scene {scene['token']}"))
    readings = []
    for channel in channels:
        token = next((s["data"][channel] for s in samples if channel in s["data"]), "")
        referrer = f"{channel} of a sample"
        for sd in chain(nusc, "sample_data", token, "prev", referrer):   # back to the chain's start in the scene
            if not _in_scene(nusc, sd, scene["token"]):
                break
            token = sd["token"]
        for sd in chain(nusc, "sample_data", token, "next", referrer):
            if not _in_scene(nusc, sd, scene["token"]):
                break
            if not isinstance(sd.get("filename"), str) or not sd["filename"]:
                raise ConversionError(f"{table_path(nusc, 'sample_data')}: record {sd['token']} "
                                      f"({sd.get('channel', '?')}) has no 'filename'")
            readings.append(Reading(sd["timestamp"], sd["channel"], sd["sensor_modality"],
                                    Path(nusc.dataroot) / sd["filename"],
                                    linked(nusc, "calibrated_sensor", sd["calibrated_sensor_token"],
                                           f"calibrated_sensor_token of sample_data {sd['token']}"),
                                    linked(nusc, "ego_pose", sd["ego_pose_token"],
                                           f"ego_pose_token of sample_data {sd['token']}")))
    readings.sort(key=lambda r: (r.timestamp_us, r.channel))
    return readings


def static_transforms(messages: MessageFactory, readings: list[Reading], stamp_ns: int) -> list:
    """base_link -> sensor for every channel; one calibration per channel and scene, as in nuScenes."""
    calibration: dict[str, dict] = {}
    for r in readings:
        seen = calibration.setdefault(r.channel, r.calibrated_sensor)
        if seen["token"] != r.calibrated_sensor["token"]:
            raise ConversionError(f"{r.path}: {r.channel} changes calibration within the scene "
                                  f"({seen['token']} -> {r.calibrated_sensor['token']})")
    return [messages.transform(stamp_ns, BASE_FRAME, channel.lower(), cs["rotation"], cs["translation"])
            for channel, cs in calibration.items()]


def reading_messages(messages: MessageFactory, reading: Reading) -> list[tuple[str, object]]:
    """``(topic, message)`` pairs of one sensor reading."""
    header = messages.header(reading.timestamp_us * 1000, reading.channel.lower())
    if reading.modality == "camera":
        image_topic, info_topic = camera_topics(reading.channel)
        image, size = messages.compressed_image(reading.path, header)
        K = reading.calibrated_sensor["camera_intrinsic"]
        if np.shape(K) != (3, 3):
            raise ConversionError(f"{reading.path}: calibrated_sensor {reading.calibrated_sensor['token']} "
                                  f"has no 3x3 camera_intrinsic")
        return [(image_topic, image), (info_topic, messages.camera_info(K, size, header))]
    if reading.modality == "radar":
        from xdrcdepth_core.data.radar_pcd import read_radar_pcd

        try:
            columns = read_radar_pcd(reading.path)
        except (OSError, ValueError) as exc:
            raise BadReading(f"{reading.path}: cannot read the radar PCD ({exc})") from None
        return [(cloud_topic(reading.channel), messages.point_cloud(columns, header, reading.path))]
    if reading.modality == "lidar":
        from xdrcdepth_core.data.lidar import read_lidar_bin

        try:
            points = read_lidar_bin(reading.path)
        except (OSError, ValueError) as exc:
            raise BadReading(f"{reading.path}: cannot read the LiDAR sweep ({exc})") from None
        columns = {name: points[:, i] for i, name in enumerate(LIDAR_FIELDS)}
        return [(cloud_topic(reading.channel), messages.point_cloud(columns, header, reading.path))]
    raise ConversionError(f"{reading.path}: unknown sensor modality {reading.modality!r}")


def topic_types(readings: list[Reading]) -> dict[str, str]:
    """Topic -> message type of a scene's bag, in a stable order (TF first, then by channel)."""
    types = {"/tf_static": "tf2_msgs/msg/TFMessage", "/tf": "tf2_msgs/msg/TFMessage"}
    for channel, modality in sorted({(r.channel, r.modality) for r in readings}):
        if modality == "camera":
            image_topic, info_topic = camera_topics(channel)
            types[image_topic] = "sensor_msgs/msg/CompressedImage"
            types[info_topic] = "sensor_msgs/msg/CameraInfo"
        else:
            types[cloud_topic(channel)] = "sensor_msgs/msg/PointCloud2"
    return types


def convert_scene(nusc, scene: dict, channels: list[str], out: Path, storage: str = "mcap",
                  overwrite: bool = False, progress: bool = True, skip_bad: bool = False,
                  max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, *, finishing: contextlib.ExitStack
                  ) -> SceneSummary:
    """Write the bag of one scene to ``out`` (atomically) and return its summary.

    An unreadable sensor file stops the conversion (:class:`BadReading`, no bag written) unless
    ``skip_bad``: then its messages are left out, a warning names it and the summary counts it.
    Once the last message is written, Ctrl-C is held (:func:`~xdrcdepth_core.cli_args.sigint_held`, entered on
    ``finishing``) until the caller closes ``finishing``, having counted the bag as complete: a Ctrl-C while the
    bag is closed and put in place would otherwise leave a complete bag reported as not written."""
    from tqdm import tqdm

    began = time.monotonic()
    stale = remove_stale_bag_temporaries(out)
    readings = scene_readings(nusc, scene, channels)
    if not readings:
        raise ConversionError(f"{nusc.dataroot}: scene {scene['name']} has no sample_data on "
                              f"{', '.join(channels)}")
    messages = MessageFactory(max_image_pixels)
    summary = SceneSummary(scene["name"], out, storage, start_us=readings[0].timestamp_us,
                           end_us=readings[-1].timestamp_us, stale_removed=len(stale))
    types = topic_types(readings)
    summary.messages = dict.fromkeys(types, 0)
    with atomic_bag_writer(out, storage, overwrite) as writer:
        connections = {topic: writer.add_connection(topic, msgtype, typestore=messages.typestore,
                                                    offered_qos_profiles=[latched_qos()] if topic == "/tf_static"
                                                    else ())
                       for topic, msgtype in types.items()}

        def write(topic: str, stamp_ns: int, msg) -> None:
            writer.write(connections[topic], stamp_ns, messages.serialize(msg))
            summary.messages[topic] += 1

        start_ns = readings[0].timestamp_us * 1000
        write("/tf_static", start_ns, messages.tf_message(static_transforms(messages, readings, start_ns)))
        poses_written = set()
        for reading in tqdm(readings, desc=scene["name"], unit="reading", disable=not progress):
            pose = reading.ego_pose
            if pose["token"] not in poses_written:
                poses_written.add(pose["token"])
                pose_ns = pose["timestamp"] * 1000
                write("/tf", pose_ns, messages.tf_message([messages.transform(
                    pose_ns, ODOM_FRAME, BASE_FRAME, pose["rotation"], pose["translation"])]))
            try:
                pairs = reading_messages(messages, reading)
            except BadReading as exc:
                if not skip_bad:
                    raise
                tqdm.write(f"nuscenes2bag: skipping {exc}", file=sys.stderr)
                summary.bad.append(str(reading.path))
                continue
            for topic, msg in pairs:
                write(topic, reading.timestamp_us * 1000, msg)
        finishing.enter_context(sigint_held())
    summary.seconds = time.monotonic() - began
    return summary


def scene_name(text: str) -> str:
    """``--scene``: a non-empty name (argparse ``type``); an empty one would otherwise mean "all scenes"."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"a scene name must not be empty, got {text!r}")
    return text


def output_error_line(exc: OSError, out: Path) -> str:
    """The line for an ``OSError`` writing the bag ``out``: ``nuscenes2bag: cannot write <path>: <cause>``.

    A file where a folder of the path must go makes ``mkdir`` fail with EEXIST or ENOTDIR, whose strerror
    ("File exists") reads like the refusal to replace an existing output: the line names that file instead.
    A failure to create the hidden temporary bag folder names ``out``, not the temporary the user never asked for."""
    from xdrcdepth_core.atomic import temp_prefix

    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"nuscenes2bag: cannot write {out}: {blocker} is a file, not a folder [Errno {exc.errno}]"
    failed = Path(exc.filename) if isinstance(exc.filename, str) else None
    temporary = failed is not None and failed.parent == out.parent and failed.name.startswith(temp_prefix(out))
    return os_error_line("nuscenes2bag", exc, out if temporary else None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataroot", required=True, type=path_argument,
                        help="nuScenes folder (holds <version>/ and samples/)")
    parser.add_argument("--version", default="v1.0-mini", help="table folder name (default v1.0-mini)")
    parser.add_argument("--out", required=True, type=path_argument,
                        help="bag folder with --scene, else the folder that receives one bag per scene")
    parser.add_argument("--scene", type=scene_name, help="convert only this scene (e.g. scene-0061)")
    parser.add_argument("--channels", nargs="+", default=list(DEFAULT_CHANNELS), metavar="CHANNEL",
                        help="sensor channels to convert (default: %(default)s; one named twice is converted "
                             "once); e.g. add RADAR_FRONT_LEFT RADAR_FRONT_RIGHT for the three front radars")
    parser.add_argument("--storage", choices=STORAGE_CHOICES, default="mcap", help="bag storage (default mcap)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing bag (only a recognisable rosbag2 folder is ever deleted)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out unreadable sensor files (truncated/garbled images, bad PCDs) with a "
                             "warning and count them (default: stop at the first, no bag written)")
    parser.add_argument("--max-image-pixels", type=positive_int, default=DEFAULT_MAX_IMAGE_PIXELS, metavar="N",
                        help="camera images whose header declares more pixels (width x height) are unreadable "
                             "files, not decoded (default %(default)s = 4096 x 4096, the depth node's "
                             "max_image_pixels)")
    add_no_progress(parser)


def run(args: argparse.Namespace) -> int:
    """Exit codes: 0 done, 2 bad input or arguments, or an output that exists (one line naming the culprit),
    1 the OS cannot write the output (one line naming the path and the cause), 130 interrupted (SIGINT)."""
    done = []
    out = args.out
    try:
        nusc = load_nuscenes(args.dataroot, args.version)
        scenes = select_scenes(nusc, [] if args.scene is None else [args.scene])
        for scene in scenes:
            out = args.out if args.scene is not None else args.out / scene["name"]
            with contextlib.ExitStack() as finishing:     # a Ctrl-C held while the bag is finished comes here
                summary = convert_scene(nusc, scene, list(args.channels), out, args.storage, args.overwrite,
                                        progress=not args.no_progress, skip_bad=args.skip_bad,
                                        max_image_pixels=args.max_image_pixels, finishing=finishing)
                done.append(scene["name"])
                print(summary.line(), flush=True)
    except KeyboardInterrupt:
        say(interrupted_line("nuscenes2bag", f"{len(done)} bag(s) complete ({', '.join(done) or 'none'}), "
                                             "no partial bag left"))
        return EXIT_INTERRUPTED
    except ConversionError as exc:
        say(f"nuscenes2bag: {exc}")
        return 2
    except OSError as exc:
        if isinstance(exc, FileExistsError) and exc.errno is None:   # files.check_output_folder's refusal
            say(f"nuscenes2bag: {exc}")
            return 2
        say(output_error_line(exc, out))   # read-only or full disk, no permission, a file in the path
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="nuscenes2bag", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    from xdrcdepth_ros.entry_points import nuscenes2bag    # the console script's guards: a run as the program

    sys.exit(nuscenes2bag())
