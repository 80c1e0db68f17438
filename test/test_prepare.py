"""``xdrcdepth prepare`` on the hand-built folder (values by hand) and on the real scene-0061 samples."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_nuscenes_dataset import build_folder

from xdrcdepth_core.cli import main
from xdrcdepth_core.data.nuscenes_dataset import NuScenesDepthDataset
from xdrcdepth_core.data.prepare import NPZ_KEYS
from xdrcdepth_core.data.real_samples import assemble_real_samples


def _prepare(capsys, *args):
    rc = main(["prepare", *map(str, args)])
    return rc, capsys.readouterr().out.strip().splitlines()[-1]


@pytest.fixture
def folder(tmp_path):
    return build_folder(tmp_path / "hand-built")


def test_cache_matches_the_dataset_and_resumes(folder, tmp_path, capsys):
    out = tmp_path / "cache"
    rc, summary = _prepare(capsys, "--dataroot", folder, "--version", "v1.0-test", "--out", out)
    assert rc == 0
    assert "1 samples of split all" in summary and "1 written, 0 already cached" in summary
    assert "1 lacking a required channel" in summary
    sample = NuScenesDepthDataset(folder, "v1.0-test")[0]
    files = sorted(out.glob("*.npz"))
    assert [f.stem for f in files] == [sample["token"]]
    assert not list(out.glob(".*.tmp"))
    with np.load(files[0], allow_pickle=False) as npz:
        assert set(npz.files) == set(NPZ_KEYS)
        assert npz["image"].dtype == np.uint8 and npz["image"].shape == (50, 100, 3)
        np.testing.assert_array_equal(npz["image"], sample["image"])
        assert npz["radar"].dtype == np.float32 and npz["depth_gt"].dtype == np.float32
        np.testing.assert_array_equal(npz["radar"], sample["radar"])
        np.testing.assert_allclose(npz["radar"][:, 25, 50], [19.5, 5, 1.5, 0])
        assert npz["depth_gt"][25, 50] == pytest.approx(29.5) and np.count_nonzero(npz["depth_gt"]) == 1
        assert npz["radar_channels"].tolist() == ["depth", "rcs", "vx_comp", "vy_comp"]
        np.testing.assert_allclose(npz["K"], sample["K"])
        assert str(npz["token"]) == sample["token"]
        assert json.loads(str(npz["settings"]))["lidar_sweeps"] == 1
    mtime = files[0].stat().st_mtime_ns

    rc, summary = _prepare(capsys, "--dataroot", folder, "--version", "v1.0-test", "--out", out)
    assert rc == 0 and "0 written, 1 already cached" in summary
    assert files[0].stat().st_mtime_ns == mtime

    # other settings: the cached file does not count and is rewritten with the accumulated GT
    rc, summary = _prepare(capsys, "--dataroot", folder, "--version", "v1.0-test", "--out", out,
                           "--lidar-sweeps", "3", "--radar-sweeps", "2")
    assert rc == 0 and "1 written" in summary
    with np.load(files[0]) as npz:
        assert npz["depth_gt"][25, 50] == pytest.approx(20.0) and np.count_nonzero(npz["radar"][0]) == 3

    # a truncated cache file is recomputed
    files[0].write_bytes(files[0].read_bytes()[:100])
    rc, summary = _prepare(capsys, "--dataroot", folder, "--version", "v1.0-test", "--out", out,
                           "--lidar-sweeps", "3", "--radar-sweeps", "2")
    assert rc == 0 and "1 written" in summary


def test_missing_lidar_and_unreadable_files(folder, tmp_path, capsys):
    out = tmp_path / "cache"
    nusc_sample = NuScenesDepthDataset(folder, "v1.0-test", require_lidar=False)
    camera_file = Path(nusc_sample.nusc.get_sample_data_path(
        nusc_sample.nusc.get("sample", nusc_sample.sample_tokens[1])["data"]["CAM_FRONT"]))
    camera_file.write_bytes(b"garbage")
    rc, summary = _prepare(capsys, "--dataroot", folder, "--version", "v1.0-test", "--out", out,
                           "--allow-missing-lidar")
    assert rc == 1 and str(camera_file) in summary and "--skip-bad" in summary
    rc, summary = _prepare(capsys, "--dataroot", folder, "--version", "v1.0-test", "--out", out,
                           "--allow-missing-lidar", "--skip-bad")
    assert rc == 0 and "2 samples" in summary and "0 written, 1 already cached, 1 unreadable skipped" in summary
    rc, summary = _prepare(capsys, "--dataroot", tmp_path / "nowhere", "--version", "v1.0-test", "--out", out)
    assert rc == 1 and "cannot load v1.0-test" in summary
    with pytest.raises(SystemExit):
        main(["prepare", "--dataroot", str(folder), "--out", str(out), "--lidar-sweeps", "0"])
    assert "--lidar-sweeps: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="sweep counts must be >= 1"):
        NuScenesDepthDataset(folder, "v1.0-test", radar_sweeps=0)


def test_prepare_real_samples_unchanged(nuscenes_samples, tmp_path, capsys):
    """The folder assembled from the real scene-0061 key frames goes through prepare like any other."""
    root = assemble_real_samples(tmp_path / "real", nuscenes_samples)
    out = tmp_path / "cache"
    rc, summary = _prepare(capsys, "--dataroot", root, "--version", "v1.0-mini", "--out", out, "--split", "mini_val")
    assert rc == 0
    # scene-0061 is in mini_train, not mini_val -> the folder has no mini_val scene: all scenes
    assert "split mini_val (no such scenes here: all scenes)" in summary
    assert "1 samples" in summary and "1 written" in summary and "5 lacking a required channel" in summary
    with np.load(out / "ca9a282c9e77460f8360f564131a8af5.npz") as npz:
        original = np.asarray(Image.open(nuscenes_samples / "samples" / "CAM_FRONT"
                                         / "n015-2018-07-24-11-22-45+0800__CAM_FRONT__1532402927612460.jpg"))
        np.testing.assert_array_equal(npz["image"], original)
        assert npz["radar"].shape == (4, 900, 1600)
        assert np.count_nonzero(npz["radar"][0]) == 61  # devkit default filters, as in test_radar_real
        depth = npz["depth_gt"]
        assert np.count_nonzero(depth) == 3059 and 4.0 < depth[depth > 0].min() and depth.max() < 100.0
        assert npz["K"][0, 0] == pytest.approx(1266.417203046554)

    rc, summary = _prepare(capsys, "--dataroot", root, "--version", "v1.0-mini", "--out", out,
                           "--split", "mini_train", "--allow-missing-lidar", "--no-radar-filters")
    assert rc == 0 and "6 samples of split mini_train ->" in summary and "6 written" in summary
    counts = []
    for token in NuScenesDepthDataset(root, "v1.0-mini", require_lidar=False).sample_tokens:
        with np.load(out / f"{token}.npz") as npz:
            counts.append(int(np.count_nonzero(npz["radar"][0])))
    assert counts == [106, 116, 116, 111, 102, 100]  # 107/116/116/112/102/101 in image, minus shared pixels
