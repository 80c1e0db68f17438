"""JPEG decoding: simplejpeg (else OpenCV) where it gives PIL's pixels exactly, PIL (and its errors) for
everything else; corrupt data inside a JPEG that ends in EOI is an error, not a grey-patched picture."""

import io

import numpy as np
import pytest
from PIL import Image

from xdrcdepth_core import imageio
from xdrcdepth_core.imageio import (CorruptJpeg, UnsupportedPixels, decode_image, decode_jpeg_fast,
                                     jpeg_components)


def pil_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def encode(array, fmt="JPEG", **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture(params=["simplejpeg", "opencv"], autouse=True)
def fast_decoder(request, monkeypatch):
    """Every test runs with simplejpeg and with the OpenCV fallback (a rosdep install without simplejpeg)."""
    assert imageio.simplejpeg is not None and imageio.cv2 is not None   # both installed by requirements.txt
    if request.param == "opencv":
        monkeypatch.setattr(imageio, "simplejpeg", None)
    return request.param


def corrupted(jpeg: bytes, how: str) -> bytes:
    """The two corruptions that still end in EOI: the scan cut in half, or all but its first 50 bytes zeroed."""
    scan = jpeg.index(b"\xff\xda")
    if how == "truncated":
        return jpeg[: scan + (len(jpeg) - scan) // 2] + b"\xff\xd9"
    return jpeg[: scan + 50] + bytes(len(jpeg) - scan - 52) + b"\xff\xd9"


def test_real_nuscenes_jpeg_decodes_to_pils_pixels(nuscenes_samples):
    data = sorted((nuscenes_samples / "samples" / "CAM_FRONT").glob("*.jpg"))[0].read_bytes()
    fast = decode_jpeg_fast(data)
    assert fast is not None and fast.shape == (900, 1600, 3) and fast.dtype == np.uint8
    np.testing.assert_array_equal(fast, pil_rgb(data))


@pytest.mark.parametrize("kwargs", [{}, {"progressive": True}, {"subsampling": 0, "quality": 95}])
def test_colour_grey_progressive_and_exif_rotated_jpegs_equal_pil(kwargs):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for array in (rgb, rgb[:, :, 0]):
        data = encode(array, **kwargs)
        assert jpeg_components(data) == (3 if array.ndim == 3 else 1)
        np.testing.assert_array_equal(decode_jpeg_fast(data), pil_rgb(data))
    exif = Image.Exif()
    exif[0x0112] = 6                      # "rotate 90": PIL does not apply it, so neither may OpenCV
    data = encode(rgb, exif=exif.tobytes(), **kwargs)
    np.testing.assert_array_equal(decode_jpeg_fast(data), pil_rgb(data))


def test_anything_else_goes_to_pil():
    rgb = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    jpeg = encode(rgb)
    assert decode_jpeg_fast(jpeg[: len(jpeg) // 2]) is None           # truncated: PIL reports it
    with pytest.raises(OSError):
        decode_image(jpeg[: len(jpeg) // 2])
    png = encode(rgb, "PNG")
    assert decode_jpeg_fast(png) is None
    np.testing.assert_array_equal(decode_image(png), rgb)
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, format="JPEG")
    cmyk = buf.getvalue()
    assert jpeg_components(cmyk) == 4 and decode_jpeg_fast(cmyk) is None


def test_wider_than_8_bit_images_are_refused_not_clipped():
    for pixels in (np.full((6, 7), 3000, np.uint16), np.full((6, 7), 0.5, np.float32)):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG" if pixels.dtype == np.uint16 else "TIFF")
        with pytest.raises(UnsupportedPixels, match=r"with (I;16|F) samples \(only 8-bit images are camera input\)"):
            decode_image(buf.getvalue())


@pytest.mark.parametrize("how", ["truncated", "zeroed"])
def test_corrupt_data_before_eoi_is_an_error_not_grey_blocks(fast_decoder, how, nuscenes_samples):
    data = sorted((nuscenes_samples / "samples" / "CAM_FRONT").glob("*.jpg"))[0].read_bytes()
    bad = corrupted(data, how)
    assert bad.endswith(b"\xff\xd9") and len(pil_rgb(bad)) == 900   # PIL decodes it: grey blocks, no error
    if fast_decoder == "opencv":   # without simplejpeg nothing tells (the documented limit)
        np.testing.assert_array_equal(decode_image(bad), pil_rgb(bad))
        return
    for decode in (decode_jpeg_fast, decode_image):
        with pytest.raises(CorruptJpeg, match="Corrupt JPEG data: premature end of data segment"):
            decode(bad)


def test_extraneous_bytes_before_a_marker_lose_no_pixel_and_are_decoded():
    rgb = np.random.default_rng(3).integers(0, 256, (40, 64, 3), dtype=np.uint8)
    data = encode(rgb)
    padded = data[:-2] + b"\x00\x00\xff\xd9"     # what some MJPEG cameras send
    np.testing.assert_array_equal(decode_jpeg_fast(padded), pil_rgb(data))


def test_a_jpeg_libjpeg_refuses_outright_goes_to_pil_for_its_error(fast_decoder):
    rgb = np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    data = bytearray(encode(rgb))
    sof = data.index(b"\xff\xc0")
    data[sof + 4] = 12                    # 12-bit sample precision: an error to 8-bit libjpeg, not a warning
    assert decode_jpeg_fast(bytes(data)) is None
    with pytest.raises(OSError):          # PIL's own error, which the node reports as bad_compressed
        decode_image(bytes(data))
