"""Grad-CAM saliency (saliency.py) and the explainability-aligned distillation loss ``xkd``."""

import math

import pytest
import torch
import torch.nn.functional as F

from distill_fixtures import B, batch, inputs, small_student, small_teacher
from xdrcdepth_core.distill import build_loss
from xdrcdepth_core.saliency import (depth_bin_target, grad_cam, mean_depth_target, grad_cam_raw,
                                     region_target)

LAYER = ("decoder", 4)


def toy_outputs(channel0, channel1, weights=(2.0, 3.0)):
    """A "network" whose depth is ``w0 A_0 + w1 A_1`` per pixel, on a 1 x 2 x 1 x 2 feature A."""
    feature = torch.tensor([channel0, channel1]).view(1, 2, 1, 2).requires_grad_(True)
    w = torch.tensor(weights, requires_grad=True)
    depth = (w.view(1, 2, 1, 1) * feature).sum(dim=1, keepdim=True)
    return {LAYER: feature, "depth": depth}, w


def test_grad_cam_raw_and_grad_cam_by_hand():
    out, _ = toy_outputs([1.0, -2.0], [2.0, 0.0])
    # mean depth y = (w0 (A_00 + A_01) + w1 (A_10 + A_11)) / 2 -> dy/dA_c = w_c / 2 -> alpha = (1, 1.5)
    # map = 1 * (1, -2) + 1.5 * (2, 0) = (4, -2)
    assert grad_cam_raw(out, LAYER).flatten().tolist() == pytest.approx([4.0, -2.0])
    # display map: ReLU -> (4, 0), min-max -> (1, 0)
    assert grad_cam(out, LAYER).flatten().tolist() == pytest.approx([1.0, 0.0])


def test_targets_by_hand():
    depth = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    mask = torch.tensor([[[[True, False], [False, True]]], [[[False, False], [False, False]]]])
    # image 0: (1 + 4) / 2; image 1 has an empty region -> its mean depth 2.5
    assert region_target(mask)({"depth": depth}).tolist() == pytest.approx([2.5, 2.5])
    assert region_target(mask[:1])({"depth": depth[:1] * 2}).tolist() == pytest.approx([5.0])

    def sigmoid(x):
        return 1 / (1 + math.exp(-x))

    two = torch.tensor([10.0, 30.0]).view(1, 1, 1, 2)
    expected = (sigmoid(10) * sigmoid(10) + sigmoid(30) * sigmoid(-10)) / 2
    assert depth_bin_target(0, 20, 1.0)({"depth": two}).item() == pytest.approx(expected, rel=1e-6)


def test_loss_targets_from_boxes_and_fractions():
    depth = torch.arange(8.0).view(1, 1, 2, 4)          # rows 0..3 and 4..7 on a 2 x 4 image
    boxes_batch = {"boxes": torch.tensor([[[1.0, 0.0, 3.0, 1.0, 10, 0, 0]]]), "boxes_valid": torch.ones(1, 1).bool()}
    # pixel centres x = 0.5 .. 3.5, y = 0.5, 1.5: the box holds (0, 1), (0, 2) -> depth 1, 2
    boxes = build_loss("xkd", target="region").grad_cam_target(boxes_batch, depth)
    assert boxes({"depth": depth}).item() == pytest.approx(1.5)
    # bottom half, right half: depths 6, 7
    fraction = build_loss("xkd", target="region", region=[0.5, 1.0, 0.5, 1.0]).grad_cam_target({}, depth)
    assert fraction({"depth": depth}).item() == pytest.approx(6.5)


@pytest.mark.parametrize("options, channels, expected", [
    # student map (4, -2), teacher map (3, 1)
    ({}, ([1.0, -2.0], [2.0, 0.0]), abs(4 / 6 - 0.75) + abs(-2 / 6 - 0.25)),
    ({"relu": True}, ([1.0, -2.0], [2.0, 0.0]), abs(1 - 0.75) + abs(0 - 0.25)),
    ({"normalize": "l2", "compare": "cosine"}, ([1.0, -2.0], [2.0, 0.0]), 1 - 10 / (math.sqrt(20) * math.sqrt(10))),
    ({"normalize": "l2"}, ([1.0, -2.0], [2.0, 0.0]),
     abs(4 / math.sqrt(20) - 3 / math.sqrt(10)) + abs(-2 / math.sqrt(20) - 1 / math.sqrt(10))),
    # student map (4, 2) -> (2/3, 1/3); KL(teacher || student)
    ({"relu": True, "compare": "kl"}, ([1.0, 2.0], [2.0, 0.0]),
     0.75 * math.log(0.75 / (2 / 3)) + 0.25 * math.log(0.25 / (1 / 3))),
])
def test_xkd_values_by_hand(options, channels, expected):
    out, w = toy_outputs(*channels)
    teacher = {"depth": out["depth"].detach(), ("saliency", LAYER): torch.tensor([3.0, 1.0]).view(1, 1, 1, 2)}
    assert build_loss("xkd", **options)(out, teacher, {}).item() == pytest.approx(expected, rel=1e-5)


def test_xkd_gradient_by_hand():
    out, w = toy_outputs([1.0, -2.0], [2.0, 0.0])
    teacher = {"depth": out["depth"].detach(), ("saliency", LAYER): torch.tensor([3.0, 1.0]).view(1, 1, 1, 2)}
    build_loss("xkd")(out, teacher, {}).backward()
    # map m = (w0/2 + w1, -w0); with m0 > 0 > m1 and the sum-normalised map below the teacher's (3/4, 1/4)
    # everywhere, loss = 1 - (m0 + m1) / (m0 - m1) = 1 - N / D, N = w1 - w0/2 = 2, D = 3 w0/2 + w1 = 6:
    # dloss/dw0 = -(-1/2 * 6 - 2 * 3/2) / 36 = 1/6, dloss/dw1 = -(6 - 2) / 36 = -1/9 (the map moves through alpha)
    assert w.grad.tolist() == pytest.approx([1 / 6, -1 / 9], rel=1e-5)


@pytest.mark.network
def test_train_mode_batchnorm_couples_samples():
    student = small_student()
    image, radar = inputs()
    for train, coupled in ((True, True), (False, False)):
        out = student.train(train)(image, radar)
        (grad,) = torch.autograd.grad(mean_depth_target(out)[0], out[LAYER])
        assert (grad[1].abs().sum() > 0) == coupled, f"train={train}: d target_0 / d feature_1 = {grad[1].abs().sum()}"


@pytest.mark.network
def test_per_sample_maps_use_each_images_own_target():
    student = small_student().train()
    image, radar = inputs()
    out = student(image, radar)
    feature = out[LAYER]
    per_sample = grad_cam_raw(out, LAYER)
    # reference by another route: vmap over the backward with one-hot grad_outputs, the diagonal blocks
    (grads,) = torch.autograd.grad(mean_depth_target(out), feature, grad_outputs=torch.eye(B),
                                   is_grads_batched=True, retain_graph=True)
    own = grads[torch.arange(B), torch.arange(B)]
    reference = (own.mean(dim=(2, 3), keepdim=True) * feature).sum(dim=1, keepdim=True)
    torch.testing.assert_close(per_sample, reference, rtol=1e-4, atol=1e-6)
    summed = grad_cam_raw(out, LAYER, per_sample=False)
    assert (summed - per_sample).abs().max() > 1e-3 * per_sample.abs().max()   # the coupling is not negligible
    # eval mode: samples are independent, so all routes agree with the map of each image alone
    student.eval()
    out = student(image, radar)
    maps = grad_cam_raw(out, LAYER)
    torch.testing.assert_close(maps, grad_cam_raw(out, LAYER, per_sample=False), rtol=1e-4, atol=1e-6)
    for b in range(B):
        alone = grad_cam_raw(student(image[b:b + 1], radar[b:b + 1]), LAYER)
        torch.testing.assert_close(maps[b:b + 1], alone, rtol=1e-3, atol=1e-6)


@pytest.mark.slow
@pytest.mark.network
def test_grad_cam_on_a_frozen_teacher_and_under_no_grad():
    teacher = small_teacher().eval().requires_grad_(False)
    image, radar = inputs()
    with torch.no_grad():
        without_graph = teacher(image, radar)
    with pytest.raises(RuntimeError, match="autograd graph.*enable_grad.*requires_grad_"):
        grad_cam_raw(without_graph)
    with torch.inference_mode():
        inference = teacher(image, radar)
    with pytest.raises(RuntimeError, match="autograd graph"):
        grad_cam(inference)
    with torch.enable_grad():
        out = teacher(image.detach().requires_grad_(True), radar)
    with torch.no_grad():                         # e.g. inside a validation loop
        cam, raw = grad_cam(out), grad_cam_raw(out)
        raw_again = grad_cam_raw(out)             # the graph is retained: a second layer or target works
    assert cam.shape == (B, 1, 64, 128) and cam.min() >= 0 and cam.amax(dim=(1, 2, 3)).tolist() == pytest.approx([1, 1])
    assert raw.shape == (B, 1, 16, 32) and not raw.requires_grad and torch.equal(raw, raw_again)
    assert all(p.grad is None for p in teacher.parameters())


@pytest.fixture(scope="module")
def teacher_run():
    teacher = small_teacher().eval().requires_grad_(False)
    image, radar = inputs()
    with torch.enable_grad():
        out = teacher(image.detach().requires_grad_(True), radar)
    cache = {"depth": out["depth"].detach(), ("saliency", LAYER): grad_cam_raw(out, LAYER)}
    return out, cache, batch(image, radar)


@pytest.mark.network
def test_cached_teacher_map_gives_the_live_loss(teacher_run):
    teacher_out, cache, data = teacher_run
    student = small_student().train()
    out = student(*inputs())
    for options in ({}, {"relu": True, "compare": "kl"}):
        loss = build_loss("xkd", **options)
        assert loss(out, teacher_out, data).item() == pytest.approx(loss(out, cache, data).item(), rel=1e-6)
    with pytest.raises(ValueError, match="differ in batch or spatial size"):
        build_loss("xkd", layers=[[["decoder", 8], ["decoder", 4]]])(out, cache, data)


@pytest.mark.slow
@pytest.mark.network
def test_training_moves_the_student_map_toward_the_teachers(teacher_run):
    _, cache, data = teacher_run
    student = small_student().train()
    image, radar = inputs()
    loss = build_loss("xkd")
    teacher_map = cache[("saliency", LAYER)].flatten(1)

    def distances():
        out = student(image, radar)
        student_map = grad_cam_raw(out, LAYER).flatten(1)     # independent check: cosine of the raw maps
        return loss(out, cache, data).item(), 1 - F.cosine_similarity(student_map, teacher_map).mean().item()

    before = distances()
    optimiser = torch.optim.Adam(student.parameters(), lr=1e-3)
    for _ in range(3):
        optimiser.zero_grad()
        loss(student(image, radar), cache, data).backward()
        optimiser.step()
    after = distances()
    assert after[0] < 0.8 * before[0], (before, after)
    assert after[1] < before[1], (before, after)
