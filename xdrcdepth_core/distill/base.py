"""What every loss here shares: the call signature, the flags the trainer reads, and input look-ups.

A loss is an ``nn.Module`` whose ``forward(student_out, teacher_out, batch)`` returns a scalar tensor
(``student_out`` / ``teacher_out``: model output dicts, see ``xdrcdepth_core/models/base.py``; ``batch``:
the trainer's batch dict). Class flags read by the trainer (shared contract, issue 7):

- ``requires_teacher``: the loss reads ``teacher_out`` (a teacher forward or a teacher cache is needed);
- ``requires_teacher_graph``: the teacher forward must keep autograd (Grad-CAM), i.e. run under
  ``torch.enable_grad()`` with an input that requires grad, unless a cache provides the maps.

Losses with learned adapters own ``nn.Module`` parameters: the trainer must optimise
``loss.parameters()`` together with the student's (see ``common.Adapters``).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor, nn

from xdrcdepth_core.distill.common import Adapters, as_layers, check_same_size, layer_key


class DistillLoss(nn.Module):
    """Base class; ``name`` is set by :func:`xdrcdepth_core.distill.registry.register_loss`."""

    name: str = ""
    requires_teacher: bool = False
    requires_teacher_graph: bool = False

    def teacher(self, teacher_out: dict | None) -> dict:
        """``teacher_out``, or a ValueError saying that this loss needs a teacher."""
        if teacher_out is None:
            raise ValueError(f"loss {self.name!r} needs teacher outputs (teacher_out is None): configure a "
                             "teacher or a teacher cache")
        return teacher_out

    def need(self, source: dict, key, where: str, hint: str = "") -> Tensor:
        """``source[key]``, or a KeyError naming the loss, the dict and the missing key."""
        if key not in source:
            raise KeyError(f"loss {self.name!r} needs {where}[{key!r}]" + (f" ({hint})" if hint else ""))
        return source[key]

    def pair(self, student_out: dict, teacher_out: dict, key) -> tuple[Tensor, Tensor]:
        """``(student_out[key], teacher_out[key].detach())``, checked to share batch and spatial size."""
        student = self.need(student_out, key, "student_out")
        teacher = self.need(teacher_out, key, "teacher_out").detach()
        check_same_size(student, teacher, f"loss {self.name!r}, {key!r}")
        return student, teacher


class AdaptedFeatureLoss(DistillLoss):
    """A feature loss over student/teacher pairs at ``layers`` (``as_layers`` forms), the student's feature mapped
    to the teacher's channels by a learned adapter per layer (``adapter``: a ``common.ADAPTER_KINDS`` kind, or
    None / "none" for equal channel counts)."""

    requires_teacher = True

    def __init__(self, layers, adapter: str | None):
        super().__init__()
        self.layers = as_layers(layers)
        self.adapters = Adapters([layer_key(layer) for layer in self.layers], adapter)

    def adapted_pairs(self, student_out: dict, teacher_out: dict) -> Iterator[tuple[Tensor, Tensor]]:
        """``(adapted student feature, detached teacher feature)`` per layer, in order."""
        for layer in self.layers:
            student, teacher = self.pair(student_out, teacher_out, layer)
            yield self.adapters(layer_key(layer), student, teacher), teacher
