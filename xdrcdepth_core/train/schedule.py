"""Learning-rate schedules, per optimiser step.

``poly`` follows LiRCDepth/CaFNet's training scripts (papers.md Sec. 2.4):
``lr = (lr0 - lr_end) * (1 - step / total) ** power + lr_end`` with ``lr_end = end_lr_ratio * lr0``
(LiRCDepth: ratio 0.1, power 0.9). Our addition: an optional linear warm-up over the first
``warmup_steps`` steps (factor ``(step + 1) / warmup_steps``).
"""

from __future__ import annotations

import torch


def lr_factor(step: int, total_steps: int, schedule: str, power: float = 0.9, end_ratio: float = 0.1,
              warmup_steps: int = 0) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    factor = 1.0
    if schedule == "poly":
        progress = min(step / max(total_steps, 1), 1.0)
        factor = (1.0 - end_ratio) * (1.0 - progress) ** power + end_ratio
    elif schedule != "constant":
        raise ValueError(f"unknown schedule {schedule!r}")
    if warmup_steps > 0 and step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, optim_cfg: dict):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(
        step, total_steps, optim_cfg["schedule"], optim_cfg["poly_power"], optim_cfg["end_lr_ratio"],
        optim_cfg["warmup_steps"]))
