"""Stand-in for ``message_filters`` (ROS 2 Python): ``SimpleFilter``, ``Subscriber`` and
``ApproximateTimeSynchronizer`` with the upstream API.

``Subscriber(node, msg_type, topic, qos_profile=10, **kwargs)`` forwards ``kwargs`` (``callback_group``,
``event_callbacks``, ``qos_overriding_options``, ``raw``, ...) to ``node.create_subscription`` as
message_filters 7.1.6 and later do (ros2/message_filters#247, #251); ``ApproximateTimeSynchronizer(fs,
queue_size, slop, allow_headerless=False)`` with ``registerCallback(cb)``; ``SimpleFilter`` is any input
that calls ``signalMessage(msg)``.

``message_filters`` is not installable from PyPI; :func:`xdrcdepth_ros.standins.active` picks the real
one when it is importable. The synchroniser follows the semantics of the Python
``message_filters.ApproximateTimeSynchronizer`` (ros2/message_filters ``src/message_filters/__init__.py``;
../shared/reference/ros2-conventions.md §13), not the C++ ApproximateTime policy:

* every input keeps a dict ``{stamp_ns: msg}``; an equal stamp overwrites, and beyond ``queue_size`` the
  oldest stamp is evicted (which may be the message that just arrived);
* on each arrival, the other inputs' stamps within ``slop`` of the new stamp (``|dt| <= slop``) are the
  candidates, each input's sorted by ``|dt|`` (stable); no candidate in some input -> nothing happens;
* combinations are tried in ``itertools.product`` order; the first with ``max - min < slop`` whose stamps
  are all still queued is emitted (callback args in input order, called inside the lock) and removed;
* messages without ``header.stamp`` are dropped with a warning unless ``allow_headerless``, which stamps
  them with ``ROSClock().now()``.

There is no drop callback (as upstream): the node counts unmatched inputs itself.
``test/test_sync_conformance.py`` runs one suite against both implementations when both exist.
"""

from __future__ import annotations

import itertools
import threading

import rclpy.logging
from rclpy.clock import ROSClock


class SimpleFilter:
    """A message source others connect to with ``registerCallback`` (message_filters.SimpleFilter)."""

    def __init__(self):
        self.callbacks = {}

    def registerCallback(self, cb, *args) -> int:  # noqa: N802 (message_filters API)
        conn = len(self.callbacks)
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msg) -> None:  # noqa: N802 (message_filters API)
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))


class Subscriber(SimpleFilter):
    """A ROS subscription as a filter input; kwargs go to ``create_subscription`` (default QoS depth 10)."""

    def __init__(self, node, msg_type, topic: str, qos_profile=10, **kwargs):
        super().__init__()
        self.node = node
        self.topic = topic
        self.sub = node.create_subscription(msg_type, topic, self.callback, qos_profile, **kwargs)

    def callback(self, msg) -> None:
        self.signalMessage(msg)

    def getTopic(self) -> str:  # noqa: N802 (message_filters API)
        return self.topic


def _stamp_ns(msg) -> int | None:
    header = getattr(msg, "header", None)
    stamp = getattr(header, "stamp", None)
    if stamp is None:
        return None
    if hasattr(stamp, "nanoseconds"):  # an rclpy.time.Time
        return stamp.nanoseconds
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class ApproximateTimeSynchronizer(SimpleFilter):
    """Emits one message per input whose stamps span less than ``slop`` seconds (semantics above)."""

    def __init__(self, fs, queue_size: int, slop: float, allow_headerless: bool = False):
        super().__init__()
        self.queue_size = queue_size
        self.slop_ns = int(slop * 1e9)
        self.allow_headerless = allow_headerless
        self.lock = threading.Lock()
        self.queues: list[dict[int, object]] = [{} for _ in fs]
        self.input_connections = [f.registerCallback(self.add, q, i)
                                  for i, (f, q) in enumerate(zip(fs, self.queues))]

    def add(self, msg, my_queue: dict, my_queue_index: int | None = None) -> None:
        stamp = _stamp_ns(msg)
        if stamp is None:
            if not self.allow_headerless:
                rclpy.logging.get_logger("xdrcdepth_sync").warning(
                    "dropping a message without header.stamp (allow_headerless is False)")
                return
            stamp = ROSClock().now().nanoseconds
        with self.lock:
            my_queue[stamp] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
            candidates = []
            for i, queue in enumerate(self.queues):
                if i == my_queue_index:
                    continue
                near = sorted((s for s in queue if abs(s - stamp) <= self.slop_ns),
                              key=lambda s: abs(s - stamp))
                if not near:
                    return
                candidates.append(near)
            for combination in itertools.product(*candidates):
                stamps = list(combination)
                if my_queue_index is not None:
                    stamps.insert(my_queue_index, stamp)
                if max(stamps) - min(stamps) >= self.slop_ns:
                    continue
                if any(s not in q for q, s in zip(self.queues, stamps)):
                    continue
                self.signalMessage(*[q[s] for q, s in zip(self.queues, stamps)])
                for q, s in zip(self.queues, stamps):
                    del q[s]
                break
