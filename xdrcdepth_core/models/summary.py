"""``xdrcdepth models``: parameters and GFLOPs of every registered model at its default (paper) config.

The table lists parameters (M), GFLOPs at ``--height`` x ``--width`` (batch 1, convention in
``flops.py``) and the parameter ratio vs ``lircdepth``; the last line says whether ``xdrcdepth`` meets
the XD-RCDepth budget (<= 70.3 % of LiRCDepth's parameters, the paper's -29.7 %). Models are built on
PyTorch's ``meta`` device, so no weights are allocated and the count takes well under a second.
"""

from __future__ import annotations

import argparse

import torch

from xdrcdepth_core.cli_args import model_size
from xdrcdepth_core.models.flops import count_macs, gflops
from xdrcdepth_core.models.registry import build_model, list_models

#: XD-RCDepth abstract: 29.7 % fewer parameters than LiRCDepth.
PARAMETER_BUDGET = 1.0 - 0.297
BASELINE, STUDENT = "lircdepth", "xdrcdepth"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--height", type=model_size, default=352, help="input height for GFLOPs (multiple of 32)")
    parser.add_argument("--width", type=model_size, default=704, help="input width for GFLOPs (multiple of 32)")


def model_stats(name: str, height: int, width: int) -> tuple[int, float]:
    """(parameter count, GFLOPs at height x width) of model ``name`` at its default config."""
    with torch.device("meta"):
        model = build_model(name).eval()
        image = torch.zeros(1, 3, height, width)
        radar = torch.zeros(1, model.radar_channels, height, width)
    params = sum(p.numel() for p in model.parameters())
    return params, gflops(count_macs(model, image, radar))


def run(args: argparse.Namespace) -> int:
    stats = {name: model_stats(name, args.height, args.width) for name in list_models()}
    baseline = stats[BASELINE][0]
    print(f"{'model':<12} {'params (M)':>11} {f'GFLOPs@{args.height}x{args.width}':>17} {'vs ' + BASELINE:>13}")
    for name, (params, flops) in stats.items():
        print(f"{name:<12} {params / 1e6:>11.3f} {flops:>17.2f} {100.0 * params / baseline:>12.1f}%")
    ratio = stats[STUDENT][0] / baseline
    verdict = "MET" if ratio <= PARAMETER_BUDGET else "NOT MET"
    print(f"budget {verdict}: {STUDENT} has {100 * ratio:.1f} % of {BASELINE}'s parameters "
          f"({100 * (1 - ratio):.1f} % fewer; XD-RCDepth claims 29.7 % fewer, "
          f"budget <= {100 * PARAMETER_BUDGET:.1f} %)")
    return 0
