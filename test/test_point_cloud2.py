"""``sensor_msgs_py.point_cloud2`` semantics, for the stand-in (and for sensor_msgs_py where installed).

The first 18 tests port the cases of upstream's own suite (ros2/common_interfaces
``sensor_msgs_py/test/test_point_cloud2.py``, sensor_msgs_py 5.9.1): each test's docstring names the
upstream case and the behaviour; the data are built here (same shapes and values as upstream's: six xyz
points, one with a NaN). The tests after them cover what issue 10 found wrong in the node's earlier
conversions (unknown fields, field order, byte order, mismatched layouts, row padding).
"""

import sys

import numpy as np
import pytest
from numpy.lib.recfunctions import structured_to_unstructured, unstructured_to_structured
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from standin_params import implementations
from xdrcdepth_ros.standins import point_cloud2 as standin

IMPLEMENTATIONS = implementations("point_cloud2")

ROWS = [(0.0, 0.1, 0.2), (1.0, 1.1, 1.2), (2.0, 2.1, 2.2), (3.0, 3.1, 3.2), (4.0, np.nan, 4.2), (5.0, 5.1, 5.2)]
POINTS = np.array(ROWS, dtype=np.float32)
NATIVE_BIG = sys.byteorder != "little"


def field(name, offset, datatype=PointField.FLOAT32, count=1):
    return PointField(name=name, offset=offset, datatype=datatype, count=count)


XYZ = [field("x", 0), field("y", 4), field("z", 8)]


def cloud(fields, data: bytes, width: int, height: int = 1, point_step: int = 12, row_step=None,
          frame="frame", bigendian=NATIVE_BIG) -> PointCloud2:
    return PointCloud2(header=Header(frame_id=frame), height=height, width=width, is_dense=False,
                       is_bigendian=bigendian, fields=fields, point_step=point_step,
                       row_step=point_step * width if row_step is None else row_step, data=data)


XYZ_CLOUD = cloud(XYZ, POINTS.tobytes(), width=6)
MIXED = np.array([tuple(r) for r in POINTS], dtype=[("a", np.float32), ("b", np.float64), ("c", np.uint8)])
MIXED_FIELDS = [field("a", 0), field("b", 4, PointField.FLOAT64), field("c", 12, PointField.UINT8)]
MIXED_CLOUD = cloud(MIXED_FIELDS, MIXED.tobytes(), width=6, point_step=MIXED.itemsize)
TWO_FLOATS = np.array([tuple(r) for r in POINTS], dtype=[("a", np.float32), ("b", np.float32), ("c", np.uint8)])
TWO_FLOATS_CLOUD = cloud([field("a", 0), field("b", 4), field("c", 8, PointField.UINT8)], TWO_FLOATS.tobytes(),
                         width=6, point_step=TWO_FLOATS.itemsize)
COUNT3_FIELDS = [field("x", 0, count=3)]
COUNT3_CLOUD = cloud(COUNT3_FIELDS, POINTS.tobytes(), width=6)
ORGANIZED = POINTS.reshape(2, 3, 3)   # upstream: a 2-D array of points is (width, height)
ORGANIZED_CLOUD = cloud(XYZ, ORGANIZED.tobytes(), width=2, height=3)
PADDED_DTYPE = np.dtype({"names": ["x", "y", "z"], "formats": ["f4"] * 3, "offsets": [0, 4, 8], "itemsize": 20})
PADDED = np.array(ROWS, dtype=PADDED_DTYPE)


@pytest.fixture(params=IMPLEMENTATIONS)
def pc2(request):
    return request.param


def same(a, b) -> bool:
    return np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), equal_nan=True)


# --- upstream test_point_cloud2.py, case by case ---------------------------------------------------------

def test_read_points(pc2):
    """upstream test_read_points: every point, every field, NaN kept."""
    assert same([list(p) for p in pc2.read_points(XYZ_CLOUD)], ROWS)


def test_read_points_field(pc2):
    """upstream test_read_points_field: field_names selects columns."""
    got = np.array([list(p) for p in pc2.read_points(XYZ_CLOUD, field_names=["x", "z"])])
    assert got.shape == (6, 2) and same(got, POINTS[:, [0, 2]])


def test_read_points_skip_nan(pc2):
    """upstream test_read_points_skip_nan: skip_nans drops the point with a NaN (cloud not dense)."""
    got = np.array([list(p) for p in pc2.read_points(XYZ_CLOUD, skip_nans=True)])
    want = POINTS[~np.isnan(POINTS).any(axis=1)]
    assert got.shape == want.shape == (5, 3) and np.allclose(got, want)


def test_read_points_list(pc2):
    """upstream test_read_points_list: namedtuples, one per point."""
    points = pc2.read_points_list(XYZ_CLOUD)
    assert all(p._fields == ("x", "y", "z") for p in points)
    assert same(np.array(points), POINTS)


def test_read_points_organized(pc2):
    """upstream test_read_points_organized: flat by default; reshape_organized_cloud gives (width, height)."""
    assert same([list(p) for p in pc2.read_points(ORGANIZED_CLOUD)], ROWS)
    organized = pc2.read_points(ORGANIZED_CLOUD, reshape_organized_cloud=True)
    assert organized.shape == (2, 3)
    assert same(structured_to_unstructured(organized), ORGANIZED)


def test_read_points_numpy(pc2):
    """upstream test_read_points_numpy: one unstructured N x fields array."""
    assert same(pc2.read_points_numpy(XYZ_CLOUD), POINTS)


def test_read_points_numpy_same_types(pc2):
    """upstream test_read_points_numpy_same_types: mixed datatypes are an AssertionError."""
    with pytest.raises(AssertionError):
        pc2.read_points_numpy(MIXED_CLOUD)


def test_read_points_numpy_specific_fields(pc2):
    """upstream test_read_points_numpy_specific_fields: only the selected fields need one datatype."""
    assert pc2.read_points_numpy(TWO_FLOATS_CLOUD, field_names=("a", "b")).shape == (6, 2)


def test_read_points_different_types(pc2):
    """upstream test_read_points_different_types: a structured array with the fields' own dtypes."""
    points = pc2.read_points(MIXED_CLOUD)
    assert all(same(points[name], MIXED[name]) for name in MIXED.dtype.names)
    assert points.dtype == MIXED.dtype


def test_read_points_non_one_count(pc2):
    """upstream test_read_points_non_one_count: a field with count 3 reads as three values."""
    assert same(pc2.read_points_numpy(COUNT3_CLOUD), POINTS)


def test_read_points_non_one_count_structured(pc2):
    """upstream test_read_points_non_one_count_structured: sub-fields named x_0, x_1, x_2."""
    points = pc2.read_points(COUNT3_CLOUD)
    assert points.dtype.names == ("x_0", "x_1", "x_2")
    assert same(structured_to_unstructured(points), POINTS)


def test_create_cloud(pc2):
    """upstream test_create_cloud: a list of points gives exactly the reference message; another header
    or other fields give another message."""
    assert pc2.create_cloud(Header(frame_id="frame"), XYZ, ROWS) == XYZ_CLOUD
    assert pc2.create_cloud(Header(frame_id="frame2"), XYZ, ROWS) != XYZ_CLOUD
    yz = [field("y", 0), field("z", 4)]
    assert pc2.create_cloud(Header(frame_id="frame"), yz, POINTS[:, 1:].tolist()) != XYZ_CLOUD


def test_create_cloud_itemsize(pc2):
    """upstream test_create_cloud_itemsize (5.9.1, ros2/common_interfaces#295): padded records with a
    smaller point_step are an AssertionError; without point_step it is the records' itemsize."""
    with pytest.raises(AssertionError):
        pc2.create_cloud(Header(frame_id="frame"), XYZ, PADDED, pc2.dtype_from_fields(XYZ).itemsize)
    assert pc2.create_cloud(Header(frame_id="frame"), XYZ, PADDED, PADDED.dtype.itemsize).point_step == 20
    if pc2 is standin:   # sensor_msgs_py before 5.9.1 needs point_step here
        assert pc2.create_cloud(Header(frame_id="frame"), XYZ, PADDED).point_step == 20


def test_create_cloud_different_types(pc2):
    """upstream test_create_cloud_different_types: a structured array with mixed datatypes."""
    assert pc2.create_cloud(Header(frame_id="frame"), MIXED_FIELDS, MIXED) == MIXED_CLOUD


def test_create_cloud_xyz32(pc2):
    """upstream test_create_cloud_xyz32: float32 x, y, z fields."""
    assert pc2.create_cloud_xyz32(Header(frame_id="frame"), ROWS) == XYZ_CLOUD


def test_create_cloud_xyz32_organized(pc2):
    """upstream test_create_cloud_xyz32_organized: a (width, height, 3) array gives an organized cloud."""
    assert pc2.create_cloud_xyz32(Header(frame_id="frame"), ORGANIZED) == ORGANIZED_CLOUD


def test_create_cloud__non_one_count(pc2):
    """upstream test_create_cloud__non_one_count: one field with count 3 from an N x 3 array."""
    assert pc2.create_cloud(Header(frame_id="frame"), COUNT3_FIELDS, POINTS) == COUNT3_CLOUD


def test_read_cloud_with_non_standard_point_step(pc2):
    """upstream test_read_cloud_with_non_standard_point_step: point_step 123 (padding after the fields)."""
    wide = np.array(unstructured_to_structured(POINTS), dtype=np.dtype(
        {"names": ["x", "y", "z"], "formats": ["<f4"] * 3, "offsets": [0, 4, 8], "itemsize": 123}))
    padded = cloud(XYZ, wide.tobytes(), width=6, point_step=123)
    assert same(pc2.read_points_numpy(padded), POINTS)


# --- what the node's earlier conversions got wrong (issue 10, defect 2) ------------------------------------

def test_unknown_field_names_raise(pc2):
    """upstream read_points asserts every requested field exists (no silent drop)."""
    with pytest.raises(AssertionError):
        pc2.read_points(XYZ_CLOUD, field_names=["x", "intensity"])


def test_fields_come_back_in_requested_order(pc2):
    """upstream read_points returns points[list(field_names)]: the requested order, not the cloud's."""
    points = pc2.read_points(XYZ_CLOUD, field_names=["z", "x"])
    assert points.dtype.names == ("z", "x")
    assert same(structured_to_unstructured(points), POINTS[:, [2, 0]])


def test_read_points_keeps_the_record_layout(pc2):
    """upstream read_points views cloud.data with dtype_from_fields(fields, point_step) and returns
    ``points[list(field_names)]``, numpy's multi-field view: the fields keep their offsets and the records
    point_step bytes."""
    padded = cloud(XYZ, PADDED.tobytes(), width=6, point_step=20)
    assert pc2.read_points(padded).dtype == PADDED_DTYPE
    subset = np.dtype({"names": ["z", "x"], "formats": ["f4", "f4"], "offsets": [8, 0], "itemsize": 20})
    assert pc2.read_points(padded, field_names=["z", "x"]).dtype == subset


def test_uvs_may_be_a_boolean_mask(pc2):
    """upstream indexes with an ndarray ``uvs`` as it is ("Don't convert to numpy array if it is already
    one"), so a boolean array selects points as a mask."""
    mask = np.array([True, False, True, False, False, True])
    assert same(pc2.read_points_numpy(XYZ_CLOUD, uvs=mask), POINTS[[0, 2, 5]])


@pytest.mark.parametrize("width, height, shape", [(6, 1, (6,)), (3, 2, (3, 2)), (2, 3, (2, 3))])
def test_reshape_organized_cloud_only_reshapes_organized_clouds(pc2, width, height, shape):
    """upstream: ``if reshape_organized_cloud and cloud.height > 1: points.reshape(cloud.width,
    cloud.height)``; read_points_numpy passes the flag on and adds the value axis."""
    msg = cloud(XYZ, POINTS.tobytes(), width=width, height=height)
    assert pc2.read_points(msg, reshape_organized_cloud=True).shape == shape
    values = pc2.read_points_numpy(msg, reshape_organized_cloud=True)
    assert values.shape == shape + (3,) and same(values.reshape(-1, 3), POINTS)


def test_read_points_numpy_passes_skip_nans_and_uvs_on(pc2):
    """read_points_numpy = structured_to_unstructured(read_points(cloud, field_names, skip_nans, uvs, ...)):
    the NaN point (index 4) dropped first, then uvs index what is left."""
    assert same(pc2.read_points_numpy(XYZ_CLOUD, skip_nans=True), POINTS[[0, 1, 2, 3, 5]])
    assert same(pc2.read_points_numpy(XYZ_CLOUD, skip_nans=True, uvs=[4, 0]), POINTS[[5, 0]])


def test_read_points_list_passes_its_arguments_on(pc2):
    """upstream read_points_list: namedtuples of type ``Point`` with the requested fields, from
    read_points(cloud, field_names, skip_nans, uvs): after dropping the point with a NaN y (index 4), uvs 3
    and 4 are points 3 and 5."""
    points = pc2.read_points_list(XYZ_CLOUD, field_names=["z", "y"], skip_nans=True, uvs=[3, 4])
    assert [type(p).__name__ for p in points] == ["Point", "Point"]
    assert all(p._fields == ("z", "y") for p in points)
    assert same(np.array(points), [[3.2, 3.1], [5.2, 5.1]])


@pytest.mark.parametrize("points", [POINTS.astype(np.float64), ROWS], ids=["float64-array", "list"])
@pytest.mark.parametrize("point_step", [None, 16])
def test_create_cloud_converts_to_the_fields_layout(pc2, points, point_step):
    """upstream create_cloud builds its records with dtype_from_fields(fields, point_step): float32 values
    for FLOAT32 fields whatever the input's type, and point_step bytes per point (12 for x, y, z)."""
    msg = pc2.create_cloud(Header(), XYZ, points, point_step)
    step = 12 if point_step is None else point_step
    assert (msg.point_step, msg.row_step, len(msg.data)) == (step, 6 * step, 6 * step)
    records = np.frombuffer(bytes(msg.data), dtype=np.dtype({"names": ["x", "y", "z"], "formats": ["f4"] * 3,
                                                              "offsets": [0, 4, 8], "itemsize": step}))
    assert same(structured_to_unstructured(records), POINTS)


def test_a_count_two_field_has_two_suffixed_members(pc2):
    """upstream dtype_from_fields: ``if field.count > 1`` the members are ``name_0 .. name_{count-1}``."""
    dtype = pc2.dtype_from_fields([field("uv", 0, count=2)])
    assert dtype.names == ("uv_0", "uv_1") and dtype.fields["uv_1"][1] == 4


def test_big_endian_cloud_reads_native_values():
    """upstream read_points byte-swaps a cloud whose is_bigendian differs from the host: values native.
    (Stand-in only: upstream swaps the message's own buffer in place.)"""
    big = cloud(XYZ, POINTS.astype(">f4").tobytes(), width=6, bigendian=True)
    points = standin.read_points(big)
    assert all(points.dtype[name].isnative for name in points.dtype.names)
    assert same(structured_to_unstructured(points), POINTS)
    assert same(standin.read_points_numpy(big), POINTS)


def test_structured_array_must_match_fields(pc2):
    """upstream create_cloud asserts the structured dtype equals the fields' (order, names, types)."""
    swapped = POINTS.view([("y", "f4"), ("x", "f4"), ("z", "f4")]).reshape(-1)
    with pytest.raises(AssertionError):
        pc2.create_cloud(Header(), XYZ, swapped)
    as_double = np.array(ROWS, dtype=[("x", "f8"), ("y", "f8"), ("z", "f8")])
    with pytest.raises(AssertionError):
        pc2.create_cloud(Header(), XYZ, as_double)


def test_count_field_round_trip_keeps_point_step(pc2):
    """count > 1 fields occupy count x size bytes: the point_step covers them (no lost y and z)."""
    fields = [field("xyz", 0, count=3), field("i", 12, PointField.UINT16)]
    rec = np.zeros(2, dtype=pc2.dtype_from_fields(fields))
    rec["xyz_0"], rec["xyz_1"], rec["xyz_2"], rec["i"] = [1, 4], [2, 5], [3, 6], [7, 8]
    msg = pc2.create_cloud(Header(), fields, rec)
    assert msg.point_step == 14
    back = pc2.read_points(msg)
    assert back["xyz_2"].tolist() == [3, 6] and back["i"].tolist() == [7, 8]


@pytest.mark.parametrize("height", [2, 3])
def test_row_padding_is_skipped(height):
    """PointCloud2.row_step may exceed width x point_step; the stand-in reads each row from its start
    (upstream assumes no row padding)."""
    width = 6 // height
    rows = np.concatenate([POINTS.reshape(height, 3 * width).view(np.uint8), np.full((height, 5), 9, np.uint8)],
                          axis=1)
    padded = cloud(XYZ, rows.tobytes(), width=width, height=height, row_step=12 * width + 5)
    assert same(standin.read_points_numpy(padded), POINTS)


@pytest.mark.timeout(60)
def test_a_field_with_a_huge_count_reads_in_linear_time(pc2):
    """A field with count 200 000 (200 kB per point, one DDS message) becomes 200 000 members
    ``pad_0 .. pad_199999``; checking each new name against a list of the earlier ones took ~200 s on this
    machine (quadratic), against a fraction of a second with a set. The deadline is generous."""
    count = 200_000
    step = 12 + count
    data = np.zeros((2, step), np.uint8)
    data[:, :12] = POINTS[:2].view(np.uint8).reshape(2, 12)
    data[1, -1] = 7
    msg = cloud(XYZ + [field("pad", 12, PointField.UINT8, count=count)], data.tobytes(), width=2, point_step=step)
    points = pc2.read_points(msg)
    assert same(structured_to_unstructured(points[["x", "y", "z"]]), POINTS[:2])
    assert points[f"pad_{count - 1}"].tolist() == [0, 7]
