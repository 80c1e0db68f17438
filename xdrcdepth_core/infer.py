"""``DepthEstimator``: the one-call inference API shared by evaluation, the demo and the ROS node.

``estimate(image, radars, K)`` turns an RGB image, raw radar points (each cloud with its own
radar->camera transform) and intrinsics into a dense metric depth map at the input resolution::

    radar points --T_cam_from_radar--> camera frame --rasterize_radar(K)--> C x H x W raster
    image, raster --preprocess (resize to input_hw, normalise)--> model --> depth (h x w)
    depth --bilinear resize--> H x W float32 metres along the optical axis

Rasterisation and preprocessing are the same functions ``xdrcdepth prepare`` and training use, so a
frame from a cache and the same frame from live messages give the same depth.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xdrcdepth_core.checkpoint import build_from_checkpoint, file_digest, load_checkpoint
from xdrcdepth_core.data.radar import DEFAULT_CHANNELS, RadarPoints, rasterize_radar
from xdrcdepth_core.device import resolve_device
from xdrcdepth_core.models import build_model
from xdrcdepth_core.preprocess import depth_to_input_resolution, image_to_tensor, radar_to_tensor
from xdrcdepth_core.saliency import grad_cam

LOG = logging.getLogger(__name__)

#: Checkpoint shipped inside the package (used when no path is given); absent until trained.
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "xdrcdepth_student.pt"
DEFAULT_INPUT_HW = (352, 704)
UNTRAINED_SEED = 0


@dataclass
class RadarInput:
    """One radar cloud: points in its own frame, per-point fields by name, and its pose in the camera."""

    xyz: np.ndarray
    features: dict = field(default_factory=dict)
    T_cam_from_radar: np.ndarray = field(default_factory=lambda: np.eye(4))


@dataclass
class DepthResult:
    depth: np.ndarray                       # H x W float32 metres (optical z), input resolution
    saliency: np.ndarray | None = None      # H x W float32 in [0, 1]
    timings: dict = field(default_factory=dict)


class DepthEstimator:
    """A model plus everything needed to run it on raw sensor data."""

    def __init__(self, model: torch.nn.Module, input_hw=DEFAULT_INPUT_HW,
                 radar_channels=DEFAULT_CHANNELS, device: str = "auto", model_id: str | None = None):
        self.device = str(resolve_device(device))
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.radar_channels = tuple(radar_channels)
        self.max_depth = float(model.max_depth)
        self.model_id = model_id or f"{model.name}@untrained"

    @property
    def radar_fields(self) -> tuple[str, ...]:
        """Point fields the model uses besides x, y, z (the non-depth raster channels)."""
        return tuple(c for c in self.radar_channels if c != "depth")

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str = "auto") -> "DepthEstimator":
        """Rebuild from a self-describing checkpoint; ``None``/``""`` -> shipped checkpoint, else an
        untrained (seeded, deterministic) default student with a loud warning."""
        if not path:
            if SHIPPED_CHECKPOINT.is_file():
                path = SHIPPED_CHECKPOINT
            else:
                LOG.warning("NO TRAINED CHECKPOINT: running an UNTRAINED xdrcdepth student (seed %d). "
                            "Depth values are meaningless until you pass a trained checkpoint.",
                            UNTRAINED_SEED)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(UNTRAINED_SEED)
                    model = build_model("xdrcdepth")
                return cls(model, device=device)
        ckpt = load_checkpoint(path)
        model = build_from_checkpoint(ckpt, path)
        return cls(model, input_hw=ckpt["input_hw"], radar_channels=ckpt["radar_channels"],
                   device=device, model_id=f"{ckpt['model_name']}@{file_digest(path)}")

    def rasterize(self, image_hw: tuple[int, int], radars: list[RadarInput], K: np.ndarray) -> np.ndarray:
        """Merge all radar clouds, each moved into the camera by its own transform, into one
        C x H x W raster at the image resolution (missing per-point fields rasterise as 0)."""
        clouds = []
        for radar in radars:
            xyz = np.asarray(radar.xyz, dtype=np.float64).reshape(-1, 3)
            fields = {name: np.asarray(radar.features[name], dtype=np.float64).reshape(-1)
                      if name in radar.features else np.zeros(len(xyz)) for name in self.radar_fields}
            clouds.append(RadarPoints(xyz, fields).transformed(np.asarray(radar.T_cam_from_radar, np.float64)))
        merged = RadarPoints.concatenate(clouds)
        return rasterize_radar(merged.xyz, merged.fields, K, image_hw, self.radar_channels)

    def estimate(self, image: np.ndarray, radars: list[RadarInput], K: np.ndarray,
                 saliency: bool = False) -> DepthResult:
        """Dense metric depth for one frame from raw radar points."""
        t0 = time.perf_counter()
        raster = self.rasterize(image.shape[:2], radars, K)
        result = self.estimate_raster(image, raster, saliency=saliency)
        result.timings = {"rasterize": time.perf_counter() - t0 - sum(result.timings.values()),
                          **result.timings}
        return result

    def estimate_raster(self, image: np.ndarray, radar_raster: np.ndarray,
                        saliency: bool = False) -> DepthResult:
        """Dense metric depth for one frame whose radar is already rasterised at the image size."""
        timings = {}
        t0 = time.perf_counter()
        image_t = image_to_tensor(image, self.input_hw)[None].to(self.device)
        radar_t = radar_to_tensor(radar_raster, self.radar_channels, self.input_hw)[None].to(self.device)
        t1 = time.perf_counter()
        timings["preprocess"] = t1 - t0
        cam = None
        if saliency:
            with torch.enable_grad():
                image_t.requires_grad_(True)  # gives the graph a leaf so features carry gradients
                outputs = self.model(image_t, radar_t)
                cam = grad_cam(outputs)
            depth = outputs["depth"].detach()
        else:
            with torch.inference_mode():
                depth = self.model(image_t, radar_t)["depth"]
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        timings["forward"] = t2 - t1
        out_hw = image.shape[:2]
        depth_np = depth_to_input_resolution(depth, out_hw)[0, 0].float().cpu().numpy()
        cam_np = None if cam is None else depth_to_input_resolution(cam, out_hw)[0, 0].float().cpu().numpy()
        timings["postprocess"] = time.perf_counter() - t2
        return DepthResult(depth=depth_np.astype(np.float32, copy=False), saliency=cam_np, timings=timings)
