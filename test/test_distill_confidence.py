"""MonoTher-Depth-style confidence losses: values by hand, top-error exclusion, gradient paths."""

import math

import pytest
import torch

from xdrcdepth_core.distill import build_loss


def row(values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def test_laplacian_nll_value_and_gradient_only_into_confidence():
    depth = row([1.0, 2.0, 3.0, 10.0, 5.0]).requires_grad_(True)
    gt = row([2.0, 2.0, 2.0, 2.0, 0.0])
    confidence = row([1.0, 2.0, 0.25, 4.0, 9.0]).requires_grad_(True)
    # GT errors [1, 0, 1, 8]; dropping the top 25 % of 4 keeps the 3 smallest: pixels 0, 1, 2.
    # mean(e c) = (1 + 0 + 0.25) / 3, mean(log c) = (0 + ln 2 + ln 0.25) / 3
    expected = 1.25 / 3 - 0.002 * (math.log(2) + math.log(0.25)) / 3
    loss = build_loss("laplacian_nll", drop_top=0.25)
    value = loss({"depth": depth, "depth_confidence": confidence}, None, {"depth_gt": gt})
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    assert depth.grad is None                                   # detach_depth (default)
    # d/dc_i = (e_i - beta / c_i) / 3 on kept pixels, 0 elsewhere
    expected_grad = [(1 - 0.002) / 3, (0 - 0.001) / 3, (1 - 0.008) / 3, 0.0, 0.0]
    assert confidence.grad.flatten().tolist() == pytest.approx(expected_grad, rel=1e-5)
    depth.grad = None
    build_loss("laplacian_nll", detach_depth=False)(
        {"depth": depth, "depth_confidence": confidence}, None, {"depth_gt": gt}).backward()
    assert depth.grad.abs().sum() > 0


def test_confidence_kd_value_without_gt():
    teacher = {"depth": row([10.0] * 5), "depth_confidence": row([1.0, 3.0, 2.0, 100.0, 2.0])}
    student = row([9.0, 12.0, 10.0, 4.0, 11.0]).requires_grad_(True)
    # diffs [1, 2, 0, 6, 1]; the top 20 % (pixel 3) is dropped; c over the kept pixels has mean 2,
    # normalised c = [0.5, 1.5, 1, -, 1] -> (0.5 * 1 + 1.5 * 2 + 1 * 0 + 1 * 1) / 4
    value = build_loss("confidence_kd")({"depth": student}, teacher, {})
    assert value.item() == pytest.approx(4.5 / 4)
    value.backward()
    # d/dd_S = -c_n sign(d_T - d_S) / 4 = [-0.125, +0.375, 0 (|x| at 0), 0, +0.25]
    assert student.grad.flatten().tolist() == pytest.approx([-0.125, 0.375, 0.0, 0.0, 0.25])
    # the confidence's absolute scale does not matter
    scaled = {**teacher, "depth_confidence": teacher["depth_confidence"] * 0.002}
    assert build_loss("confidence_kd")({"depth": student}, scaled, {}).item() == pytest.approx(4.5 / 4)


def test_confidence_kd_needs_the_teacher_confidence():
    with pytest.raises(KeyError, match="depth_confidence.*laplacian_nll"):
        build_loss("confidence_kd")({"depth": row([1.0])}, {"depth": row([1.0])}, {})
