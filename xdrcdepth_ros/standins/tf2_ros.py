"""Stand-in for ``tf2_ros`` (Python, package ``tf2_ros_py``): ``Buffer``, ``TransformListener`` and the
lookup exceptions, with tf2's behaviour (ros2/geometry2 ``tf2/src/buffer_core.cpp``, ``time_cache.cpp``,
``tf2_ros_py/tf2_ros/buffer.py``, ``transform_listener.py``).

API subset: ``Buffer(cache_time=None, node=None)``, ``set_transform``, ``set_transform_static``,
``lookup_transform(target, source, time, timeout)``, ``lookup_transform_full(target, target_time, source,
source_time, fixed_frame, timeout)``, ``can_transform``, ``clear``; ``TransformListener(buffer, node)``;
``TransformException`` and its ``LookupException``, ``ConnectivityException``,
``ExtrapolationException``, ``InvalidArgumentException``. Behaviour, each tested in test/test_tf_buffer.py:

* each child frame has one parent; static transforms hold at every time, dynamic ones are kept for
  ``cache_time`` (10 s) behind the newest stamp of that frame, and older arrivals are ignored;
* a lookup between two samples interpolates (translation linearly, rotation by slerp); outside the
  stored interval, or with a single sample at another stamp, it raises ``ExtrapolationException``;
  time zero means the latest time every dynamic link in the chain has in common;
* a transform's ``frame_id`` and ``child_frame_id`` lose one leading ``/`` when stored (``setTransformImpl``'s
  ``stripSlash``: a ROS 1 style ``/base_link`` is ``base_link``); a lookup of an empty frame or one that
  starts with ``/`` raises ``InvalidArgumentException`` (``validateFrameId``; ``can_transform`` is false);
* source frame == target frame is the identity, even for a frame the buffer has never seen
  (``BufferCore::lookupTransformImpl`` returns before validating the frames; ``canTransform`` is true);
* otherwise unknown frames raise ``LookupException``, frames in different trees ``ConnectivityException``;
* ``lookup_transform_full`` chains ``target(target_time) <- fixed <- source(source_time)`` (all three
  frames must exist); each half resolves time zero to its own latest common time and the result is
  stamped with the target half's time, as tf2 does; with the odometry frame as ``fixed_frame`` this
  compensates ego-motion between the two stamps;
* a ``timeout`` waits (wall clock) for the transform to arrive, as tf2_ros does;
* ``Buffer(node=...)`` clears its dynamic transforms when the node's clock jumps back by more than 1 s
  or changes type (tf2_ros: ``JumpThreshold(min_forward=None, min_backward=Duration(seconds=-1),
  on_clock_change=True)``), e.g. a looping bag under ``use_sim_time``; smaller jitter is kept.

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
from rclpy.time import Time

from xdrcdepth_core.data.geometry import invert_transform, matrix_to_quaternion, transform_from_pose

DEFAULT_CACHE_TIME_S = 10.0
#: backward clock jumps of more than this many seconds clear a node's buffer (tf2_ros buffer.py)
CLEAR_ON_JUMP_BACK_S = 1.0
_MAX_CHAIN = 100


class TransformException(Exception):
    """Base of all lookup failures (tf2_ros.TransformException)."""


class LookupException(TransformException):
    """A frame is unknown."""


class ConnectivityException(TransformException):
    """The two frames are not in one tree."""


class ExtrapolationException(TransformException):
    """The time asked for is outside the stored interval."""


class InvalidArgumentException(TransformException):
    """A frame name tf2 does not accept in a lookup: empty, or starting with '/'."""


def _matrix(transform) -> np.ndarray:
    """4 x 4 ``T_parent_from_child`` of a geometry_msgs Transform (quaternion x, y, z, w)."""
    r, t = transform.rotation, transform.translation
    return transform_from_pose([r.w, r.x, r.y, r.z], [t.x, t.y, t.z])


def _message(T: np.ndarray, frame_id: str, child_frame_id: str, stamp_ns: int) -> TransformStamped:
    msg = TransformStamped()
    msg.header.frame_id = frame_id
    msg.header.stamp = Time(nanoseconds=stamp_ns).to_msg()
    msg.child_frame_id = child_frame_id
    w, x, y, z = (float(v) for v in matrix_to_quaternion(T[:3, :3]))
    r = msg.transform.rotation
    r.w, r.x, r.y, r.z = w, x, y, z
    t = msg.transform.translation
    t.x, t.y, t.z = (float(v) for v in T[:3, 3])
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
    __slots__ = ("stamp", "parent", "translation", "rotation")

    def __init__(self, stamp: int, parent: str, transform):
        self.stamp = stamp
        self.parent = parent
        t, r = transform.translation, transform.rotation
        self.translation = np.array([t.x, t.y, t.z], dtype=np.float64)
        q = np.array([r.w, r.x, r.y, r.z], dtype=np.float64)
        self.rotation = q / np.linalg.norm(q)


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
        self._static: dict[str, tuple[str, np.ndarray]] = {}
        self._dynamic: dict[str, list[_Sample]] = {}
        self._changed = threading.Condition()
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
    def set_transform(self, transform: TransformStamped, authority: str) -> bool:
        """Store a dynamic transform; returns False (and stores nothing) if tf2 would reject it."""
        if rejection_reason(transform):
            return False
        sample = _Sample(_to_ns(transform.header.stamp), _strip_slash(transform.header.frame_id),
                         transform.transform)
        with self._changed:
            samples = self._dynamic.setdefault(_strip_slash(transform.child_frame_id), [])
            if samples and sample.stamp < samples[-1].stamp - self.cache_ns:
                return False                                    # older than the cache holds
            stamps = [s.stamp for s in samples]
            i = bisect.bisect_left(stamps, sample.stamp)
            if i < len(samples) and samples[i].stamp == sample.stamp:
                samples[i] = sample
            else:
                samples.insert(i, sample)
            oldest = samples[-1].stamp - self.cache_ns
            while samples[0].stamp < oldest:
                samples.pop(0)
            self._changed.notify_all()
        return True

    def set_transform_static(self, transform: TransformStamped, authority: str) -> bool:
        """Store a transform valid at every time."""
        if rejection_reason(transform):
            return False
        with self._changed:
            self._static[_strip_slash(transform.child_frame_id)] = (_strip_slash(transform.header.frame_id),
                                                                    _matrix(transform.transform))
            self._changed.notify_all()
        return True

    def clear(self) -> None:
        """Forget the dynamic transforms (static ones stay, as in tf2)."""
        with self._changed:
            self._dynamic.clear()

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
            for frame in (target_frame, source_frame, fixed_frame):   # tf2 validates all three first
                self._validate(frame)
            fixed_from_source, _ = self._lookup(fixed_frame, source_frame, t_source)
            target_from_fixed, used = self._lookup(target_frame, fixed_frame, t_target)
            return _message(target_from_fixed @ fixed_from_source, target_frame, source_frame, used)
        return self._wait(attempt, timeout)

    def can_transform(self, target_frame: str, source_frame: str, time, timeout=Duration()) -> bool:
        if target_frame == source_frame:
            return True
        try:
            self.lookup_transform(target_frame, source_frame, time, timeout)
            return True
        except TransformException:
            return False

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

    def _parent(self, frame: str) -> str | None:
        if frame in self._static:
            return self._static[frame][0]
        samples = self._dynamic.get(frame)
        return samples[-1].parent if samples else None

    def _chain(self, frame: str) -> list[str]:
        """``frame`` and its ancestors up to the root."""
        chain = [frame]
        while (parent := self._parent(chain[-1])) is not None:
            if parent in chain or len(chain) > _MAX_CHAIN:
                raise LookupException(f"loop in the transform tree at '{parent}'")
            chain.append(parent)
        return chain

    def _link(self, child: str, stamp: int) -> np.ndarray:
        """``T_parent_from_child`` of one edge at ``stamp``."""
        if child in self._static:
            return self._static[child][1]
        samples = self._dynamic[child]
        first, last = samples[0].stamp, samples[-1].stamp
        if stamp < first or stamp > last:
            when = "past" if stamp < first else "future"
            raise ExtrapolationException(
                f"lookup of '{child}' would require extrapolation into the {when}: requested "
                f"{stamp / 1e9:.6f} s, data from {first / 1e9:.6f} to {last / 1e9:.6f} s")
        i = bisect.bisect_left([s.stamp for s in samples], stamp)
        after = samples[i]
        if after.stamp == stamp:
            return transform_from_pose(after.rotation, after.translation)
        before = samples[i - 1]
        ratio = (stamp - before.stamp) / (after.stamp - before.stamp)
        translation = before.translation + ratio * (after.translation - before.translation)
        return transform_from_pose(_slerp(before.rotation, after.rotation, ratio), translation)

    def _validate(self, frame: str) -> None:
        """tf2's ``validateFrameId``: a usable name of a frame the buffer knows."""
        if not frame or frame.startswith("/"):
            raise InvalidArgumentException(f"invalid frame id '{frame}': in tf2 frame ids cannot be empty or "
                                           "start with a '/'")
        if not self._known(frame):
            raise LookupException(f"frame '{frame}' does not exist")

    def _known(self, frame: str) -> bool:
        return (frame in self._static or bool(self._dynamic.get(frame))
                or any(parent == frame for parent, _ in self._static.values())
                or any(samples[-1].parent == frame for samples in self._dynamic.values() if samples))

    def _lookup(self, target: str, source: str, stamp: int) -> tuple[np.ndarray, int]:
        """``(T_target_from_source, stamp used)``; stamp zero resolves to the latest common time."""
        if target == source:  # identity before any validation, as tf2 (even for an unknown frame)
            samples = self._dynamic.get(target)
            return np.eye(4), (samples[-1].stamp if stamp == 0 and samples else stamp)
        for frame in (target, source):
            self._validate(frame)
        source_chain, target_chain = self._chain(source), self._chain(target)
        common = next((f for f in target_chain if f in source_chain), None)
        if common is None:
            raise ConnectivityException(
                f"'{source}' (tree root '{source_chain[-1]}') and '{target}' (tree root "
                f"'{target_chain[-1]}') are not connected")
        source_links = source_chain[:source_chain.index(common)]
        target_links = target_chain[:target_chain.index(common)]
        if stamp == 0:
            latest = [self._dynamic[f][-1].stamp for f in source_links + target_links
                      if f not in self._static]
            stamp = min(latest) if latest else 0
        anc_from_source = np.eye(4)
        for child in reversed(source_links):
            anc_from_source = anc_from_source @ self._link(child, stamp)
        anc_from_target = np.eye(4)
        for child in reversed(target_links):
            anc_from_target = anc_from_target @ self._link(child, stamp)
        return invert_transform(anc_from_target) @ anc_from_source, stamp


TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


class TransformListener:
    """Fills a buffer from /tf and /tf_static (tf2_msgs/TFMessage) through the node's executor."""

    def __init__(self, buffer, node, *, spin_thread: bool = False, qos=TF_QOS, static_qos=TF_STATIC_QOS):
        from tf2_msgs.msg import TFMessage  # generated by scripts/build_tf2_msgs.sh in pip-only setups

        self.buffer = buffer
        self.node = node
        self.rejected = 0
        self.tf_sub = node.create_subscription(TFMessage, "/tf", self._on_tf, qos)
        self.tf_static_sub = node.create_subscription(TFMessage, "/tf_static", self._on_tf_static,
                                                      static_qos)

    def _on_tf(self, msg) -> None:
        for t in msg.transforms:
            if not self.buffer.set_transform(t, "default_authority"):
                self._reject(t)

    def _on_tf_static(self, msg) -> None:
        for t in msg.transforms:
            if not self.buffer.set_transform_static(t, "default_authority"):
                self._reject(t)

    def _reject(self, t: TransformStamped) -> None:
        self.rejected += 1
        self.node.get_logger().warning(
            f"ignoring transform {t.header.frame_id} -> {t.child_frame_id}: "
            f"{rejection_reason(t) or 'older than the cache'}", throttle_duration_sec=5.0)

    def unregister(self) -> None:
        self.node.destroy_subscription(self.tf_sub)
        self.node.destroy_subscription(self.tf_static_sub)
