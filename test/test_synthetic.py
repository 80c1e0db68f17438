"""Synthetic scenes: devkit-loadable folders whose exact depth, LiDAR and radar agree with each other."""

import json
import logging

import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import RadarPointCloud
from scipy.spatial import cKDTree

from xdrcdepth_core.cli import main as cli_main
from xdrcdepth_core.data.geometry import invert_transform, project_points, transform_from_pose, transform_points
from xdrcdepth_core.data.lidar import lidar_depth_map
from xdrcdepth_core.data.nuscenes_sweeps import camera_from_sensor, lidar_points_in_camera
from xdrcdepth_core.data.radar_pcd import read_radar_pcd
from xdrcdepth_core.data.synthetic import calibration, radar
from xdrcdepth_core.data.synthetic.layout import make_layout

SEED, KEYFRAMES, SCALE = 7, 3, 0.25


def _synth(out, *extra):
    args = ["synth", "--out", str(out), "--scenes", "1", "--frames", str(KEYFRAMES), "--seed", str(SEED),
            "--image-scale", str(SCALE), "--no-progress", *extra]
    assert cli_main(args) == 0
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    clear = _synth(root / "clear")
    fog = _synth(root / "fog", "--conditions", "fog", "--no-camera-sweeps")
    night = _synth(root / "night", "--conditions", "night", "--no-camera-sweeps")
    return {"clear": clear, "fog": fog, "night": night}


@pytest.fixture(scope="module")
def nusc(folders):
    return NuScenes("v1.0-mini", str(folders["clear"]), verbose=False)


def _chain(nusc, token):
    """All sample_data tokens of the channel of ``token``, first to last."""
    while nusc.get("sample_data", token)["prev"]:
        token = nusc.get("sample_data", token)["prev"]
    chain = [token]
    while nusc.get("sample_data", chain[-1])["next"]:
        chain.append(nusc.get("sample_data", chain[-1])["next"])
    return [nusc.get("sample_data", t) for t in chain]


@pytest.mark.slow
def test_folder_loads_with_nuscenes_timing(nusc, folders):
    assert len(nusc.scene) == 1 and nusc.scene[0]["nbr_samples"] == KEYFRAMES
    samples = [nusc.get("sample", nusc.scene[0]["first_sample_token"])]
    while samples[-1]["next"]:
        samples.append(nusc.get("sample", samples[-1]["next"]))
    assert len(samples) == KEYFRAMES
    assert np.diff([s["timestamp"] for s in samples]).tolist() == [500_000] * (KEYFRAMES - 1)  # 2 Hz
    for s in samples:
        assert set(s["data"]) == {"CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP"}
        assert nusc.get("sample_data", s["data"]["LIDAR_TOP"])["timestamp"] == s["timestamp"]
        assert abs(nusc.get("sample_data", s["data"]["CAM_FRONT"])["timestamp"] - s["timestamp"]) <= 1e6 / 24
        assert abs(nusc.get("sample_data", s["data"]["RADAR_FRONT"])["timestamp"] - s["timestamp"]) <= 1e6 / 26

    rates = {"LIDAR_TOP": 20.0, "CAM_FRONT": 12.0, "RADAR_FRONT": 13.0}
    for channel, hz in rates.items():
        chain = _chain(nusc, samples[0]["data"][channel])
        periods = np.diff([sd["timestamp"] for sd in chain])
        assert np.all(np.abs(periods - 1e6 / hz) <= 1), channel
        for sd in chain:
            folder = "samples" if sd["is_key_frame"] else "sweeps"
            assert sd["filename"].startswith(f"{folder}/{channel}/")
            assert (folders["clear"] / sd["filename"]).is_file()
            sample = nusc.get("sample", sd["sample_token"])  # sweeps belong to the next key frame
            assert sd["timestamp"] <= nusc.get("sample_data", sample["data"][channel])["timestamp"]
    # LiDAR: 10 lead-in sweeps (0.5 s) + 10 per key-frame interval + the last key frame.
    assert len(_chain(nusc, samples[0]["data"]["LIDAR_TOP"])) == 10 + 10 * (KEYFRAMES - 1) + 1

    cam = nusc.get("sample_data", samples[0]["data"]["CAM_FRONT"])
    K = np.array(nusc.get("calibrated_sensor", cam["calibrated_sensor_token"])["camera_intrinsic"])
    assert (cam["width"], cam["height"]) == (400, 225)
    # Scaled CAM_FRONT intrinsics: f * 0.25, c -> (c + 0.5) * 0.25 - 0.5.
    np.testing.assert_allclose(K[[0, 0, 1], [0, 2, 2]],
                               [1266.417203046554 / 4, (816.2670197447984 + 0.5) / 4 - 0.5,
                                (491.50706579294757 + 0.5) / 4 - 0.5])
    summary = json.loads((folders["clear"] / "synthetic.json").read_text())
    assert summary["scenes"][0]["condition"] == "clear" and summary["noise"]["radar_range_sigma_m"] == 0.15


@pytest.mark.slow
def test_radar_files_look_like_nuscenes(nusc):
    RadarPointCloud.disable_filters()
    try:
        counts = []
        for s in nusc.sample:
            cloud = RadarPointCloud.from_file(nusc.get_sample_data_path(s["data"]["RADAR_FRONT"])).points
            assert cloud.shape[0] == 18 and np.all(cloud[2] == 0.0)  # no elevation
            assert np.allclose(cloud[:2], np.round(cloud[:2] / 0.2) * 0.2, atol=1e-4)  # 0.2 m grid
            counts.append(cloud.shape[1])
    finally:
        RadarPointCloud.default_filters()
    assert all(40 <= n <= radar.MAX_RETURNS for n in counts), counts
    filtered = [RadarPointCloud.from_file(nusc.get_sample_data_path(s["data"]["RADAR_FRONT"])).points.shape[1]
                for s in nusc.sample]
    assert all(f < n for f, n in zip(filtered, counts))  # the devkit's default filters drop some


@pytest.mark.slow
def test_exact_depth_agrees_with_projected_lidar(nusc, folders):
    medians, subpixel = [], []
    for s in nusc.sample:
        cam = s["data"]["CAM_FRONT"]
        sd = nusc.get("sample_data", cam)
        K = np.array(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])["camera_intrinsic"])
        hw = (sd["height"], sd["width"])
        exact = np.load(folders["clear"] / "exact_depth" / f"{cam}.npy")
        assert exact.shape == hw and exact.dtype == np.float32
        points = lidar_points_in_camera(nusc, s["data"]["LIDAR_TOP"], cam)
        lidar = lidar_depth_map(points, K, hw)
        both = (lidar > 0) & (exact > 0)
        assert both.sum() > 2000
        medians.append(np.median(np.abs(lidar[both] - exact[both])))
        # Inverse depth is bilinear on planes: interpolate it at each point's sub-pixel position.
        uv, depth, _ = project_points(points, K, hw)
        x0, y0 = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        ok = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < hw[1]) & (y0 + 1 < hw[0])
        x0, y0, fx, fy, depth = x0[ok], y0[ok], uv[ok, 0] - x0[ok], uv[ok, 1] - y0[ok], depth[ok]
        corners = np.stack([exact[y0, x0], exact[y0, x0 + 1], exact[y0 + 1, x0], exact[y0 + 1, x0 + 1]])
        valid = np.all(corners > 0, axis=0)
        weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
        inverse = np.sum(weights / np.where(corners > 0, corners, 1.0), axis=0)
        subpixel.append(np.median(np.abs(1.0 / inverse[valid] - depth[valid])))
    assert max(medians) < 0.05, medians
    assert max(subpixel) < 0.025, subpixel  # LiDAR range noise sigma 2 cm -> median |error| ~1.4 cm


@pytest.mark.slow
def test_radar_targets_lie_on_rendered_surfaces(nusc, folders):
    distances, range_errors = [], []  # distances in units of the expected radar position error
    kinds = np.zeros(3, dtype=int)
    for s in nusc.sample:
        cam, rad = s["data"]["CAM_FRONT"], s["data"]["RADAR_FRONT"]
        sd = nusc.get("sample_data", cam)
        K = np.array(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])["camera_intrinsic"])
        exact = np.load(folders["clear"] / "exact_depth" / f"{cam}.npy")
        fields = read_radar_pcd(nusc.get_sample_data_path(rad))
        truth = np.load(folders["clear"] / "radar_truth" / f"{rad}.npz")
        kinds += np.bincount(truth["kind"], minlength=3)
        target = truth["kind"] == radar.KIND_TARGET
        measured = np.hypot(fields["x"], fields["y"])
        range_errors.extend(measured[target] - truth["true_range"][target])

        # Camera surfaces (exact depth back-projected) in the radar frame, within 0.25 m of its plane.
        v, u = np.mgrid[0:exact.shape[0], 0:exact.shape[1]]
        rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(K).T
        surface_cam = (rays * exact[..., None])[exact > 0]
        T_cam_from_radar = camera_from_sensor(nusc, rad, cam)
        surface = transform_points(np.linalg.inv(T_cam_from_radar), surface_cam)
        tree = cKDTree(surface[np.abs(surface[:, 2]) < 0.25, :2])
        xyz = np.column_stack([fields["x"], fields["y"], fields["z"]]).astype(float)
        uv, depth, in_view = project_points(transform_points(T_cam_from_radar, xyz), K, exact.shape)
        # Seen by the camera too: nothing more than 1 m (>> the range noise) in front of it at its pixel.
        surface_depth = exact[np.floor(uv[:, 1] + 0.5).astype(int), np.floor(uv[:, 0] + 0.5).astype(int)]
        seen = np.zeros(len(xyz), dtype=bool)
        seen[np.flatnonzero(in_view)[(surface_depth == 0) | (surface_depth > depth - 1.0)]] = True
        static = np.hypot(fields["vx_comp"], fields["vy_comp"]) < 0.5  # camera and radar times differ
        # Within 60 m, where the 1/4-scale camera still samples surfaces densely enough for this check.
        chosen = target & static & seen & (measured < 60.0)
        distance, _ = tree.query(xyz[chosen, :2])
        # Expected error: range sigma, lateral r * azimuth sigma, and the 0.2 m grid (uniform, per axis).
        sigma = np.sqrt(radar.RANGE_SIGMA_M ** 2 + (measured[chosen] * np.radians(radar.AZIMUTH_SIGMA_DEG)) ** 2
                        + 2 * radar.XY_QUANTUM_M ** 2 / 12)
        distances.extend(distance / sigma)
    distances, range_errors = np.array(distances), np.array(range_errors)
    assert len(distances) >= 20
    # Range sigma 0.15 m, azimuth 0.3 deg, 0.2 m grid: a few decimetres from a surface seen at radar height.
    # Distance to the nearest surface <= the noise offset, so in sigma units: mostly < 1, rarely > 3.
    assert np.median(distances) < 1.0 and np.mean(distances < 3.0) > 0.9, np.sort(distances)
    assert abs(np.mean(range_errors)) < 0.06 and 0.1 < np.std(range_errors) < 0.25
    assert kinds[radar.KIND_CLUTTER] > 0 and kinds[radar.KIND_TARGET] > 2 * kinds[radar.KIND_CLUTTER]


@pytest.mark.parametrize("seed, driving", [(0, True), (3, False)])   # ego 11.2 m/s; ego standing still
def test_radar_velocities_follow_object_and_ego_motion(seed, driving):
    layout = make_layout(np.random.default_rng(seed), 2.0)
    assert (layout.ego_speed > 1) == driving, layout.ego_speed
    t = 1.0
    pose = layout.ego_to_world(t) @ calibration.sensor_to_ego("RADAR_FRONT")
    sweep = radar.sweep(layout, layout.primitives_at(t), t, pose, np.random.default_rng(0))
    f = sweep.fields
    target = sweep.kind == radar.KIND_TARGET
    u = np.column_stack([f["x"], f["y"]]) / np.hypot(f["x"], f["y"])[:, None]
    u_world = u @ pose[:2, :2].T
    v_obj = np.array([layout.objects[k].velocity for k in sweep.obj[target]])
    expected = np.sum(v_obj * u_world[target], axis=1)  # radial speed of the object over ground
    measured = np.sum(np.column_stack([f["vx_comp"], f["vy_comp"]])[target] * u[target], axis=1)
    # Quantisation 0.25 m/s, velocity sigma 0.1 m/s, 0.2 m position grid shifting u slightly.
    assert np.max(np.abs(measured - expected)) < 0.125 + 4 * 0.1 + 0.3
    assert np.median(np.abs(measured - expected)) < 0.15
    # Raw velocity of static objects: minus the radar's own radial speed, about -ego speed straight ahead.
    static = target & (np.hypot(f["vx_comp"], f["vy_comp"]) < 0.3)
    ahead = static & (np.abs(f["y"]) < 0.2 * f["x"])
    assert ahead.sum() >= 2, "no static return straight ahead: the check below would test nothing"
    # driving at 11.2 m/s that is about -11 m/s (a zero raw velocity would fail by far); standing still, 0
    assert np.allclose(f["vx"][ahead], -layout.ego_speed * u[ahead, 0] ** 2, atol=0.6)
    assert np.all(np.isin(f["dyn_prop"][target & ~static], [0, 2, 6]))


def _psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


@pytest.mark.slow
def test_conditions_degrade_camera_only(nusc, folders):
    from PIL import Image

    clear = folders["clear"]
    for name in ("fog", "night"):
        other = folders[name]
        for channel in ("RADAR_FRONT", "LIDAR_TOP"):
            files = sorted(p.relative_to(clear) for p in clear.glob(f"s*/{channel}/*"))
            assert files and files == sorted(p.relative_to(other) for p in other.glob(f"s*/{channel}/*"))
            for rel in files:  # sweeps included: identical bytes for the same seed
                assert (clear / rel).read_bytes() == (other / rel).read_bytes(), rel
        for s in nusc.sample:
            rel = nusc.get("sample_data", s["data"]["CAM_FRONT"])["filename"]
            a = np.asarray(Image.open(clear / rel).convert("L"))
            b = np.asarray(Image.open(other / rel).convert("L"))
            psnr = _psnr(b, a)
            assert psnr < 20.0, (name, psnr)
            if name == "fog":
                assert b.std() < 0.85 * a.std()
            else:
                assert b.mean() < 0.7 * a.mean()
        # Exact depth does not depend on the condition either.
        for depth in clear.glob("exact_depth/*.npy"):
            np.testing.assert_array_equal(np.load(depth), np.load(other / "exact_depth" / depth.name))


def test_calibration_is_the_nuscenes_rig(nuscenes_samples):
    frame = json.loads((nuscenes_samples / "frames.json").read_text())["frames"][0]
    rig = calibration.rig()
    for channel, (translation, rotation) in rig.sensor_to_ego.items():
        assert list(translation) == frame[channel]["sensor2ego"]["translation"]
        assert list(rotation) == frame[channel]["sensor2ego"]["rotation"]
    np.testing.assert_array_equal(rig.camera_K, frame["CAM_FRONT"]["camera_intrinsic"])


def test_idealised_rig_is_close_to_nuscenes(nuscenes_samples):
    """Without ../shared the stand-in rig projects points within a few pixels of the real one."""
    real = calibration.rig()
    point_ego = np.array([[20.0, 3.0, 1.0]])
    uv = {}
    for name, K, poses in (("real", real.camera_K, real.sensor_to_ego),
                           ("design", calibration.DESIGN_CAMERA_K, calibration.DESIGN_SENSOR_TO_EGO)):
        ego_to_cam = invert_transform(transform_from_pose(poses["CAM_FRONT"][1], poses["CAM_FRONT"][0]))
        uv[name], _, _ = project_points(transform_points(ego_to_cam, point_ego), K, calibration.CAMERA_HW)
    assert np.abs(uv["real"] - uv["design"]).max() < 15.0


def idealised_rig_log(caplog) -> list[tuple[int, str]]:
    """The rig read afresh, as it is the idealised one; what it logged, (level, message)."""
    calibration.rig.cache_clear()
    try:
        with caplog.at_level(logging.DEBUG, logger=calibration.LOG.name):
            rig = calibration.rig()
        assert rig.source == "idealised nuScenes-like rig"
        np.testing.assert_array_equal(rig.camera_K, calibration.DESIGN_CAMERA_K)
        return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == calibration.LOG.name]
    finally:
        calibration.rig.cache_clear()


def test_without_samples_the_idealised_rig_is_used_said_at_info_level(monkeypatch, tmp_path, caplog):
    """An installed package has no ../shared: loading the shipped checkpoint (whose parity frames are then a
    synthetic scene) logged a WARNING about a folder beside site-packages. Now INFO, naming the variable."""
    monkeypatch.setattr(calibration, "DEFAULT_SAMPLES_DIR", tmp_path / "absent")
    monkeypatch.delenv("XDRCDEPTH_NUSCENES_SAMPLES", raising=False)
    assert idealised_rig_log(caplog) == [(logging.INFO, f"no nuScenes samples in {tmp_path / 'absent'} "
                                          "(XDRCDEPTH_NUSCENES_SAMPLES names their folder): using an idealised "
                                          "nuScenes-like rig")]


def test_samples_that_are_there_but_unreadable_or_named_and_absent_are_a_warning(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(calibration, "DEFAULT_SAMPLES_DIR", tmp_path)
    monkeypatch.delenv("XDRCDEPTH_NUSCENES_SAMPLES", raising=False)
    (tmp_path / "frames.json").write_text('{"frames": []}')
    assert idealised_rig_log(caplog) == [(logging.WARNING, f"nuScenes calibration not readable "
                                          f"({tmp_path / 'frames.json'}: list index out of range); using an "
                                          "idealised nuScenes-like rig")]
    caplog.clear()
    monkeypatch.setattr(calibration, "DEFAULT_SAMPLES_DIR", tmp_path / "absent")
    monkeypatch.setenv("XDRCDEPTH_NUSCENES_SAMPLES", str(tmp_path / "absent"))
    ((level, message),) = idealised_rig_log(caplog)
    assert level == logging.WARNING and message.startswith(f"nuScenes calibration not readable "
                                                           f"({tmp_path / 'absent' / 'frames.json'}: [Errno 2]")


@pytest.mark.slow
def test_command_rejects_bad_input(folders, capsys):
    assert cli_main(["synth", "--out", str(folders["clear"]), "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["synth", "--out", "/tmp/x", "--conditions", "snow"])
    blocker = folders["clear"] / "v1.0-mini" / "scene.json"            # a file where a folder would go
    capsys.readouterr()
    assert cli_main(["synth", "--out", str(blocker / "out"), "--no-progress"]) == 1
    assert capsys.readouterr().err == (f"xdrcdepth synth: cannot write {blocker / 'out'}: a file is in the way "
                                       "(a folder is needed there) [Errno 20]\n")


def test_an_out_folder_that_is_a_file_is_a_bad_argument(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")        # was exit 1, "something is in the way (it already exists)"
    assert cli_main(["synth", "--out", str(tmp_path / "file"), "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth synth: cannot write into {tmp_path / 'file'}: it is a file, give a "
                                       "folder\n")
    assert [p.name for p in tmp_path.iterdir()] == ["file"] and (tmp_path / "file").read_text() == "mine"


@pytest.mark.parametrize("option, value, message", [
    ("--version", "{tmp}/elsewhere", "must be one folder name such as v1.0-mini, got '{tmp}/elsewhere'"),
    ("--version", "../up", "must be one folder name such as v1.0-mini, got '../up'"),
    ("--version", "", "must be one folder name such as v1.0-mini, got ''"),
    ("--version", "..", "must be one folder name such as v1.0-mini, got '..'"),
    ("--seed", "-1", "must be >= 0, got '-1'"),
])
def test_command_refuses_a_table_folder_outside_out_and_a_negative_seed(tmp_path, capsys, option, value, message):
    """Audit 2026-12-06: ``--version`` was joined to ``--out`` as it is, so an absolute path wrote the tables there,
    ``../up`` beside ``--out`` and ``""`` into ``--out`` itself, each with exit 0; ``--seed -1`` failed after the
    folder was begun as "expected non-negative integer", naming no option. Now argument errors, nothing written."""
    value, message = value.format(tmp=tmp_path), message.format(tmp=tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["synth", "--out", str(tmp_path / "out"), option, value, "--frames", "1", "--image-scale", "0.1",
                  "--no-camera-sweeps", "--no-progress"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"xdrcdepth synth: error: argument {option}: {message} (see --help)\n"
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_or_failed_synth_leaves_no_half_written_folder(tmp_path, monkeypatch, capsys):
    """Audit 2026-12-06: synth wrote in place, so a Ctrl-C or full disk half-way left ``--out`` with images but no
    tables, and the rerun the interrupt line advises was refused ("output folder is not empty"). The folder is now
    written under a hidden temporary name and renamed when complete: nothing is left, and a rerun works."""
    from fs_faults import file_size_limit
    from train_rig import cli

    from xdrcdepth_core.data.synthetic import writer

    real_write = writer.write_radar_pcd

    def write_then_interrupt(*args, **kwargs):        # Ctrl-C once the camera images and one radar file exist
        real_write(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "write_radar_pcd", write_then_interrupt)
    args = ["synth", "--out", str(tmp_path / "a" / "out"), "--frames", "1", "--image-scale", "0.1",
            "--no-camera-sweeps", "--no-progress"]
    assert cli_main(args) == 130
    assert capsys.readouterr().err.startswith("xdrcdepth synth: interrupted (SIGINT)")
    assert list((tmp_path / "a").iterdir()) == []                 # neither --out nor a temporary beside it
    monkeypatch.setattr(writer, "write_radar_pcd", real_write)
    assert cli_main(args) == 0
    assert (tmp_path / "a" / "out" / "v1.0-mini" / "sample.json").is_file()

    # a disk that fills up (a 64 kB file size limit: the first LiDAR sweep is ~0.5 MB) in a child process
    (tmp_path / "b").mkdir()
    proc = cli("synth", "--out", str(tmp_path / "b" / "out"), "--frames", "1", "--image-scale", "0.1",
               "--no-camera-sweeps", "--no-progress", preexec_fn=file_size_limit(64 * 1024))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"xdrcdepth synth: cannot write {tmp_path / 'b' / 'out'}: ") and \
        proc.stderr.endswith("[Errno 27]\n") and proc.stderr.count("\n") == 1, proc.stderr
    assert list((tmp_path / "b").iterdir()) == []


@pytest.mark.slow
def test_annotations_box_the_lidar_points(nusc):
    from nuscenes.utils.data_classes import LidarPointCloud
    from nuscenes.utils.geometry_utils import points_in_box

    assert len(nusc.sample_annotation) > 0
    checked = 0
    for s in nusc.sample:
        lidar_token = s["data"]["LIDAR_TOP"]
        cloud = LidarPointCloud.from_file(nusc.get_sample_data_path(lidar_token))
        _, boxes, _ = nusc.get_sample_data(lidar_token)  # boxes in the LiDAR frame
        by_token = {b.token: b for b in boxes}
        for token in s["anns"]:
            ann = nusc.get("sample_annotation", token)
            assert ann["category_name"] in ("vehicle.car", "vehicle.truck", "human.pedestrian.adult")
            assert ann["num_lidar_pts"] + ann["num_radar_pts"] > 0
            box = by_token[token]
            # Every counted point lies in the box (10 cm margin: 5 sigma of the range noise) ...
            box.wlh = box.wlh + 0.2
            assert points_in_box(box, cloud.points[:3]).sum() >= 0.98 * ann["num_lidar_pts"] - 1, ann
            # ... and the box holds no other points once its bottom is raised 11 cm (> 5 sigma) off the road.
            box.wlh = box.wlh - np.array([0.0, 0.0, 0.21])
            box.center = box.center + box.orientation.rotate([0.0, 0.0, 0.105])
            assert points_in_box(box, cloud.points[:3]).sum() <= ann["num_lidar_pts"] + 2, ann
            checked += ann["num_lidar_pts"] > 0
    assert checked >= 5


@pytest.mark.slow
def test_prepare_cache_matches_the_renderer(folders, tmp_path):
    """`xdrcdepth prepare` on a synthetic folder: LiDAR GT equals the exact depth, radar lies on surfaces."""
    cache = tmp_path / "cache"
    assert cli_main(["prepare", "--dataroot", str(folders["clear"]), "--version", "v1.0-mini",
                     "--out", str(cache)]) == 0
    files = sorted(cache.glob("*.npz"))
    assert len(files) == KEYFRAMES
    nusc = NuScenes("v1.0-mini", str(folders["clear"]), verbose=False)
    radar_errors = []
    for path in files:
        npz = np.load(path)
        cam = nusc.get("sample", str(npz["token"]))["data"]["CAM_FRONT"]
        exact = np.load(folders["clear"] / "exact_depth" / f"{cam}.npy")
        gt = npz["depth_gt"]
        both = (gt > 0) & (exact > 0)
        assert both.sum() > 2000
        assert np.median(np.abs(gt[both] - exact[both])) < 0.05
        radar_depth = npz["radar"][0]
        hit = (radar_depth > 0) & (exact > 0)
        radar_errors.extend(radar_depth[hit] - exact[hit])
    # radar: range sigma 0.15 m, no elevation (returns at the radar's height), clutter and ghosts included
    assert len(radar_errors) > 30
    assert np.median(np.abs(radar_errors)) < 0.5, np.sort(np.abs(radar_errors))


@pytest.mark.slow
def test_prepare_targets_agree_with_the_devkit(folders, nusc, tmp_path):
    """prepare's extra keys on a synthetic folder: exact depth copied, two LiDAR ground truths, boxes as the
    devkit projects them (boxes wholly in front of the camera), velocities rotated into the ego frame as the
    devkit would, confidence labels only where depth_gt has depth."""
    from nuscenes.utils.geometry_utils import BoxVisibility, view_points
    from pyquaternion import Quaternion

    from xdrcdepth_core.data.boxes import BOX_CATEGORIES

    caches = {}
    for sweeps in (1, 3):
        caches[sweeps] = tmp_path / f"cache{sweeps}"
        assert cli_main(["prepare", "--dataroot", str(folders["clear"]), "--version", "v1.0-mini",
                         "--out", str(caches[sweeps]), "--lidar-sweeps", str(sweeps)]) == 0
    compared = positives = 0
    for path in sorted(caches[3].glob("*.npz")):
        npz, single = np.load(path), np.load(caches[1] / path.name)
        assert "depth_gt_single" not in single.files
        np.testing.assert_array_equal(npz["depth_gt_single"], single["depth_gt"])
        assert np.count_nonzero(npz["depth_gt"]) > 1.5 * np.count_nonzero(single["depth_gt"])
        cam = nusc.get("sample", str(npz["token"]))["data"]["CAM_FRONT"]
        np.testing.assert_array_equal(npz["depth_exact"], np.load(folders["clear"] / "exact_depth" / f"{cam}.npy"))
        labels = npz["radar_confidence_gt"]
        assert set(np.unique(labels)) <= {0, 1, 255}
        np.testing.assert_array_equal(labels != 255, npz["depth_gt"] > 0)
        positives += int((labels == 1).sum())

        _, boxes, K = nusc.get_sample_data(cam, box_vis_level=BoxVisibility.ANY)
        ego = nusc.get("ego_pose", nusc.get("sample_data", cam)["ego_pose_token"])
        h, w = npz["image"].shape[:2]
        ours = npz["boxes"]
        for box in boxes:
            corners = box.corners()
            if box.name not in BOX_CATEGORIES or corners[2].min() < 0.1:
                continue
            uv = view_points(corners, K, normalize=True)[:2] + 0.5
            rect = [max(uv[0].min(), 0), max(uv[1].min(), 0), min(uv[0].max(), w), min(uv[1].max(), h)]
            match = ours[np.abs(ours[:, 4] - np.linalg.norm(box.center)) < 1e-3]
            assert len(match) == 1, box
            np.testing.assert_allclose(match[0, :4], rect, atol=1e-3)
            velocity = Quaternion(ego["rotation"]).inverse.rotate(nusc.box_velocity(box.token))
            np.testing.assert_allclose(match[0, 5:], np.nan_to_num(velocity[:2]), atol=1e-4)
            compared += 1
    assert compared >= 5 and positives > 100
