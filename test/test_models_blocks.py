"""Model building blocks against hand-computed values: FiLM, gated fusion, depth head, DenseASPP, FLOPs."""

import pytest
import torch
from torch import nn

from xdrcdepth_core.models.daspp import DenseASPP
from xdrcdepth_core.models.depth_head import DepthHead
from xdrcdepth_core.models.film import FiLMFusion
from xdrcdepth_core.models.flops import count_macs, gflops
from xdrcdepth_core.models.gated_fusion import ConfidenceGatedFusion


def test_film_starts_as_exact_identity():
    film = FiLMFusion(image_channels=5, radar_channels=3)
    image, radar = torch.randn(2, 5, 4, 6), torch.randn(2, 3, 4, 6)
    assert torch.equal(film(image, radar), image)


def test_film_hand_set_gamma_beta():
    film = FiLMFusion(image_channels=3, radar_channels=2)
    with torch.no_grad():
        # radar channels are constant 2 and -1, so the pooled radar vector is r = (2, -1)
        film.gamma.weight.copy_(torch.tensor([[0.5, 0.0], [0.0, 1.0], [0.25, 0.25]]).view(3, 2, 1, 1))
        film.gamma.bias.copy_(torch.tensor([0.0, 0.5, 0.0]))   # gamma = (1.0, -0.5, 0.25)
        film.beta.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))    # beta weights stay 0 -> beta = (1, 2, 3)
    radar = torch.stack([torch.full((4, 4), 2.0), torch.full((4, 4), -1.0)])[None]
    image = torch.stack([torch.full((4, 4), 2.0), torch.full((4, 4), 4.0), torch.full((4, 4), -8.0)])[None]
    fused = film(image, radar)
    # (1 + gamma) * f + beta: 2 * 2 + 1 = 5; 0.5 * 4 + 2 = 4; 1.25 * -8 + 3 = -7
    expected = torch.tensor([5.0, 4.0, -7.0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert torch.allclose(fused, expected)
    # channel-wise: the radar's spatial layout does not matter, only its mean
    shuffled = radar.clone()
    shuffled[0, 0] = torch.tensor([[8.0, 0.0, 0.0, 0.0]] * 4)  # same mean 2
    assert torch.allclose(film(image, shuffled), expected)


def test_film_spatial_option_keeps_layout():
    film = FiLMFusion(image_channels=1, radar_channels=1, spatial=True)
    with torch.no_grad():
        film.beta.weight.fill_(1.0)
    radar = torch.zeros(1, 1, 2, 2)
    radar[0, 0, 0, 1] = 3.0
    fused = film(torch.zeros(1, 1, 2, 2), radar)
    assert torch.equal(fused, radar)  # beta = radar pixel-wise, gamma = 0


def test_gated_fusion_formula():
    fusion = ConfidenceGatedFusion(channels=1, radar_channels=1)
    with torch.no_grad():
        fusion.gate.weight.zero_()          # sigmoid(0) = 0.5
        fusion.project.weight.fill_(1.5)    # ReLU(1.5 * 2) = 3
    image, radar = torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 2.0)
    confidence = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])  # average-pooled to 0.5 at the 1 x 1 feature
    # 1 + 0.5 * 3 * 0.5 = 1.75
    assert fusion(image, radar, confidence).item() == pytest.approx(1.75)


def test_depth_head_range():
    head = DepthHead(in_channels=4, max_depth=80.0)
    nn.init.zeros_(head.conv.weight)
    assert torch.all(head(torch.randn(1, 4, 3, 3)) == 40.0)  # 80 * sigmoid(0)
    with torch.no_grad():
        head.conv.weight.fill_(10.0)
    x = torch.randn(1, 4, 8, 8) * 10
    x[0, :, 0, 0] = -100.0  # logit -4000: float32 sigmoid underflows to 0, the floor keeps depth > 0
    out = head(x)
    assert torch.all(out > 0) and torch.all(out <= 80.0)
    assert out[0, 0, 0, 0].item() == pytest.approx(80.0 * 1e-6)


def test_depth_head_is_float32_under_bf16_autocast():
    head = DepthHead(in_channels=4, max_depth=100.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(torch.randn(1, 4, 5, 5))
    assert out.dtype == torch.float32  # bf16 would quantise depth to 0.5 m steps near 100 m


def test_pointwise_daspp_parameter_count_and_shape():
    block = DenseASPP(in_channels=8, out_channels=4, growth=2, rates=(1, 2), pointwise=True)
    # branch 1: 1x1 8->2 (16) + BN (4) + depthwise 3x3 on 2 ch (18) + BN (4) = 42
    # branch 2: 1x1 10->2 (20) + BN (4) + depthwise (18) + BN (4) = 46
    # projection 1x1 12->4 (48) + BN (8) = 56                      total 144
    assert sum(p.numel() for p in block.parameters()) == 144
    assert block(torch.randn(1, 8, 7, 9)).shape == (1, 4, 7, 9)


def test_mac_counter_on_single_layers():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    # output 8 x 16 x 24, each output value = 3 * 3 * 3 MACs: 8 * 16 * 24 * 27 = 82,944
    assert count_macs(conv, torch.zeros(1, 3, 32, 48)) == 82_944
    assert gflops(82_944) == pytest.approx(2 * 82_944 / 1e9)
    # batch 2 doubles the count
    assert count_macs(conv, torch.zeros(2, 3, 32, 48)) == 2 * 82_944
    # depthwise: 8 x 10 x 10 outputs, 1 input channel per group, 3x3 -> 8 * 100 * 9 = 7,200
    assert count_macs(nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.zeros(1, 8, 10, 10)) == 7_200
    # transposed: every one of the 4 * 5 * 5 inputs goes through a 2 x 3 x 3 kernel: 100 * 18 = 1,800
    up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    assert count_macs(up, torch.zeros(1, 4, 5, 5)) == 1_800
    # linear: 2 x 3 outputs, 10 MACs each
    assert count_macs(nn.Linear(10, 3), torch.zeros(2, 10)) == 60
    # BN and activations are not counted; hooks are removed afterwards
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    assert count_macs(seq, torch.zeros(1, 3, 32, 48)) == 82_944
    assert not seq[0]._forward_hooks


def test_dilated_depthwise_weight_gradients_stay_finite_under_bf16_channels_last():
    """torch 2.13's CPU kernel gives wrong weight gradients for a depthwise dilated conv on a channels_last
    bf16 input, NaN in 4-33 % of backward passes, on this machine's AVX512-BF16 CPU (a low-data bf16 run
    turned NaN at epoch 12). The DenseASPP branch conv trains with an NCHW input instead: its gradient is the
    float32 one within bf16 rounding, never NaN, and its state_dict keys are those of a plain conv
    (checkpoints load as before). On CPUs whose kernels are right this holds with or without the workaround."""
    torch.manual_seed(0)
    block = DenseASPP(8, 8, growth=24, rates=(1, 2, 4), pointwise=True).train()
    block = block.to(memory_format=torch.channels_last)   # as the trainer converts the model, weights included
    conv = block.branches[2][1][0]                     # depthwise 3 x 3, dilation 4
    assert (conv.groups, conv.dilation) == (24, (4, 4)) and type(conv).__name__ == "DilatedDepthwiseConv2d"
    assert set(block.state_dict()) == set(DenseASPP(8, 8, 24, (1, 2, 4)).state_dict())
    branch = block.branches[1][1][0]                   # dilation 2, the most affected
    for trial in range(40):
        x = torch.relu(torch.randn(2, 24, 64, 128)).clamp_max(6).to(memory_format=torch.channels_last)
        grad = torch.randn(2, 24, 64, 128)
        branch.weight.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = branch(x)
        y.backward(grad)
        assert torch.isfinite(branch.weight.grad).all(), f"NaN weight gradient in backward pass {trial}"
    reference = branch.weight.detach().clone().requires_grad_(True)
    expected, = torch.autograd.grad(torch.nn.functional.conv2d(x, reference, None, 1, 2, 2, 24), reference, grad)
    assert torch.allclose(branch.weight.grad, expected, rtol=0.05, atol=0.05 * expected.abs().max().item())
