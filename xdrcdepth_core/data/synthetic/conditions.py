"""Weather / time-of-day conditions. They change the camera image only: radar and LiDAR are simulated from
the same geometry with their own random streams, so a scene's radar and LiDAR files are identical under
every condition (a test checks this).

* ``clear``: sun 0.9-1.3, blue sky, sensor noise sigma 1/255.
* ``fog``: overcast light, then Koschmieder attenuation ``L = L0 exp(-beta r) + A (1 - exp(-beta r))`` with
  ``r`` the ray length, beta in [0.025, 0.06] /m (meteorological visibility 3/beta = 50-120 m), airlight A grey.
* ``night``: no sun, faint sky; street lamps, ego headlights, vehicle and window lights; auto-exposure gain
  x3 amplifies sensor noise (shot + read noise), which lowers contrast and SNR.
* ``rain``: overcast, wet road (darker, sky reflections), light haze (beta 0.006-0.012), slanted motion-blurred
  rain streaks, slight blur and noise.

The image is tone-mapped with gamma 1/2.2 after the exposure gain. Parameters are drawn per scene from the
condition's own random stream; the noise per frame from the frame's stream. Values are our choices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xdrcdepth_core.data.synthetic.camera import Frame, Lighting

CONDITIONS = ("clear", "fog", "night", "rain")


@dataclass
class Condition:
    name: str
    lighting: Lighting
    fog_beta: float = 0.0  # 1/m
    fog_colour: tuple[float, float, float] = (0.62, 0.64, 0.67)
    gain: float = 1.0  # exposure
    read_noise: float = 0.004  # linear units, before gain
    rain_streaks: float = 0.0  # streak count per 1000 pixels


def draw_condition(name: str, rng: np.random.Generator) -> Condition:
    """The parameters of condition ``name`` for one scene."""
    if name == "clear":
        return Condition(name, Lighting(sun=rng.uniform(0.9, 1.3), ambient=rng.uniform(0.3, 0.4)))
    if name == "fog":
        grey = (0.55, 0.57, 0.6)
        return Condition(name, Lighting(sun=0.25, ambient=0.55, sky_zenith=grey, sky_horizon=grey),
                         fog_beta=rng.uniform(0.025, 0.06))
    if name == "night":
        return Condition(name, Lighting(sun=0.0, ambient=0.006, sky_zenith=(0.001, 0.0012, 0.003),
                                        sky_horizon=(0.006, 0.006, 0.008), night_lights=True),
                         gain=3.0, read_noise=0.006)
    if name == "rain":
        grey = (0.35, 0.37, 0.4)
        return Condition(name, Lighting(sun=0.15, ambient=0.5, sky_zenith=grey, sky_horizon=(0.5, 0.52, 0.55),
                                        wet=rng.uniform(0.6, 1.0)),
                         fog_beta=rng.uniform(0.006, 0.012), fog_colour=(0.42, 0.44, 0.47),
                         rain_streaks=rng.uniform(1.0, 2.5), read_noise=0.008)
    raise ValueError(f"unknown condition {name!r}; choose from {', '.join(CONDITIONS)}")


def _box_blur3(img: np.ndarray) -> np.ndarray:
    padded = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = img.shape[:2]
    return sum(padded[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0


def _rain_streaks(hw: tuple[int, int], density: float, rng: np.random.Generator) -> np.ndarray:
    """Additive streak layer: short bright slanted segments (motion-blurred drops)."""
    h, w = hw
    layer = np.zeros((h, w))
    n = int(density * h * w / 1000)
    scale = h / 900
    length = np.maximum(rng.uniform(15, 45, n) * scale, 2).astype(int)
    x0, y0 = rng.uniform(0, w, n), rng.uniform(-40 * scale, h, n)
    slant = rng.normal(0.15, 0.03)
    strength = rng.uniform(0.04, 0.12, n)
    for k in range(int(length.max()) if n else 0):
        active = k < length
        ys = (y0 + k).astype(int)
        xs = (x0 + slant * k).astype(int)
        ok = active & (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        np.add.at(layer, (ys[ok], xs[ok]), strength[ok])
    return layer


def expose(frame: Frame, condition: Condition, rng: np.random.Generator) -> np.ndarray:
    """Apply the condition's atmosphere, lens and sensor effects; returns the 8-bit RGB image."""
    radiance = frame.radiance
    if condition.fog_beta > 0:
        transmission = np.exp(-condition.fog_beta * np.where(np.isfinite(frame.ray_length), frame.ray_length, 1e9))
        radiance = radiance * transmission[..., None] + np.asarray(condition.fog_colour) * (1 - transmission[..., None])
    if condition.rain_streaks > 0:
        radiance = _box_blur3(radiance) + _rain_streaks(radiance.shape[:2], condition.rain_streaks, rng)[..., None]
    signal = np.clip(radiance, 0.0, None)
    shot = rng.standard_normal(signal.shape) * np.sqrt(signal * 2e-4)
    noisy = (signal + shot + rng.standard_normal(signal.shape) * condition.read_noise) * condition.gain
    h, w = noisy.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    vignette = 1.0 - 0.25 * (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2) / 2
    image = np.clip(noisy * vignette[..., None], 0.0, 1.0) ** (1 / 2.2)
    return (image * 255.0 + 0.5).astype(np.uint8)
