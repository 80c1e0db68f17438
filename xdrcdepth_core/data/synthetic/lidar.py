"""32-beam spinning LiDAR (Velodyne HDL-32E-like, the nuScenes LIDAR_TOP) for ground truth.

Beams: 32 elevations from -30.67 to +10.67 deg in 4/3 deg steps (ring 0 = lowest); 1084 azimuth steps per
turn (0.33 deg, 20 Hz). Each ray's range is the exact ray-cast distance plus Gaussian noise
(:data:`RANGE_SIGMA_M` = 2 cm, the HDL-32E accuracy); :data:`DROPOUT` of returns are lost; returns beyond
:data:`MAX_RANGE_M` are dropped. The sweep is instantaneous at its timestamp (no rolling-shutter motion
within the 50 ms turn: our simplification). Output rows are ``x, y, z, intensity, ring`` in the LiDAR frame,
float32, as nuScenes ``.pcd.bin`` files; intensity 0..255 from material reflectivity and incidence angle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xdrcdepth_core.data.synthetic import materials as M
from xdrcdepth_core.data.synthetic.layout import ROAD_Y, Primitives, SceneLayout
from xdrcdepth_core.data.synthetic.raycast import Window, cast, primitive_attribute, surface_normals

ELEVATIONS_DEG = -30.67 + (4.0 / 3.0) * np.arange(32)
AZIMUTH_STEPS = 1084
RANGE_SIGMA_M = 0.02
DROPOUT = 0.02
MAX_RANGE_M = 80.0


def _beam_directions() -> np.ndarray:
    elevation = np.radians(ELEVATIONS_DEG)[:, None]
    azimuth = (2 * np.pi / AZIMUTH_STEPS) * np.arange(AZIMUTH_STEPS)[None, :]
    return np.stack(np.broadcast_arrays(np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                                        np.sin(elevation)), axis=-1)


def _window_fn(T_lidar_from_world: np.ndarray):
    """Culling: skip primitives beyond range, restrict the others to their azimuth columns."""
    full: Window = (0, len(ELEVATIONS_DEG), 0, AZIMUTH_STEPS)
    step = 2 * np.pi / AZIMUTH_STEPS

    def window_of(corners: np.ndarray) -> Window | None:
        local = corners @ T_lidar_from_world[:3, :3].T + T_lidar_from_world[:3, 3]
        centre = local.mean(axis=0)
        if np.linalg.norm(centre) - np.linalg.norm(local - centre, axis=1).max() > MAX_RANGE_M:
            return None
        if np.linalg.norm(local[:, :2], axis=1).min() < 1.0:
            return full
        az_centre = np.arctan2(centre[1], centre[0])
        rel = np.angle(np.exp(1j * (np.arctan2(local[:, 1], local[:, 0]) - az_centre)))
        if rel.max() - rel.min() > np.pi * 0.9:
            return full
        lo = int(np.floor((az_centre + rel.min()) / step)) - 1
        hi = int(np.ceil((az_centre + rel.max()) / step)) + 2
        if lo < 0 or hi > AZIMUTH_STEPS:
            lo, hi = lo % AZIMUTH_STEPS, hi % AZIMUTH_STEPS
            if lo >= hi:  # the columns wrap around azimuth 0
                return full
        return (0, len(ELEVATIONS_DEG), lo, hi)

    return window_of


@dataclass
class LidarSweep:
    points: np.ndarray  # (N, 5) float32 x, y, z, intensity, ring in the LiDAR frame
    obj: np.ndarray  # (N,) object index of each point (-1 = ground)
    rays_per_object: np.ndarray  # (objects,) rays whose first hit is the object (before dropout)


def _cast(prims: Primitives, T_world_from_lidar: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dirs_lidar = _beam_directions()
    R, origin = T_world_from_lidar[:3, :3], T_world_from_lidar[:3, 3]
    dirs = dirs_lidar @ R.T
    t, code = cast(origin, dirs, prims, _window_fn(np.linalg.inv(T_world_from_lidar)), max_t=MAX_RANGE_M)
    return t, code, dirs_lidar


def unoccluded_rays(prims: Primitives, T_world_from_lidar: np.ndarray, obj: int) -> int:
    """Rays that would hit object ``obj`` if no other object were in the scene (for visibility levels)."""
    _, code, _ = _cast(prims.of_object(obj), T_world_from_lidar)
    return int((code > 0).sum())


def scan(layout: SceneLayout, prims: Primitives, T_world_from_lidar: np.ndarray,
         rng: np.random.Generator) -> LidarSweep:
    """One sweep of the scene ``prims`` from the LiDAR pose ``T_world_from_lidar``."""
    R, origin = T_world_from_lidar[:3, :3], T_world_from_lidar[:3, 3]
    t, code, dirs_lidar = _cast(prims, T_world_from_lidar)
    dirs = dirs_lidar @ R.T
    obj_grid = primitive_attribute(code, prims, prims.box_obj, prims.sphere_obj, -1)
    rays_per_object = np.bincount(obj_grid[code > 0], minlength=len(layout.objects))
    ring = np.broadcast_to(np.arange(len(ELEVATIONS_DEG))[:, None], t.shape)
    # Firing order: azimuth by azimuth, rings within each.
    t, code, ring, dirs_lidar, dirs = (a.swapaxes(0, 1).reshape((-1,) + a.shape[2:])
                                       for a in (t, code, ring, dirs_lidar, dirs))
    keep = np.isfinite(t) & (rng.random(t.shape) >= DROPOUT)
    t, code, ring, dirs_lidar, dirs = t[keep], code[keep], ring[keep], dirs_lidar[keep], dirs[keep]

    points_world = origin + t[:, None] * dirs
    normals, _ = surface_normals(points_world, code, prims)
    material = primitive_attribute(code, prims, prims.box_material, prims.sphere_material, M.GROUND)
    reflectivity = M.REFLECTIVITY[material]
    ground = material == M.GROUND
    reflectivity[ground] = 0.6 * M.ground_albedo(points_world[ground, 0], points_world[ground, 1], ROAD_Y,
                                                  layout.road_half_width, layout.lane_width,
                                                  layout.lanes_per_direction, layout.parking_width).mean(axis=1)
    incidence = np.abs(np.sum(dirs * normals, axis=1))
    intensity = np.clip(np.round(255 * reflectivity * (0.2 + 0.8 * incidence)), 0, 255)

    measured = t + rng.normal(0.0, RANGE_SIGMA_M, t.shape)
    xyz = measured[:, None] * dirs_lidar
    points = np.column_stack([xyz, intensity, ring]).astype(np.float32)
    obj = primitive_attribute(code, prims, prims.box_obj, prims.sphere_obj, -1)
    return LidarSweep(points, obj, rays_per_object)
