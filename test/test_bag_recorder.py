"""bag_recorder in a subprocess records Images published from this process over loopback DDS; the bag read
back with rosbags holds the same bytes, and the PNGs decode to the same pixels.

No test waits a fixed time: each waits, with a generous deadline, for what it needs to have happened: the
recorder subscribed (publisher's subscription count), a message recorded (read from the mcap being
written, as ``xdrcdepth bag-reindex`` reads a torn one), the bag started (its file exists), a log line."""

import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from PIL import Image as PILImage
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image

from xdrcdepth_ros.bag.recorder import png_name
from xdrcdepth_ros.bag.reindex import McapScan

DEADLINE_S = 60.0


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


class Recorder:
    """``bag_recorder`` in a subprocess; its stderr (the ROS log) is collected line by line as it comes."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "xdrcdepth_ros.bag.recorder", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self._reader = threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True)
        self._reader.start()

    def poll(self):
        return self.proc.poll()

    def send_signal(self, signum):
        self.proc.send_signal(signum)

    @property
    def returncode(self):
        return self.proc.returncode

    def communicate(self, timeout=DEADLINE_S) -> tuple[str, str]:
        """Wait for the exit; ``(stdout, stderr)``."""
        out = self.proc.stdout.read() if self.proc.wait(timeout) is not None else ""
        self._reader.join(timeout)
        return out, "".join(self.log)

    def kill(self):
        self.proc.kill()
        self.communicate()

    def wait_until(self, condition, what: str, timeout=DEADLINE_S, spin=None) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"bag_recorder exited while waiting for {what}: {self.communicate()}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s; log: {''.join(self.log)}"
            if spin is not None:
                spin()
            else:
                time.sleep(0.02)


def start_recorder(*args) -> Recorder:
    return Recorder(*args)


def wait_subscribed(publishers, recorder):
    recorder.wait_until(lambda: all(p.get_subscription_count() > 0 for p in publishers), "subscription")


def recorded_count(bag) -> int:
    """Messages in the mcap the recorder is writing (flushed within 0.5 s of their arrival)."""
    files = list(bag.glob("*.mcap"))
    if not files:
        return 0
    from mcap.records import Message
    return sum(isinstance(record, Message) for record in McapScan(files[0]))


def read_bag(path):
    with Reader(path) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        return types, [(conn.topic, stamp, raw) for conn, stamp, raw in reader.messages()]


@pytest.mark.slow
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
            # the next one only once this one is in the bag: messages on different topics keep their order
            recorder.wait_until(lambda: recorded_count(bag) == i + 1, f"message {i + 1} in the bag")
        # recorded in place, like ros2 bag record: the mcap grows, metadata.yaml comes at the end
        assert (bag / "rec.mcap").stat().st_size > 0 and not (bag / "metadata.yaml").exists()
        recorder.send_signal(signal.SIGINT)
        out, err = recorder.communicate()
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0, err
    summary = out.strip().splitlines()[-1]
    assert summary.startswith(f"bag_recorder: wrote 5 messages to {bag} (mcap)")
    assert ("3 /depth/colorized, 1 /depth/saliency, 1 /depth/image; 4 PNGs in" in summary
            and summary.endswith("; skipped /never (never published)"))

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


@pytest.mark.slow
@pytest.mark.ros
def test_stops_after_max_messages_and_on_sigterm(ros_node, tmp_path):
    bag, not_a_folder = tmp_path / "two", tmp_path / "png"
    recorder = start_recorder("--out", bag, "--topics", "/depth/colorized", "--max-messages", "2",
                              "--storage", "sqlite3", "--png-dir", not_a_folder)
    try:
        pub = ros_node.create_publisher(Image, "/depth/colorized", 10)
        wait_subscribed([pub], recorder)
        # a file where the PNG folder was to be made once recording ran (a file there at start-up is refused):
        # PNGs cannot be written, each failure is logged, the bag is still recorded
        not_a_folder.write_bytes(b"")
        for i in range(4):   # one topic, reliable: delivered in order
            pub.publish(make_image("bgr8", 10**9 + i, seed=i)[0])
        out, err = recorder.communicate()  # exits on its own after 2 messages
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0, err
    assert "wrote 2 messages" in out and "0 PNGs in" in out and f"cannot write {not_a_folder}/" in err
    _, recorded = read_bag(bag)
    assert [deserialize_message(raw, Image).header.stamp.nanosec for _, _, raw in recorded] == [0, 1]
    assert list(bag.glob("*.db3"))

    # SIGTERM while nothing was published: an empty but complete bag, and a summary naming the topic; --out
    # is an existing empty folder, which the help allows ("must not exist, or be an empty folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    recorder = start_recorder("--out", empty, "--topics", "/nobody", "--duration", "300")
    recorder.wait_until(lambda: (empty / "empty.mcap").exists(), "bag file")   # signal handlers are set by then
    recorder.send_signal(signal.SIGTERM)
    out, err = recorder.communicate()
    assert recorder.returncode == 0, err
    assert re.fullmatch(rf"bag_recorder: wrote 0 messages to {re.escape(str(empty))} \(mcap\) in [0-9.]+ s: none; "
                        r"skipped /nobody \(never published\)", out.splitlines()[-1])   # the topic named once
    assert read_bag(empty) == ({}, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "png", "two"]  # no temporary folders left


@pytest.mark.ros
def test_existing_bag_is_refused(tmp_path, ros_domain_id):
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "notes.txt").write_text("mine")   # not empty: refused (an empty folder is accepted)
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.recorder", "--out", str(tmp_path / "bag")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and f"{tmp_path / 'bag'} already exists" in result.stderr
    assert [p.name for p in (tmp_path / "bag").iterdir()] == ["notes.txt"]


@pytest.mark.ros
@pytest.mark.parametrize("args, error", [
    (["bad topic"], "bag_recorder: error: invalid topic name 'bad topic': topic name must not contain characters"),
    (["--topics", "/ok", "/a//b"], "invalid topic name '/a//b': topic name must not contain repeated '/'"),
    (["{foo}"], "invalid topic name '{foo}': unknown substitution: {foo}"),
    (["--png-dir", "FILE", "/depth/colorized"], "bag_recorder: error: argument --png-dir: FILE is not a folder"),
    (["--png-dir", "FILE/png", "/depth/colorized"], "argument --png-dir: FILE (in FILE/png) is not a folder"),
    (["--png-dir", "OUT", "/depth/colorized"], "argument --png-dir: OUT is in the bag folder --out OUT (which holds "
                                               "only the bag's own files)"),
    (["--png-dir", "OUT/png", "/depth/colorized"], "argument --png-dir: OUT/png is in the bag folder --out OUT"),
], ids=["space", "double-slash", "substitution", "png-dir-file", "png-dir-under-file", "png-dir-out",
        "png-dir-in-out"])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, ros_domain_id, args, error):
    """A bad topic name or a --png-dir that cannot be a folder (or would put PNGs into the bag's folder, which
    makes it no recognisable bag): one line, exit code 2, no --out folder (these
    used to be an RCLError traceback after the bag was opened, or an ERROR per image and "0 PNGs"). Without
    the check, --duration ends the recording, so a regression fails here instead of hanging."""
    file = tmp_path / "file"
    file.write_bytes(b"")
    out = tmp_path / "rec"
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.recorder", "--out", str(out),
                             "--duration", "1", *(a.replace("FILE", str(file)).replace("OUT", str(out)) for a in args)],
                            capture_output=True, text=True, timeout=DEADLINE_S)
    assert result.returncode == 2, result.stdout + result.stderr
    error = error.replace("FILE", str(file)).replace("OUT", str(out))
    assert error in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.slow
@pytest.mark.ros
def test_malformed_images_are_recorded_without_png(ros_node, tmp_path):
    """With --png-dir, an Image whose CDR does not deserialize (it used to crash the recorder with a Fast CDR
    exception, losing the bag) and one whose data does not fit its size are recorded as received, get no PNG,
    one warning for the topic and a count in the summary; the images around them are recorded and saved, and
    the bag is finalised."""
    bag, png_dir = tmp_path / "rec", tmp_path / "png"
    recorder = start_recorder("--out", bag, "--png-dir", png_dir, "--topics", "/depth/colorized",
                              "--max-messages", "4")
    try:
        pub = ros_node.create_publisher(Image, "/depth/colorized", 10)
        wait_subscribed([pub], recorder)
        (good1, pixels1), (good2, pixels2) = (make_image("rgb8", 10**9 + i, seed=i) for i in (1, 2))
        short, _ = make_image("rgb8", 10**9 + 3, seed=3)
        short.data = bytes(short.data)[:-1]   # deserializes, but 104 bytes cannot be 5 x 7 rgb8
        garbage = b"\x00\x01\x00\x00" + b"\xff" * 12   # CDR header, then nothing Image-shaped
        sent = [serialize_message(good1), garbage, serialize_message(short), serialize_message(good2)]
        for raw in sent:   # one reliable topic: delivered in order
            pub.publish(raw)
        out, err = recorder.communicate()   # exits on its own after 4 messages
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0 and "Traceback" not in err, err
    assert out.strip().splitlines()[-1].startswith(f"bag_recorder: wrote 4 messages to {bag} (mcap)"), out
    assert ("; 2 PNGs in " in out and "; no PNG for 2 malformed /depth/colorized (recorded as received)" in out), out
    assert err.count("malformed image recorded without a PNG") == 1, err   # one warning, then only counted
    _, recorded = read_bag(bag)   # metadata.yaml written: the bag is finalised
    # as sent, up to the zero padding DDS adds to a multiple of 4 bytes
    assert [raw.rstrip(b"\x00") for _, _, raw in recorded] == [raw.rstrip(b"\x00") for raw in sent]
    assert [len(raw) for _, _, raw in recorded] == [-(-len(raw) // 4) * 4 for raw in sent]
    pngs = {png_name("/depth/colorized", 1, i): pixels for i, pixels in ((1, pixels1), (2, pixels2))}
    assert sorted(p.name for p in png_dir.iterdir()) == sorted(pngs)
    for name, pixels in pngs.items():
        np.testing.assert_array_equal(np.asarray(PILImage.open(png_dir / name).convert("RGB")), pixels)


@pytest.mark.slow
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
        # the topic appears after the recorder started, and no /clock exists yet
        recorder.wait_until(lambda: "bag_recorder" in ros_node.get_node_names(), "recorder node")
        pub = ros_node.create_publisher(Image, "/depth/colorized", 10)
        clock = ros_node.create_publisher(Clock, "/clock", 10)
        wait_subscribed([pub, clock], recorder)
        pub.publish(make_image("bgr8", 5, seed=1)[0])
        recorder.wait_until(lambda: any("received before the first /clock" in line for line in recorder.log),
                            "message before /clock")
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = 42, 7
        clock.publish(msg)
        # image 6 once the clock is there: /clock and the image travel on different topics, so a copy may
        # still overtake the clock; it is counted and not written, and the next copy is recorded (the
        # recorder stops after one written message)
        copies = 0
        while recorder.poll() is None:
            pub.publish(make_image("bgr8", 6, seed=2)[0])
            copies += 1
            assert copies < 100, "image 6 never recorded"
            try:
                recorder.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        out, err = recorder.communicate()
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0, err
    before = int(re.search(r"(\d+) received before the first /clock \(not written\)", out).group(1))
    assert "wrote 1 messages" in out and 1 <= before <= copies
    _, recorded = read_bag(bag)
    assert [(stamp, deserialize_message(raw, Image).header.stamp.nanosec) for _, stamp, raw in recorded] == [
        (42_000_000_007, 6)]


@pytest.mark.slow
@pytest.mark.ros
def test_a_volatile_publisher_beside_a_latched_one_is_recorded(ros_node, tmp_path):
    """One TRANSIENT_LOCAL and one VOLATILE publisher on a topic: the recorder subscribes VOLATILE (what both
    match, as rosbag2's adaptive QoS), so it records both publishers' messages. A TRANSIENT_LOCAL subscription
    would not match the volatile publisher (DDS: incompatible durability) and lose every message it sends."""
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from std_msgs.msg import String

    from xdrcdepth_ros.bag.player import _recorded_transient_local

    latched = ros_node.create_publisher(String, "/mixed", QoSProfile(
        depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    volatile = ros_node.create_publisher(String, "/mixed", QoSProfile(depth=10))
    bag = tmp_path / "mixed"
    recorder = start_recorder("--out", bag, "/mixed", "--max-messages", "6")
    try:
        wait_subscribed([latched], recorder)
        # discovery is done once the latched publisher has matched: the volatile one matches too, or never
        recorder.wait_until(lambda: volatile.get_subscription_count() > 0,
                            "match of the recorder's subscription with the volatile publisher", timeout=10)
        for i in range(3):   # each publisher reliable: delivered in its own order
            latched.publish(String(data=f"latched {i}"))
            volatile.publish(String(data=f"volatile {i}"))
        out, err = recorder.communicate()   # exits on its own after 6 messages
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0, err
    types, recorded = read_bag(bag)
    data = [deserialize_message(raw, String).data for _, _, raw in recorded]
    assert [d for d in data if d.startswith("volatile")] == ["volatile 0", "volatile 1", "volatile 2"]
    assert [d for d in data if d.startswith("latched")] == ["latched 0", "latched 1", "latched 2"]
    with Reader(bag) as reader:
        (connection,) = reader.connections
    # one offered profile a publisher, as ros2 bag record stores them (it stored none: a black-box run) ...
    profiles = connection.ext.offered_qos_profiles
    assert sorted(q.durability.name for q in profiles) == ["TRANSIENT_LOCAL", "VOLATILE"], profiles
    assert [q.reliability.name for q in profiles] == ["RELIABLE", "RELIABLE"], profiles
    assert not _recorded_transient_local(connection)   # ... and bag_player latches it only if all are latched


#: the console script's entry point with a SIGINT sent inside main, before its own signal handling is set up (an
#: exact moment: no timing involved)
SIGINT_IN_MAIN = """
import os, signal, sys
from xdrcdepth_ros.bag import recorder
build_parser = recorder.build_parser
def interrupted_parser():
    os.kill(os.getpid(), signal.SIGINT)
    return build_parser()
recorder.build_parser = interrupted_parser
from xdrcdepth_ros.entry_points import bag_recorder
sys.exit(bag_recorder())
"""


def test_ctrl_c_before_the_recorder_has_started_is_a_quiet_stop(tmp_path, ros_domain_id):
    from fs_faults import sigint_default

    out = tmp_path / "rec"
    proc = subprocess.run([sys.executable, "-c", SIGINT_IN_MAIN, "--out", str(out)], capture_output=True, text=True,
                          timeout=120, preexec_fn=sigint_default)
    assert (proc.returncode, proc.stderr) == (0, "")     # was a KeyboardInterrupt traceback, exit 1
    assert not out.exists()
