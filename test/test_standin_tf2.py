"""tf2 behaviour the stand-in must share with upstream, ported from upstream's own sources and tests.

Runs against the active ``tf2_ros`` (upstream on a full ROS 2 install, else xdrcdepth_ros.standins.tf2_ros).
References (ros2/geometry2, rolling):

* ``tf2/test/cache_unittest.cpp`` ``TimeCache.GetAllItems`` / ``ReparentingInterpolationProtection``: the
  pruning, ordering and no-interpolation-across-parents rules, here through the Buffer API;
* ``tf2/src/cache.cpp`` (``createExtrapolationException1/2/3``, ``displayTimePoint`` = ``%.6f``) and
  ``tf2/src/buffer_core.cpp`` (``walkToTopParent`` appends ", when looking up transform from frame [source] to
  frame [target]"; ``validateFrameId``; ``createConnectivityErrorString``): the exception messages;
* ``BufferCore::clear`` empties the caches but keeps the frame ids, so a frame once seen is never
  "unknown" again.

Expected values come from those files, never from the buffer under test.
"""

import numpy as np
import pytest
from rclpy.duration import Duration
from rclpy.time import Time

from xdrcdepth_ros.node.transforms import matrix_to_transform, transform_to_matrix
from xdrcdepth_ros.standins import active

tf_buffer = active("tf2_ros")
S = 1_000_000_000


def stamped(parent, child, x, t_s):
    T = np.eye(4)
    T[0, 3] = x
    return matrix_to_transform(T, parent, child, Time(nanoseconds=round(t_s * S)))


def at(t_s):
    return Time(nanoseconds=round(t_s * S))


T0 = 100.0   # GetAllItems' stamps shifted by 100 s (a lookup at time 0 would mean "latest")


def x_of(tf):
    return tf.transform.translation.x


def test_get_all_items_pruning_and_ordering():
    """cache_unittest GetAllItems, in seconds: cache 10 s; items a(0) b(10) c(5) d(3) e,f,g(8) each with its
    own parent; then h(15), i(0) (refused), j(5). Upstream keeps h b g f e j c: a, d and i are gone; of two
    samples at the earliest stamp (c, j) the earlier-inserted (c) is what a lookup at that stamp returns;
    at 8 s the newest-inserted of e, f, g (g) is used, and not interpolated with b (another parent)."""
    buf = tf_buffer.Buffer(cache_time=Duration(seconds=10))
    items = {"a": 0, "b": 10, "c": 5, "d": 3, "e": 8, "f": 8, "g": 8}
    for x, (name, t) in enumerate(items.items()):
        buf.set_transform(stamped(f"p_{name}", "base_link", float(x), T0 + t), "test")
    # the oldest (a, 0 s) and newest (b, 10 s) are exactly cache_time apart: nothing is pruned yet
    assert x_of(buf.lookup_transform("p_a", "base_link", at(T0 + 0))) == 0.0
    assert x_of(buf.lookup_transform("p_d", "base_link", at(T0 + 3))) == 3.0
    for x, (name, t) in enumerate((("h", 15), ("i", 0), ("j", 5)), start=7):
        buf.set_transform(stamped(f"p_{name}", "base_link", float(x), T0 + t), "test")
    for t in (0, 3):        # a, d (and i) were pruned
        with pytest.raises(tf_buffer.ExtrapolationException):
            buf.lookup_transform("p_a", "base_link", at(T0 + t))
    assert x_of(buf.lookup_transform("p_c", "base_link", at(T0 + 5))) == 2.0   # c, not j
    assert x_of(buf.lookup_transform("p_g", "base_link", at(T0 + 8))) == 6.0   # g, the last inserted at 8 s
    assert x_of(buf.lookup_transform("p_g", "base_link", at(T0 + 9))) == 6.0   # not interpolated towards b
    with pytest.raises(tf_buffer.ConnectivityException):    # at 9 s base_link's parent is p_g, not p_b
        buf.lookup_transform("p_b", "base_link", at(T0 + 9))
    assert x_of(buf.lookup_transform("p_h", "base_link", Time())) == 7.0     # latest


def test_reparenting_interpolation_protection():
    """cache_unittest ReparentingInterpolationProtection: between two samples with different parents the
    older one is returned as is (no interpolation)."""
    buf = tf_buffer.Buffer()
    buf.set_transform(stamped("p4", "child", 1.0, 1.0), "test")
    buf.set_transform(stamped("p5", "child", 3.0, 2.0), "test")
    for t in (1.0, 1.25, 1.5, 1.99):
        assert x_of(buf.lookup_transform("p4", "child", at(t))) == 1.0


def test_repeated_identical_sample_is_kept_once_and_equal_stamp_keeps_both():
    """cache.cpp insertData: an exact duplicate is not inserted again; a different sample with an equal
    stamp is inserted too (newer first), so a lookup at that (latest) stamp returns the newer one."""
    buf = tf_buffer.Buffer()
    for _ in range(3):
        buf.set_transform(stamped("odom", "base_link", 1.0, 5.0), "test")
    buf.set_transform(stamped("odom", "base_link", 2.0, 5.0), "test")
    assert x_of(buf.lookup_transform("odom", "base_link", at(5))) == 2.0
    assert x_of(buf.lookup_transform("odom", "base_link", Time())) == 2.0


def test_extrapolation_messages():
    """cache.cpp createExtrapolationException1/2/3 + walkToTopParent's suffix, times as %.6f seconds."""
    buf = tf_buffer.Buffer()
    buf.set_transform(stamped("odom", "base_link", 0.0, 10.0), "test")
    suffix = ", when looking up transform from frame [base_link] to frame [odom]"
    with pytest.raises(tf_buffer.ExtrapolationException) as info:
        buf.lookup_transform("odom", "base_link", at(10.1))
    assert str(info.value) == ("Lookup would require extrapolation at time 10.100000, but only time "
                               "10.000000 is in the buffer" + suffix)
    buf.set_transform(stamped("odom", "base_link", 0.0, 12.0), "test")
    with pytest.raises(tf_buffer.ExtrapolationException) as info:
        buf.lookup_transform("odom", "base_link", at(12.5))
    assert str(info.value) == ("Lookup would require extrapolation into the future.  Requested time "
                               "12.500000 but the latest data is at time 12.000000" + suffix)
    with pytest.raises(tf_buffer.ExtrapolationException) as info:
        buf.lookup_transform("odom", "base_link", at(9.25))
    assert str(info.value) == ("Lookup would require extrapolation into the past.  Requested time "
                               "9.250000 but the earliest data is at time 10.000000" + suffix)
    # the failing link is on the target side: the same text (tf2 builds it in the target walk)
    with pytest.raises(tf_buffer.ExtrapolationException) as info:
        buf.lookup_transform("base_link", "odom", at(12.5))
    assert str(info.value) == ("Lookup would require extrapolation into the future.  Requested time "
                               "12.500000 but the latest data is at time 12.000000, when looking up "
                               "transform from frame [odom] to frame [base_link]")


def test_lookup_and_connectivity_messages():
    """buffer_core.cpp validateFrameId / createConnectivityErrorString texts."""
    buf = tf_buffer.Buffer()
    buf.set_transform_static(stamped("a", "b", 0.0, 0), "test")
    buf.set_transform_static(stamped("c", "d", 0.0, 0), "test")
    with pytest.raises(tf_buffer.LookupException) as info:
        buf.lookup_transform("a", "nowhere", Time())
    assert str(info.value) == '"nowhere" passed to lookupTransform argument source_frame does not exist. '
    with pytest.raises(tf_buffer.LookupException) as info:
        buf.lookup_transform("nowhere", "a", Time())
    assert str(info.value) == '"nowhere" passed to lookupTransform argument target_frame does not exist. '
    with pytest.raises(tf_buffer.ConnectivityException) as info:
        buf.lookup_transform("b", "d", Time())
    assert str(info.value) == ("Could not find a connection between 'b' and 'd' because they are not part of "
                               "the same tree.Tf has two or more unconnected trees.")
    with pytest.raises(tf_buffer.InvalidArgumentException) as info:
        buf.lookup_transform("a", "/b", Time())
    assert str(info.value) == ('Invalid argument "/b" passed to lookupTransform argument source_frame in tf2 '
                               "frame_ids cannot start with a '/' like: ")
    with pytest.raises(tf_buffer.InvalidArgumentException) as info:
        buf.lookup_transform_full("a", Time(), "b", Time(), "")
    assert str(info.value) == ("Invalid argument passed to lookupTransform argument fixed_frame in tf2 "
                               "frame_ids cannot be empty")


def test_cleared_frames_stay_known():
    """BufferCore::clear empties every TimeCache but keeps the frame ids: a lookup of a cleared dynamic
    link is an extrapolation (at a time) or a connectivity failure (latest), never 'does not exist'."""
    buf = tf_buffer.Buffer()
    buf.set_transform(stamped("odom", "base_link", 1.0, 10.0), "test")
    buf.set_transform_static(stamped("base_link", "cam", 0.5, 0), "test")
    buf.clear()
    with pytest.raises(tf_buffer.ExtrapolationException) as info:
        buf.lookup_transform("odom", "cam", at(10))
    assert str(info.value) == ", when looking up transform from frame [cam] to frame [odom]"
    with pytest.raises(tf_buffer.ConnectivityException):
        buf.lookup_transform("odom", "cam", Time())
    assert x_of(buf.lookup_transform("base_link", "cam", Time())) == 0.5     # static links survive
    np.testing.assert_allclose(transform_to_matrix(buf.lookup_transform("cam", "cam", Time()).transform),
                               np.eye(4))


def test_a_transform_of_the_other_kind_replaces_the_frames_cache():
    """BufferCore::setTransformImpl re-allocates a frame's cache when a transform of the other kind arrives
    (ros2/geometry2#151): a dynamic transform after a static one is a dynamic link (valid at its stamp only),
    a static one after a dynamic one holds at every time."""
    buf = tf_buffer.Buffer()
    buf.set_transform_static(stamped("base_link", "radar", 1.0, 0), "test")
    buf.set_transform(stamped("base_link", "radar", 2.0, 5.0), "test")
    assert x_of(buf.lookup_transform("base_link", "radar", at(5.0))) == 2.0
    assert x_of(buf.lookup_transform("base_link", "radar", Time())) == 2.0
    for t in (1.0, 100.0):           # the static 1.0 is gone: one dynamic sample, at 5 s only
        with pytest.raises(tf_buffer.ExtrapolationException):
            buf.lookup_transform("base_link", "radar", at(t))
    buf.set_transform(stamped("base_link", "radar", 3.0, 6.0), "test")
    assert x_of(buf.lookup_transform("base_link", "radar", at(5.5))) == pytest.approx(2.5)
    buf.set_transform_static(stamped("base_link", "radar", 4.0, 0), "test")
    for t in (0.0, 5.5, 100.0):      # static now: the dynamic samples are gone, 4.0 holds at every time
        assert x_of(buf.lookup_transform("base_link", "radar", at(t))) == 4.0
    buf.clear()                       # clear empties dynamic caches only
    assert x_of(buf.lookup_transform("base_link", "radar", at(7.0))) == 4.0


def test_static_transform_after_clear_of_a_dynamic_one():
    """tf2 buffer_core_test (ros2/geometry2#150): a link set dynamic at 1 s, the buffer cleared, then the
    same transform set static is found at 2 s."""
    buf = tf_buffer.Buffer()
    assert buf.set_transform(stamped("foo", "bar", 0.0, 1.0), "authority1")
    buf.clear()
    assert buf.set_transform_static(stamped("foo", "bar", 0.0, 1.0), "authority1")
    assert x_of(buf.lookup_transform("foo", "bar", at(2.0))) == 0.0


# --- tf2_ros_py/test/test_buffer.py (rolling), case by case -------------------------------------------------

def build_transform(target, source, rclpy_time):
    """test_buffer.py build_transform: translation (42, -3.14, 0), identity rotation."""
    msg = matrix_to_transform(np.eye(4), target, source, rclpy_time)
    msg.transform.translation.x, msg.transform.translation.y = 42.0, -3.14
    return msg


def test_can_transform_valid_transform():
    """test_can_transform_valid_transform: the stored transform comes back (frames, translation)."""
    buf = tf_buffer.Buffer()
    now = Time(nanoseconds=1_700_000_000_123_456_789)
    transform = build_transform("foo", "bar", now)
    buf.set_transform(transform, "unittest")
    assert buf.can_transform("foo", "bar", now) is True
    out = buf.lookup_transform("foo", "bar", now)
    assert out.child_frame_id == transform.child_frame_id
    assert (out.transform.translation.x, out.transform.translation.y, out.transform.translation.z) == \
        (42.0, -3.14, 0.0)


@pytest.mark.parametrize("full", [False, True], ids=["lookup_transform_async", "lookup_transform_full_async"])
def test_await_transform_immediately_available(full):
    """test_await_transform(_full)_immediately_available: the coroutine finishes at its first step with a
    TransformStamped equal to the one stored."""
    buf = tf_buffer.Buffer()
    now = Time(nanoseconds=1_700_000_000_123_456_789)
    transform = build_transform("foo", "bar", now)
    buf.set_transform(transform, "unittest")
    coro = (buf.lookup_transform_full_async("foo", now, "bar", now, "foo") if full
            else buf.lookup_transform_async("foo", "bar", now))
    with pytest.raises(StopIteration) as info:
        coro.send(None)
    assert info.value.value == transform
    coro.close()


@pytest.mark.parametrize("full", [False, True], ids=["lookup_transform_async", "lookup_transform_full_async"])
def test_await_transform_delayed(full):
    """test_await_transform(_full)_delayed: the coroutine waits until set_transform makes the transform
    available, then finishes with it."""
    buf = tf_buffer.Buffer()
    now = Time(nanoseconds=1_700_000_000_123_456_789)
    transform = build_transform("foo", "bar", now)
    coro = (buf.lookup_transform_full_async("foo", now, "bar", now, "foo") if full
            else buf.lookup_transform_async("foo", "bar", now))
    coro.send(None)
    buf.set_transform(transform, "unittest")
    with pytest.raises(StopIteration) as info:
        coro.send(None)
    assert info.value.value == transform
    coro.close()


@pytest.mark.parametrize("full", [False, True], ids=["wait_for_transform_async", "wait_for_transform_full_async"])
def test_wait_for_transform_future_holds_the_transform(full):
    """tf2_ros buffer.py (rolling) wait_for_transform(_full)_async: the future's result is the looked-up
    TransformStamped, whether available at once or after set_transform; an unrelated transform leaves it
    pending; once done, its new-data callback is removed (_remove_callback, applied after the next call)."""
    now = Time(nanoseconds=1_700_000_000_123_456_789)
    transform = build_transform("foo", "bar", now)

    def wait(buf):
        return (buf.wait_for_transform_full_async("foo", now, "bar", now, "foo") if full
                else buf.wait_for_transform_async("foo", "bar", now))

    buf = tf_buffer.Buffer()
    fut = wait(buf)
    buf.set_transform(build_transform("foo", "other", now), "unittest")
    assert not fut.done()
    buf.set_transform(transform, "unittest")
    assert fut.done() and fut.result() == transform
    buf.set_transform(build_transform("foo", "other2", now), "unittest")
    assert buf._new_data_callbacks == []
    assert wait(buf).result() == transform       # already available: the short cut


def test_infinite_translation_keeps_the_rotation():
    """tf2 stores an infinite translation (it refuses NaN only) and TransformAccum (buffer_core.cpp)
    composes quaternions and vectors separately: through a common parent the rotation stays finite (here a
    90 deg yaw), only the translation is not finite."""
    buf = tf_buffer.Buffer()
    cam = stamped("base_link", "cam", 1.0, 0)
    radar = stamped("base_link", "radar", 0.0, 0)
    radar.transform.translation.x = float("inf")
    half = np.sqrt(0.5)
    radar.transform.rotation.z, radar.transform.rotation.w = half, half
    buf.set_transform_static(cam, "test")
    buf.set_transform_static(radar, "test")
    tf = buf.lookup_transform("cam", "radar", Time())
    r = tf.transform.rotation
    np.testing.assert_allclose([r.x, r.y, r.z, r.w], [0.0, 0.0, half, half], atol=1e-12)
    t = tf.transform.translation
    assert not np.all(np.isfinite([t.x, t.y, t.z]))


def rotated(parent, child, wxyz, t_s):
    """A transform with the quaternion ``wxyz`` given as is (not rebuilt from a matrix, which would fix its sign)."""
    msg = stamped(parent, child, 0.0, t_s)
    r = msg.transform.rotation
    r.w, r.x, r.y, r.z = wxyz
    return msg


def yaw_q(deg):
    half = np.radians(deg) / 2
    return (np.cos(half), 0.0, 0.0, np.sin(half))


@pytest.mark.parametrize("q0, q1, ratio, expected_deg, atol", [
    # tf2 Quaternion::slerp takes the shorter arc: q1 = -(50 deg) is the same rotation, the way from 10 deg is
    # 40 deg long, a quarter of it is 20 deg
    (yaw_q(10), tuple(-v for v in yaw_q(50)), 0.25, 20.0, 1e-12),
    # a dot product of exactly 0 (180 deg apart) is not flipped ("if (dot(q) < 0)"): yaw 0 -> 180 goes through +45
    (yaw_q(0), (0.0, 0.0, 0.0, 1.0), 0.25, 45.0, 1e-12),
    # 2 deg apart (|dot| > 0.9995 here): a quarter is 0.5 deg (normalised lerp vs slerp: < 1e-7 rad)
    (yaw_q(0), yaw_q(2), 0.25, 0.5, 1e-7),
    # tf2 accepts a squared norm within 0.01 of 1; the rotation is that of the unit quaternion (a quarter: 22.5)
    (tuple(1.004 * v for v in yaw_q(0)), tuple(1.004 * v for v in yaw_q(90)), 0.25, 22.5, 1e-12),
], ids=["shorter_arc", "half_turn_not_flipped", "small_angle", "not_quite_unit"])
def test_rotation_interpolation_by_hand(q0, q1, ratio, expected_deg, atol):
    """cache.cpp interpolate -> slerp(one.rotation_, two.rotation_, ratio); the yaw at 10 s + ratio, by hand."""
    buf = tf_buffer.Buffer()
    buf.set_transform(rotated("odom", "base_link", q0, 10.0), "test")
    buf.set_transform(rotated("odom", "base_link", q1, 11.0), "test")
    r = buf.lookup_transform("odom", "base_link", at(10.0 + ratio)).transform.rotation
    half = np.radians(expected_deg) / 2
    q = np.array([r.w, r.x, r.y, r.z])
    q *= (np.sign(r.w) if r.w != 0 else 1.0) / np.linalg.norm(q)     # tf2 returns q as slerp gives it
    np.testing.assert_allclose(q, [np.cos(half), 0, 0, np.sin(half)], atol=atol)


def test_stamps_shown_with_six_decimals_at_ros_epoch_times():
    """displayTimePoint: seconds as %.6f, here for a stamp of today's ROS time (1.7e9 s)."""
    buf = tf_buffer.Buffer()
    buf.set_transform(stamped("odom", "base_link", 0.0, 1_700_000_000.5), "test")
    with pytest.raises(tf_buffer.ExtrapolationException) as info:
        buf.lookup_transform("odom", "base_link", Time(nanoseconds=1_700_000_001_250_000_000))
    assert str(info.value).startswith("Lookup would require extrapolation at time 1700000001.250000, but only "
                                      "time 1700000000.500000 is in the buffer")


def test_insert_return_values_and_the_cache_time_boundary():
    """cache.cpp insertData: data older than ``latest - max_storage_time`` is refused (false, TF_OLD_DATA);
    data exactly that old is stored; an exact duplicate is not stored again but is no error (true). The
    stand-in's set_transform returns insertData's result (upstream logs instead)."""
    buf = tf_buffer.Buffer(cache_time=Duration(seconds=2))
    assert buf.set_transform(stamped("odom", "base_link", 3.0, 3.0), "test") is True
    assert buf.set_transform(stamped("odom", "base_link", 0.5, 0.5), "test") is False     # 0.5 < 3 - 2
    assert buf.set_transform(stamped("odom", "base_link", 1.0, 1.0), "test") is True      # 1 == 3 - 2: kept
    assert buf.set_transform(stamped("odom", "base_link", 1.0, 1.0), "test") is True      # duplicate
    assert x_of(buf.lookup_transform("odom", "base_link", at(1.0))) == 1.0
    assert x_of(buf.lookup_transform("odom", "base_link", at(2.0))) == pytest.approx(2.0)


def test_equal_stamp_and_values_but_another_parent_is_stored():
    """TransformStorage::operator== compares the parent too: the same stamp and values with another parent
    are a new sample (inserted in front), so the link's parent at that stamp becomes the new one."""
    buf = tf_buffer.Buffer()
    buf.set_transform(stamped("odom", "base_link", 1.0, 5.0), "test")
    buf.set_transform(stamped("map", "base_link", 1.0, 5.0), "test")
    assert x_of(buf.lookup_transform("map", "base_link", at(5.0))) == 1.0
    with pytest.raises(tf_buffer.ConnectivityException):
        buf.lookup_transform("odom", "base_link", at(5.0))


def test_dynamic_transforms_stamped_zero():
    """A dynamic link whose samples are all stamped 0: getLatestCommonTime gives 0 and findClosest at time 0
    returns the front of the list (the newest inserted of equal stamps); a lookup at any other time is the
    single-stamp extrapolation."""
    buf = tf_buffer.Buffer()
    for x in (1.0, 2.0, 3.0):
        buf.set_transform(stamped("odom", "base_link", x, 0), "test")
    tf = buf.lookup_transform("odom", "base_link", Time())
    assert x_of(tf) == 3.0
    assert Time.from_msg(tf.header.stamp).nanoseconds == 0
    with pytest.raises(tf_buffer.ExtrapolationException):
        buf.lookup_transform("odom", "base_link", Time(nanoseconds=1))


@pytest.mark.parametrize("target, source", [("base_link", "cam"), ("cam", "base_link"), ("cam", "radar"),
                                            ("cam", "cam"), ("base_link", "base_link"), ("odom", "odom"),
                                            ("ghost", "ghost")])
def test_stamp_of_a_latest_lookup_without_dynamic_data(target, source):
    """Time zero over static links only is time zero (getLatestCommonTime: no dynamic link, TimePoint()); a
    lookup of a frame to itself is stamped with that frame's cache's getLatestTimestamp (StaticCache: 0; a
    cleared TimeCache: 0) or the time asked for (lookupTransformImpl)."""
    buf = tf_buffer.Buffer()
    buf.set_transform_static(stamped("base_link", "cam", 1.0, 0), "test")
    buf.set_transform_static(stamped("base_link", "radar", 2.0, 0), "test")
    buf.set_transform(stamped("odom", "base_link", 0.0, 12.0), "test")
    buf.clear()
    tf = buf.lookup_transform(target, source, Time())
    assert Time.from_msg(tf.header.stamp).nanoseconds == 0


def test_self_lookup_stamp_is_the_frames_latest():
    """lookupTransformImpl, source == target at time zero: stamped with the frame's latest timestamp."""
    buf = tf_buffer.Buffer()
    buf.set_transform(stamped("odom", "base_link", 0.0, 11.0), "test")
    buf.set_transform(stamped("odom", "base_link", 0.0, 12.0), "test")
    tf = buf.lookup_transform("base_link", "base_link", Time())
    assert Time.from_msg(tf.header.stamp).nanoseconds == 12 * S


@pytest.mark.parametrize("target, source", [("cam", "radar"), ("radar", "cam")])
def test_latest_common_time_through_a_common_parent(target, source):
    """getLatestCommonTime, by hand: radar -a(14 s)-> a -(11 s)-> b -(15 s)-> odom <-(16 s)- mount <-(13 s)- cam,
    and odom -(9 s)-> world above the common parent. The common time is the oldest latest stamp of the links
    below odom on both sides, 11 s, whichever frame is the target (world's 9 s does not count)."""
    buf = tf_buffer.Buffer()
    links = [("a", "radar", 14), ("b", "a", 11), ("odom", "b", 15), ("mount", "cam", 13), ("odom", "mount", 16),
             ("world", "odom", 9)]
    for parent, child, t in links:
        buf.set_transform(stamped(parent, child, 1.0, t - 9), "test")
        buf.set_transform(stamped(parent, child, 1.0, t), "test")
    tf = buf.lookup_transform(target, source, Time())
    assert Time.from_msg(tf.header.stamp).nanoseconds == 11 * S


def test_latest_common_time_with_a_static_target_side():
    """getLatestCommonTime, by hand: radar -(14 s)-> base_link -(12 s)-> odom, cam -(static)-> base_link. The
    target's walk meets the source's chain at base_link with no dynamic link (nothing to take the minimum
    of), so the common time is radar's 14 s (base_link -> odom is above the common parent)."""
    buf = tf_buffer.Buffer()
    buf.set_transform(stamped("base_link", "radar", 1.0, 14.0), "test")
    buf.set_transform(stamped("odom", "base_link", 1.0, 12.0), "test")
    buf.set_transform_static(stamped("base_link", "cam", 1.0, 0), "test")
    tf = buf.lookup_transform("cam", "radar", Time())
    assert Time.from_msg(tf.header.stamp).nanoseconds == 14 * S
    assert x_of(tf) == 0.0


@pytest.mark.parametrize("missing", ["target_frame", "source_frame", "fixed_frame"])
def test_lookup_full_names_the_unknown_argument(missing):
    """BufferCore::lookupTransform (full) validates the three frames: the text names the argument."""
    buf = tf_buffer.Buffer()
    buf.set_transform_static(stamped("odom", "base_link", 0.0, 0), "test")
    frames = {"target_frame": "odom", "source_frame": "base_link", "fixed_frame": "odom", missing: "nowhere"}
    with pytest.raises(tf_buffer.LookupException) as info:
        buf.lookup_transform_full(frames["target_frame"], Time(), frames["source_frame"], Time(),
                                  frames["fixed_frame"])
    assert str(info.value) == f'"nowhere" passed to lookupTransform argument {missing} does not exist. '


def test_a_loop_in_the_tree_is_reported():
    """walkToTopParent / getLatestCommonTime: a tree with a loop raises LookupException("The tf tree is invalid
    because it contains a loop." + the frames)."""
    buf = tf_buffer.Buffer()
    buf.set_transform_static(stamped("a", "b", 1.0, 0), "test")
    buf.set_transform_static(stamped("b", "a", 1.0, 0), "test")
    buf.set_transform_static(stamped("c", "d", 1.0, 0), "test")
    for time in (Time(), at(1.0)):
        with pytest.raises(tf_buffer.LookupException, match=r"^The tf tree is invalid because it contains a loop\."):
            buf.lookup_transform("d", "a", time)


def test_a_long_chain_is_no_loop():
    """buffer_core.hpp MAX_GRAPH_DEPTH = 1000: only a walk deeper than that is taken for a loop, so a chain of
    150 links (each 1 m along x) is looked up end to end, 150 m, at time zero and at a time."""
    buf = tf_buffer.Buffer()
    for i in range(150):
        buf.set_transform_static(stamped(f"f{i}", f"f{i + 1}", 1.0, 0), "test")
    for time in (Time(), at(1.0)):
        assert x_of(buf.lookup_transform("f0", "f150", time)) == 150.0


def test_a_duplicate_of_an_older_equal_stamp_sample_is_not_inserted():
    """cache.cpp insertData step (3): all samples with the new stamp are compared, not just the newest, so
    re-sending a (x=1) after b (x=2), both at 5 s, stores nothing and b stays the one found at 5 s."""
    buf = tf_buffer.Buffer()
    for x in (1.0, 2.0, 1.0):
        assert buf.set_transform(stamped("odom", "base_link", x, 5.0), "test")
    assert x_of(buf.lookup_transform("odom", "base_link", at(5.0))) == 2.0


def test_default_cache_time_is_ten_seconds():
    """BUFFER_CORE_DEFAULT_CACHE_TIME = 10 s: a sample exactly 10 s older than the newest is kept; 5 ns more
    and the next insert prunes it (``stamp + cache_time < latest``)."""
    for newest_ns, kept in ((110 * S, True), (110 * S + 5, False)):
        buf = tf_buffer.Buffer()
        buf.set_transform(stamped("odom", "base_link", 1.0, 100.0), "test")
        buf.set_transform(matrix_to_transform(np.eye(4), "odom", "base_link", Time(nanoseconds=newest_ns)), "test")
        buf.set_transform(stamped("odom", "base_link", 2.0, 105.0), "test")      # prunes by the newest
        if kept:
            assert x_of(buf.lookup_transform("odom", "base_link", at(100.0))) == 1.0
        else:
            with pytest.raises(tf_buffer.ExtrapolationException):
                buf.lookup_transform("odom", "base_link", at(100.0))


def test_lookup_down_the_tree_and_self_lookup_at_a_time():
    """walkToTopParent when the source is an ancestor of the target (below the tree's root): the inverse of
    the links between them. base_link -> cam is 2 m along x, yawed 90 deg, so cam <- base_link is
    (0, 2, 0) yawed -90 deg (by hand). A frame to itself at a time is stamped with that time."""
    buf = tf_buffer.Buffer()
    buf.set_transform(stamped("odom", "base_link", 1.0, 7.0), "test")
    cam = rotated("base_link", "cam", yaw_q(90), 0)
    cam.transform.translation.x = 2.0
    buf.set_transform_static(cam, "test")
    T = transform_to_matrix(buf.lookup_transform("cam", "base_link", at(7.0)).transform)
    expected = np.eye(4)
    expected[:3, :3] = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]
    expected[:3, 3] = [0, 2, 0]
    np.testing.assert_allclose(T, expected, atol=1e-12)
    assert Time.from_msg(buf.lookup_transform("base_link", "base_link", at(3.0)).header.stamp).nanoseconds == 3 * S


def test_connectivity_message_of_a_lookup_at_a_time():
    """walkToTopParent's createConnectivityErrorString (not getLatestCommonTime's): the same text."""
    buf = tf_buffer.Buffer()
    buf.set_transform_static(stamped("a", "b", 0.0, 0), "test")
    buf.set_transform_static(stamped("c", "d", 0.0, 0), "test")
    with pytest.raises(tf_buffer.ConnectivityException) as info:
        buf.lookup_transform("b", "d", at(1.0))
    assert str(info.value) == ("Could not find a connection between 'b' and 'd' because they are not part of "
                               "the same tree.Tf has two or more unconnected trees.")
