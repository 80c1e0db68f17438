"""Rigid-body geometry and pinhole projection shared by data preparation, synthesis and the node.

Conventions (nuScenes and REP 103):

* Quaternions are ``[w, x, y, z]`` (nuScenes tables and ``frames.json``); ROS messages carry
  ``[x, y, z, w]`` and are converted at the ROS boundary.
* A pose ``(rotation, translation)`` maps points of the child frame into the parent frame:
  ``p_parent = R @ p_child + t``. nuScenes ``calibrated_sensor`` is sensor -> ego, ``ego_pose`` is
  ego -> global.
* Homogeneous transforms are 4x4 float64 arrays; ``T_a_from_b`` maps points in frame ``b`` to ``a``.
* Cameras are optical frames (z forward, x right, y down); ``K`` is the 3x3 intrinsic matrix.
  Pixel ``(u, v)`` has its centre at integer coordinates, so pixel index = ``floor(u + 0.5)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def quaternion_to_matrix(q_wxyz: Sequence[float]) -> np.ndarray:
    """Rotation matrix of a (not necessarily unit) quaternion ``[w, x, y, z]``."""
    w, x, y, z = np.asarray(q_wxyz, dtype=np.float64)
    n = w * w + x * x + y * y + z * z
    if not np.isfinite(n) or n < 1e-12:
        raise ValueError(f"invalid quaternion {list(q_wxyz)}")
    s = 2.0 / n
    return np.array([
        [1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
        [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
        [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)],
    ])


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Unit quaternion ``[w, x, y, z]`` (w >= 0) of a rotation matrix."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def transform_from_pose(rotation_wxyz: Sequence[float], translation: Sequence[float]) -> np.ndarray:
    """4x4 transform child -> parent from a nuScenes-style pose record."""
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(rotation_wxyz)
    T[:3, 3] = np.asarray(translation, dtype=np.float64)
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    R, t = T[:3, :3], T[:3, 3]
    inv = np.eye(4)
    inv[:3, :3] = R.T
    inv[:3, 3] = -R.T @ t
    return inv


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to ``N x 3`` points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ T[:3, :3].T + T[:3, 3]


def sensor_to_sensor(sensor2ego_src: np.ndarray, ego2global_src: np.ndarray,
                     ego2global_dst: np.ndarray, sensor2ego_dst: np.ndarray) -> np.ndarray:
    """Ego-motion compensated transform: src sensor(t_src) -> ego(t_src) -> global -> ego(t_dst) -> dst.

    All four arguments are 4x4 child -> parent transforms; the result maps src-sensor points into
    the destination sensor frame at the destination timestamp.
    """
    return (invert_transform(sensor2ego_dst) @ invert_transform(ego2global_dst)
            @ ego2global_src @ sensor2ego_src)


def project_points(points_cam: np.ndarray, K: np.ndarray, image_hw: tuple[int, int],
                   min_depth: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project optical-frame points into an image.

    Returns ``(uv, depth, keep)``: ``uv`` (M x 2 float pixel coordinates) and ``depth`` (M, metres
    along optical z) of the points in front of the camera (z > ``min_depth``) whose rounded pixel
    lies inside ``image_hw``; ``keep`` is the boolean mask over the N input points.
    """
    points_cam = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    K = np.asarray(K, dtype=np.float64)
    z = points_cam[:, 2]
    finite = np.all(np.isfinite(points_cam), axis=1)
    front = finite & (z > min_depth)
    uvw = points_cam[front] @ K.T
    uv = uvw[:, :2] / uvw[:, 2:3]
    h, w = image_hw
    col = np.floor(uv[:, 0] + 0.5)
    row = np.floor(uv[:, 1] + 0.5)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    keep = np.zeros(len(points_cam), dtype=bool)
    keep[np.flatnonzero(front)[inside]] = True
    return uv[inside], z[front][inside], keep


def scale_intrinsics(K: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """Intrinsics after resizing an image from ``src_hw`` to ``dst_hw`` (pixel centres preserved).

    With centre-at-integer pixels, a resize by factor s maps u to ``(u + 0.5) * s - 0.5``.
    """
    sy = dst_hw[0] / src_hw[0]
    sx = dst_hw[1] / src_hw[1]
    K2 = np.array(K, dtype=np.float64)
    K2[0, 0] *= sx
    K2[0, 1] *= sx
    K2[0, 2] = (K2[0, 2] + 0.5) * sx - 0.5
    K2[1, 1] *= sy
    K2[1, 2] = (K2[1, 2] + 0.5) * sy - 0.5
    return K2


def crop_intrinsics(K: np.ndarray, top: int, left: int) -> np.ndarray:
    """Intrinsics after cropping ``top`` rows and ``left`` columns off an image."""
    K2 = np.array(K, dtype=np.float64)
    K2[0, 2] -= left
    K2[1, 2] -= top
    return K2


def pinhole_intrinsics_valid(K: np.ndarray) -> bool:
    """Whether a 3 x 3 ``K`` is a usable pinhole matrix: finite, fx and fy > 0, last row 0 0 1 (a NaN or
    non-positive focal length projects every point off the image, or mirrors it). Shared by the estimator's input
    check and the node's camera_info check."""
    return bool(np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0
                and np.allclose(K[2], (0, 0, 1), rtol=0, atol=1e-9))
