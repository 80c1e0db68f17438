"""Every registered loss on small real models: a finite scalar whose gradient reaches the student's
parameters (and the loss's own adapters) but never the teacher's, even with a trainable teacher graph."""

import pytest
import torch

from distill_fixtures import batch, inputs, small_student, small_teacher, with_extra_heads
from xdrcdepth_core.distill import build_loss, list_losses

pytestmark = pytest.mark.network

#: cheaper options for the tiny maps (8 x 16 at 1/8)
OPTIONS = {"crkd_relation": {"sizes": [4, 2]}, "dkd": {"bins": 16, "intermediate_weight": 0.5}}


@pytest.fixture(scope="module")
def forward():
    """One forward of each model, shared by all losses (gradients are taken with retain_graph)."""
    student, teacher = small_student().train(), small_teacher().eval()
    image, radar = inputs()
    student_out = with_extra_heads(student(image, radar))
    # The teacher's parameters require grad on purpose: only the loss may keep gradients away from them.
    teacher_out = with_extra_heads(teacher(image.detach().requires_grad_(True), radar))
    return student, teacher, student_out, teacher_out, batch(image, radar)


@pytest.mark.parametrize("name", list_losses())
def test_gradient_reaches_student_not_teacher(name, forward):
    student, teacher, student_out, teacher_out, data = forward
    loss = build_loss(name, **OPTIONS.get(name, {}))
    value = loss(student_out, teacher_out, data)
    assert value.dim() == 0 and torch.isfinite(value)
    student_params, teacher_params = list(student.parameters()), list(teacher.parameters())
    own = dict(loss.named_parameters())
    grads = torch.autograd.grad(value, student_params + teacher_params + list(own.values()), allow_unused=True,
                                retain_graph=True)
    student_grads = grads[:len(student_params)]
    teacher_grads = grads[len(student_params):len(student_params) + len(teacher_params)]
    assert sum(g.abs().sum() for g in student_grads if g is not None) > 0
    assert all(g is None for g in teacher_grads), f"{name} sends gradients into the teacher"
    for param_name, grad in zip(own, grads[len(student_params) + len(teacher_params):]):
        assert grad is not None and grad.abs().sum() > 0, f"{name}: adapter {param_name} gets no gradient"
