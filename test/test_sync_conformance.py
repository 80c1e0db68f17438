"""Synchroniser conformance: one suite, run against every implementation present.

Our stand-in (``xdrcdepth_ros.standins.message_filters``) always; ``message_filters`` too on a real ROS 2
install. Messages are fed straight into ``SimpleFilter`` inputs (no DDS), and every expected match below
is worked out by hand from the documented semantics (xdrcdepth_ros/standins/message_filters.py
docstring). The Subscriber tests check the kwargs fallback the node uses (message_filters 7.1.5 took no
kwargs).
"""

import pytest
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from xdrcdepth_ros.standins import active
from xdrcdepth_ros.standins import message_filters as standin

IMPLEMENTATIONS = [pytest.param((standin.SimpleFilter, standin.ApproximateTimeSynchronizer),
                                id="xdrcdepth_ros.standins.message_filters")]
try:
    import message_filters

    IMPLEMENTATIONS.append(pytest.param(
        (message_filters.SimpleFilter, message_filters.ApproximateTimeSynchronizer),
        id="message_filters"))
except ImportError:
    pass


class Stamped:
    """A minimal stamped message: a name to recognise it and a std_msgs Header."""

    def __init__(self, name: str, t: float):
        self.name = name
        ns = round(t * 1e9)
        self.header = Header(stamp=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000))


class Rig:
    """n filter inputs wired to one synchroniser; ``out`` collects emitted tuples as name tuples."""

    def __init__(self, impl, n: int, queue_size: int, slop: float, **kwargs):
        simple_filter, synchronizer = impl
        self.inputs = [simple_filter() for _ in range(n)]
        self.sync = synchronizer(self.inputs, queue_size, slop, **kwargs)
        self.out = []
        self.sync.registerCallback(lambda *msgs: self.out.append(tuple(m.name for m in msgs)))

    def feed(self, index: int, name: str, t: float):
        self.inputs[index].signalMessage(Stamped(name, t))


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request):
    return request.param


def test_local_implementation_is_active_without_message_filters():
    try:
        import message_filters  # noqa: F401
        expected = "message_filters"
    except ImportError:
        expected = "xdrcdepth_ros.standins.message_filters"
    assert active("message_filters").__name__ == expected


def test_exact_stamps_match_in_input_order(impl):
    rig = Rig(impl, 3, queue_size=5, slop=0.05)
    rig.feed(2, "c", 1.0)
    rig.feed(0, "a", 1.0)
    assert rig.out == []
    rig.feed(1, "b", 1.0)
    assert rig.out == [("a", "b", "c")]


def test_slop_bound_candidate_inclusive_span_exclusive(impl):
    rig = Rig(impl, 2, queue_size=5, slop=0.1)
    rig.feed(0, "a", 1.0)
    rig.feed(1, "b_at_slop", 1.1)          # |dt| == slop: a candidate, but span 0.1 is not < 0.1
    assert rig.out == []
    rig.feed(1, "b_inside", 1.0999)
    assert rig.out == [("a", "b_inside")]


def test_nearest_candidate_wins_and_rest_stays_queued(impl):
    rig = Rig(impl, 2, queue_size=5, slop=0.1)
    rig.feed(0, "a100", 1.00)
    rig.feed(0, "a104", 1.04)
    rig.feed(1, "b103", 1.03)              # |dt| 0.01 to a104, 0.03 to a100
    assert rig.out == [("a104", "b103")]
    rig.feed(1, "b099", 0.99)              # a100 is still queued
    assert rig.out == [("a104", "b103"), ("a100", "b099")]


def test_matched_messages_are_consumed(impl):
    rig = Rig(impl, 2, queue_size=5, slop=0.05)
    rig.feed(0, "a", 2.0)
    rig.feed(1, "b1", 2.0)
    rig.feed(1, "b2", 2.0)                 # a was consumed by the first match
    assert rig.out == [("a", "b1")]
    rig.feed(0, "a2", 2.01)                # b2 still waits (|dt| 0.01)
    assert rig.out == [("a", "b1"), ("a2", "b2")]


def test_queue_size_evicts_oldest_stamp(impl):
    rig = Rig(impl, 2, queue_size=2, slop=0.05)
    for name, t in (("a1", 1.0), ("a2", 2.0), ("a3", 3.0)):
        rig.feed(0, name, t)
    rig.feed(1, "b1", 1.0)                 # a1 was evicted
    assert rig.out == []
    rig.feed(1, "b2", 2.0)
    assert rig.out == [("a2", "b2")]


def test_equal_stamp_overwrites(impl):
    rig = Rig(impl, 2, queue_size=5, slop=0.05)
    rig.feed(0, "old", 5.0)
    rig.feed(0, "new", 5.0)
    rig.feed(1, "b", 5.0)
    assert rig.out == [("new", "b")]


def test_three_inputs_need_total_span_below_slop(impl):
    rig = Rig(impl, 3, queue_size=5, slop=0.1)
    rig.feed(0, "a", 0.95)
    rig.feed(1, "b", 1.05)
    rig.feed(2, "c", 1.00)                 # each within 0.05 of c, but span 0.10 is not < 0.1
    assert rig.out == []
    rig.feed(2, "c2", 1.04)                # a at |dt| 0.09, b at 0.01: span 1.05 - 0.95 still 0.10
    assert rig.out == []
    rig.feed(0, "a2", 1.01)                # b at 0.04; c at 0.01 before c2 at 0.03 -> span 0.05
    assert rig.out == [("a2", "b", "c")]


def test_first_combination_in_product_order_not_tightest(impl):
    rig = Rig(impl, 3, queue_size=5, slop=0.1)
    rig.feed(0, "a101", 1.01)
    rig.feed(0, "a095", 0.95)
    rig.feed(1, "b094", 0.94)
    # no match yet: a101/b094 are each within 0.1 of the other but there is no c
    rig.feed(2, "c100", 1.00)
    # candidates for c100: a sorted by |dt| (a101 0.01, a095 0.05), b (b094 0.06).
    # product order tries (a101, b094) first: span 1.01 - 0.94 = 0.07 < 0.1 -> emitted, although
    # (a095, b094) spans only 0.06.
    assert rig.out == [("a101", "b094", "c100")]


def test_a_later_combination_is_tried_when_the_first_spans_too_much(impl):
    rig = Rig(impl, 3, queue_size=5, slop=0.1)
    rig.feed(0, "a095", 0.95)
    rig.feed(0, "a106", 1.06)
    rig.feed(1, "b108", 1.08)              # no c yet
    rig.feed(2, "c100", 1.00)
    # candidates for c100: a095 (0.05) before a106 (0.06), b108 (0.08). (a095, b108) spans 0.13: skipped;
    # (a106, b108) spans 0.08 < 0.1 -> emitted
    assert rig.out == [("a106", "b108", "c100")]


def test_queue_offset_candidates_are_within_slop_of_the_offset_key_inclusive(impl):
    rig = Rig(impl, 2, queue_size=5, slop=0.1, queue_offset=[0, 50_000_000])
    rig.feed(0, "a115", 1.15)
    rig.feed(1, "b115", 1.15)              # key 1.10; it enters the span test with 1.15, not queued: nothing
    assert rig.out == []
    rig.feed(1, "b110", 1.10)              # key 1.05: a115 at |dt| 0.10 == slop is a candidate; the
    # combination (1.15, own 1.10) spans 0.05 and input 1 holds key 1.10 (b115) -> (a115, b115) emitted
    assert rig.out == [("a115", "b115")]


def test_arrival_evicted_by_its_own_queue_does_not_match(impl):
    rig = Rig(impl, 2, queue_size=1, slop=0.05)
    rig.feed(1, "b1", 1.0)
    rig.feed(0, "a2", 2.0)
    rig.feed(0, "a1", 1.0)                 # queue 0 = {2.0, 1.0} -> evicts 1.0, the new message
    assert rig.out == []
    rig.feed(1, "b2", 2.0)
    assert rig.out == [("a2", "b2")]


def test_headerless_message_is_dropped_without_error(impl):
    rig = Rig(impl, 2, queue_size=5, slop=0.05)

    class NoHeader:
        name = "x"

    rig.inputs[0].signalMessage(NoHeader())
    rig.feed(1, "b", 1.0)
    rig.feed(0, "a", 1.0)
    assert rig.out == [("a", "b")]


class _Subscriber715(standin.SimpleFilter):
    """message_filters 7.1.5's Subscriber signature (ros2/message_filters#226): no **kwargs."""

    def __init__(self, node, msg_type, topic, qos_profile=10):
        super().__init__()
        self.node, self.topic = node, topic
        self.sub = node.create_subscription(msg_type, topic, self.callback, qos_profile)

    def callback(self, msg):
        self.signalMessage(msg)


class _Filters715:
    Subscriber = _Subscriber715


@pytest.mark.ros
@pytest.mark.parametrize("filters", [standin, _Filters715], ids=["kwargs-forwarded", "7.1.5-no-kwargs"])
def test_subscriber_kwargs_reach_create_subscription(ros_domain_id, filters):
    """message_filters.Subscriber forwards kwargs to create_subscription (7.1.6+, #247/#251); where it
    takes none (7.1.5) the node's filter_subscriber still applies them: QoS override parameters are
    declared and the subscription feeds the filter."""
    import rclpy
    from rclpy.qos_overriding_options import QoSOverridingOptions
    from std_msgs.msg import String

    from xdrcdepth_ros.node.input_qos import filter_subscriber

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("mf_kwargs_test", context=context)
        f = filter_subscriber(node, String, "chatter", 7, filters=filters,
                              qos_overriding_options=QoSOverridingOptions.with_default_policies())
        assert node.has_parameter("qos_overrides./chatter.subscription.reliability")
        assert f.sub.qos_profile.depth == 7 and len(list(node.subscriptions)) == 1
        got = []
        f.registerCallback(got.append)
        f.sub.callback(String(data="x"))
        assert [m.data for m in got] == ["x"]
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
