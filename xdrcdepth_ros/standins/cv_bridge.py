"""Stand-in for ``cv_bridge`` (Python): ``CvBridge`` and ``CvBridgeError`` on numpy alone (no OpenCV).

Follows ros-perception/vision_opencv (rolling; Kilted's cv_bridge 4.1.x has the same Python code)
``cv_bridge/python/cv_bridge/core.py`` and ``getCvType`` / ``getConversionCode`` / ``toCvCopyImpl`` in
``cv_bridge/src/cv_bridge.cpp``, for the encodings of ``sensor_msgs/image_encodings.hpp``; tested in
test/test_cv_bridge.py:

* encoding -> (numpy dtype, channels): ``rgb8``/``bgr8`` (uint8 x 3), ``rgba8``/``bgra8`` (uint8 x 4),
  ``mono8`` (uint8 x 1), the 16-bit versions (uint16), ``bayer_*8`` / ``bayer_*16`` (one channel),
  ``yuv422``/``yuv422_yuy2``/``uyvy``/``yuyv`` (uint8 x 2), and every ``{8U,8S,16U,16S,32S,32F,64F}``
  with ``C<n>`` (or without, one channel); anything else raises :class:`CvBridgeError`;
* :meth:`CvBridge.cv2_to_imgmsg` refuses a non-array with ``TypeError``; otherwise the array's type
  (dtype + channels: H x W is one channel, H x W x C has C, so H x W x 1 is one channel too) must equal
  the encoding's, else :class:`CvBridgeError` (a ``TypeError``): nothing is cast silently. ``passthrough``
  names the array's own type (e.g. ``32FC1``). ``is_bigendian`` follows the array's byte order, ``step``
  is ``width x channels x itemsize``, ``header`` is copied when given;
* :meth:`CvBridge.imgmsg_to_cv2` with ``passthrough`` returns H x W (one channel) or H x W x C in native
  byte order, honouring ``step`` padding; ``desired_encoding`` converts between rgb/bgr/rgba/bgra/mono
  (8 and 16 bit: channel order, alpha added at full scale or dropped, grey by OpenCV's fixed-point
  weights, 8 <-> 16 bit scaled by 65535/255) and between same-channel-count types otherwise (values
  converted -- 8 <-> 16 bit scaled the same way -- and saturated), and raises :class:`CvBridgeError`
  where cv_bridge does (a colour encoding from a non-colour one, different channel counts). Bayer and YUV conversions need OpenCV's demosaicing and
  raise :class:`CvBridgeError` here.

An array dtype OpenCV has no type for (bool, int64, float16, ...) raises :class:`NoCvTypeError`, which is a
``KeyError`` as upstream's (and a :class:`CvBridgeError`); an array with no rows raises ``ZeroDivisionError``
(upstream's ``step = len(data) // height``). Every SAME_FORMAT step of a conversion (``toCvCopyImpl``) scales
between 8 and 16 bits by the encodings' bit depths, generic encodings too (``8UC1`` -> ``16UC1`` multiplies by
257). Upstream's tests ported: test/test_standin_cv_bridge.py.
"""

from __future__ import annotations

import re
import sys

import numpy as np
from sensor_msgs.msg import Image

#: OpenCV depth name <-> numpy dtype name
DEPTHS = {"8U": "uint8", "8S": "int8", "16U": "uint16", "16S": "int16", "32S": "int32", "32F": "float32",
          "64F": "float64"}
_DEPTH_OF_DTYPE = {v: k for k, v in DEPTHS.items()}
#: named encodings -> OpenCV type (getCvType)
NAMED = {
    "rgb8": "8UC3", "bgr8": "8UC3", "rgba8": "8UC4", "bgra8": "8UC4", "mono8": "8UC1",
    "rgb16": "16UC3", "bgr16": "16UC3", "rgba16": "16UC4", "bgra16": "16UC4", "mono16": "16UC1",
    **{f"bayer_{p}8": "8UC1" for p in ("rggb", "bggr", "gbrg", "grbg")},
    **{f"bayer_{p}16": "16UC1" for p in ("rggb", "bggr", "gbrg", "grbg")},
    "yuv422": "8UC2", "yuv422_yuy2": "8UC2", "uyvy": "8UC2", "yuyv": "8UC2",
}
_GENERIC = re.compile(r"(8U|8S|16U|16S|32S|32F|64F)(?:C([0-9]+))?")
_CV_CN_MAX = 512
#: colour layouts the conversions understand: encoding -> (channel order, bit depth)
_COLOUR = {"mono8": ("L", 8), "rgb8": ("RGB", 8), "bgr8": ("BGR", 8), "rgba8": ("RGBA", 8),
           "bgra8": ("BGRA", 8), "mono16": ("L", 16), "rgb16": ("RGB", 16), "bgr16": ("BGR", 16),
           "rgba16": ("RGBA", 16), "bgra16": ("BGRA", 16)}
_OTHER_COLOUR = set(NAMED) - set(_COLOUR)   # bayer and yuv: colour formats, not convertible here


class CvBridgeError(TypeError):
    """The error raised by :class:`CvBridge` methods when they fail (a ``TypeError``, as upstream)."""


class NoCvTypeError(CvBridgeError, KeyError):
    """An array dtype OpenCV has no type for (bool, int64, float16, ...). Upstream raises ``KeyError`` (its
    ``numpy_type_to_cvtype[dtype.name]`` lookup); this is one, and a :class:`CvBridgeError` too."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def cv_type(encoding: str) -> str:
    """The OpenCV type name (``8UC3``) of an image encoding; :class:`CvBridgeError` if unknown."""
    if encoding in NAMED:
        return NAMED[encoding]
    match = _GENERIC.fullmatch(encoding)
    if match:
        channels = int(match.group(2) or 1)
        if 1 <= channels <= _CV_CN_MAX:
            return f"{match.group(1)}C{channels}"
    raise CvBridgeError(f"Unrecognized image encoding [{encoding}]")


def _is_colour(encoding: str) -> bool:
    return encoding in NAMED


class CvBridge:
    """Converts between numpy images and ``sensor_msgs/Image`` (see the module docstring)."""

    def encoding_to_dtype_with_channels(self, encoding: str) -> tuple[str, int]:
        """``(numpy dtype name, channels)`` of an encoding, as ``cv_bridge`` returns it."""
        depth, channels = cv_type(encoding).split("C")
        return DEPTHS[depth], int(channels)

    def dtype_with_channels_to_cvtype2(self, dtype: np.dtype, n_channels: int) -> str:
        if dtype.name not in _DEPTH_OF_DTYPE:
            raise NoCvTypeError(f"numpy dtype {dtype.name} has no OpenCV type")
        return f"{_DEPTH_OF_DTYPE[dtype.name]}C{n_channels}"

    def imgmsg_to_cv2(self, img_msg: Image, desired_encoding: str = "passthrough") -> np.ndarray:
        """The image's pixels: H x W (one channel) or H x W x C, native byte order, a copy."""
        dtype_name, channels = self.encoding_to_dtype_with_channels(img_msg.encoding)
        dtype = np.dtype(dtype_name).newbyteorder(">" if img_msg.is_bigendian else "<")
        row_bytes = img_msg.width * channels * dtype.itemsize
        if img_msg.step < row_bytes:
            raise CvBridgeError(f"Image is wrongly formed: step {img_msg.step} < width {img_msg.width} x "
                                f"{channels} channels x {dtype.itemsize} bytes")
        if len(img_msg.data) < img_msg.step * img_msg.height:
            raise CvBridgeError(f"Image is wrongly formed: {len(img_msg.data)} data bytes < height "
                                f"{img_msg.height} x step {img_msg.step}")
        raw = np.frombuffer(img_msg.data, dtype=np.uint8, count=img_msg.step * img_msg.height)
        rows = np.ascontiguousarray(raw.reshape(img_msg.height, img_msg.step)[:, :row_bytes])
        image = rows.view(dtype).reshape(img_msg.height, img_msg.width, channels).astype(
            dtype.newbyteorder("="))
        if channels == 1:
            image = image[:, :, 0]
        if desired_encoding in ("passthrough", img_msg.encoding):
            return image
        return _convert(image, img_msg.encoding, desired_encoding)

    def cv2_to_imgmsg(self, cvim, encoding: str = "passthrough", header=None) -> Image:
        """An Image of the array; the encoding must describe the array's type exactly."""
        if not isinstance(cvim, (np.ndarray, np.generic)):
            raise TypeError("Your input type is not a numpy array")
        cvim = np.asarray(cvim)
        if cvim.ndim not in (2, 3):
            raise CvBridgeError(f"an image array has 2 or 3 dimensions, not shape {cvim.shape}")
        array_type = self.dtype_with_channels_to_cvtype2(cvim.dtype, cvim.shape[2] if cvim.ndim == 3 else 1)
        if encoding != "passthrough" and cv_type(encoding) != array_type:
            raise CvBridgeError(f"encoding specified as {encoding}, but image has incompatible type "
                                f"{array_type}")
        big = cvim.dtype.byteorder == ">" or (cvim.dtype.byteorder == "=" and sys.byteorder == "big")
        msg = Image(height=cvim.shape[0], width=cvim.shape[1],
                    encoding=array_type if encoding == "passthrough" else encoding, is_bigendian=int(big))
        if header is not None:
            msg.header = header
        msg.data = np.ascontiguousarray(cvim).tobytes()
        msg.step = len(msg.data) // msg.height    # as upstream: a 0-row array raises ZeroDivisionError
        return msg


def _bit_depth(encoding: str) -> int:
    return int(re.match(r"\d+", cv_type(encoding)).group())


def _convert(image: np.ndarray, src: str, dst: str) -> np.ndarray:
    """cv_bridge's cvtColor rules (getConversionCode) for the conversions done without OpenCV."""
    src_channels, dst_channels = int(cv_type(src).split("C")[1]), int(cv_type(dst).split("C")[1])
    # SAME_FORMAT (toCvCopyImpl): convertTo the destination depth, scaled between 8 and 16 bits by the
    # encodings' bitDepth (so 8UC1 -> 16UC1 multiplies by 257, as mono8 -> mono16 does)
    same_format_scale = {(8, 16): 65535.0 / 255.0, (16, 8): 255.0 / 65535.0}.get(
        (_bit_depth(src), _bit_depth(dst)), 1.0)
    if not _is_colour(src):
        if _is_colour(dst):
            raise CvBridgeError(f"[{src}] is not a color format. but [{dst}] is. The conversion does not "
                                "make sense")
        if src_channels != dst_channels:
            raise CvBridgeError(f"[{src}] and [{dst}] do not have the same number of channel")
        return _to_depth(image, dst, scale=same_format_scale)
    if not _is_colour(dst):
        if src_channels != dst_channels:
            raise CvBridgeError(f"[{src}] is a color format but [{dst}] is not so they must have the same "
                                "OpenCV type, CV_8UC3, CV16UC1 ....")
        return _to_depth(image, dst, scale=same_format_scale)
    if src in _OTHER_COLOUR or dst in _OTHER_COLOUR:
        raise CvBridgeError(f"conversion from [{src}] to [{dst}] needs OpenCV (not in this stand-in)")
    (src_order, src_bits), (dst_order, dst_bits) = _COLOUR[src], _COLOUR[dst]
    if src_order == "L" and dst_order == "L":
        out = image
    elif src_order == "L":
        out = np.repeat(image[:, :, None], 3, axis=2)
        if "A" in dst_order:
            full = np.iinfo(image.dtype).max
            out = np.concatenate([out, np.full(image.shape + (1,), full, image.dtype)], axis=2)
    else:
        rgb = image[:, :, [src_order.index(c) for c in "RGB"]]
        if dst_order == "L":
            out = _grey(rgb)
        else:
            out = np.empty(image.shape[:2] + (len(dst_order),), image.dtype)
            for i, c in enumerate(dst_order):
                if c != "A":
                    out[:, :, i] = rgb[:, :, "RGB".index(c)]
                elif "A" in src_order:
                    out[:, :, i] = image[:, :, src_order.index("A")]
                else:
                    out[:, :, i] = np.iinfo(image.dtype).max
    scale = {(8, 16): 65535.0 / 255.0, (16, 8): 255.0 / 65535.0}.get((src_bits, dst_bits), 1.0)
    return _to_depth(np.ascontiguousarray(out), dst, scale)


def _grey(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's RGB2GRAY for integer images: (4899 R + 9617 G + 1868 B + 2^13) >> 14."""
    r, g, b = (rgb[:, :, i].astype(np.int64) for i in range(3))
    return ((4899 * r + 9617 * g + 1868 * b + 8192) >> 14).astype(rgb.dtype)


def _to_depth(image: np.ndarray, dst: str, scale: float) -> np.ndarray:
    """convertTo: scale, round and saturate into the destination depth."""
    target = np.dtype(DEPTHS[cv_type(dst).split("C")[0]])
    if image.dtype == target and scale == 1.0:
        return image.copy()
    values = image.astype(np.float64) * scale
    if target.kind in "iu":
        info = np.iinfo(target)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(target)
