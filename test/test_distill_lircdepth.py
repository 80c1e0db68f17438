"""LiRCDepth losses: values by hand on tiny maps, adapters for mismatched channels."""

import math

import pytest
import torch

from xdrcdepth_core.distill import build_loss


def px(*values):
    """1 x C x 1 x 1 feature."""
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)


def row(values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def u(a, b):
    return 1 - math.exp(-5 * abs(a - b) / (a + b))


def test_pixel_kd_value():
    student = {("image", 32): px(1.0), ("image", 16): px(0.0), ("radar", 32): px(2.0), ("radar", 16): px(4.0)}
    teacher = {("image", 32): px(3.0), ("image", 16): px(1.0), ("radar", 32): px(2.0), ("radar", 16): px(0.0)}
    loss = build_loss("lircdepth_pixel", scales=[32, 16], radar_weight=0.5, adapter="none")
    # image: 1 * |1-3| + 1/2 * |0-1| = 2.5; radar: 0.5 * (1 * 0 + 1/2 * |4-0|) = 1
    assert loss(student, teacher, {}).item() == pytest.approx(3.5)


def test_pixel_kd_adapts_any_channel_counts():
    # LiRCDepth-style radar channels (128) against our teacher's (64) at 1/4, and 1280 vs 512 at 1/32
    student = {("radar", 4): torch.randn(1, 128, 4, 4), ("radar", 32): torch.randn(1, 1280, 1, 1)}
    teacher = {("radar", 4): torch.randn(1, 64, 4, 4), ("radar", 32): torch.randn(1, 512, 1, 1)}
    loss = build_loss("lircdepth_pixel", image_weight=0, scales=[32, 4])
    loss(student, teacher, {}).backward()
    shapes = {name: p.shape for name, p in loss.named_parameters()}
    assert shapes["adapters.blocks.radar_4.weight0"] == (64, 128, 1, 1)
    assert shapes["adapters.blocks.radar_32.weight0"] == (512, 1280, 1, 1)
    assert all(p.grad is not None for p in loss.parameters())


def test_pair_kd_value():
    # positions (channel vectors): student (1, 0), (1, 1) -> cosine 1/sqrt(2); teacher (0, 1), (0, 2) -> 1
    student = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    teacher = torch.tensor([[0.0, 0.0], [1.0, 2.0]]).view(1, 2, 1, 2)
    loss = build_loss("lircdepth_pair", layers=[["decoder", 4]])      # kernel max(1, int(0.2 * 2)) = 1
    # two off-diagonal entries differ by 1 - 1/sqrt(2), mean over the 2 x 2 matrix
    expected = 2 * (1 - 1 / math.sqrt(2)) ** 2 / 4
    assert loss({("decoder", 4): student}, {("decoder", 4): teacher}, {}).item() == pytest.approx(expected, rel=1e-6)


def test_pair_kd_pools_and_weights_stages():
    feature = torch.randn(1, 3, 10, 20)
    other = torch.randn(1, 5, 10, 20)
    one = build_loss("lircdepth_pair", layers=[["decoder", 4]])({("decoder", 4): feature}, {("decoder", 4): other}, {})
    # kernel (2, 4) -> a 5 x 5 grid of positions; a second, identical stage counts half
    two = build_loss("lircdepth_pair", layers=[["decoder", 4], ["decoder", 4]])(
        {("decoder", 4): feature}, {("decoder", 4): other}, {})
    assert two.item() == pytest.approx(1.5 * one.item())


def test_interdepth_value():
    student_map, teacher_map = row([12.0, 30.0, 3.0]), row([10.0, 20.0, 0.005])  # last teacher pixel invalid
    w1, w2 = u(10, 12), u(20, 30)
    per_scale = (w1 * 2 + w2 * 10) / (w1 + w2)
    student = {("depth", s): student_map for s in (8, 4, 2)}
    teacher = {("depth", s): teacher_map for s in (8, 4, 2)}
    value = build_loss("lircdepth_interdepth")(student, teacher, {})
    assert value.item() == pytest.approx(per_scale * (1 + 0.5 + 0.25), rel=1e-6)


def test_rectified_depth_value():
    depth = row([12.0, 9.0, 16.0, 21.0, 5.0])
    accumulated = row([10.0, 10.0, 20.0, 20.0, 0.0])
    single = row([10.0, 8.0, 0.0, 0.0, 0.0])
    # pixels 0, 1: single-sweep GT, u_acc = 1 outside its mask, w_single = sigmoid(u_s - 1)
    ws = [1 / (1 + math.exp(1 - u(10, 12))), 1 / (1 + math.exp(1 - u(8, 9)))]
    # pixels 2, 3: accumulated GT only, u_single = 1, w_acc = sigmoid(u_a - 1)
    wa = [1 / (1 + math.exp(1 - u(20, 16))), 1 / (1 + math.exp(1 - u(20, 21)))]
    expected = (wa[0] * 4 + wa[1] * 1) / sum(wa) + (ws[0] * 2 + ws[1] * 1) / sum(ws)
    value = build_loss("rectified_depth")({"depth": depth}, None, {"depth_gt": accumulated, "depth_gt_single": single})
    assert value.item() == pytest.approx(expected, rel=1e-6)
