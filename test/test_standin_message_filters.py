"""message_filters behaviour the stand-in must share with upstream (Kilted 7.1.x / rolling).

Runs against the active ``message_filters`` (upstream on a full ROS 2 install, else the stand-in).
References (ros2/message_filters):

* ``test/test_approxsync.py``: the pair, scrambled-sequence and headerless cases (ported below);
* ``src/message_filters/__init__.py`` ``ApproximateTimeSynchronizer(fs, queue_size, slop, queue_offset=False,
  allow_headerless=False, sync_arrival_time=False)`` (``queue_offset`` since 7.0.0, #154;
  ``sync_arrival_time`` since 7.0.2, #166): the stamp comes from ``Time.from_msg(header.stamp)``; with
  ``queue_offset`` an input's messages are queued under ``stamp - offset``; the arriving message takes part
  in the span test with its own stamp;
* ``Subscriber.__getattr__`` serves the rclpy subscription's attributes; ``SimpleFilter.unregisterCallback``.
"""

import random

import pytest
from builtin_interfaces.msg import Time as TimeMsg
from rclpy.clock import ROSClock
from rclpy.duration import Duration
from rclpy.time import Time
from std_msgs.msg import Header

from xdrcdepth_ros.standins import active

mf = active("message_filters")


class MockHeader:
    pass


class MockMessage:
    """test_approxsync.py MockMessage: ``header.stamp`` is whatever is given (an rclpy Time there)."""

    def __init__(self, stamp, data):
        self.header = MockHeader()
        self.header.stamp = stamp
        self.data = data


class MockHeaderlessMessage:
    def __init__(self, data):
        self.data = data


class Collector:
    def __init__(self):
        self.got = []

    def __call__(self, *msgs):
        self.got.append(msgs)


def test_approx_pairs_queue_size_one():
    """test_approx, first part: with queue_size 1, equal stamps pair up at once, for ten stamps in a row."""
    m0, m1 = mf.SimpleFilter(), mf.SimpleFilter()
    sync = mf.ApproximateTimeSynchronizer([m0, m1], 1, 0.1)
    out = Collector()
    sync.registerCallback(out)
    for t in range(10):
        out.got = []
        msg0, msg1 = MockMessage(Time(seconds=t), 33), MockMessage(Time(seconds=t), 34)
        m0.signalMessage(msg0)
        assert out.got == []
        m1.signalMessage(msg1)
        assert out.got == [(msg0, msg1)]


def test_approx_scrambled_sequences():
    """test_approx, second part: N messages per input in random order, queue N: every pair is recombined."""
    random.seed(0)
    for n in range(1, 10):
        m0, m1 = mf.SimpleFilter(), mf.SimpleFilter()
        seq0 = [MockMessage(Time(seconds=t), random.random()) for t in range(n)]
        seq1 = [MockMessage(Time(seconds=t), random.random()) for t in range(n)]
        sync = mf.ApproximateTimeSynchronizer([m0, m1], n, 0.1)
        out = Collector()
        sync.registerCallback(out)
        for msg in random.sample(seq0, n):
            m0.signalMessage(msg)
        assert out.got == []
        for msg in random.sample(seq1, n):
            m1.signalMessage(msg)
        assert set(out.got) == set(zip(seq0, seq1))


def test_approx_headerless_allowed():
    """test_approx, third part: headerless messages are stamped with ROS time on arrival
    (allow_headerless=True, slop 10 s) and pair with stamped ones in order."""
    random.seed(0)
    for n in range(1, 10):
        m0, m1 = mf.SimpleFilter(), mf.SimpleFilter()
        seq0 = [MockMessage(ROSClock().now() + Duration(seconds=t), random.random()) for t in range(n)]
        seq1 = [MockHeaderlessMessage(random.random()) for _ in range(n)]
        sync = mf.ApproximateTimeSynchronizer([m0, m1], n, 10, allow_headerless=True)
        out = Collector()
        sync.registerCallback(out)
        for msg in random.sample(seq0, n):
            m0.signalMessage(msg)
        assert out.got == []
        for msg in seq1:
            m1.signalMessage(msg)
        assert set(out.got) == set(zip(seq0, seq1))


def test_fourth_positional_argument_is_queue_offset():
    """Since 7.0.0 the 4th parameter is ``queue_offset`` (ns per input): input 1 runs 50 ms late, so its
    1.05 s message is queued as 1.00 s and pairs with input 0's 1.00 s message (slop 10 ms) when that one
    arrives."""
    m0, m1 = mf.SimpleFilter(), mf.SimpleFilter()
    sync = mf.ApproximateTimeSynchronizer([m0, m1], 5, 0.01, [0, 50_000_000])
    out = Collector()
    sync.registerCallback(out)
    b = MockMessage(Time(nanoseconds=1_050_000_000), "b")
    a = MockMessage(Time(nanoseconds=1_000_000_000), "a")
    m1.signalMessage(b)
    m0.signalMessage(a)
    assert out.got == [(a, b)]
    assert sync.allow_headerless is False


def test_queue_offset_arrival_on_an_offset_input_keeps_its_own_stamp():
    """Upstream's add(): the arriving message enters the span test with its own stamp, and must be found in
    its queue under that stamp; on an input with a non-zero offset it is queued under stamp - offset, so it
    does not match when it arrives last (it waits for the other input's next message)."""
    m0, m1 = mf.SimpleFilter(), mf.SimpleFilter()
    sync = mf.ApproximateTimeSynchronizer([m0, m1], 5, 0.01, queue_offset=[0, 50_000_000])
    out = Collector()
    sync.registerCallback(out)
    a = MockMessage(Time(nanoseconds=1_000_000_000), "a")
    b = MockMessage(Time(nanoseconds=1_050_000_000), "b")
    m0.signalMessage(a)
    m1.signalMessage(b)
    assert out.got == []
    a2 = MockMessage(Time(nanoseconds=1_001_000_000), "a2")
    m0.signalMessage(a2)
    assert out.got == [(a2, b)]


def test_sync_arrival_time_ignores_headers():
    """sync_arrival_time=True (7.0.2, #166): every message is stamped with ROS time on arrival, headers or
    not, so messages with stamps far apart pair up when they arrive together."""
    m0, m1 = mf.SimpleFilter(), mf.SimpleFilter()
    sync = mf.ApproximateTimeSynchronizer([m0, m1], 5, 10.0, sync_arrival_time=True)
    out = Collector()
    sync.registerCallback(out)
    a = MockMessage(Time(seconds=1), "a")
    b = MockHeaderlessMessage("b")
    m0.signalMessage(a)
    m1.signalMessage(b)
    assert out.got == [(a, b)]


def test_header_stamp_goes_through_time_from_msg():
    """Upstream converts ``header.stamp`` with ``rclpy.time.Time.from_msg``: a negative stamp raises
    ValueError, a stamp that is not a builtin_interfaces/Time (nor an rclpy Time) raises TypeError."""
    m0, m1 = mf.SimpleFilter(), mf.SimpleFilter()
    mf.ApproximateTimeSynchronizer([m0, m1], 5, 0.1)

    class Msg:
        def __init__(self, stamp):
            self.header = Header()
            self.header.stamp = stamp

    with pytest.raises(ValueError):
        m0.signalMessage(Msg(TimeMsg(sec=-1, nanosec=0)))

    class DuckStamp:
        sec, nanosec = 1, 0

    with pytest.raises(TypeError):
        m0.signalMessage(MockMessage(DuckStamp(), "x"))


def test_callbacks_run_in_registration_order_with_their_args():
    """SimpleFilter.registerCallback returns ``len(self.callbacks)`` as the handle (0, 1, ...) and
    signalMessage calls every callback with the message followed by its own args."""
    f = mf.SimpleFilter()
    got = []
    handles = [f.registerCallback(lambda *a: got.append(("first",) + a), "x"),
               f.registerCallback(lambda *a: got.append(("second",) + a))]
    f.signalMessage(1)
    assert handles == [0, 1]
    assert got == [("first", 1, "x"), ("second", 1)]


@pytest.mark.parametrize("source", ["cache", "approx"])
def test_headerless_message_is_dropped_with_upstreams_warning(capfd, source):
    """A message without header.stamp, allow_headerless off: upstream logs this warning on the
    ``message_filters_cache`` / ``message_filters_approx`` logger and drops the message."""
    f0, f1 = mf.SimpleFilter(), mf.SimpleFilter()
    if source == "cache":
        sink = mf.Cache(f0, 5)
    else:
        sink = mf.ApproximateTimeSynchronizer([f0, f1], 5, 0.1)
    out = Collector()
    sink.registerCallback(out)
    capfd.readouterr()
    f0.signalMessage(MockHeaderlessMessage("x"))
    err = capfd.readouterr().err
    assert f"[message_filters_{source}]" in err
    assert ('can not use message filters messages without timestamp infomation when "allow_headerless" is '
            'disabled. auto assign ROSTIME to headerless messages once enabling constructor option of '
            '"allow_headerless".') in err
    assert out.got == []


def test_subscriber_that_was_never_constructed_raises_attribute_error():
    """Stand-in only: __getattr__ of a Subscriber without its ``sub`` (not constructed, e.g. ``copy.copy``)
    raises AttributeError naming ``sub``; upstream's ``self.sub.__getattribute__(key)`` recurses until
    RecursionError there."""
    from xdrcdepth_ros.standins import message_filters as standin

    bare = standin.Subscriber.__new__(standin.Subscriber)
    for name in ("sub", "topic_name"):
        with pytest.raises(AttributeError, match="^sub$"):
            getattr(bare, name)


def test_unregister_callback():
    """SimpleFilter.unregisterCallback(conn) removes that callback; an unknown handle is ignored."""
    f = mf.SimpleFilter()
    got = []
    conn = f.registerCallback(got.append)
    f.signalMessage(1)
    f.unregisterCallback(conn)
    f.unregisterCallback(12345)
    f.signalMessage(2)
    assert got == [1]


@pytest.mark.ros
def test_subscriber_serves_the_subscription_attributes(ros_domain_id):
    """Subscriber.__getattr__ ("Serve same API as rospy.Subscriber"): topic_name, qos_profile, ... are the
    rclpy subscription's."""
    import rclpy
    from std_msgs.msg import String

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("mf_getattr_test", context=context)
        sub = mf.Subscriber(node, String, "chatter", 7)
        assert sub.topic_name == "/chatter"
        assert sub.qos_profile.depth == 7
        assert sub.msg_type is String
        assert sub.node is node and sub.getTopic() == "chatter"
        assert mf.Subscriber(node, String, "other").qos_profile.depth == 10    # upstream's default depth
        with pytest.raises(AttributeError):
            sub.no_such_attribute  # noqa: B018
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


# --- test/test_time_synchronizer.py (7.1.5+, #238: C++-consistent exact synchronisation) ---------------------

class StampedSec:
    """test_time_synchronizer.py MockMessage: ``header.stamp = builtin_interfaces/Time(sec=...)``."""

    def __init__(self, sec, data):
        self.header = MockHeader()
        self.header.stamp = TimeMsg(sec=sec)
        self.data = data


def _time_sync(queue_size=10):
    f0, f1 = mf.SimpleFilter(), mf.SimpleFilter()
    ts = mf.TimeSynchronizer([f0, f1], queue_size)
    out = Collector()
    ts.registerCallback(out)
    return f0, f1, out


def test_time_synchronizer_queue_length():
    """test_time_synchronizer_queue_lentgth: N messages per input, queue N: all pairs recombined."""
    for n in range(1, 10):
        seq0 = [StampedSec(t, 0) for t in range(n)]
        seq1 = [StampedSec(t, 0) for t in range(n)]
        f0, f1, out = _time_sync(n)
        for msg in seq0:
            f0.signalMessage(msg)
        assert out.got == []
        for msg in seq1:
            f1.signalMessage(msg)
        assert set(out.got) == set(zip(seq0, seq1))


def test_time_synchronizer_drop_old_messages():
    """test_time_synchronizer_drop_old_messages: once the 1 s pair is emitted, the 0 s message waiting on
    input 0 is dropped, so the late 0 s message on input 1 matches nothing."""
    f0, f1, out = _time_sync()
    x0, x1, y0, y1 = StampedSec(0, 1), StampedSec(0, 2), StampedSec(1, 1), StampedSec(1, 2)
    f0.signalMessage(x0)
    f1.signalMessage(y1)
    assert out.got == []
    f0.signalMessage(y0)
    assert out.got == [(y0, y1)]
    f1.signalMessage(x1)
    assert out.got == [(y0, y1)]


def test_time_synchronizer_queue_size_evicts_the_oldest_stamp():
    """``while len(my_queue) > queue_size: del my_queue[min(my_queue)]``: with queue_size 1, input 0's 0 s
    message is evicted by its 1 s one, so input 1's 0 s message matches nothing and its 1 s one matches."""
    f0, f1, out = _time_sync(1)
    x0, x1, y0, y1 = StampedSec(0, 1), StampedSec(0, 2), StampedSec(1, 1), StampedSec(1, 2)
    f0.signalMessage(x0)
    f0.signalMessage(y0)
    f1.signalMessage(x1)
    assert out.got == []
    f1.signalMessage(y1)
    assert out.got == [(y0, y1)]


def test_time_synchronizer_shifted_time_signalling():
    """test_time_synchronizer_shifted_time_signalling: pairs come out oldest first, one per arrival."""
    f0, f1, out = _time_sync()
    x0, x1, y0, y1 = StampedSec(0, 1), StampedSec(0, 2), StampedSec(1, 1), StampedSec(1, 2)
    f0.signalMessage(x0)
    f0.signalMessage(y0)
    assert out.got == []
    f1.signalMessage(x1)
    assert out.got == [(x0, x1)]
    f1.signalMessage(y1)
    assert out.got == [(x0, x1), (y0, y1)]


# --- test/test_message_filters_cache.py -------------------------------------------------------------------

class AnonymMsg:
    class AnonymHeader:
        def __init__(self):
            self.stamp = Time()

    def __init__(self, stamp=None):
        self.header = AnonymMsg.AnonymHeader()
        if stamp is not None:
            self.header.stamp = stamp


def test_cache_all_funcs():
    """test_all_funcs: intervals are inclusive, after/before pick the nearest, the ring drops the oldest."""
    cache = mf.Cache(mf.SimpleFilter(), 5)
    for sec in range(5):
        cache.add(AnonymMsg(Time(seconds=sec)))
    assert len(cache.getInterval(Time(seconds=2.5), Time(seconds=3.5))) == 1
    assert len(cache.getInterval(Time(seconds=2), Time(seconds=3))) == 2
    assert len(cache.getInterval(Time(), Time(seconds=4))) == 5
    assert cache.getElemAfterTime(Time()).header.stamp == Time()
    assert cache.getElemBeforeTime(Time(seconds=3.5)).header.stamp == Time(seconds=3)
    latest = cache.getLatestTime() if hasattr(cache, "getLatestTime") else cache.getLastestTime()
    assert latest == Time(seconds=4)
    assert cache.getOldestTime() == Time()
    cache.add(AnonymMsg(Time(seconds=5)))
    assert cache.getOldestTime() == Time(seconds=1)


def test_cache_headerless():
    """test_headerless: dropped unless allow_headerless, which stamps with ROS time on arrival."""
    from rclpy.clock import ClockType
    from std_msgs.msg import String

    source = mf.SimpleFilter()
    msg = String()
    cache = mf.Cache(source, 5, allow_headerless=False)
    cache.add(msg)
    assert cache.getElemAfterTime(Time(clock_type=ClockType.ROS_TIME)) is None
    cache = mf.Cache(source, 5, allow_headerless=True)
    cache.add(msg)
    assert cache.getElemAfterTime(Time(clock_type=ClockType.ROS_TIME)) is msg
    now = ROSClock().now()
    assert cache.getElemAfterTime(now) is None
    cache.add(msg)
    assert cache.getInterval(Time(clock_type=ClockType.ROS_TIME), now) == [msg]
    assert cache.getInterval(Time(clock_type=ClockType.ROS_TIME), now + Duration(seconds=2)) == [msg, msg]


def test_cache_passes_messages_on():
    """Cache.add signals every accepted message to its own callbacks (a filter in a chain)."""
    source = mf.SimpleFilter()
    cache = mf.Cache(source, 2)
    got = []
    cache.registerCallback(got.append)
    first = AnonymMsg(Time(seconds=1))
    source.signalMessage(first)
    assert got == [first]


def test_approximate_synchronizer_is_a_time_synchronizer():
    """Upstream: class ApproximateTimeSynchronizer(TimeSynchronizer)."""
    assert issubclass(mf.ApproximateTimeSynchronizer, mf.TimeSynchronizer)
    assert issubclass(mf.TimeSynchronizer, mf.SimpleFilter) and issubclass(mf.Cache, mf.SimpleFilter)


def _cache_of(*secs, size=5):
    """A Cache of size ``size`` fed messages stamped ``secs`` (in that arrival order), and the messages."""
    cache = mf.Cache(mf.SimpleFilter(), size)
    msgs = [AnonymMsg(Time(seconds=sec)) for sec in secs]
    for msg in msgs:
        cache.add(msg)
    return cache, msgs


def test_cache_defaults_keep_one_message_and_drop_headerless():
    """Cache(f, cache_size=1, allow_headerless=False): the last stamped message only; a headerless one is
    dropped."""
    from std_msgs.msg import String

    source = mf.SimpleFilter()
    cache = mf.Cache(source)
    first, second = AnonymMsg(Time(seconds=1)), AnonymMsg(Time(seconds=2))
    for msg in (first, second, String()):
        source.signalMessage(msg)
    assert cache.getInterval(Time(), Time(seconds=10)) == [second]
    assert cache.getOldestTime() == Time(seconds=2)


def test_cache_ring_drops_message_and_stamp_together():
    """Beyond cache_size the oldest message goes with its stamp: the rest still pair up."""
    cache, (m1, m2, m3) = _cache_of(1, 2, 3, size=2)
    assert cache.getInterval(Time(), Time(seconds=10)) == [m2, m3]
    assert cache.getElemAfterTime(Time()) is m2
    assert cache.getElemBeforeTime(Time(seconds=2)) is m2


def test_cache_queries_include_their_bounds_and_answer_none_when_empty():
    """getInterval(t, t) is allowed (``assert from_stamp <= to_stamp``) and returns the message at t;
    getElemBeforeTime counts an equal stamp ("before or equal") and is None before every message; an
    empty cache has no latest or oldest time and no last message."""
    cache, (m1, m2, m3) = _cache_of(1, 2, 3)
    assert cache.getInterval(Time(seconds=2), Time(seconds=2)) == [m2]
    assert cache.getElemBeforeTime(Time(seconds=2)) is m2
    assert cache.getElemBeforeTime(Time(seconds=0.5)) is None
    empty = mf.Cache(mf.SimpleFilter(), 5)
    latest = empty.getLatestTime() if hasattr(empty, "getLatestTime") else empty.getLastestTime()
    assert latest is None and empty.getOldestTime() is None and empty.getLast() is None


def test_cache_get_last_is_the_first_message_at_or_after_the_latest_arrivals_stamp():
    """getLast() = getElemAfterTime(latest time), the latest time being the last *arrival's* stamp: in
    order that is the last message; after arrivals stamped 1, 3, 2 s it is the 3 s message (the first one
    in arrival order stamped >= 2 s)."""
    cache, (m1, m2, m3) = _cache_of(1, 2, 3)
    assert cache.getLast() is m3
    cache, (n1, n3, n2) = _cache_of(1, 3, 2)
    assert cache.getLast() is n3
