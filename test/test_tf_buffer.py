"""TF buffer semantics (tf2's, see xdrcdepth_ros/standins/tf2_ros.py) and the listener over real DDS.

Runs against the active ``tf2_ros`` (upstream on a full ROS 2 install, else the stand-in); each test names
the tf2 behaviour it mirrors.

Expected transforms are computed by hand or with xdrcdepth_core.data.geometry from nuScenes calibration
(the shared frames.json), never with the buffer under test.
"""

import json
import threading
import time
import types
import warnings

import numpy as np
import pytest
import rclpy
from rclpy.clock import ClockChange, TimeJump
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.time import Time

from xdrcdepth_core.data.geometry import invert_transform, sensor_to_sensor, transform_from_pose
from xdrcdepth_ros.node.transforms import matrix_to_transform, static_transform_buffer, transform_to_matrix
from xdrcdepth_ros.standins import active
from xdrcdepth_ros.standins import tf2_ros as standin
from xdrcdepth_ros.standins.tf2_ros import TF_QOS, TF_STATIC_QOS

tf_buffer = active("tf2_ros")

S = 1_000_000_000


def stamped(parent, child, T, t_s):
    return matrix_to_transform(T, parent, child, Time(nanoseconds=round(t_s * S)))


def yaw(deg, xyz=(0.0, 0.0, 0.0)):
    half = np.radians(deg) / 2
    return transform_from_pose([np.cos(half), 0, 0, np.sin(half)], xyz)


@pytest.fixture
def buffer():
    return tf_buffer.Buffer()


def test_active_implementation():
    try:
        import tf2_ros  # noqa: F401
        assert tf_buffer.__name__ == "tf2_ros"
    except ImportError:
        assert tf_buffer is standin


def test_static_chain_through_common_parent(buffer):
    T_base_cam = transform_from_pose([0.5, -0.5, 0.5, -0.5], [1.7, 0.0, 1.5])
    T_base_radar = yaw(10.0, (3.4, 0.0, 0.5))
    buffer.set_transform_static(stamped("base_link", "cam", T_base_cam, 0), "test")
    buffer.set_transform_static(stamped("base_link", "radar", T_base_radar, 0), "test")
    got = transform_to_matrix(buffer.lookup_transform("cam", "radar", Time()).transform)
    np.testing.assert_allclose(got, invert_transform(T_base_cam) @ T_base_radar, atol=1e-12)
    # the radar origin sits 1.7 m ahead of the camera (optical z), 1.0 m below it (optical y down)
    np.testing.assert_allclose(got[:3, 3], [0.0, 1.0, 1.7], atol=1e-12)


def test_interpolation_lerp_and_slerp(buffer):
    buffer.set_transform(stamped("odom", "base_link", yaw(0, (0, 0, 0)), 10.0), "test")
    buffer.set_transform(stamped("odom", "base_link", yaw(90, (2, 0, 0)), 11.0), "test")
    tf = buffer.lookup_transform("odom", "base_link", Time(nanoseconds=round(10.5 * S)))
    t, q = tf.transform.translation, tf.transform.rotation
    np.testing.assert_allclose([t.x, t.y, t.z], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [0, 0, np.sin(np.radians(22.5)),
                                                      np.cos(np.radians(22.5))], atol=1e-12)
    # a quarter of the way: 22.5 deg yaw, 0.5 m
    T = transform_to_matrix(buffer.lookup_transform(
        "odom", "base_link", Time(nanoseconds=round(10.25 * S))).transform)
    np.testing.assert_allclose(T, yaw(22.5, (0.5, 0, 0)), atol=1e-12)


def test_extrapolation_and_latest(buffer):
    buffer.set_transform(stamped("odom", "base_link", yaw(0, (1, 0, 0)), 10.0), "test")
    with pytest.raises(tf_buffer.ExtrapolationException):
        buffer.lookup_transform("odom", "base_link", Time(nanoseconds=round(10.1 * S)))
    buffer.set_transform(stamped("odom", "base_link", yaw(0, (3, 0, 0)), 12.0), "test")
    with pytest.raises(tf_buffer.ExtrapolationException):
        buffer.lookup_transform("odom", "base_link", Time(nanoseconds=round(9.9 * S)))
    with pytest.raises(tf_buffer.ExtrapolationException):
        buffer.lookup_transform("odom", "base_link", Time(nanoseconds=round(12.1 * S)))
    latest = buffer.lookup_transform("odom", "base_link", Time())
    assert latest.transform.translation.x == pytest.approx(3.0)
    assert Time.from_msg(latest.header.stamp).nanoseconds == 12 * S


def test_latest_common_time_across_links(buffer):
    buffer.set_transform(stamped("odom", "base_link", yaw(0, (0, 0, 0)), 10.0), "test")
    buffer.set_transform(stamped("odom", "base_link", yaw(0, (4, 0, 0)), 14.0), "test")
    buffer.set_transform(stamped("base_link", "turret", yaw(0, (0, 0, 1)), 9.0), "test")
    buffer.set_transform(stamped("base_link", "turret", yaw(0, (0, 0, 2)), 11.0), "test")
    # latest common time = min(14, 11) = 11 s: base at x=1, turret at z=2
    tf = buffer.lookup_transform("odom", "turret", Time())
    t = tf.transform.translation
    np.testing.assert_allclose([t.x, t.y, t.z], [1.0, 0.0, 2.0], atol=1e-12)
    assert Time.from_msg(tf.header.stamp).nanoseconds == 11 * S


def test_unknown_and_disconnected_frames(buffer):
    buffer.set_transform_static(stamped("a", "b", np.eye(4), 0), "test")
    buffer.set_transform_static(stamped("c", "d", np.eye(4), 0), "test")
    with pytest.raises(tf_buffer.LookupException):
        buffer.lookup_transform("a", "nowhere", Time())
    with pytest.raises(tf_buffer.ConnectivityException):
        buffer.lookup_transform("b", "d", Time())
    for exc in (tf_buffer.LookupException, tf_buffer.ConnectivityException,
                tf_buffer.ExtrapolationException):
        assert issubclass(exc, tf_buffer.TransformException)


def test_same_frame_is_identity_even_unknown(buffer):
    """tf2 BufferCore::lookupTransformImpl answers identity for target == source before validating the
    frames (and canTransform is true), even with an empty buffer: a radar already in the camera frame."""
    assert buffer.can_transform("cam_front_optical", "cam_front_optical", Time())
    tf = buffer.lookup_transform("cam_front_optical", "cam_front_optical", Time(nanoseconds=5 * S))
    np.testing.assert_allclose(transform_to_matrix(tf.transform), np.eye(4), atol=1e-15)
    assert Time.from_msg(tf.header.stamp).nanoseconds == 5 * S
    assert tf.header.frame_id == tf.child_frame_id == "cam_front_optical"
    with pytest.raises(tf_buffer.LookupException):         # different frames still need TF
        buffer.lookup_transform("cam_front_optical", "radar", Time())


def test_leading_slash_is_stripped_when_stored_and_invalid_in_lookups(buffer):
    """tf2 BufferCore::setTransformImpl strips one leading '/' from frame_id and child_frame_id, so a ROS 1
    style publisher ('/base_link' -> '/radar') joins the tree of 'base_link'; validateFrameId refuses an
    empty or '/'-prefixed name in a lookup (InvalidArgumentException, a TransformException; canTransform
    false). Expected transform: the yaw stored, by hand."""
    buffer.set_transform_static(stamped("/base_link", "/radar", yaw(90, (1.0, 2.0, 3.0)), 0), "test")
    buffer.set_transform_static(stamped("base_link", "cam", np.eye(4), 0), "test")
    got = transform_to_matrix(buffer.lookup_transform("cam", "radar", Time()).transform)
    np.testing.assert_allclose(got, [[0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]], atol=1e-12)
    assert issubclass(tf_buffer.InvalidArgumentException, tf_buffer.TransformException)
    for bad in ("/radar", ""):
        with pytest.raises(tf_buffer.InvalidArgumentException):
            buffer.lookup_transform("cam", bad, Time())
        assert not buffer.can_transform("cam", bad, Time())
    with pytest.raises(tf_buffer.InvalidArgumentException):
        buffer.lookup_transform_full("cam", Time(), "radar", Time(), "/base_link")


def test_lookup_full_time_zero_is_latest_common_time(buffer):
    """tf2 lookupTransform(target, target_time, source, source_time, fixed): each half resolves time 0 to
    its latest common time; the result carries the target half's time. All three frames must exist."""
    buffer.set_transform_static(stamped("base_link", "cam", yaw(0, (1, 0, 0)), 0), "test")
    buffer.set_transform_static(stamped("base_link", "radar", yaw(0, (2, 0, 0)), 0), "test")
    buffer.set_transform(stamped("odom", "base_link", yaw(0, (10, 0, 0)), 10.0), "test")
    buffer.set_transform(stamped("odom", "base_link", yaw(0, (14, 0, 0)), 12.0), "test")
    tf = buffer.lookup_transform_full("cam", Time(), "radar", Time(nanoseconds=10 * S), "odom")
    # radar at 10 s: odom x = 12; camera at the latest time (12 s): odom x = 15 -> radar 3 m behind
    np.testing.assert_allclose(transform_to_matrix(tf.transform)[:3, 3], [-3.0, 0, 0], atol=1e-12)
    assert Time.from_msg(tf.header.stamp).nanoseconds == 12 * S
    with pytest.raises(tf_buffer.LookupException):
        buffer.lookup_transform_full("cam", Time(), "radar", Time(), "map")


def test_lookup_full_compensates_ego_motion_like_nuscenes(buffer, nuscenes_samples):
    frame = json.loads((nuscenes_samples / "frames.json").read_text())["frames"][0]
    cam, radar = frame["CAM_FRONT"], frame["RADAR_FRONT"]
    pose = {k: transform_from_pose(v["rotation"], v["translation"])
            for k, v in (("cam_s2e", cam["sensor2ego"]), ("radar_s2e", radar["sensor2ego"]),
                         ("cam_e2g", cam["ego_pose"]), ("radar_e2g", radar["ego_pose"]))}
    t_cam, t_radar = cam["timestamp"] * 1000, radar["timestamp"] * 1000      # us -> ns
    buffer.set_transform_static(stamped("base_link", "CAM_FRONT", pose["cam_s2e"], 0), "test")
    buffer.set_transform_static(stamped("base_link", "RADAR_FRONT", pose["radar_s2e"], 0), "test")
    buffer.set_transform(matrix_to_transform(pose["cam_e2g"], "odom", "base_link",
                                             Time(nanoseconds=t_cam)), "test")
    buffer.set_transform(matrix_to_transform(pose["radar_e2g"], "odom", "base_link",
                                             Time(nanoseconds=t_radar)), "test")
    got = transform_to_matrix(buffer.lookup_transform_full(
        "CAM_FRONT", Time(nanoseconds=t_cam), "RADAR_FRONT", Time(nanoseconds=t_radar), "odom").transform)
    want = sensor_to_sensor(pose["radar_s2e"], pose["radar_e2g"], pose["cam_e2g"], pose["cam_s2e"])
    np.testing.assert_allclose(got, want, atol=1e-9)
    static_only = invert_transform(pose["cam_s2e"]) @ pose["radar_s2e"]
    # the ego moved ~0.5 m in the 52 ms between the stamps: compensation matters
    assert np.linalg.norm(got[:3, 3] - static_only[:3, 3]) > 0.3


def test_cache_time_prunes_and_rejects_old(buffer):
    """tf2 TimeCache::insertData (tf2/src/cache.cpp): each insert first prunes what is older than
    ``cache_time`` behind the latest stamp *before* that insert (``stamp + cache_time < latest``), then refuses
    data older than ``latest - cache_time``. So 0 s is still there after inserting 3 s into a 2 s cache; the
    next insert (even a refused one) prunes it."""
    buf = tf_buffer.Buffer(cache_time=Duration(seconds=2))
    for t in (0.0, 1.0, 2.0, 3.0):
        buf.set_transform(stamped("odom", "base_link", yaw(0, (t, 0, 0)), t), "test")
    assert buf.lookup_transform("odom", "base_link", Time(nanoseconds=round(0.5 * S))
                                ).transform.translation.x == pytest.approx(0.5)
    buf.set_transform(stamped("odom", "base_link", yaw(0, (9, 0, 0)), 0.5), "test")  # too old: refused
    with pytest.raises(tf_buffer.ExtrapolationException):   # ... and 0 s was pruned by that insert
        buf.lookup_transform("odom", "base_link", Time(nanoseconds=round(0.5 * S)))
    assert buf.lookup_transform("odom", "base_link", Time(nanoseconds=round(1.5 * S))
                                ).transform.translation.x == pytest.approx(1.5)


def test_invalid_transforms_are_rejected():
    buf = standin.Buffer()
    bad = stamped("odom", "base_link", np.eye(4), 1.0)
    bad.transform.translation.x = float("nan")
    assert not buf.set_transform(bad, "test")
    assert not buf.set_transform(stamped("odom", "odom", np.eye(4), 1.0), "test")
    assert not buf.set_transform_static(stamped("", "x", np.eye(4), 1.0), "test")
    assert not buf.set_transform_static(stamped("/", "x", np.eye(4), 1.0), "test")     # '' once stripped
    assert not buf.set_transform(stamped("/odom", "odom", np.eye(4), 1.0), "test")     # its own parent
    with pytest.raises(tf_buffer.LookupException):
        buf.lookup_transform("odom", "base_link", Time())
    # tf2 refuses NaN (TF_NAN_INPUT) and a quaternion whose norm is not 1, not an inf translation
    inf_rotation = stamped("odom", "base_link", np.eye(4), 1.0)
    inf_rotation.transform.rotation.x = float("inf")
    assert not buf.set_transform(inf_rotation, "test")
    far = stamped("odom", "base_link", np.eye(4), 1.0)
    far.transform.translation.y = float("inf")
    assert buf.set_transform(far, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # numpy's 'invalid value encountered in matmul' came out on stderr
        assert not np.isfinite(buf.lookup_transform("odom", "base_link", Time()).transform.translation.y)  # bad_tf


@pytest.mark.parametrize("links, target, source", [
    ([("base_link", "radar", (np.inf, 0, 0), 90)], "radar", "base_link"),            # inverse: 0 x inf
    ([("base_link", "big", (1.7e308, 1.7e308, 0), 45)], "big", "base_link"),         # inverse: overflow
    ([("a", "b", (1.7e308, 0, 0), 0), ("b", "c", (1.7e308, 0, 0), 0)], "a", "c"),   # compose: overflow
], ids=["inverse_inf", "inverse_overflow", "compose_overflow"])
def test_huge_translations_give_inf_or_nan_without_warnings(links, target, source):
    """tf2 stores any translation but NaN; its double arithmetic (TransformAccum) prints nothing when a
    result overflows or a zero meets an inf: the translation is not finite, and no RuntimeWarning."""
    buf = tf_buffer.Buffer()
    for parent, child, xyz, deg in links:
        msg = stamped(parent, child, yaw(deg), 0)
        msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = xyz
        buf.set_transform_static(msg, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = buf.lookup_transform(target, source, Time()).transform.translation
    assert not np.all(np.isfinite([out.x, out.y, out.z]))


@pytest.mark.parametrize("field, value, reason", [
    ("parent", "", "empty frame id"), ("child", "/", "empty frame id"),
    ("parent", "base_link", "frame 'base_link' is its own parent"), ("x", float("nan"), "NaN values"),
    ("w", np.sqrt(1.009), None), ("w", np.sqrt(1.02), "quaternion not normalised"),
    ("w", 0.0, "quaternion not normalised"), (None, None, None)])
def test_rejection_reasons(field, value, reason):
    """What tf2's setTransform refuses (buffer_core.cpp: empty ids, frame_id == child_frame_id, TF_NAN_INPUT,
    |q.length2() - 1| > QUATERNION_NORMALIZATION_TOLERANCE = 10e-3), as the listener's warning words it."""
    msg = stamped("odom", "base_link", np.eye(4), 1.0)
    if field == "parent":
        msg.header.frame_id = value
    elif field == "child":
        msg.child_frame_id = value
    elif field == "x":
        msg.transform.translation.x = value
    elif field == "w":
        msg.transform.rotation.w = value
    assert standin.rejection_reason(msg) == reason


def test_timeout_waits_for_arrival(buffer):
    """The lookup is called before the transform exists and returns it once it arrives. The 0.2 s head start
    only makes the lookup likely to be waiting already; nothing is decided by the clock: a loaded machine
    that starts the lookup late lets it find the transform at once, and the deadline is generous."""
    later = stamped("odom", "base_link", yaw(0, (5, 0, 0)), 1.0)
    assert not buffer.can_transform("odom", "base_link", Time(nanoseconds=S))
    set_at = []

    def arrive():
        set_at.append(time.monotonic())
        buffer.set_transform(later, "test")

    threading.Timer(0.2, arrive).start()
    tf = buffer.lookup_transform("odom", "base_link", Time(nanoseconds=S), timeout=Duration(seconds=60))
    returned_at = time.monotonic()
    assert tf.transform.translation.x == pytest.approx(5.0)
    assert set_at and returned_at >= set_at[0]
    with pytest.raises(tf_buffer.TransformException):
        buffer.lookup_transform("odom", "ghost", Time(), timeout=Duration(seconds=0.1))


class _StubNode:
    """A node's clock and logger, enough for Buffer(node=...): records the jump callback and the warnings."""

    def __init__(self):
        self.warnings, self.jump = [], None
        self.get_clock = lambda: types.SimpleNamespace(create_jump_callback=self._create)
        self.get_logger = lambda: types.SimpleNamespace(warning=self.warnings.append)

    def _create(self, threshold, post_callback):
        self.jump = (threshold, post_callback)
        return "handle"


@pytest.mark.parametrize("change, delta_s, cleared", [
    (ClockChange.ROS_TIME_NO_CHANGE, -1.5, True), (ClockChange.ROS_TIME_NO_CHANGE, -1.0, True),
    (ClockChange.ROS_TIME_NO_CHANGE, -0.5, False), (ClockChange.ROS_TIME_ACTIVATED, 0.0, True),
    (ClockChange.ROS_TIME_DEACTIVATED, 0.0, True)])
def test_jump_callback_clears_on_a_jump_back_or_a_clock_change(change, delta_s, cleared):
    """tf2_ros buffer.py: a jump callback with JumpThreshold(min_forward=None, min_backward=-1 s,
    on_clock_change=True) warns "Detected jump back in time. Clearing tf buffer." and clears; rcl calls it
    for a delta <= min_backward. Without DDS: the callback is called with rclpy TimeJumps."""
    node = _StubNode()
    buf = standin.Buffer(node=node)
    threshold, post_callback = node.jump
    assert buf.jump_handle == "handle"
    assert threshold.min_forward is None and threshold.on_clock_change is True
    assert threshold.min_backward.nanoseconds == -S
    buf.set_transform(stamped("odom", "base_link", yaw(0, (1, 0, 0)), 10.0), "test")
    post_callback(TimeJump(change, Duration(nanoseconds=round(delta_s * S))))
    assert buf.can_transform("odom", "base_link", Time()) is not cleared
    assert node.warnings == (["Detected jump back in time. Clearing tf buffer."] if cleared else [])


class _SubscribingStub:
    """A node that records create/destroy_subscription and the logger's warnings (no DDS)."""

    def __init__(self):
        self.subscriptions, self.destroyed, self.warnings = [], [], []
        self.get_logger = lambda: types.SimpleNamespace(
            warning=lambda text, **kwargs: self.warnings.append((text, kwargs)))

    def create_subscription(self, msg_type, topic, callback, qos, *, callback_group):
        handle = (msg_type.__name__, topic, callback, qos, callback_group)
        self.subscriptions.append(handle)
        return handle

    def destroy_subscription(self, handle):
        self.destroyed.append(handle)


@pytest.mark.parametrize("static_only", [False, True])
def test_listener_subscriptions_callbacks_and_rejections(static_only):
    """tf2_ros transform_listener.py (rolling) on a given node: TFMessage subscriptions to /tf (depth 100,
    reliable, volatile; not with static_only) and /tf_static (depth 100, reliable, transient local), both in
    one ReentrantCallbackGroup, with ``callback``/``static_callback``; each transform goes to
    set_transform(_static) with authority "default_authority". The stand-in counts what the buffer refuses
    and warns (throttled, 5 s); unregister destroys the subscriptions. No DDS: a recording node."""
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    class RecordingBuffer(standin.Buffer):
        def set_transform(self, transform, authority):
            authorities.append(authority)
            return super().set_transform(transform, authority)

        def set_transform_static(self, transform, authority):
            authorities.append(authority)
            return super().set_transform_static(transform, authority)

    authorities = []
    defaults = _SubscribingStub()
    standin.TransformListener(standin.Buffer(), defaults)
    assert [topic for _, topic, _, _, _ in defaults.subscriptions] == ["/tf", "/tf_static"]
    node, buf = _SubscribingStub(), RecordingBuffer()
    listener = standin.TransformListener(buf, node, tf_topic="/tf_a", tf_static_topic="/tf_static_a",
                                         static_only=static_only)
    assert listener.node is node and listener.buffer is buf and listener.rejected == 0
    expected = [("/tf_static_a", listener.static_callback, DurabilityPolicy.TRANSIENT_LOCAL)]
    if not static_only:
        expected.insert(0, ("/tf_a", listener.callback, DurabilityPolicy.VOLATILE))
    assert [(topic, callback, qos.durability) for _, topic, callback, qos, _ in node.subscriptions] == expected
    for msg_type, _, _, qos, group in node.subscriptions:
        assert msg_type == "TFMessage" and isinstance(group, ReentrantCallbackGroup) and group is listener.group
        assert qos.depth == 100 and qos.reliability == ReliabilityPolicy.RELIABLE
    good = stamped("base_link", "radar", yaw(0, (1, 0, 0)), 0)
    bad = stamped("base_link", "base_link", np.eye(4), 0)
    listener.static_callback(types.SimpleNamespace(transforms=[good, bad]))
    listener.callback(types.SimpleNamespace(transforms=[stamped("odom", "base_link", np.eye(4), 20.0),
                                                        stamped("odom", "base_link", np.eye(4), 5.0),
                                                        stamped("odom", "odom", np.eye(4), 20.0)]))
    assert buf.lookup_transform("base_link", "radar", Time(nanoseconds=7 * S)).transform.translation.x == 1.0
    assert buf.lookup_transform("odom", "base_link", Time()).header.stamp.sec == 20
    assert listener.rejected == 3
    assert authorities == ["default_authority"] * 5
    throttled = {"throttle_duration_sec": 5.0}
    assert node.warnings == [
        ("ignoring transform base_link -> base_link: frame 'base_link' is its own parent", throttled),
        ("ignoring transform odom -> base_link: older than the cache", throttled),
        ("ignoring transform odom -> odom: frame 'odom' is its own parent", throttled)]
    listener.unregister()
    assert node.destroyed == node.subscriptions


@pytest.mark.parametrize("full", [False, True], ids=["can_transform", "can_transform_full"])
def test_can_transform_timeout_waits_for_arrival(buffer, full):
    """tf2_ros can_transform(_full) with a timeout waits for the transform (here set 0.1 s later from another
    thread; the 60 s deadline is never reached). At a time outside the stored interval it is False at once."""
    buffer.set_transform(stamped("odom", "base_link", yaw(0, (1, 0, 0)), 1.0), "test")
    late = Time(nanoseconds=S)

    def check(time, timeout):
        if full:
            return buffer.can_transform_full("odom", time, "turret", time, "odom", timeout)
        return buffer.can_transform("odom", "turret", time, timeout)

    threading.Timer(0.1, buffer.set_transform,
                    (stamped("odom", "turret", yaw(0, (0, 0, 1)), 1.0), "test")).start()
    assert check(late, Duration(seconds=60)) is True
    assert check(Time(nanoseconds=2 * S), Duration()) is False      # only 1 s is stored


def test_static_transform_specs():
    buf = static_transform_buffer(
        ["base_link cam 1 2 3 0 0 0 1", f"base_link radar 4 0 0 0 0 {np.sin(np.pi / 4)} {np.cos(np.pi / 4)}"])
    T = transform_to_matrix(buf.lookup_transform("cam", "radar", Time()).transform)
    np.testing.assert_allclose(T, yaw(90, (3, -2, -3)), atol=1e-12)
    with pytest.raises(ValueError, match="expected 'frame_id child_frame_id"):
        static_transform_buffer(["base_link cam 1 2 3"])


def spinner(context, *nodes):
    """An executor spinning ``nodes`` and its ``spin_until(cond, timeout=60)``: spins until ``cond()`` holds or
    the deadline passes (on a loaded machine DDS is slower, not wrong), then returns ``cond()``."""
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)

    def spin_until(cond, timeout=60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            executor.spin_once(timeout_sec=0.05)
        return cond()
    return executor, spin_until


@pytest.mark.ros
def test_listener_over_dds_and_clock_jump_back_over_1s_clears(ros_context):
    context = ros_context
    from rosgraph_msgs.msg import Clock
    from tf2_msgs.msg import TFMessage

    listener_node = rclpy.create_node("tf_listener_test", context=context,
                                      parameter_overrides=[Parameter("use_sim_time", value=True)])
    talker = rclpy.create_node("tf_talker_test", context=context)
    buf = tf_buffer.Buffer(node=listener_node)
    tf_buffer.TransformListener(buf, listener_node)
    static_pub = talker.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
    tf_pub = talker.create_publisher(TFMessage, "/tf", TF_QOS)
    clock_pub = talker.create_publisher(Clock, "/clock", 10)
    executor, spin_until = spinner(context, listener_node, talker)
    static_pub.publish(TFMessage(transforms=[stamped("base_link", "cam", yaw(0, (1, 0, 0)), 0)]))
    assert spin_until(lambda: tf_pub.get_subscription_count() > 0
                      and clock_pub.get_subscription_count() > 0)
    clock_pub.publish(Clock(clock=Time(nanoseconds=100 * S).to_msg()))
    tf_pub.publish(TFMessage(transforms=[stamped("odom", "base_link", yaw(0, (7, 0, 0)), 100.0)]))
    assert spin_until(lambda: buf.can_transform("odom", "cam", Time(nanoseconds=100 * S)))
    T = transform_to_matrix(buf.lookup_transform("odom", "cam", Time(nanoseconds=100 * S)).transform)
    np.testing.assert_allclose(T[:3, 3], [8, 0, 0], atol=1e-12)
    # tf2_ros Buffer(node=...): a jump back of 1 s or less (clock jitter, a paused player) keeps the
    # buffer; a looping bag (/clock 50 s back) drops dynamic transforms, static ones stay
    listener_clock = listener_node.get_clock()
    clock_pub.publish(Clock(clock=Time(nanoseconds=round(99.5 * S)).to_msg()))
    assert spin_until(lambda: listener_clock.now().nanoseconds == round(99.5 * S))
    assert buf.can_transform("odom", "cam", Time(nanoseconds=100 * S))
    clock_pub.publish(Clock(clock=Time(nanoseconds=50 * S).to_msg()))
    assert spin_until(lambda: not buf.can_transform("odom", "cam", Time(nanoseconds=100 * S)))
    assert buf.can_transform("base_link", "cam", Time())
    executor.shutdown()


@pytest.mark.ros
def test_a_callback_of_the_nodes_default_group_can_wait_for_a_transform(ros_context):
    context = ros_context
    """tf2_ros's listener subscribes in a ReentrantCallbackGroup ("Default callback group is mutually exclusive,
    which would prevent waiting for transforms from another callback in the same group"): under a
    multi-threaded executor a timer of the node's default group waits in ``lookup_transform`` while /tf
    arrives. In the node's default group the wait ran out (LookupException) and /tf was handled after it."""
    from rclpy.executors import MultiThreadedExecutor
    from tf2_msgs.msg import TFMessage

    node = rclpy.create_node("tf_waiting_in_a_callback", context=context)
    talker = rclpy.create_node("tf_talker_for_the_waiter", context=context)
    buf = tf_buffer.Buffer()
    tf_buffer.TransformListener(buf, node)
    waiting, outcome = threading.Event(), []

    def wait_for_the_transform():
        timer.cancel()
        waiting.set()
        try:
            found = buf.lookup_transform("odom", "base_link", Time(nanoseconds=100 * S), Duration(seconds=60))
            outcome.append(transform_to_matrix(found.transform)[:3, 3].tolist())
        except tf_buffer.TransformException as exc:
            outcome.append(type(exc).__name__)

    timer = node.create_timer(0.01, wait_for_the_transform)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    executor.add_node(node)
    spinning = threading.Thread(target=executor.spin, daemon=True)
    spinning.start()
    tf_pub = talker.create_publisher(TFMessage, "/tf", TF_QOS)
    deadline = time.monotonic() + 60
    while not (waiting.is_set() and tf_pub.get_subscription_count() > 0) and time.monotonic() < deadline:
        waiting.wait(0.05)
    tf_pub.publish(TFMessage(transforms=[stamped("odom", "base_link", yaw(0, (7, 0, 0)), 100.0)]))
    while not outcome and time.monotonic() < deadline + 60:
        waiting.wait(0.05)
    assert outcome == [[7.0, 0.0, 0.0]]
    executor.shutdown()
    spinning.join(timeout=30)


@pytest.mark.ros
def test_spin_thread_fills_the_buffer_without_the_caller_spinning(ros_context):
    context = ros_context
    """tf2_ros ``TransformListener(..., spin_thread=True)`` spins the node in an executor on a thread of its
    own: /tf reaches the buffer while nobody spins the node. ``static_only=True`` subscribes to /tf_static
    alone. The stand-in accepted ``spin_thread`` and did nothing: the buffer never filled."""
    from tf2_msgs.msg import TFMessage

    node = rclpy.create_node("tf_listener_spinning_itself", context=context)
    talker = rclpy.create_node("tf_talker_for_the_spinner", context=context)
    buf = tf_buffer.Buffer()
    listener = tf_buffer.TransformListener(buf, node, spin_thread=True)
    tf_pub = talker.create_publisher(TFMessage, "/tf", TF_QOS)
    executor, spin_until = spinner(context, talker)        # the talker only: nobody spins the listener
    assert spin_until(lambda: tf_pub.get_subscription_count() > 0)
    tf_pub.publish(TFMessage(transforms=[stamped("odom", "base_link", yaw(0, (0, 3, 0)), 100.0)]))
    found = buf.lookup_transform("odom", "base_link", Time(nanoseconds=100 * S), Duration(seconds=60))
    assert transform_to_matrix(found.transform)[:3, 3].tolist() == [0.0, 3.0, 0.0]
    listener.executor.shutdown()
    listener.dedicated_listener_thread.join(timeout=30)
    assert not listener.dedicated_listener_thread.is_alive()
    executor.shutdown()
    static_node = rclpy.create_node("tf_static_only_listener", context=context)
    tf_buffer.TransformListener(tf_buffer.Buffer(), static_node, static_only=True)
    assert static_node.get_subscriber_names_and_types_by_node(static_node.get_name(), "/") == [
        ("/tf_static", ["tf2_msgs/msg/TFMessage"])]
