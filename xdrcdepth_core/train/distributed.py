"""Distributed data parallel set-up from the ``torchrun`` environment (gloo on CPU, NCCL on CUDA).

``torchrun --nproc_per_node N -m xdrcdepth_core.cli train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
without them training runs in one process. Rank 0 alone validates, logs and writes files; the others
wait at a barrier, so every process always holds the same weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group ``torchrun`` describes (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def broadcast_from_main(tensors: list[torch.Tensor], info: DistInfo) -> None:
    """Rank 0's values into ``tensors`` in every process (in place; no-op for a single process)."""
    if info.enabled:
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


def average_gradients(params: list[torch.Tensor], info: DistInfo) -> None:
    """The gradients of ``params`` averaged over all processes, in place: for parameters that DDP does not
    wrap (loss adapters), whose gradients would otherwise stay each process's own."""
    if info.enabled:
        for param in params:
            if param.grad is not None:
                dist.all_reduce(param.grad)
                param.grad /= info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over all processes (the tensor itself in a single process)."""
    if not info.enabled:
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / info.world_size


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
