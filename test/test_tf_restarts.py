"""The depth node's TF listener over DDS (``xdrcdepth_ros.node.tf_restarts``): dynamic transforms stamped more
than 1 s before the newest one of their child frame (a bag played again without /clock) clear the buffer's
dynamic transforms before they are stored; smaller steps back, other frames, static transforms and transforms
tf2 refuses leave it alone. Expected values: tf2's storage rules (a transform older than the cache is refused)."""

import numpy as np
import pytest
import rclpy
from rclpy.duration import Duration
from rclpy.time import Time

from test_tf_buffer import spinner
from xdrcdepth_core.data.geometry import transform_from_pose
from xdrcdepth_ros.node.tf_restarts import TransformListenerClearingOnRestart, tf2_ros
from xdrcdepth_ros.node.transforms import matrix_to_transform
from xdrcdepth_ros.standins.tf2_ros import TF_QOS, TF_STATIC_QOS

S = 1_000_000_000


def moved(x, parent, child, t_ns):
    return matrix_to_transform(transform_from_pose([1.0, 0.0, 0.0, 0.0], [x, 0.0, 0.0]), parent, child,
                               Time(nanoseconds=t_ns))


@pytest.mark.ros
def test_tf_stamps_that_start_over_clear_the_dynamic_transforms_first(ros_domain_id):
    from tf2_msgs.msg import TFMessage

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        listener_node = rclpy.create_node("tf_restart_listener_test", context=context)
        talker = rclpy.create_node("tf_restart_talker_test", context=context)
        buf = tf2_ros.Buffer(cache_time=Duration(seconds=10.0))
        restarts = []
        TransformListenerClearingOnRestart(buf, listener_node, lambda *args: restarts.append(args))
        tf_pub = talker.create_publisher(TFMessage, "/tf", TF_QOS)
        static_pub = talker.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
        executor, spin_until = spinner(context, listener_node, talker)

        def stored(t_ns, parent="odom", child="base_link"):
            return buf.can_transform(parent, child, Time(nanoseconds=t_ns))

        def send(*transforms):
            tf_pub.publish(TFMessage(transforms=list(transforms)))

        static_pub.publish(TFMessage(transforms=[moved(1.0, "base_link", "cam", 0)]))
        assert spin_until(lambda: tf_pub.get_subscription_count() > 0 and buf.can_transform("base_link", "cam", Time()))
        send(moved(0.0, "odom", "base_link", 100 * S), moved(0.0, "map", "odom", 100 * S))
        send(moved(1.0, "odom", "base_link", 105 * S))
        assert spin_until(lambda: stored(105 * S))
        # 0.5 s back: out of order, not a restart (stored beside the rest, as tf2 does)
        send(moved(0.5, "odom", "base_link", round(104.5 * S)))
        assert spin_until(lambda: buf.lookup_transform("odom", "base_link", Time(nanoseconds=round(104.5 * S)))
                          .transform.translation.x == 0.5)
        # transforms tf2 refuses (NaN, a frame its own parent, a stamp before 1970) restart nothing
        nan = moved(0.0, "odom", "base_link", 1 * S)
        nan.transform.translation.x = float("nan")
        before_1970 = moved(0.0, "odom", "base_link", 0)
        before_1970.header.stamp.sec = -5
        send(nan, moved(0.0, "base_link", "base_link", 1 * S), before_1970)
        # a frame whose stamps never went back: its own 1 s steps are not a restart of another frame's
        send(moved(2.0, "odom", "base_link", 106 * S))
        assert spin_until(lambda: stored(106 * S))
        assert restarts == [] and stored(100 * S) and stored(100 * S, "map", "odom")
        # 16 s back (tf2 would refuse it: older than its 10 s cache reaches back from 106 s): the loop starts over
        send(moved(3.0, "/odom", "/base_link", 90 * S))
        assert spin_until(lambda: restarts != [])
        assert restarts == [("base_link", 16.0)]
        assert spin_until(lambda: stored(90 * S))
        assert not stored(106 * S) and not stored(100 * S, "map", "odom")   # every dynamic transform went
        assert buf.can_transform("base_link", "cam", Time())                 # static ones stay
        np.testing.assert_allclose(
            buf.lookup_transform("odom", "base_link", Time(nanoseconds=90 * S)).transform.translation.x, 3.0)
        executor.shutdown()
    finally:
        rclpy.shutdown(context=context)
