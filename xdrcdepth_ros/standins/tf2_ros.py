"""Stand-in for ``tf2_ros`` (Python, package ``tf2_ros_py``): ``Buffer``, ``TransformListener`` and the
lookup exceptions, with tf2's behaviour. Follows ros2/geometry2 (rolling; Kilted's 0.41.x has the same
semantics) ``tf2/src/buffer_core.cpp`` (``setTransformImpl``, ``walkToTopParent``, ``getLatestCommonTime``,
``validateFrameId``), ``tf2/src/cache.cpp`` (``TimeCache``), ``tf2/src/static_cache.cpp``,
``tf2_ros_py/tf2_ros/buffer.py`` and ``transform_listener.py``.

API subset: ``Buffer(cache_time=None, node=None)``, ``set_transform``, ``set_transform_static``,
``lookup_transform(target, source, time, timeout)``, ``lookup_transform_full(target, target_time, source,
source_time, fixed_frame, timeout)``, ``can_transform``, ``can_transform_full``, ``clear``, the async
``wait_for_transform(_full)_async`` / ``lookup_transform(_full)_async``; ``TransformListener(buffer, node=None, *,
spin_thread, qos, static_qos, tf_topic, tf_static_topic, static_only)``; ``TransformException`` and its
``LookupException``, ``ConnectivityException``, ``ExtrapolationException``, ``InvalidArgumentException``,
``TimeoutException``. Tested in test/test_tf_buffer.py and (ported from upstream's
``tf2/test/cache_unittest.cpp`` and ``tf2_ros_py/test/test_buffer.py``) test/test_standin_tf2.py:

* each child frame has one cache, static or dynamic: the kind of the transform that arrives (a static
  transform for a frame with a dynamic cache, or the reverse, replaces the cache with an empty one of the
  new kind before storing, ros2/geometry2#151); a static link holds at every time, a later static
  transform replaces it;
* a dynamic cache (``TimeCache::insertData``) first prunes what is older than ``cache_time`` (10 s) behind
  its newest stamp *before* the insert (``stamp + cache_time < newest``), then refuses data older than
  ``newest - cache_time``; an exact duplicate is not stored twice, a different sample with an equal stamp is
  stored next to it (the later one is newer);
* a lookup between two samples with the same parent interpolates (translation linearly, rotation by slerp);
  between samples with different parents it takes the older one as is; at a sample's stamp it takes that
  sample; outside the stored interval, or with a single sample at another stamp, it raises
  ``ExtrapolationException`` with tf2's text ("Lookup would require extrapolation into the future.
  Requested time 12.500000 but the latest data is at time 12.000000, when looking up transform from frame
  [base_link] to frame [odom]"); time zero means the latest time every dynamic link of the chain has in
  common (``getLatestCommonTime``);
* a transform's ``frame_id`` and ``child_frame_id`` lose one leading ``/`` when stored (``stripSlash``); a
  lookup of an empty frame or one that starts with ``/`` raises ``InvalidArgumentException``
  (``validateFrameId``, same texts; ``can_transform`` is false);
* source frame == target frame is the identity, even for a frame the buffer has never seen
  (``lookupTransformImpl`` returns before validating the frames; ``canTransform`` is true);
* otherwise a frame never seen raises ``LookupException`` ('"radar" passed to lookupTransform argument
  source_frame does not exist. '), frames in different trees ``ConnectivityException``; a frame once seen
  stays known after ``clear`` (which empties the dynamic caches only);
* ``lookup_transform_full`` chains ``target(target_time) <- fixed <- source(source_time)`` (all three
  frames must exist); each half resolves time zero to its own latest common time and the result is
  stamped with the target half's time, as tf2 does; with the odometry frame as ``fixed_frame`` this
  compensates ego-motion between the two stamps;
* a ``timeout`` waits (wall clock) for the transform to arrive, as tf2_ros does;
* ``Buffer(node=...)`` clears its dynamic transforms when the node's clock jumps back by more than 1 s
  or changes type (tf2_ros: ``JumpThreshold(min_forward=None, min_backward=Duration(seconds=-1),
  on_clock_change=True)``), e.g. a looping bag under ``use_sim_time``; smaller jitter is kept.

Differences kept on purpose: ``set_transform``/``set_transform_static`` return whether the transform was
stored (upstream returns None and logs), which the node's ``static_transform_buffer`` relies on; rotations
are normalised when stored (tf2 accepts a quaternion whose squared norm is within 0.01 of 1 and uses it
as is, so its results can differ by that much).

The listener subscribes like tf2_ros (/tf: reliable, volatile, depth 100; /tf_static: reliable,
transient local, depth 100) and drops (and counts) transforms tf2 would reject.
"""

from __future__ import annotations

import bisect
import threading
import time as wall_time

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.clock import ClockChange, JumpThreshold
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from rclpy.time import Time

from xdrcdepth_core.data.geometry import matrix_to_quaternion, quaternion_to_matrix

DEFAULT_CACHE_TIME_S = 10.0
#: backward clock jumps of more than this many seconds clear a node's buffer (tf2_ros buffer.py)
CLEAR_ON_JUMP_BACK_S = 1.0
#: tf2 ``BufferCore::MAX_GRAPH_DEPTH``: a walk deeper than this is taken for a loop
_MAX_CHAIN = 1000


class TransformException(Exception):
    """Base of all lookup failures (tf2_ros.TransformException)."""


class LookupException(TransformException):
    """A frame is unknown."""


class ConnectivityException(TransformException):
    """The two frames are not in one tree."""


class ExtrapolationException(TransformException):
    """The time asked for is outside the stored interval."""


class TimeoutException(TransformException):
    """tf2's TimeoutException (tf2_ros re-exports tf2_py's); tf2_ros's Python lookups raise the lookup's
    own exception when a timeout runs out, and so does this stand-in."""


class InvalidArgumentException(TransformException):
    """A frame name tf2 does not accept in a lookup: empty, or starting with '/'."""


#: a rigid transform as (3 x 3 rotation, translation), composed like tf2's TransformAccum: rotations and
#: translations separately, so an infinite translation (which tf2 stores) never turns a rotation into NaN
_IDENTITY = (np.eye(3), np.zeros(3))


def _compose(a, b):
    """``a o b``: (R_a R_b, R_a t_b + t_a). An infinite translation gives NaN where a zero of R multiplies it, as
    tf2's quatRotate does (0 x inf), and without numpy's RuntimeWarning on stderr (C++ prints none)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return a[0] @ b[0], a[0] @ b[1] + a[1]


def _inverse(a):
    with np.errstate(invalid="ignore", over="ignore"):
        return a[0].T, -(a[0].T @ a[1])


def _message(T, frame_id: str, child_frame_id: str, stamp_ns: int) -> TransformStamped:
    R, translation = T
    msg = TransformStamped()
    msg.header.frame_id = frame_id
    msg.header.stamp = Time(nanoseconds=stamp_ns).to_msg()
    msg.child_frame_id = child_frame_id
    w, x, y, z = (float(v) for v in matrix_to_quaternion(R))
    r = msg.transform.rotation
    r.w, r.x, r.y, r.z = w, x, y, z
    t = msg.transform.translation
    t.x, t.y, t.z = (float(v) for v in translation)
    return msg


def _to_ns(t) -> int:
    if hasattr(t, "nanoseconds"):
        return int(t.nanoseconds)
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def _slerp(q0: np.ndarray, q1: np.ndarray, ratio: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions [w, x, y, z] along the shorter arc."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + ratio * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - ratio) * theta) * q0 + np.sin(ratio * theta) * q1) / np.sin(theta)


class _Sample:
    """tf2's ``TransformStorage``: one stamped link ``parent <- child``."""

    __slots__ = ("stamp", "parent", "translation", "rotation")

    def __init__(self, stamp: int, parent: str, transform):
        self.stamp = stamp
        self.parent = parent
        t, r = transform.translation, transform.rotation
        self.translation = np.array([t.x, t.y, t.z], dtype=np.float64)
        q = np.array([r.w, r.x, r.y, r.z], dtype=np.float64)
        self.rotation = q / np.linalg.norm(q)

    def same(self, other: "_Sample") -> bool:
        """tf2's ``TransformStorage::operator==`` (stamp, parent, rotation and translation)."""
        return (self.stamp == other.stamp and self.parent == other.parent
                and np.array_equal(self.translation, other.translation)
                and np.array_equal(self.rotation, other.rotation))

    def matrix(self) -> np.ndarray:
        return quaternion_to_matrix(self.rotation), self.translation


def _display(stamp_ns: int) -> str:
    """tf2 ``displayTimePoint``: seconds with 6 decimals."""
    return f"{stamp_ns / 1e9:.6f}"


class _StaticCache:
    """tf2 ``StaticCache``: one link valid at every time; a new insert replaces it; ``clear`` keeps it."""

    def __init__(self):
        self.sample: _Sample | None = None

    def insert(self, sample: _Sample) -> bool:
        self.sample = sample
        return True

    def clear(self) -> None:
        pass

    def latest_time_and_parent(self) -> tuple[int, str | None]:
        return 0, self.sample.parent

    def latest_stamp(self) -> int:
        return 0

    def get(self, stamp: int) -> tuple[_Sample | None, tuple | None, str]:
        return self.sample, self.sample.matrix(), ""


class _TimeCache:
    """tf2 ``TimeCache`` (``tf2/src/cache.cpp``): samples sorted by stamp, oldest first here (tf2 keeps them
    newest first; the semantics are the same)."""

    def __init__(self, max_storage_ns: int):
        self.max_storage_ns = max_storage_ns
        self.samples: list[_Sample] = []

    def latest_stamp(self) -> int:
        return self.samples[-1].stamp if self.samples else 0

    def insert(self, sample: _Sample) -> bool:
        """``insertData``: prune by the latest stamp *before* this insert (``stamp + max < latest`` goes),
        refuse data older than ``latest - max``, keep an exact duplicate out, insert after equal stamps."""
        latest = self.latest_stamp()
        while self.samples and self.samples[0].stamp + self.max_storage_ns < latest:
            self.samples.pop(0)
        if self.samples and sample.stamp < latest - self.max_storage_ns:
            return False
        i = bisect.bisect_right([s.stamp for s in self.samples], sample.stamp)
        j = i
        while j > 0 and self.samples[j - 1].stamp == sample.stamp:
            if self.samples[j - 1].same(sample):
                return True
            j -= 1
        self.samples.insert(i, sample)
        return True

    def clear(self) -> None:
        self.samples.clear()

    def latest_time_and_parent(self) -> tuple[int, str | None]:
        if not self.samples:
            return 0, None
        return self.samples[-1].stamp, self.samples[-1].parent

    def _closest(self, stamp: int) -> tuple[_Sample | None, _Sample | None, str]:
        """``findClosest``: (older-or-equal, newer or None, error string)."""
        samples = self.samples
        if not samples:
            return None, None, ""
        if stamp == 0:
            return samples[-1], None, ""
        if len(samples) == 1:
            if samples[0].stamp == stamp:
                return samples[0], None, ""
            return None, None, (f"Lookup would require extrapolation at time {_display(stamp)}, but only time "
                                f"{_display(samples[0].stamp)} is in the buffer")
        latest, earliest = samples[-1].stamp, samples[0].stamp
        if stamp == latest:
            return samples[-1], None, ""
        if stamp == earliest:
            return samples[0], None, ""
        if stamp > latest:
            return None, None, (f"Lookup would require extrapolation into the future.  Requested time "
                                f"{_display(stamp)} but the latest data is at time {_display(latest)}")
        if stamp < earliest:
            return None, None, (f"Lookup would require extrapolation into the past.  Requested time "
                                f"{_display(stamp)} but the earliest data is at time {_display(earliest)}")
        i = bisect.bisect_right([s.stamp for s in samples], stamp)
        return samples[i - 1], samples[i], ""

    def get(self, stamp: int) -> tuple[_Sample | None, tuple | None, str]:
        """``getData``: (the sample giving the parent, ``T_parent_from_child`` as (R, t), error string)."""
        one, two, error = self._closest(stamp)
        if one is None:
            return None, None, error
        if two is None or one.parent != two.parent:   # tf2 does not interpolate across a change of parent
            return one, one.matrix(), ""
        if two.stamp == one.stamp:
            return one, two.matrix(), ""
        ratio = (stamp - one.stamp) / (two.stamp - one.stamp)
        translation = one.translation + ratio * (two.translation - one.translation)
        return one, (quaternion_to_matrix(_slerp(one.rotation, two.rotation, ratio)), translation), ""


def _strip_slash(frame: str) -> str:
    """The frame name as tf2 stores it: one leading '/' removed."""
    return frame[1:] if frame.startswith("/") else frame


def rejection_reason(transform: TransformStamped) -> str | None:
    """Why tf2 would reject this transform, or None."""
    parent, child = _strip_slash(transform.header.frame_id), _strip_slash(transform.child_frame_id)
    if not child or not parent:
        return "empty frame id"
    if child == parent:
        return f"frame '{child}' is its own parent"
    t, r = transform.transform.translation, transform.transform.rotation
    values = np.array([t.x, t.y, t.z, r.x, r.y, r.z, r.w])
    if np.any(np.isnan(values)):      # tf2's TF_NAN_INPUT: NaN only (an inf rotation fails the norm test below)
        return "NaN values"
    if abs(float(np.dot(values[3:], values[3:])) - 1.0) > 0.01:   # tf2's denormalised-quaternion test
        return "quaternion not normalised"
    return None


class Buffer:
    """Time-indexed transform tree with tf2's lookup semantics (see the module docstring)."""

    def __init__(self, cache_time: Duration | None = None, node=None):
        self.cache_ns = _to_ns(cache_time) if cache_time is not None else int(DEFAULT_CACHE_TIME_S * 1e9)
        #: child frame -> its cache, of the kind (static or dynamic) of the newest transform (tf2's
        #: ``setTransformImpl`` re-allocates a frame's cache when the kind changes)
        self._caches: dict[str, _StaticCache | _TimeCache] = {}
        #: every frame name ever set as parent or child (tf2's frame ids survive ``clear``)
        self._frames: set[str] = set()
        self._changed = threading.Condition()
        self._new_data_callbacks: list = []       # tf2_ros Buffer: the async waits
        self._callbacks_to_remove: list = []
        self._callbacks_lock = threading.RLock()
        self._node = node
        self.jump_handle = None
        if node is not None:  # tf2_ros: clear on a jump back of more than 1 s or a clock change
            self.jump_handle = node.get_clock().create_jump_callback(
                JumpThreshold(min_forward=None, min_backward=Duration(seconds=-CLEAR_ON_JUMP_BACK_S),
                              on_clock_change=True),
                post_callback=self._on_time_jump)

    def _on_time_jump(self, jump) -> None:
        if jump.clock_change in (ClockChange.ROS_TIME_ACTIVATED, ClockChange.ROS_TIME_DEACTIVATED) \
                or jump.delta.nanoseconds <= -CLEAR_ON_JUMP_BACK_S * 1e9:
            self._node.get_logger().warning("Detected jump back in time. Clearing tf buffer.")
            self.clear()

    # -- filling -----------------------------------------------------------------------------------
    def _set(self, transform: TransformStamped, is_static: bool) -> bool:
        """tf2 ``setTransformImpl``; False when tf2 would refuse the transform or ``TF_OLD_DATA``."""
        if rejection_reason(transform):
            return False
        child, parent = _strip_slash(transform.child_frame_id), _strip_slash(transform.header.frame_id)
        sample = _Sample(_to_ns(transform.header.stamp), parent, transform.transform)
        with self._changed:
            self._frames.update((child, parent))
            cache = self._caches.get(child)
            if cache is None or isinstance(cache, _StaticCache) != is_static:
                cache = self._caches[child] = _StaticCache() if is_static else _TimeCache(self.cache_ns)
            stored = cache.insert(sample)
            self._changed.notify_all()
        self._call_new_data_callbacks()
        return stored

    def _call_new_data_callbacks(self) -> None:
        with self._callbacks_lock:
            for callback in list(self._new_data_callbacks):
                callback()
            for callback in self._callbacks_to_remove:   # removed afterwards, as tf2_ros does
                if callback in self._new_data_callbacks:
                    self._new_data_callbacks.remove(callback)
            self._callbacks_to_remove.clear()

    def _remove_callback(self, callback) -> None:
        with self._callbacks_lock:
            self._callbacks_to_remove.append(callback)

    def set_transform(self, transform: TransformStamped, authority: str) -> bool:
        """Store a dynamic transform; returns False (and stores nothing) if tf2 would reject it
        (upstream returns None and only logs)."""
        return self._set(transform, is_static=False)

    def set_transform_static(self, transform: TransformStamped, authority: str) -> bool:
        """Store a transform valid at every time (False if tf2 would reject it)."""
        return self._set(transform, is_static=True)

    def clear(self) -> None:
        """Forget the dynamic transforms (static ones and the known frame names stay, as in tf2)."""
        with self._changed:
            for cache in self._caches.values():
                cache.clear()

    # -- lookups -----------------------------------------------------------------------------------
    def lookup_transform(self, target_frame: str, source_frame: str, time, timeout=Duration()
                         ) -> TransformStamped:
        """``T_target_from_source`` at ``time`` (zero: latest common time)."""
        stamp = _to_ns(time)

        def attempt():
            T, used = self._lookup(target_frame, source_frame, stamp)
            return _message(T, target_frame, source_frame, used)
        return self._wait(attempt, timeout)

    def lookup_transform_full(self, target_frame: str, target_time, source_frame: str, source_time,
                              fixed_frame: str, timeout=Duration()) -> TransformStamped:
        """``T_target(target_time)_from_source(source_time)`` through ``fixed_frame``."""
        t_target, t_source = _to_ns(target_time), _to_ns(source_time)

        def attempt():
            for frame, arg in ((target_frame, "target_frame"), (source_frame, "source_frame"),
                               (fixed_frame, "fixed_frame")):   # tf2 validates all three first
                self._validate(frame, f"lookupTransform argument {arg}")
            fixed_from_source, _ = self._lookup(fixed_frame, source_frame, t_source)
            target_from_fixed, used = self._lookup(target_frame, fixed_frame, t_target)
            return _message(_compose(target_from_fixed, fixed_from_source), target_frame, source_frame, used)
        return self._wait(attempt, timeout)

    def can_transform(self, target_frame: str, source_frame: str, time, timeout=Duration()) -> bool:
        if target_frame == source_frame:
            return True
        try:
            self.lookup_transform(target_frame, source_frame, time, timeout)
            return True
        except TransformException:
            return False

    def can_transform_full(self, target_frame: str, target_time, source_frame: str, source_time,
                           fixed_frame: str, timeout=Duration()) -> bool:
        try:
            self.lookup_transform_full(target_frame, target_time, source_frame, source_time, fixed_frame,
                                       timeout)
            return True
        except TransformException:
            return False

    # -- tf2_ros' asyncio-style API (rclpy Futures completed from set_transform) ---------------------
    def _wait_async(self, ready, result) -> Future:
        fut = Future()
        if ready():
            fut.set_result(result())    # short cut: already available
            return fut

        def on_new_data():
            try:
                if not fut.done() and ready():
                    fut.set_result(result())
            except BaseException as exc:  # noqa: BLE001 (tf2_ros hands any error to the future)
                fut.set_exception(exc)

        with self._callbacks_lock:
            self._new_data_callbacks.append(on_new_data)
        fut.add_done_callback(lambda _: self._remove_callback(on_new_data))
        return fut

    def wait_for_transform_async(self, target_frame: str, source_frame: str, time) -> Future:
        """A Future completed with the transform once it is available."""
        return self._wait_async(lambda: self.can_transform(target_frame, source_frame, time),
                                lambda: self.lookup_transform(target_frame, source_frame, time))

    def wait_for_transform_full_async(self, target_frame: str, target_time, source_frame: str, source_time,
                                      fixed_frame: str) -> Future:
        """``wait_for_transform_async`` for the ``lookup_transform_full`` arguments."""
        args = (target_frame, target_time, source_frame, source_time, fixed_frame)
        return self._wait_async(lambda: self.can_transform_full(*args),
                                lambda: self.lookup_transform_full(*args))

    async def lookup_transform_async(self, target_frame: str, source_frame: str, time) -> TransformStamped:
        await self.wait_for_transform_async(target_frame, source_frame, time)
        return self.lookup_transform(target_frame, source_frame, time)

    async def lookup_transform_full_async(self, target_frame: str, target_time, source_frame: str,
                                          source_time, fixed_frame: str) -> TransformStamped:
        await self.wait_for_transform_full_async(target_frame, target_time, source_frame, source_time,
                                                 fixed_frame)
        return self.lookup_transform_full(target_frame, target_time, source_frame, source_time, fixed_frame)

    def _wait(self, attempt, timeout):
        deadline = wall_time.monotonic() + _to_ns(timeout) / 1e9
        with self._changed:
            while True:
                try:
                    return attempt()
                except TransformException:
                    remaining = deadline - wall_time.monotonic()
                    if remaining <= 0:
                        raise
                    self._changed.wait(remaining)

    def _validate(self, frame: str, what: str) -> None:
        """tf2's ``validateFrameId`` (same messages): a usable name of a frame the buffer has seen."""
        if not frame:
            raise InvalidArgumentException(f"Invalid argument passed to {what} in tf2 frame_ids cannot be empty")
        if frame.startswith("/"):
            raise InvalidArgumentException(f'Invalid argument "{frame}" passed to {what} in tf2 frame_ids '
                                           "cannot start with a '/' like: ")
        if frame not in self._frames:
            raise LookupException(f'"{frame}" passed to {what} does not exist. ')

    def _connectivity(self, source: str, target: str) -> ConnectivityException:
        return ConnectivityException(f"Could not find a connection between '{target}' and '{source}' because "
                                     "they are not part of the same tree.Tf has two or more unconnected trees.")

    def _loop(self) -> LookupException:
        return LookupException("The tf tree is invalid because it contains a loop.")

    def _links_up(self, frame: str):
        """``(latest stamp, parent)`` of each link from ``frame`` up to its root (tf2's walks); a loop raises."""
        for _ in range(_MAX_CHAIN + 1):
            cache = self._caches.get(frame)
            if cache is None:
                return
            latest, parent = cache.latest_time_and_parent()
            if parent is None:
                return
            yield latest, parent
            frame = parent
        raise self._loop()

    def _latest_common_time(self, target: str, source: str) -> int:
        """tf2 ``getLatestCommonTime`` (statics count as time zero, i.e. not at all)."""
        lct: list[tuple[int, str]] = []
        common = None
        for latest, parent in self._links_up(source):
            if latest != 0:
                common = latest if common is None else min(common, latest)
            lct.append((latest, parent))
            if parent == target:
                return common or 0
        common, common_parent = None, None
        for latest, parent in self._links_up(target):
            if latest != 0:
                common = latest if common is None else min(common, latest)
            if any(p == parent for _, p in lct):
                common_parent = parent
                break
            if parent == source:
                return common or 0
        if common_parent is None:
            raise self._connectivity(source, target)
        for latest, parent in lct:
            if latest != 0:
                common = latest if common is None else min(common, latest)
            if parent == common_parent:
                break
        return common or 0

    def _lookup(self, target: str, source: str, stamp: int) -> tuple[tuple[np.ndarray, np.ndarray], int]:
        """``(T_target_from_source, stamp used)``: tf2 ``lookupTransformImpl`` / ``walkToTopParent``."""
        if target == source:  # identity before any validation, as tf2 (even for an unknown frame)
            cache = self._caches.get(target)
            return _IDENTITY, (cache.latest_stamp() if stamp == 0 and cache is not None else stamp)
        self._validate(target, "lookupTransform argument target_frame")
        self._validate(source, "lookupTransform argument source_frame")
        if stamp == 0:
            stamp = self._latest_common_time(target, source)
        suffix = f", when looking up transform from frame [{source}] to frame [{target}]"
        # walk from the source to its root, accumulating T_top_from_source
        frame, top, source_error, might_extrapolate = source, source, "", False
        top_from_source = _IDENTITY
        for _ in range(_MAX_CHAIN + 1):
            cache = self._caches.get(frame)
            if cache is None:
                top = frame
                break
            sample, T, error = cache.get(stamp)
            if sample is None:
                top, source_error, might_extrapolate = frame, error, True
                break
            if frame == target:   # the target is an ancestor of the source
                return top_from_source, stamp
            top_from_source = _compose(T, top_from_source)
            top, frame = frame, sample.parent
        else:
            raise self._loop()
        # walk from the target up to the same top, accumulating T_top_from_target
        frame = target
        top_from_target = _IDENTITY
        for _ in range(_MAX_CHAIN + 1):
            if frame == top:
                break
            cache = self._caches.get(frame)
            if cache is None:
                break
            sample, T, error = cache.get(stamp)
            if sample is None:
                raise ExtrapolationException(error + suffix)
            if frame == source:   # the source is an ancestor of the target
                return _inverse(top_from_target), stamp
            top_from_target = _compose(T, top_from_target)
            frame = sample.parent
        else:
            raise self._loop()
        if frame != top:
            if might_extrapolate:
                raise ExtrapolationException(source_error + suffix)
            raise self._connectivity(source, target)
        return _compose(_inverse(top_from_target), top_from_source), stamp


TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


class TransformListener:
    """Fills a buffer from /tf and /tf_static (tf2_msgs/TFMessage), as tf2_ros's ``transform_listener.py``
    (rolling): both subscriptions in one ``ReentrantCallbackGroup`` (so a callback of the node's default,
    mutually exclusive group can wait for a transform under a multi-threaded executor), ``spin_thread=True``
    spins the node in a ``SingleThreadedExecutor`` on a thread of its own, ``node=None`` makes a node without
    rosout or parameter services and ``static_only`` subscribes to /tf_static alone. The callbacks have
    upstream's names (``callback``, ``static_callback``): a subclass overrides them for either library."""

    def __init__(self, buffer, node=None, *, spin_thread: bool = False, qos=TF_QOS, static_qos=TF_STATIC_QOS,
                 tf_topic: str = "/tf", tf_static_topic: str = "/tf_static", static_only: bool = False):
        from rclpy.callback_groups import ReentrantCallbackGroup
        from rclpy.node import Node
        from rclpy.parameter import Parameter

        from xdrcdepth_ros.tf_messages import tf_message_class

        TFMessage = tf_message_class()   # pip-only setups generate tf2_msgs; a missing one is said in one line
        if node is None:
            node = Node(f"transform_listener_impl_{id(self):010x}", enable_rosout=False,
                        start_parameter_services=False, parameter_overrides=[Parameter("use_sim_time", value=False)])
        self.buffer = buffer
        self.node = node
        self.rejected = 0
        self.group = ReentrantCallbackGroup()
        if not static_only:
            self.tf_sub = node.create_subscription(TFMessage, tf_topic, self.callback, qos, callback_group=self.group)
        self.tf_static_sub = node.create_subscription(TFMessage, tf_static_topic, self.static_callback, static_qos,
                                                      callback_group=self.group)
        if spin_thread:
            self._spin_in_a_thread_of_its_own()

    def _spin_in_a_thread_of_its_own(self) -> None:
        from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=self.node.context)   # upstream: the default context

        def spin() -> None:
            self.executor.add_node(self.node)
            try:
                self.executor.spin()
            except ExternalShutdownException:
                pass
            self.executor.remove_node(self.node)

        self.dedicated_listener_thread = threading.Thread(target=spin, daemon=True)
        self.dedicated_listener_thread.start()

    def __del__(self) -> None:
        if hasattr(self, "dedicated_listener_thread"):
            self.executor.shutdown()
            self.dedicated_listener_thread.join()

    def callback(self, msg) -> None:
        for t in msg.transforms:
            if not self.buffer.set_transform(t, "default_authority"):
                self._reject(t)

    def static_callback(self, msg) -> None:
        for t in msg.transforms:
            if not self.buffer.set_transform_static(t, "default_authority"):
                self._reject(t)

    def _reject(self, t: TransformStamped) -> None:
        self.rejected += 1
        self.node.get_logger().warning(
            f"ignoring transform {t.header.frame_id} -> {t.child_frame_id}: "
            f"{rejection_reason(t) or 'older than the cache'}", throttle_duration_sec=5.0)

    def unregister(self) -> None:
        if hasattr(self, "tf_sub"):
            self.node.destroy_subscription(self.tf_sub)
        self.node.destroy_subscription(self.tf_static_sub)
