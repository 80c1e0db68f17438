"""nuscenes2bag on a tiny hand-built nuScenes folder: sweeps between key frames, two radars, two scenes
(one bag each), sqlite3 storage, an empty radar sweep, and clear errors for bad input."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from xdrcdepth_core.cli import main as xdrcdepth
from xdrcdepth_core.data.nuscenes_tables import NuScenesTables, write_map_mask
from xdrcdepth_core.data.radar_pcd import RADAR_FIELDS, RADAR_RECORD_DTYPE, radar_pcd_bytes

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
K = np.array([[10.0, 0.0, 4.0], [0.0, 11.0, 3.0], [0.0, 0.0, 1.0]])
SCENE_T0 = {"scene-a": 1_000_000, "scene-b": 20_000_000}  # microseconds
FRONT_RADAR_SWEEP_DT = -250_000  # an extra RADAR_FRONT sweep 0.25 s before the second key frame; it is empty
LEFT_RADAR_SWEEP_DT = -30_000  # a RADAR_FRONT_LEFT sweep before the scene's first key frame (and camera)


def radar_columns(n, seed):
    rng = np.random.default_rng(seed)
    return {name: (rng.normal(size=n) * 10).astype(RADAR_RECORD_DTYPE[name]) if RADAR_RECORD_DTYPE[name].kind == "f"
            else rng.integers(-5, 5, size=n).astype(RADAR_RECORD_DTYPE[name]) for name in RADAR_FIELDS}


def build_folder(root):
    """Two scenes of two samples; CAM_FRONT, RADAR_FRONT (+1 sweep), RADAR_FRONT_LEFT (+1 sweep), LIDAR_TOP."""
    t = NuScenesTables()
    t.add_visibility_levels()
    log = t.add_log("log-a", "n015", "2018-07-24", "singapore-onenorth")
    t.add_map([log], "maps/mask.png")
    write_map_mask(root / "maps/mask.png", np.zeros((1, 1), np.uint8))
    calib = {
        "CAM_FRONT": ("camera", [1.7, 0.0, 1.5], [0.5, -0.5, 0.5, -0.5], K),
        "RADAR_FRONT": ("radar", [3.4, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], None),
        "RADAR_FRONT_LEFT": ("radar", [3.2, 0.6, 0.5], [0.7071067811865476, 0.0, 0.0, 0.7071067811865476], None),
        "LIDAR_TOP": ("lidar", [0.9, 0.0, 1.8], [0.7071067811865476, 0.0, 0.0, -0.7071067811865476], None),
    }
    cs = {ch: t.add_calibrated_sensor(t.add_sensor(ch, mod), tr, rot, k) for ch, (mod, tr, rot, k) in calib.items()}
    expected = {}  # (scene, channel) -> list of (timestamp_us, file path)

    def reading(scene, sample, channel, ts, key, data, ext):
        folder = "samples" if key else "sweeps"
        filename = f"{folder}/{channel}/{scene}__{channel}__{ts}.{ext}"
        (root / filename).parent.mkdir(parents=True, exist_ok=True)
        (root / filename).write_bytes(data)
        pose = t.add_ego_pose(ts, [np.cos(ts / 1e7), 0.0, 0.0, np.sin(ts / 1e7)], [ts / 1e5, 2.0, 0.0])
        t.add_sample_data(sample, pose, cs[channel], ts, filename, ext.split(".")[-1], key,
                          *((8, 6) if channel == "CAM_FRONT" else (0, 0)))
        expected.setdefault((scene, channel), []).append((ts, root / filename))

    jpeg = io.BytesIO()
    PILImage.fromarray(np.arange(8 * 6 * 3, dtype=np.uint8).reshape(6, 8, 3)).save(jpeg, format="JPEG")
    for name, t0 in SCENE_T0.items():
        scene = t.add_scene(log, name, "")
        for k in range(2):
            ts = t0 + 500_000 * k
            sample = t.add_sample(scene, ts)
            reading(name, sample, "CAM_FRONT", ts, True, jpeg.getvalue(), "jpg")
            reading(name, sample, "RADAR_FRONT", ts + 10_000, True, radar_pcd_bytes(radar_columns(3 + k, ts)), "pcd")
            reading(name, sample, "RADAR_FRONT_LEFT", ts + 20_000, True, radar_pcd_bytes(radar_columns(2, ts + 1)),
                    "pcd")
            points = np.random.default_rng(ts).normal(size=(4, 5)).astype("<f4")
            reading(name, sample, "LIDAR_TOP", ts + 5_000, True, points.tobytes(), "pcd.bin")
            if k == 0:
                reading(name, sample, "RADAR_FRONT_LEFT", ts + LEFT_RADAR_SWEEP_DT, False,
                        radar_pcd_bytes(radar_columns(1, ts + 2)), "pcd")
            if k == 1:
                reading(name, sample, "RADAR_FRONT", ts + 10_000 + FRONT_RADAR_SWEEP_DT, False,
                        radar_pcd_bytes(radar_columns(0, 0)), "pcd")
    t.write(root / "v1.0-mini")
    for readings in expected.values():
        readings.sort()
    return expected


def read_bag(path):
    with Reader(path) as reader:
        out = {}
        for conn, stamp, raw in reader.messages():
            out.setdefault(conn.topic, []).append((stamp, TYPESTORE.deserialize_cdr(raw, conn.msgtype)))
    storage = "mcap" if list(Path(path).glob("*.mcap")) else "sqlite3" if list(Path(path).glob("*.db3")) else None
    return out, storage


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "nuscenes"
    return root, build_folder(root)


def test_sweeps_radars_and_scenes_sqlite3(folder, tmp_path, capsys):
    root, expected = folder
    out = tmp_path / "bags"
    rc = xdrcdepth(["nuscenes2bag", "--dataroot", str(root), "--out", str(out), "--storage", "sqlite3",
                    "--channels", "CAM_FRONT", "RADAR_FRONT", "RADAR_FRONT_LEFT", "--no-progress"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("nuscenes2bag: scene-") for line in lines)
    assert "19 messages" in lines[0] and "3 /radar_front," in lines[0]  # 1 + 8 + 2 + 2 + 3 + 3, as below
    assert sorted(p.name for p in out.iterdir()) == ["scene-a", "scene-b"]  # one bag per scene, nothing else
    for scene in SCENE_T0:
        messages, storage = read_bag(out / scene)
        assert storage == "sqlite3" and len(list((out / scene).glob("*.db3"))) == 1
        counts = {topic: len(msgs) for topic, msgs in messages.items()}
        # LIDAR_TOP was not asked for; each radar has its 2 key frames and one sweep (before the first or
        # between the two key frames); every reading has its own ego pose.
        assert counts == {"/tf_static": 1, "/tf": 8, "/cam_front/image_rect_compressed": 2,
                          "/cam_front/camera_info": 2, "/radar_front": 3, "/radar_front_left": 3}
        for channel, topic in (("CAM_FRONT", "/cam_front/image_rect_compressed"),
                               ("RADAR_FRONT", "/radar_front"), ("RADAR_FRONT_LEFT", "/radar_front_left")):
            assert [s for s, _ in messages[topic]] == [ts * 1000 for ts, _ in expected[(scene, channel)]]
        t0 = SCENE_T0[scene]
        assert [s for s, _ in messages["/radar_front"]] == [
            (t0 + 10_000) * 1000, (t0 + 510_000 - 250_000) * 1000, (t0 + 510_000) * 1000]
        sweep = messages["/radar_front"][1][1]
        assert (sweep.width, sweep.row_step, len(sweep.data), len(sweep.fields)) == (0, 0, 0, 18)
        assert [c.width for _, c in messages["/radar_front"]] == [3, 0, 4]
        assert {t.child_frame_id for t in messages["/tf_static"][0][1].transforms} == {
            "cam_front", "radar_front", "radar_front_left"}
        info = messages["/cam_front/camera_info"][0][1]
        assert (info.width, info.height) == (8, 6)  # from the JPEG itself
        np.testing.assert_array_equal(info.k, K.reshape(-1))
        assert messages["/tf_static"][0][0] == min(s for msgs in messages.values() for s, _ in msgs) == (
            t0 + LEFT_RADAR_SWEEP_DT) * 1000
        assert messages["/tf"][0][0] == (t0 + LEFT_RADAR_SWEEP_DT) * 1000
        left = messages["/radar_front_left"][1][1]
        np.testing.assert_array_equal(
            np.frombuffer(left.data.tobytes(), RADAR_RECORD_DTYPE)["rcs"], radar_columns(2, t0 + 1)["rcs"])


def test_one_scene_lidar_and_overwrite(folder, tmp_path, capsys):
    root, expected = folder
    bag = tmp_path / "b" / "only-b"
    args = ["nuscenes2bag", "--dataroot", str(root), "--out", str(bag), "--scene", "scene-b", "--no-progress"]
    assert xdrcdepth(args) == 0
    messages, storage = read_bag(bag)
    assert storage == "mcap" and "/radar_front_left" not in messages  # default channels
    assert [s for s, _ in messages["/lidar_top"]] == [ts * 1000 for ts, _ in expected[("scene-b", "LIDAR_TOP")]]
    assert messages["/lidar_top"][0][1].data.tobytes() == expected[("scene-b", "LIDAR_TOP")][0][1].read_bytes()

    assert xdrcdepth(args + ["--channels", "RADAR_FRONT_LEFT"]) == 2
    assert f"{bag} already exists" in capsys.readouterr().err
    assert xdrcdepth(args + ["--channels", "RADAR_FRONT_LEFT", "--overwrite"]) == 0
    messages, _ = read_bag(bag)
    assert set(messages) == {"/tf_static", "/tf", "/radar_front_left"}
    assert sorted(p.name for p in bag.parent.iterdir()) == ["only-b"]  # no temporary folders left


@pytest.mark.parametrize("case", ["no_tables", "unknown_scene", "unknown_channel", "missing_file", "bad_jpeg"])
def test_bad_input_names_the_culprit_and_leaves_no_bag(folder, tmp_path, capsys, case):
    root, expected = folder
    bag = tmp_path / "bags" / "x"
    args = ["--dataroot", str(root), "--out", str(bag), "--scene", "scene-a", "--no-progress"]
    if case == "no_tables":
        args[1] = str(tmp_path)
        want = f"{tmp_path}: no nuScenes table folder v1.0-mini/"
    elif case == "unknown_scene":
        args[args.index("scene-a")] = "scene-z"
        want = "no scene scene-z in v1.0-mini (scenes: scene-a, scene-b)"
    elif case == "unknown_channel":
        args += ["--channels", "CAM_BACK"]
        want = "no sensor channel CAM_BACK"
    elif case == "missing_file":
        path = expected[("scene-a", "RADAR_FRONT")][1][1]
        path.unlink()
        want = f"{path}: cannot read the radar PCD"
    else:
        path = expected[("scene-a", "CAM_FRONT")][1][1]
        path.write_bytes(b"not a jpeg")
        want = f"{path}: cannot read the camera image"
    assert xdrcdepth(["nuscenes2bag", *args]) == 2
    assert want in capsys.readouterr().err
    assert not bag.exists() and (not bag.parent.exists() or not list(bag.parent.iterdir()))
