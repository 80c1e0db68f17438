"""Shared loss helpers: top-error exclusion, box masks, weighted means and the lazy adapters."""

import pytest
import torch

from xdrcdepth_core.distill import build_loss
from xdrcdepth_core.distill.common import Adapters, boxes_mask, keep_lowest, scale_weights, weighted_mean


def test_keep_lowest_per_image():
    values = torch.tensor([[5.0, 1.0, 3.0, 9.0, 7.0], [4.0, 4.0, 8.0, 0.0, 2.0]])
    mask = torch.tensor([[True, True, True, True, False], [True, True, True, True, True]])
    kept = keep_lowest(values, mask, 0.5)
    # image 0: 4 valid, keep ceil(2) = 2 smallest (1, 3); image 1: 5 valid, keep ceil(2.5) = 3 (0, 2, 4 and the tie 4)
    assert kept.tolist() == [[False, True, True, False, False], [True, True, False, True, True]]
    assert torch.equal(keep_lowest(values, mask, 0.0), mask)
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        keep_lowest(values, mask, 1.0)


def test_boxes_mask_pixel_centres():
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [18.0, 9.0, 30.0, 14.0], [0.0, 0.0, 32.0, 16.0]]])
    valid = torch.tensor([[True, True, False]])
    # a 2 x 4 map over a 16 x 32 image: centres x = 4, 12, 20, 28 and y = 4, 12
    mask = boxes_mask(boxes, valid, (2, 4), (16, 32))
    assert mask.shape == (1, 1, 2, 4)
    assert mask[0, 0].tolist() == [[True, False, False, False], [False, False, True, True]]
    grown = boxes_mask(boxes, valid, (2, 4), (16, 32), grow=torch.tensor([[[5.0, 5.0], [0.0, 0.0], [0.0, 0.0]]]))
    assert grown[0, 0].tolist() == [[True, True, False, False], [True, True, True, True]]  # box 0 -> [-2.5, 12.5]


def test_weighted_mean_and_scale_weights():
    assert weighted_mean(torch.tensor([1.0, 2.0, 6.0]), torch.tensor([1.0, 0.0, 0.5])).item() == pytest.approx(4 / 1.5)
    assert weighted_mean(torch.tensor([1.0]), torch.tensor([0.0])).item() == 0
    assert scale_weights(4) == [1, 0.5, 0.25, 0.125]


def test_lazy_adapters_train_with_an_optimiser_built_before_the_first_batch(tmp_path):
    loss = build_loss("dked_corr", layers=[["decoder", 4]])
    optimiser = torch.optim.SGD(loss.parameters(), lr=0.1)         # the adapter is not materialised yet
    student = {("decoder", 4): torch.randn(2, 3, 4, 5)}
    teacher = {("decoder", 4): torch.randn(2, 6, 4, 5)}
    first = loss(student, teacher, {})
    weight = loss.adapters.blocks["decoder_4"].weight0
    assert weight.shape == (6, 3, 1, 1)
    before = weight.detach().clone()
    first.backward()
    optimiser.step()
    assert not torch.equal(weight.detach(), before)                 # the optimiser holds the materialised tensor
    # a checkpoint loads into a fresh, not yet materialised loss
    torch.save(loss.state_dict(), tmp_path / "loss.pt")
    fresh = build_loss("dked_corr", layers=[["decoder", 4]])
    fresh.load_state_dict(torch.load(tmp_path / "loss.pt", weights_only=True))
    assert fresh(student, teacher, {}).item() == pytest.approx(loss(student, teacher, {}).item())


def test_adapters_check_channels():
    with pytest.raises(ValueError, match="3 student channels for 6 teacher channels \\(no adapter"):
        Adapters(["x"], "none")("x", torch.zeros(1, 3, 2, 2), torch.zeros(1, 6, 2, 2))
