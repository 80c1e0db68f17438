"""Input subscriptions that let DDS repair samples from reliable publishers and connect to best-effort ones.

Why not ``qos_profile_sensor_data`` (best effort) for every input, as REP 2003 suggests? Measured here
(pip-only Kilted, Fast DDS, two processes on one host, 150 messages at 10 Hz): a best-effort reader

- receives no rgb8 image larger than ~0.5 MB from a best-effort publisher (900x1600 and 450x800 never
  arrive, 200x400 always do); from a reliable one, 16-17 of 30 450x800 frames were synchronised, and
- loses *small* samples too while its process receives a large reliable image stream: 16-129 of 150
  ``camera_info`` messages arrived best effort next to 450x800 images, 149-150 of 150 reliable. A frame
  whose ``camera_info`` or radar cloud is lost cannot be synchronised, so the depth output went with it.

So every input subscribes with reliability ``BEST_AVAILABLE`` (rclpy since Iron): RELIABLE when every
publisher present at start-up is reliable (or there is none yet), BEST_EFFORT when one is not. A
best-effort publisher that appears later would be incompatible with the reliable reader and deliver nothing;
its incompatible-QoS event re-creates the subscription best effort (once, logged). This mirrors
image_pipeline's choice to follow the publisher's QoS (PR #814); the event-driven switch is ours. An
explicit ``qos_overrides./<topic>.subscription.reliability`` is applied by rclpy and kept as set; an
incompatible publisher is then only reported. An override rclpy or DDS cannot apply (``reliability:=bogus``,
``depth:=-5``) is a :class:`~xdrcdepth_ros.node.params.ParameterError`: one line, exit code 2.
"""

from __future__ import annotations

import copy

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import DurabilityPolicy, InvalidQoSProfileException, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.subscription import RCLError

from xdrcdepth_core.cli_args import one_line
from xdrcdepth_ros.node.params import ParameterError
from xdrcdepth_ros.standins import active

message_filters = active("message_filters")



def subscribe_input(node, msg_type, topic: str, depth: int, large_samples: bool = False):
    """A ``message_filters.Subscriber`` on ``topic``: keep last ``depth``, volatile, BEST_AVAILABLE (overridable by
    parameters, see above).

    The node passes its synchroniser's ``queue_size`` as ``depth``: with keep-last 5, a reliable reader
    still lost 5-9 of 30 ``camera_info`` and radar messages (next to 450x800 images at 5 Hz, while the node
    was busy inferring) before its executor took them; with 10, 0-1 frames of 30 were lost (samples the
    transport dropped that the writer's heartbeat came too late to repair). ``large_samples`` (raw images) adds
    to the log line, when the subscription falls back to best effort, that samples above ~0.5 MB will not
    arrive.
    """
    # rclpy writes the parameter overrides into the profile it is given
    qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_AVAILABLE,
                     durability=DurabilityPolicy.VOLATILE)
    state = {"filter": None, "adapted": False}

    def on_incompatible(event) -> None:
        f = state["filter"]
        name = f.sub.topic_name
        if state["adapted"] or qos.reliability != ReliabilityPolicy.BEST_AVAILABLE:
            node.get_logger().error(
                f"{name}: a publisher offers QoS incompatible with this subscription "
                f"({event.last_policy_kind.name}); it delivers nothing. Check "
                f"qos_overrides.{name}.subscription.*")
            return
        state["adapted"] = True
        best_effort = copy.copy(qos)
        best_effort.reliability = ReliabilityPolicy.BEST_EFFORT
        old, f.sub = f.sub, node.create_subscription(msg_type, name, f.callback, best_effort)
        node.destroy_subscription(old)
        hint = (" Raw images above ~0.5 MB are lost best effort in Fast DDS: publish them reliably or use "
                "image_transport 'compressed'." if large_samples else "")
        node.get_logger().warning(
            f"{name}: a best-effort publisher appeared; subscribed best effort from now on (samples may be "
            f"lost next to large images; reliable publishers avoid that).{hint}")

    try:
        state["filter"] = filter_subscriber(
            node, msg_type, topic, qos,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=on_incompatible))
    except (RuntimeError, RCLError, InvalidQoSProfileException) as exc:
        # rclpy: RuntimeError for an unknown policy value (reliability:=bogus), RCLError for a depth DDS
        # cannot take (depth:=-5); either way a bad start-up parameter (one line, exit code 2)
        raise ParameterError(f"qos_overrides.{node.resolve_topic_name(topic)}.subscription: "
                             f"{one_line(exc)}") from exc
    return state["filter"]


def filter_subscriber(node, msg_type, topic: str, qos_profile, filters=None, **kwargs):
    """``message_filters.Subscriber(node, msg_type, topic, qos_profile=..., **kwargs)``, also where the
    installed message_filters takes no ``kwargs``.

    message_filters forwards ``kwargs`` to ``create_subscription`` (7.1.6+, ros2/message_filters#247;
    named parameters in #251), but Kilted's 7.1.5 (ros2/message_filters#226) rejected them with a
    ``TypeError``. Then the filter is built with ``qos_profile`` only and its subscription is replaced by
    one made with every argument, calling the filter's ``callback`` as its own would. ``filters``: the
    message_filters module (default: the active one).
    """
    filters = filters or message_filters
    try:
        return filters.Subscriber(node, msg_type, topic, qos_profile=qos_profile, **kwargs)
    except TypeError as exc:
        if not kwargs or "argument" not in str(exc):
            raise
    f = filters.Subscriber(node, msg_type, topic, qos_profile=qos_profile)
    node.destroy_subscription(f.sub)
    f.sub = node.create_subscription(msg_type, topic, f.callback, qos_profile, **kwargs)
    node.get_logger().info(f"{f.sub.topic_name}: this message_filters.Subscriber takes no "
                           f"{', '.join(sorted(kwargs))}; subscribed with them directly", once=True)
    return f
