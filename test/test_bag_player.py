"""bag_player: a small rosbag2 written with rosbags is played in a subprocess and received here over DDS."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

T0 = 1_700_000_000_000_000_000  # bag start (ns); header stamps equal the bag's receive times here
IMAGE_STAMPS = (T0 + 100_000_000, T0 + 1_500_000_000)
POINTS_STAMP = T0 + 50_000_000


def _stamp(msg, ns):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
    return msg


def make_image(ns, seed):
    from sensor_msgs.msg import Image

    img = _stamp(Image(height=3, width=4, encoding="rgb8", step=12), ns)
    img.header.frame_id = "cam_front"
    img.data = bytes((seed * 7 + i) % 256 for i in range(36))
    return img


def make_points(ns):
    import struct

    from sensor_msgs.msg import PointCloud2, PointField

    cloud = _stamp(PointCloud2(height=1, width=2, point_step=12, row_step=24, is_dense=True), ns)
    cloud.header.frame_id = "radar_front"
    cloud.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                    for i, n in enumerate("xyz")]
    cloud.data = struct.pack("<6f", 10.0, -1.5, 0.25, 42.0, 3.0, -0.5)
    return cloud


def make_tf_static(ns):
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    tf = _stamp(TransformStamped(), ns)
    tf.header.frame_id, tf.child_frame_id = "base_link", "cam_front"
    tf.transform.translation.x, tf.transform.translation.z = 1.7, 1.5
    tf.transform.rotation.w = 1.0
    return TFMessage(transforms=[tf])


def write_bag(path: Path, storage: str) -> Path:
    """A rosbag2 with /tf_static, /radar/points, two /image frames and an /ignored String."""
    from rclpy.serialization import serialize_message
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from std_msgs.msg import String

    typestore = get_typestore(Stores.ROS2_KILTED)
    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)
    latched = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                  never, never, QosLiveliness.AUTOMATIC, never, False)
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        tf_conn = writer.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=typestore,
                                        offered_qos_profiles=[latched])
        points_conn = writer.add_connection("/radar/points", "sensor_msgs/msg/PointCloud2", typestore=typestore)
        image_conn = writer.add_connection("/image", "sensor_msgs/msg/Image", typestore=typestore)
        ignored_conn = writer.add_connection("/ignored", "std_msgs/msg/String", typestore=typestore)
        writer.write(tf_conn, T0, serialize_message(make_tf_static(T0)))
        writer.write(points_conn, POINTS_STAMP, serialize_message(make_points(POINTS_STAMP)))
        writer.write(image_conn, IMAGE_STAMPS[0], serialize_message(make_image(IMAGE_STAMPS[0], 1)))
        writer.write(ignored_conn, T0 + 200_000_000, serialize_message(String(data="not played")))
        writer.write(image_conn, IMAGE_STAMPS[1], serialize_message(make_image(IMAGE_STAMPS[1], 2)))
    return path


class Probe:
    """Test-side node: subscriptions to the played topics, arrival times, a late /tf_static subscriber."""

    def __init__(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image, PointCloud2
        from tf2_msgs.msg import TFMessage

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("bag_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                  durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.received = {"image": [], "points": [], "tf_early": [], "tf_late": [], "clock": []}
        self.unremapped_image_publishers = None
        self.tf_publisher_durability = None
        self._tf_type = TFMessage
        self.node.create_subscription(Image, "/camera/image", self._on_image, 10)
        self.node.create_subscription(PointCloud2, "/radar/points", self._keep("points"), 10)
        self.node.create_subscription(TFMessage, "/tf_static", self._keep("tf_early"), self.latched)
        self.node.create_subscription(Clock, "/clock", self._keep("clock"),
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT))

    def _keep(self, key):
        return lambda msg: self.received[key].append((time.monotonic(), msg))

    def _on_image(self, msg):
        self.received["image"].append((time.monotonic(), msg))
        if len(self.received["image"]) == 1:  # the player is mid-bag: join /tf_static late
            self.unremapped_image_publishers = self.node.get_publishers_info_by_topic("/image")
            self.tf_publisher_durability = [
                info.qos_profile.durability for info in self.node.get_publishers_info_by_topic("/tf_static")]
            self.node.create_subscription(self._tf_type, "/tf_static", self._keep("tf_late"), self.latched)

    def spin_until(self, done, proc, timeout):
        """Spin until ``done()`` and the player has exited (messages still in flight arrive meanwhile), or
        ``timeout`` s: a loaded machine makes this slower, not wrong."""
        deadline = time.monotonic() + timeout
        while not (done() and proc.poll() is not None) and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_plays_bag_with_stamps_data_clock_remap_and_latched_tf(tmp_path, ros_domain_id, storage):
    from rclpy.qos import DurabilityPolicy

    bag = write_bag(tmp_path / f"bag_{storage}", storage)
    probe = Probe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xdrcdepth_ros.bag.player", str(bag), "--clock", "50", "--rate", "2",
             "--topics", "/tf_static", "/radar/points", "/image", "--remap", "/image:=/camera/image",
             "--wait-for-subscribers", "20"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        expected = {"image": 2, "points": 1, "tf_early": 1, "tf_late": 1}
        probe.spin_until(lambda: all(len(probe.received[k]) >= n for k, n in expected.items()), proc, timeout=90)
        out, err = proc.communicate(timeout=30)
    finally:
        probe.close()
    assert proc.returncode == 0, err
    assert "played 4 messages on 3 topics" in out, out + err
    assert "1 pass)" in out

    images = probe.received["image"]
    assert [(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec) for _, m in images] == list(IMAGE_STAMPS)
    assert [bytes(m.data) for _, m in images] == [bytes(make_image(s, i + 1).data)
                                                  for i, s in enumerate(IMAGE_STAMPS)]
    assert images[0][1].encoding == "rgb8" and images[0][1].width == 4 and images[0][1].height == 3
    # --rate 2: 1.5 s of bag time take at least 0.75 s of wall time (the player sleeps to absolute wall
    # targets, so load only adds the last wake-up's latency), and less than the 1.5 s of rate 1
    bag_s, wall_s = map(float, re.search(r"bag time ([\d.]+) s, wall ([\d.]+) s, rate 2", out).groups())
    assert bag_s == 1.5 and bag_s / 2 - 0.01 <= wall_s < bag_s, out

    (_, cloud), = probe.received["points"]
    assert bytes(cloud.data) == bytes(make_points(POINTS_STAMP).data)
    assert [f.name for f in cloud.fields] == ["x", "y", "z"] and cloud.header.frame_id == "radar_front"

    for key in ("tf_early", "tf_late"):
        (_, tf), = probe.received[key]
        t = tf.transforms[0]
        assert (t.header.frame_id, t.child_frame_id) == ("base_link", "cam_front")
        assert (t.transform.translation.x, t.transform.translation.z) == (1.7, 1.5)
    assert probe.tf_publisher_durability == [DurabilityPolicy.TRANSIENT_LOCAL]
    assert probe.unremapped_image_publishers == []  # only the remapped name is published

    clock_ns = [m.clock.sec * 10**9 + m.clock.nanosec for _, m in probe.received["clock"]]
    assert len(clock_ns) >= 10  # 0.7 s of playback at 50 Hz, plus one per message
    assert clock_ns == sorted(clock_ns)
    assert T0 <= clock_ns[0] and clock_ns[-1] == IMAGE_STAMPS[1]


def test_missing_bag_is_a_clear_error(tmp_path, capsys):
    from xdrcdepth_ros.bag.player import main

    missing = tmp_path / "no_such_bag"
    assert main(["bag_player", str(missing)]) == 2
    assert f"bag {missing} does not exist" in capsys.readouterr().err


def test_corrupt_bags_name_the_bag(tmp_path, capsys):
    from xdrcdepth_ros.bag.player import BagError, main, open_bag

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "metadata.yaml").write_text("rosbag2_bagfile_information: [not, a, mapping\n")
    with pytest.raises(BagError, match=f"cannot read bag {garbage}"):
        open_bag(garbage)
    # the YAML parser's message spans lines; the command still says it in one
    assert main(["bag_player", str(garbage)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bag_player: cannot read bag {garbage}: ") and err.count("\n") == 1, err

    # metadata.yaml that parses but is not the bag's mapping: said in plain words, not as a Python error
    for text, found in (("", "NoneType"), ("- a\n- b\n", "list"), ("rosbag2_bagfile_information: 3\n", "dict")):
        (garbage / "metadata.yaml").write_text(text)
        with pytest.raises(BagError, match=f"metadata.yaml: no 'rosbag2_bagfile_information' mapping "
                                           f"\\(found {found}\\)$"):
            open_bag(garbage)
    with open(garbage / "metadata.yaml", "wb") as f:   # sparse: 17 MiB of zeros, never parsed
        f.truncate(17 * 1024 * 1024)
    with pytest.raises(BagError, match="metadata.yaml: larger than 16777216 bytes"):
        open_bag(garbage)

    bag = write_bag(tmp_path / "truncated", "mcap")
    (mcap_file,) = bag.glob("*.mcap")
    mcap_file.write_bytes(mcap_file.read_bytes()[:40])
    with pytest.raises(BagError, match="truncated"):
        reader = open_bag(bag)
        list(reader.messages())  # a reader that opens lazily must fail at the first read


def _cut_to(size):
    def damage(bag):
        (data,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
        data.write_bytes(data.read_bytes()[:size(data.stat().st_size)])
    return damage


def _declare_sqlite3(bag):
    meta = bag / "metadata.yaml"
    meta.write_text(meta.read_text().replace("storage_identifier: mcap", "storage_identifier: sqlite3"))


@pytest.mark.parametrize("storage, damage, line, repaired", [
    ("mcap", _cut_to(lambda n: 0), "{bag}: cut.mcap is not an MCAP file (it is empty): nothing to rebuild it from",
     False),
    ("mcap", _cut_to(lambda n: 8), "{bag}: a record is cut short or malformed (the file is damaged; 'xdrcdepth "
                                   "bag-reindex {bag}' rebuilds it from its intact chunks)", True),
    ("sqlite3", _cut_to(lambda n: n // 2), "{bag}: Cannot open database {bag}/cut.db3: database disk image is "
                                           "malformed (the sqlite3 database is damaged; bag-reindex rebuilds only a "
                                           "sqlite3 bag's metadata.yaml, not its database)", False),
    ("mcap", _declare_sqlite3, "{bag}: metadata.yaml says storage 'sqlite3' but the bag's file is cut.mcap "
                               "('xdrcdepth bag-reindex --force {bag}' rewrites metadata.yaml from the file)", True),
], ids=["empty-mcap", "mcap-magic-only", "sqlite3-cut-in-half", "storage-declared-wrong"])
def test_a_damaged_bag_is_sent_to_bag_reindex_only_where_it_repairs_it(tmp_path, capsys, storage, damage, line,
                                                                       repaired):
    """bag_player advised bag-reindex ('rebuilds it from its intact chunks') for every unreadable bag, and for an
    empty .mcap or a damaged sqlite3 database bag-reindex then failed (a black-box run); an mcap holding only its
    magic was 'ord() expected a character, but string of length 0 found'. The advice now comes where the
    repair works, and the advised command is the one that works."""
    from xdrcdepth_core.cli import main as xdrcdepth
    from xdrcdepth_ros.bag.player import BagError, open_bag

    bag = write_bag(tmp_path / "cut", storage)
    damage(bag)
    with pytest.raises(BagError) as info:
        open_bag(bag)
    assert str(info.value) == "cannot read bag " + line.format(bag=bag)
    reindex_args = ["bag-reindex", "--force", str(bag)] if "--force" in line else ["bag-reindex", str(bag)]
    assert (xdrcdepth(reindex_args) == 0) is repaired
    capsys.readouterr()
    if repaired:
        open_bag(bag).close()


def test_a_bag_cut_short_names_the_repair_and_the_repair_works(tmp_path, capsys):
    """An mcap cut before its footer (a copy or download cut short) with its metadata.yaml: the one line names
    `xdrcdepth bag-reindex`, and running it recovers the bag's messages."""
    from xdrcdepth_core.cli import main as xdrcdepth
    from xdrcdepth_ros.bag.player import BagError, open_bag

    bag = write_bag(tmp_path / "cut", "mcap")
    (mcap_file,) = bag.glob("*.mcap")
    data = mcap_file.read_bytes()
    mcap_file.write_bytes(data[:len(data) - 64])           # the footer and end magic are gone
    with pytest.raises(BagError, match=f"'xdrcdepth bag-reindex {bag}' rebuilds it from its intact chunks\\)$"):
        open_bag(bag)
    assert xdrcdepth(["bag-reindex", str(bag)]) == 0
    capsys.readouterr()
    reader = open_bag(bag)
    assert sorted(c.topic for c in reader.connections) == ["/ignored", "/image", "/radar/points", "/tf_static"]
    reader.close()


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("edit, problem", [
    (("tf2_msgs/msg/TFMessage", "sensor_msgs/msg/Image"),
     "/tf_static is sensor_msgs/msg/Image in metadata.yaml, tf2_msgs/msg/TFMessage in the file"),
    (("durability: transient_local", "durability: volatile"),
     "/tf_static has other QoS profiles, serialization format or type hash in the file"),
], ids=["type", "qos"])
def test_a_metadata_yaml_that_contradicts_the_file_is_refused(tmp_path, capsys, ros_domain_id, storage, edit,
                                                              problem):
    """rosbags plays nothing of a topic whose type or QoS in metadata.yaml differ from the storage file's
    (it pairs them by all of these), and the bag used to play without its /tf_static, exit code 0. Now one
    line names the topic and how to repair the metadata, exit code 2, nothing played."""
    from xdrcdepth_ros.bag.player import BagError, main, open_bag

    bag = write_bag(tmp_path / "bag", storage)
    metadata = bag / "metadata.yaml"
    assert metadata.read_text().count(edit[0]) == 1
    metadata.write_text(metadata.read_text().replace(*edit))
    with pytest.raises(BagError, match=re.escape(problem)):
        open_bag(bag)
    assert main(["bag_player", str(bag)]) == 2
    err = capsys.readouterr().err
    assert err == (f"bag_player: cannot read bag {bag}: metadata.yaml does not match its storage file ({problem}); "
                   f"'xdrcdepth bag-reindex --force {bag}' rewrites metadata.yaml from the file\n")


@pytest.mark.parametrize("edit, said", [
    (lambda info: info.update(version=99), "Rosbag2 version 99 not supported"),
    (lambda info: info.pop("topics_with_message_count"), "A metadata key is missing KeyError('topics_with_message_count')"),
    (lambda info: info.update(compression_format="lz4", compression_mode="file"), "Compression format 'lz4'"),
], ids=["newer-version", "missing-key", "unknown-compression"])
def test_a_metadata_yaml_rosbags_refuses_is_not_called_a_damaged_file(tmp_path, edit, said):
    """rosbags refuses metadata.yaml's contents with the same error type as a damaged storage file, and the
    line used to say 'the file is damaged'. It names metadata.yaml and the repair, and the repair works."""
    import yaml

    from xdrcdepth_core.cli import main as xdrcdepth
    from xdrcdepth_ros.bag.player import BagError, open_bag

    bag = write_bag(tmp_path / "bag", "mcap")
    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())
    edit(metadata["rosbag2_bagfile_information"])
    (bag / "metadata.yaml").write_text(yaml.safe_dump(metadata))
    with pytest.raises(BagError) as refused:
        open_bag(bag)
    assert str(refused.value).startswith(f"cannot read bag {bag}: metadata.yaml: {said}")
    assert str(refused.value).endswith(f" ('xdrcdepth bag-reindex --force {bag}' rewrites metadata.yaml from the "
                                       "storage file)")
    assert "damaged" not in str(refused.value)
    assert xdrcdepth(["bag-reindex", "--force", str(bag)]) == 0
    reader = open_bag(bag)
    assert sorted(c.topic for c in reader.connections) == ["/ignored", "/image", "/radar/points", "/tf_static"]
    reader.close()


def test_remap_syntax_is_checked():
    import argparse

    from xdrcdepth_ros.bag.player import parse_remaps

    assert parse_remaps(["/a:=/b", "c:=/d/e", "/x:=~/y", "/z:={node}/z"]) == {
        "/a": "/b", "c": "/d/e", "/x": "~/y", "/z": "{node}/z"}
    with pytest.raises(argparse.ArgumentTypeError, match="old:=new"):
        parse_remaps(["/a=/b"])
    with pytest.raises(argparse.ArgumentTypeError, match="invalid topic name '/a b'"):
        parse_remaps(["/tf:=/a b"])


@pytest.mark.ros
@pytest.mark.parametrize("args, error", [
    (["-m", "/tf:=/a b"], "--remap '/tf:=/a b': invalid topic name '/a b': topic name must not contain characters"),
    (["-m", "/tf:=1bad"], "invalid topic name '1bad': topic name token must not start with a number"),
    (["-m", "/tf:=/a//b"], "invalid topic name '/a//b': topic name must not contain repeated '/'"),
    (["-m", "/tf:={foo}"], "invalid topic name '{foo}': unknown substitution: {foo}"),
    (["--start-offset", "1e300"], "argument --start-offset: must be <= 1e+09 s, got 1e+300"),
    (["-r", "1e-300"], "argument -r/--rate: must be >= 1e-06, got 1e-300"),
    (["-d", "1e300"], "argument -d/--delay: must be <= 1e+09 s, got 1e+300"),
], ids=["space", "digit", "double-slash", "substitution", "start-offset", "rate", "delay"])
def test_bad_arguments_are_one_line_before_playing(tmp_path, ros_domain_id, args, error):
    """A remap to an invalid topic name (was an InvalidTopicNameException traceback) or a number that overflows
    bag or wall time (was "error while playing bag: cannot convert float infinity to integer", or a
    traceback): one argparse line naming the argument, exit code 2, nothing played."""
    bag = write_bag(tmp_path / "bag", "mcap")
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.player", str(bag), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("bag_player: error: ") and result.stderr.endswith(" (see --help)\n")
    assert error in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""


@pytest.mark.slow
@pytest.mark.ros
def test_loop_and_start_offset_until_sigint(tmp_path, ros_domain_id):
    """--start-offset 1.0 leaves only the second image; --loop repeats it until SIGINT ends playback, sleeping
    --delay before each pass as ros2 bag play does ("Sleep duration before play (each loop)"; it slept before the
    first pass only: a black-box run)."""
    import signal

    bag = write_bag(tmp_path / "bag", "mcap")
    probe = Probe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xdrcdepth_ros.bag.player", str(bag), "--loop", "--start-offset", "1.0",
             "--topics", "/image", "--remap", "/image:=/camera/image", "--rate", "4",
             "--wait-for-subscribers", "20", "--delay", "0.4"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while len(probe.received["image"]) < 3 and time.monotonic() < deadline and proc.poll() is None:
            probe.executor.spin_once(timeout_sec=0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        probe.close()
    assert proc.returncode == 0, err
    stamps = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in probe.received["image"]}
    assert stamps == {IMAGE_STAMPS[1]}
    arrivals = [t for t, _ in probe.received["image"]]
    assert min(b - a for a, b in zip(arrivals, arrivals[1:])) >= 0.4, arrivals   # one message a pass
    passes = int(re.search(r"(\d+) pass(es)?\)", out).group(1))
    assert passes >= 3 and "; interrupted" in out, out
