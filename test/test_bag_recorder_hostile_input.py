"""bag_recorder with hostile arguments: malformed ROS arguments are one line, exit code 2, and no output folder
left behind; one topic named in two spellings is recorded once."""

import subprocess
import sys

import pytest

from test_bag_recorder import ros_node  # noqa: F401  (fixture: a test-side node in its own context)


@pytest.mark.ros
@pytest.mark.parametrize("ros_args, part", [
    (["--ros-args", "--bogus"], "invalid ROS arguments: unknown --bogus (a node's own flags go before"),
    (["--ros-args", "-p", "use_sim_time:=maybe"], "invalid ROS arguments: Trying to set parameter 'use_sim_time'"),
], ids=["unknown-flag", "bad-parameter-type"])
def test_malformed_ros_arguments_are_one_line_and_write_nothing(tmp_path, ros_domain_id, ros_args, part):
    """rclpy raises UnknownROSArgsError (from rclpy.init) and InvalidParameterTypeException (from the node's
    use_sim_time) for these, not the rcl parse error that was handled: both used to end the recorder with a
    traceback and exit code 1."""
    out = tmp_path / "rec"
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.bag.recorder", "-o", str(out), "--duration", "1",
                             "/a", *ros_args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("bag_recorder: ") and result.stderr.count("\n") == 1, result.stderr
    assert part in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.ros
def test_a_topic_named_twice_in_two_spellings_is_recorded_once(ros_node, tmp_path):
    """`bag_recorder -o OUT a /a` (relative and absolute spelling of one topic in the recorder's namespace /):
    it used to subscribe /a twice, refuse the second connection ("not recording /a: ... was added already",
    an ERROR) and end with "wrote 2 messages ...: none; skipped /a (...)" although the bag held both
    messages. Now /a is recorded once and the summary counts it."""
    from std_msgs.msg import String

    from test_bag_recorder import read_bag, recorded_count, start_recorder, wait_subscribed

    out = tmp_path / "rec"
    recorder = start_recorder("-o", out, "a", "/a", "--max-messages", "2")
    try:
        publisher = ros_node.create_publisher(String, "/a", 10)
        wait_subscribed([publisher], recorder)
        for i, text in enumerate(("first", "second")):
            publisher.publish(String(data=text))
            recorder.wait_until(lambda: recorded_count(out) >= i + 1, f"message {i + 1} in the bag")
        stdout, stderr = recorder.communicate()
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0, stderr
    assert "ERROR" not in stderr and "added already" not in stderr, stderr
    assert stdout.startswith(f"bag_recorder: wrote 2 messages to {out} (mcap) in ") and stdout.endswith(": 2 /a\n"), \
        stdout
    types, messages = read_bag(out)
    assert types == {"/a": "std_msgs/msg/String"}
    assert [(topic, deserialize(raw)) for topic, _, raw in messages] == [("/a", "first"), ("/a", "second")]


def deserialize(raw):
    from rclpy.serialization import deserialize_message
    from std_msgs.msg import String

    return deserialize_message(raw, String).data
