"""The devkit-backed dataset on a hand-built nuScenes folder whose rasters can be computed by hand.

Scene: the ego drives along global +x at 10 m/s (x = 10 * t, identity rotation). The camera sits at the
ego origin looking along ego +x, K = [[100, 0, 50], [0, 100, 25]], 100 x 50 pixels; the radar sits at the
ego origin with identity rotation, RADAR_FRONT_LEFT there too, turned 90 degrees left; the LiDAR 1 m
above the origin. Key frame 0: radar at t = 1.00 s (ego x 10), camera at t = 1.05 s (ego x 10.5), LiDAR
at t = 1.00 s. A point seen at sensor x = d at time t therefore
lies at depth d + 10 t - 10.5 in the camera.

With ``annotations=True`` the folder also holds two boxes (see :func:`build_folder`).
"""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xdrcdepth_core.data.geometry import matrix_to_quaternion
from xdrcdepth_core.data.nuscenes_dataset import NuScenesDepthDataset, split_scene_names
from xdrcdepth_core.data.nuscenes_tables import NuScenesTables, token_for, write_map_mask
from xdrcdepth_core.data.radar_pcd import RADAR_FIELDS, write_radar_pcd
from xdrcdepth_core.data.sample_transforms import Crop, Resize

K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 25.0], [0.0, 0.0, 1.0]])
HW = (50, 100)
COLOUR = (200, 30, 10)
#: camera optical axes in the ego frame: x right = -y_ego, y down = -z_ego, z forward = +x_ego
CAM_ROTATION = matrix_to_quaternion(np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]))


def _radar_fields(xy, rcs):
    n = len(xy)
    fields = {name: np.zeros(n) for name in RADAR_FIELDS}
    fields.update(x=np.array([p[0] for p in xy]), y=np.array([p[1] for p in xy]), rcs=np.array(rcs),
                  vx_comp=np.full(n, 1.5), ambig_state=np.full(n, 3), dyn_prop=np.full(n, 1))
    return fields


def build_folder(root: Path, version: str = "v1.0-test", annotations: bool = False) -> Path:
    """Write the scene of the module docstring (2 samples; LiDAR only in sample 0) under ``root``.

    ``annotations``: a car (w 2, l 4, h 2 m, yaw 0) at global (30.5, 0, 0) in sample 0 and (31.5, 0.5, 0) in
    sample 1 (velocity (2, 1) m/s), and a traffic cone (0.5 x 0.5 x 1 m) at (20, 2, 0) in sample 0 only.
    """
    t = NuScenesTables()
    t.add_visibility_levels()
    cam = t.add_calibrated_sensor(t.add_sensor("CAM_FRONT", "camera"), [0, 0, 0], CAM_ROTATION, K)
    radar = t.add_calibrated_sensor(t.add_sensor("RADAR_FRONT", "radar"), [0, 0, 0], [1, 0, 0, 0])
    lidar = t.add_calibrated_sensor(t.add_sensor("LIDAR_TOP", "lidar"), [0, 0, 1.0], [1, 0, 0, 0])
    yaw_left = [np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]  # radar x = ego +y
    left = t.add_calibrated_sensor(t.add_sensor("RADAR_FRONT_LEFT", "radar"), [0, 0, 0], yaw_left)
    log = t.add_log("hand-built", "sim", "2026-01-01", "nowhere")
    t.add_map([log], "maps/blank.png")
    write_map_mask(root / "maps" / "blank.png", np.zeros((1, 1), np.uint8))
    scene = t.add_scene(log, "scene-hand-built", "ego at 10 m/s along x")
    s0 = t.add_sample(scene, 1_000_000)
    s1 = t.add_sample(scene, 1_500_000)

    def reading(sample, cs, time_us, channel, key, ext, width=0, height=0):
        pose = t.add_ego_pose(time_us, [1, 0, 0, 0], [10.0 * time_us * 1e-6, 0, 0],
                              token=token_for("ego_pose", channel, time_us))
        name = f"{'samples' if key else 'sweeps'}/{channel}/{time_us}.{ext}"
        t.add_sample_data(sample, pose, cs, time_us, name, ext.split(".")[-1], key, width, height)
        return root / name

    for sample, time_us in ((s0, 1_050_000), (s1, 1_550_000)):
        path = reading(sample, cam, time_us, "CAM_FRONT", True, "jpg", 100, 50)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 50), COLOUR).save(path, quality=95)
    # radar: previous sweep at 0.5 s (ego x 5) and key frames at 1.0 s and 1.5 s
    for sample, time_us, key, xy, rcs in ((s0, 500_000, False, [(25.5, 0), (15, 3)], [7, 8]),
                                          (s0, 1_000_000, True, [(20, 0), (10, 2)], [5, 6]),
                                          (s1, 1_500_000, True, [(30, 0)], [9])):
        write_radar_pcd(reading(sample, radar, time_us, "RADAR_FRONT", key, "pcd"), _radar_fields(xy, rcs))
    write_radar_pcd(reading(s0, left, 1_000_000, "RADAR_FRONT_LEFT", True, "pcd"), _radar_fields([(2, -20)], [4]))
    # LiDAR (x y z intensity ring): sweeps at 0.95 s and 1.05 s around the key frame at 1.0 s
    for time_us, key, points in ((950_000, False, [(10.5, 1, -1)]),
                                 (1_000_000, True, [(30, 0, -1), (0.9, 0, -0.9)]),  # 2nd: on the ego car
                                 (1_050_000, False, [(20, 0, -1)])):
        path = reading(s0 if time_us <= 1_000_000 else s1, lidar, time_us, "LIDAR_TOP", key, "pcd.bin")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.array([(*p, 1.0, 0.0) for p in points], dtype="<f4").tofile(path)
    if annotations:
        car = t.add_instance(t.add_category("vehicle.car"), token_for("instance", "car"))
        cone = t.add_instance(t.add_category("movable_object.trafficcone"), token_for("instance", "cone"))
        t.add_sample_annotation(s0, car, [30.5, 0, 0], [2, 4, 2], [1, 0, 0, 0], 1, 1)
        t.add_sample_annotation(s1, car, [31.5, 0.5, 0], [2, 4, 2], [1, 0, 0, 0], 0, 1)
        t.add_sample_annotation(s0, cone, [20, 2, 0], [0.5, 0.5, 1], [1, 0, 0, 0], 0, 1)
    t.write(root / version)
    return root


@pytest.fixture
def folder(tmp_path):
    return build_folder(tmp_path / "hand-built")


def test_key_frame_sample_by_hand(folder):
    dataset = NuScenesDepthDataset(folder, "v1.0-test")
    assert len(dataset) == 1 and dataset.n_incomplete == 1  # sample 1 has no LiDAR
    sample = dataset[0]
    assert sample["token"] == dataset.sample_tokens[0]
    np.testing.assert_allclose(sample["K"], K)
    assert sample["image"].shape == (50, 100, 3) and sample["image"].dtype == np.uint8
    assert np.abs(sample["image"].reshape(-1, 3).mean(0) - COLOUR).max() < 3  # RGB order
    radar = sample["radar"]
    assert radar.shape == (4, 50, 100) and radar.dtype == np.float32
    # (20, 0) at t=1.0 -> depth 19.5, centre; (10, 2) -> depth 9.5, u = 50 - 100 * 2 / 9.5 = 28.9
    np.testing.assert_allclose(radar[:, 25, 50], [19.5, 5, 1.5, 0])
    np.testing.assert_allclose(radar[:, 25, 29], [9.5, 6, 1.5, 0])
    assert np.count_nonzero(radar[0]) == 2
    depth = sample["depth_gt"]
    assert depth.shape == HW and depth.dtype == np.float32
    assert depth[25, 50] == pytest.approx(29.5)  # (30, 0, -1) lidar -> ego (30, 0, 0)
    assert np.count_nonzero(depth) == 1  # the point on the ego car (row 0, depth 0.4) is dropped
    kept = NuScenesDepthDataset(folder, "v1.0-test", ego_radius=0.0)[0]["depth_gt"]
    assert kept[0, 50] == pytest.approx(0.4) and np.count_nonzero(kept) == 2


def test_sweeps_are_ego_motion_compensated(folder):
    sample = NuScenesDepthDataset(folder, "v1.0-test", radar_sweeps=2, lidar_sweeps=3)[0]
    radar = sample["radar"]
    # previous sweep (t=0.5, ego x 5): (25.5, 0) -> depth 20 behind the key frame's 19.5 at the same
    # pixel, so the key frame's return (rcs 5) stays; (15, 3) -> depth 9.5, u = 50 - 300 / 9.5 = 18.4
    np.testing.assert_allclose(radar[:2, 25, 50], [19.5, 5])
    np.testing.assert_allclose(radar[:2, 25, 18], [9.5, 8])
    assert np.count_nonzero(radar[0]) == 3
    depth = sample["depth_gt"]
    # sweep at 1.05 s: (20, 0, -1) -> depth 20 at the centre, nearer than the key frame's 29.5
    assert depth[25, 50] == pytest.approx(20.0)
    # sweep at 0.95 s: (10.5, 1, -1) -> depth 9.5, u = 50 - 100 / 9.5 = 39.5 -> column 39
    assert depth[25, 39] == pytest.approx(9.5)
    assert np.count_nonzero(depth) == 2


def test_several_radars_share_one_raster(folder):
    dataset = NuScenesDepthDataset(folder, "v1.0-test", radar_sensors=("RADAR_FRONT", "RADAR_FRONT_LEFT"))
    assert len(dataset) == 1  # sample 1 has no RADAR_FRONT_LEFT
    radar = dataset[0]["radar"]
    # left radar (2, -20) -> ego (20, 2) at t=1.0 -> depth 19.5, u = 50 - 200 / 19.5 = 39.7
    np.testing.assert_allclose(radar[:2, 25, 40], [19.5, 4])
    np.testing.assert_allclose(radar[:2, 25, 50], [19.5, 5])
    assert np.count_nonzero(radar[0]) == 3


def test_optional_lidar_and_splits(folder):
    dataset = NuScenesDepthDataset(folder, "v1.0-test", require_lidar=False)
    assert len(dataset) == 2 and dataset.n_incomplete == 0
    second = dataset[1]
    assert not second["depth_gt"].any()
    assert second["radar"][0, 25, 50] == pytest.approx(29.5)  # (30, 0) at t=1.5 s, camera at 1.55 s
    assert split_scene_names(dataset.nusc, "val") == (["scene-hand-built"], True)  # no val scene: all
    assert NuScenesDepthDataset(folder, "v1.0-test", split="mini_val").split_fallback
    assert split_scene_names(dataset.nusc, ["scene-hand-built"]) == (["scene-hand-built"], False)
    with pytest.raises(ValueError, match="unknown split"):
        split_scene_names(dataset.nusc, "nope")
    with pytest.raises(ValueError, match="scene-0061"):
        split_scene_names(dataset.nusc, ["scene-0061"])


def test_crop_and_resize_keep_intrinsics_consistent(folder):
    plain = NuScenesDepthDataset(folder, "v1.0-test")[0]
    cropped = NuScenesDepthDataset(folder, "v1.0-test", transform=Crop(10, 20, 30, 60))[0]
    assert cropped["image"].shape == (30, 60, 3) and cropped["radar"].shape == (4, 30, 60)
    np.testing.assert_allclose(cropped["K"][:2, 2], [30, 15])
    np.testing.assert_array_equal(cropped["radar"], plain["radar"][:, 10:40, 20:80])
    assert cropped["depth_gt"][15, 30] == pytest.approx(29.5)
    resized = Resize(25, 50)(plain)
    assert resized["image"].shape == (25, 50, 3)
    np.testing.assert_allclose(resized["K"], [[50, 0, 24.75], [0, 50, 12.25], [0, 0, 1]])
    # centre return (25, 50) -> (12, 25); (25, 29) -> (12, 14); values unchanged
    np.testing.assert_allclose(resized["radar"][:2, 12, 25], [19.5, 5])
    np.testing.assert_allclose(resized["radar"][:2, 12, 14], [9.5, 6])
    assert resized["depth_gt"][12, 25] == pytest.approx(29.5)
    with pytest.raises(ValueError, match="does not fit"):
        Crop(40, 0, 30, 10)(plain)


def test_unreadable_files_are_named(folder):
    dataset = NuScenesDepthDataset(folder, "v1.0-test")
    data = dataset.nusc.get("sample", dataset.sample_tokens[0])["data"]
    for channel, cut, message in (("RADAR_FRONT", 400, r"1000000\.pcd: truncated"),
                                  ("LIDAR_TOP", -3, r"1000000\.pcd\.bin: .* not a whole number"),
                                  # was read as a sweep without points: the frame silently had no ground truth
                                  ("LIDAR_TOP", 0, r"1000000\.pcd\.bin: empty file"),
                                  ("CAM_FRONT", 10, r"1050000\.jpg: cannot read image")):
        path = Path(dataset.nusc.get_sample_data_path(data[channel]))
        good = path.read_bytes()
        path.write_bytes(good[:cut])
        with pytest.raises(ValueError, match=message):
            dataset[0]
        path.write_bytes(good)
    assert dataset[0]["depth_gt"].any()


def test_an_image_larger_than_the_pixel_limit_is_named_before_it_is_decoded(folder, monkeypatch):
    """A black-box run: a 4.6 MB PNG (named .jpg) declaring 40000 x 40000 took demo and prepare to 6.7 GB and a
    MemoryError (nuscenes-devkit lifts PIL's own limit). The size in the header is checked first; here a 22 kB PNG
    of 5000 x 4000 one-bit pixels, with decoding made to fail loudly should it be reached."""
    from PIL import Image

    dataset = NuScenesDepthDataset(folder, "v1.0-test")
    path = Path(dataset.nusc.get_sample_data_path(dataset.nusc.get("sample", dataset.sample_tokens[0])["data"]
                                                  ["CAM_FRONT"]))
    Image.new("1", (5000, 4000)).save(path, format="PNG")
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("the image was decoded"))
    with pytest.raises(ValueError) as info:
        dataset[0]
    assert str(info.value) == f"{path}: image of 5000 x 4000 pixels, more than 16777216 (4096 x 4096); not decoded"


def test_a_link_to_a_record_that_is_not_there_names_the_table_file(tmp_path):
    """Audit 2026-12-06: a ``sample.next`` (or a ``sample_data.ego_pose_token``) naming no record made the
    devkit's ``get`` raise a bare ``KeyError`` of the token, a traceback out of ``prepare``. The error names the
    table file now; it is a ``ValueError`` (``prepare`` reports it) and still the devkit's ``KeyError``."""
    import json

    from xdrcdepth_core.data.nuscenes_dataset import NuScenesLoadError

    folder = build_folder(tmp_path / "hand-built")
    table = folder / "v1.0-test" / "sample.json"
    samples = json.loads(table.read_text())
    first = next(s for s in samples if not s["prev"])
    first["next"] = "0" * 32
    table.write_text(json.dumps(samples))
    with pytest.raises(NuScenesLoadError) as error:
        NuScenesDepthDataset(folder, "v1.0-test", require_lidar=False)
    assert str(error.value) == f"{table}: no record '{'0' * 32}' (the next of sample {first['token']})"
    assert isinstance(error.value, KeyError) and isinstance(error.value, ValueError)


@pytest.mark.parametrize("table, field, value, what", [
    ("sample_data", "timestamp", "abc", "microseconds since 1970, an integer below 2^31 s"),
    ("sample_data", "timestamp", 1e30, "microseconds since 1970, an integer below 2^31 s"),
    ("sample_data", "timestamp", -5, "microseconds since 1970, an integer below 2^31 s"),
    ("sample_data", "timestamp", 2**31 * 10**6, "microseconds since 1970, an integer below 2^31 s"),
    ("sample", "timestamp", True, "microseconds since 1970, an integer below 2^31 s"),
    ("calibrated_sensor", "rotation", [1, 0, 0], "4 finite numbers (w, x, y, z)"),
    ("calibrated_sensor", "camera_intrinsic", [[1, 0, 0], [0, 1, 0]], "a 3 x 3 matrix of finite numbers, or [] "
                                                                      "(not a camera)"),
    ("ego_pose", "translation", [0.0, float("nan"), 0.0], "3 finite numbers"),
    ("sensor", "channel", 5, "a string"),
    ("scene", "name", 61, "a string"),
])
def test_a_field_of_the_wrong_type_is_one_line_naming_the_table_and_record(tmp_path, table, field, value, what):
    """The devkit checks no field: each of these ended nuscenes2bag with a traceback (TypeError, struct.error,
    'not enough values to unpack', ...) or prepare silently (a black-box run)."""
    import json

    from xdrcdepth_core.data.nuscenes_dataset import NuScenesLoadError, read_table

    path = tmp_path / f"{table}.json"
    good = {"token": "t0", field: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] if field == "camera_intrinsic" else
            {"timestamp": 1532402927612460, "rotation": [1, 0, 0, 0], "translation": [0, 0, 0]}.get(field, "x")}
    path.write_text(json.dumps([good, {"token": "t1", field: value}]))
    with pytest.raises(NuScenesLoadError) as error:
        read_table(path)
    assert str(error.value) == f"{path}: record t1: '{field}' must be {what}, got {value!r}"
    path.write_text(json.dumps([good, {"token": "t1"}]))      # a field a record lacks is the devkit's matter
    assert len(read_table(path)) == 2


def test_a_table_nested_too_deeply_is_one_line(tmp_path):
    from xdrcdepth_core.data.nuscenes_dataset import NuScenesLoadError, read_table

    path = tmp_path / "log.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(NuScenesLoadError, match=rf"^{re.escape(str(path))}: not a table \(JSON nested too deeply"):
        read_table(path)
