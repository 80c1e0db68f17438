"""nuscenes2bag on the real scene-0061 samples: every message read back with rosbags equals the file or the
table record it came from, and deserialises with rclpy into the ROS message class."""

import json

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from xdrcdepth_core.data.radar_pcd import RADAR_FIELDS, read_radar_pcd
from xdrcdepth_core.data.real_samples import assemble_real_samples
from xdrcdepth_ros.standins.rosidl_runtime_py import message_class
from xdrcdepth_ros.bag.nuscenes2bag import main

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
# PointField datatypes: INT8 = 1, INT16 = 3, FLOAT32 = 7 (sensor_msgs/PointField.msg)
RADAR_DATATYPES = [7, 7, 7, 1, 3, 7, 7, 7, 7, 7, 1, 1, 1, 1, 1, 1, 1, 1]
RADAR_OFFSETS = [0, 4, 8, 12, 13, 15, 19, 23, 27, 31, 35, 36, 37, 38, 39, 40, 41, 42]  # packed, 43-byte records


def read_bag(path):
    """topic -> list of (bag stamp ns, rosbags message, raw CDR), and the connections by topic."""
    with Reader(path) as reader:
        connections = {c.topic: c for c in reader.connections}
        messages = {}
        for conn, stamp, raw in reader.messages():
            messages.setdefault(conn.topic, []).append((stamp, TYPESTORE.deserialize_cdr(raw, conn.msgtype), raw))
    return connections, messages


def stamp_ns(header):
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


@pytest.fixture(scope="module")
def real_bag(tmp_path_factory):
    from conftest import NUSCENES_SAMPLES

    if not (NUSCENES_SAMPLES / "frames.json").exists():
        pytest.fail(f"real nuScenes samples missing at {NUSCENES_SAMPLES}")
    root = tmp_path_factory.mktemp("real")
    dataroot = assemble_real_samples(root / "nuscenes", NUSCENES_SAMPLES)
    bag = root / "scene-0061"
    assert main(["--dataroot", str(dataroot), "--scene", "scene-0061", "--out", str(bag), "--no-progress"]) == 0
    frames = json.loads((NUSCENES_SAMPLES / "frames.json").read_text())["frames"]
    return bag, frames


def test_topics_counts_stamps_and_frames(real_bag):
    bag, frames = real_bag
    connections, messages = read_bag(bag)
    counts = {topic: len(msgs) for topic, msgs in messages.items()}
    # 6 camera and 6 radar key frames, 1 LiDAR sweep; every reading has its own ego pose (13 /tf).
    assert counts == {"/tf_static": 1, "/tf": 13, "/cam_front/image_rect_compressed": 6,
                      "/cam_front/camera_info": 6, "/radar_front": 6, "/lidar_top": 1}
    assert (bag / "metadata.yaml").exists() and len(list(bag.glob("*.mcap"))) == 1
    assert not list(bag.parent.glob(".scene-0061.*"))  # no temporary folder left behind
    latched = connections["/tf_static"].ext.offered_qos_profiles
    assert latched and latched[0].durability == QosDurability.TRANSIENT_LOCAL

    expected = {"/cam_front/image_rect_compressed": ("CAM_FRONT", "cam_front"),
                "/cam_front/camera_info": ("CAM_FRONT", "cam_front"),
                "/radar_front": ("RADAR_FRONT", "radar_front"), "/lidar_top": ("LIDAR_TOP", "lidar_top")}
    for topic, (channel, frame_id) in expected.items():
        want = [f[channel]["timestamp"] * 1000 for f in frames if f.get(channel)]
        assert [stamp for stamp, _, _ in messages[topic]] == want
        assert [stamp_ns(m.header) for _, m, _ in messages[topic]] == want
        assert {m.header.frame_id for _, m, _ in messages[topic]} == {frame_id}
    every_stamp = [s for msgs in messages.values() for s, _, _ in msgs]
    assert messages["/tf_static"][0][0] == min(every_stamp) == frames[0]["CAM_FRONT"]["timestamp"] * 1000


def test_camera_messages_equal_files_and_calibration(real_bag, nuscenes_samples):
    bag, frames = real_bag
    _, messages = read_bag(bag)
    for frame, (_, image, _), (_, info, _) in zip(frames, messages["/cam_front/image_rect_compressed"],
                                                  messages["/cam_front/camera_info"]):
        cam = frame["CAM_FRONT"]
        assert image.format == "jpeg"
        assert image.data.tobytes() == (nuscenes_samples / cam["file"]).read_bytes()
        assert (info.width, info.height) == (1600, 900)
        K = np.array(cam["camera_intrinsic"])
        np.testing.assert_array_equal(info.k.reshape(3, 3), K)
        np.testing.assert_array_equal(info.p.reshape(3, 4), np.hstack([K, np.zeros((3, 1))]))
        np.testing.assert_array_equal(info.r, np.eye(3).reshape(-1))
        assert info.distortion_model == "plumb_bob" and info.d.tolist() == [0.0] * 5
    assert messages["/cam_front/camera_info"][0][1].k[0] == 1266.417203046554  # fx of CAM_FRONT, scene-0061


def test_radar_cloud_has_all_pcd_fields_packed_as_in_the_file(real_bag, nuscenes_samples):
    bag, frames = real_bag
    _, messages = read_bag(bag)
    for frame, (_, cloud, _) in zip(frames, messages["/radar_front"]):
        path = nuscenes_samples / frame["RADAR_FRONT"]["file"]
        columns = read_radar_pcd(path)
        n = len(columns["x"])
        assert [f.name for f in cloud.fields] == list(RADAR_FIELDS)
        assert [f.datatype for f in cloud.fields] == RADAR_DATATYPES
        assert [f.offset for f in cloud.fields] == RADAR_OFFSETS
        assert (cloud.point_step, cloud.width, cloud.height, cloud.row_step) == (43, n, 1, 43 * n)
        assert not cloud.is_bigendian and cloud.is_dense
        raw = path.read_bytes()
        data_start = raw.index(b"DATA binary\n") + len(b"DATA binary\n")
        assert cloud.data.tobytes() == raw[data_start:data_start + 43 * n]  # the file's records, byte for byte
        dtype = np.dtype({"names": [f.name for f in cloud.fields], "offsets": [f.offset for f in cloud.fields],
                          "formats": [columns[f.name].dtype for f in cloud.fields], "itemsize": 43})
        records = np.frombuffer(cloud.data.tobytes(), dtype=dtype)
        for name in RADAR_FIELDS:
            np.testing.assert_array_equal(records[name], columns[name])
    assert messages["/radar_front"][0][1].width == 125  # key frame 0 holds 125 returns before filtering


def test_lidar_cloud_is_the_sweep_file(real_bag, nuscenes_samples):
    bag, frames = real_bag
    _, messages = read_bag(bag)
    (_, cloud, _), = messages["/lidar_top"]
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
        ("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 12, 7), ("ring", 16, 7)]
    assert (cloud.point_step, cloud.width) == (20, 34688)
    assert cloud.data.tobytes() == (nuscenes_samples / frames[0]["LIDAR_TOP"]["file"]).read_bytes()


def _xyzw(q):
    return [q.x, q.y, q.z, q.w]


def _xyz(v):
    return [v.x, v.y, v.z]


def test_transforms_equal_calibration_and_ego_poses(real_bag):
    bag, frames = real_bag
    _, messages = read_bag(bag)
    (_, static, _), = messages["/tf_static"]
    by_child = {t.child_frame_id: t for t in static.transforms}
    assert set(by_child) == {"cam_front", "radar_front", "lidar_top"}
    for channel in ("CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP"):
        tf = by_child[channel.lower()]
        w, x, y, z = frames[0][channel]["sensor2ego"]["rotation"]  # nuScenes [w, x, y, z] -> ROS [x, y, z, w]
        assert tf.header.frame_id == "base_link"
        assert _xyzw(tf.transform.rotation) == [x, y, z, w]
        assert _xyz(tf.transform.translation) == frames[0][channel]["sensor2ego"]["translation"]
    # Hand check of the reorder for the radar: rotation [w, x, y, z] = [0.99999848, 0, 0, 0.00174533]
    assert _xyzw(by_child["radar_front"].transform.rotation) == [0.0, 0.0, 0.0017453283658983088, 0.9999984769132877]

    tf_by_stamp = {stamp: msg.transforms for stamp, msg, _ in messages["/tf"]}
    poses = [f[c]["ego_pose"] for f in frames for c in ("CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP") if f.get(c)]
    assert sorted(tf_by_stamp) == sorted(p["timestamp"] * 1000 for p in poses)
    for pose in poses:
        (tf,) = tf_by_stamp[pose["timestamp"] * 1000]
        w, x, y, z = pose["rotation"]
        assert (tf.header.frame_id, tf.child_frame_id) == ("odom", "base_link")
        assert stamp_ns(tf.header) == pose["timestamp"] * 1000
        assert _xyzw(tf.transform.rotation) == [x, y, z, w]
        assert _xyz(tf.transform.translation) == pose["translation"]


def test_cdr_deserialises_with_rclpy(real_bag):
    bag, _ = real_bag
    connections, messages = read_bag(bag)
    for topic, msgs in messages.items():
        cls = message_class(connections[topic].msgtype)
        for stamp, ours, raw in msgs:
            msg = deserialize_message(raw, cls)
            assert isinstance(msg, cls)
            if hasattr(msg, "header"):
                assert stamp_ns(msg.header) == stamp and msg.header.frame_id == ours.header.frame_id
    _, image, raw = messages["/cam_front/image_rect_compressed"][0]
    ros_image = deserialize_message(raw, message_class("sensor_msgs/msg/CompressedImage"))
    assert bytes(ros_image.data) == image.data.tobytes() and ros_image.format == "jpeg"
    _, cloud, raw = messages["/radar_front"][0]
    ros_cloud = deserialize_message(raw, message_class("sensor_msgs/msg/PointCloud2"))
    assert [f.name for f in ros_cloud.fields] == list(RADAR_FIELDS) and bytes(ros_cloud.data) == cloud.data.tobytes()
    _, static, raw = messages["/tf_static"][0]
    ros_tf = deserialize_message(raw, message_class("tf2_msgs/msg/TFMessage"))
    assert ros_tf.transforms[0].transform.rotation.w == static.transforms[0].transform.rotation.w
