"""bag_recorder in a subprocess records Images published from this process over loopback DDS; the bag read
back with rosbags holds the same bytes, and the PNGs decode to the same pixels."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from PIL import Image as PILImage
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image

from xdrcdepth_ros.bag.recorder import png_name


def test_png_name():
    assert png_name("/depth/colorized", 12, 34) == "depth_colorized_12.000000034.png"


def make_image(encoding, stamp_ns, seed, h=5, w=7):
    """An Image whose pixels depend on ``seed``; 32FC1 holds metres, the others bytes."""
    msg = Image(height=h, width=w, encoding=encoding)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = "cam_front"
    if encoding == "32FC1":
        pixels = (np.arange(h * w, dtype=np.float32).reshape(h, w) + seed) / 4
    else:
        pixels = ((np.arange(h * w * 3).reshape(h, w, 3) * 11 + seed * 37) % 256).astype(np.uint8)
    msg.step = w * pixels.itemsize * (3 if pixels.ndim == 3 else 1)
    msg.data = pixels.tobytes()
    return msg, pixels


@pytest.fixture
def ros_node(ros_domain_id):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("recorder_test_publisher", context=context)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def start_recorder(*args):
    return subprocess.Popen([sys.executable, "-m", "xdrcdepth_ros.bag_recorder", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_subscribed(publishers, recorder, timeout=20.0):
    deadline = time.monotonic() + timeout
    while any(p.get_subscription_count() == 0 for p in publishers):
        assert recorder.poll() is None, recorder.communicate()
        assert time.monotonic() < deadline, "bag_recorder did not subscribe"
        time.sleep(0.05)


def read_bag(path):
    with Reader(path) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        return types, [(conn.topic, stamp, raw) for conn, stamp, raw in reader.messages()]


@pytest.mark.ros
def test_records_images_and_pngs_until_sigint(ros_node, tmp_path):
    bag, png_dir = tmp_path / "rec", tmp_path / "png"
    recorder = start_recorder("--out", bag, "--png-dir", png_dir,
                              "--topics", "/depth/colorized", "depth/saliency", "/depth/image", "/never")
    try:
        pubs = {t: ros_node.create_publisher(Image, t, 10) for t in ("/depth/colorized", "/depth/saliency",
                                                                    "/depth/image")}
        wait_subscribed(pubs.values(), recorder)
        sent = []
        for i, (topic, encoding) in enumerate([("/depth/colorized", "bgr8"), ("/depth/image", "32FC1"),
                                               ("/depth/colorized", "bgr8"), ("/depth/saliency", "rgb8"),
                                               ("/depth/colorized", "bgr8")]):
            stamp = 1_532_402_927_000_000_000 + i * 100_000_007
            msg, pixels = make_image(encoding, stamp, seed=i)
            pubs[topic].publish(msg)
            sent.append((topic, stamp, encoding, msg, pixels))
            time.sleep(0.05)
        time.sleep(0.5)
        # recorded in place, like ros2 bag record: the mcap grows, metadata.yaml comes at the end
        assert (bag / "rec.mcap").stat().st_size > 0 and not (bag / "metadata.yaml").exists()
        recorder.send_signal(signal.SIGINT)
        out, err = recorder.communicate(timeout=20)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.communicate()
    assert recorder.returncode == 0, err
    summary = out.strip().splitlines()[-1]
    assert summary.startswith(f"bag_recorder: wrote 5 messages to {bag} (mcap)")
    assert ("3 /depth/colorized, 1 /depth/saliency, 1 /depth/image, 0 /never; 4 PNGs in" in summary
            and "skipped /never (never published)" in summary)

    types, recorded = read_bag(bag)
    assert types == {t: "sensor_msgs/msg/Image" for t in pubs}
    assert [(t, deserialize_message(raw, Image).header.stamp.nanosec) for t, _, raw in recorded] == [
        (t, stamp % 1_000_000_000) for t, stamp, *_ in sent]
    stamps = [s for _, s, _ in recorded]
    assert stamps == sorted(stamps) and abs(stamps[0] / 1e9 - time.time()) < 60  # receive times, wall clock
    for (_, _, raw), (_, _, encoding, msg, pixels) in zip(recorded, sent):
        got = deserialize_message(raw, Image)
        assert (got.encoding, got.width, got.height, bytes(got.data)) == (encoding, 7, 5, pixels.tobytes())

    pngs = sorted(p.name for p in png_dir.iterdir())
    want = {png_name(t, *divmod(stamp, 1_000_000_000)): (enc, pixels)
            for t, stamp, enc, _, pixels in sent if enc != "32FC1"}
    assert pngs == sorted(want)
    for name, (encoding, pixels) in want.items():
        rgb = np.asarray(PILImage.open(png_dir / name).convert("RGB"))
        np.testing.assert_array_equal(rgb, pixels[:, :, ::-1] if encoding == "bgr8" else pixels)


@pytest.mark.ros
def test_stops_after_max_messages_and_on_sigterm(ros_node, tmp_path):
    bag, not_a_folder = tmp_path / "two", tmp_path / "file"
    not_a_folder.write_bytes(b"")  # PNGs cannot be written there: logged, the bag is still recorded
    recorder = start_recorder("--out", bag, "--topics", "/depth/colorized", "--max-messages", "2",
                              "--storage", "sqlite3", "--png-dir", not_a_folder)
    try:
        pub = ros_node.create_publisher(Image, "/depth/colorized", 10)
        wait_subscribed([pub], recorder)
        for i in range(4):
            pub.publish(make_image("bgr8", 10**9 + i, seed=i)[0])
            time.sleep(0.2)
        out, err = recorder.communicate(timeout=20)  # exits on its own after 2 messages
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.communicate()
    assert recorder.returncode == 0, err
    assert "wrote 2 messages" in out and "0 PNGs in" in out and f"cannot write {not_a_folder}/" in err
    _, recorded = read_bag(bag)
    assert [deserialize_message(raw, Image).header.stamp.nanosec for _, _, raw in recorded] == [0, 1]
    assert list(bag.glob("*.db3"))

    # SIGTERM while nothing was published: an empty but complete bag, and a summary naming the topic.
    empty = tmp_path / "empty"
    recorder = start_recorder("--out", empty, "--topics", "/nobody", "--duration", "30")
    time.sleep(2.0)
    recorder.send_signal(signal.SIGTERM)
    out, err = recorder.communicate(timeout=20)
    assert recorder.returncode == 0, err
    assert "wrote 0 messages" in out and "skipped /nobody (never published)" in out
    assert read_bag(empty) == ({}, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file", "two"]  # no temporary folders left


@pytest.mark.ros
def test_existing_bag_is_refused(tmp_path, ros_domain_id):
    (tmp_path / "bag").mkdir()
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag_recorder", "--out", str(tmp_path / "bag")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and f"{tmp_path / 'bag'} already exists" in result.stderr


@pytest.mark.ros
@pytest.mark.parametrize("spelling", [
    ["--out", "{bag}", "--topics", "/depth/colorized", "--max-messages", "1", "--ros-args", "-p",
     "use_sim_time:=true"],
    ["--max-messages", "1", "-o", "{bag}", "--use-sim-time", "/depth/colorized"],  # as ros2 bag record
], ids=["ros-args", "ros2-bag-record"])
def test_sim_time_stamps_follow_clock(ros_node, tmp_path, spelling):
    """With use_sim_time, a topic that appears before any /clock is still subscribed, a message before the
    first /clock is counted but not written, and bag stamps are the /clock time."""
    from rosgraph_msgs.msg import Clock

    bag = tmp_path / "sim"
    recorder = start_recorder(*(arg.format(bag=bag) for arg in spelling))
    try:
        time.sleep(1.0)  # the topic appears after the recorder started, and no /clock exists yet
        pub = ros_node.create_publisher(Image, "/depth/colorized", 10)
        clock = ros_node.create_publisher(Clock, "/clock", 10)
        wait_subscribed([pub, clock], recorder)
        pub.publish(make_image("bgr8", 5, seed=1)[0])
        time.sleep(0.5)
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = 42, 7
        clock.publish(msg)
        time.sleep(0.5)
        pub.publish(make_image("bgr8", 6, seed=2)[0])
        out, err = recorder.communicate(timeout=20)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.communicate()
    assert recorder.returncode == 0, err
    assert "wrote 1 messages" in out and "1 received before the first /clock (not written)" in out
    _, recorded = read_bag(bag)
    assert [(stamp, deserialize_message(raw, Image).header.stamp.nanosec) for _, stamp, raw in recorded] == [
        (42_000_000_007, 6)]
