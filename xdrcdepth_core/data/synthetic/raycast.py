"""Exact, vectorised ray casting against the scene: ground plane z = 0, yaw-rotated boxes, spheres.

All rays of one call share one origin (a sensor). Ray ``i`` is ``origin + t * dirs[i]``; directions need not
be unit length, so a camera passing directions with optical z = 1 gets ``t`` = depth along the optical axis.
Intersections are analytic (slab test for boxes, quadratic for spheres), so depth is exact to float64.

Hit codes: ``-1`` no hit (sky), ``0`` ground, ``1 .. B`` box ``code - 1``, ``B + 1 .. B + S`` sphere
``code - B - 1``. A *window* restricts a primitive's test to a rectangle of the ray grid (rows, columns):
the camera culls by each primitive's projected bounding rectangle, the LiDAR by its azimuth range.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from xdrcdepth_core.data.synthetic.layout import Primitives

_EPS = 1e-6
Window = tuple[int, int, int, int]  # row0, row1, col0, col1 (half-open)


def box_corners(prims: Primitives) -> np.ndarray:
    """(B, 8, 3) world corners of every box."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    local = signs[None] * prims.box_half[:, None, :]
    c, s = np.cos(prims.box_yaw)[:, None], np.sin(prims.box_yaw)[:, None]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + prims.box_centre[:, None, :]


def sphere_corners(prims: Primitives) -> np.ndarray:
    """(S, 8, 3) corners of each sphere's axis-aligned bounding cube."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    return prims.sphere_centre[:, None, :] + signs[None] * prims.sphere_radius[:, None, None]


def cast(origin: np.ndarray, dirs: np.ndarray, prims: Primitives,
         window_of: Callable[[np.ndarray], Window | None] | None = None,
         max_t: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit of each ray in the ``(R, C, 3)`` grid ``dirs``: returns ``(t, code)``, both ``(R, C)``.

    ``window_of(corners)`` maps a primitive's (8, 3) bounding corners to the grid window its rays can hit
    (``None``: no ray can hit it); without it every primitive is tested against every ray.
    ``t`` is ``inf`` where nothing is hit within ``max_t``.
    """
    origin = np.asarray(origin, dtype=np.float64)
    rows, cols = dirs.shape[:2]
    t_best = np.full((rows, cols), np.inf)
    code = np.full((rows, cols), -1, dtype=np.int32)
    if origin[2] > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            t_ground = np.where(dirs[..., 2] < 0, -origin[2] / dirs[..., 2], np.inf)
        ground = t_ground < max_t
        t_best[ground] = t_ground[ground]
        code[ground] = 0
    full: Window = (0, rows, 0, cols)

    def windows(corners: np.ndarray):
        for k in range(len(corners)):
            yield k, (window_of(corners[k]) if window_of is not None else full)

    n_box = len(prims.box_centre)
    for k, win in windows(box_corners(prims)):
        if win is None:
            continue
        r0, r1, c0, c1 = win
        d = dirs[r0:r1, c0:c1]
        c, s = np.cos(prims.box_yaw[k]), np.sin(prims.box_yaw[k])
        rel = origin - prims.box_centre[k]
        o_local = np.array([c * rel[0] + s * rel[1], -s * rel[0] + c * rel[1], rel[2]])
        d_local = np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1], d[..., 2]], axis=-1)
        half = prims.box_half[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d_local
            t1 = (-half - o_local) * inv
            t2 = (half - o_local) * inv
        t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
        hit = (t_far >= t_near) & (t_near > _EPS) & (t_near < t_best[r0:r1, c0:c1]) & (t_near < max_t)
        t_best[r0:r1, c0:c1][hit] = t_near[hit]
        code[r0:r1, c0:c1][hit] = 1 + k

    for k, win in windows(sphere_corners(prims)):
        if win is None:
            continue
        r0, r1, c0, c1 = win
        d = dirs[r0:r1, c0:c1]
        oc = origin - prims.sphere_centre[k]
        a = np.einsum("...i,...i->...", d, d)
        b = d @ oc
        disc = b * b - a * (oc @ oc - prims.sphere_radius[k] ** 2)
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / a
        hit = (disc >= 0) & (t > _EPS) & (t < t_best[r0:r1, c0:c1]) & (t < max_t)
        t_best[r0:r1, c0:c1][hit] = t[hit]
        code[r0:r1, c0:c1][hit] = 1 + n_box + k
    return t_best, code


def surface_normals(points: np.ndarray, code: np.ndarray, prims: Primitives) -> tuple[np.ndarray, np.ndarray]:
    """World unit normals ``(N, 3)`` and primitive-local coordinates ``(N, 3)`` of hit ``points`` ``(N, 3)``.

    Box-local coordinates are relative to the box centre in its yawed frame; sphere/ground points keep
    world coordinates relative to the sphere centre / origin.
    """
    normals = np.zeros_like(points)
    local = points.copy()
    normals[code == 0] = (0.0, 0.0, 1.0)
    n_box = len(prims.box_centre)
    is_box = (code >= 1) & (code <= n_box)
    if is_box.any():
        k = code[is_box] - 1
        c, s = np.cos(prims.box_yaw[k]), np.sin(prims.box_yaw[k])
        rel = points[is_box] - prims.box_centre[k]
        p = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]], axis=-1)
        axis = np.argmax(np.abs(p) / prims.box_half[k], axis=-1)
        n_local = np.zeros_like(p)
        n_local[np.arange(len(p)), axis] = np.sign(p[np.arange(len(p)), axis])
        normals[is_box] = np.stack([c * n_local[:, 0] - s * n_local[:, 1], s * n_local[:, 0] + c * n_local[:, 1],
                                    n_local[:, 2]], axis=-1)
        local[is_box] = p
    is_sphere = code > n_box
    if is_sphere.any():
        k = code[is_sphere] - 1 - n_box
        rel = points[is_sphere] - prims.sphere_centre[k]
        normals[is_sphere] = rel / np.linalg.norm(rel, axis=-1, keepdims=True)
        local[is_sphere] = rel
    return normals, local


def primitive_attribute(code: np.ndarray, prims: Primitives, box_values: np.ndarray, sphere_values: np.ndarray,
                        ground_value) -> np.ndarray:
    """Per-hit attribute (material, colour, object index) looked up from the hit codes (code >= 0)."""
    n_box = len(prims.box_centre)
    table = np.concatenate([np.asarray([ground_value], dtype=box_values.dtype).reshape((1,) + box_values.shape[1:]),
                            box_values, sphere_values.astype(box_values.dtype)], axis=0)
    return table[np.clip(code, 0, n_box + len(sphere_values))]


def occluded(points: np.ndarray, direction: np.ndarray, prims: Primitives) -> np.ndarray:
    """Whether the ray from each of ``points`` ``(N, 3)`` along the unit ``direction`` hits a primitive
    (sun shadows). Culling: points are sorted by their coordinate across the direction, so each primitive
    only tests the points inside its shadow footprint's bounding rectangle."""
    direction = np.asarray(direction, dtype=np.float64)
    e1 = np.cross(direction, [0.0, 0.0, 1.0] if abs(direction[2]) < 0.9 else [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(direction, e1)
    origins = points + 1e-3 * direction
    a, b = origins @ e1, origins @ e2
    order = np.argsort(a, kind="stable")
    a_sorted = a[order]
    shadow = np.zeros(len(points), dtype=bool)

    def candidates(corners: np.ndarray) -> np.ndarray:
        c1, c2 = corners @ e1, corners @ e2
        lo, hi = np.searchsorted(a_sorted, c1.min()), np.searchsorted(a_sorted, c1.max(), side="right")
        idx = order[lo:hi]
        return idx[(b[idx] >= c2.min()) & (b[idx] <= c2.max()) & ~shadow[idx]]

    for k, corners in enumerate(box_corners(prims)):
        idx = candidates(corners)
        if not len(idx):
            continue
        c, s = np.cos(prims.box_yaw[k]), np.sin(prims.box_yaw[k])
        rel = origins[idx] - prims.box_centre[k]
        o_local = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]], axis=-1)
        d_local = np.array([c * direction[0] + s * direction[1], -s * direction[0] + c * direction[1], direction[2]])
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-prims.box_half[k] - o_local) / d_local
            t2 = (prims.box_half[k] - o_local) / d_local
        t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
        shadow[idx[(t_far >= t_near) & (t_far > _EPS)]] = True
    for k, corners in enumerate(sphere_corners(prims)):
        idx = candidates(corners)
        if not len(idx):
            continue
        oc = origins[idx] - prims.sphere_centre[k]
        b_half = oc @ direction
        disc = b_half ** 2 - (np.sum(oc * oc, axis=1) - prims.sphere_radius[k] ** 2)
        shadow[idx[(disc >= 0) & (-b_half + np.sqrt(np.maximum(disc, 0)) > _EPS)]] = True
    return shadow
