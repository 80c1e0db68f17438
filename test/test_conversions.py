"""Message <-> numpy conversions of the node, against hand-built messages and real nuScenes radar."""

import io
import json
import sys

import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField, RegionOfInterest
from std_msgs.msg import Header

from xdrcdepth_core.data.radar_pcd import RADAR_FIELDS, RADAR_RECORD_DTYPE, read_radar_pcd
from xdrcdepth_ros.node import conversions as conv
from xdrcdepth_ros.node.conversions import BadInput

# 2 x 3 RGB pattern: every pixel different, every channel different
RGB = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                [[10, 20, 30], [40, 50, 60], [70, 80, 90]]], dtype=np.uint8)
HEADER = Header(frame_id="cam_optical")


def raw_image(pixels: np.ndarray, encoding: str, pad: int = 0) -> Image:
    """An Image whose rows are padded by ``pad`` bytes (step > width x bytes per pixel)."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((h, pad), 7, np.uint8)], axis=1)
    msg = Image(header=HEADER, height=h, width=w, encoding=encoding, step=padded.shape[1])
    msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize("encoding,pixels", [
    ("rgb8", RGB),
    ("bgr8", RGB[:, :, ::-1]),
    ("rgba8", np.concatenate([RGB, np.full((2, 3, 1), 9, np.uint8)], axis=2)),
    ("bgra8", np.concatenate([RGB[:, :, ::-1], np.full((2, 3, 1), 9, np.uint8)], axis=2)),
])
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_to_rgb(encoding, pixels, pad):
    out = conv.rgb_from_image(raw_image(np.ascontiguousarray(pixels), encoding, pad))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, RGB)


def test_mono8_replicates_grey():
    grey = RGB[:, :, 1].copy()
    out = conv.rgb_from_image(raw_image(grey, "mono8", pad=1))
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))


@pytest.mark.parametrize("mutate,reason", [
    (lambda m: setattr(m, "encoding", "yuv422"), "unsupported_encoding"),
    (lambda m: setattr(m, "encoding", "16UC1"), "unsupported_encoding"),
    (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "truncated_image"),
    (lambda m: setattr(m, "step", 8), "bad_image"),
    (lambda m: setattr(m, "width", 0), "bad_image"),
    (lambda m: setattr(m, "encoding", "rgb16"), "unsupported_encoding"),
])
def test_bad_images_are_rejected_with_reason(mutate, reason):
    msg = raw_image(RGB, "rgb8")
    mutate(msg)
    with pytest.raises(BadInput) as err:
        conv.rgb_from_image(msg)
    assert err.value.reason == reason


def compressed(fmt: str, pixels=RGB, **save) -> CompressedImage:
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format=fmt, **save)
    msg = CompressedImage(header=HEADER, format=fmt.lower())
    msg.data = buf.getvalue()
    return msg


def test_png_is_lossless_and_jpeg_matches_pil():
    np.testing.assert_array_equal(conv.rgb_from_compressed(compressed("PNG")), RGB)
    v, u = np.mgrid[0:16, 0:24]
    big = np.stack([u * 10, v * 15, 255 - u * 10], axis=2).astype(np.uint8)    # smooth gradients
    msg = compressed("JPEG", big, quality=90)
    expected = np.asarray(PILImage.open(io.BytesIO(bytes(msg.data))).convert("RGB"))
    out = conv.rgb_from_compressed(msg)
    np.testing.assert_array_equal(out, expected)
    assert np.abs(out.astype(int) - big).mean() < 4           # and it is the picture we sent


def scan_cut_short(jpeg: bytes) -> bytes:
    """A JPEG whose entropy-coded scan stops half-way, EOI appended (libjpeg fills the rest with grey)."""
    scan = jpeg.index(b"\xff\xda")
    return jpeg[: scan + (len(jpeg) - scan) // 2] + b"\xff\xd9"


@pytest.mark.parametrize("make,reason", [
    (lambda: CompressedImage(format="jpeg", data=b"not an image"), "bad_compressed"),
    (lambda: CompressedImage(format="jpeg", data=bytes(compressed(
        "JPEG", np.full((64, 64, 3), 128, np.uint8)).data)[:200]), "bad_compressed"),
    (lambda: CompressedImage(format="jpeg", data=scan_cut_short(bytes(compressed(
        "JPEG", np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).data))),
     "bad_compressed"),
    (lambda: compressed("GIF"), "unsupported_encoding"),
    (lambda: compressed("PNG", np.full((8, 8), 3000, np.uint16)), "unsupported_encoding"),   # a depth map
    # compressed_depth_image_transport: a 12-byte ConfigHeader (format enum, two floats), then a 16-bit PNG
    (lambda: CompressedImage(format="16UC1; compressedDepth png", data=bytes(12) + bytes(compressed(
        "PNG", np.full((8, 8), 3000, np.uint16)).data)), "unsupported_encoding"),
    (lambda: CompressedImage(format="", data=bytes(12) + bytes(compressed(
        "PNG", np.full((8, 8), 3000, np.uint16)).data)), "unsupported_encoding"),
    (lambda: CompressedImage(format="32FC1; compressedDepth rvl", data=bytes(40)), "unsupported_encoding"),
])
def test_bad_compressed_images(make, reason):
    with pytest.raises(BadInput) as err:
        conv.rgb_from_compressed(make())
    assert err.value.reason == reason
    assert " at 0x" not in err.value.detail   # no object address (PIL's "cannot identify <BytesIO at 0x..>")


def test_a_16_bit_png_is_refused_not_clipped_to_white():
    with pytest.raises(BadInput) as err:
        conv.rgb_from_compressed(compressed("PNG", np.full((8, 8), 3000, np.uint16)))
    assert err.value.detail == ("compressed PNG with I;16 samples (only 8-bit images are camera input) "
                                "(format field 'png')")
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    np.testing.assert_array_equal(conv.rgb_from_compressed(compressed("PNG", grey)), np.repeat(grey[..., None], 3, 2))


def camera_info(w=352, h=176, k=(100.0, 0.0, 176.0, 0.0, 100.0, 88.0, 0.0, 0.0, 1.0), p=None):
    p = [*k[0:3], 0.0, *k[3:6], 0.0, *k[6:9], 0.0] if p is None else p     # [K|0] unless given
    return CameraInfo(header=HEADER, width=w, height=h, k=list(k), distortion_model="plumb_bob",
                      d=[0.0] * 5, p=list(p))


def test_intrinsics_and_size_checks():
    K = conv.intrinsics_from_camera_info(camera_info(), (176, 352))
    np.testing.assert_array_equal(K, [[100, 0, 176], [0, 100, 88], [0, 0, 1]])
    with pytest.raises(BadInput) as err:
        conv.intrinsics_from_camera_info(camera_info(), (900, 1600))
    assert err.value.reason == "camera_info_size_mismatch"
    with pytest.raises(BadInput) as err:
        conv.intrinsics_from_camera_info(camera_info(k=[0.0] * 9), (176, 352))
    assert err.value.reason == "bad_camera_info"
    with pytest.raises(BadInput) as err:
        conv.intrinsics_from_camera_info(camera_info(k=[np.nan] + [0.0] * 7 + [1.0]), (176, 352))
    assert err.value.reason == "bad_camera_info"


def test_a_rectified_image_uses_p_as_image_geometry_does():
    # image_proc's image_rect comes with the raw camera's K and D and the rectified projection P: the image's
    # pixels follow P (fx' = 90, cx' = 170, ...), K describes the distorted raw image
    raw_k = (100.0, 0.0, 176.0, 0.0, 101.0, 88.0, 0.0, 0.0, 1.0)
    rect_p = (90.0, 0.0, 170.0, -9.0, 0.0, 91.0, 85.0, 0.0, 0.0, 0.0, 1.0, 0.0)     # Tx = -9 (stereo): not used
    info = camera_info(k=raw_k, p=rect_p)
    info.d = [-0.3, 0.1, 0.0, 0.0, 0.0]
    np.testing.assert_array_equal(conv.intrinsics_from_camera_info(info, (176, 352)),
                                  [[90, 0, 170], [0, 91, 85], [0, 0, 1]])
    # P unset (all zero): K; K all zero: uncalibrated even when P is set (image_geometry checks K)
    np.testing.assert_array_equal(conv.intrinsics_from_camera_info(camera_info(k=raw_k, p=[0.0] * 12), (176, 352)),
                                  np.reshape(raw_k, (3, 3)))
    for k, p, name in (([0.0] * 9, rect_p, "K"), (raw_k, [90.0, 0, 170, 0, 0, 0, 85, 0, 0, 0, 1, 0], "P")):
        with pytest.raises(BadInput, match=f" {name} ") as err:
            conv.intrinsics_from_camera_info(camera_info(k=k, p=p), (176, 352))
        assert err.value.reason == "bad_camera_info"


def test_binning_and_roi_reduce_the_intrinsics_as_image_geometry_does():
    # a 1600 x 900 sensor, fx = fy = 1000, principal point (800, 450); image_proc's crop_decimate sends its
    # ROI 1200 x 600 at (100, 50), binned 2 x 2: a 600 x 300 image with fx = 1000 / 2, cx = (800 - 100) / 2 = 350,
    # cy = (450 - 50) / 2 = 200
    k = (1000.0, 0.0, 800.0, 0.0, 1000.0, 450.0, 0.0, 0.0, 1.0)
    info = camera_info(w=1600, h=900, k=k)
    info.binning_x = info.binning_y = 2
    info.roi = RegionOfInterest(x_offset=100, y_offset=50, width=1200, height=600)
    np.testing.assert_array_equal(conv.intrinsics_from_camera_info(info, (300, 600)),
                                  [[500, 0, 350], [0, 500, 200], [0, 0, 1]])
    assert list(info.k) == list(k) and list(info.p)[:3] == [1000.0, 0.0, 800.0]      # the message is not changed
    with pytest.raises(BadInput, match=r"roi 1200x600, binning 2x2: 600x300\), image is 1600x900") as err:
        conv.intrinsics_from_camera_info(info, (900, 1600))
    assert err.value.reason == "camera_info_size_mismatch"
    # binning alone (roi unset), and binning 0 meaning 1 on the other axis: 800 x 900
    info.roi, info.binning_y = RegionOfInterest(), 0
    np.testing.assert_array_equal(conv.intrinsics_from_camera_info(info, (900, 800)),
                                  [[500, 0, 400], [0, 1000, 450], [0, 0, 1]])
    info.roi = RegionOfInterest(x_offset=500, y_offset=0, width=1200, height=900)     # ends at 1700 > 1600
    with pytest.raises(BadInput, match="exceeds the 1600x900 sensor") as err:
        conv.intrinsics_from_camera_info(info, (900, 600))
    assert err.value.reason == "bad_camera_info"
    info.roi = RegionOfInterest(x_offset=100, y_offset=50, width=1200, height=600, do_rectify=True)
    with pytest.raises(BadInput, match="do_rectify") as err:
        conv.intrinsics_from_camera_info(info, (600, 600))
    assert err.value.reason == "bad_camera_info"


def nuscenes_records(nuscenes_samples) -> np.ndarray:
    frame = json.loads((nuscenes_samples / "frames.json").read_text())["frames"][0]
    fields = read_radar_pcd(nuscenes_samples / frame["RADAR_FRONT"]["file"])
    records = np.zeros(len(fields["x"]), dtype=RADAR_RECORD_DTYPE)
    for name in RADAR_FIELDS:
        records[name] = fields[name]
    return records


def test_nuscenes_radar_layout_round_trip(nuscenes_samples):
    records = nuscenes_records(nuscenes_samples)
    cloud = conv.structured_to_cloud(Header(frame_id="RADAR_FRONT"), records)
    assert cloud.point_step == 43 and [f.name for f in cloud.fields] == list(RADAR_FIELDS)
    xyz, feats, dropped = conv.radar_from_cloud(cloud, ("rcs", "vx_comp", "vy_comp", "absent"), 5000)
    assert dropped == 0 and len(xyz) == len(records) > 20
    np.testing.assert_array_equal(xyz, np.stack([records[c] for c in "xyz"], 1).astype(np.float64))
    assert set(feats) == {"rcs", "vx_comp", "vy_comp"}
    for name in feats:
        np.testing.assert_array_equal(feats[name], records[name].astype(np.float64))


def xyz_cloud(points, extra=None, **overrides) -> PointCloud2:
    dtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")] + ([("rcs", "<f4")] if extra is not None else [])
    rec = np.zeros(len(points), dtype=dtype)
    for i, c in enumerate("xyz"):
        rec[c] = np.asarray(points)[:, i]
    if extra is not None:
        rec["rcs"] = extra
    cloud = conv.structured_to_cloud(Header(frame_id="radar"), rec)
    for key, value in overrides.items():
        setattr(cloud, key, value)
    return cloud


def test_nonfinite_points_are_dropped_and_counted():
    pts = [[1, 2, 3], [np.nan, 0, 0], [4, 5, 6], [0, np.inf, 1]]
    xyz, feats, dropped = conv.radar_from_cloud(xyz_cloud(pts, extra=[1, 2, 3, 4]), ("rcs",), 100)
    assert dropped == 2
    np.testing.assert_array_equal(xyz, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(feats["rcs"], [1, 3])


def test_points_with_a_nonfinite_feature_are_dropped_and_counted():
    # a NaN rcs on a finite point is as unusable as a NaN coordinate; fields not asked for do not count
    pts = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 1, 1]]
    xyz, feats, dropped = conv.radar_from_cloud(xyz_cloud(pts, extra=[1, np.nan, -np.inf, 4]), ("rcs",), 100)
    assert dropped == 2
    np.testing.assert_array_equal(xyz, [[1, 2, 3], [1, 1, 1]])
    np.testing.assert_array_equal(feats["rcs"], [1, 4])
    xyz, feats, dropped = conv.radar_from_cloud(xyz_cloud(pts, extra=[1, np.nan, -np.inf, 4]), (), 100)
    assert dropped == 0 and len(xyz) == 4 and feats == {}


def test_empty_cloud_gives_no_points():
    xyz, feats, dropped = conv.radar_from_cloud(xyz_cloud(np.zeros((0, 3))), ("rcs",), 100)
    assert xyz.shape == (0, 3) and feats == {} and dropped == 0


def test_big_endian_and_organised_padded_cloud():
    rec = np.array([(1.5, -2.0, 0.25), (3.0, 4.0, 5.0), (6.0, 7.0, 8.0), (9.0, 10.0, 11.0)],
                   dtype=[("x", ">f4"), ("y", ">f4"), ("z", ">f4")])
    rows = rec.view(np.uint8).reshape(2, 24)
    data = np.concatenate([rows, np.zeros((2, 4), np.uint8)], axis=1)      # 4 padding bytes per row
    cloud = PointCloud2(header=Header(frame_id="radar"), height=2, width=2, is_bigendian=True,
                        point_step=12, row_step=28, fields=[
                            PointField(name=c, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                            for i, c in enumerate("xyz")])
    cloud.data = data.tobytes()
    xyz, _, _ = conv.radar_from_cloud(cloud, (), 100)   # rows compacted first: either backend reads them
    np.testing.assert_array_equal(xyz, [[1.5, -2, 0.25], [3, 4, 5], [6, 7, 8], [9, 10, 11]])


def radar_with(extra):
    """A 2-point FLOAT32 cloud: x, y, z = (1, 3, 5), (2, 4, 6), the ``extra`` fields ``[(name, count)]``, then
    rcs = 7, 8."""
    layout = [("x", 1), ("y", 1), ("z", 1), *extra, ("rcs", 1)]
    rec = np.zeros(2, dtype=[(name, "<f4", (count,)) if count > 1 else (name, "<f4") for name, count in layout])
    rec["x"], rec["y"], rec["z"], rec["rcs"] = [1, 2], [3, 4], [5, 6], [7, 8]
    fields = [PointField(name=name, offset=rec.dtype.fields[name][1], datatype=PointField.FLOAT32, count=count)
              for name, count in layout]
    cloud = PointCloud2(header=Header(frame_id="radar"), height=1, width=2, fields=fields,
                        point_step=rec.itemsize, row_step=2 * rec.itemsize, is_bigendian=sys.byteorder == "big")
    cloud.data = rec.tobytes()
    return cloud


def assert_reads_xyz_and_rcs(cloud):
    xyz, feats, _ = conv.radar_from_cloud(cloud, ("rcs",), 100)
    np.testing.assert_array_equal(xyz, [[1, 3, 5], [2, 4, 6]])
    np.testing.assert_array_equal(feats["rcs"], [7, 8])


def test_count_fields_beside_xyz_are_fine_but_not_for_xyz():
    """sensor_msgs_py reads a count-3 field as name_0..name_2: a radar with such an extra field works;
    x/y/z or a model feature with count > 1 is a bad layout (it used to be read as one value)."""
    cloud = radar_with([("cov", 3)])
    assert_reads_xyz_and_rcs(cloud)
    cloud.fields = [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=3), *cloud.fields[1:]]
    with pytest.raises(BadInput) as err:
        conv.radar_from_cloud(cloud, ("rcs",), 100)
    assert err.value.reason == "radar_bad_fields"


def test_fields_the_node_does_not_read_do_not_matter():
    """Only x, y, z and the model's features go to point_cloud2: an unused field whose members it cannot
    name apart (count-2 'cov' is read as cov_0, cov_1, beside a field named 'cov_0': both backends refuse
    such a cloud as a whole) leaves the radar usable."""
    assert_reads_xyz_and_rcs(radar_with([("cov", 2), ("cov_0", 1)]))


def test_padded_records_survive_a_backend_without_default_point_step(monkeypatch):
    """sensor_msgs_py before 5.9.1 (Kilted ships 5.5) sizes a structured array's records from the fields
    unless point_step is passed: the wrapper passes the record size, so padded radar records work."""
    from xdrcdepth_ros.standins import point_cloud2 as standin

    class Kilted55:
        read_points = staticmethod(standin.read_points)

        @staticmethod
        def create_cloud(header, fields, points, point_step=None):
            if isinstance(points, np.ndarray) and points.dtype.names and point_step is None:
                point_step = standin.dtype_from_fields(fields).itemsize      # no #295 default
            return standin.create_cloud(header, fields, points, point_step)

    monkeypatch.setattr(conv, "_point_cloud2", Kilted55)
    padded = np.zeros(3, dtype={"names": ["x", "y", "z"], "formats": ["<f4"] * 3, "offsets": [0, 4, 8],
                                "itemsize": 16})
    padded["x"] = [1, 2, 3]
    cloud = conv.structured_to_cloud(Header(frame_id="radar"), padded)
    assert cloud.point_step == 16
    xyz, _, _ = conv.radar_from_cloud(cloud, (), 100)
    np.testing.assert_array_equal(xyz[:, 0], [1, 2, 3])


@pytest.mark.parametrize("make,reason", [
    (lambda: xyz_cloud(np.zeros((5, 3)), data=bytes(60)[:59]), "radar_truncated"),
    (lambda: xyz_cloud(np.zeros((5, 3)), row_step=10), "radar_truncated"),
    (lambda: xyz_cloud(np.zeros((101, 3))), "radar_too_large"),
    (lambda: xyz_cloud(np.zeros((5, 3)), point_step=8), "radar_bad_fields"),
    (lambda: xyz_cloud(np.zeros((5, 3)), fields=[PointField(name="x", offset=0, datatype=7, count=1),
                                                 PointField(name="y", offset=4, datatype=7, count=1)]),
     "radar_missing_xyz"),
    (lambda: xyz_cloud(np.zeros((5, 3)), fields=[PointField(name=c, offset=0, datatype=99, count=1)
                                                 for c in "xyz"]), "radar_bad_fields"),
    (lambda: xyz_cloud(np.zeros((5, 3)), fields=[PointField(name="x", offset=0, datatype=7, count=1)] * 3),
     "radar_bad_fields"),
    (lambda: xyz_cloud(np.zeros((5, 3)), fields=[PointField(name=c, offset=2 * i, datatype=7, count=1)   # overlap
                                                 for i, c in enumerate("xyz")]), "radar_bad_fields"),
    (lambda: xyz_cloud(np.zeros((5, 3)), fields=[PointField(name=c, offset=2 * i, datatype=PointField.INT16,
                                                            count=1) for i, c in enumerate("xyz")]),
     "radar_bad_fields"),   # integer coordinates: not metres as REP 103 clouds carry them
])
def test_bad_clouds_are_rejected_with_reason(make, reason):
    with pytest.raises(BadInput) as err:
        conv.radar_from_cloud(make(), ("rcs",), 100)
    assert err.value.reason == reason


def test_depth_image_is_rep118_with_nan_invalid():
    depth = np.array([[1.5, 0.0, -2.0], [np.inf, 80.0, 3.25]], dtype=np.float32)
    msg = conv.depth_image(depth, HEADER)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("32FC1", 2, 3, 12)
    assert msg.header.frame_id == "cam_optical" and msg.is_bigendian == int(sys.byteorder == "big")
    back = np.frombuffer(bytes(msg.data), dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(back, [[1.5, np.nan, np.nan], [np.nan, 80.0, 3.25]])
    np.testing.assert_array_equal(conv.image_to_array(msg), back)


@pytest.mark.parametrize("bad", [np.nan, 0.0, -0.5, np.inf, -np.inf, None])
def test_depth_image_nan_marks_each_kind_of_invalid_value_alone(bad):
    # one invalid value among valid ones (or none, None): only that pixel becomes NaN; a valid map goes out as is,
    # also when it arrives as a transposed float64 view
    depth = np.array([[2.0, 7.5], [30.0, 0.25], [1e-3, 79.0]])
    expected = depth.T.astype(np.float32)
    if bad is not None:
        depth[1, 0] = bad
        expected[0, 1] = np.nan
    msg = conv.depth_image(depth.T, HEADER)
    assert (msg.height, msg.width, msg.step) == (2, 3, 12)
    np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), dtype=np.float32).reshape(2, 3), expected)


def test_bgr8_image_reverses_channels():
    msg = conv.bgr8_image(RGB, HEADER)
    assert (msg.encoding, msg.step) == ("bgr8", 9)
    np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), np.uint8).reshape(2, 3, 3),
                                  RGB[:, :, ::-1])
    np.testing.assert_array_equal(conv.rgb_from_image(msg), RGB)


def test_depth_camera_info_takes_image_header():
    info = camera_info()
    out = conv.depth_camera_info(info, Header(frame_id="cam_optical", stamp=info.header.stamp))
    assert (out.width, out.height, out.header.frame_id) == (352, 176, "cam_optical")
    np.testing.assert_array_equal(out.k, info.k)
    np.testing.assert_array_equal(out.p, info.p)


def test_depth_back_projection():
    K = np.array([[100.0, 0, 1.0], [0, 50.0, 0.5], [0, 0, 1]])
    depth = np.array([[2.0, np.nan, 4.0], [10.0, 1.0, -1.0]], dtype=np.float32)
    cloud = conv.depth_to_cloud(depth, K, HEADER)
    pts = conv.read_points(cloud, ["x", "y", "z"])
    got = np.stack([pts[c] for c in "xyz"], 1)
    # (u, v, Z) -> ((u - 1) Z / 100, (v - 0.5) Z / 50, Z)
    expected = [[-0.02, -0.02, 2.0], [0.04, -0.04, 4.0], [-0.1, 0.1, 10.0], [0.0, 0.01, 1.0]]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    strided = conv.read_points(conv.depth_to_cloud(depth, K, HEADER, stride=2), ["z"])
    np.testing.assert_array_equal(strided["z"], [2.0, 4.0])
    # no invalid point is sent, so the cloud says so (sensor_msgs/PointCloud2: is_dense "True if there are
    # no invalid points"); upstream create_cloud leaves it false
    assert cloud.is_dense and (cloud.height, cloud.width) == (1, 4)


def test_back_projection_inverts_a_skewed_k():
    """A camera_info K with skew (K[0,1]): each point is Z K^-1 (u, v, 1), so K maps it back onto its pixel
    (X = (u - cx) Z / fx was up to 0.78 px off at skew 25 of fx 500)."""
    K = np.array([[500.0, 25.0, 3.0], [0, 400.0, 2.0], [0, 0, 1]])
    depth = np.array([[2.0, 4.0, 8.0], [10.0, 20.0, 40.0], [5.0, 6.0, 7.0]], dtype=np.float32)
    pts = conv.read_points(conv.depth_to_cloud(depth, K, HEADER), ["x", "y", "z"])
    got = np.stack([pts[c] for c in "xyz"], 1)
    v, u = np.mgrid[0:3, 0:3]
    expected = np.linalg.solve(K, np.stack([u.ravel(), v.ravel(), np.ones(9)])).T * depth.reshape(-1, 1)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_back_projection_that_overflows_float32_is_left_out():
    """A tiny focal length puts X beyond float32 (3.4e38): that point is dropped, not published as inf."""
    K = np.array([[1e-300, 0, 0.0], [0, 1.0, 0.0], [0, 0, 1]])
    depth = np.array([[5.0, 6.0]], dtype=np.float32)       # u = 0 -> X = 0; u = 1 -> X = 6e300
    pts = conv.read_points(conv.depth_to_cloud(depth, K, HEADER), ["x", "z"])
    np.testing.assert_array_equal(pts["z"], [5.0])
    np.testing.assert_array_equal(pts["x"], [0.0])
