"""geometry_msgs transforms <-> 4 x 4 matrices, ``static_transform_publisher``-style specs, and the node's
last-resort static extrinsics (``fallback_transforms``)."""

from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.time import Time

from xdrcdepth_core.data.geometry import matrix_to_quaternion, transform_from_pose
from xdrcdepth_ros.standins import tf2_ros as standin_tf2_ros


def transform_to_matrix(transform) -> np.ndarray:
    """4 x 4 ``T_parent_from_child`` of a geometry_msgs Transform (quaternion x, y, z, w)."""
    r, t = transform.rotation, transform.translation
    return transform_from_pose([r.w, r.x, r.y, r.z], [t.x, t.y, t.z])


def matrix_to_transform(T: np.ndarray, frame_id: str, child_frame_id: str, stamp) -> TransformStamped:
    """TransformStamped (parent ``frame_id``, child ``child_frame_id``) of a 4 x 4 transform."""
    msg = TransformStamped()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp.to_msg() if hasattr(stamp, "to_msg") else stamp
    msg.child_frame_id = child_frame_id
    w, x, y, z = matrix_to_quaternion(T[:3, :3])
    msg.transform.rotation.w, msg.transform.rotation.x = float(w), float(x)
    msg.transform.rotation.y, msg.transform.rotation.z = float(y), float(z)
    tx, ty, tz = (float(v) for v in T[:3, 3])
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = tx, ty, tz
    return msg


def parse_transform_spec(spec: str) -> TransformStamped:
    """``"frame_id child_frame_id x y z qx qy qz qw"`` (static_transform_publisher order) -> message."""
    parts = spec.split()
    if len(parts) != 9:
        raise ValueError(f"transform '{spec}': expected 'frame_id child_frame_id x y z qx qy qz qw'")
    frame_id, child, *numbers = parts
    x, y, z, qx, qy, qz, qw = values = [float(v) for v in numbers]
    if not all(map(math.isfinite, values)):
        raise ValueError(f"transform '{spec}': the numbers must be finite")
    T = transform_from_pose([qw, qx, qy, qz], [x, y, z])
    return matrix_to_transform(T, frame_id, child, Time())


def static_transform_buffer(specs) -> standin_tf2_ros.Buffer:
    """A buffer (always the stand-in: it needs no node) holding only the given static transforms."""
    buffer = standin_tf2_ros.Buffer()
    for spec in specs:
        msg = parse_transform_spec(spec)
        if not buffer.set_transform_static(msg, "parameter"):
            raise ValueError(f"transform '{spec}' is invalid: {standin_tf2_ros.rejection_reason(msg)}")
    return buffer
