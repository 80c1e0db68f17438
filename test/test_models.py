"""Whole models: output contract, gradients, sizes, parameter budget, registry round-trip, CLI table."""

import json
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from xdrcdepth_core.models import build_model, list_models
from xdrcdepth_core.models.mobilenetv2 import MobileNetV2Encoder
from xdrcdepth_core.models.resnet import ResNetEncoder

MODEL_NAMES = ("xdrcdepth", "lircdepth", "cafnet")
ENCODER_SCALES = (2, 4, 8, 16, 32)
LIRCDEPTH_PAPER_PARAMS = 12_645_228  # papers.md Sec. 2.2, derived from the repo's code


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(name: str, **config):
    with torch.device("meta"):
        return build_model(name, **config)


def sparse_radar(batch: int, channels: int, height: int, width: int) -> torch.Tensor:
    """A radar raster with a few nonzero pixels, like a rasterised radar sweep."""
    radar = torch.zeros(batch, channels, height, width)
    radar[:, :, 100 % height::23, 7::31] = torch.rand_like(radar[:, :, 100 % height::23, 7::31]) + 0.1
    return radar


def first_conv(model: nn.Module, prefix: str) -> nn.Conv2d:
    return next(m for name, m in model.named_modules() if name.startswith(prefix) and isinstance(m, nn.Conv2d))


def check_output_contract(model, out: dict, batch: int, height: int, width: int):
    full = (batch, 1, height, width)
    assert out["depth"].shape == full
    for scale in (8, 4, 2):
        assert out[("depth", scale)].shape == full
    for depth in [out["depth"]] + [out[("depth", s)] for s in (8, 4, 2)]:
        assert torch.isfinite(depth).all()
        assert (depth > 0).all() and (depth <= model.max_depth).all()
    for kind in ("image", "radar", "fused"):
        for scale in ENCODER_SCALES:
            feature = out[(kind, scale)]
            assert feature.shape[0] == batch and feature.shape[-2:] == (height // scale, width // scale), (kind, scale)
    for scale in (16, 8, 4, 2):
        assert out[("decoder", scale)].shape[-2:] == (height // scale, width // scale)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward_at_paper_size(name):
    torch.manual_seed(0)
    model = build_model(name)
    if name == "xdrcdepth":
        # FiLM convs start at zero (identity fusion), which blocks radar gradients at step 0 by design;
        # perturb them as one optimiser step would, then gradients must reach the radar encoder.
        for film in model.fusions:
            nn.init.normal_(film.gamma.weight, std=0.01)
            nn.init.normal_(film.beta.weight, std=0.01)
    image, radar = torch.randn(1, 3, 352, 704), sparse_radar(1, 4, 352, 704)
    out = model(image, radar)
    check_output_contract(model, out, 1, 352, 704)
    loss = out["depth"].mean() + sum(out[("depth", s)].mean() for s in (8, 4, 2))
    loss.backward()
    for prefix in ("image", "radar"):
        grad = first_conv(model, prefix).weight.grad
        assert grad is not None and grad.abs().sum() > 0, f"{name}: no gradient at the first {prefix} conv"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_other_size_and_batch(name):
    model = build_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 96, 160), sparse_radar(2, 4, 96, 160))
    check_output_contract(model, out, 2, 96, 160)


def test_xdrcdepth_fusion_is_identity_at_init():
    model = build_model("xdrcdepth").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), sparse_radar(1, 4, 64, 64))
    for scale in ENCODER_SCALES:
        assert torch.equal(out[("fused", scale)], out[("image", scale)])


def test_bad_inputs_raise_clear_errors():
    model = build_model("xdrcdepth", radar_channels=3)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.zeros(1, 3, 100, 64), torch.zeros(1, 3, 100, 64))
    with pytest.raises(ValueError, match="radar must be B x 3"):
        model(torch.zeros(1, 3, 64, 64), torch.zeros(1, 4, 64, 64))
    with pytest.raises(ValueError, match="image must be"):
        model(torch.zeros(1, 1, 64, 64), torch.zeros(1, 3, 64, 64))


def test_backbone_parameter_counts_match_reference_implementations():
    with torch.device("meta"):
        assert n_params(MobileNetV2Encoder()) == 2_223_872        # torchvision mobilenet_v2().features
        assert n_params(ResNetEncoder(34)) == 21_284_672          # torchvision resnet34 without fc
        assert n_params(ResNetEncoder(18)) == 11_176_512          # torchvision resnet18 without fc


def test_parameter_budget():
    lirc = n_params(meta_model("lircdepth"))
    student = n_params(meta_model("xdrcdepth"))
    assert lirc == LIRCDEPTH_PAPER_PARAMS
    ratio = student / lirc
    assert 0.60 <= ratio <= 0.703, f"xdrcdepth has {ratio:.3f} of lircdepth's parameters"
    assert n_params(meta_model("cafnet")) > 3 * lirc  # the teacher is the big model


@pytest.mark.parametrize("name, config", [
    ("xdrcdepth", {}),
    ("xdrcdepth", {"width_mult": 0.75, "radar_width_mult": 1.0, "film_spatial": True, "radar_channels": 3,
                   "daspp_rates": [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3]]}),
    ("lircdepth", {}),
    ("lircdepth", {"image_adapter_channels": None, "radar_adapter_channels": None, "max_depth": 80}),
    ("cafnet", {}),
    ("cafnet", {"image_depth": 18, "bts_size": 256}),
    ("cafnet", {"resnet_width": 16, "bts_size": 64, "depth_confidence": True, "confidence_mask": "straight_through",
                "confidence_threshold": 0.5, "radar_channels": 3}),
])
def test_registry_round_trip(name, config):
    model = meta_model(name, **config)
    assert model.name == name
    for key, value in config.items():
        assert model.config[key] == value
    config_copy = json.loads(json.dumps(model.config))  # configs are plain JSON
    rebuilt = meta_model(model.name, **config_copy)
    assert n_params(rebuilt) == n_params(model)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_registry_errors():
    assert set(MODEL_NAMES) <= set(list_models())
    with pytest.raises(KeyError, match="unknown model 'nope'.*xdrcdepth"):
        build_model("nope")
    with pytest.raises(TypeError, match="bad config for model 'xdrcdepth'"):
        build_model("xdrcdepth", not_an_option=1)
    with pytest.raises(ValueError, match="additive fusion needs equal channels"):
        build_model("lircdepth", image_adapter_channels=None)
    for width in (0, -1, float("nan"), float("inf")):    # make_divisible would floor each at 8 channels
        with pytest.raises(ValueError, match="width_mult must be a finite number > 0"):
            meta_model("xdrcdepth", width_mult=width)
        with pytest.raises(ValueError, match="width_mult must be a finite number > 0"):
            meta_model("xdrcdepth", radar_width_mult=width)


@pytest.mark.slow
def test_models_command_prints_table_and_budget():
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "models", "--height", "352",
                             "--width", "704"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:4]}
    assert set(rows) == set(MODEL_NAMES)
    assert rows["lircdepth"][1] == "12.645" and rows["lircdepth"][3] == "100.0%"
    student_ratio = float(rows["xdrcdepth"][3].rstrip("%"))
    assert student_ratio == pytest.approx(100 * n_params(meta_model("xdrcdepth")) / LIRCDEPTH_PAPER_PARAMS, abs=0.05)
    # GFLOPs scale with the pixel count: the student is cheaper than the baseline
    assert float(rows["xdrcdepth"][2]) < float(rows["lircdepth"][2]) < float(rows["cafnet"][2])
    assert re.search(r"^budget MET: xdrcdepth has \d+\.\d % of lircdepth's parameters", result.stdout, re.M)
    for height in ("100", "4128", "99999999999999999999999999999968"):       # off the grid, then too large
        bad = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "models", "--height", height],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and bad.stderr == (f"xdrcdepth models: error: argument --height: must be a "
                                                      f"multiple of 32 up to 4096, got '{height}' (see --help)\n")
