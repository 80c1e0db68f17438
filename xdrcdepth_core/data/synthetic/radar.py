"""Automotive radar (Continental ARS408-like, the nuScenes RADAR_FRONT) in the nuScenes 18-field layout.

Geometry. The radar has no elevation: rays are cast in its horizontal plane (z = 0 in the radar frame, 0.5 m
above the road), every 0.2 deg over +-60 deg. Coverage as the ARS408 near/far scans: ranges up to 70 m
within +-60 deg, up to 250 m within +-9 deg. Hits are grouped by object; each object yields a Poisson number of
detections (means: cars 3, trucks 4.5, buildings 1 + 1 per 2.5 deg of facade seen, at most 12; poles,
pedestrians, tree trunks 0.4-0.8), picked at random among its hit rays with weight cos^2(incidence) (strong
returns face the radar). Per sweep that gives ~60-125 returns (capped at :data:`MAX_RETURNS`, nearest
kept), ~40-80 after the devkit's default filters (real scene-0061 RADAR_FRONT: 124-125 and 56-77).

Noise (documented sigmas): range ``RANGE_SIGMA_M`` = 0.15 m, azimuth ``AZIMUTH_SIGMA_DEG`` = 0.3 deg, then
x/y quantised to 0.2 m as in nuScenes files; z is always 0. Radial velocity noise ``VELOCITY_SIGMA`` =
0.1 m/s, raw velocities quantised to 0.25 m/s.

Velocities. With ``u`` the unit vector from the radar to the detection, the radar measures the radial
relative speed ``v_r = (v_object - v_sensor) . u`` (``v_sensor`` includes the ego yaw rate x lever arm).
``vx, vy = v_r u`` (radar frame, like nuScenes raw velocities: about -ego speed for static objects ahead);
``vx_comp, vy_comp = (v_r + v_sensor . u) u``, the ego-motion compensated radial velocity.

Spurious returns. Clutter: Poisson(22) points, half along the curbs, half uniform in the near scan, with low
RCS and mostly low-confidence states. Ghosts: 30 % of vehicle detections also appear mirrored across the
building facade line on their side (multipath via the wall), 6-10 dB weaker.

Fields as the ARS408 cluster list (nuScenes devkit docs): ``dyn_prop`` 0 moving, 1 stationary, 2 oncoming,
3 stationary candidate, 4 unknown, 6 crossing moving; ``ambig_state`` 3 = unambiguous; ``invalid_state`` 0 =
valid (70 % of clutter and 30 % of targets get other states, so the devkit's default filters drop them,
as they drop about half of the real returns); ``pdh0`` false-alarm class (1 <25 %, 3 75 %, 6 99.9 %).
:data:`KIND_TARGET`, :data:`KIND_CLUTTER`, :data:`KIND_GHOST` label each point in the truth side file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xdrcdepth_core.data.radar_pcd import RADAR_FIELDS
from xdrcdepth_core.data.synthetic.layout import ROAD_Y, Primitives, SceneLayout
from xdrcdepth_core.data.synthetic.raycast import cast, primitive_attribute, surface_normals

RANGE_SIGMA_M = 0.15
AZIMUTH_SIGMA_DEG = 0.3
VELOCITY_SIGMA = 0.1
XY_QUANTUM_M = 0.2
NEAR_RANGE_M, NEAR_FOV_DEG = 70.0, 60.0
FAR_RANGE_M, FAR_FOV_DEG = 250.0, 9.0
KIND_TARGET, KIND_CLUTTER, KIND_GHOST = 0, 1, 2
#: At most this many returns per sweep, nearest first (real RADAR_FRONT files hold 124-125).
MAX_RETURNS = 125

_AZIMUTHS = np.radians(np.arange(-NEAR_FOV_DEG, NEAR_FOV_DEG + 1e-9, 0.2))
_DETECTIONS_PER_OBJECT = {"car": 3.0, "truck": 4.5, "pedestrian": 0.7, "pole": 0.8, "tree": 0.4}
_INVALID_STATES = np.array([4, 7, 9, 11, 16])


@dataclass
class RadarSweep:
    """The 18 fields (``RADAR_FIELDS``) plus truth: kind, noise-free range and object index per point."""

    fields: dict[str, np.ndarray]
    kind: np.ndarray
    true_range: np.ndarray  # noise-free range of targets (NaN for clutter/ghosts)
    obj: np.ndarray  # object index (-1 for clutter)


def _in_coverage(r: np.ndarray, az: np.ndarray) -> np.ndarray:
    a = np.abs(np.degrees(az))
    return ((r <= NEAR_RANGE_M) & (a <= NEAR_FOV_DEG)) | ((r <= FAR_RANGE_M) & (a <= FAR_FOV_DEG))


def sweep(layout: SceneLayout, prims: Primitives, t: float, T_world_from_radar: np.ndarray,
          rng: np.random.Generator) -> RadarSweep:
    """One radar measurement cycle at scene time ``t``."""
    R, origin = T_world_from_radar[:3, :3], T_world_from_radar[:3, 3]
    dirs_radar = np.stack([np.cos(_AZIMUTHS), np.sin(_AZIMUTHS), np.zeros_like(_AZIMUTHS)], axis=-1)
    t_hit, code = cast(origin, (dirs_radar @ R.T)[None], prims, max_t=FAR_RANGE_M)
    t_hit, code = t_hit[0], code[0]
    obj = primitive_attribute(code, prims, prims.box_obj, prims.sphere_obj, -1)
    valid = (code > 0) & _in_coverage(t_hit, _AZIMUTHS)
    normals, _ = surface_normals(origin + t_hit[valid, None] * (dirs_radar[valid] @ R.T), code[valid], prims)
    weight = np.zeros(len(code))
    weight[valid] = np.sum((dirs_radar[valid] @ R.T) * normals, axis=1) ** 2 + 0.05

    chosen: list[int] = []
    for k in np.unique(obj[valid]):
        rays = np.flatnonzero(valid & (obj == k))
        kind = layout.objects[k].kind
        if kind == "building":
            mean = np.degrees(np.ptp(_AZIMUTHS[rays])) / 2.5 + 1.0
        else:
            mean = _DETECTIONS_PER_OBJECT.get(kind, 0.0)
        n = min(int(rng.poisson(mean)), len(rays), 12)
        if n:
            p = weight[rays] / weight[rays].sum()
            chosen.extend(rng.choice(rays, size=n, replace=False, p=p).tolist())
    chosen = np.array(sorted(chosen), dtype=int)

    true_r = t_hit[chosen]
    target_obj = obj[chosen]
    r = true_r + rng.normal(0, RANGE_SIGMA_M, len(chosen))
    az = _AZIMUTHS[chosen] + np.radians(rng.normal(0, AZIMUTH_SIGMA_DEG, len(chosen)))
    xy = np.column_stack([r * np.cos(az), r * np.sin(az)])
    rcs = np.array([layout.objects[k].rcs_dbsm for k in target_obj]) + rng.normal(0, 2.0, len(chosen))
    kind = np.full(len(chosen), KIND_TARGET)

    # Ghosts: vehicle returns mirrored across the facade line on their side (in the world frame).
    vehicle = np.array([layout.objects[k].kind in ("car", "truck") for k in target_obj], dtype=bool)
    ghost_src = np.flatnonzero(vehicle & (rng.random(len(chosen)) < 0.3))
    if len(ghost_src):
        world = xy[ghost_src] @ R[:2, :2].T + origin[:2]
        facade = np.where(world[:, 1] < ROAD_Y, layout.facade_y[0], layout.facade_y[1])
        world[:, 1] = 2 * facade - world[:, 1]
        ghost_xy = (world - origin[:2]) @ R[:2, :2]
        r_g, az_g = np.linalg.norm(ghost_xy, axis=1), np.arctan2(ghost_xy[:, 1], ghost_xy[:, 0])
        ok = _in_coverage(r_g, az_g)
        xy = np.vstack([xy, ghost_xy[ok]])
        rcs = np.concatenate([rcs, rcs[ghost_src[ok]] - rng.uniform(6, 10, ok.sum())])
        kind = np.concatenate([kind, np.full(ok.sum(), KIND_GHOST)])
        target_obj = np.concatenate([target_obj, target_obj[ghost_src[ok]]])
        true_r = np.concatenate([true_r, np.full(ok.sum(), np.nan)])

    # Clutter: half along the curbs ahead, half uniform over the near scan.
    n_clutter = int(rng.poisson(22))
    n_curb = n_clutter // 2
    curb_world = np.column_stack([origin[0] + rng.uniform(3, NEAR_RANGE_M, n_curb),
                                  ROAD_Y + rng.choice([-1, 1], n_curb) * layout.road_half_width
                                  + rng.normal(0, 0.3, n_curb)])
    curb_xy = (curb_world - origin[:2]) @ R[:2, :2]
    r_u = np.sqrt(rng.uniform(1, NEAR_RANGE_M ** 2, n_clutter - n_curb))
    az_u = np.radians(rng.uniform(-NEAR_FOV_DEG, NEAR_FOV_DEG, n_clutter - n_curb))
    clutter_xy = np.vstack([curb_xy, np.column_stack([r_u * np.cos(az_u), r_u * np.sin(az_u)])])
    keep = _in_coverage(np.linalg.norm(clutter_xy, axis=1), np.arctan2(clutter_xy[:, 1], clutter_xy[:, 0]))
    clutter_xy = clutter_xy[keep]
    xy = np.vstack([xy, clutter_xy])
    rcs = np.concatenate([rcs, rng.uniform(-10, 5, len(clutter_xy))])
    kind = np.concatenate([kind, np.full(len(clutter_xy), KIND_CLUTTER)])
    target_obj = np.concatenate([target_obj, np.full(len(clutter_xy), -1)])
    true_r = np.concatenate([true_r, np.full(len(clutter_xy), np.nan)])

    return _fields(layout, t, xy, rcs, kind, target_obj, true_r, T_world_from_radar, rng)


def _fields(layout: SceneLayout, t: float, xy: np.ndarray, rcs: np.ndarray, kind: np.ndarray, obj: np.ndarray,
            true_r: np.ndarray, T_world_from_radar: np.ndarray, rng: np.random.Generator) -> RadarSweep:
    n = len(xy)
    R, origin = T_world_from_radar[:3, :3], T_world_from_radar[:3, 3]
    u = xy / np.maximum(np.linalg.norm(xy, axis=1, keepdims=True), 1e-6)  # radar-frame unit directions
    u_world = u @ R[:2, :2].T
    v_ego, yaw_rate = layout.ego_velocity(t)
    lever = origin - layout.ego_position(t)
    v_sensor = v_ego[:2] + yaw_rate * np.array([-lever[1], lever[0]])
    v_obj = np.array([layout.objects[k].velocity if k >= 0 else np.zeros(2) for k in obj]).reshape(-1, 2)
    ghost = kind == KIND_GHOST
    v_obj[ghost, 1] *= -1  # the mirror image moves mirrored
    v_sensor_r = u_world @ v_sensor
    v_r = np.sum(v_obj * u_world, axis=1) - v_sensor_r + rng.normal(0, VELOCITY_SIGMA, n)
    v_r = np.round(v_r / 0.25) * 0.25
    v_comp = v_r + v_sensor_r

    moving = np.abs(np.sum(v_obj * u_world, axis=1)) > 0.5
    forward = R[:2, 0]
    along = v_obj @ forward
    across = np.abs(v_obj @ np.array([-forward[1], forward[0]]))
    dyn_prop = np.where(rng.random(n) < 0.75, 1, 3)
    dyn_prop = np.where(moving, np.where(across > np.abs(along), 6, np.where(along < 0, 2, 0)), dyn_prop)
    clutter = kind == KIND_CLUTTER
    dyn_prop[clutter] = rng.choice([1, 3, 4], clutter.sum())

    low_confidence = clutter & (rng.random(n) < 0.7) | (kind == KIND_TARGET) & (rng.random(n) < 0.3)
    invalid_state = np.where(low_confidence, rng.choice(_INVALID_STATES, n), 0)
    ambig_state = np.where(clutter & (rng.random(n) < 0.3), rng.choice([1, 2], n), 3)
    pdh0 = np.where(clutter, rng.choice([3, 6], n), np.where(low_confidence, 3, 1))

    quantised = np.round(xy / XY_QUANTUM_M) * XY_QUANTUM_M
    fields = {
        "x": quantised[:, 0], "y": quantised[:, 1], "z": np.zeros(n),
        "dyn_prop": dyn_prop, "id": np.zeros(n), "rcs": np.round(rcs / 0.5) * 0.5,
        "vx": v_r * u[:, 0], "vy": v_r * u[:, 1], "vx_comp": v_comp * u[:, 0], "vy_comp": v_comp * u[:, 1],
        "is_quality_valid": np.ones(n), "ambig_state": ambig_state,
        "x_rms": rng.integers(19, 23, n), "y_rms": rng.integers(19, 23, n), "invalid_state": invalid_state,
        "pdh0": pdh0, "vx_rms": rng.integers(16, 20, n), "vy_rms": np.full(n, 3),
    }
    order = np.argsort(np.hypot(xy[:, 0], xy[:, 1]), kind="stable")[:MAX_RETURNS]  # ids count up with range
    fields = {name: np.asarray(fields[name])[order] for name in RADAR_FIELDS}
    fields["id"] = np.arange(len(order))
    return RadarSweep(fields, kind[order], true_r[order], obj[order])
