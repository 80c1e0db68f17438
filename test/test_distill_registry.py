"""Loss registry: names, errors, YAML options, trainer flags."""

import pytest
import yaml

from xdrcdepth_core.distill import (LOSSES, DistillLoss, build_loss, build_loss_entry, list_losses, loss_options,
                                   register_loss)

ALL_LOSSES = {
    "depth_l1", "silog", "smoothness", "laplacian_nll", "radar_confidence_bce", "radar_depth_l1",
    "xkd", "dkd", "lircdepth_pixel", "lircdepth_pair", "lircdepth_interdepth", "rectified_depth",
    "crkd_relation", "crkd_mask_feature", "crkd_response", "confidence_kd", "dked_bounded", "dked_corr",
}
STUDENT_ONLY = {"depth_l1", "silog", "smoothness", "laplacian_nll", "radar_confidence_bce", "radar_depth_l1",
                "rectified_depth"}


def test_list_names_every_loss():
    assert set(list_losses()) == ALL_LOSSES
    assert list_losses() == sorted(list_losses())
    for name in ALL_LOSSES:
        loss = build_loss(name)
        assert isinstance(loss, DistillLoss) and loss.name == name


def test_trainer_flags():
    assert {n for n in ALL_LOSSES if LOSSES[n].requires_teacher} == ALL_LOSSES - STUDENT_ONLY
    assert {n for n in ALL_LOSSES if LOSSES[n].requires_teacher_graph} == {"xkd"}


def test_errors_are_clear():
    with pytest.raises(ValueError, match="unknown loss 'nope'; registered losses: .*xkd"):
        build_loss("nope")
    with pytest.raises(TypeError, match="bad options for loss 'dkd'.*not_an_option"):
        build_loss("dkd", not_an_option=1)
    with pytest.raises(ValueError, match="unknown spacing 'cubic'"):
        build_loss("dkd", spacing="cubic")
    with pytest.raises(ValueError, match="compare: kl needs relu: true"):
        build_loss("xkd", compare="kl")
    with pytest.raises(ValueError, match="layer is \\[name, scale\\]"):
        build_loss("lircdepth_pair", layers=[["decoder"]])
    with pytest.raises(ValueError, match="unknown adapter 'conv5x5'"):
        build_loss("dked_corr", adapter="conv5x5")
    with pytest.raises(ValueError, match="already registered"):
        register_loss("xkd")(type("Other", (DistillLoss,), {}))
    with pytest.raises(ValueError, match="needs teacher outputs"):
        build_loss("dkd")({}, None, {})
    with pytest.raises(KeyError, match="loss 'depth_l1' needs batch\\['depth_gt'\\]"):
        build_loss("depth_l1")({}, None, {})


def test_options_from_an_experiment_yaml():
    config = yaml.safe_load("""
losses:
  - {name: xkd, weight: 0.5, layers: [[[decoder, 4], [decoder, 4]], [[decoder, 8], [decoder, 8]]],
     target: depth_bin, depth_bin: [0, 15], normalize: l2, compare: cosine, relu: true}
  - {name: dkd, weight: 1.0, spacing: sid, bins: 32, min_depth: 0.5, max_depth: 80, temperature: 2}
  - {name: lircdepth_pixel, weight: 1.0, radar_weight: 0, scales: [32, 16], adapter: none}
  - {name: crkd_relation, weight: 0.25, layers: [[fused, 8]], sizes: [16, 8]}
""")
    losses = {}
    for entry in config["losses"]:
        options = {k: v for k, v in entry.items() if k not in ("name", "weight")}
        losses[entry["name"]] = build_loss(entry["name"], **options)
    xkd = losses["xkd"]
    assert xkd.pairs == [(("decoder", 4), ("decoder", 4)), (("decoder", 8), ("decoder", 8))]
    assert (xkd.target, xkd.normalize, xkd.compare, xkd.relu) == ("depth_bin", "l2", "cosine", True)
    dkd = losses["dkd"]
    assert len(dkd.centers) == 32 and dkd.temperature == 2.0
    assert dkd.centers[0] > 0.5 and dkd.centers[-1] < 80
    pixel = losses["lircdepth_pixel"]
    assert pixel.kinds == {"image": 1.0} and pixel.scales == [32, 16] and pixel.adapters.blocks is None
    assert losses["crkd_relation"].layers == [("fused", 8)] and losses["crkd_relation"].sizes == [16, 8]


def test_a_config_entry_splits_into_the_trainers_keys_and_the_losss_options():
    entry = {"name": "dkd", "weight": 0.5, "every": 2, "bins": 16, "temperature": 3.0}
    assert loss_options(entry) == {"bins": 16, "temperature": 3.0}
    assert entry == {"name": "dkd", "weight": 0.5, "every": 2, "bins": 16, "temperature": 3.0}   # not changed
    loss = build_loss_entry(entry)
    assert type(loss) is LOSSES["dkd"] and loss.temperature == 3.0 and loss.centers.numel() == 16
    with pytest.raises(TypeError, match="bogus"):
        build_loss_entry({"name": "dkd", "weight": 1.0, "bogus": 1})
