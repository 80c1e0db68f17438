"""Colormaps and checkpoint files: fixed depth scale, invalid pixels, atomic writes, named errors."""

import numpy as np
import pytest
import torch

from xdrcdepth_core.checkpoint import atomic_torch_save, load_checkpoint
from xdrcdepth_core.visualize import colorize_depth, overlay_saliency, turbo


def test_turbo_close_to_reference_map():
    # matplotlib ships the reference Turbo LUT; the polynomial fit stays within 0.13 per channel.
    import matplotlib

    x = np.linspace(0.0, 1.0, 256)
    np.testing.assert_allclose(turbo(x), matplotlib.colormaps["turbo"](x)[:, :3], atol=0.13)


def test_colorize_depth_fixed_scale_and_invalid():
    depth = np.array([[1.0, 79.0, np.nan, 0.0, -np.inf]])
    rgb = colorize_depth(depth, max_depth=80.0)
    assert rgb.shape == (1, 5, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] > rgb[0, 0, 2]     # near: red dominates
    assert rgb[0, 1, 2] > rgb[0, 1, 0]     # far: blue dominates
    assert (rgb[0, 2:] == 0).all()         # NaN, 0 and -inf are black
    # The same depth gets the same colour whatever else is in the frame (no per-frame normalisation).
    other = colorize_depth(np.array([[1.0, 5.0]]), max_depth=80.0)
    assert (other[0, 0] == rgb[0, 0]).all()


def test_overlay_saliency_blends():
    image = np.full((2, 2, 3), 100, np.uint8)
    saliency = np.array([[0.0, 1.0], [np.nan, 0.5]])
    out = overlay_saliency(image, saliency, alpha=0.6)
    assert (out[0, 0] == image[0, 0]).all() and (out[1, 0] == image[1, 0]).all()  # 0 and NaN: untouched
    expected = 100 * 0.4 + turbo(np.array(1.0)) * 255 * 0.6   # full saliency: 60 % heat colour
    np.testing.assert_allclose(out[0, 1], expected, atol=0.51)


def test_checkpoint_atomic_and_errors(tmp_path):
    path = tmp_path / "a" / "ckpt.pt"
    atomic_torch_save({"x": torch.ones(2)}, path)
    assert torch.load(path, weights_only=True)["x"].sum() == 2
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temp file left behind
    with pytest.raises(ValueError, match="not an xdrcdepth checkpoint"):
        load_checkpoint(path)
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match="truncated.pt"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_atomic_files_get_umask_permissions(tmp_path):
    import os

    from xdrcdepth_core.atomic import atomic_write_bytes

    old = os.umask(0o022)
    os.umask(old)
    atomic_write_bytes(tmp_path / "x.bin", b"abc")
    assert (tmp_path / "x.bin").read_bytes() == b"abc"
    assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o666 & ~old
