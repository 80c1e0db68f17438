"""Materials: procedural albedo textures (anchored to world/object coordinates, so they stay fixed on
surfaces across frames), LiDAR reflectivity, and light emitters used at night.

Colours are linear RGB in [0, 1]. Textures use a hashed value noise (no random state: the same point always
gets the same value), so consecutive frames see the same texture, as photometric losses expect.
"""

from __future__ import annotations

import numpy as np

GROUND, SIDEWALK, BUILDING, VEHICLE_BODY, VEHICLE_FRONT, CARGO, GLASS, TYRE, POLE, LAMP, BARK, FOLIAGE, CLOTH, \
    SKIN = range(14)

#: LiDAR reflectivity (0..1) per material, for the intensity channel.
REFLECTIVITY = np.array([0.12, 0.3, 0.35, 0.6, 0.6, 0.5, 0.1, 0.05, 0.5, 0.4, 0.2, 0.25, 0.3, 0.3])


def value_noise(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Smooth noise in [0, 1) on the integer lattice, bilinearly interpolated (deterministic hash)."""
    xi, yi = np.floor(x), np.floor(y)
    fx, fy = x - xi, y - yi
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    xi, yi = xi.astype(np.int64), yi.astype(np.int64)

    def h(a, b):
        v = (a * 374761393 + b * 668265263 + seed * 2147483647) & 0xFFFFFFFF
        v = ((v ^ (v >> 13)) * 1274126177) & 0xFFFFFFFF
        return ((v ^ (v >> 16)) & 0xFFFF) / 65536.0

    top = h(xi, yi) * (1 - fx) + h(xi + 1, yi) * fx
    bottom = h(xi, yi + 1) * (1 - fx) + h(xi + 1, yi + 1) * fx
    return top * (1 - fy) + bottom * fy


def fractal_noise(x: np.ndarray, y: np.ndarray, seed: int = 0, octaves: int = 3) -> np.ndarray:
    """Sum of ``octaves`` value-noise layers (frequency x2, amplitude /2), normalised to [0, 1)."""
    total, amplitude, norm = np.zeros_like(x, dtype=float), 1.0, 0.0
    for o in range(octaves):
        total += amplitude * value_noise(x * 2 ** o, y * 2 ** o, seed + o)
        norm += amplitude
        amplitude /= 2
    return total / norm


def ground_albedo(x: np.ndarray, y: np.ndarray, road_y: float, half_width: float, lane_width: float,
                  lanes: int, parking: float) -> np.ndarray:
    """Asphalt with lane markings inside the road, grass/earth outside; returns ``(N, 3)``."""
    across = y - road_y
    grain = fractal_noise(x * 3.0, y * 3.0, 11)
    asphalt = (0.09 + 0.05 * grain + 0.02 * fractal_noise(x * 0.2, y * 0.2, 12))[:, None] * [1.0, 1.0, 1.03]
    grass = (0.5 + 0.5 * fractal_noise(x * 0.7, y * 0.7, 13))[:, None] * [0.09, 0.14, 0.05]
    albedo = np.where((np.abs(across) <= half_width)[:, None], asphalt, grass)
    paint = np.zeros(x.shape, dtype=bool)
    dashed = np.mod(x, 9.0) < 3.0
    lane_edge = lanes * lane_width
    paint |= np.abs(across) < 0.075  # centre line (solid)
    for k in range(1, lanes):
        paint |= (np.abs(np.abs(across) - k * lane_width) < 0.075) & dashed  # lane dividers
    edge = lane_edge if parking > 0 else lane_edge - 0.3  # solid edge line
    paint |= np.abs(np.abs(across) - edge) < 0.075
    paint &= np.abs(across) <= half_width
    worn = 0.55 + 0.2 * grain
    albedo[paint] = worn[paint, None] * [1.0, 1.0, 0.95]
    return albedo


def facade_albedo(base: np.ndarray, local: np.ndarray, normal_z: np.ndarray, half: np.ndarray,
                  lit_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Building walls with a window grid (floors every 3.2 m, windows every 2.6 m) and plain roofs.

    ``local`` are box-local hit coordinates, ``half`` the box half extents. Returns the albedo and a mask
    of window pixels lit from inside (``lit_fraction`` of windows, chosen by hash, used at night).
    """
    along = np.where(np.abs(np.abs(local[:, 0]) - half[:, 0]) < 1e-3, local[:, 1], local[:, 0])
    height = local[:, 2] + half[:, 2]
    grime = 0.85 + 0.3 * fractal_noise(along * 0.8, height * 0.8, 21)
    albedo = base * grime[:, None]
    cell_u, cell_v = np.floor(along / 2.6), np.floor(height / 3.2)
    fu, fv = along / 2.6 - cell_u, height / 3.2 - cell_v
    window = (np.abs(normal_z) < 0.5) & (fu > 0.2) & (fu < 0.8) & (fv > 0.3) & (fv < 0.8) & (height > 3.0)
    albedo[window] = [0.05, 0.06, 0.08]
    lit = window & (value_noise(cell_u * 7.3, cell_v * 3.1, 22) < lit_fraction)
    return albedo, lit


def sidewalk_albedo(base: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Concrete slabs with 1.5 m joints."""
    joints = (np.mod(points[:, 0], 1.5) < 0.03) | (np.mod(points[:, 1], 1.5) < 0.03)
    shade = 0.85 + 0.25 * fractal_noise(points[:, 0] * 2, points[:, 1] * 2, 31)
    return base * np.where(joints, 0.6, shade)[:, None]


def vehicle_lights(local: np.ndarray, half: np.ndarray, material: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of headlight (front face) and tail-light (rear face) patches on vehicle bodies/cabs."""
    body = (material == VEHICLE_BODY) | (material == VEHICLE_FRONT)
    front = body & (local[:, 0] > half[:, 0] - 1e-3)
    rear = (body | (material == CARGO)) & (local[:, 0] < -half[:, 0] + 1e-3)
    lateral = np.abs(local[:, 1]) / half[:, 1]
    low = local[:, 2] / half[:, 2]
    lamp_zone = (lateral > 0.6) & (lateral < 0.92) & (low > -0.3) & (low < 0.5)
    return front & lamp_zone, rear & lamp_zone
