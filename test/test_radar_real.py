"""Real nuScenes radar and LiDAR (scene-0061 keyframes 0-5 in ../shared) projected into CAM_FRONT.

Expected counts are those of the independent sanity check in SOURCES.md: keyframe 0 has 107 of 125 radar
returns and 3067 LiDAR points in the image, keyframes 1-5 101-116 radar returns; the devkit's default
filters keep about 66-74 returns.
"""

import json

import matplotlib
import numpy as np
import pytest
from PIL import Image

from xdrcdepth_core.data.geometry import project_points, sensor_to_sensor, transform_from_pose, transform_points
from xdrcdepth_core.data.lidar import lidar_depth_map, off_ego_mask, read_lidar_bin
from xdrcdepth_core.data.radar import rasterize_radar, read_radar_points

IMAGE_HW = (900, 1600)


def _pose(record):
    return transform_from_pose(record["rotation"], record["translation"])


def _camera_from(frame, sensor):
    """Ego-motion compensated sensor(t_sensor) -> CAM_FRONT(t_cam) transform from frames.json poses."""
    src, cam = frame[sensor], frame["CAM_FRONT"]
    return sensor_to_sensor(_pose(src["sensor2ego"]), _pose(src["ego_pose"]),
                            _pose(cam["ego_pose"]), _pose(cam["sensor2ego"]))


@pytest.fixture
def frames(nuscenes_samples):
    return json.loads((nuscenes_samples / "frames.json").read_text())["frames"][:6]


def test_radar_returns_land_on_the_image(frames, nuscenes_samples):
    in_image, filtered_in_image = [], []
    for frame in frames:
        K = np.array(frame["CAM_FRONT"]["camera_intrinsic"])
        T = _camera_from(frame, "RADAR_FRONT")
        path = nuscenes_samples / frame["RADAR_FRONT"]["file"]
        raw = read_radar_points(path, disable_filters=True)
        assert len(raw) == 125
        _, depth, keep = project_points(transform_points(T, raw.xyz), K, IMAGE_HW)
        in_image.append(int(keep.sum()))
        assert 1.0 < depth.min() and depth.max() < 250.0
        assert np.mean(depth < 100.0) > 0.9
        assert 30.0 < np.median(depth) < 70.0  # returns from the vehicles/barriers ahead, not clutter
        filtered = read_radar_points(path)
        assert 66 <= len(filtered) <= 74
        raster = rasterize_radar(transform_points(T, filtered.xyz), filtered.fields, K, IMAGE_HW)
        filtered_in_image.append(int(np.count_nonzero(raster[0])))
    assert in_image[0] == 107
    assert all(101 <= n <= 116 for n in in_image[1:]), in_image
    assert in_image == [107, 116, 116, 112, 102, 101]  # as measured with this code
    assert filtered_in_image == [61, 58, 62, 57, 58, 55]


def test_lidar_keyframe0_depth_map(frames, nuscenes_samples):
    frame = frames[0]
    K = np.array(frame["CAM_FRONT"]["camera_intrinsic"])
    points = read_lidar_bin(nuscenes_samples / frame["LIDAR_TOP"]["file"])
    assert points.shape == (34688, 5)
    on_ego = ~off_ego_mask(points[:, :3])
    assert 8000 < on_ego.sum() < 9000  # the ring of returns from the car roof around the sensor
    points_cam = transform_points(_camera_from(frame, "LIDAR_TOP"), points[~on_ego, :3])
    # SOURCES.md counts points with continuous image coordinates 0 <= u < W, 0 <= v < H
    uvw = points_cam @ K.T
    u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    inside = (uvw[:, 2] > 0) & (u >= 0) & (u < IMAGE_HW[1]) & (v >= 0) & (v < IMAGE_HW[0])
    assert inside.sum() == 3067
    # our convention puts pixel centres at integer coordinates: 7 border points fall outside
    _, depth, keep = project_points(points_cam, K, IMAGE_HW)
    assert keep.sum() == 3060
    depth_map = lidar_depth_map(points_cam, K, IMAGE_HW)
    assert depth_map.shape == IMAGE_HW and depth_map.dtype == np.float32
    assert np.count_nonzero(depth_map) == 3059  # one pixel hit twice
    assert 4.0 < depth_map[depth_map > 0].min() and depth_map.max() < 100.0
    # the lower image half (road, truck) is nearer than the upper half (buildings, sky)
    rows = np.nonzero(depth_map)[0]
    values = depth_map[depth_map > 0]
    assert np.median(values[rows > 600]) < np.median(values[rows < 450])


def test_overlay_png(frames, nuscenes_samples, artifacts_dir):
    frame = frames[0]
    K = np.array(frame["CAM_FRONT"]["camera_intrinsic"])
    image = np.array(Image.open(nuscenes_samples / frame["CAM_FRONT"]["file"]).convert("RGB"))
    assert image.shape == (*IMAGE_HW, 3)
    lidar = read_lidar_bin(nuscenes_samples / frame["LIDAR_TOP"]["file"])[:, :3]
    lidar_depth = lidar_depth_map(transform_points(_camera_from(frame, "LIDAR_TOP"), lidar), K, IMAGE_HW)
    radar = read_radar_points(nuscenes_samples / frame["RADAR_FRONT"]["file"], disable_filters=True)
    radar_depth = rasterize_radar(transform_points(_camera_from(frame, "RADAR_FRONT"), radar.xyz),
                                  radar.fields, K, IMAGE_HW, channels=("depth",))[0]
    colormap = matplotlib.colormaps["turbo"]
    overlay = image.copy()
    for depth_map, radius in ((lidar_depth, 1), (radar_depth, 5)):
        for r, c in zip(*np.nonzero(depth_map)):
            colour = (np.array(colormap(min(depth_map[r, c] / 80.0, 1.0))[:3]) * 255).astype(np.uint8)
            overlay[max(r - radius, 0):r + radius + 1, max(c - radius, 0):c + radius + 1] = colour
    out = artifacts_dir / "radar_lidar_overlay_kf0.png"
    Image.fromarray(overlay).save(out)
    assert out.stat().st_size > 100_000
    assert np.count_nonzero(np.any(overlay != image, axis=2)) > 3000


def test_dataset_agrees_with_the_devkit_projection(nuscenes_samples, tmp_path):
    """The dataset's depth maps hold, per pixel, the nearest of the points the devkit's own
    ``map_pointcloud_to_image`` projects there (independent code: pyquaternion, its own chain)."""
    from nuscenes.nuscenes import NuScenes
    from nuscenes.utils.data_classes import RadarPointCloud

    from xdrcdepth_core.data.nuscenes_dataset import NuScenesDepthDataset
    from xdrcdepth_core.data.real_samples import assemble_real_samples

    nusc = NuScenes("v1.0-mini", str(assemble_real_samples(tmp_path / "real", nuscenes_samples)), verbose=False)
    dataset = NuScenesDepthDataset(nusc.dataroot, nusc=nusc)
    assert len(dataset) == 1
    sample = dataset[0]
    data = nusc.get("sample", sample["token"])["data"]
    RadarPointCloud.default_filters()
    # In this frame no two points share a pixel away from a pixel border (the one LiDAR pair, 10.11 m and
    # 29.24 m, lies 0.002 px from one), so "nearest wins" is not exercised here: the next test checks it on
    # these frames' points with a farther return added behind every one of them.
    for channel, ours, n_devkit in (("LIDAR_TOP", sample["depth_gt"], 3053),
                                    ("RADAR_FRONT", sample["radar"][0], 61)):
        uv, depth, _ = nusc.explorer.map_pointcloud_to_image(data[channel], data["CAM_FRONT"])
        assert uv.shape[1] == n_devkit  # the devkit keeps 1 < u < W - 1, 1 < v < H - 1, depth > 1 m
        rows = np.floor(uv[1] + 0.5).astype(int)
        cols = np.floor(uv[0] + 0.5).astype(int)
        # the devkit computes in float32 (global coordinates ~1e3 m): ~1e-4 m / 1e-3 px apart from ours, so
        # points within 0.01 px of a pixel border may round to the neighbour; leave those pixels out
        on_border = (np.abs(uv[0] % 1 - 0.5) < 0.01) | (np.abs(uv[1] % 1 - 0.5) < 0.01)
        hits, ambiguous = {}, {(r, c) for r, c, border in zip(rows, cols, on_border) if border}
        for r, c, d in zip(rows, cols, depth):
            hits.setdefault((r, c), []).append(float(d))
        assert len(ambiguous) < 0.05 * len(hits)
        checked = {pixel: min(ds) for pixel, ds in hits.items() if pixel not in ambiguous}
        assert len(checked) > 0.95 * len(hits)
        rows_c, cols_c = np.array(list(checked)).T
        np.testing.assert_allclose(ours[rows_c, cols_c], list(checked.values()), atol=1e-3, err_msg=channel)


def test_nearest_return_wins_on_the_real_frames_points(nuscenes_samples, tmp_path):
    """Every real point of key frame 0 gets a farther return on its own ray (same pixel, 1.5 x the depth,
    other field values), given first: the raster and the LiDAR depth map must not change."""
    from nuscenes.nuscenes import NuScenes
    from nuscenes.utils.data_classes import RadarPointCloud

    from xdrcdepth_core.data.lidar import lidar_depth_map
    from xdrcdepth_core.data.radar import rasterize_radar
    from xdrcdepth_core.data.real_samples import assemble_real_samples

    nusc = NuScenes("v1.0-mini", str(assemble_real_samples(tmp_path / "real", nuscenes_samples)), verbose=False)
    data = nusc.get("sample", nusc.sample[0]["token"])["data"]
    camera = nusc.get("sample_data", data["CAM_FRONT"])
    K = np.array(nusc.get("calibrated_sensor", camera["calibrated_sensor_token"])["camera_intrinsic"])
    hw = (camera["height"], camera["width"])
    RadarPointCloud.default_filters()
    for channel in ("RADAR_FRONT", "LIDAR_TOP"):
        uv, depth, _ = nusc.explorer.map_pointcloud_to_image(data[channel], data["CAM_FRONT"])
        points = (np.linalg.inv(K) @ uv).T * depth[:, None]            # back on their rays, camera frame
        n = len(points)
        farther = points * 1.5
        both = np.concatenate([farther, points])                        # the farther copies come first
        if channel == "RADAR_FRONT":
            rcs = np.arange(n, dtype=float) + 1
            raster = rasterize_radar(both, {"rcs": np.concatenate([-rcs, rcs])}, K, hw, channels=("depth", "rcs"))
            alone = rasterize_radar(points, {"rcs": rcs}, K, hw, channels=("depth", "rcs"))
            assert np.count_nonzero(raster[0]) == n == 61
            np.testing.assert_array_equal(raster, alone)
            assert (raster[1][raster[0] > 0] > 0).all()                # every winner carries its own rcs
        else:
            assert n == 3053
            np.testing.assert_array_equal(lidar_depth_map(both, K, hw), lidar_depth_map(points, K, hw))
