"""`xdrcdepth replay-eval`: recorded depth scored against the LiDAR of the bag that was played, on hand-built bags
whose every number is worked out by hand (ego-motion compensation, ego-car points, per-frame averaging, caps, the
radar-only baseline), the four-panel pictures, the JSON, and the exit codes of bad arguments and bags.

The rig: a 4 x 3 camera with K = [[1, 0, 1], [0, 1, 1], [0, 0, 1]] (pixel (u, v) = (X/Z + 1, Y/Z + 1) for an
optical point (X, Y, Z)), its optical frame rotated from base_link by the nuScenes quaternion [0.5, -0.5, 0.5,
-0.5] (optical (X, Y, Z) = base (-y, -z, x)); LiDAR and radar frames are base_link itself.
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from xdrcdepth_core.cli import main
from xdrcdepth_core.visualize import colorize_depth
from xdrcdepth_ros.bag.files import atomic_bag_writer
from xdrcdepth_ros.bag.nuscenes2bag import MessageFactory

S = 10**9
T_A, T_LIDAR_A, T_NONE, T_B = 1 * S, 1 * S + 20_000_000, 2 * S, 3 * S
K = np.array([[1.0, 0, 1], [0, 1, 1], [0, 0, 1]])
CAMERA_ROTATION = [0.5, -0.5, 0.5, -0.5]
GREY = 90

#: frame A: LiDAR 20 ms after the image while the ego moved 1 m forward, so every point is 1 m further from the
#: camera at the image's time than the sweep says: base (x, y, z) at the sweep -> optical (-y, -z, x + 1).
LIDAR_A = np.array([[10, 0, 0],        # optical (0, 0, 11): pixel (1, 1), 11 m
                    [20, -20, 0],      # (20, 0, 21): u = 1.95 -> pixel (2, 1), 21 m
                    [5, 5, 5],         # (-5, -5, 6): u = v = 0.17 -> pixel (0, 0), 6 m
                    [60, -60, -60],    # (60, 60, 61): pixel (2, 2), 61 m (beyond the 50 m cap)
                    [0.5, 0, 0],       # on the ego car (|x|, |y| < 1 m): dropped, else 1.5 m at pixel (1, 1)
                    [-10, 0, 0]],      # behind the camera
                   dtype=np.float32)
GT_A = {(0, 0): 6.0, (1, 1): 11.0, (1, 2): 21.0, (2, 2): 61.0}   # (row, col): metres
PRED_A = {(0, 0): 6.0, (1, 1): 14.0, (1, 2): 17.0, (2, 2): 61.0}  # errors 0, 3, 4, 0 m; ratios 1, 1.27, 1.24, 1
LIDAR_B = np.array([[10, 0, 0]], dtype=np.float32)              # frame B, same stamp as its image: 10 m at (1, 1)
PRED_B = {(1, 1): 11.0}                                          # error 1 m, ratio 1.1
RADAR_A = np.array([[8, 0, 0]], dtype=np.float32)               # at the image's stamp: 8 m at pixel (1, 1)


def depth_image(values: dict) -> np.ndarray:
    depth = np.full((3, 4), 30.0, dtype=np.float32)   # pixels without ground truth: never scored
    for pixel, value in values.items():
        depth[pixel] = value
    return depth


GARBAGE_CDR = b"\x00\x01\x00\x00garbage!"


def write_bag(path, messages, garbled=()):
    """A bag of ``(topic, msgtype, stamp_ns, rosbags message)``; connections in order of first use. The
    messages whose ``(topic, stamp)`` is in ``garbled`` are written as :data:`GARBAGE_CDR` instead."""
    factory = MessageFactory()
    with atomic_bag_writer(path) as writer:
        connections = {}
        for topic, msgtype, stamp, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=factory.typestore)
            writer.write(connections[topic], stamp,
                         GARBAGE_CDR if (topic, stamp) in garbled else factory.serialize(msg))
    return path


def source_messages(tmp_path):
    m = MessageFactory()
    png = tmp_path / "grey.png"
    PILImage.fromarray(np.full((3, 4, 3), GREY, np.uint8)).save(png)
    tf = "tf2_msgs/msg/TFMessage"
    cloud = "sensor_msgs/msg/PointCloud2"

    def pose(stamp, x):
        return "/tf", tf, stamp, m.tf_message([m.transform(stamp, "odom", "base_link", [1, 0, 0, 0], [x, 0, 0])])

    def points(topic, stamp, xyz):
        columns = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
        return topic, cloud, stamp, m.point_cloud(columns, m.header(stamp, topic[1:]), png)

    messages = [("/tf_static", tf, 0, m.tf_message([
        m.transform(0, "base_link", "cam_front", CAMERA_ROTATION, [0, 0, 0]),
        m.transform(0, "base_link", "lidar_top", [1, 0, 0, 0], [0, 0, 0]),
        m.transform(0, "base_link", "radar_front", [1, 0, 0, 0], [0, 0, 0])]))]
    for stamp in (T_A, T_NONE, T_B):
        header = m.header(stamp, "cam_front")
        image, size = m.compressed_image(png, header)
        messages += [("/cam_front/image_rect_compressed", "sensor_msgs/msg/CompressedImage", stamp, image),
                     ("/cam_front/camera_info", "sensor_msgs/msg/CameraInfo", stamp, m.camera_info(K, size, header))]
    messages += [pose(T_A, 0.0), points("/radar_front", T_A, RADAR_A), pose(T_LIDAR_A, 1.0),
                 points("/lidar_top", T_LIDAR_A, LIDAR_A), pose(T_B, 5.0), points("/lidar_top", T_B, LIDAR_B)]
    return sorted(messages, key=lambda item: item[2])


def output_messages(depths: dict):
    m = MessageFactory()
    image = m.types["sensor_msgs/msg/Image"]
    return [("/depth/image", "sensor_msgs/msg/Image", stamp,
             image(header=m.header(stamp, "cam_front"), height=3, width=4, encoding="32FC1", is_bigendian=0,
                   step=16, data=np.frombuffer(depth.tobytes(), np.uint8)))
            for stamp, depth in depths.items()]


@pytest.fixture
def bags(tmp_path):
    source = write_bag(tmp_path / "source", source_messages(tmp_path))
    output = write_bag(tmp_path / "output", output_messages(
        {T_A: depth_image(PRED_A), T_NONE: depth_image({}), T_B: depth_image(PRED_B)}))
    return source, output


def test_ground_truth_is_the_ego_motion_compensated_sweep_without_the_ego_car(bags):
    from xdrcdepth_ros.bag.source_frames import read_source_frames

    source, _ = bags
    frames = {f.stamp_ns: f for f in read_source_frames(source, [T_A, T_NONE, T_B, 5 * S], "cam_front", 0.1)}
    assert sorted(frames) == [T_A, T_NONE, T_B]                   # 5 s: no camera image with that stamp
    a = frames[T_A]
    np.testing.assert_array_equal(a.K, K)
    assert a.image.shape == (3, 4, 3) and np.all(a.image == GREY)
    np.testing.assert_allclose(a.lidar_depth, depth_image(GT_A) * (depth_image(GT_A) != 30), rtol=1e-6)
    assert (a.lidar_stamp_ns, a.radar_stamps_ns) == (T_LIDAR_A, [T_A])
    np.testing.assert_array_equal(a.radar_depth, depth_image({(1, 1): 8.0}) * (depth_image({(1, 1): 8.0}) != 30))
    assert frames[T_NONE].lidar_depth is None and frames[T_NONE].lidar_stamp_ns is None
    assert not frames[T_NONE].radar_depth.any() and frames[T_NONE].radar_stamps_ns == []
    assert frames[T_B].lidar_depth[1, 1] == 10.0 and np.count_nonzero(frames[T_B].lidar_depth) == 1


def test_a_cloud_beyond_the_slop_is_not_the_frames(bags):
    """LiDAR 20 ms after the image: with a 10 ms slop frame A has no LiDAR (and the radar is exact)."""
    from xdrcdepth_ros.bag.source_frames import nearest_within, read_source_frames

    frames = {f.stamp_ns: f for f in read_source_frames(bags[0], [T_A], "cam_front", 0.01)}
    assert frames[T_A].lidar_depth is None and frames[T_A].radar_stamps_ns == [T_A]
    assert nearest_within([10, 20, 40], 30, 10) == 20          # a tie goes to the earlier stamp
    assert nearest_within([10, 20, 40], 31, 10) == 40
    assert nearest_within([10, 20, 40], 51, 10) is None


def test_metrics_per_frame_and_overall_by_hand(bags, tmp_path, capsys):
    source, output = bags
    report_path, pictures = tmp_path / "eval.json", tmp_path / "frames"
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output), "--json",
                 str(report_path), "--frames", str(pictures)]) == 0
    report = json.loads(report_path.read_text())
    assert (report["depth_frames"], report["frames_with_lidar"], report["caps"]) == (3, 2, [50.0, 70.0, 80.0])
    a, none, b = report["frames"]
    assert (a["stamp_ns"], a["lidar_stamp_ns"], a["radar_stamps_ns"], a["gt_pixels"]) == (T_A, T_LIDAR_A, [T_A], 4)
    assert none["metrics"] is None and none["lidar_stamp_ns"] is None
    # frame A, 50 m cap: 6, 11, 21 m against 6, 14, 17 m
    at50 = a["metrics"]["model"]["50"]
    assert at50["valid_pixels"] == 3 and at50["mae"] == pytest.approx(7000 / 3)
    assert at50["rmse"] == pytest.approx(math.sqrt(25 / 3) * 1000)
    assert at50["abs_rel"] == pytest.approx((3 / 11 + 4 / 21) / 3) and at50["delta1"] == pytest.approx(2 / 3)
    # 80 m cap: the 61 m point too (error 0)
    at80 = a["metrics"]["model"]["80"]
    assert (at80["valid_pixels"], at80["mae"], at80["rmse"], at80["delta1"]) == (4, pytest.approx(1750),
                                                                                 pytest.approx(2500), 0.75)
    # radar only: 8 m everywhere (one return)
    assert a["metrics"]["radar_only"]["50"]["mae"] == pytest.approx(6000)            # 2, 3, 13 m
    assert a["metrics"]["radar_only"]["80"]["mae"] == pytest.approx(17750)           # and 53 m
    # frame B has no radar return: the baseline is 0 m, clipped to 1e-3 m by the protocol
    assert b["metrics"]["model"]["80"]["mae"] == pytest.approx(1000)
    assert b["metrics"]["radar_only"]["80"]["mae"] == pytest.approx(10000 - 1)
    # overall: the mean of the frames' values, not of their pixels ((1750 + 1000) / 2, not 8 m / 5)
    overall = report["overall"]
    assert overall["model"]["80"]["mae"] == pytest.approx(1375) and overall["model"]["80"]["images"] == 2
    assert overall["model"]["50"]["mae"] == pytest.approx((7000 / 3 + 1000) / 2)
    assert overall["radar_only"]["80"]["mae"] == pytest.approx((17750 + 9999) / 2)
    assert overall["model"]["80"]["delta1"] == pytest.approx((0.75 + 1) / 2)

    out = capsys.readouterr().out.splitlines()
    model_abs_rel = ((3 / 11 + 4 / 21) / 4 + 1 / 10) / 2
    radar_rmse = (math.sqrt((2**2 + 3**2 + 13**2 + 53**2) / 4) + 9.999) / 2
    radar_abs_rel = ((2 / 6 + 3 / 11 + 13 / 21 + 53 / 61) / 4 + 9.999 / 10) / 2
    number = r"\d+\.\d{3}"
    assert re.sub(number, "#", out[-1]) == ("replay-eval: 2 of 3 depth frames with LiDAR; 0-80 m: model MAE # m, "
                                            "RMSE # m, AbsRel #, d<1.25 # | radar_only MAE # m, RMSE # m, "
                                            "AbsRel #, d<1.25 #")
    assert [float(v) for v in re.findall(number, out[-1])] == pytest.approx(  # printed with 3 decimals
        [1.375, 1.75, model_abs_rel, 0.875, (17.75 + 9.999) / 2, radar_rmse, radar_abs_rel, 0.0], abs=6e-4)
    assert out[0].startswith("frame (0-80 m)") and "model:" in out[0] and "radar_only:" in out[0]
    assert out[1].split()[:3] == ["1.000000000", "4", "model:"] and "1750.0" in out[1] and "17750.0" in out[1]
    assert out[2].split()[:2] == ["2.000000000", "-"] and "no LiDAR" in out[2]
    assert "[model, ground truth: lidar]" in out and "[radar_only, ground truth: lidar]" in out

    names = sorted(p.name for p in pictures.glob("*.png"))
    assert names == ["1.000000000.png", "2.000000000.png", "3.000000000.png"]
    panel = np.asarray(PILImage.open(pictures / "1.000000000.png"))
    assert panel.shape == (1200, 1600, 3)                     # 2 x 2 tiles of 800 x 600 (the image's 4:3)
    # LiDAR tile (bottom right): pixel (1, 1) scaled by 200 has its centre at (300, 300), drawn 11 m's colour
    assert tuple(panel[600 + 300, 800 + 300]) == tuple(colorize_depth(np.array([[11.0]]))[0, 0])
    assert tuple(panel[600 + 450, 800 + 450]) == (GREY // 3,) * 3          # no point there: the dimmed image
    # radar tile (top right): the 8 m return at the same place, over the plain image
    assert tuple(panel[300, 800 + 300]) == tuple(colorize_depth(np.array([[8.0]]))[0, 0])
    assert tuple(panel[450, 800 + 450]) == (GREY,) * 3
    # prediction tile (bottom left): its top-right corner shows pixel (0, 3), 30 m like its neighbours
    assert tuple(panel[600 + 50, 750]) == tuple(colorize_depth(np.array([[30.0]]))[0, 0])
    no_lidar = np.asarray(PILImage.open(pictures / "2.000000000.png"))
    assert tuple(no_lidar[600 + 300, 800 + 300]) == (GREY // 3,) * 3


def test_no_lidar_anywhere_is_exit_1(bags, tmp_path, capsys):
    source, _ = bags
    output = write_bag(tmp_path / "none", output_messages({T_NONE: depth_image({})}))
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == "replay-eval: 0 of 1 depth frames with LiDAR: no metrics"
    assert captured.err == (f"xdrcdepth replay-eval: no depth frame has a LiDAR cloud within 0.1 s in {source}: "
                            "nothing scored\n")


def test_an_unwritable_output_is_named_with_exit_1(bags, tmp_path, capsys):
    source, output = bags
    (tmp_path / "file").write_text("")
    for flag in ("--frames", "--json"):
        target = tmp_path / "file" / "out"
        assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output), flag, str(target)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("xdrcdepth replay-eval: cannot write ") and str(tmp_path / "file") in err
        assert err.count("\n") == 1


@pytest.mark.parametrize("flag, in_the_way, problem, unwritable", [
    ("--json", Path.mkdir, "it is a folder, give a file name", "eval.json"),
    ("--frames", Path.touch, "it is a file, give a folder", "new/frames"),
])
def test_an_output_that_cannot_be_written_is_refused_before_any_scoring(bags, tmp_path, capsys, flag, in_the_way,
                                                                        problem, unwritable):
    """A black-box run: --json naming a folder, or a file in a read-only folder, failed only after every frame was
    scored and the tables printed (exit 1). Now before any work: a folder for --json (a file for the --frames
    folder) is exit 2, an unwritable folder exit 1, and nothing is made there."""
    from fs_faults import readonly_dir

    source, output = bags
    in_the_way(tmp_path / "report")
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output),
                 flag, str(tmp_path / "report")]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"xdrcdepth replay-eval: cannot write{' into' if flag == '--frames' else ''} "
                            f"{tmp_path / 'report'}: {problem}\n") and captured.out == ""
    with readonly_dir(tmp_path / "ro") as ro:
        assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output),
                     flag, str(ro / unwritable)]) == 1
        assert list(ro.iterdir()) == []
    captured = capsys.readouterr()
    assert captured.err.startswith(f"xdrcdepth replay-eval: cannot write {ro / unwritable}: ") and \
        ("[Errno 30]" in captured.err or "[Errno 13]" in captured.err) and captured.out == ""   # mount or chmod


def test_an_output_in_a_bag_it_reads_is_refused_and_the_bag_unchanged(bags, tmp_path, capsys):
    """--json over the source bag's data file (it wrote JSON over it, exit 0) or --frames into the recording's
    folder (a bag folder holds only the bag's files): refused before any work, one line, exit 2."""
    source, output = bags
    data = next(p for p in source.iterdir() if p.suffix in (".mcap", ".db3"))
    before = {p: p.read_bytes() for p in (*source.iterdir(), *output.iterdir())}
    for flag, target, bag, option in (("--json", data, source, "--source-bag"),
                                      ("--frames", output, output, "--output-bag"),
                                      ("--frames", output / "pictures", output, "--output-bag")):
        assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output), flag, str(target)]) == 2
        assert capsys.readouterr().err == (f"xdrcdepth replay-eval: error: argument {flag}: {target} is in the "
                                           f"{option} folder {bag}: write it elsewhere\n")
    assert {p: p.read_bytes() for p in (*source.iterdir(), *output.iterdir())} == before


@pytest.mark.parametrize("case", ["source missing", "output missing", "no depth", "other bag", "not a bag",
                                  "other camera"])
def test_bad_bags_are_named_with_exit_2(bags, tmp_path, capsys, case):
    source, output = bags
    camera = []
    if case == "other camera":    # a black-box run: the wrong --camera read 'not the bag that was played?'
        camera = ["--camera", "cam_mine"]
        expected = f"{source} has no /cam_mine/image_rect_compressed (--camera cam_mine); its cameras: cam_front\n"
    elif case == "source missing":
        source = tmp_path / "absent"
        expected = f"bag {source} does not exist"
    elif case == "output missing":
        output = tmp_path / "absent"
        expected = f"bag {output} does not exist"
    elif case == "no depth":
        output = source
        expected = f"{source} holds no /depth/image message"
    elif case == "other bag":
        output = write_bag(tmp_path / "other", output_messages({5 * S: depth_image({})}))
        expected = f"no depth image of {output} has a camera image with its stamp in {source}"
    else:
        (tmp_path / "folder").mkdir()
        output = tmp_path / "folder"
        expected = f"bag {output} has no metadata.yaml"
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output), *camera]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"xdrcdepth replay-eval: {expected}") and captured.err.count("\n") == 1


def _output_with_frame_none_replaced(tmp_path, name, raw=None, msg=None):
    """The fixture's output bag with frame T_NONE's message replaced: raw CDR bytes, or another message."""
    messages = output_messages({T_A: depth_image(PRED_A), T_NONE: depth_image({}), T_B: depth_image(PRED_B)})
    m = MessageFactory()
    with atomic_bag_writer(tmp_path / name) as writer:
        connection = writer.add_connection("/depth/image", "sensor_msgs/msg/Image", typestore=m.typestore)
        for topic, msgtype, stamp, good in messages:
            if stamp != T_NONE:
                writer.write(connection, stamp, m.serialize(good))
            else:
                writer.write(connection, stamp, raw if raw is not None else m.serialize(msg))
    return tmp_path / name


@pytest.mark.parametrize("case", ["garbage CDR", "data shorter than height x step", "another size"])
def test_a_malformed_depth_message_is_skipped_and_counted(bags, tmp_path, capsys, case):
    source, _ = bags
    if case == "garbage CDR":
        output = _output_with_frame_none_replaced(tmp_path, "bad", raw=GARBAGE_CDR)
        why = "/depth/image at bag time 2.000000000: cannot deserialize 12 bytes"
    elif case == "another size":   # 2 x 2 for the 4 x 3 camera: not its depth; the other frames are still scored
        image = MessageFactory().types["sensor_msgs/msg/Image"]
        small = image(header=MessageFactory().header(T_NONE, "cam_front"), height=2, width=2, encoding="32FC1",
                      is_bigendian=0, step=8, data=np.zeros(16, np.uint8))
        output = _output_with_frame_none_replaced(tmp_path, "bad", msg=small)
        why = f"depth image 2.000000000 is 2x2, its camera image in {source} 4x3"
    else:
        image = MessageFactory().types["sensor_msgs/msg/Image"]
        short = image(header=MessageFactory().header(T_NONE, "cam_front"), height=3, width=4, encoding="32FC1",
                      is_bigendian=0, step=16, data=np.zeros(20, np.uint8))
        output = _output_with_frame_none_replaced(tmp_path, "bad", msg=short)
        why = "depth image 2.000000000: 20 data bytes < height 3 x step 16"
    report_path = tmp_path / "eval.json"
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output), "--json",
                 str(report_path)]) == 0
    captured = capsys.readouterr()
    summary = captured.out.splitlines()[-1]
    assert summary.startswith("replay-eval: 2 of 2 depth frames with LiDAR (1 malformed message skipped); 0-80 m: "
                              "model MAE 1.375 m")           # frames A and B as in the by-hand test
    assert captured.err.startswith(f"xdrcdepth replay-eval: skipped 1 malformed message(s) in {output}: {why}")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    report = json.loads(report_path.read_text())
    assert report["depth_frames"] == 2 and len(report["malformed_messages"]) == 1
    assert report["malformed_messages"][0].startswith(why)


def test_every_depth_message_malformed_is_exit_2_naming_the_bag(bags, tmp_path, capsys):
    source, _ = bags
    m = MessageFactory()
    with atomic_bag_writer(tmp_path / "allbad") as writer:
        connection = writer.add_connection("/depth/image", "sensor_msgs/msg/Image", typestore=m.typestore)
        writer.write(connection, T_A, b"garbage")
    output = tmp_path / "allbad"
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xdrcdepth replay-eval: {output} holds no readable /depth/image message (1 malformed: "
                          "/depth/image at bag time 1.000000000: cannot deserialize 7 bytes")
    assert err.count("\n") == 1


def test_a_camera_image_on_the_depth_topic_is_named_by_its_encoding(bags, tmp_path, capsys):
    source, _ = bags
    m = MessageFactory()
    image = m.types["sensor_msgs/msg/Image"]
    output = write_bag(tmp_path / "rgb", [("/depth/image", "sensor_msgs/msg/Image", T_A, image(
        header=m.header(T_A, "cam_front"), height=3, width=4, encoding="rgb8", is_bigendian=0, step=12,
        data=np.zeros(36, np.uint8)))])
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output)]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth replay-eval: depth image 1.000000000 in {output} has encoding "
                                       "'rgb8', which is not a depth encoding (the depth node publishes 32FC1, "
                                       "metres; 16UC1, millimetres, is read too)\n")


def _damage_first_chunk(bag, part):
    """Flip bytes of the first MCAP chunk of ``bag``: its CRC field ("crc": the records fail their checksum)
    or the first bytes of its compressed records ("data": not a zstd frame any more)."""
    mcap = next(bag.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    at = 8                                                   # after the magic: records of op (1) + length (8)
    while data[at] != 0x06:
        at += 9 + int.from_bytes(data[at + 1:at + 9], "little")
    body = at + 9                                            # start, end, size (3 x 8), crc (4), compression
    if part == "crc":
        data[body + 24] ^= 0xFF
    else:
        name_len = int.from_bytes(data[body + 28:body + 32], "little")
        records = body + 32 + name_len + 8
        data[records:records + 4] = bytes(b ^ 0xFF for b in data[records:records + 4])
    mcap.write_bytes(bytes(data))


@pytest.mark.parametrize("which", ["source", "output"])
@pytest.mark.parametrize("part", ["crc", "data"])
def test_a_damaged_bag_file_is_named_with_exit_2(bags, capsys, which, part):
    source, output = bags
    damaged = source if which == "source" else output
    _damage_first_chunk(damaged, part)
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xdrcdepth replay-eval: cannot read bag {damaged}: ") and err.count("\n") == 1
    assert err.rstrip().endswith(f"(the file is damaged; 'xdrcdepth bag-reindex {damaged}' rebuilds it from its "
                                 "intact chunks)")


def test_a_source_message_that_does_not_deserialize_names_the_bag_with_exit_2(bags, tmp_path, capsys):
    _, output = bags
    source = write_bag(tmp_path / "garbled_source", source_messages(tmp_path),
                       garbled={("/cam_front/camera_info", T_NONE)})
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xdrcdepth replay-eval: {source}: /cam_front/camera_info at bag time 2.000000000: "
                          "cannot deserialize 12 bytes") and err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [[], ["--source-bag", "s"], ["--source-bag", "s", "--output-bag", "o", "--slop", "0"],
                                  ["--source-bag", "s", "--output-bag", "o", "--caps", "50", "nan"],
                                  ["--source-bag", "s", "--output-bag", "o", "--max-depth", "-1"],
                                  ["--source-bag", "s", "--output-bag", "o", "--unknown"]])
def test_bad_arguments_one_line_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["replay-eval", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("xdrcdepth replay-eval: error: ") and err.count("\n") == 1


@pytest.mark.slow
def test_real_bag_ground_truth_equals_the_datasets(tmp_path, nuscenes_samples):
    """On the real scene-0061 bag, key frame 0's LiDAR ground truth and radar raster from the bag's TF are the
    nuScenes dataset's (devkit poses, no radar filters: the node gets every return) pixel for pixel."""
    from xdrcdepth_core.data.nuscenes_dataset import NuScenesDepthDataset
    from xdrcdepth_core.data.real_samples import assemble_real_samples
    from xdrcdepth_ros.bag.nuscenes2bag import main as nuscenes2bag
    from xdrcdepth_ros.bag.replay_demo import read_input_stamps
    from xdrcdepth_ros.bag.source_frames import read_source_frames

    root = assemble_real_samples(tmp_path / "real")
    assert nuscenes2bag(["--dataroot", str(root), "--scene", "scene-0061", "--out", str(tmp_path / "bag"),
                         "--no-progress"]) == 0
    frames = list(read_source_frames(tmp_path / "bag", read_input_stamps(tmp_path / "bag"), "cam_front", 0.1))
    assert len(frames) == 6 and [f.lidar_depth is not None for f in frames].count(True) == 1
    (frame,) = [f for f in frames if f.lidar_depth is not None]
    sample = NuScenesDepthDataset(root, split="all", require_lidar=False, disable_radar_filters=True)[0]
    assert frame.stamp_ns // 1000 == 1532402927612460 and np.count_nonzero(sample["depth_gt"]) > 1000
    np.testing.assert_array_equal(frame.lidar_depth, sample["depth_gt"])
    np.testing.assert_array_equal(frame.radar_depth, sample["radar"][0])


def _source_with_lidar_b(tmp_path, cloud):
    """The fixture's source bag with frame B's LiDAR cloud replaced by ``cloud`` (a rosbags PointCloud2)."""
    messages = [(topic, msgtype, stamp, cloud if (topic, stamp) == ("/lidar_top", T_B) else msg)
                for topic, msgtype, stamp, msg in source_messages(tmp_path)]
    return write_bag(tmp_path / "source_b", messages)


def _cloud(xyz, stamp=T_B, png=None):
    m = MessageFactory()
    return m.point_cloud({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}, m.header(stamp, "lidar_top"), png)


@pytest.mark.parametrize("points, gt_pixels", [(np.zeros((0, 3), np.float32), 0),         # an empty sweep
                                               (np.array([[-10, 0, 0]], np.float32), 0),  # behind the camera
                                               (np.array([[90, 0, 0]], np.float32), 1)])  # 90 m: beyond every cap
def test_a_lidar_cloud_without_ground_truth_in_the_image_is_not_scored(tmp_path, capsys, points, gt_pixels):
    """Frame B has a LiDAR cloud within slop, but no point of it gives a ground-truth pixel under the largest
    cap: nothing to score (no NaN metrics, no exit 0), and the message says the cloud was there."""
    source = _source_with_lidar_b(tmp_path, _cloud(points))
    output = write_bag(tmp_path / "output_b", output_messages({T_B: depth_image(PRED_B)}))
    report_path = tmp_path / "eval.json"
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output), "--json",
                 str(report_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == "replay-eval: 0 of 1 depth frames with LiDAR: no metrics"
    assert "nan" not in captured.out
    assert captured.err == (f"xdrcdepth replay-eval: no depth frame has a LiDAR cloud within 0.1 s in {source} "
                            "with a point in its image within 0-80 m (1 frame(s) have a cloud): nothing scored\n")
    report = json.loads(report_path.read_text())
    assert report["frames_with_lidar"] == 0 and report["frames"][0]["lidar_stamp_ns"] == T_B
    assert report["frames"][0]["gt_pixels"] == gt_pixels


@pytest.mark.parametrize("case", ["truncated", "integer x"])
def test_a_malformed_lidar_cloud_names_the_bag_frame_and_cloud(tmp_path, capsys, case):
    """The LiDAR cloud gets the node's cloud checks (as the radar does): data shorter than its rows, or x y z
    that are not floats (metres), is one line naming the bag, the camera frame and the cloud, exit 2."""
    if case == "truncated":
        cloud = _cloud(LIDAR_B)
        cloud.data = cloud.data[:6]                        # one point of 3 float32 needs 12 bytes
        why = "6 data bytes < row_step 12 x height 1"
    else:
        cloud = _cloud(LIDAR_B.astype(np.int32))
        why = "fields ['x', 'y', 'z'] are not FLOAT32/FLOAT64 (metres)"
    source = _source_with_lidar_b(tmp_path, cloud)
    output = write_bag(tmp_path / "output_b", output_messages({T_B: depth_image(PRED_B)}))
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output)]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth replay-eval: {source}: camera frame 3.000000000: /lidar_top "
                                       f"cloud 3.000000000: {why}\n")


def test_a_camera_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, capsys):
    """A 2.5 kB PNG in the source bag that declares 5000 x 4000 pixels (60 MB as RGB; 12000 x 12000 would be
    432 MB) is refused from its header at the depth node's max_image_pixels (4096 x 4096), not decoded."""
    big = tmp_path / "big.png"
    PILImage.new("1", (5000, 4000)).save(big)
    m = MessageFactory(max_image_pixels=10**9)
    image, _ = m.compressed_image(big, m.header(T_B, "cam_front"))
    messages = [(topic, msgtype, stamp, image if (topic, stamp) == ("/cam_front/image_rect_compressed", T_B) else msg)
                for topic, msgtype, stamp, msg in source_messages(tmp_path)]
    source = write_bag(tmp_path / "source_big", messages)
    output = write_bag(tmp_path / "output_b", output_messages({T_B: depth_image(PRED_B)}))
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output)]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth replay-eval: {source}: camera frame 3.000000000: image_too_large: "
                                       "compressed PNG of 5000x4000 = 20000000 pixels > max_image_pixels 16777216 "
                                       "(not decoded)\n")


def test_16uc1_millimetre_depth_is_scored_as_metres(bags, tmp_path):
    """REP 118's other depth encoding (depth_image_proc, most depth cameras): 16UC1 in millimetres. The by-hand
    frames A and B as millimetres score what they score as 32FC1 metres (model MAE 1.75 m and 1 m at 80 m)."""
    source, _ = bags
    m = MessageFactory()
    image = m.types["sensor_msgs/msg/Image"]
    mm = {stamp: (depth_image(values) * 1000).astype(np.uint16) for stamp, values in ((T_A, PRED_A), (T_B, PRED_B))}
    output = write_bag(tmp_path / "mm", [("/depth/image", "sensor_msgs/msg/Image", stamp, image(
        header=m.header(stamp, "cam_front"), height=3, width=4, encoding="16UC1", is_bigendian=0, step=8,
        data=np.frombuffer(depth.tobytes(), np.uint8))) for stamp, depth in mm.items()])
    report_path = tmp_path / "eval.json"
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output), "--json",
                 str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    a, b = report["frames"]
    assert a["metrics"]["model"]["80"]["mae"] == pytest.approx(1750) and a["metrics"]["model"]["80"]["delta1"] == 0.75
    assert a["metrics"]["model"]["50"]["mae"] == pytest.approx(7000 / 3)
    assert b["metrics"]["model"]["80"]["mae"] == pytest.approx(1000)
    assert report["overall"]["model"]["80"]["mae"] == pytest.approx(1375)


def test_a_depth_topic_of_another_type_is_named_by_its_type(bags, tmp_path, capsys):
    """/depth/image recorded as CompressedImage (a compressedDepth republisher under the raw name, say): its
    bytes are not Images, so they are not read as such; the line names the type instead of a CDR error."""
    source, _ = bags
    m = MessageFactory()
    compressed = m.types["sensor_msgs/msg/CompressedImage"]
    output = write_bag(tmp_path / "compressed", [
        ("/depth/image", "sensor_msgs/msg/CompressedImage", stamp,
         compressed(header=m.header(stamp, "cam_front"), format="16UC1; compressedDepth png",
                    data=np.zeros(8, np.uint8))) for stamp in (T_A, T_B)])
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output)]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth replay-eval: {output} holds no readable /depth/image message (1 "
                                       "malformed: /depth/image has type sensor_msgs/msg/CompressedImage, not "
                                       "sensor_msgs/msg/Image (2 message(s) not read))\n")


def test_a_second_depth_image_with_the_same_stamp_is_counted_not_silently_dropped(bags, tmp_path, capsys):
    """Two depth images answer camera frame A (a looped bag, two nodes on /depth/image): the first is scored
    (frame A's by-hand numbers), the second is skipped and counted, and no frame is lost from the count."""
    source, _ = bags
    messages = output_messages({T_A: depth_image(PRED_A)})
    (topic, msgtype, _, second), = output_messages({T_A: depth_image({(1, 1): 1.0})})
    output = write_bag(tmp_path / "twice", [*messages, (topic, msgtype, T_A + 5 * S, second)])
    report_path = tmp_path / "eval.json"
    assert main(["replay-eval", "--source-bag", str(source), "--output-bag", str(output), "--json",
                 str(report_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].startswith("replay-eval: 1 of 1 depth frames with LiDAR (1 malformed "
                                                    "message skipped); 0-80 m: model MAE 1.750 m")
    assert captured.err.startswith(f"xdrcdepth replay-eval: skipped 1 malformed message(s) in {output}: /depth/image "
                                   "at bag time 6.000000000: header stamp 1.000000000 again (the first depth image "
                                   "with it is kept)")
    assert json.loads(report_path.read_text())["frames"][0]["metrics"]["model"]["80"]["mae"] == pytest.approx(1750)


def test_a_recordings_depth_images_wait_on_disk_not_in_memory(tmp_path):
    """16 depth images of 256 x 512 (8 MiB of pixels) read back from the output bag cost well under 1 MiB of
    memory until each is looked up (held as messages they cost all 8: a long recording's frames exceeded RAM),
    and a lookup gives the recorded pixels."""
    import tracemalloc

    from xdrcdepth_ros.bag.replay_demo import read_recording

    m = MessageFactory()
    image = m.types["sensor_msgs/msg/Image"]
    depths = {(i + 1) * S: np.full((256, 512), i + 0.5, np.float32) for i in range(16)}
    output = write_bag(tmp_path / "big", [
        ("/depth/image", "sensor_msgs/msg/Image", stamp,
         image(header=m.header(stamp, "cam_front"), height=256, width=512, encoding="32FC1", is_bigendian=0,
               step=2048, data=np.frombuffer(depth.tobytes(), np.uint8))) for stamp, depth in depths.items()])
    read_recording(output).depth.close()        # imports and first-use caches are not what is measured
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        recording = read_recording(output)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(recording.depth) == 16 and sorted(recording.depth) == sorted(depths) and 3 * S in recording.depth
    assert held < 2**20, f"{held / 2**20:.1f} MiB held after reading 8 MiB of depth images"
    msg = recording.depth[3 * S]
    assert (msg.height, msg.width, msg.encoding) == (256, 512, "32FC1")
    assert np.array_equal(np.frombuffer(bytes(msg.data), np.float32).reshape(256, 512), depths[3 * S])
