"""Stand-in for ``message_filters`` (ROS 2 Python): ``SimpleFilter``, ``Subscriber``, ``Cache``,
``TimeSynchronizer`` and ``ApproximateTimeSynchronizer`` with the upstream API.

Follows ros2/message_filters ``src/message_filters/__init__.py`` of Kilted (7.1.x; 7.1.6 and later for the
Subscriber kwargs, ros2/message_filters#247, #251) and rolling; the reference is upstream's tests
(``test/test_approxsync.py``, ``test_time_synchronizer.py``, ``test_message_filters_cache.py``), ported in
test/test_standin_message_filters.py; test/test_sync_conformance.py adds hand-worked cases. The
synchroniser is the Python ``ApproximateTimeSynchronizer``, not the C++ ApproximateTime policy
(../shared/reference/ros2-conventions.md §13):

* ``ApproximateTimeSynchronizer(fs, queue_size, slop, queue_offset=False, allow_headerless=False,
  sync_arrival_time=False)``: the 4th positional parameter is ``queue_offset`` (since 7.0.0, #154);
* a message's stamp is ``Time.from_msg(header.stamp)`` (a negative stamp raises ``ValueError``, a stamp
  that is neither a ``builtin_interfaces/Time`` nor an rclpy Time ``TypeError``); without ``header.stamp``
  it is dropped with a warning unless ``allow_headerless``, which stamps it with ``ROSClock().now()``;
  ``sync_arrival_time`` (7.0.2, #166) stamps every message so;
* every input keeps a dict ``{stamp_ns - queue_offset[i]: msg}``; an equal key overwrites, and beyond
  ``queue_size`` the oldest key is evicted (which may be the message that just arrived);
* on each arrival, the other inputs' keys within ``slop`` of the new key (``|dt| <= slop``) are the
  candidates, each input's sorted by ``|dt|`` (stable); no candidate in some input -> nothing happens;
* combinations are tried in ``itertools.product`` order, the arriving message taking part with its own
  (un-offset) stamp; the first with ``max - min < slop`` whose stamps are all still queued is emitted
  (callback args in input order, called inside the lock) and removed;
* ``TimeSynchronizer``: exact stamps; per arrival at most the oldest common stamp is emitted, and older
  messages are dropped from every queue (7.1.5, #238). ``Cache``: a ring of the last ``cache_size``
  messages in arrival order; ``Subscriber`` serves the rclpy subscription's attributes (``__getattr__``).

There is no drop callback (as upstream): the node counts unmatched inputs itself.
:func:`xdrcdepth_ros.standins.active` picks the real package when it is importable.
"""

from __future__ import annotations

import itertools
import threading

import rclpy.logging
from rclpy.clock import ROSClock
from rclpy.duration import Duration
from rclpy.logging import LoggingSeverity
from rclpy.time import Time


class SimpleFilter:
    """A message source others connect to with ``registerCallback`` (message_filters.SimpleFilter)."""

    def __init__(self):
        self.callbacks = {}

    def registerCallback(self, cb, *args) -> int:  # noqa: N802 (message_filters API)
        conn = len(self.callbacks)
        self.callbacks[conn] = (cb, args)
        return conn

    def unregisterCallback(self, conn) -> None:  # noqa: N802 (message_filters API)
        self.callbacks.pop(conn, None)

    def signalMessage(self, *msg) -> None:  # noqa: N802 (message_filters API)
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))


class Subscriber(SimpleFilter):
    """A ROS subscription as a filter input; kwargs go to ``create_subscription`` (default QoS depth 10).
    Other attributes are the subscription's (``topic_name``, ``qos_profile``, ...), as upstream."""

    def __init__(self, node, msg_type, topic: str, qos_profile=10, **kwargs):
        super().__init__()
        self.node = node
        self.topic = topic
        self.sub = node.create_subscription(msg_type, topic, self.callback, qos_profile, **kwargs)

    def callback(self, msg) -> None:
        self.signalMessage(msg)

    def getTopic(self) -> str:  # noqa: N802 (message_filters API)
        return self.topic

    def __getattr__(self, key):
        if key == "sub":    # not constructed (yet): no recursion
            raise AttributeError(key)
        return getattr(self.sub, key)


def _header_time(msg) -> Time | None:
    """The message's ``header.stamp`` as an rclpy Time (``Time.from_msg``: a negative stamp raises
    ``ValueError``, a stamp that is not a ``builtin_interfaces/Time`` ``TypeError``), None without one."""
    if not hasattr(msg, "header") or not hasattr(msg.header, "stamp"):
        return None
    stamp = msg.header.stamp
    return stamp if hasattr(stamp, "nanoseconds") else Time.from_msg(stamp)


def _warn_headerless(logger_name: str) -> None:
    logger = rclpy.logging.get_logger(logger_name)
    logger.set_level(LoggingSeverity.INFO)
    logger.warning("can not use message filters messages without timestamp infomation when "
                   '"allow_headerless" is disabled. auto assign ROSTIME to headerless messages once enabling '
                   'constructor option of "allow_headerless".')


class Cache(SimpleFilter):
    """The last ``cache_size`` messages of an input in arrival order, with their stamps (rclpy Times),
    passed on as they arrive (message_filters.Cache)."""

    def __init__(self, f, cache_size: int = 1, allow_headerless: bool = False):
        super().__init__()
        self.connectInput(f)
        self.cache_size = cache_size
        self.cache_msgs: list = []
        self.cache_times: list = []
        self.allow_headerless = allow_headerless

    def connectInput(self, f) -> None:  # noqa: N802 (message_filters API)
        self.incoming_connection = f.registerCallback(self.add)

    def add(self, msg) -> None:
        stamp = _header_time(msg)
        if stamp is None:
            if not self.allow_headerless:
                _warn_headerless("message_filters_cache")
                return
            stamp = ROSClock().now()
        self.cache_times.append(stamp)    # arrival order, not sorted (as upstream)
        self.cache_msgs.append(msg)
        if len(self.cache_msgs) > self.cache_size:
            del self.cache_msgs[0]
            del self.cache_times[0]
        self.signalMessage(msg)

    def getInterval(self, from_stamp, to_stamp) -> list:  # noqa: N802 (message_filters API)
        """The cached messages with ``from_stamp <= stamp <= to_stamp``."""
        assert from_stamp <= to_stamp
        return [m for m, t in zip(self.cache_msgs, self.cache_times) if from_stamp <= t <= to_stamp]

    def getElemAfterTime(self, stamp):  # noqa: N802 (message_filters API)
        """The first cached message with a stamp ``>= stamp``, or None."""
        return next((m for m, t in zip(self.cache_msgs, self.cache_times) if t >= stamp), None)

    def getElemBeforeTime(self, stamp):  # noqa: N802 (message_filters API)
        """The last cached message with a stamp ``<= stamp``, or None."""
        older = [m for m, t in zip(self.cache_msgs, self.cache_times) if t <= stamp]
        return older[-1] if older else None

    def getLatestTime(self):  # noqa: N802 (message_filters API)
        return self.cache_times[-1] if self.cache_times else None

    getLastestTime = getLatestTime  # noqa: N815 (the spelling of message_filters 7.1 and earlier)

    def getOldestTime(self):  # noqa: N802 (message_filters API)
        return self.cache_times[0] if self.cache_times else None

    def getLast(self):  # noqa: N802 (message_filters API)
        latest = self.getLatestTime()
        return None if latest is None else self.getElemAfterTime(latest)


class TimeSynchronizer(SimpleFilter):
    """Emits one message per input with exactly equal stamps (message_filters.TimeSynchronizer, with the
    C++-consistent rule of 7.1.5 / #238: one set per arrival, the oldest common stamp, and every message
    older than it is dropped)."""

    def __init__(self, fs, queue_size: int):
        super().__init__()
        self.queue_size = queue_size
        self.lock = threading.Lock()
        self.queues: list[dict[int, object]] = [{} for _ in fs]
        self.input_connections = [f.registerCallback(self.add, q, i)
                                  for i, (f, q) in enumerate(zip(fs, self.queues))]

    def add(self, msg, my_queue: dict, my_queue_index: int | None = None) -> None:
        stamp = Time.from_msg(msg.header.stamp).nanoseconds
        with self.lock:
            my_queue[stamp] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
            common = set.intersection(*(set(q) for q in self.queues))
            if not common:
                return
            t = min(common)
            self.signalMessage(*[q[t] for q in self.queues])
            for q in self.queues:
                del q[t]
                for older in [s for s in q if s < t]:
                    del q[older]


class ApproximateTimeSynchronizer(TimeSynchronizer):
    """Emits one message per input whose stamps span less than ``slop`` seconds (semantics above); a
    TimeSynchronizer subclass, as upstream."""

    def __init__(self, fs, queue_size: int, slop: float, queue_offset=False, allow_headerless: bool = False,
                 sync_arrival_time: bool = False):
        super().__init__(fs, queue_size)
        self.slop = Duration(seconds=slop)
        self.slop_ns = self.slop.nanoseconds
        self.queue_offset = queue_offset
        self.allow_headerless = allow_headerless
        self.sync_arrival_time = sync_arrival_time

    def add(self, msg, my_queue: dict, my_queue_index: int | None = None) -> None:
        stamp = None if self.sync_arrival_time else _header_time(msg)
        if stamp is None:
            if not self.allow_headerless and not self.sync_arrival_time:
                _warn_headerless("message_filters_approx")
                return
            stamp = ROSClock().now()
        own = stamp.nanoseconds
        key = own - self.queue_offset[my_queue_index] if my_queue_index is not None and self.queue_offset \
            else own
        with self.lock:
            my_queue[key] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
            candidates = []
            for i, queue in enumerate(self.queues):
                if i == my_queue_index:
                    continue
                near = sorted((s for s in queue if abs(s - key) <= self.slop_ns), key=lambda s: abs(s - key))
                if not near:
                    return
                candidates.append(near)
            for combination in itertools.product(*candidates):
                stamps = list(combination)
                if my_queue_index is not None:
                    stamps.insert(my_queue_index, own)   # upstream: the arrival's own (un-offset) stamp
                if max(stamps) - min(stamps) >= self.slop_ns:
                    continue
                if any(s not in q for q, s in zip(self.queues, stamps)):
                    continue
                self.signalMessage(*[q[s] for q, s in zip(self.queues, stamps)])
                for q, s in zip(self.queues, stamps):
                    del q[s]
                break
