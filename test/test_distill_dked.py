"""DKED-style losses: teacher-bounded depth and channel-correlation values by hand."""

import math

import pytest
import torch

from xdrcdepth_core.distill import build_loss


def row(values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def test_teacher_bounded_value_and_margin():
    gt = row([10.0, 10.0, 10.0, 0.0])
    student = row([12.0, 11.0, 10.5, 3.0]).requires_grad_(True)
    teacher = row([11.0, 13.0, 10.2, 1.0])
    # student errors 2, 1, 0.5; teacher errors 1, 3, 0.2: pixel 1 is already better than the teacher
    value = build_loss("dked_bounded")({"depth": student}, {"depth": teacher}, {"depth_gt": gt})
    assert value.item() == pytest.approx((2 + 0 + 0.5) / 3)
    value.backward()
    assert student.grad.flatten().tolist() == pytest.approx([1 / 3, 0, 1 / 3, 0])
    # with a 2.5 m margin, 1 + 2.5 > 3: pixel 1 counts again
    value = build_loss("dked_bounded", margin=2.5)({"depth": student}, {"depth": teacher}, {"depth_gt": gt})
    assert value.item() == pytest.approx((2 + 1 + 0.5) / 3)


def test_channel_correlation_value():
    teacher = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]).view(1, 2, 1, 3)   # correlation -1
    student = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 4.0]]).view(1, 2, 1, 3)
    # student centred: (-1, 0, 1), (-4/3, -1/3, 5/3): r = 3 / (sqrt(2) sqrt(42/9))
    r = 3 / (math.sqrt(2) * math.sqrt(42 / 9))
    loss = build_loss("dked_corr", layers=[["decoder", 4]], adapter="none")
    value = loss({("decoder", 4): student}, {("decoder", 4): teacher}, {})
    assert value.item() == pytest.approx(2 * (r + 1) / 4, rel=1e-6)
    assert loss({("decoder", 4): student * 100 + 7}, {("decoder", 4): teacher}, {}).item() == pytest.approx(
        value.item(), rel=1e-5)  # scale- and offset-free
