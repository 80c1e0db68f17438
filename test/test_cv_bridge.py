"""``cv_bridge`` conversion rules for the standard encodings, for the stand-in (and cv_bridge where installed).

Upstream: ros-perception/vision_opencv ``cv_bridge/python/cv_bridge/core.py`` (``cv2_to_imgmsg``,
``imgmsg_to_cv2``) and ``getCvType`` in ``cv_bridge/src/cv_bridge.cpp`` for the encodings of
``sensor_msgs/image_encodings.hpp``. Each test's docstring names the rule it mirrors.
"""

import sys

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from standin_params import implementations
from xdrcdepth_ros.standins import cv_bridge as standin

IMPLEMENTATIONS = implementations("cv_bridge")

# every standard encoding -> (numpy dtype, channels), from getCvType
STANDARD = {
    "rgb8": ("uint8", 3), "bgr8": ("uint8", 3), "rgba8": ("uint8", 4), "bgra8": ("uint8", 4),
    "mono8": ("uint8", 1), "rgb16": ("uint16", 3), "bgr16": ("uint16", 3), "rgba16": ("uint16", 4),
    "bgra16": ("uint16", 4), "mono16": ("uint16", 1),
    "bayer_rggb8": ("uint8", 1), "bayer_bggr8": ("uint8", 1), "bayer_gbrg8": ("uint8", 1),
    "bayer_grbg8": ("uint8", 1), "bayer_rggb16": ("uint16", 1), "bayer_bggr16": ("uint16", 1),
    "bayer_gbrg16": ("uint16", 1), "bayer_grbg16": ("uint16", 1), "yuv422": ("uint8", 2),
    "yuv422_yuy2": ("uint8", 2),
    **{f"{d}C{c}": (t, c) for d, t in (("8U", "uint8"), ("8S", "int8"), ("16U", "uint16"), ("16S", "int16"),
                                         ("32S", "int32"), ("32F", "float32"), ("64F", "float64"))
       for c in (1, 2, 3, 4)},
}


@pytest.fixture(params=IMPLEMENTATIONS)
def bridge(request):
    return request.param.CvBridge()


@pytest.fixture(params=IMPLEMENTATIONS)
def module(request):
    return request.param


def sample(dtype: str, channels: int, h=3, w=5) -> np.ndarray:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    values = np.arange(h * w * channels).reshape(h, w, channels)
    if info is not None:
        values = values * max(1, (int(info.max) - int(info.min)) // (h * w * channels)) + int(info.min)
    else:
        values = values * 0.37 - 3.5
    arr = values.astype(dtype)
    return arr[:, :, 0] if channels == 1 else arr


@pytest.mark.parametrize("encoding", sorted(STANDARD))
def test_standard_encodings_round_trip(bridge, encoding):
    """getCvType maps every standard encoding to its depth and channels; cv2_to_imgmsg then
    imgmsg_to_cv2(passthrough) returns the array (H x W for one channel), step = width x bytes per pixel."""
    dtype, channels = STANDARD[encoding]
    assert bridge.encoding_to_dtype_with_channels(encoding) == (dtype, channels)
    arr = sample(dtype, channels)
    msg = bridge.cv2_to_imgmsg(arr, encoding=encoding, header=Header(frame_id="cam"))
    assert (msg.encoding, msg.height, msg.width, msg.header.frame_id) == (encoding, 3, 5, "cam")
    assert msg.step == 5 * channels * np.dtype(dtype).itemsize
    back = bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
    assert back.dtype == np.dtype(dtype) and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("encoding,arr", [
    ("rgb8", np.zeros((2, 2, 3), np.float32)),      # float32 -> rgb8 would have given zeros
    ("mono8", np.full((2, 2), 300, np.uint16)),     # 300 -> mono8 would have given 44
    ("32FC1", np.zeros((2, 2), np.float64)),
    ("16UC3", np.zeros((2, 2), np.uint16)),         # channels differ
    ("mono16", np.zeros((2, 2, 3), np.uint16)),
])
def test_incompatible_array_raises_cv_bridge_error(bridge, module, encoding, arr):
    """cv2_to_imgmsg: "encoding specified as X, but image has incompatible type Y" (CvBridgeError, a
    TypeError); nothing is cast."""
    with pytest.raises(module.CvBridgeError, match="incompatible type"):
        bridge.cv2_to_imgmsg(arr, encoding=encoding)
    assert issubclass(module.CvBridgeError, TypeError)


def test_single_channel_3d_array_is_one_channel(bridge):
    """cv2_to_imgmsg takes the channel count from shape[2]: H x W x 1 is 8UC1, so mono8 accepts it."""
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    msg = bridge.cv2_to_imgmsg(arr, encoding="mono8")
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg), arr[:, :, 0])
    assert bridge.cv2_to_imgmsg(arr).encoding == "8UC1"


def test_non_array_raises_type_error(bridge):
    """cv2_to_imgmsg: "Your input type is not a numpy array" is a TypeError (not a ValueError)."""
    with pytest.raises(TypeError, match="not a numpy array"):
        bridge.cv2_to_imgmsg([[1, 2], [3, 4]], encoding="mono8")


def test_passthrough_names_the_array_type(bridge):
    """encoding "passthrough": the message encoding is the array's OpenCV type."""
    assert bridge.cv2_to_imgmsg(np.zeros((2, 2), np.float32)).encoding == "32FC1"
    assert bridge.cv2_to_imgmsg(np.zeros((2, 2, 2), np.int16)).encoding == "16SC2"


def test_unknown_encoding_raises(bridge, module):
    """getCvType: "Unrecognized image encoding" for anything not standard."""
    with pytest.raises(module.CvBridgeError):
        bridge.cv2_to_imgmsg(np.zeros((2, 2), np.uint8), encoding="jpeg")
    with pytest.raises(module.CvBridgeError):
        bridge.imgmsg_to_cv2(Image(height=1, width=1, encoding="gray", step=1, data=b"\0"))


def test_big_endian_message_and_step_padding():
    """imgmsg_to_cv2 reads rows of ``step`` bytes (padding dropped) and byte-swaps a message whose
    is_bigendian differs from the host; cv2_to_imgmsg marks a big-endian array is_bigendian."""
    bridge = standin.CvBridge()
    depth = np.array([[1.5, 2.0, np.nan], [80.0, 0.25, 3.0]], np.float32)
    rows = depth.astype(">f4").view(np.uint8).reshape(2, 12)
    data = np.concatenate([rows, np.zeros((2, 4), np.uint8)], axis=1).tobytes()
    msg = Image(height=2, width=3, encoding="32FC1", is_bigendian=1, step=16, data=data)
    out = bridge.imgmsg_to_cv2(msg)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, depth)
    assert bridge.cv2_to_imgmsg(depth.astype(">f4")).is_bigendian
    assert bridge.cv2_to_imgmsg(depth).is_bigendian == (sys.byteorder == "big")


def test_colour_conversions():
    """imgmsg_to_cv2(desired_encoding): channel reorder, alpha added at full scale, 8 -> 16 bit scaled by
    65535/255, grey with OpenCV's weights; a colour encoding from a non-colour one is refused."""
    bridge = standin.CvBridge()
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], np.uint8)
    msg = bridge.cv2_to_imgmsg(rgb, "rgb8")
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg, "bgr8"), rgb[:, :, ::-1])
    bgra = bridge.imgmsg_to_cv2(msg, "bgra8")
    np.testing.assert_array_equal(bgra[:, :, :3], rgb[:, :, ::-1])
    assert (bgra[:, :, 3] == 255).all()
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg, "rgb16"), rgb.astype(np.uint16) * 257)
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg, "mono8"), [[76, 150], [29, 18]])
    with pytest.raises(standin.CvBridgeError, match="not a color format"):
        bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(np.zeros((2, 2, 3), np.uint8), "8UC3"), "rgb8")


# --- mutation-testing additions ---------------------------------------------------------------------------------

def test_messages_of_the_array_checks(bridge):
    """core.py: "Your input type is not a numpy array" word for word."""
    with pytest.raises(TypeError) as err:
        bridge.cv2_to_imgmsg([[1, 2], [3, 4]], encoding="mono8")
    assert str(err.value) == "Your input type is not a numpy array"


def test_standin_error_texts():
    """The texts of getCvType and getConversionCode (cv_bridge.cpp) word for word; the stand-in's own for the
    checks upstream leaves to numpy or OpenCV."""
    bridge = standin.CvBridge()
    cases = [
        (lambda: standin.cv_type("jpeg"), "Unrecognized image encoding [jpeg]"),
        (lambda: bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(np.zeros((2, 2, 3), np.uint8), "8UC3"), "rgb8"),
         "[8UC3] is not a color format. but [rgb8] is. The conversion does not make sense"),
        (lambda: bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(np.zeros((2, 2, 3), np.uint8), "8UC3"), "8UC1"),
         "[8UC3] and [8UC1] do not have the same number of channel"),
        (lambda: bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(np.zeros((2, 2, 3), np.uint8), "rgb8"), "8UC1"),
         "[rgb8] is a color format but [8UC1] is not so they must have the same OpenCV type, CV_8UC3, CV16UC1 ...."),
        (lambda: bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(np.zeros((2, 2), np.uint8), "bayer_rggb8"), "bgr8"),
         "conversion from [bayer_rggb8] to [bgr8] needs OpenCV (not in this stand-in)"),
        (lambda: bridge.cv2_to_imgmsg(np.zeros((2, 2, 1, 1), np.uint8)),
         "an image array has 2 or 3 dimensions, not shape (2, 2, 1, 1)"),
        (lambda: bridge.imgmsg_to_cv2(Image(height=2, width=3, encoding="mono16", step=5, data=bytes(10))),
         "Image is wrongly formed: step 5 < width 3 x 1 channels x 2 bytes"),
        (lambda: bridge.imgmsg_to_cv2(Image(height=2, width=3, encoding="mono8", step=3, data=bytes(5))),
         "Image is wrongly formed: 5 data bytes < height 2 x step 3"),
    ]
    for call, text in cases:
        with pytest.raises(standin.CvBridgeError) as err:
            call()
        assert str(err.value) == text


def test_no_cv_type_error_reads_as_its_message():
    """A KeyError's str() is the repr of its key; NoCvTypeError reads as its message, and as "" without one."""
    with pytest.raises(standin.NoCvTypeError) as err:
        standin.CvBridge().cv2_to_imgmsg(np.zeros((2, 2), bool))
    assert str(err.value) == "numpy dtype bool has no OpenCV type"
    assert str(standin.NoCvTypeError()) == ""


@pytest.mark.parametrize("encoding,cv", [("8U", "8UC1"), ("64F", "64FC1"), ("16SC512", "16SC512"),
                                         ("16SC513", None), ("8UC0", None)])
def test_generic_encodings_and_opencvs_channel_limit(encoding, cv):
    """getCvType: no "C<n>" is one channel; OpenCV's CV_CN_MAX is 512."""
    if cv is None:
        with pytest.raises(standin.CvBridgeError):
            standin.cv_type(encoding)
    else:
        assert standin.cv_type(encoding) == cv


def test_bytes_after_the_last_row_are_not_read(bridge):
    """core.py reads height x step bytes through a strided view of ``data``: trailing bytes are ignored."""
    pixels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    msg = Image(height=2, width=3, encoding="mono8", step=3, data=pixels.tobytes() + bytes(4))
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg), pixels)


@pytest.mark.parametrize("src,dst,value,expected", [
    ("mono8", "mono16", 200, 51400),      # convertTo(scale 65535 / 255): 200 x 257
    ("8UC1", "16UC1", 200, 51400),
    ("mono16", "mono8", 51529, 201),      # 51529 / 257 = 200.502 -> 201 (saturate_cast rounds)
    ("16UC1", "8UC1", 51529, 201),
    ("mono16", "mono8", 51528, 200),      # 200.498 -> 200
    ("16UC1", "8UC1", 51528, 200),
])
def test_8_16_bit_scaling_rounds_as_convert_to(src, dst, value, expected):
    bridge = standin.CvBridge()
    dtype = np.uint8 if "8" in src and "16" not in src else np.uint16
    out = bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(np.full((1, 2), value, dtype), src), dst)
    assert out.dtype == (np.uint16 if "16" in dst else np.uint8)
    np.testing.assert_array_equal(out, [[expected, expected]])


def test_grey_uses_opencvs_fixed_point_weights_on_every_level():
    """OpenCV's RGB2GRAY for 8-bit images (color.simd_helpers / cvtColor): (R 4899 + G 9617 + B 1868 + 2^13) >> 14,
    the BT.601 weights 0.299, 0.587, 0.114 in 14 bits; 65536 colours covering every level of each channel."""
    r, g = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    b = (7 * r + 13 * g) % 256
    rgb = np.stack([r, g, b], axis=2).astype(np.uint8)
    expected = (r * 4899 + g * 9617 + b * 1868 + (1 << 13)) >> 14
    bridge = standin.CvBridge()
    out = bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(rgb, "rgb8"), "mono8")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(rgb[:, :, ::-1].copy(), "bgr8"),
                                                       "mono8"), expected)
