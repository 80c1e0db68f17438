"""Every loss's contract on tiny tensors (no networks, so it runs in the mutation run): the exact message of
each missing input and bad option, boundary values written out by hand (thresholds, masks, per-image
normalisation, batch and layer averaging), and xkd's live-teacher and per-sample Grad-CAM paths on toy
"networks" whose maps are worked out by hand. Found by mutation testing (docs/testing.md): each test here
fails for a small change of the code it names."""

import math
import re

import pytest
import torch

from xdrcdepth_core.distill import LOSSES, DistillLoss, build_loss, register_loss
from xdrcdepth_core.distill.common import boxes_mask, keep_lowest
from xdrcdepth_core.distill.confidence import CONFIDENCE_HINT
from xdrcdepth_core.distill.crkd import affinity, box_growth
from xdrcdepth_core.saliency import depth_bin_target

LAYER = ("decoder", 4)


def row(values, batch=1):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1).repeat(batch, 1, 1, 1)


def maps(shape=(1, 1, 2, 4), value=5.0):
    return torch.full(shape, value)


def full_inputs():
    """Student and teacher outputs and a batch with every key any loss reads (values only need to be valid)."""
    def outputs(seed):
        generator = torch.Generator().manual_seed(seed)
        out = {"depth": maps(), "depth_confidence": maps(value=0.5), "radar_depth": maps(),
               "radar_confidence_logit": maps(value=0.1)}
        out.update({("depth", s): maps() for s in (8, 4, 2)})
        for kind in ("image", "radar"):
            out.update({(kind, s): torch.rand(1, 2, 2, 2, generator=generator) for s in (32, 16, 8, 4, 2)})
        out.update({("decoder", s): torch.rand(1, 2, 4, 4, generator=generator) for s in (16, 8, 4, 2)})
        out[("fused", 8)] = torch.rand(1, 2, 2, 4, generator=generator)
        return out

    batch = {"depth_gt": maps(value=4.0), "depth_gt_single": maps(value=4.0), "image": torch.zeros(1, 3, 2, 4),
             "radar_confidence_gt": torch.ones(1, 1, 2, 4), "boxes": torch.tensor([[[0.0, 0, 4, 2, 25, 1, 0]]]),
             "boxes_valid": torch.tensor([[True]]), "K": torch.eye(3)[None] * 10}
    return outputs(0), outputs(1), batch


# --- missing inputs: one message per key, naming the loss, the dict, the key and what provides it ----------

NEEDS = [  # (loss, options, where, key, hint)
    ("depth_l1", {}, "batch", "depth_gt", ""),
    ("depth_l1", {}, "student_out", "depth", ""),
    ("depth_l1", {"intermediate_weight": 0.5}, "student_out", ("depth", 4), ""),
    ("silog", {}, "student_out", "depth", ""),
    ("silog", {}, "batch", "depth_gt", ""),
    ("smoothness", {}, "student_out", "depth", ""),
    ("smoothness", {}, "batch", "image", ""),
    ("radar_depth_l1", {}, "batch", "depth_gt", ""),
    ("radar_depth_l1", {}, "student_out", "radar_depth", "a model with a radar depth stage"),
    ("radar_confidence_bce", {}, "student_out", "radar_confidence_logit", "a model with a radar confidence"),
    ("radar_confidence_bce", {}, "batch", "radar_confidence_gt", "a cache with radar confidence labels"),
    ("laplacian_nll", {}, "student_out", "depth", ""),
    ("laplacian_nll", {}, "student_out", "depth_confidence", CONFIDENCE_HINT),
    ("laplacian_nll", {}, "batch", "depth_gt", ""),
    ("confidence_kd", {}, "student_out", "depth", ""),
    ("confidence_kd", {}, "teacher_out", "depth", ""),
    ("confidence_kd", {}, "teacher_out", "depth_confidence", CONFIDENCE_HINT),
    ("dked_bounded", {}, "teacher_out", "depth", ""),
    ("dked_bounded", {}, "batch", "depth_gt", ""),
    ("dked_corr", {"layers": [LAYER]}, "student_out", LAYER, ""),
    ("rectified_depth", {}, "student_out", "depth", ""),
    ("rectified_depth", {}, "batch", "depth_gt", ""),
    ("rectified_depth", {}, "batch", "depth_gt_single", "a cache with single-sweep LiDAR"),
    ("crkd_mask_feature", {}, "batch", "boxes", "a cache with boxes"),
    ("crkd_mask_feature", {}, "batch", "boxes_valid", "a cache with boxes"),
    ("crkd_mask_feature", {}, "batch", "K", ""),
    ("crkd_mask_feature", {}, "batch", "image", ""),
    ("crkd_mask_feature", {}, "teacher_out", ("fused", 8), ""),
    ("crkd_relation", {}, "student_out", ("fused", 8), ""),
    ("crkd_response", {}, "teacher_out", "depth", ""),
    ("dkd", {}, "student_out", "depth", ""),
    ("lircdepth_pixel", {}, "teacher_out", ("image", 32), ""),
    ("lircdepth_pair", {}, "student_out", ("decoder", 16), ""),
    ("lircdepth_interdepth", {}, "teacher_out", ("depth", 8), ""),
    ("xkd", {}, "student_out", "depth", ""),
    ("xkd", {"target": "region"}, "batch", "boxes", "target: region with region: boxes"),
    ("xkd", {"target": "region"}, "batch", "boxes_valid", ""),
]


@pytest.mark.parametrize("name, options, where, key, hint", NEEDS,
                         ids=[f"{n}-{w}-{k}" for n, _, w, k, _ in NEEDS])
def test_a_missing_input_is_named(name, options, where, key, hint):
    student, teacher, batch = full_inputs()
    source = {"student_out": student, "teacher_out": teacher, "batch": batch}[where]
    del source[key]
    expected = f"loss {name!r} needs {where}[{key!r}]" + (f" ({hint})" if hint else "")
    with pytest.raises(KeyError) as info:
        build_loss(name, **options)(student, teacher, batch)
    assert info.value.args[0] == expected


def test_xkd_live_teacher_needs_its_depth():
    out, _ = toy_outputs([1.0, -2.0], [2.0, 0.0])
    teacher, _ = toy_outputs([1.0, 1.0], [2.0, 0.0], weights=(2.0, 2.0))
    del teacher["depth"]
    with pytest.raises(KeyError) as info:
        build_loss("xkd")(out, teacher, {})
    assert info.value.args[0] == "loss 'xkd' needs teacher_out['depth']"


# --- options ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, options, message", [
    ("laplacian_nll", {"beta": 0.0}, "beta must be > 0, got 0.0"),
    ("laplacian_nll", {"drop_top": 1.0}, "drop_top must be in [0, 1), got 1.0"),
    ("confidence_kd", {"drop_top": -0.1}, "drop_top must be in [0, 1), got -0.1"),
    ("crkd_relation", {"sizes": []}, "sizes must be positive heights, got []"),
    ("crkd_relation", {"sizes": [4, 0]}, "sizes must be positive heights, got [4, 0]"),
    ("crkd_response", {"beta": 0.0}, "beta must be > 0, got 0.0"),
    ("silog", {"variance_focus": 1.5}, "variance_focus must be in [0, 1], got 1.5"),
    ("silog", {"variance_focus": -0.5}, "variance_focus must be in [0, 1], got -0.5"),
    ("xkd", {"target": "mean"}, "unknown target 'mean'; choose one of mean_depth, region, depth_bin"),
    ("xkd", {"normalize": "minmax"}, "unknown normalize 'minmax'; choose one of sum, l2"),
    ("xkd", {"compare": "l2"}, "unknown compare 'l2'; choose one of l1, cosine, kl"),
    ("xkd", {"compare": "kl"}, "compare: kl needs relu: true and normalize: sum (maps must be distributions)"),
    ("xkd", {"compare": "kl", "relu": True, "normalize": "l2"}, "compare: kl needs relu: true and normalize: sum"),
    ("xkd", {"layers": []}, "xkd needs at least one layer pair"),
    ("xkd", {"layers": [5]}, "xkd layers are [[student_layer], [teacher_layer]] pairs, got 5"),
    ("xkd", {"layers": [[LAYER, LAYER, LAYER]]}, "xkd layers are [[student_layer], [teacher_layer]] pairs"),
    ("xkd", {"region": [0.5, 0.5, 0.0, 1.0]}, "region is 'boxes' or [y0, y1, x0, x1] fractions of the image"),
    ("xkd", {"region": [0.0, 1.0, 0.5, 0.5]}, "region is 'boxes' or [y0, y1, x0, x1] fractions of the image"),
    ("xkd", {"region": [0.0, 1.5, 0.0, 1.0]}, "region is 'boxes' or [y0, y1, x0, x1] fractions"),
    ("xkd", {"region": [0.0, 1.0, 0.0, 1.5]}, "region is 'boxes' or [y0, y1, x0, x1] fractions"),
    ("xkd", {"region": [-0.1, 1.0, 0.0, 1.0]}, "region is 'boxes' or [y0, y1, x0, x1] fractions"),
    ("xkd", {"region": [0.0, 1.0, -0.1, 1.0]}, "region is 'boxes' or [y0, y1, x0, x1] fractions"),
    ("xkd", {"region": [0.0, 1.0, 0.0]}, "region is 'boxes' or [y0, y1, x0, x1] fractions"),
    ("xkd", {"region": "0011"}, "region is 'boxes' or [y0, y1, x0, x1] fractions of the image, got '0011'"),
])
def test_bad_options_are_named(name, options, message):
    with pytest.raises(ValueError) as info:
        build_loss(name, **options)
    assert str(info.value).startswith(message), str(info.value)


def test_boundary_options_are_accepted():
    assert build_loss("silog", variance_focus=0.0).variance_focus == 0.0
    assert build_loss("silog", variance_focus=1.0).variance_focus == 1.0
    assert build_loss("laplacian_nll", drop_top=0.0).drop_top == 0.0
    region = build_loss("xkd", target="region", region=[0.0, 1.0, 0.0, 1.0])   # the whole image
    assert region.region == [0.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match=re.escape("drop fraction must be in [0, 1), got 1.5")):
        keep_lowest(row([1.0, 2.0]), row([1.0, 2.0]) > 0, 1.5)


def test_xkd_defaults_and_layer_pairs():
    loss = build_loss("xkd")
    assert (loss.target, loss.normalize, loss.compare, loss.relu) == ("mean_depth", "sum", "l1", False)
    assert (loss.per_sample, loss.teacher_per_sample) == (True, False)
    pair = build_loss("xkd", layers=[[["decoder", 4], ["decoder", 8]]], per_sample=False, teacher_per_sample=True)
    assert pair.pairs == [(("decoder", 4), ("decoder", 8))]
    assert (pair.per_sample, pair.teacher_per_sample) == (False, True)
    # the depth-bin target: soft share in [0, 20] m with 1 m sigmoid edges
    depth = {"depth": row([10.0, 30.0])}
    assert loss.bin_target(depth).item() == pytest.approx(depth_bin_target(0.0, 20.0, 1.0)(depth).item())
    wide = build_loss("xkd", depth_bin=[0.0, 40.0], bin_softness=2.0)
    assert wide.bin_target(depth).item() == pytest.approx(depth_bin_target(0.0, 40.0, 2.0)(depth).item())


def test_register_a_new_loss():
    @register_loss("test_only_loss")
    class TestOnly(DistillLoss):
        pass

    try:
        assert LOSSES["test_only_loss"] is TestOnly and TestOnly.name == "test_only_loss"
        assert isinstance(build_loss("test_only_loss"), TestOnly)
        assert register_loss("test_only_loss")(TestOnly) is TestOnly         # the same class again: fine
    finally:
        del LOSSES["test_only_loss"]


# --- helpers and supervised losses at their boundaries -------------------------------------------------------

def test_keep_lowest_keeps_only_the_smallest_when_the_share_rounds_to_one():
    # 2 valid, drop 60 %: keep ceil(0.8) = 1, the smallest
    assert keep_lowest(row([3.0, 1.0]), row([1.0, 1.0]) > 0, 0.6).flatten().tolist() == [False, True]


def test_boxes_mask_grows_each_axis_on_each_side_and_includes_centres_on_the_edge():
    # a 32 x 32 map over a 32 x 32 image: pixel centres at j + 0.5
    box = torch.tensor([[[10.0, 12.0, 20.0, 16.0]]])
    grown = boxes_mask(box, torch.tensor([[True]]), (32, 32), (32, 32), grow=torch.tensor([[[4.0, 8.0]]]))
    # x: [10 - 2, 20 + 2] = [8, 22] -> columns 8..21; y: [12 - 4, 16 + 4] = [8, 20] -> rows 8..19
    rows, cols = torch.nonzero(grown[0, 0], as_tuple=True)
    assert (rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()) == (8, 19, 8, 21)
    # edges exactly on pixel centres are inside (>= and <=)
    edges = boxes_mask(torch.tensor([[[8.5, 8.5, 21.5, 19.5]]]), torch.tensor([[True]]), (32, 32), (32, 32))
    rows, cols = torch.nonzero(edges[0, 0], as_tuple=True)
    assert (rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()) == (8, 19, 8, 21)


def test_supervised_losses_count_gt_below_one_metre():
    depth, gt = row([1.0, 2.0]), row([0.5, 0.0])
    assert build_loss("depth_l1")({"depth": depth}, None, {"depth_gt": gt}).item() == pytest.approx(0.5)
    assert build_loss("radar_depth_l1")({"radar_depth": depth}, None, {"depth_gt": gt}).item() == pytest.approx(0.5)
    # silog without any GT pixel: exactly 0, differentiable
    d = row([2.0, 3.0]).requires_grad_(True)
    value = build_loss("silog")({"depth": d}, None, {"depth_gt": torch.zeros_like(d)})
    value.backward()
    assert value.item() == 0 and d.grad.abs().sum() == 0


def test_smoothness_normalises_each_image_by_its_own_mean_in_both_directions():
    # image 0: depth varies down the rows only; image 1: the same map x 10 (same normalised map, same loss)
    depth = torch.tensor([[1.0, 1.0], [3.0, 3.0]]).view(1, 1, 2, 2)
    depth = torch.cat([depth, depth * 10])
    image = torch.zeros(2, 3, 2, 2)                       # flat image: edge weights exp(0) = 1
    # normalised [[0.5, 0.5], [1.5, 1.5]]: x differences 0, y differences |1| at both columns -> mean 1
    value = build_loss("smoothness")({"depth": depth}, None, {"image": image})
    assert value.item() == pytest.approx(1.0)
    # an image edge between the rows halves nothing in x but weighs the y step by exp(-|dI| std)
    edge = torch.zeros(2, 3, 2, 2)
    edge[:, :, 1, :] = 1.0
    weight = sum(math.exp(-s) for s in (0.229, 0.224, 0.225)) / 3    # not the mean of exp: channel mean first
    value = build_loss("smoothness")({"depth": depth}, None, {"image": edge})
    assert value.item() == pytest.approx(math.exp(-(0.229 + 0.224 + 0.225) / 3), rel=1e-6)
    assert value.item() != pytest.approx(weight, rel=1e-9)


def test_laplacian_nll_counts_gt_below_one_metre():
    depth, confidence = row([1.0, 2.0]), row([2.0, 2.0])
    value = build_loss("laplacian_nll", drop_top=0.0)(
        {"depth": depth, "depth_confidence": confidence}, None, {"depth_gt": row([0.5, 0.0])})
    assert value.item() == pytest.approx(0.5 * 2 - 0.002 * math.log(2))


def test_confidence_kd_normalises_confidence_per_image():
    # two images, 3 pixels each, nothing dropped at drop_top 0: c / mean(c) per image
    teacher = {"depth": torch.full((2, 1, 1, 3), 10.0),
               "depth_confidence": torch.tensor([[1.0, 2.0, 3.0], [10.0, 10.0, 40.0]]).view(2, 1, 1, 3)}
    student = torch.tensor([[9.0, 10.0, 12.0], [11.0, 10.0, 10.0]]).view(2, 1, 1, 3)
    # image 0: c/2 = 0.5, 1, 1.5 with diffs 1, 0, 2 -> 3.5; image 1: c/20 = 0.5, 0.5, 2 with diffs 1, 0, 0 -> 0.5
    value = build_loss("confidence_kd", drop_top=0.0)({"depth": student}, teacher, {})
    assert value.item() == pytest.approx((3.5 + 0.5) / 6)


def test_lircdepth_depth_thresholds_are_strict_at_one_centimetre():
    # interdepth: a teacher depth of exactly 0.01 m is invalid (> 0.01)
    student = {("depth", s): row([1.0, 2.0]) for s in (8, 4, 2)}
    teacher = {("depth", s): row([0.01, 3.0]) for s in (8, 4, 2)}
    u = 1 - math.exp(-5 * 1 / 5)                           # the valid pixel: |3 - 2| / (3 + 2)
    value = build_loss("lircdepth_interdepth")(student, teacher, {})
    assert value.item() == pytest.approx(1.75)   # only pixel 1 (u > 0): L1 1 at weights 1 + 1/2 + 1/4
    # rectified: GT of exactly 0.01 m counts as no GT
    batch = {"depth_gt": row([0.01, 0.0]), "depth_gt_single": row([0.01, 0.0])}
    assert build_loss("rectified_depth")({"depth": row([5.0, 5.0])}, None, batch).item() == 0


def test_dked_bounded_default_margin_and_ties():
    gt = row([10.0, 10.0, 0.5])
    student = row([11.0, 11.0, 1.5])
    teacher = row([11.0, 12.0, 2.0])
    # errors: student 1, 1, 1; teacher 1, 2, 1.5. Default margin 0: pixel 0 ties (1 + 0 > 1 is false, inactive),
    # pixel 1 is better than the teacher (inactive), pixel 2 (gt 0.5 m counts) too -> 0
    assert build_loss("dked_bounded")({"depth": student}, {"depth": teacher}, {"depth_gt": gt}).item() == 0
    # margin 1: 1 + 1 > 1, > 2 false, > 1.5 -> pixels 0 and 2 -> (1 + 1) / 3
    assert build_loss("dked_bounded", margin=1.0)({"depth": student}, {"depth": teacher},
                                                  {"depth_gt": gt}).item() == pytest.approx(2 / 3)


# --- CRKD -------------------------------------------------------------------------------------------------

def test_box_growth_thresholds_by_hand():
    K = torch.tensor([[[100.0, 0, 0], [0, 50.0, 0], [0, 0, 1]]])
    boxes = torch.tensor([[
        [10, 20, 30, 40, 20.0, 0.0, 0.0],    # exactly 20 m: +25 %; 20 px -> 20 * 20 / 100 = 4 m -> 1 m; y 20 px / 50 f
        [10, 20, 30, 40, 30.0, 0.0, 0.0],    # exactly 30 m: +50 %
        [10, 20, 30, 40, 10.0, 0.3, 0.0],    # exactly 0.3 m/s: not > 0.3, nothing
        [10, 20, 30, 40, 10.0, 0.0, 0.8],    # exactly 0.8 m/s: +50 %
        [10, 20, 30, 40, 0.5, 0.0, 1.0],     # 0.5 m away, moving: grown (range > 0)
        [10, 20, 30, 40, 0.0, 0.0, 1.0],     # range 0: not grown
    ]])
    grow = box_growth(boxes, K)[0]
    # x: 20 px wide, y: 20 px tall; size_m = px * range / f; grow_m = clamp(fraction * size_m, 0.5, 4); back: * f / range
    def expected(fraction, distance):
        gx = min(max(fraction * 20 * distance / 100, 0.5), 4.0) * 100 / distance
        gy = min(max(fraction * 20 * distance / 50, 0.5), 4.0) * 50 / distance
        return [gx, gy]
    want = [expected(0.25, 20), expected(0.5, 30), [0.0, 0.0], expected(0.5, 10), expected(0.5, 0.5), [0.0, 0.0]]
    assert grow.tolist() == [pytest.approx(w, rel=1e-5) for w in want]


def test_relation_on_non_square_maps_two_layers_and_an_adapter():
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(0)
    layers = [["fused", 8], ["fused", 4]]
    student = {("fused", 8): torch.rand(2, 3, 8, 2, generator=generator),     # tall: 8 x 2
               ("fused", 4): torch.rand(2, 3, 2, 8, generator=generator)}     # wide: 2 x 8
    teacher = {k: torch.rand(2, 3, *v.shape[-2:], generator=generator) for k, v in student.items()}
    loss = build_loss("crkd_relation", layers=layers, sizes=[4, 2], adapter="none")

    def reference(s, t):
        h, w = t.shape[-2:]
        total = 0.0
        for height in (4, 2):
            size = (height, max(1, round(height * w / h)))      # 8 x 2 -> 4 x 1 and 2 x 1 (clamped to 1)
            a = F.interpolate(s, size=size, mode="bilinear", align_corners=False).flatten(2)
            b = F.interpolate(t, size=size, mode="bilinear", align_corners=False).flatten(2)
            total += (a.transpose(1, 2) @ a / 3 - b.transpose(1, 2) @ b / 3).abs().mean().item()
        return total

    want = (reference(student[("fused", 8)], teacher[("fused", 8)])
            + reference(student[("fused", 4)], teacher[("fused", 4)])) / 2
    assert loss(student, teacher, {}).item() == pytest.approx(want, rel=1e-5)
    # the default adapter maps 3 student channels to the teacher's 5
    wide_teacher = {k: torch.rand(2, 5, *v.shape[-2:], generator=generator) for k, v in student.items()}
    assert torch.isfinite(build_loss("crkd_relation", layers=layers)(student, wide_teacher, {}))
    with pytest.raises(ValueError, match="3 student channels for 5 teacher channels"):
        build_loss("crkd_relation", layers=layers, adapter="none")(student, wide_teacher, {})
    assert affinity(torch.ones(1, 2, 1, 3)).tolist() == [[[1.0] * 3] * 3]


def test_mask_feature_enlarges_by_default_and_averages_layers():
    K = torch.tensor([[[10.0, 0, 0], [0, 10.0, 0], [0, 0, 1]]])
    # an 8 x 8 map over an 8 x 8 image; box [2, 2, 4, 4] at 35 m (+50 %): 2 px * 35 / 10 = 7 m -> 3.5 m
    # -> 1 px per axis, half on each side: [1.5, 1.5, 4.5, 4.5] covers centres 1.5 .. 4.5 (4 x 4 cells)
    batch = {"image": torch.zeros(1, 3, 8, 8), "boxes": torch.tensor([[[2.0, 2.0, 4.0, 4.0, 35.0, 0.0, 0.0]]]),
             "boxes_valid": torch.tensor([[True]]), "K": K}
    teacher = torch.full((1, 1, 8, 8), 2.0)
    student = torch.full((1, 1, 8, 8), 1.0)
    out_s = {("fused", 8): student, ("fused", 4): student * 0}
    out_t = {("fused", 8): teacher, ("fused", 4): teacher}
    # 0.5 (1 - 2)^2 = 0.5 and 0.5 (0 - 2)^2 = 2 over the same cells: layers averaged -> 1.25
    grown = build_loss("crkd_mask_feature", layers=[["fused", 8], ["fused", 4]], adapter="none")
    plain = build_loss("crkd_mask_feature", layers=[["fused", 8], ["fused", 4]], adapter="none", enlarge=False)
    assert grown.enlarge is True and plain.enlarge is False
    assert grown(out_s, out_t, batch).item() == pytest.approx(1.25)
    # which cells: a teacher that differs only on the ring the enlargement adds
    ring = teacher.clone()
    ring[..., 2:4, 2:4] = 1.0                              # inside the plain box: no difference
    ring_t = {("fused", 8): ring, ("fused", 4): ring * 0}
    ring_s = {("fused", 8): torch.ones(1, 1, 8, 8), ("fused", 4): torch.zeros(1, 1, 8, 8)}
    assert plain(ring_s, ring_t, batch).item() == pytest.approx(0.0)
    # grown: 16 cells, 12 of them on the ring with 0.5 (1 - 2)^2 = 0.5 -> 0.375 for the first layer, 0 for the second
    assert grown(ring_s, ring_t, batch).item() == pytest.approx(0.375 / 2)
    # the default adapter maps the student's channels to the teacher's
    two = {("fused", 8): torch.ones(1, 3, 8, 8)}
    assert torch.isfinite(build_loss("crkd_mask_feature")(two, {("fused", 8): teacher}, batch))


def test_response_uses_its_beta():
    student, teacher = row([10.25, 12.0]), row([10.0, 10.0])
    # beta 0.5: 0.5 * 0.25^2 / 0.5 = 0.0625 and 2 - 0.25 = 1.75 -> mean 0.90625
    assert build_loss("crkd_response", beta=0.5)({"depth": student}, {"depth": teacher}, {}).item() == \
        pytest.approx(0.90625)


# --- xkd: live teacher maps and per-sample targets on toy networks -------------------------------------------

def toy_outputs(channel0, channel1, weights=(2.0, 3.0)):
    """A "network" whose depth is ``w0 A_0 + w1 A_1`` per pixel, on a 1 x 2 x 1 x 2 feature A."""
    feature = torch.tensor([channel0, channel1]).view(1, 2, 1, 2).requires_grad_(True)
    w = torch.tensor(weights, requires_grad=True)
    depth = (w.view(1, 2, 1, 1) * feature).sum(dim=1, keepdim=True)
    return {LAYER: feature, "depth": depth}, w


def test_xkd_live_teacher_map_equals_the_cached_one():
    out, _ = toy_outputs([1.0, -2.0], [2.0, 0.0])
    # teacher: weights (2, 2) -> alpha = (1, 1); A_0 = (1, 1), A_1 = (2, 0) -> map (3, 1), as the cached one
    live, _ = toy_outputs([1.0, 1.0], [2.0, 0.0], weights=(2.0, 2.0))
    cached = {"depth": live["depth"].detach(), ("saliency", LAYER): torch.tensor([3.0, 1.0]).view(1, 1, 1, 2)}
    expected = abs(4 / 6 - 0.75) + abs(-2 / 6 - 0.25)     # student map (4, -2), sum-normalised, L1
    assert build_loss("xkd")(out, live, {}).item() == pytest.approx(expected, rel=1e-5)
    assert build_loss("xkd")(out, cached, {}).item() == pytest.approx(expected, rel=1e-5)
    # two identical layer pairs: averaged, not summed
    two = build_loss("xkd", layers=[[LAYER, LAYER], [LAYER, LAYER]])
    assert two(out, live, {}).item() == pytest.approx(expected, rel=1e-5)
    # a live teacher map of another size is refused, naming the layers
    feature = torch.ones(1, 2, 1, 1, requires_grad=True)
    small = {LAYER: feature, "depth": feature.sum(dim=1, keepdim=True)}
    with pytest.raises(ValueError, match=r"xkd maps \('decoder', 4\) / \('decoder', 4\)"):
        build_loss("xkd")(out, small, {})


def coupled_outputs(c=1.0):
    """Two images whose depth couples across the batch (as train-mode BatchNorm does):
    ``depth_b = A_b0 + A_b1 + c A_(1-b)0`` on a 2 x 2 x 1 x 2 feature."""
    feature = torch.tensor([[[[1.0, 3.0]], [[2.0, 1.0]]],
                            [[[2.0, 1.0]], [[1.0, 2.0]]]]).requires_grad_(True)
    depth = feature[:, :1] + feature[:, 1:] + c * feature.flip(0)[:, :1]
    return {LAYER: feature, "depth": depth}


def test_xkd_per_sample_targets_on_a_coupled_toy():
    # per image: d mean(depth_b) / d A_b = 1/2 for both channels -> map_b = (A_b0 + A_b1) / 2
    #   image 0: (1.5, 2), image 1: (1.5, 1.5)
    # summed target: channel 0 also gets c / 2 from the other image -> map_b = (2 A_b0 + A_b1) / 2 (c = 1)
    #   image 0: (2, 3.5), image 1: (2.5, 2)
    teacher_map = torch.tensor([[0.5, 0.5], [0.5, 0.5]]).view(2, 1, 1, 2)   # uniform, sum-normalised
    cached = {"depth": torch.zeros(2, 1, 1, 2), ("saliency", LAYER): teacher_map}

    def l1_to_uniform(m):
        return sum(abs(v / sum(m) - 0.5) for v in m)

    per_sample = (l1_to_uniform([1.5, 2.0]) + l1_to_uniform([1.5, 1.5])) / 2
    summed = (l1_to_uniform([2.0, 3.5]) + l1_to_uniform([2.5, 2.0])) / 2
    assert build_loss("xkd")(coupled_outputs(), cached, {}).item() == pytest.approx(per_sample, rel=1e-5)
    assert build_loss("xkd", per_sample=False)(coupled_outputs(), cached, {}).item() == pytest.approx(summed, rel=1e-5)
    # the same toy as a live teacher: its map from the summed target by default, per sample when asked
    student = coupled_outputs()
    own = build_loss("xkd", teacher_per_sample=True)(student, coupled_outputs(), {})
    assert own.item() == pytest.approx(0.0, abs=1e-6)                        # per sample on both sides
    mixed = build_loss("xkd")(coupled_outputs(), coupled_outputs(), {})
    want = (sum(abs(a / 3.5 - b / 5.5) for a, b in ((1.5, 2.0), (2.0, 3.5)))
            + sum(abs(a / 3.0 - b / 4.5) for a, b in ((1.5, 2.5), (1.5, 2.0)))) / 2
    assert mixed.item() == pytest.approx(want, rel=1e-5)


def test_xkd_normalisation_and_distances_per_image():
    loss = build_loss("xkd")
    maps2 = torch.tensor([[1.0, 3.0], [10.0, -10.0]]).view(2, 1, 1, 2)
    assert loss.normalized(maps2).tolist() == [[0.25, 0.75], [0.5, -0.5]]
    l2 = build_loss("xkd", normalize="l2")
    assert l2.normalized(maps2).flatten().tolist() == pytest.approx([1 / math.sqrt(10), 3 / math.sqrt(10),
                                                                     1 / math.sqrt(2), -1 / math.sqrt(2)])
    s, t = torch.tensor([[0.25, 0.75], [0.5, 0.5]]), torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    assert loss.distance(s, t).item() == pytest.approx((0.5 + 0.0) / 2)                  # per image, then mean
    cosine = build_loss("xkd", normalize="l2", compare="cosine")
    assert cosine.distance(s, t).item() == pytest.approx(
        (1 - (0.25 + 0.75) * 0.5 / (math.sqrt(0.625) * math.sqrt(0.5))) / 2, rel=1e-6)
    kl = build_loss("xkd", relu=True, compare="kl")
    want = (0.5 * math.log(0.5 / (0.25 + 1e-8)) + 0.5 * math.log(0.5 / (0.75 + 1e-8))) / 2
    assert kl.distance(s, t).item() == pytest.approx(want, rel=1e-6)


def test_xkd_region_fractions_include_centres_on_the_edges():
    # a 4 x 4 map: centres at 0.125, 0.375, 0.625, 0.875; region [0.375, 0.625] x [0.375, 0.875]
    depth = torch.arange(16.0).view(1, 1, 4, 4).repeat(2, 1, 1, 1)
    depth[1] += 100
    target = build_loss("xkd", target="region", region=[0.375, 0.625, 0.375, 0.875]).grad_cam_target({}, depth)
    # rows 1-2, columns 1-3 of each image: (5 + 6 + 7 + 9 + 10 + 11) / 6 = 8
    assert target({"depth": depth}).tolist() == pytest.approx([8.0, 108.0])
    boxes = {"boxes": torch.tensor([[[1.0, 1.0, 3.0, 2.0, 10, 0, 0]]], dtype=torch.float64).repeat(2, 1, 1),
             "boxes_valid": torch.ones(2, 1, dtype=torch.bool)}
    by_box = build_loss("xkd", target="region").grad_cam_target(boxes, depth)
    # pixel centres x 1.5, 2.5 and y 1.5 inside [1, 3] x [1, 2]: depths 5, 6
    assert by_box({"depth": depth}).tolist() == pytest.approx([5.5, 105.5])
    bins = build_loss("xkd", target="depth_bin").grad_cam_target({}, depth)
    assert bins({"depth": depth}).tolist() == pytest.approx(depth_bin_target(0.0, 20.0, 1.0)({"depth": depth}).tolist())


# --- second round of mutation survivors ----------------------------------------------------------------------

def test_more_messages_are_exact():
    cases = [
        (lambda: build_loss("crkd_relation", layers=[]), "at least one layer is needed"),
        (lambda: build_loss("depth_l1", intermediate_weight=-1.0), "intermediate_weight must be >= 0, got -1.0"),
        (lambda: build_loss("dkd")({"depth": maps()}, None, {}),
         "loss 'dkd' needs teacher outputs (teacher_out is None): configure a teacher or a teacher cache"),
        (lambda: build_loss("crkd_response")({"depth": row([1.0, 2.0])}, {"depth": row([1.0, 2.0, 3.0])}, {}),
         "loss 'crkd_response', 'depth': student (1, 1, 1, 2) and teacher (1, 1, 1, 3) differ in batch or "
         "spatial size"),
        (lambda: build_loss("dkd", spacing="linear"), "unknown spacing 'linear'; choose one of uniform, log, sid"),
        (lambda: build_loss("dkd", bins=1), "need bins >= 2 and 0 <= min_depth < max_depth, got 1, 0.0, 100.0"),
        (lambda: build_loss("dkd", min_depth=5.0, max_depth=5.0),
         "need bins >= 2 and 0 <= min_depth < max_depth, got 64, 5.0, 5.0"),
        (lambda: build_loss("dkd", spacing="log"), "log spacing needs min_depth > 0"),
        (lambda: build_loss("dkd", temperature=0.0), "temperature must be > 0, got 0.0"),
        (lambda: build_loss("lircdepth_pixel", image_weight=0.0, radar_weight=0.0),
         "lircdepth_pixel needs a non-zero image_weight or radar_weight and some scales"),
        (lambda: build_loss("lircdepth_pixel", scales=[]),
         "lircdepth_pixel needs a non-zero image_weight or radar_weight and some scales"),
        (lambda: build_loss("lircdepth_pair", pool_scale=0.0), "pool_scale must be in (0, 1], got 0.0"),
        (lambda: build_loss("lircdepth_pair", pool_scale=1.5), "pool_scale must be in (0, 1], got 1.5"),
        (lambda: build_loss("radar_confidence_bce", pos_weight=0.0), "pos_weight must be > 0, got 0.0"),
    ]
    for call, message in cases:
        with pytest.raises((ValueError, TypeError)) as info:
            call()
        assert str(info.value) == message, (str(info.value), message)
    with pytest.raises(ValueError) as info:
        build_loss("nope")
    assert str(info.value) == "unknown loss 'nope'; registered losses: " + ", ".join(sorted(LOSSES))


def test_defaults_of_dkd_lircdepth_and_bce():
    dkd = build_loss("dkd")
    assert dkd.temperature == 1.0 and len(dkd.centers) == 64
    assert dkd.centers[:2].tolist() == pytest.approx([100 / 128, 300 / 128])       # uniform over [0, 100] m
    assert "centers" not in dkd.state_dict()                                         # derived, not a weight
    assert build_loss("lircdepth_pixel").kinds == {"image": 1.0, "radar": 1.0}
    assert build_loss("lircdepth_pair", pool_scale=1.0).pool_scale == 1.0
    # pos_weight 1: plain BCE; integer labels work as well (-1 ignored)
    logits, labels = row([0.0, 2.0, 5.0]), torch.tensor([1, 0, -1]).view(1, 1, 1, 3)
    value = build_loss("radar_confidence_bce")({"radar_confidence_logit": logits}, None, {"radar_confidence_gt": labels})
    assert value.item() == pytest.approx((math.log(2) + math.log1p(math.exp(2.0))) / 2, rel=1e-6)


def test_bin_centres_with_an_offset_range_are_float64():
    from xdrcdepth_core.distill.dkd import bin_centers

    uniform = bin_centers("uniform", 2, 2.0, 10.0)                 # edges 2, 6, 10
    assert uniform.dtype == torch.float64 and uniform.tolist() == [4.0, 8.0]
    assert bin_centers("log", 2, 2.0, 8.0).tolist() == pytest.approx([math.sqrt(8), math.sqrt(32)])   # 2, 4, 8
    third = bin_centers("uniform", 3, 0.0, 1.0)
    assert third[0].item() == 1 / 6                                 # exact in float64 (not float32's 0.16666667)


def test_dkd_value_per_pixel_with_a_temperature():
    # centres 1, 3 (bins 2 over [0, 4]); T = 2: logits -|d - c| / 2
    loss = build_loss("dkd", bins=2, min_depth=0.0, max_depth=4.0, temperature=2.0)
    student, teacher = row([1.5, 3.5]), row([1.0, 2.5])

    def p(d):
        z = [-abs(d - 1) / 2, -abs(d - 3) / 2]
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]

    kl = [sum(t * math.log(t / s) for t, s in zip(p(dt), p(ds))) for ds, dt in ((1.5, 1.0), (3.5, 2.5))]
    assert loss({"depth": student}, {"depth": teacher}, {}).item() == pytest.approx(sum(kl) / 2, rel=1e-6)


def test_lazy_adapters_do_not_warn():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_loss("dked_corr")
        build_loss("crkd_relation")
    assert not [w for w in caught if "Lazy modules" in str(w.message)]


def test_kl_distance_with_an_empty_student_position():
    kl = build_loss("xkd", relu=True, compare="kl")
    s, t = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]])
    want = 0.5 * math.log(0.5 / 1e-8) + 0.5 * math.log(0.5 / (1 + 1e-8))
    assert kl.distance(s, t).item() == pytest.approx(want, rel=1e-6)


def deep_outputs(depths):
    """Toy whose pixels' depths are ``depths`` (about 21 m: past the upper edge of the default 0-20 m bin)."""
    feature = torch.tensor(depths).view(1, 1, 1, -1).repeat(1, 2, 1, 1) / 2
    feature.requires_grad_(True)
    return {LAYER: feature, "depth": feature.sum(dim=1, keepdim=True)}


def test_xkd_uses_its_target_on_both_sides():
    # depth_bin target at 21 m: d target / d depth < 0, so the map is -depth (normalised (-0.5, -0.5)); with the
    # mean-depth target it would be +depth. Teacher cached as the positive map: distance |-0.5 - 0.5| x 2 = 2
    cached = {"depth": torch.zeros(1, 1, 1, 2), ("saliency", LAYER): torch.ones(1, 1, 1, 2)}
    assert build_loss("xkd", target="depth_bin")(deep_outputs([21.0, 21.0]), cached, {}).item() == pytest.approx(2.0)
    assert build_loss("xkd")(deep_outputs([21.0, 21.0]), cached, {}).item() == pytest.approx(0.0)
    # a live teacher takes the same target: identical toys give 0 whichever target
    assert build_loss("xkd", target="depth_bin")(deep_outputs([21.0, 21.0]), deep_outputs([21.0, 21.0]), {}
                                                 ).item() == pytest.approx(0.0, abs=1e-6)
    boxes = {"boxes": torch.tensor([[[0.0, 0.0, 1.0, 1.0, 10, 0, 0]]]), "boxes_valid": torch.tensor([[True]])}
    assert build_loss("xkd", target="region")(deep_outputs([21.0, 3.0]), deep_outputs([21.0, 3.0]), boxes
                                              ).item() == pytest.approx(0.0, abs=1e-6)


def test_pair_similarity_pools_with_ceil_and_normalises_small_features():
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(3)
    student = torch.rand(1, 2, 5, 5, generator=generator) * 0.1          # norms well below 1
    teacher = torch.rand(1, 2, 5, 5, generator=generator) * 0.1

    def similarity(f, kernel):
        # ceil mode by hand: pad the bottom/right with -inf to a multiple of the kernel
        kh, kw = kernel
        ph, pw = -f.shape[2] % kh, -f.shape[3] % kw
        padded = F.pad(f, (0, pw, 0, ph), value=-math.inf)
        pooled = padded.unfold(2, kh, kh).unfold(3, kw, kw).amax(dim=(-1, -2)).flatten(2)
        pooled = pooled / pooled.norm(dim=1, keepdim=True)
        return pooled.transpose(1, 2) @ pooled

    layers = [["decoder", 4]]
    for scale, kernel in ((0.4, (2, 2)), (0.2, (1, 1))):                  # 5 x 0.4 = 2; 5 x 0.2 = 1
        loss = build_loss("lircdepth_pair", pool_scale=scale, layers=layers)
        want = (similarity(teacher, kernel) - similarity(student, kernel)).pow(2).mean().item()
        assert loss({LAYER: student}, {LAYER: teacher}, {}).item() == pytest.approx(want, rel=1e-5), scale
    flat = (torch.rand(1, 2, 2, 5, generator=generator) * 0.1, torch.rand(1, 2, 2, 5, generator=generator) * 0.1)
    loss = build_loss("lircdepth_pair", pool_scale=0.4, layers=layers)    # kernel (max(1, 0), 2) = (1, 2)
    want = (similarity(flat[1], (1, 2)) - similarity(flat[0], (1, 2))).pow(2).mean().item()
    assert loss({LAYER: flat[0]}, {LAYER: flat[1]}, {}).item() == pytest.approx(want, rel=1e-5)


def test_channel_correlation_of_small_features_and_two_layers():
    from xdrcdepth_core.distill.dked import channel_correlation

    small = torch.tensor([[0.01, 0.02, 0.03], [0.03, 0.02, 0.01]]).view(1, 2, 1, 3)   # centred norms ~0.014
    assert channel_correlation(small)[0].tolist() == [pytest.approx([1.0, -1.0]), pytest.approx([-1.0, 1.0])]
    teacher = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]).view(1, 2, 1, 3)
    same = {("decoder", 4): teacher, ("decoder", 8): teacher}
    other = {("decoder", 4): teacher, ("decoder", 8): teacher.flip(1)}                # correlation -1 -> +1 ...
    loss = build_loss("dked_corr", layers=[["decoder", 4], ["decoder", 8]], adapter="none")
    assert loss(same, same, {}).item() == pytest.approx(0.0, abs=1e-6)
    # layer 8: student [[1, -1], [-1, 1]] vs teacher the same (flipping both channels keeps it): 0; averaged
    assert loss(other, same, {}).item() == pytest.approx(0.0, abs=1e-6)
    shifted = {("decoder", 4): teacher, ("decoder", 8): torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]).view(1, 2, 1, 3)}
    # layer 8: student correlation [[1, 1], [1, 1]] vs teacher [[1, -1], [-1, 1]]: mean |diff| = 1; average of 0 and 1
    assert loss(shifted, same, {}).item() == pytest.approx(0.5, rel=1e-6)


def test_smoothness_per_image_mean_and_edge_weights_per_image():
    # image 0 varies along the rows, image 1 along the columns, at different scales
    depth = torch.stack([torch.tensor([[1.0, 1.0], [3.0, 3.0]]), torch.tensor([[10.0, 30.0], [10.0, 30.0]])])[:, None]
    image = torch.zeros(2, 3, 2, 2)
    image[0, :, 1, :] = 1.0                                 # image 0: an edge between its rows
    # normalised: both [[0.5, 0.5], [1.5, 1.5]] and its transpose: one unit step per image, in y for image 0
    # (weighted exp(-mean std)) and in x for image 1 (flat image: weight 1); means over 2 x 1 x 2 elements
    w = math.exp(-(0.229 + 0.224 + 0.225) / 3)
    value = build_loss("smoothness")({"depth": depth}, None, {"image": image})
    assert value.item() == pytest.approx((0 + 2) / 4 + (2 * w + 0) / 4, rel=1e-6)


def test_dkd_with_three_bins_is_not_symmetric():
    # with 2 bins negating the logits only swaps the bins (KL unchanged); with 3 it does not
    loss = build_loss("dkd", bins=3, min_depth=0.0, max_depth=6.0)            # centres 1, 3, 5; T = 1

    def p(d):
        e = [math.exp(-abs(d - c)) for c in (1, 3, 5)]
        return [v / sum(e) for v in e]

    kl = sum(t * math.log(t / s) for t, s in zip(p(1.0), p(4.0)))
    assert loss({"depth": row([4.0])}, {"depth": row([1.0])}, {}).item() == pytest.approx(kl, rel=1e-6)


@pytest.mark.parametrize("name", sorted(set(LOSSES) - {"xkd"}))   # xkd: Grad-CAM needs a network's graph
def test_every_loss_takes_the_bf16_outputs_of_an_autocast_forward(name):
    # The trainer runs the forward under autocast and the losses outside it: bf16 features then meet the
    # float32 weights of a loss's own adapters (crkd, dked_corr and lircdepth_pixel failed on the first
    # step on a CPU with native bf16). The value must be the one of the same numbers in float32.
    student, teacher, batch = full_inputs()
    bf16 = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in student.items()}
    teacher = {k: v.to(torch.bfloat16) for k, v in teacher.items()}
    leaves = {k: v.detach().requires_grad_(True) for k, v in bf16.items()}
    torch.manual_seed(0)
    value = build_loss(name)(leaves, teacher, batch)
    torch.manual_seed(0)
    reference = build_loss(name)({k: v.float() for k, v in bf16.items()},
                                 {k: v.float() for k, v in teacher.items()}, batch)
    assert torch.isfinite(value) and float(value.detach()) == pytest.approx(float(reference.detach()), rel=2e-2, abs=1e-3)
    if value.requires_grad:
        value.float().backward()
        assert any(leaf.grad is not None for leaf in leaves.values())
