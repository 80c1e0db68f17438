"""DepthEstimator against input nobody meant to send: frames too large to afford, radar values a float32 raster
cannot hold, rasters with NaN, malformed sizes and argument types. Each is a ValueError/TypeError naming the
argument before any work, or (a radar return the raster cannot hold) the return is left out."""

import resource

import numpy as np
import pytest

from test_infer import HW, K, T_CAM_RADAR, estimator, frame  # noqa: F401  (estimator: a fixture)
from xdrcdepth_core.infer import DepthEstimator, RadarInput

NODE_DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096    # the depth node's max_image_pixels default (docs/depth_node.md)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_the_default_pixel_limit_is_the_depth_nodes():
    from xdrcdepth_core import infer

    assert infer.MAX_IMAGE_PIXELS == NODE_DEFAULT_MAX_IMAGE_PIXELS


@pytest.mark.parametrize("method", ["estimate", "estimate_raster"])
def test_a_huge_image_view_is_refused_before_anything_is_allocated(estimator, method):
    # a 30000 x 30000 broadcast view of one pixel costs no memory; its float copy and depth map took 13 GB of RSS
    # and a minute before (measured), so the limit has to come before any of that
    image = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (30000, 30000, 3))
    before = _peak_rss_mb()
    with pytest.raises(ValueError, match=r"image of 30000 x 30000 = 900000000 pixels is more than "
                                         r"max_image_pixels 16777216"):
        if method == "estimate":
            estimator.estimate(image, [], K)
        else:
            raster = np.broadcast_to(np.zeros((1, 1, 1), np.float32), (4, 30000, 30000))
            estimator.estimate_raster(image, raster)
    assert _peak_rss_mb() - before < 100


def test_the_pixel_limit_is_inclusive_and_can_be_raised(estimator):
    # exactly at the limit runs; one more pixel is refused; an estimator made with a larger limit takes it
    small = DepthEstimator(estimator.model, input_hw=(64, 128), device="cpu", backend="torch", precision="fp32",
                           max_image_pixels=90 * 160)
    image, xyz, feats = frame()
    depth = small.estimate(image, [RadarInput(xyz, feats, T_CAM_RADAR)], K).depth
    np.testing.assert_array_equal(depth, estimator.estimate(image, [RadarInput(xyz, feats, T_CAM_RADAR)], K).depth)
    wider = np.zeros((90, 161, 3), np.uint8)
    with pytest.raises(ValueError, match=r"image of 90 x 161 = 14490 pixels is more than max_image_pixels 14400"):
        small.estimate(wider, [], K)
    with pytest.raises(ValueError, match=r"image_hw of 90 x 161 = 14490 pixels is more than max_image_pixels"):
        small.rasterize((90, 161), [], K)
    with pytest.raises(ValueError, match=r"max_image_pixels must be a positive integer, got 0"):
        DepthEstimator(estimator.model, input_hw=(64, 128), device="cpu", backend="torch", precision="fp32",
                       max_image_pixels=0)


def test_rasterize_refuses_a_huge_size_without_allocating_it(estimator):
    # rasterize((30000, 30000), ...) made a 14 GB C x H x W raster (lazily zeroed, any write touched it)
    with pytest.raises(ValueError, match=r"image_hw of 30000 x 30000 = 900000000 pixels is more than "
                                         r"max_image_pixels 16777216"):
        estimator.rasterize((30000, 30000), [], K)
    with pytest.raises(ValueError, match=r"image_hw of 30000 x 30000"):
        estimator.radar_input((30000, 30000), [], K)


@pytest.mark.parametrize("image_hw", [(-1, 5), (0, 160), ("a", "b"), "ab", (90,), (90.5, 160), (True, 160), None])
def test_a_malformed_image_hw_is_a_value_error_naming_it(estimator, image_hw):
    # were numpy's "negative dimensions are not allowed", a UFuncTypeError comparing floats with strings, ...
    image, xyz, feats = frame()
    for call in (estimator.rasterize, estimator.radar_input):
        with pytest.raises(ValueError, match=r"image_hw must be two positive integers \(height, width\), got"):
            call(image_hw, [RadarInput(xyz, feats, T_CAM_RADAR)], K)


def test_an_image_hw_of_numpy_ints_is_taken_as_it_was(estimator):
    image, xyz, feats = frame()
    radars = [RadarInput(xyz, feats, T_CAM_RADAR)]
    expected = estimator.rasterize(HW, radars, K)
    for image_hw in (list(HW), np.array(HW), image.shape[:2], (np.int32(90), np.uint16(160))):
        np.testing.assert_array_equal(estimator.rasterize(image_hw, radars, K), expected)


def test_an_input_size_beyond_the_pixel_limit_is_refused_when_made(estimator):
    # a network input of 32e6 x 32e6 was accepted; the first frame's buffer would have been 16 PB
    with pytest.raises(ValueError, match=r"input_hw of 32000000 x 32000000 = .* pixels is more than max_image_pixels"):
        DepthEstimator(estimator.model, input_hw=(32_000_000, 32_000_000), device="cpu", backend="torch",
                       precision="fp32")


@pytest.mark.parametrize("field, value", [("rcs", 1e300), ("vx_comp", -1e39), ("depth", 1e200)])
def test_a_radar_value_a_float32_raster_cannot_hold_is_left_out(estimator, field, value):
    # an rcs of 1e300 is finite in float64 but inf in the float32 raster: every output pixel was NaN, returned
    # as a depth map. Such a return is left out as a NaN one is: the depth equals that of the cloud without it.
    image, xyz, feats = frame(4)
    broken_xyz, broken = xyz.copy(), {k: v.copy() for k, v in feats.items()}
    if field == "depth":
        broken_xyz[7] = (value, 0.0, 0.0)        # straight ahead on the radar axis: on the image, depth 1e200 m
    else:
        broken[field][7] = value
    kept = np.arange(len(xyz)) != 7
    without = [RadarInput(xyz[kept], {k: v[kept] for k, v in feats.items()}, T_CAM_RADAR)]
    radars = [RadarInput(broken_xyz, broken, T_CAM_RADAR)]
    depth = estimator.estimate(image, radars, K).depth
    assert np.isfinite(depth).all()
    np.testing.assert_array_equal(depth, estimator.estimate(image, without, K).depth)
    raster = estimator.rasterize(HW, radars, K)
    assert np.isfinite(raster).all()
    np.testing.assert_array_equal(raster, estimator.rasterize(HW, without, K))


def test_estimate_raster_refuses_nonfinite_values(estimator):
    image, xyz, feats = frame(5)
    raster = estimator.rasterize(HW, [RadarInput(xyz, feats, T_CAM_RADAR)], K)
    rows, cols = np.nonzero(raster[0])
    for channel, value in ((1, np.nan), (0, np.inf), (2, 1e39)):
        bad = raster.astype(np.float64)
        bad[channel, rows[0], cols[0]] = value           # at a return: it reaches the network
        # was a depth map of NaN returned as if fine (NaN rcs, inf depth) or inf after the float32 cast
        with pytest.raises(ValueError, match=r"radar_raster must be finite"):
            estimator.estimate_raster(image, bad)


def test_estimate_raster_refuses_a_negative_depth(estimator):
    # fed to the network as it was when the raster needed no resize, dropped when it did: refused either way
    image = np.zeros((64, 128, 3), np.uint8)            # the input size: no resize
    raster = np.zeros((4, 64, 128), np.float32)
    raster[0, 10, 10] = -5.0
    with pytest.raises(ValueError, match=r"radar_raster channel 0 is depth in metres \(0 = no return\) and must be "
                                         r">= 0; it holds -5.0"):
        estimator.estimate_raster(image, raster)


@pytest.mark.parametrize("raster, error, message", [
    (np.zeros((4, *HW), complex), TypeError, r"radar_raster must be an array of real numbers, got ndarray of dtype "
                                             r"complex128"),
    (np.zeros((4, *HW), object), TypeError, r"radar_raster must be an array of real numbers"),
    (np.zeros((4, *HW), bool), TypeError, r"radar_raster must be an array of real numbers"),
    (None, TypeError, r"radar_raster must be an array of real numbers, got NoneType"),
    (np.zeros((3, *HW), np.float32), ValueError, r"radar_raster must be C x H x W at the image's 90 x 160 with C = 4 "
                                                 r"\(depth, rcs, vx_comp, vy_comp\), got shape \(3, 90, 160\)"),
])
def test_estimate_raster_names_a_raster_of_the_wrong_kind(estimator, raster, error, message):
    # a complex raster lost its imaginary part with a warning, an object one ran, None was "got shape ()"
    image, _, _ = frame(6)
    with pytest.raises(error, match=message):
        estimator.estimate_raster(image, raster)


def test_estimate_raster_takes_a_list_and_ints_as_the_array_they_are(estimator):
    # a nested list was an AttributeError ('list' object has no attribute 'ndim')
    image, xyz, feats = frame(7)
    raster = estimator.rasterize(HW, [RadarInput(xyz, feats, T_CAM_RADAR)], K)
    expected = estimator.estimate_raster(image, raster).depth
    np.testing.assert_array_equal(estimator.estimate_raster(image, raster.tolist()).depth, expected)
    whole = np.zeros((4, *HW), np.int32)
    whole[0, 50, 80] = 20
    np.testing.assert_array_equal(estimator.estimate_raster(image, whole).depth,
                                  estimator.estimate_raster(image, whole.astype(np.float32)).depth)


@pytest.mark.parametrize("path", [5, b"student.pt", ["student.pt"]])
def test_from_checkpoint_names_a_path_of_the_wrong_type(path):
    # were pathlib's "expected str, bytes or os.PathLike object, not int" from deep inside
    with pytest.raises(TypeError, match=r"path must be a checkpoint file name \(str or Path\) or None, got"):
        DepthEstimator.from_checkpoint(path, device="cpu", backend="torch", precision="fp32")


@pytest.mark.parametrize("model", ["student.pt", None, 3])
def test_a_model_that_is_no_module_is_a_type_error_naming_it(model):
    """A black-box run: a checkpoint path (or None) given as the model was "'str' object has no attribute 'to'"."""
    with pytest.raises(TypeError) as info:
        DepthEstimator(model, input_hw=(64, 128), device="cpu")
    assert str(info.value) == ("model must be a torch.nn.Module (DepthEstimator.from_checkpoint loads one from a "
                               f"file), got {type(model).__name__}")


@pytest.mark.parametrize("value", ["no", 1, None])
def test_allow_export_must_be_a_bool(estimator, value):
    # "no" is true: the estimator would have been allowed a minute-long export nobody asked for
    with pytest.raises(TypeError, match=rf"allow_export must be True or False, got {value!r}"):
        DepthEstimator(estimator.model, input_hw=(64, 128), device="cpu", allow_export=value)
