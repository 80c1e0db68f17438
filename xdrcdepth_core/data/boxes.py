"""Annotated 3-D boxes of a sample seen from its camera: image rectangles, range, velocity, radar returns inside.

The boxes come from the devkit (``nusc.get_boxes(camera sample_data token)``: the sample's annotations, global
frame) and are moved into the camera's optical frame with the camera's own ego pose, as
``nusc.get_sample_data`` does. Per box:

* **rectangle** ``x0, y0, x1, y1`` in *pixel-edge* coordinates: pixel ``(row i, col j)`` covers
  ``x in [j, j + 1)``, ``y in [i, i + 1)``, i.e. ``x = u + 0.5`` for the projection ``u`` of
  :mod:`.geometry` (pixel centres at integers). In these coordinates a resize by ``s`` is ``x * s``, a crop
  subtracts its offset and a horizontal flip is ``x -> W - x``. The rectangle is the bounding box of the
  projected box after clipping the box to the near plane ``z >= near`` (so a box reaching behind the camera
  still gets its visible part), clipped to the image ``[0, W] x [0, H]``; boxes without a part inside are
  dropped.
* **range**: distance in metres from the camera centre to the box centre.
* **velocity** ``vx, vy``: ``nusc.box_velocity`` (global frame, centred differences of the instance's
  annotations) rotated into the ego frame of the camera timestamp (x forward, y left), m/s; 0 where the devkit
  cannot estimate it (a single annotation of the instance: NaN there).

``boxes`` (the cache key) keeps the categories of the nuScenes detection classes (:data:`BOX_CATEGORIES`:
devkit ``category_to_detection_name``: cars, trucks, buses, trailers, construction vehicles, motorcycles,
bicycles, pedestrians, barriers, traffic cones). The radar-confidence ground truth uses vehicles and
pedestrians only (:func:`is_confidence_category`, see :mod:`.radar_confidence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .geometry import invert_transform, quaternion_to_matrix, transform_points
from .nuscenes_sweeps import sensor_poses

#: Categories whose boxes go into the ``boxes`` cache key: those of the nuScenes detection classes
#: (nuscenes-devkit 1.2.0 ``eval/detection/utils.py`` ``category_to_detection_name``).
BOX_CATEGORIES: frozenset[str] = frozenset({
    "movable_object.barrier", "vehicle.bicycle", "vehicle.bus.bendy", "vehicle.bus.rigid", "vehicle.car",
    "vehicle.construction", "vehicle.motorcycle", "human.pedestrian.adult", "human.pedestrian.child",
    "human.pedestrian.construction_worker", "human.pedestrian.police_officer", "movable_object.trafficcone",
    "vehicle.trailer", "vehicle.truck"})

#: Category prefixes whose boxes tie radar returns for the confidence ground truth. CaFNet lists car,
#: motorcycle, bicycle, bus.rigid, truck, trailer and adult pedestrian (papers.md 3.2); we take every vehicle and
#: pedestrian subclass (bendy buses, emergency and construction vehicles, children, ... are objects too).
CONFIDENCE_CATEGORY_PREFIXES: tuple[str, ...] = ("vehicle.", "human.pedestrian.")

#: Columns of the ``boxes`` array.
BOX_COLUMNS: tuple[str, ...] = ("x0", "y0", "x1", "y1", "range_m", "vx", "vy")

#: Nearest depth (m) of the part of a box that is projected (as :func:`.geometry.project_points`' default).
NEAR_PLANE = 0.1


def is_confidence_category(name: str) -> bool:
    return name.startswith(CONFIDENCE_CATEGORY_PREFIXES)


@dataclass(frozen=True)
class CameraBoxes:
    """N annotated boxes in a camera's optical frame."""

    centres: np.ndarray      # N x 3
    rotations: np.ndarray    # N x 3 x 3, box frame (x along length, y along width, z up) -> camera
    wlh: np.ndarray          # N x 3 width, length, height (m)
    velocity: np.ndarray     # N x 2 vx, vy in the ego frame (m/s), 0 where unknown
    categories: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.centres)

    def corners(self) -> np.ndarray:
        """N x 8 x 3 corners in the camera frame."""
        signs = np.array([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=np.float64)
        half = self.wlh[:, [1, 0, 2]] / 2.0  # box x = length, y = width, z = height
        local = signs[None] * half[:, None]  # N x 8 x 3
        return np.einsum("nij,nkj->nki", self.rotations, local) + self.centres[:, None]


def camera_boxes(nusc, camera_token: str) -> CameraBoxes:
    """The sample's annotated boxes in the optical frame of the camera reading ``camera_token``."""
    cam2ego, ego2global = sensor_poses(nusc, camera_token)
    cam_from_global = invert_transform(cam2ego) @ invert_transform(ego2global)
    boxes = nusc.get_boxes(camera_token)
    n = len(boxes)
    centres = np.zeros((n, 3))
    rotations = np.zeros((n, 3, 3))
    wlh = np.zeros((n, 3))
    velocity = np.zeros((n, 2))
    for i, box in enumerate(boxes):
        centres[i] = box.center
        rotations[i] = cam_from_global[:3, :3] @ quaternion_to_matrix(box.orientation.elements)
        wlh[i] = box.wlh
        v = ego2global[:3, :3].T @ np.asarray(nusc.box_velocity(box.token), dtype=np.float64)
        velocity[i] = np.where(np.isfinite(v[:2]), v[:2], 0.0)
    return CameraBoxes(transform_points(cam_from_global, centres), rotations, wlh, velocity,
                       tuple(box.name for box in boxes))


def box_rectangles(corners: np.ndarray, K: np.ndarray, image_hw: tuple[int, int],
                   near: float = NEAR_PLANE) -> tuple[np.ndarray, np.ndarray]:
    """Image rectangles (N x 4 ``x0, y0, x1, y1``, pixel-edge coordinates) of boxes given by their N x 8 x 3
    optical-frame corners, and whether each has a part in the image (N bool; rows of boxes without one are 0).

    The part of a box in front of the ``near`` plane is a convex polytope whose vertices are the corners in
    front and the crossings of the near plane by the segments between corners in front and behind; its
    projection is spanned by those vertices (crossings of diagonals lie inside the polytope and change nothing).
    """
    corners = np.asarray(corners, dtype=np.float64).reshape(-1, 8, 3)
    K = np.asarray(K, dtype=np.float64)
    h, w = image_hw
    z = corners[..., 2]
    uv = np.zeros((len(corners), 2, 2))  # per box: (min u, min v), (max u, max v) of the visible part
    whole = np.all(z >= near, axis=1)    # the common case: no clipping needed
    if whole.any():
        uvw = corners[whole] @ K.T
        projected = uvw[..., :2] / uvw[..., 2:3]
        uv[whole] = np.stack([projected.min(axis=1), projected.max(axis=1)], axis=1)
    pairs = np.array(list(combinations(range(8), 2)))
    partial = np.flatnonzero(~whole & np.any(z >= near, axis=1))
    for n in partial:
        c, front = corners[n], z[n] >= near
        a, b = c[pairs[:, 0]], c[pairs[:, 1]]
        crossing = front[pairs[:, 0]] != front[pairs[:, 1]]
        t = (near - a[crossing, 2]) / (b[crossing, 2] - a[crossing, 2])
        points = np.concatenate([c[front], a[crossing] + t[:, None] * (b[crossing] - a[crossing])])
        uvw = points @ K.T
        projected = uvw[:, :2] / uvw[:, 2:3]
        uv[n] = projected.min(axis=0), projected.max(axis=0)
    visible_part = whole.copy()
    visible_part[partial] = True
    lo = np.maximum(uv[:, 0] + 0.5, 0.0)  # pixel-edge coordinates
    hi = np.minimum(uv[:, 1] + 0.5, [w, h])
    valid = visible_part & np.all(hi > lo, axis=1)
    rects = np.where(valid[:, None], np.concatenate([lo, hi], axis=1), 0.0)
    return rects, valid


def box_table(boxes: CameraBoxes, rects: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """M x 7 float32 rows ``x0, y0, x1, y1, range_m, vx, vy`` of the boxes where ``keep`` is true."""
    keep = np.asarray(keep, dtype=bool)
    if not keep.any():
        return np.zeros((0, len(BOX_COLUMNS)), dtype=np.float32)
    ranges = np.linalg.norm(boxes.centres[keep], axis=1)
    return np.concatenate([rects[keep], ranges[:, None], boxes.velocity[keep]], axis=1).astype(np.float32)


def points_in_boxes(points_cam: np.ndarray, boxes: CameraBoxes, candidates: np.ndarray | None = None,
                    tolerance: float = 0.5) -> np.ndarray:
    """For each optical-frame point, the index of the box it lies in (each face moved out by ``tolerance``
    metres), -1 for none; among several boxes the one with the nearest centre. ``candidates`` (N bool)
    restricts the boxes considered."""
    points = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    indices = np.arange(len(boxes)) if candidates is None else np.flatnonzero(candidates)
    owner = np.full(len(points), -1, dtype=np.int64)
    if len(indices) == 0 or len(points) == 0:
        return owner
    offset = points[None] - boxes.centres[indices, None]                    # B x N x 3
    local = np.einsum("bnj,bji->bni", offset, boxes.rotations[indices])    # R^T (p - c)
    half = boxes.wlh[indices][:, [1, 0, 2]] / 2.0 + tolerance
    inside = np.all(np.abs(local) <= half[:, None], axis=2)                # B x N
    dist = np.where(inside, np.linalg.norm(offset, axis=2), np.inf)
    nearest = np.argmin(dist, axis=0)
    hit = np.isfinite(dist[nearest, np.arange(len(points))])
    owner[hit] = indices[nearest[hit]]
    return owner
