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


# --- mutation-testing additions: the exact reasons and details, boundaries, headers and messages passed on -----

@pytest.mark.parametrize("size,max_pixels,detail", [
    ((3, 2), 5, "image_too_large: image of 3x2 = 6 pixels > max_image_pixels 5 (not decoded)"),
    ((3, 2), 6, None),      # exactly the limit is fine
    ((3, 1), 5, None),      # one row is an image too
    ((3, 2), None, None),   # no limit
])
def test_image_size_limit_and_its_detail(size, max_pixels, detail):
    msg = raw_image(RGB[:size[1], :size[0]].copy(), "rgb8")
    if detail is None:
        np.testing.assert_array_equal(conv.rgb_from_image(msg, max_pixels), RGB[:size[1], :size[0]])
        return
    with pytest.raises(BadInput) as err:
        conv.rgb_from_image(msg, max_pixels)
    assert (err.value.reason, str(err.value)) == ("image_too_large", detail)


@pytest.mark.parametrize("mutate,message", [
    (lambda m: setattr(m, "height", 0), "bad_image: empty image 3x0"),
    (lambda m: setattr(m, "step", 8), "bad_image: step 8 < width 3 x 3 bytes"),
    (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "truncated_image: 17 data bytes < height 2 x step 9"),
    (lambda m: setattr(m, "encoding", "yuv422"),
     "unsupported_encoding: image encoding 'yuv422' (supported: rgb8, bgr8, rgba8, bgra8, mono8)"),
])
def test_bad_image_details(mutate, message):
    msg = raw_image(RGB, "rgb8")
    mutate(msg)
    with pytest.raises(BadInput) as err:
        conv.rgb_from_image(msg)
    assert str(err.value) == message


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature, an 8-bit RGB IHDR chunk declaring ``width`` x ``height`` and an empty IDAT (PNG spec:
    length, type, data, CRC-32 of type and data), no pixels: enough for PIL to open it and read the size."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return conv.PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", b"")


def test_compressed_size_limit_is_checked_from_the_header_without_warnings():
    # 10000 x 10000 = 100 Mpx: above PIL's warning threshold (89 Mpx), below its error (179 Mpx)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(BadInput) as err:
            conv.rgb_from_compressed(CompressedImage(format="png", data=png_header_only(10000, 10000)), 10 ** 6)
    assert str(err.value) == ("image_too_large: compressed PNG of 10000x10000 = 100000000 pixels > "
                              "max_image_pixels 1000000 (not decoded)")
    with pytest.raises(BadInput) as err:
        conv.rgb_from_compressed(compressed("PNG", RGB), 5)
    assert str(err.value).startswith("image_too_large: compressed PNG of 3x2 = 6 pixels > max_image_pixels 5")
    np.testing.assert_array_equal(conv.rgb_from_compressed(compressed("PNG", RGB), 6), RGB)


def test_compressed_beyond_pils_own_limit_is_too_large(monkeypatch):
    # 20000 x 20000 = 400 Mpx > 2 x PIL's MAX_IMAGE_PIXELS: PIL refuses to open it, whatever max_pixels says. Its
    # default limit, pinned: nuscenes-devkit's map module lifts it for the whole process when imported (as other
    # tests of the same pytest worker do; the full suite failed here with bad_compressed)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 89_478_485)
    with pytest.raises(BadInput) as err:
        conv.rgb_from_compressed(CompressedImage(format="png", data=png_header_only(20000, 20000)))
    assert err.value.reason == "image_too_large"
    assert err.value.detail.startswith("compressed image: ") and err.value.detail.endswith(" (not decoded)")


def test_undecodable_compressed_detail():
    with pytest.raises(BadInput) as err:
        conv.rgb_from_compressed(CompressedImage(format="jpeg", data=b"not an image"))
    assert str(err.value) == ("bad_compressed: cannot decode 'jpeg' (12 bytes): not a JPEG or PNG PIL can identify")
    with pytest.raises(BadInput) as err:
        conv.rgb_from_compressed(CompressedImage(format="16UC1; compressedDepth png", data=bytes(40)))
    assert str(err.value) == ("unsupported_encoding: compressedDepth image (format field '16UC1; compressedDepth "
                              "png'): a depth map, not a camera picture")


@pytest.mark.parametrize("k,p,message", [
    ([0.0] * 9, None, "bad_camera_info: uncalibrated or invalid K [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]"),
    ((100.0, 0, 176, 0, 100, 88, 0, 0, 1), [90.0, 0, 170, 0, 0, 0, 85, 0, 0, 0, 1, 0],
     "bad_camera_info: invalid projection matrix, left 3 x 3 of P [90.0, 0.0, 170.0, 0.0, 0.0, 85.0, 0.0, 0.0, 1.0]"),
])
def test_bad_camera_info_details(k, p, message):
    with pytest.raises(BadInput) as err:
        conv.intrinsics_from_camera_info(camera_info(k=k, p=p), (176, 352))
    assert str(err.value) == message


def test_size_mismatch_details_name_the_reduced_image():
    with pytest.raises(BadInput) as err:
        conv.intrinsics_from_camera_info(camera_info(), (900, 1600))
    assert str(err.value) == "camera_info_size_mismatch: camera_info is 352x176, image is 1600x900"
    for bx, by, reduced in ((2, 1, "176x176"), (1, 2, "352x88")):
        info = camera_info()
        info.binning_x, info.binning_y = bx, by
        with pytest.raises(BadInput) as err:
            conv.intrinsics_from_camera_info(info, (176, 352))
        assert str(err.value) == (f"camera_info_size_mismatch: camera_info is 352x176 (roi 352x176, binning "
                                  f"{bx}x{by}: {reduced}), image is 352x176")


@pytest.mark.parametrize("roi", [RegionOfInterest(x_offset=3, y_offset=2, width=0, height=600),
                                 RegionOfInterest(x_offset=3, y_offset=2, width=1200, height=0),
                                 RegionOfInterest(width=1600, height=900, do_rectify=True)])
def test_a_roi_without_width_or_height_or_the_whole_rectified_sensor_is_the_whole_sensor(roi):
    # the module's rule: a ROI without area is the whole sensor (image_geometry maps the all-zero ROI to the full
    # resolution; an area-less one would leave no image); a full-sensor ROI needs no rectification of its corners
    info = camera_info(w=1600, h=900, k=(1000.0, 0.0, 800.0, 0.0, 1000.0, 450.0, 0.0, 0.0, 1.0))
    info.roi = roi
    np.testing.assert_array_equal(conv.intrinsics_from_camera_info(info, (900, 1600)),
                                  [[1000, 0, 800], [0, 1000, 450], [0, 0, 1]])


def test_roi_checks_on_the_y_axis_and_their_details():
    info = camera_info(w=1600, h=900, k=(1000.0, 0.0, 800.0, 0.0, 1000.0, 450.0, 0.0, 0.0, 1.0))
    info.roi = RegionOfInterest(x_offset=0, y_offset=400, width=1600, height=600)      # ends at 1000 > 900
    with pytest.raises(BadInput) as err:
        conv.intrinsics_from_camera_info(info, (600, 1600))
    assert str(err.value) == "bad_camera_info: roi 1600x600 at (0, 400) exceeds the 1600x900 sensor"
    for x, y in ((1, 0), (0, 1)):
        info.roi = RegionOfInterest(x_offset=x, y_offset=y, width=1600 - x, height=900 - y, do_rectify=True)
        with pytest.raises(BadInput) as err:
            conv.intrinsics_from_camera_info(info, (900 - y, 1600 - x))
        assert str(err.value) == ("bad_camera_info: roi.do_rectify (a ROI in raw, distorted pixels) is not "
                                  "supported: send the rectified ROI's image with do_rectify false")


def test_binning_an_odd_size_rounds_down_as_image_geometry_does():
    # image_geometry's reducedResolution: roi.width / binning_x in integer arithmetic: 901 / 2 = 450
    info = camera_info(w=1601, h=901, k=(1000.0, 0.0, 800.0, 0.0, 1000.0, 450.0, 0.0, 0.0, 1.0))
    info.binning_x = info.binning_y = 2
    np.testing.assert_array_equal(conv.intrinsics_from_camera_info(info, (450, 800)),
                                  [[500, 0, 400], [0, 500, 225], [0, 0, 1]])


def layout_cloud(layout, height=1, width=2) -> PointCloud2:
    """A FLOAT32 cloud of ``height`` x ``width`` points with the fields ``[(name, count)]`` back to back,
    every value its point's index + 1."""
    rec = np.zeros(height * width, dtype=[(n, "<f4", (c,)) if c > 1 else (n, "<f4") for n, c in layout])
    for name, _ in layout:
        rec[name] = (np.arange(height * width) + 1).reshape(-1, *([1] * (rec[name].ndim - 1)))
    fields = [PointField(name=n, offset=rec.dtype.fields[n][1], datatype=PointField.FLOAT32, count=c)
              for n, c in layout]
    cloud = PointCloud2(header=Header(frame_id="radar"), height=height, width=width, fields=fields,
                        point_step=rec.itemsize, row_step=width * rec.itemsize, is_bigendian=sys.byteorder == "big")
    cloud.data = rec.tobytes()
    return cloud


@pytest.mark.parametrize("name", ["x", "y", "z", "rcs"])
def test_a_coordinate_or_feature_with_count_2_is_refused(name):
    layout = [(n, 2 if n == name else 1) for n in ("x", "y", "z", "rcs")]
    with pytest.raises(BadInput) as err:
        conv.radar_from_cloud(layout_cloud(layout), ("rcs",), 100)
    assert str(err.value) == f"radar_bad_fields: fields ['{name}'] have count > 1"


@pytest.mark.parametrize("name", ["x", "y", "z"])
def test_an_integer_coordinate_is_refused(name):
    cloud = layout_cloud([("x", 1), ("y", 1), ("z", 1)])
    cloud.fields["xyz".index(name)].datatype = PointField.INT32
    with pytest.raises(BadInput) as err:
        conv.radar_from_cloud(cloud, (), 100)
    assert str(err.value) == f"radar_bad_fields: fields ['{name}'] are not FLOAT32/FLOAT64 (metres)"


def setattr_and_return(cloud, **values):
    for key, value in values.items():
        setattr(cloud, key, value)
    return cloud


def with_fields(cloud, *fields):
    cloud.fields = list(fields)
    return cloud


@pytest.mark.parametrize("make,message", [
    (lambda: layout_cloud([("x", 1), ("y", 1), ("z", 1)], height=2, width=2),
     "radar_too_large: 4 points > max_radar_points 3"),
    (lambda: with_fields(layout_cloud([("x", 1), ("y", 1), ("z", 1)]), *[PointField(
        name="x", offset=0, datatype=7, count=1)] * 2), "radar_bad_fields: duplicate field names ['x', 'x']"),
    (lambda: with_fields(layout_cloud([("x", 1), ("y", 1), ("z", 1)]), PointField(
        name="x", offset=0, datatype=99, count=1)), "radar_bad_fields: field x: datatype 99, count 1"),
    (lambda: with_fields(layout_cloud([("x", 1), ("y", 1), ("z", 1)]), PointField(
        name="x", offset=0, datatype=7, count=0)), "radar_bad_fields: field x: datatype 7, count 0"),
    # z at 9: bytes 9-12 of a 12-byte record (a FLOAT32 at offset 9 ends at 13)
    (lambda: with_fields(layout_cloud([("x", 1), ("y", 1), ("z", 1)]), PointField(
        name="z", offset=9, datatype=7, count=1)), "radar_bad_fields: field z at 9 overruns point_step 12"),
    (lambda: with_fields(layout_cloud([("x", 1), ("y", 1), ("z", 1)]), *[PointField(
        name=c, offset=o, datatype=7, count=1) for c, o in (("x", 0), ("y", 2), ("z", 8))]),
     "radar_bad_fields: fields x and y overlap (bytes 2-3)"),
    (lambda: with_fields(layout_cloud([("x", 1), ("y", 1), ("z", 1)]), PointField(
        name="x", offset=0, datatype=7, count=1)), "radar_missing_xyz: no field y, z in ['x']"),
    (lambda: setattr_and_return(layout_cloud([("x", 1), ("y", 1), ("z", 1)], height=2, width=1), data=bytes(23)),
     "radar_truncated: 23 data bytes < row_step 12 x height 2"),
    (lambda: setattr_and_return(layout_cloud([("x", 1), ("y", 1), ("z", 1)]), row_step=23),
     "radar_truncated: row_step 23 < width 2 x point_step 12"),
])
def test_bad_cloud_details(make, message):
    with pytest.raises(BadInput) as err:
        conv.radar_from_cloud(make(), ("rcs",), 3)
    assert str(err.value) == message


def test_radar_limits_and_one_point():
    organised = layout_cloud([("x", 1), ("y", 1), ("z", 1), ("rcs", 1)], height=2, width=2)
    xyz, feats, dropped = conv.radar_from_cloud(organised, ("rcs",), 4)     # exactly the limit
    np.testing.assert_array_equal(xyz, [[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]])
    assert xyz.dtype == np.float64 and feats["rcs"].dtype == np.float64 and dropped == 0
    xyz, feats, _ = conv.radar_from_cloud(layout_cloud([("x", 1), ("y", 1), ("z", 1), ("rcs", 1)], 1, 1),
                                          ("rcs",), 4)
    np.testing.assert_array_equal(xyz, [[1, 1, 1]])
    np.testing.assert_array_equal(feats["rcs"], [1])


def test_outputs_carry_the_header_they_are_given():
    header = Header(frame_id="cam_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    outputs = [conv.depth_image(np.full((2, 2), 5.0), header),            # all valid: sent as is
               conv.bgr8_image(RGB, header),
               conv.depth_to_cloud(np.full((2, 2), 5.0), np.diag([10.0, 10.0, 1.0]), header),
               conv.structured_to_cloud(header, np.zeros(2, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))]
    for msg in outputs:
        assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("cam_optical", 12, 345)


def test_depth_camera_info_copies_the_whole_calibration():
    info = camera_info(w=1600, h=900, k=(1000.0, 0.0, 800.0, 0.0, 1000.0, 450.0, 0.0, 0.0, 1.0))
    info.distortion_model, info.d = "rational_polynomial", [0.1, -0.2, 0.0, 0.0, 0.01, 0.0, 0.0, 0.0]
    info.r = [0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    info.binning_x, info.binning_y = 2, 3
    info.roi = RegionOfInterest(x_offset=4, y_offset=6, width=800, height=600, do_rectify=False)
    out = conv.depth_camera_info(info, Header(frame_id="depth"))
    assert out.header.frame_id == "depth" and (out.width, out.height) == (1600, 900)
    assert (out.distortion_model, list(out.d)) == ("rational_polynomial", list(info.d))
    for name in ("k", "r", "p"):
        np.testing.assert_array_equal(getattr(out, name), getattr(info, name))
    assert (out.binning_x, out.binning_y, out.roi) == (2, 3, info.roi)


def test_zero_depth_is_not_back_projected_and_overflow_does_not_warn():
    import warnings
    K = np.array([[1e-300, 0, 0.0], [0, 1.0, 0.0], [0, 0, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the float32 overflow of X is expected: no RuntimeWarning
        pts = conv.read_points(conv.depth_to_cloud(np.array([[5.0, 6.0, 0.0]], np.float32), K, HEADER), ["z"])
    np.testing.assert_array_equal(pts["z"], [5.0])      # 6 overflows, 0 is no depth (REP 118: not a valid range)


class UpstreamReadPoints:
    """sensor_msgs_py.point_cloud2.read_points as upstream writes it: ``width x height`` records straight from
    ``data`` (row_step and any row padding not read), then the requested fields, then native byte order."""
    @staticmethod
    def read_points(cloud, field_names=None, skip_nans=False):
        from xdrcdepth_ros.standins import point_cloud2 as standin
        points = np.ndarray(shape=(cloud.width * cloud.height,), buffer=bytes(cloud.data),
                            dtype=standin.dtype_from_fields(cloud.fields, point_step=cloud.point_step))
        return points if field_names is None else points[list(field_names)]


@pytest.mark.parametrize("trailing", [0, 5])
def test_row_padding_is_dropped_before_a_backend_that_ignores_row_step(monkeypatch, trailing):
    monkeypatch.setattr(conv, "_point_cloud2", UpstreamReadPoints)
    packed = layout_cloud([("x", 1), ("y", 1), ("z", 1), ("rcs", 1)], height=2, width=2)   # 16-byte records
    rows = np.frombuffer(bytes(packed.data), np.uint8).reshape(2, 32)
    padded = setattr_and_return(packed, row_step=36, data=np.concatenate(
        [rows, np.full((2, 4), 0xFF, np.uint8)], axis=1).tobytes() + bytes(trailing))   # bytes past the last row
    records = conv.read_points(padded)
    assert records.dtype.names == ("x", "y", "z", "rcs")
    np.testing.assert_array_equal(records["rcs"], [1, 2, 3, 4])
    xyz, feats, _ = conv.radar_from_cloud(padded, ("rcs",), 4)
    np.testing.assert_array_equal(xyz, [[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]])
    np.testing.assert_array_equal(feats["rcs"], [1, 2, 3, 4])


def test_read_points_returns_the_requested_fields_in_the_requested_order():
    # sensor_msgs_py: points[list(field_names)], so the records follow field_names, also when they are all fields
    cloud = layout_cloud([("x", 1), ("y", 1), ("z", 1)])
    for names in (["z", "x"], ["z", "y", "x"]):
        assert conv.read_points(cloud, names).dtype.names == tuple(names)
    assert conv.read_points(cloud).dtype.names == ("x", "y", "z")
