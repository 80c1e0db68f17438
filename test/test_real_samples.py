"""The real scene-0061 samples assemble into a folder the nuscenes-devkit loads, resolving to the real files."""

import hashlib
import json
import os

import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud, RadarPointCloud

from xdrcdepth_core.data.real_samples import assemble_real_samples


def test_real_samples_load_and_resolve_to_shared_files(tmp_path, nuscenes_samples):
    out = assemble_real_samples(tmp_path / "real", nuscenes_samples)
    nusc = NuScenes("v1.0-mini", str(out), verbose=False)
    frames = json.loads((nuscenes_samples / "frames.json").read_text())["frames"]
    assert len(nusc.sample) == 6 and nusc.scene[0]["name"] == "scene-0061" and nusc.scene[0]["nbr_samples"] == 6

    kf0 = nusc.get("sample", "ca9a282c9e77460f8360f564131a8af5")
    assert set(kf0["data"]) == {"CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP"}
    for channel in ("CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP"):
        reading = frames[0][channel]
        path = nusc.get_sample_data_path(kf0["data"][channel])
        assert os.path.islink(path)
        assert os.path.realpath(path) == str((nuscenes_samples / reading["file"]).resolve())
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == reading["sha256"]
        sd = nusc.get("sample_data", kf0["data"][channel])
        assert sd["timestamp"] == reading["timestamp"]
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        assert pose["translation"] == reading["ego_pose"]["translation"]
    assert kf0["data"]["LIDAR_TOP"] == "9d9bf11fb0e144c8b446d54a8a00184f"  # official token kept

    cam = nusc.get("sample_data", kf0["data"]["CAM_FRONT"])
    cs = nusc.get("calibrated_sensor", cam["calibrated_sensor_token"])
    np.testing.assert_allclose(cs["camera_intrinsic"], frames[0]["CAM_FRONT"]["camera_intrinsic"])
    kf1_cam = nusc.get("sample", kf0["next"])["data"]["CAM_FRONT"]
    assert (cam["width"], cam["height"], cam["next"]) == (1600, 900, kf1_cam)

    # The devkit reads the linked files: 34688 lidar points (693760 B / 20 B); default radar filters keep 74.
    assert LidarPointCloud.from_file(nusc.get_sample_data_path(kf0["data"]["LIDAR_TOP"])).points.shape == (4, 34688)
    RadarPointCloud.default_filters()
    assert RadarPointCloud.from_file(nusc.get_sample_data_path(kf0["data"]["RADAR_FRONT"])).points.shape == (18, 74)

    kf1 = nusc.get("sample", kf0["next"])
    assert set(kf1["data"]) == {"CAM_FRONT", "RADAR_FRONT"}  # no lidar after key frame 0
    assert os.path.realpath(nusc.get_sample_data_path(kf1["data"]["CAM_FRONT"])).endswith(
        "reencoded/CAM_FRONT/n015-2018-07-24-11-22-45+0800__CAM_FRONT__1532402928112460.jpg")


def test_output_inside_samples_folder_is_refused(tmp_path, nuscenes_samples):
    with pytest.raises(ValueError, match="must not lie inside"):
        assemble_real_samples(nuscenes_samples / "out", nuscenes_samples)
