"""Compressed camera images -> RGB arrays, the cheapest way that gives exactly PIL's pixels, and never a
picture libjpeg had to patch up.

For a 1600 x 900 nuScenes JPEG, simplejpeg (libjpeg-turbo) took 2.8 ms, OpenCV's decoder 3.7 ms and PIL
4.3 ms on the project's 2-core machine (``docs/benchmarks/inference.md``, 2026-12-05), with identical pixels
(``xdrcdepth bench`` checks the equality on every run). Decoding at reduced size (PIL ``draft``, DCT scaling) is faster still
but gives different pixels from a full decode plus the antialiased resize the model input uses, so it is
not used.

:func:`decode_jpeg_fast` takes only what it can decode exactly like PIL: a complete baseline/progressive
JPEG (ends with the EOI marker) with 1 or 3 components (grey or YCbCr; CMYK goes to PIL), decoded without
EXIF rotation (PIL does not rotate either). Everything else returns None, and the caller uses PIL, whose
errors (truncated or corrupt data) are the ones reported.

Corrupt data inside a JPEG that still ends in EOI (a truncated scan with EOI appended, zeroed bytes) is
only a *warning* to libjpeg: it fills the missing blocks with grey and returns a picture, and OpenCV and
PIL pass it on (OpenCV prints "Corrupt JPEG data" to stderr). simplejpeg's ``strict`` mode turns those
warnings into errors, so with simplejpeg installed (requirements.txt; no rosdep key) such a JPEG raises
:class:`CorruptJpeg`. The one warning that loses no pixel, extraneous bytes before a marker (some MJPEG
cameras pad every frame), is decoded as usual. Without simplejpeg, OpenCV (else PIL) decodes and cannot
tell.
"""

from __future__ import annotations

import numpy as np

try:
    import simplejpeg
except ImportError:  # pip only (requirements.txt); OpenCV or PIL decode instead, without the strict check
    simplejpeg = None
try:
    import cv2
except ImportError:  # pragma: no cover - OpenCV comes with nuscenes-devkit; PIL remains
    cv2 = None

#: Largest camera image (width x height) decoded by default, by the depth node (``max_image_pixels``) and by
#: nuscenes2bag: 4096 x 4096 covers every automotive camera in use (nuScenes 1600 x 900, 8 MP 3840 x 2160)
#: with room to spare, and bounds what a decompression bomb (a small file declaring a huge size) may cost.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096

#: libjpeg warnings that lose no pixel (the bytes are skipped); every other warning means patched-up data
HARMLESS_JPEG_WARNINGS = ("extraneous bytes before marker",)


class CorruptJpeg(ValueError):
    """A JPEG whose compressed data libjpeg could only decode by filling in missing or invalid blocks."""

#: start-of-frame markers (SOF0..SOF15 without DHT C4, JPG C8, DAC CC)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_components(data: bytes) -> int | None:
    """Number of colour components in a JPEG's frame header, None if it cannot be found."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:                      # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if marker in _SOF:
            return data[i + 9]                  # FF Cx, length(2), precision(1), height(2), width(2), Nf
        if marker == 0xDA:                      # start of scan before any frame header
            return None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def decode_jpeg_fast(data: bytes) -> np.ndarray | None:
    """H x W x 3 uint8 RGB of a well-formed JPEG via simplejpeg, else OpenCV (PIL's pixels), or None (use
    PIL); :class:`CorruptJpeg` when simplejpeg finds corrupt data."""
    if data.rstrip(b"\x00")[-2:] != b"\xff\xd9" or jpeg_components(data) not in (1, 3):
        return None
    if simplejpeg is not None:
        try:   # fastdct/fastupsample off: libjpeg's defaults, as PIL decodes
            return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False, strict=True)
        except ValueError as exc:
            warning = str(exc)
        try:   # decodable when not strict: the strict failure was a libjpeg warning
            rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False, strict=False)
        except ValueError:
            return None   # an error (e.g. 12-bit samples): PIL decodes it or names the problem
        if not any(harmless in warning for harmless in HARMLESS_JPEG_WARNINGS):
            raise CorruptJpeg(f"{warning} (libjpeg would fill the missing part with grey)")
        return rgb
    if cv2 is None:
        return None
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.ndim != 3:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


#: PIL modes of more than 8 bits per sample: ``convert("RGB")`` clips them to 255 (a 16-bit PNG turns almost
#: white), so they are refused instead -- such files are depth or thermal maps, not camera pictures
WIDE_MODES = ("I", "F")


class UnsupportedPixels(ValueError):
    """An image whose samples are not 8-bit (16-bit or float PNG / TIFF)."""


def pil_to_rgb(img) -> np.ndarray:
    """H x W x 3 uint8 RGB of an opened PIL image with 8-bit samples (any of PIL's 8-bit modes: L, P, RGB,
    RGBA, CMYK, YCbCr, ...); :class:`UnsupportedPixels` for wider ones."""
    if img.mode.split(";")[0] in WIDE_MODES:
        raise UnsupportedPixels(f"{img.format or 'image'} with {img.mode} samples (only 8-bit images are camera "
                                f"input)")
    img.load()
    return np.asarray(img.convert("RGB"))


def decode_image(data: bytes) -> np.ndarray:
    """H x W x 3 uint8 RGB of a JPEG or PNG (simplejpeg or OpenCV where exact, else PIL; PIL's errors and
    :class:`CorruptJpeg`)."""
    rgb = decode_jpeg_fast(data)
    if rgb is not None:
        return rgb
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return pil_to_rgb(img)
