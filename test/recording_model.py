"""A model stub that records what the network is fed (test helper for ``test_depth_node_model_input.py``).

``RecordingModel`` is a :class:`~xdrcdepth_core.models.base.DepthModel` with one parameter: it saves every
``(image, radar)`` pair it is called with to ``$XDRCDEPTH_RECORD_DIR/<n>.pt`` and returns a constant depth of
``depth`` metres; with ``fail=True`` it raises on every call instead, as a failing device would.
``python test/recording_node.py --ros-args ...`` registers it and runs the real depth node, so a checkpoint
of it (``save_checkpoint``) makes the node's model input visible to a test.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import torch
from torch import nn

from xdrcdepth_core.models.base import DepthModel

NAME = "recording_stub"
RECORD_DIR = "XDRCDEPTH_RECORD_DIR"


class RecordingModel(DepthModel):
    name = NAME

    def __init__(self, max_depth: float = 100.0, radar_channels: int = 4, depth: float = 7.0,
                 fail: bool = False):
        super().__init__(max_depth, radar_channels, depth=depth, fail=fail)
        self.depth = nn.Parameter(torch.tensor(float(depth)))
        self.fail = fail
        self._count = itertools.count()

    def forward(self, image: torch.Tensor, radar: torch.Tensor) -> dict:
        if self.fail:   # what a device error (CUDA out of memory, a lost GPU) looks like to the node
            raise RuntimeError("recording_stub: simulated device failure")
        folder = os.environ.get(RECORD_DIR)
        if folder:
            path = Path(folder) / f"{next(self._count):04d}.pt"
            torch.save({"image": image.detach().cpu().clone(), "radar": radar.detach().cpu().clone()},
                       path.with_suffix(".tmp"))
            path.with_suffix(".tmp").rename(path)   # complete files only
        return {"depth": self.depth * torch.ones_like(image[:, :1])}


def register() -> None:
    """Register the stub under :data:`NAME` (only in the node's process: tests list the real models)."""
    from xdrcdepth_core.models.registry import register_model
    register_model(NAME)(RecordingModel)
