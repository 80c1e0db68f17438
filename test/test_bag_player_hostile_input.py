"""bag_player against hostile bags and arguments, played in a subprocess over real DDS.

Every bag is built here with rosbags (its stamps, topics and types written by hand), so what should be played,
refused or skipped is known without asking the player. No test waits a fixed time: each waits, with a
generous deadline, for the player's exit or for the messages it must deliver.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_bag_player import IMAGE_STAMPS, Probe, write_bag

T0 = 1_700_000_000_000_000_000
DEADLINE_S = 60.0


def _string(text):
    from rclpy.serialization import serialize_message
    from std_msgs.msg import String

    return serialize_message(String(data=text))


def _int32(value):
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Int32

    return serialize_message(Int32(data=value))


def write_rows(path: Path, connections, rows, storage="mcap") -> Path:
    """A bag with ``connections`` ((topic, type), ...) and ``rows`` ((connection index, stamp ns, raw), ...)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_KILTED)
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = [writer.add_connection(topic, msgtype, typestore=typestore) for topic, msgtype in connections]
        for index, stamp, raw in rows:
            writer.write(conns[index], stamp, raw)
    return path


def play(*args, timeout=DEADLINE_S):
    return subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.player", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_usage_error(result, *parts):
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("bag_player: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for part in parts:
        assert part in result.stderr, result.stderr


@pytest.mark.slow
@pytest.mark.ros
def test_a_relative_remap_renames_the_bags_topic_as_ros2_bag_play_does(tmp_path, ros_domain_id):
    """`ros2 bag play -m image:=/camera/image` passes the rule to rcl, which expands `image` in the player's
    namespace `/` before matching, so the bag's /image is played as /camera/image. The rule used to be
    looked up as the literal text 'image': nothing matched and /image was played under its own name."""
    bag = write_bag(tmp_path / "bag", "mcap")
    probe = Probe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xdrcdepth_ros.bag.player", str(bag), "--topics", "/image",
             "-m", "image:=/camera/image", "--wait-for-subscribers", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        probe.spin_until(lambda: len(probe.received["image"]) >= 2, proc, timeout=90)
        out, err = proc.communicate(timeout=30)
    finally:
        probe.close()
    assert proc.returncode == 0, err
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in probe.received["image"]]
    assert stamps == list(IMAGE_STAMPS), out + err
    assert probe.unremapped_image_publishers == []   # nothing on the bag's own name
    assert "no subscribers" not in err   # the probe's /camera/image subscription matched the played topic


@pytest.mark.ros
@pytest.mark.parametrize("case", ["empty bag", "offset past the end"])
def test_loop_with_nothing_to_play_ends_instead_of_spinning(tmp_path, ros_domain_id, case):
    """`--loop` over a bag (or a start offset) without messages used to repeat its empty pass at once, forever:
    3.8 million passes in 19 s at 100 % CPU until killed. Now one empty pass, a warning, exit code 0."""
    if case == "empty bag":
        bag = write_rows(tmp_path / "bag", [("/a", "std_msgs/msg/String")], [])
        extra = []
    else:
        bag = write_rows(tmp_path / "bag", [("/a", "std_msgs/msg/String")],
                         [(0, T0, _string("x")), (0, T0 + 1_000_000_000, _string("y"))])
        extra = ["--start-offset", "5"]
    try:
        result = play(bag, "--loop", *extra, timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"bag_player --loop {' '.join(extra)} still looping after {DEADLINE_S:g} s")
    assert result.returncode == 0, result.stderr
    assert f"played 0 messages on 1 topics from {bag}" in result.stdout and "1 pass)" in result.stdout
    assert "nothing to play in this pass" in result.stderr and "not looping" in result.stderr


@pytest.mark.ros
@pytest.mark.parametrize("rule", ["/b:=/a", "b:=/a"])
def test_a_remap_that_merges_two_types_onto_one_topic_is_refused(tmp_path, ros_domain_id, rule):
    """/b (Int32) remapped onto /a (String) used to publish the Int32 bytes through the String publisher
    ("played 2 messages on 1 topics"): every String subscriber of /a got a message that is not a String.
    Now one line naming both topics and types, exit code 2, nothing played."""
    bag = write_rows(tmp_path / "bag", [("/a", "std_msgs/msg/String"), ("/b", "std_msgs/msg/Int32")],
                     [(0, T0, _string("x")), (1, T0 + 100_000_000, _int32(7))])
    result = play(bag, "-m", rule)
    assert_one_line_usage_error(result, "/b (std_msgs/msg/Int32)", "/a (std_msgs/msg/String)", "both on /a")


@pytest.mark.slow
@pytest.mark.ros
def test_a_topic_recorded_with_two_types_plays_only_its_first(tmp_path, ros_domain_id):
    """A bag whose /a holds String and Int32 messages (two connections): the Int32 ones used to go out
    through the String publisher. Now they are skipped with a warning and named in the summary; the String
    arrives over DDS unchanged."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    bag = write_rows(tmp_path / "bag", [("/a", "std_msgs/msg/String"), ("/a", "std_msgs/msg/Int32")],
                     [(0, T0, _string("x")), (1, T0 + 100_000_000, _int32(7))])
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("two_types_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received = []
    node.create_subscription(String, "/a", lambda msg: received.append(msg.data), 10)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "xdrcdepth_ros.bag.player", str(bag),
                                 "--wait-for-subscribers", "30"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while not (received and proc.poll() is not None) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.02)
        out, err = proc.communicate(timeout=30)
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    assert proc.returncode == 0, err
    assert received == ["x"], out + err
    assert f"played 1 messages on 1 topics from {bag}" in out and "skipped /a (std_msgs/msg/Int32)" in out, out
    assert "the bag recorded it with two types" in err


@pytest.mark.ros
def test_a_bag_topic_with_an_invalid_name_is_skipped(tmp_path, ros_domain_id):
    """A bag topic named '/b c' (rosbags writes any string) used to end the player with an RCLError traceback
    (exit code 1) before anything played. Now it is skipped with a warning and the rest plays."""
    bag = write_rows(tmp_path / "bag", [("/a", "std_msgs/msg/String"), ("/b c", "std_msgs/msg/String")],
                     [(0, T0, _string("x")), (1, T0 + 1, _string("y"))])
    result = play(bag)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"played 1 messages on 1 topics from {bag}" in result.stdout and "skipped '/b c'" in result.stdout
    assert "skipping '/b c': not a valid ROS topic name" in result.stderr


@pytest.mark.ros
@pytest.mark.parametrize("storage, stamps", [
    ("sqlite3", (-2_000_000_000, -1_000_000_000)),          # before 1970: ROS time cannot be negative
    ("mcap", (2**62, 2**62 + 100_000_000)),                  # year 2116: beyond int32 seconds
], ids=["negative", "far-future"])
def test_clock_refuses_times_builtin_time_cannot_hold(tmp_path, ros_domain_id, storage, stamps):
    """builtin_interfaces/Time has int32 seconds and ROS time is >= 0: /clock for these stamps used to be
    published anyway (2**62 ns wrapped to a nonsense time; a negative clock makes rclpy's Time.from_msg raise
    in every use_sim_time node). Now one line, exit code 2, before anything plays; without --clock the bag
    still plays."""
    bag = write_rows(tmp_path / "bag", [("/a", "std_msgs/msg/String")],
                     [(0, stamp, _string(str(i))) for i, stamp in enumerate(stamps)], storage)
    result = play(bag, "--clock")
    assert_one_line_usage_error(result, f"cannot publish /clock for bag {bag}", "play it without --clock")
    plain = play(bag)
    assert plain.returncode == 0 and f"played 2 messages on 1 topics from {bag}" in plain.stdout, plain.stderr


@pytest.mark.ros
@pytest.mark.parametrize("ros_args, part", [
    (["--ros-args", "--clock"], "invalid ROS arguments: unknown --clock (a node's own flags go before"),
    (["--ros-args", "-p", "use_sim_time:=maybe"], "invalid ROS arguments: Trying to set parameter 'use_sim_time'"),
], ids=["unknown-flag", "bad-parameter-type"])
def test_malformed_ros_arguments_are_one_line(tmp_path, ros_domain_id, ros_args, part):
    """rclpy raises UnknownROSArgsError / InvalidParameterTypeException for these (not rcl's parse error that
    was handled): both used to be a traceback and exit code 1."""
    bag = write_rows(tmp_path / "bag", [("/a", "std_msgs/msg/String")], [(0, T0, _string("x"))])
    assert_one_line_usage_error(play(bag, *ros_args), part)


@pytest.mark.ros
@pytest.mark.parametrize("starting_time, skipped", [(0, "waited 54 years"), (T0 + 1_500_000_000, "skipped 2 of 3")],
                         ids=["zero", "after-the-first-message"])
def test_a_starting_time_that_contradicts_the_file_is_refused(tmp_path, ros_domain_id, starting_time, skipped):
    """rosbags takes the bag's start from metadata.yaml and playback is timed from it: starting_time 0 made the
    player wait T0 = 54 years before the first message (until killed), one between the messages skipped
    those before it (exit code 0). Now one line names both times and the repair, exit code 2; after
    `xdrcdepth bag-reindex --force` the bag plays all three messages."""
    import yaml

    from xdrcdepth_core.cli import main as xdrcdepth

    bag = write_rows(tmp_path / "bag", [("/a", "std_msgs/msg/String")],
                     [(0, T0 + i * 1_000_000_000, _string(text)) for i, text in enumerate(("x", "y", "z"))])
    metadata = bag / "metadata.yaml"
    data = yaml.safe_load(metadata.read_text())
    data["rosbag2_bagfile_information"]["starting_time"]["nanoseconds_since_epoch"] = starting_time
    metadata.write_text(yaml.safe_dump(data))
    try:
        result = play(bag, timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"bag_player still waiting after {DEADLINE_S:g} s ({skipped})")
    assert_one_line_usage_error(
        result, f"cannot read bag {bag}: metadata.yaml does not match its storage file (starting_time "
                f"{starting_time} ns in metadata.yaml, the file's first message at {T0} ns); "
                f"'xdrcdepth bag-reindex --force {bag}' rewrites metadata.yaml from the file")
    assert xdrcdepth(["bag-reindex", "--force", str(bag)]) == 0
    repaired = play(bag)
    assert repaired.returncode == 0 and f"played 3 messages on 1 topics from {bag}" in repaired.stdout, \
        repaired.stderr
