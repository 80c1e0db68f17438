"""The depth node's parameters: one table with default, range and meaning, declared with descriptors.

``config/xdrcdepth.yaml`` holds the same defaults (``test/test_depth_node_params.py`` checks that they
agree); docs/depth_node.md ("Parameters") documents the table. Read-only parameters shape the node's graph or model and
are fixed at start-up; the others are read for every frame and can be changed at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)

from xdrcdepth_core.cli_args import short_repr
from xdrcdepth_core.imageio import DEFAULT_MAX_IMAGE_PIXELS

NODE_NAME = "xdrcdepth_node"
#: The most ``max_image_pixels`` may be set to (16384 x 16384). It changes at run time, so the node builds its
#: estimator with this bound and checks each frame against the parameter itself.
MAX_IMAGE_PIXELS_LIMIT = 1 << 28


class ParameterError(ValueError):
    """One or more parameters are invalid; the message names each (the node exits 2 at start-up)."""


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    read_only: bool = True
    range: tuple | None = None          # (from, to) for int/float parameters
    constraints: str = ""


PARAMETERS: tuple[Param, ...] = (
    Param("checkpoint", "", "Path of a self-describing xdrcdepth checkpoint. Empty: the checkpoint shipped "
          "in the package, or an untrained student (with a loud warning) while none is shipped."),
    Param("device", "auto", "Inference device: auto (cuda:0 when available, else cpu), cpu or cuda:N.",
          constraints="auto | cpu | cuda[:N]"),
    Param("backend", "auto", "Inference backend: auto (the fastest that runs here and passes the parity check "
          "against eager fp32; exports once per checkpoint and input size, cached), torch (eager), onnxruntime, "
          "openvino, tensorrt (CUDA).", constraints="auto | torch | onnxruntime | openvino | tensorrt"),
    Param("precision", "", "Inference precision: fp32, bf16, fp16 or int8; empty: the backend's best that "
          "passes the parity check (bf16 only on CPUs with native bf16).",
          constraints="'' | fp32 | bf16 | fp16 | int8"),
    Param("cpu_threads", 0, "torch CPU threads for inference (ONNX Runtime and OpenVINO use as many); 0 keeps "
          "torch's default.", range=(0, 256)),
    Param("image_transport", "raw", "raw: sensor_msgs/Image on 'image'; compressed: "
          "sensor_msgs/CompressedImage (JPEG/PNG) on 'image/compressed'.", constraints="raw | compressed"),
    Param("radar_topics", ["radar/points"], "PointCloud2 radar topics merged into one frame (e.g. the "
          "three front radars); relative names, remappable."),
    Param("queue_size", 10, "Approximate-time synchroniser queue per input.", range=(1, 100)),
    Param("slop", 0.1, "Largest stamp spread (s) of image, camera_info and radar clouds in one frame. "
          "nuScenes CAM_FRONT/RADAR_FRONT stamps differ by up to ~50 ms.", range=(0.001, 1.0)),
    Param("radar_timeout", 1.0, "Seconds (of image stamps) without a radar cloud after which the node "
          "publishes camera-only depth (empty radar raster) instead of nothing; diagnostics then warn "
          "'radar stale'. Fused depth resumes with the next cloud. 0: wait for radar forever. Keep it "
          "above the radar period plus slop (nuScenes radar: 13 Hz); a value in (0, slop] is refused.",
          read_only=False, range=(0.0, 60.0), constraints="0 | > slop"),
    Param("fixed_frame", "odom", "Frame fixed in the world used to compensate ego-motion between radar "
          "and camera stamps (tf2 lookup_transform_full); empty: no compensation."),
    Param("tf_timeout", 0.05, "Seconds to wait for a transform that has not arrived yet.",
          read_only=False, range=(0.0, 1.0)),
    Param("fallback_transforms", "", "Last-resort static extrinsics used when TF has no path between a "
          "radar and the camera: ';'-separated 'frame_id child_frame_id x y z qx qy qz qw'."),
    Param("max_radar_points", 10000, "Radar clouds with more points are rejected as bad input.",
          read_only=False, range=(1, 1_000_000)),
    Param("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS, "Images with more pixels (width x height) are rejected "
          "as bad input (image_too_large) before decoding: the header of a compressed image, the declared "
          "size of a raw one. The default, 4096 x 4096, fits every real camera.",
          read_only=False, range=(1, MAX_IMAGE_PIXELS_LIMIT)),
    Param("time_reset_threshold", 1.0, "A stamp this many seconds older than the newest one of its topic "
          "is a restart (looping bag): state resets. Image stamps not after the last published one are skipped.",
          range=(0.0, 3600.0)),
    Param("publish_colorized", True, "Publish depth/colorized (bgr8 Turbo colormap) when subscribed.",
          read_only=False),
    Param("colorize_max_depth", 80.0, "Depth (m) mapped to the far end of the colormap.",
          read_only=False, range=(1.0, 1000.0)),
    Param("publish_saliency", False, "Publish depth/saliency (Grad-CAM of the student over the image, "
          "bgr8) when subscribed; costs one backward pass per frame.", read_only=False),
    Param("publish_points", False, "Publish depth/points (PointCloud2 back-projection, optical frame) "
          "when subscribed.", read_only=False),
    Param("points_stride", 4, "Pixel stride of depth/points.", read_only=False, range=(1, 64)),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", range=(0.1, 60.0)),
)


def descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(name=p.name, description=p.description, read_only=p.read_only,
                            additional_constraints=p.constraints)
    if p.range is not None and isinstance(p.default, float):
        d.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]),
                                                     to_value=float(p.range[1]), step=0.0)]
    elif p.range is not None:
        d.integer_range = [IntegerRange(from_value=p.range[0], to_value=p.range[1], step=1)]
    return d


_KINDS = {bool: "a boolean", int: "an integer", float: "a double", str: "a string", list: "a string array"}


def _override(node, name: str):
    """The value given for ``name`` on the command line / params file (rclpy keeps them per node)."""
    parameter = getattr(node, "_parameter_overrides", {}).get(name)
    return getattr(parameter, "value", "<invalid>")


def declare(node, parameters: tuple[Param, ...] = PARAMETERS, check=None) -> None:
    """Declare every parameter on ``node`` (values from --params-file / -p override the defaults) and
    check each against its type, range and constraints (``check(values, node) -> [problems]``, by default
    the depth node's :func:`check_values`) before anything is built.

    Raises :class:`ParameterError` naming every bad parameter in one line.
    """
    check = check_values if check is None else check
    errors = []
    for p in parameters:
        try:
            node.declare_parameter(p.name, p.default, descriptor(p))
        except InvalidParameterTypeException:
            errors.append(f"{p.name} must be {_KINDS[type(p.default)]}, got {short_repr(_override(node, p.name))}")
        except InvalidParameterValueException:
            given = short_repr(_override(node, p.name))
            errors.append(f"{p.name} = {given} is outside [{p.range[0]}, {p.range[1]}]" if p.range
                          else f"{p.name} = {given} is invalid")
    declared = {}
    for p in parameters:
        if not node.has_parameter(p.name):
            continue
        try:
            declared[p.name] = node.get_parameter(p.name).value
        except ParameterUninitializedException:   # `-p name:=[]` or `name: []` / `name: ~` in a params file
            errors.append(f"{p.name} must be {_KINDS[type(p.default)]}, got no value (an empty list [] or null "
                          "has no ROS 2 parameter type)")
    errors += check(declared, node)
    if errors:
        raise ParameterError("bad parameters: " + "; ".join(errors))
    known = {p.name for p in parameters} | {"use_sim_time", "start_type_description_service"}
    unknown = sorted(name for name in getattr(node, "_parameter_overrides", {})
                     if name not in known and not name.startswith("qos_overrides."))
    if unknown:
        node.get_logger().warning(f"ignoring unknown parameters {', '.join(unknown)} (typo?); known: "
                                  f"{', '.join(p.name for p in parameters)}")


def check_device(device: str) -> str | None:
    """None if ``device`` is auto, cpu or an existing cuda[:N]; else what is wrong
    (:func:`xdrcdepth_core.device.device_problem`, imported here: it loads torch)."""
    from xdrcdepth_core.device import device_problem

    problem = device_problem(device)
    return f"device = {problem}" if problem else None


def resolve_topic(node, topic: str) -> tuple[str | None, str | None]:
    """``(resolved name, None)``, or ``(None, why it is not a valid topic name)``."""
    from rclpy.exceptions import InvalidTopicNameException
    from rclpy.subscription import RCLError

    if not topic.strip():
        return None, "empty"
    if node is None:
        return topic, None
    try:
        return node.resolve_topic_name(topic), None
    except (InvalidTopicNameException, RCLError) as exc:
        reason = re.sub(r", at /\S+:\d+", "", str(exc).splitlines()[0]).replace("failed to resolve name: ", "")
        return None, reason


def check_values(v: dict, node=None) -> list[str]:
    """Constraints beyond type and range, on the declared values (``node`` resolves topic names)."""
    errors = []
    if "device" in v and (problem := check_device(v["device"])):
        errors.append(problem)
    from xdrcdepth_core.backends import BACKENDS, PRECISIONS
    from xdrcdepth_core.checkpoint import file_problem

    if v.get("backend", "auto") not in ("auto", *BACKENDS):
        errors.append(f"backend = {short_repr(v['backend'])} is not one of auto, {', '.join(BACKENDS)}")
    if v.get("precision", "") not in ("", *PRECISIONS):
        errors.append(f"precision = {short_repr(v['precision'])} is not empty or one of {', '.join(PRECISIONS)}")
    if v.get("image_transport", "raw") not in ("raw", "compressed"):
        errors.append(f"image_transport = {short_repr(v['image_transport'])} is not raw or compressed")
    checkpoint = v.get("checkpoint", "")
    problem = file_problem(checkpoint) if checkpoint else None
    if problem:
        errors.append(f"checkpoint = {checkpoint!r}: {problem}")
    if "radar_topics" in v:
        topics = list(v["radar_topics"])
        if not topics:
            errors.append("radar_topics is empty (give at least one PointCloud2 topic)")
        resolved = []
        for topic in topics:
            name, problem = resolve_topic(node, topic)
            if problem:
                errors.append(f"radar_topics: {short_repr(topic)} is not a valid topic name ({problem})")
            else:
                resolved.append(name)
        duplicates = sorted({t for t in resolved if resolved.count(t) > 1})
        if duplicates:
            errors.append(f"radar_topics names {', '.join(duplicates)} more than once")
    if "radar_timeout" in v and (problem := radar_timeout_problem(v["radar_timeout"], v.get("slop", 0.0))):
        errors.append(problem)
    if v.get("fixed_frame", "").startswith("/"):
        errors.append(f"fixed_frame = {short_repr(v['fixed_frame'])}: tf2 frame ids do not start with '/'")
    if v.get("fallback_transforms"):
        from xdrcdepth_ros.node.transforms import static_transform_buffer

        try:
            static_transform_buffer(transform_specs(v["fallback_transforms"]))
        except ValueError as exc:
            errors.append(f"fallback_transforms: {exc}")
    return errors


def radar_timeout_problem(timeout_s: float, slop_s: float) -> str | None:
    """None unless ``0 < radar_timeout <= slop``: a cloud up to ``slop`` from the image still pairs with it, so
    a shorter timeout would send frames camera-only that the synchroniser is about to fuse."""
    if 0.0 < timeout_s <= slop_s:
        return (f"radar_timeout = {timeout_s!r} must be 0 (wait for every radar) or above slop = {slop_s!r} "
                "(keep it above the radar period plus slop)")
    return None


def transform_specs(text: str) -> list[str]:
    """The ``;``-separated specs of ``fallback_transforms``."""
    return [s.strip() for s in text.split(";") if s.strip()]


def values(node) -> SimpleNamespace:
    """Current values of all parameters."""
    return SimpleNamespace(**{p.name: node.get_parameter(p.name).value for p in PARAMETERS})
