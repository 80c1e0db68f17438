"""Camera renderer: exact per-pixel depth by ray casting, textured Lambertian shading, sky.

Pixel ``(u, v)`` (centre at integer coordinates, as :mod:`xdrcdepth_core.data.geometry`) looks along
``K^-1 [u, v, 1]`` in the optical frame; with that optical-z = 1 direction the ray parameter of the nearest
hit *is* the depth along the optical axis, so the depth map is exact (float64 analytic intersections).
Shading: albedo x (sky ambient + sun x max(0, n.l) x sun visibility) + emitters, with exact cast
shadows (a ray towards the sun from every lit point within ``SHADOW_RANGE_M``); no interreflection (our
simplification). Night lighting adds street lamps and ego headlights as point/spot lights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xdrcdepth_core.data.synthetic import materials as M
from xdrcdepth_core.data.synthetic.layout import ROAD_Y, Primitives, SceneLayout
from xdrcdepth_core.data.synthetic.raycast import Window, cast, occluded, primitive_attribute, surface_normals

_NEAR = 0.05
SHADOW_RANGE_M = 150.0
_CUBE_EDGES = [(a, a | bit) for a in range(8) for bit in (1, 2, 4) if not a & bit]


@dataclass
class Lighting:
    """Illumination of one scene (set by the weather/time condition)."""

    sun: float = 1.1  # sun irradiance scale
    ambient: float = 0.35  # sky ambient scale
    sky_zenith: tuple[float, float, float] = (0.25, 0.42, 0.85)
    sky_horizon: tuple[float, float, float] = (0.7, 0.78, 0.9)
    night_lights: bool = False  # street lamps, headlights, vehicle lights, lit windows
    wet: float = 0.0  # 0 dry .. 1 soaked road (darker, reflects the sky)


@dataclass
class Frame:
    """A rendered view: linear radiance, exact depth (optical z; ``inf`` = sky) and ray length."""

    radiance: np.ndarray  # (H, W, 3) float64 linear RGB
    depth: np.ndarray  # (H, W) metres along the optical axis
    ray_length: np.ndarray  # (H, W) metres from the camera centre (inf = sky)


def _window_fn(T_cam_from_world: np.ndarray, K: np.ndarray, hw: tuple[int, int]):
    """Culling: the pixel rectangle covered by a primitive's 8 bounding corners (near-plane clipped)."""
    h, w = hw

    def window_of(corners: np.ndarray) -> Window | None:
        cam = corners @ T_cam_from_world[:3, :3].T + T_cam_from_world[:3, 3]
        z = cam[:, 2]
        if np.all(z <= _NEAR):
            return None
        pts = [cam[z > _NEAR]]
        for a, b in _CUBE_EDGES:
            if (z[a] > _NEAR) != (z[b] > _NEAR):
                f = (_NEAR - z[a]) / (z[b] - z[a])
                pts.append((cam[a] + f * (cam[b] - cam[a]))[None])
        p = np.concatenate(pts)
        uv = p @ K.T
        u, v = uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2]
        c0, c1 = int(max(np.floor(u.min()), 0)), int(min(np.ceil(u.max()) + 2, w))
        r0, r1 = int(max(np.floor(v.min()), 0)), int(min(np.ceil(v.max()) + 2, h))
        return (r0, r1, c0, c1) if c1 > c0 and r1 > r0 else None

    return window_of


def _sky(dirs_unit: np.ndarray, sun_dir: np.ndarray, light: Lighting) -> np.ndarray:
    elevation = np.clip(dirs_unit[:, 2], 0.0, 1.0) ** 0.6
    sky = (np.asarray(light.sky_horizon) * (1 - elevation[:, None]) + np.asarray(light.sky_zenith) * elevation[:, None])
    glow = np.clip(dirs_unit @ sun_dir, 0.0, 1.0) ** 64
    return sky + (light.sun * glow * 2.0)[:, None]


def render(layout: SceneLayout, prims: Primitives, T_world_from_cam: np.ndarray, K: np.ndarray,
           hw: tuple[int, int], light: Lighting, ego_to_world: np.ndarray) -> Frame:
    """Render the scene ``prims`` from a camera with pose ``T_world_from_cam`` and intrinsics ``K``."""
    h, w = hw
    K = np.asarray(K, dtype=np.float64)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    d_cam = np.stack([(u - K[0, 2] - K[0, 1] * (v - K[1, 2]) / K[1, 1]) / K[0, 0], (v - K[1, 2]) / K[1, 1],
                      np.ones_like(u)], axis=-1)
    R, origin = T_world_from_cam[:3, :3], T_world_from_cam[:3, 3]
    dirs = d_cam @ R.T
    T_cam_from_world = np.linalg.inv(T_world_from_cam)
    depth, code = cast(origin, dirs, prims, _window_fn(T_cam_from_world, K, hw))
    norm = np.linalg.norm(dirs, axis=-1)
    ray_length = depth * norm

    flat_code = code.reshape(-1)
    flat_dirs = (dirs / norm[..., None]).reshape(-1, 3)
    radiance = np.zeros((h * w, 3))
    sky = flat_code < 0
    radiance[sky] = _sky(flat_dirs[sky], layout.sun_direction, light)

    hit = ~sky
    c = flat_code[hit]
    points = origin + depth.reshape(-1)[hit, None] * dirs.reshape(-1, 3)[hit]
    normals, local = surface_normals(points, c, prims)
    material = primitive_attribute(c, prims, prims.box_material, prims.sphere_material, M.GROUND)
    albedo = primitive_attribute(c, prims, prims.box_colour, prims.sphere_colour, [0.0, 0.0, 0.0]).copy()
    half = primitive_attribute(c, prims, prims.box_half, np.ones((len(prims.sphere_radius), 3)), [1.0, 1.0, 1.0])
    emission = np.zeros_like(albedo)

    g = material == M.GROUND
    albedo[g] = M.ground_albedo(points[g, 0], points[g, 1], ROAD_Y, layout.road_half_width, layout.lane_width,
                                layout.lanes_per_direction, layout.parking_width)
    s = material == M.SIDEWALK
    albedo[s] = M.sidewalk_albedo(albedo[s], points[s])
    b = material == M.BUILDING
    albedo[b], lit_windows = M.facade_albedo(albedo[b], local[b], normals[b, 2], half[b],
                                             0.35 if light.night_lights else 0.0)
    f = material == M.FOLIAGE
    albedo[f] *= (0.55 + 0.9 * M.fractal_noise(local[f, 0] * 4 + local[f, 2] * 3, local[f, 1] * 4, 41))[:, None]
    other = ~(g | s | b | f)
    albedo[other] *= (0.92 + 0.16 * M.value_noise(points[other, 0] * 5, points[other, 2] * 5, 51))[:, None]

    ambient = light.ambient * (0.55 + 0.45 * normals[:, 2:3]) * np.asarray(light.sky_horizon)
    cos_sun = np.clip(normals @ layout.sun_direction, 0.0, None)
    if light.sun > 0:  # cast shadows within SHADOW_RANGE_M (beyond, they are a few pixels)
        test = (cos_sun > 0) & (ray_length.reshape(-1)[hit] < SHADOW_RANGE_M)
        cos_sun[np.flatnonzero(test)[occluded(points[test] + 1e-3 * normals[test], layout.sun_direction, prims)]] = 0
    sun = light.sun * cos_sun[:, None] * [1.0, 0.97, 0.9]
    shading = ambient + sun

    glossy = np.zeros(len(c))
    glossy[material == M.GLASS] = 0.25
    glossy[material == M.VEHICLE_BODY] = 0.06
    if light.wet > 0:
        road = g & (np.abs(points[:, 1] - ROAD_Y) <= layout.road_half_width)
        albedo[road] *= 1.0 - 0.5 * light.wet
        glossy[road] = 0.35 * light.wet
    shiny = glossy > 0  # reflect the sky (Schlick-like fresnel, our constants)
    if shiny.any():
        view, n = flat_dirs[hit][shiny], normals[shiny]
        cos_view = np.sum(view * n, axis=-1, keepdims=True)
        mirror = view - 2 * cos_view * n
        mirror[:, 2] = np.abs(mirror[:, 2])
        fresnel = glossy[shiny, None] * ((1 - np.abs(cos_view)) ** 2 + 0.2)
        emission[shiny] += fresnel * _sky(mirror, layout.sun_direction, light) * 0.6

    if light.night_lights:
        shading = shading + _night_irradiance(layout, points, normals, origin, ego_to_world)
        front, rear = M.vehicle_lights(local, half, material)
        emission[front] += [4.0, 3.8, 3.2]
        emission[rear] += [2.5, 0.1, 0.05]
        lamp_face = (material == M.LAMP) & (normals[:, 2] < -0.5)
        emission[lamp_face] += [6.0, 5.0, 3.5]
        lit = np.zeros(len(c), dtype=bool)
        lit[np.flatnonzero(b)[lit_windows]] = True
        emission[lit] += [0.2, 0.16, 0.1]
    radiance[hit] = albedo * shading + emission
    return Frame(radiance.reshape(h, w, 3), depth, ray_length)


def _night_irradiance(layout: SceneLayout, points: np.ndarray, normals: np.ndarray, cam_origin: np.ndarray,
                      ego_to_world: np.ndarray) -> np.ndarray:
    """Street lamps (point lights, 1/d^2) within 45 m of the camera and two ego headlight spots."""
    irradiance = np.zeros((len(points), 1))
    near = layout.lamps[np.linalg.norm(layout.lamps[:, :2] - cam_origin[:2], axis=1) < 45.0]
    for lamp in near:
        to_light = lamp - points
        d2 = np.maximum(np.sum(to_light ** 2, axis=1), 0.5)
        cos = np.clip(np.sum(to_light * normals, axis=1) / np.sqrt(d2), 0, None)
        irradiance[:, 0] += 2.0 * cos / d2
    forward = ego_to_world[:3, 0]
    for side in (-0.75, 0.75):
        lamp = ego_to_world[:3, :3] @ [3.6, side, 0.7] + ego_to_world[:3, 3]
        to_point = points - lamp
        d2 = np.maximum(np.sum(to_point ** 2, axis=1), 1.0)
        along = (to_point @ forward) / np.sqrt(d2)
        cone = np.clip((along - 0.93) / 0.05, 0, 1) ** 2  # ~20 degree beam, soft edge
        cos = np.clip(-np.sum(to_point * normals, axis=1) / np.sqrt(d2), 0, None)
        irradiance[:, 0] += 40.0 * cone * cos / d2
    return irradiance * np.array([1.0, 0.9, 0.7])
