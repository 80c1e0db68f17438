"""Camera frames of a nuScenes-style input bag with their radar returns and LiDAR ground truth in the camera.

For each camera image stamp asked for (the stamps of the depth images the node published), the bag gives:
the RGB image, K (``camera_info`` with the same stamp), the radar returns of the nearest cloud of every
radar topic (``/radar*`` PointCloud2) within ``slop`` of the image stamp, as the node gets them (all
returns, no filter), and the LiDAR ground truth from the nearest ``/lidar_top`` cloud within ``slop``
(None when there is none): the evaluation protocol of the cached data (:mod:`xdrcdepth_core.data.lidar`,
one sweep, points on the ego car dropped, nearest point per pixel, optical z).

Untrusted input gets the node's checks: a camera image declaring more than the node's ``max_image_pixels``
(4096 x 4096) is refused from its header before decoding, and every cloud, LiDAR included, must have float
x, y, z and data that fill its rows (a ``ValueError`` naming the bag, the frame and the cloud).

Every cloud is moved into the camera with the bag's own TF, ego-motion compensated like the node does it:
``sensor(t_sensor) -> fixed_frame (odom) -> camera(t_image)``; without the fixed frame in TF, at the
cloud's stamp. Two passes over the bag: stamps and TF first, then only the messages the frames use, each
frame handed out as soon as it is complete and its clouds dropped when no later frame needs them.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from rclpy.duration import Duration
from rclpy.serialization import deserialize_message
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, PointCloud2

from xdrcdepth_core.cli_args import one_line
from xdrcdepth_core.data.geometry import transform_points
from xdrcdepth_core.data.lidar import lidar_depth_map, off_ego_mask
from xdrcdepth_core.data.radar import rasterize_radar
from xdrcdepth_core.imageio import DEFAULT_MAX_IMAGE_PIXELS
from xdrcdepth_ros.bag.nuscenes2bag import camera_topics, cloud_topic
from xdrcdepth_ros.bag.player import BagError, open_bag
from xdrcdepth_ros.bag.replay_demo import stamp_ns, stamp_text
from xdrcdepth_ros.node import conversions as conv
from xdrcdepth_ros.node.transforms import transform_to_matrix
from xdrcdepth_ros.standins.tf2_ros import Buffer, TransformException
from xdrcdepth_ros.tf_messages import tf_message_class

DEFAULT_FIXED_FRAME = "odom"
LIDAR_TOPIC = cloud_topic("LIDAR_TOP")
RADAR_PREFIX = "/radar"
TF_TOPICS = ("/tf", "/tf_static")
MAX_RADAR_POINTS = 10**7                  # clouds are read whole (the node has its own limit)
_TF_CACHE = Duration(seconds=10**7)       # the whole bag: every pose is kept
_CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
_TYPES = {"sensor_msgs/msg/CompressedImage": CompressedImage, "sensor_msgs/msg/CameraInfo": CameraInfo,
          _CLOUD_TYPE: PointCloud2, "tf2_msgs/msg/TFMessage": tf_message_class()}


@dataclass
class SourceFrame:
    """One camera frame of the input bag, everything at the image's resolution."""

    stamp_ns: int
    image: np.ndarray                      # H x W x 3 uint8 RGB
    K: np.ndarray                          # 3 x 3
    radar_depth: np.ndarray | None = None  # H x W float32 optical z of the nearest return per pixel, 0 = none
    lidar_depth: np.ndarray | None = None  # H x W float32 LiDAR ground truth, 0 = none; None: no LiDAR cloud
    lidar_stamp_ns: int | None = None
    radar_stamps_ns: list[int] = field(default_factory=list)


@dataclass
class _Index:
    """First pass: message stamps per topic, camera_info by stamp, the bag's TF."""

    stamps: dict[str, list[int]]           # topic -> sorted header stamps
    infos: dict[int, CameraInfo]
    tf: Buffer


def nearest_within(sorted_stamps: list[int], stamp: int, slop_ns: int) -> int | None:
    """The stamp nearest to ``stamp`` (the earlier one on a tie) if within ``slop_ns``, else None."""
    i = bisect.bisect_left(sorted_stamps, stamp)
    near = [s for s in sorted_stamps[max(i - 1, 0):i + 1] if abs(s - stamp) <= slop_ns]
    return min(near, key=lambda s: (abs(s - stamp), s)) if near else None


def read_source_frames(bag: Path, stamps, camera: str, slop_s: float,
                       fixed_frame: str = DEFAULT_FIXED_FRAME) -> Iterator[SourceFrame]:
    """The frames of ``stamps`` (ns) that have a camera image in ``bag``, each as soon as it is complete.

    ``BagError`` for a missing or unreadable bag; ``ValueError`` naming the bag and the frame for a camera
    image without camera_info, a bad K or cloud, or a cloud TF cannot move into the camera."""
    image_topic, info_topic = camera_topics(camera.upper())
    index = _index(bag, image_topic, info_topic)
    slop_ns = round(slop_s * 1e9)
    clouds = sorted(t for t in index.stamps if _is_cloud_topic(t))
    plans = {}                              # image stamp -> its parts: (topic, stamp) of the image, then clouds
    for stamp in sorted(set(stamps) & set(index.stamps.get(image_topic, ()))):
        parts = [(topic, nearest_within(index.stamps[topic], stamp, slop_ns)) for topic in clouds]
        plans[stamp] = [(image_topic, stamp), *((topic, s) for topic, s in parts if s is not None)]
    users = Counter(part for parts in plans.values() for part in parts)
    held: dict[tuple[str, int], object] = {}
    for topic, msg in bag_messages(bag, lambda c: c.topic in (image_topic, *clouds)):
        key = (topic, stamp_ns(msg.header.stamp))
        if key not in users or key in held:
            continue
        held[key] = msg
        for stamp in [s for s, parts in plans.items() if all(p in held for p in parts)]:
            parts = plans.pop(stamp)
            yield _frame(bag, index, held[parts[0]], [(p[0], held[p]) for p in parts[1:]], fixed_frame)
            users.subtract(parts)
            for part in parts:
                if not users[part]:
                    del held[part]


def _is_cloud_topic(topic: str) -> bool:
    return topic == LIDAR_TOPIC or topic.startswith(RADAR_PREFIX)


def missing_camera(bag: Path, camera: str) -> str | None:
    """Why ``bag`` has no images of ``camera`` (lower case, as ``--camera`` takes it), naming the cameras it has;
    None when it has that camera's image topic."""
    image_topic, _ = camera_topics(camera.upper())
    reader = open_bag(bag)
    try:
        topics = {c.topic for c in reader.connections}
    finally:
        reader.close()
    if image_topic in topics:
        return None
    cameras = sorted(t.split("/")[1] for t in topics if t.count("/") == 2 and t.endswith("/image_rect_compressed"))
    return (f"{bag} has no {image_topic} (--camera {camera}); "
            + (f"its cameras: {', '.join(cameras)}" if cameras else "it holds no camera images"))


def bag_messages(bag: Path, wanted: Callable[[object], bool]) -> Iterator[tuple[str, object]]:
    """``(topic, rclpy message)`` of the connections ``wanted`` selects (and this module reads), in bag order.

    A message that does not deserialize is a :class:`BagError` naming the bag, the topic and the bag time: the
    source recording is the ground truth, and a frame silently missing from it would change the scores."""
    reader = open_bag(bag)
    try:
        connections = [c for c in reader.connections if c.msgtype in _TYPES and wanted(c)]
        for connection, receive_ns, raw in reader.messages(connections=connections) if connections else ():
            try:
                msg = deserialize_message(raw, _TYPES[connection.msgtype])
            except Exception as exc:  # noqa: BLE001 - garbage CDR raises RMWError, bad strings other types
                why = re.sub(r", at /\S+:\d+", "", one_line(exc))      # rmw's C source location: noise
                raise BagError(f"{bag}: {connection.topic} at bag time {stamp_text(receive_ns)}: cannot "
                               f"deserialize {len(raw)} bytes ({why})") from None
            yield connection.topic, msg
    finally:
        reader.close()


def _index(bag: Path, image_topic: str, info_topic: str) -> _Index:
    index = _Index({}, {}, Buffer(cache_time=_TF_CACHE))
    wanted = (image_topic, info_topic, *TF_TOPICS)
    for topic, msg in bag_messages(bag, lambda c: c.topic in wanted or (_is_cloud_topic(c.topic)
                                                                     and c.msgtype == _CLOUD_TYPE)):
        if topic in TF_TOPICS:
            store = index.tf.set_transform_static if topic == "/tf_static" else index.tf.set_transform
            for transform in msg.transforms:
                store(transform, "bag")
        elif topic == info_topic:
            index.infos[stamp_ns(msg.header.stamp)] = msg
        else:
            index.stamps.setdefault(topic, []).append(stamp_ns(msg.header.stamp))
    for stamps in index.stamps.values():
        stamps.sort()
    return index


def _camera_from(tf: Buffer, camera_header, cloud_header, fixed_frame: str, where: str) -> np.ndarray:
    """4 x 4 T_camera(image stamp)_from_cloud(cloud stamp): through ``fixed_frame`` when TF has it, else at
    the cloud's stamp."""
    camera, sensor = camera_header.frame_id, cloud_header.frame_id
    try:
        if fixed_frame and tf.can_transform(fixed_frame, camera, Time()):
            msg = tf.lookup_transform_full(camera, Time.from_msg(camera_header.stamp), sensor,
                                           Time.from_msg(cloud_header.stamp), fixed_frame)
        else:
            msg = tf.lookup_transform(camera, sensor, Time.from_msg(cloud_header.stamp))
    except TransformException as exc:
        raise ValueError(f"{where}: no transform {sensor} -> {camera} in the bag's TF ({exc})") from None
    return transform_to_matrix(msg.transform)


def _frame(bag: Path, index: _Index, image, clouds: list[tuple[str, object]], fixed_frame: str) -> SourceFrame:
    stamp = stamp_ns(image.header.stamp)
    where = f"{bag}: camera frame {stamp_text(stamp)}"
    if stamp not in index.infos:
        raise ValueError(f"{where} has no camera_info with its stamp")
    try:
        rgb = conv.rgb_from_compressed(image, DEFAULT_MAX_IMAGE_PIXELS)   # the node's limit, before decoding
        hw = rgb.shape[:2]
        frame = SourceFrame(stamp, rgb, conv.intrinsics_from_camera_info(index.infos[stamp], hw))
        radar = [np.zeros((0, 3))]
        for topic, cloud in clouds:
            T = _camera_from(index.tf, image.header, cloud.header, fixed_frame, where)
            try:   # the node's checks of a cloud (fields, float x y z, data length), also for the LiDAR
                xyz, _, _ = conv.radar_from_cloud(cloud, (), MAX_RADAR_POINTS)
            except conv.BadInput as exc:
                raise ValueError(f"{where}: {topic} cloud {stamp_text(stamp_ns(cloud.header.stamp))}: "
                                 f"{exc.detail}") from None
            if topic == LIDAR_TOPIC:
                frame.lidar_depth = lidar_depth_map(transform_points(T, xyz[off_ego_mask(xyz)]), frame.K, hw)
                frame.lidar_stamp_ns = stamp_ns(cloud.header.stamp)
            else:
                radar.append(transform_points(T, xyz))
                frame.radar_stamps_ns.append(stamp_ns(cloud.header.stamp))
    except conv.BadInput as exc:
        raise ValueError(f"{where}: {exc.reason}: {exc.detail}") from None
    frame.radar_depth = rasterize_radar(np.concatenate(radar), {}, frame.K, hw, ("depth",))[0]
    return frame
