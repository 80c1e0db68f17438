"""Model-input preprocessing (``xdrcdepth_core.preprocess``) against tensors worked out by hand.

The node, evaluation and training all feed the network through these functions, so a channel order, a
normalisation constant or a radar scale that is wrong here is wrong everywhere; comparing the node with the
core cannot see it. Every expected value below is written from the definition: ImageNet mean/std per RGB
channel, radar channels divided by their fixed scales.
"""

import numpy as np
import pytest
import torch

from xdrcdepth_core.preprocess import (IMAGENET_MEAN, IMAGENET_STD, RADAR_CHANNEL_SCALES,
                                       depth_to_input_resolution, image_to_tensor, radar_to_tensor)

# 2 x 2 RGB image, every channel different at every pixel; 255 * (1, 0, 0.2, 0.4, 0.6, 0.8) = 255, 0, 51, 102, 153, 204
RGB = np.array([[[255, 0, 51], [0, 255, 102]],
                [[51, 102, 153], [204, 153, 0]]], dtype=np.uint8)
# the same image normalised: (value / 255 - mean_c) / std_c with ImageNet mean (0.485, 0.456, 0.406) and
# std (0.229, 0.224, 0.225), channel by channel
EXPECTED = np.array([
    [[(1.0 - 0.485) / 0.229, (0.0 - 0.485) / 0.229], [(0.2 - 0.485) / 0.229, (0.8 - 0.485) / 0.229]],   # R
    [[(0.0 - 0.456) / 0.224, (1.0 - 0.456) / 0.224], [(0.4 - 0.456) / 0.224, (0.6 - 0.456) / 0.224]],   # G
    [[(0.2 - 0.406) / 0.225, (0.4 - 0.406) / 0.225], [(0.6 - 0.406) / 0.225, (0.0 - 0.406) / 0.225]],   # B
])


def test_constants_are_the_documented_ones():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
    assert RADAR_CHANNEL_SCALES == {"depth": 100.0, "rcs": 50.0, "vx_comp": 20.0, "vy_comp": 20.0,
                                    "vx": 20.0, "vy": 20.0}


def test_image_is_normalised_per_rgb_channel_by_hand():
    t = image_to_tensor(RGB, (2, 2))
    assert t.shape == (3, 2, 2) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), EXPECTED, rtol=1e-6, atol=1e-6)


def test_a_bgr_view_flipped_to_rgb_gives_the_rgb_tensor():
    bgr = np.ascontiguousarray(RGB[:, :, ::-1])
    t = image_to_tensor(bgr[:, :, ::-1], (2, 2))          # negative strides: a view, not a copy
    np.testing.assert_allclose(t.numpy(), EXPECTED, rtol=1e-6, atol=1e-6)
    # fed as it is, BGR is a different tensor: channel 0 would get blue's values
    assert not np.allclose(image_to_tensor(bgr, (2, 2)).numpy(), EXPECTED, atol=1e-3)


def test_image_resize_2x2_to_1x1_is_the_channel_mean():
    # antialiased bilinear 2 -> 1 weighs the four pixels alike: R mean 0.5, G mean 0.5, B mean 0.3
    t = image_to_tensor(RGB, (1, 1))
    assert t.shape == (3, 1, 1)
    np.testing.assert_allclose(t.flatten().numpy(), [(0.5 - 0.485) / 0.229, (0.5 - 0.456) / 0.224,
                                                     (0.3 - 0.406) / 0.225], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("transposed", [False, True])
def test_image_resize_is_antialiased_and_per_axis(transposed):
    # 1 x 4 -> 1 x 2 (columns halved, rows kept): antialiased bilinear weighs input columns at distance
    # 0.5, 0.5, 1.5 from an output centre by 1 - d / 2 = 0.75, 0.75, 0.25 (normalised); plain bilinear
    # would average only the two nearest. Transposed, 4 x 1 -> 2 x 1 gives the same two values (torch 2.13's own
    # resize of a one-pixel-wide tensor repeats the first)
    row = np.zeros((1, 4, 3), np.uint8)
    row[0, :, 0] = [0, 255, 51, 204]                      # R = 0, 1, 0.2, 0.8
    image, size = (row.transpose(1, 0, 2), (2, 1)) if transposed else (row, (1, 2))
    t = image_to_tensor(image, size)
    assert t.shape == (3, *size)
    left = (0.75 * 0 + 0.75 * 1 + 0.25 * 0.2) / 1.75
    right = (0.25 * 1 + 0.75 * 0.2 + 0.75 * 0.8) / 1.75
    np.testing.assert_allclose(t[0].flatten().numpy(), [(left - 0.485) / 0.229, (right - 0.485) / 0.229], rtol=1e-5)


def test_a_two_pixel_column_grows_bilinearly_by_hand():
    # 2 x 1 -> 4 x 1: output row centres fall at input rows -0.25, 0.25, 0.75, 1.25 (clamped to 0 and 1), so R = 0, 1
    # becomes 0, 0.25, 0.75, 1 (antialiasing changes nothing when growing; torch 2.13 repeats the first value here)
    column = np.zeros((2, 1, 3), np.uint8)
    column[1, 0, 0] = 255
    t = image_to_tensor(column, (4, 1))
    np.testing.assert_allclose(t[0, :, 0].numpy(), (np.array([0, 0.25, 0.75, 1]) - 0.485) / 0.229, rtol=1e-5)


@pytest.mark.parametrize("src_hw, dst_hw", [((45, 80), (13, 26)), ((30, 20), (45, 7)), ((9, 40), (9, 11)),
                                            ((1, 3000), (8, 16)), ((3000, 1), (16, 8)),
                                            ((1, 1), (5, 3))])
def test_image_resize_equals_torchs_one_call_antialiased_resize(src_hw, dst_hw):
    # the resize runs as two separable passes (rows or columns first); PyTorch's own one-call antialiased bilinear
    # resize of the same image is the reference, whatever the axes do (shrink, grow, keep)
    image = np.random.default_rng(3).integers(0, 256, (*src_hw, 3), dtype=np.uint8)
    one_call = torch.nn.functional.interpolate(torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255.0,
                                               size=dst_hw, mode="bilinear", align_corners=False,
                                               antialias=True)[0]
    expected = (one_call - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    np.testing.assert_allclose(image_to_tensor(image, dst_hw).numpy(), expected.numpy(), rtol=0, atol=1e-5)


PEAK_MEMORY_OF_A_THIN_FRAME = """
import resource, sys
import numpy as np
from xdrcdepth_core.preprocess import image_to_tensor
image_to_tensor(np.zeros((2, 2, 3), np.uint8), (128, 256))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = np.full((int(sys.argv[1]), int(sys.argv[2]), 3), 7, np.uint8)
shape = tuple(image_to_tensor(image, (128, 256)).shape)
print(shape, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.parametrize("frame_hw", [(1, 2_000_000), (2_000_000, 1)])
def test_a_one_row_or_one_column_frame_is_resized_without_a_huge_intermediate(frame_hw):
    """1 x 2M pixels to 128 x 256: resized rows first, the intermediate was 128 x 2M x 3 floats (3 GB; the node's
    pixel limit lets 1 x 16M through: 25 GB); columns first it is 1 x 256 x 3. A 2M x 1 frame needs the other
    order. The float copy of the frame (24 MB) is the largest array. Peak RSS of a separate process, in MB,
    importing the package this process imports (under mutmut: the mutated copy)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-c", PEAK_MEMORY_OF_A_THIN_FRAME, *map(str, frame_hw)],
                          capture_output=True, text=True, timeout=120, check=True, env=env)
    shape, grown_mb = proc.stdout.rsplit(" ", 1)
    assert shape == "(3, 128, 256)" and int(grown_mb) < 200, proc.stdout
    # and the values: a constant thin frame stays that constant, normalised
    small = image_to_tensor(np.full((*(min(n, 3000) for n in frame_hw), 3), 51, np.uint8), (128, 256))
    np.testing.assert_allclose(small.numpy(), np.broadcast_to(((0.2 - np.array(IMAGENET_MEAN)) / IMAGENET_STD)
                                                              [:, None, None], (3, 128, 256)), rtol=1e-5)


@pytest.mark.parametrize("bad", [np.zeros((2, 2), np.uint8), np.zeros((2, 2, 4), np.uint8),
                                 np.zeros((2, 2, 3), np.float32), np.zeros((1, 2, 2, 3), np.uint8),
                                 np.zeros((0, 2, 3), np.uint8)])
def test_image_must_be_uint8_rgb(bad):
    # an empty image passed this check and failed later on a division by its zero size
    with pytest.raises(ValueError, match=r"expected an H x W x 3 uint8 RGB image of at least 1 x 1 pixels, got "):
        image_to_tensor(bad, (2, 2))


def test_an_image_that_is_no_array_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="image must be an H x W x 3 uint8 RGB numpy array, got list"):
        image_to_tensor(np.zeros((2, 2, 3), np.uint8).tolist(), (2, 2))


def test_radar_channels_divided_by_their_scales_by_hand():
    raster = np.zeros((4, 2, 2), np.float32)
    raster[:, 0, 1] = [25.0, 10.0, -4.0, 3.0]             # depth, rcs, vx_comp, vy_comp: every channel non-zero
    raster[:, 1, 0] = [80.0, -5.0, 2.0, -1.0]
    t = radar_to_tensor(raster, ("depth", "rcs", "vx_comp", "vy_comp"), (2, 2))
    assert t.shape == (4, 2, 2) and t.dtype == torch.float32
    np.testing.assert_allclose(t[:, 0, 1].numpy(), [25 / 100, 10 / 50, -4 / 20, 3 / 20], rtol=1e-7)
    np.testing.assert_allclose(t[:, 1, 0].numpy(), [80 / 100, -5 / 50, 2 / 20, -1 / 20], rtol=1e-7)
    assert np.count_nonzero(t.numpy()) == 8
    # other channel names: vx/vy by 20, an unknown channel unscaled
    other = radar_to_tensor(raster[:3], ("vx", "vy", "dyn_prop"), (2, 2))
    np.testing.assert_allclose(other[:, 0, 1].numpy(), [25 / 20, 10 / 20, -4.0], rtol=1e-7)


def test_radar_resized_sparsely_then_scaled():
    raster = np.zeros((2, 4, 8), np.float32)
    raster[:, 1, 5] = [30.0, 6.0]                          # -> (floor(1.5 / 2), floor(5.5 / 4)) = (0, 1)
    raster[:, 3, 0] = [50.0, -8.0]                         # -> (1, 0)
    raster[:, 3, 1] = [40.0, 4.0]                          # -> (1, 0) too: nearer 40 m wins
    t = radar_to_tensor(raster, ("depth", "rcs"), (2, 2))
    np.testing.assert_allclose(t.numpy(), [[[0.0, 0.3], [0.4, 0.0]], [[0.0, 0.12], [0.08, 0.0]]], rtol=1e-6)


def test_radar_raster_must_match_the_channels():
    with pytest.raises(ValueError, match=r"radar raster of shape \(3, 2, 2\) does not match channels "
                                         r"\('depth', 'rcs'\)"):
        radar_to_tensor(np.zeros((3, 2, 2), np.float32), ("depth", "rcs"), (2, 2))
    with pytest.raises(ValueError, match="does not match channels"):
        radar_to_tensor(np.zeros((2, 2), np.float32), ("depth", "rcs"), (2, 2))


def test_depth_back_to_input_resolution_bilinear_by_hand():
    depth = torch.tensor([[[[0.0, 4.0]]]])
    same = depth_to_input_resolution(depth, (1, 2))
    assert same is depth                                   # already there: returned as is
    # 1 x 2 -> 1 x 4, half-pixel centres: output x' samples input (x' + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25
    # (clamped at the borders) -> 0, 1, 3, 4; rows 1 -> 2 repeat
    up = depth_to_input_resolution(depth, (2, 4))
    np.testing.assert_allclose(up[0, 0].numpy(), [[0.0, 1.0, 3.0, 4.0], [0.0, 1.0, 3.0, 4.0]])


def test_radar_tensor_is_float32_whatever_the_raster_dtype():
    raster = np.zeros((2, 2, 2), np.float64)
    raster[:, 1, 1] = [12.0, 5.0]
    t = radar_to_tensor(raster, ("depth", "rcs"), (2, 2))
    assert t.dtype == torch.float32 and t.is_contiguous()
    np.testing.assert_allclose(t[:, 1, 1].numpy(), [0.12, 0.1], rtol=1e-7)
