"""JPEG decoding: OpenCV where it gives PIL's pixels exactly, PIL (and its errors) for everything else."""

import io

import numpy as np
import pytest
from PIL import Image

from conftest import NUSCENES_SAMPLES
from xdrcdepth_core.imageio import UnsupportedPixels, decode_image, decode_jpeg_fast, jpeg_components


def pil_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def encode(array, fmt="JPEG", **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_real_nuscenes_jpeg_decodes_to_pils_pixels():
    data = sorted((NUSCENES_SAMPLES / "samples" / "CAM_FRONT").glob("*.jpg"))[0].read_bytes()
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
