"""sensor_msgs_py.point_cloud2 behaviour the stand-in must share with upstream, beyond the cases of
test/test_point_cloud2.py. Runs against the stand-in and, where installed, sensor_msgs_py.

Reference: ros2/common_interfaces ``sensor_msgs_py/sensor_msgs_py/point_cloud2.py`` (rolling):

* ``read_points_numpy`` asserts ``cloud.fields[0].datatype == field.datatype`` for every field after the
  first that is requested: the cloud's *first* field sets the datatype, whether it is requested or not;
* ``dtype_from_fields`` looks the datatype up in ``_DATATYPES`` (``KeyError`` for an unknown one) and asserts
  ``count > 0`` and unique names (AssertionError).
"""

import sys

import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from standin_params import implementations

IMPLEMENTATIONS = implementations("point_cloud2")


@pytest.fixture(params=IMPLEMENTATIONS)
def pc2(request):
    return request.param


RECORDS = np.array([(7, 1.0, 2.0), (9, 3.0, 4.0)], dtype=[("i", "u1"), ("x", "<f4"), ("y", "<f4")])
FIELDS = [PointField(name="i", offset=0, datatype=PointField.UINT8, count=1),
          PointField(name="x", offset=1, datatype=PointField.FLOAT32, count=1),
          PointField(name="y", offset=5, datatype=PointField.FLOAT32, count=1)]


def cloud(fields, records):
    return PointCloud2(header=Header(frame_id="f"), height=1, width=len(records), is_dense=False,
                       is_bigendian=sys.byteorder != "little", fields=fields, point_step=records.itemsize,
                       row_step=records.itemsize * len(records), data=records.tobytes())


def test_read_points_numpy_checks_against_the_clouds_first_field(pc2):
    """x and y share a datatype, but the cloud's first field (i, uint8) is another: upstream asserts."""
    msg = cloud(FIELDS, RECORDS)
    with pytest.raises(AssertionError):
        pc2.read_points_numpy(msg, field_names=["x", "y"])
    # the first field requested with one of its own datatype: fine
    swapped = cloud([FIELDS[1], FIELDS[2], FIELDS[0]], RECORDS)
    np.testing.assert_array_equal(pc2.read_points_numpy(swapped, field_names=["x", "y"]), [[1, 2], [3, 4]])


def test_unknown_datatype_is_a_key_error(pc2):
    """_DATATYPES[field.datatype]: an unknown datatype raises KeyError."""
    bad = [PointField(name="x", offset=0, datatype=42, count=1)]
    with pytest.raises(KeyError):
        pc2.dtype_from_fields(bad)
    with pytest.raises(KeyError):
        pc2.read_points(cloud(bad, np.zeros(2, dtype=[("x", "<f4")])))


def test_count_zero_and_duplicates_are_assertions(pc2):
    """dtype_from_fields asserts count > 0 and unique (sub)field names."""
    with pytest.raises(AssertionError):
        pc2.dtype_from_fields([PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=0)])
    with pytest.raises(AssertionError):
        pc2.dtype_from_fields([PointField(name="x_1", offset=0, datatype=PointField.FLOAT32, count=1),
                               PointField(name="x", offset=4, datatype=PointField.FLOAT32, count=2)])


def test_uvs_index_after_skip_nans(pc2):
    """read_points applies skip_nans first, then uvs indexes the remaining points."""
    pts = np.array([(0.0,), (np.nan,), (2.0,), (3.0,)], dtype=[("x", "<f4")])
    msg = cloud([PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1)], pts)
    got = pc2.read_points(msg, skip_nans=True, uvs=[1, 2])
    assert got["x"].tolist() == [2.0, 3.0]
    assert np.isnan(pc2.read_points(msg, uvs=iter([1]))["x"]).all()    # any iterable; NaN kept by default


def test_too_few_data_bytes_is_a_type_error(pc2):
    """read_points: np.ndarray(shape=(width * height,), buffer=cloud.data) raises TypeError when the buffer
    is too small for the points."""
    msg = cloud(FIELDS, RECORDS)
    msg.data = msg.data[:-1]
    with pytest.raises(TypeError):
        pc2.read_points(msg)


def _xyz_records(shape):
    return np.zeros(shape, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])


XYZ_FIELDS = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
U8_F32 = [PointField(name="i", offset=0, datatype=PointField.UINT8, count=1),
          PointField(name="x", offset=1, datatype=PointField.FLOAT32, count=1)]
F32_U8 = [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
          PointField(name="i", offset=4, datatype=PointField.UINT8, count=1)]
NOT_ORDERED = np.zeros(2, dtype=[("y", "<f4"), ("x", "<f4"), ("z", "<f4")])
MIXED_TEXT = (r"^All fields need to have the same datatype\. Pass a structured NumPy array\s+with multiple dtypes "
              r"otherwise\.$")


def _truncated(msg, nbytes):
    msg.data = msg.data[:nbytes]
    return msg


# upstream's assert messages (point_cloud2.py; whitespace of its backslash-continued strings as \s+)
@pytest.mark.parametrize("call, text", [
    (lambda pc2: pc2.read_points("not a cloud"), r"^Cloud is not a sensor_msgs\.msg\.PointCloud2$"),
    (lambda pc2: pc2.read_points_list("not a cloud"), r"^cloud is not a sensor_msgs\.msg\.PointCloud2$"),
    (lambda pc2: pc2.read_points_numpy(cloud(F32_U8, np.zeros(2, dtype=[("x", "<f4"), ("i", "u1")]))),
     r"^All fields need to have the same datatype\. Use `read_points\(\)` otherwise\.$"),
    (lambda pc2: pc2.create_cloud(Header(), U8_F32 + XYZ_FIELDS[1:], np.zeros((2, 3), np.float32)), MIXED_TEXT),
    (lambda pc2: pc2.create_cloud(Header(), F32_U8, np.zeros((2, 2), np.float32)), MIXED_TEXT),
    (lambda pc2: pc2.create_cloud(Header(), XYZ_FIELDS, NOT_ORDERED),
     r"^PointFields and structured NumPy array dtype do not match for all fields!\s+Check their field order, "
     r"names.* types.*\.$"),
    (lambda pc2: pc2.create_cloud(Header(), XYZ_FIELDS, _xyz_records((2, 2, 2))),
     r"^Too many dimensions for organized cloud!\s+Points can only be organized in max\. two dimensional "
     r"space$"),
    (lambda pc2: pc2.dtype_from_fields([PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=0)]),
     r"(?i)^(field 'x': )?can't process fields with count = 0\.?$"),
    (lambda pc2: pc2.dtype_from_fields([PointField(name="x_1", offset=0, datatype=PointField.FLOAT32, count=1),
                                        PointField(name="x", offset=4, datatype=PointField.FLOAT32, count=2)]),
     r"(?i)^duplicate field name"),
], ids=["read_points-not-a-cloud", "read_points_list-not-a-cloud", "read_points_numpy-two-datatypes",
        "create_cloud-first-field-differs", "create_cloud-second-field-differs", "create_cloud-dtype-mismatch",
        "create_cloud-3-d", "count-0", "duplicate"])
def test_assertions_carry_upstreams_messages(pc2, call, text):
    """Each check is an AssertionError with upstream's message (ours may name the field in front)."""
    with pytest.raises(AssertionError, match=text):
        call(pc2)


def test_unknown_datatype_error_names_the_datatype(pc2):
    """upstream's KeyError from ``_DATATYPES[field.datatype]`` reads as the datatype number."""
    with pytest.raises(KeyError) as error:
        pc2.dtype_from_fields([PointField(name="x", offset=0, datatype=42, count=1)])
    assert "42" in str(error.value)


@pytest.mark.parametrize("call, words", [
    (lambda pc2: pc2.dtype_from_fields([PointField(name="x", offset=0, datatype=42, count=1)]),
     ["'x'", "42"]),
    (lambda pc2: pc2.read_points(cloud(F32_U8, np.zeros(2, dtype=[("x", "<f4"), ("i", "u1")])), ["intensity"]),
     ["['intensity']", "['x', 'i']"]),
    (lambda pc2: pc2.dtype_from_fields(XYZ_FIELDS, point_step=8), ["point_step 8"]),
    (lambda pc2: pc2.read_points(_truncated(cloud(FIELDS, RECORDS), 8)), ["8 data bytes", "2 points"]),
], ids=["unknown-datatype", "unknown-field", "point-step-too-small", "truncated"])
def test_standin_errors_name_what_is_wrong(call, words):
    """Stand-in only (upstream's messages are fixed texts or numpy's): the message names the culprit."""
    from xdrcdepth_ros.standins import point_cloud2

    with pytest.raises(AssertionError) as error:
        call(point_cloud2)
    assert all(word in str(error.value) for word in words), str(error.value)
