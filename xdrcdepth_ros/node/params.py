"""The depth node's parameters: one table with default, range and meaning, declared with descriptors.

``config/xdrcdepth.yaml`` holds the same defaults (``test/test_depth_node_params.py`` checks that they
agree); README.md ("ROS 2 node") documents the table. Read-only parameters shape the node's graph or model and
are fixed at start-up; the others are read for every frame and can be changed at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

NODE_NAME = "xdrcdepth_node"


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
    Param("cpu_threads", 0, "torch CPU threads for inference; 0 keeps torch's default.", range=(0, 256)),
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
          "above the radar period plus slop (nuScenes radar: 13 Hz).", read_only=False, range=(0.0, 60.0)),
    Param("fixed_frame", "odom", "Frame fixed in the world used to compensate ego-motion between radar "
          "and camera stamps (tf2 lookup_transform_full); empty: no compensation."),
    Param("tf_timeout", 0.05, "Seconds to wait for a transform that has not arrived yet.",
          read_only=False, range=(0.0, 1.0)),
    Param("fallback_transforms", "", "Last-resort static extrinsics used when TF has no path between a "
          "radar and the camera: ';'-separated 'frame_id child_frame_id x y z qx qy qz qw'."),
    Param("max_radar_points", 10000, "Radar clouds with more points are rejected as bad input.",
          read_only=False, range=(1, 1_000_000)),
    Param("time_reset_threshold", 1.0, "An image stamp this many seconds older than the newest one is a "
          "restart (looping bag): state resets. Stamps not after the last published one are skipped.",
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


def declare(node) -> None:
    """Declare every parameter on ``node`` (values from --params-file / -p override the defaults)."""
    for p in PARAMETERS:
        node.declare_parameter(p.name, p.default, descriptor(p))


def values(node) -> SimpleNamespace:
    """Current values of all parameters."""
    return SimpleNamespace(**{p.name: node.get_parameter(p.name).value for p in PARAMETERS})
