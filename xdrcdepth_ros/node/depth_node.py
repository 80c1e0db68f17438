"""The xdrcdepth ROS 2 node: synchronised camera + radar in, dense metric depth (REP 118) out.

Data flow (docs/depth_node.md has the topics, parameters and TF in full)::

    image + camera_info + radar clouds --message_filters.ApproximateTimeSynchronizer--> latest-frame slot
    image + camera_info, radar stale (radar_timeout) -------------- camera-only frame --> latest-frame slot
    worker thread: messages --conversions--> numpy, TF radar->camera (ego-motion compensated)
                   --xdrcdepth_core.infer.DepthEstimator.estimate--> depth/image, depth/camera_info,
                   depth/colorized, depth/saliency, depth/points
    timer: /diagnostics

``message_filters``, ``tf2_ros``, ``cv_bridge`` and ``sensor_msgs_py`` are the upstream libraries where
importable, else the stand-ins in :mod:`xdrcdepth_ros.standins`.

Lazy, as image_pipeline nodes: while no output topic has a subscriber (a switched-off output's do not count),
synchronised frames are counted and skipped (no decoding, no inference; diagnostics say "idle"); the first
subscriber resumes the work.

Radar that stops: the fused synchroniser needs a cloud from every radar topic, so a silent radar would
silence the node. A second synchroniser pairs image and camera_info alone; when a radar topic's newest
cloud is more than ``radar_timeout`` (image-stamp time) behind the image, that frame goes out with the
other radars' nearest clouds (within ``slop``), or camera-only (empty radar raster) when none is left,
and diagnostics warn "radar stale"; it waits ``slop`` (steady time) first, for its own clouds that DDS may
deliver just after it. The next cloud makes the topic fresh again: fused depth resumes. A
cloud stamped more than ``time_reset_threshold`` after the image does not count as fresh (one bogus
future stamp would otherwise keep the topic fresh for ever). A cloud with no points is the radar seeing
nothing: the frame goes out with an empty raster for it.

Callbacks never block: the synchroniser callback only stores the newest frame in a one-slot buffer
(overwriting an unprocessed one counts as a dropped frame), and a single worker thread runs inference,
so memory stays bounded however fast inputs arrive. Every bad input is counted per reason, logged with
the reason (at most once per 5 s per reason), and skipped; nothing a message contains stops the node.

QoS: every input subscribes through ``input_qos`` (keep last ``queue_size``, BEST_AVAILABLE: reliable
unless a best-effort publisher exists, re-created best effort when one appears; ``input_qos`` has the
measurements behind this), overridable per topic with the standard
``qos_overrides./<topic>.subscription.<policy>`` parameters; outputs are RELIABLE, depth 5, volatile (RViz's
default); /tf* as tf2_ros.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from xdrcdepth_core import visualize
from xdrcdepth_core.backends import BackendUnavailable
from xdrcdepth_core.infer import DepthEstimator, RadarInput
from xdrcdepth_ros.node import conversions as conv
from xdrcdepth_ros.node import params as node_params
from xdrcdepth_ros.node.conversions import BadInput
from xdrcdepth_ros.node.diagnostics import INTERNAL_ERROR, NodeStats, ThrottledLog
from xdrcdepth_ros.node.input_qos import message_filters, subscribe_input
from xdrcdepth_ros.node.run import SHUTDOWN_TIMEOUT_S, node_help, run_node
from xdrcdepth_ros.node.sync_queues import drop_queued
from xdrcdepth_ros.node.transport_topics import camera_info_topic, compressed_topic
from xdrcdepth_ros.node.tf_restarts import TransformListenerClearingOnRestart
from xdrcdepth_ros.node.transforms import static_transform_buffer, transform_to_matrix
from xdrcdepth_ros.node.valid_stamps import ValidStamps
from xdrcdepth_ros.standins import active, implementation
from xdrcdepth_ros.standins import tf2_ros as standin_tf2_ros

tf2_ros = active("tf2_ros")

OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
TF_CACHE = Duration(seconds=10.0)
#: Seconds a stop waits for the frame in progress: half the clean-up's bound, the rest is rclpy's teardown.
WORKER_STOP_S = SHUTDOWN_TIMEOUT_S / 2


@dataclass
class Frame:
    """One synchronised set of input messages and when it became complete (monotonic seconds)."""

    image: object
    camera_info: CameraInfo
    radars: tuple
    synced_at: float
    radar_stale: tuple = ()     # radar topics this frame goes without (radar_timeout passed)
    image_restarts: int = 0     # restarts of the image stamps (a looping bag) before this frame became complete


def _stamp_ns(header) -> int:
    return Time.from_msg(header.stamp).nanoseconds


class DepthNode(Node):
    """Camera + radar -> dense metric depth with the xdrcdepth student (see module docstring)."""

    def __init__(self, **kwargs):
        super().__init__(node_params.NODE_NAME, **kwargs)
        node_params.declare(self)   # every parameter checked (ParameterError) before anything is built
        p = node_params.values(self)
        self.add_on_set_parameters_callback(self._check_new_parameters)
        self.compressed = p.image_transport == "compressed"
        if p.cpu_threads > 0:
            import torch
            torch.set_num_threads(p.cpu_threads)
        # auto may export the checkpoint once (cached): a node runs long enough to pay that back
        self.estimator = DepthEstimator.from_checkpoint(p.checkpoint or None, device=p.device, backend=p.backend,
                                                        precision=p.precision or None, allow_export=True,
                                                        max_image_pixels=node_params.MAX_IMAGE_PIXELS_LIMIT)
        if self.estimator.model_id.endswith("@untrained"):
            self.get_logger().warning(
                "NO TRAINED CHECKPOINT: publishing depth from an UNTRAINED student; values are "
                "meaningless. Set the 'checkpoint' parameter.")
        self.fixed_frame = p.fixed_frame
        self.time_reset_ns = int(p.time_reset_threshold * 1e9)
        self.fallback_tf = static_transform_buffer(node_params.transform_specs(p.fallback_transforms))

        self.tf = tf2_ros.Buffer(cache_time=TF_CACHE, node=self)
        self.tf_listener = TransformListenerClearingOnRestart(self.tf, self, self._tf_restarted)

        self.depth_pub = self.create_publisher(Image, "depth/image", OUTPUT_QOS)
        self.info_pub = self.create_publisher(CameraInfo, camera_info_topic(self, "depth/image", "depth/camera_info"),
                                              OUTPUT_QOS)
        self.colorized_pub = self.create_publisher(Image, "depth/colorized", OUTPUT_QOS)
        self.saliency_pub = self.create_publisher(Image, "depth/saliency", OUTPUT_QOS)
        self.points_pub = self.create_publisher(PointCloud2, "depth/points", OUTPUT_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        image_type, image_topic = ((CompressedImage, compressed_topic(self, "image")) if self.compressed
                                   else (Image, "image"))

        inputs = [subscribe_input(self, image_type, image_topic, p.queue_size, large_samples=not self.compressed),
                  subscribe_input(self, CameraInfo, camera_info_topic(self, "image", "camera_info"), p.queue_size)]
        inputs += [subscribe_input(self, PointCloud2, topic, p.queue_size) for topic in p.radar_topics]
        self.stats = NodeStats(time.monotonic(), image_topic=inputs[0].sub.topic_name,
                               input_topics=tuple(f.sub.topic_name for f in inputs))
        for f in inputs:  # registered before the synchroniser: counts arrivals before matching
            f.registerCallback(lambda _msg, topic=f.sub.topic_name:
                               self.stats.received(topic, time.monotonic()))
        self.inputs = inputs
        self.log_throttle = ThrottledLog(period_s=5.0)
        # what reads stamps (radar watch, synchronisers, TF) only sees messages whose stamp is a time
        valid = [ValidStamps(f, f.sub.topic_name, self._invalid_stamp) for f in inputs]
        # restarts (a looping bag) are seen per input before a synchroniser queues the message (sync_queues)
        self._input_newest: list[int | None] = [None] * len(valid)
        self._image_restarts = 0
        for index, f in enumerate(valid):
            f.registerCallback(lambda msg, index=index: self._input_arrived(index, msg))
        # radar watch (executor thread only): newest stamp and recent clouds per radar topic
        self.radar_topics = [f.sub.topic_name for f in inputs[2:]]
        self.slop_ns = int(p.slop * 1e9)
        self._radar_newest: dict[str, int | None] = dict.fromkeys(self.radar_topics)
        self._radar_recent = {topic: deque(maxlen=p.queue_size) for topic in self.radar_topics}
        self._watch_start_ns: int | None = None        # image stamp the radar watch (re)started at
        self._watch_last_ns: int | None = None
        self._camera_only_stamps: deque[int] = deque(maxlen=4 * p.queue_size)
        self._fused_stamps: deque[int] = deque(maxlen=4 * p.queue_size)
        for f, topic in zip(valid[2:], self.radar_topics):
            f.registerCallback(lambda msg, topic=topic: self._radar_arrived(topic, msg))
        self.synchronizer = message_filters.ApproximateTimeSynchronizer(valid, p.queue_size, p.slop)
        self.synchronizer.registerCallback(self._on_synced)
        self.camera_synchronizer = message_filters.ApproximateTimeSynchronizer(valid[:2], p.queue_size, p.slop)
        self.camera_synchronizer.registerCallback(self._on_camera_synced)

        self._uncompensated_said: set[str] = set()
        self._slot: Frame | None = None
        self._slot_cv = threading.Condition()
        self._stopping = False
        self._image_restarts_seen = 0                # by the worker
        self._last_seen_ns: int | None = None        # newest image stamp the worker took since the last restart
        self._last_published_ns: int | None = None   # output stamps strictly increase after this
        self.worker = threading.Thread(target=self._work, name="xdrcdepth_worker", daemon=True)
        self.worker.start()
        # steady clock: diagnostics keep coming while a bag (use_sim_time) is paused; stamps use node time
        self.diag_timer = self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                                            clock=Clock(clock_type=ClockType.STEADY_TIME))

        self.get_logger().info(
            f"model {self.estimator.model_id} on {self.estimator.device}; backend "
            f"{self.estimator.backend.description}; sync "
            f"{implementation('message_filters')}, TF {implementation('tf2_ros')}, images "
            f"{conv.IMAGE_BACKEND}, clouds {conv.CLOUD_BACKEND}; "
            f"inputs {[f.sub.topic_name for f in inputs]}; "
            + ", ".join(f"{k}={v!r}" for k, v in vars(p).items()))

    def _check_new_parameters(self, parameters) -> SetParametersResult:
        """Run-time changes meet the constraints that depend on another parameter (ranges: the descriptors)."""
        for parameter in parameters:
            if parameter.name == "radar_timeout":
                problem = node_params.radar_timeout_problem(parameter.value, self.get_parameter("slop").value)
                if problem:
                    return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    # -- executor side (never blocks) --------------------------------------------------------------
    def _tf_restarted(self, child_frame: str, seconds_back: float) -> None:
        if self.log_throttle.should_log("tf_restart", time.monotonic())[0]:
            self.get_logger().info(f"TF stamps of '{child_frame}' went back {seconds_back:.3f} s: restart (e.g. a "
                                   "looping bag); dynamic transforms cleared")

    def _on_synced(self, image, camera_info, *radars) -> None:
        t = _stamp_ns(image.header)
        if t in self._camera_only_stamps:
            return  # a late cloud for a frame already published without it
        self._fused_stamps.append(t)
        self._offer(Frame(image, camera_info, radars, time.monotonic(), image_restarts=self._image_restarts))

    def _on_camera_synced(self, image, camera_info) -> None:
        """Image + camera_info matched: a frame of its own only while some radar topic is stale. It waits
        ``slop`` seconds (steady time) for its clouds first: after a radar's silence the next frame's own cloud
        may arrive just after the image (DDS delivers topics in no order), and then the fused synchroniser
        publishes the frame with it (a black-box run: published camera-only whenever the image came first)."""
        timeout_s = self.get_parameter("radar_timeout").value
        if timeout_s <= 0 or not self.radar_topics:
            return
        t = _stamp_ns(image.header)
        self._watch(t)
        stale = tuple(topic for topic in self.radar_topics
                      if t - self._radar_heard_ns(topic, t) > timeout_s * 1e9)
        if not stale:
            return  # the fused synchroniser handles this frame
        restarts, arrived = self._image_restarts, time.monotonic()
        if self.slop_ns == 0:
            self._offer_camera_only(image, camera_info, stale, restarts, arrived)
            return
        timer = None

        def due() -> None:
            self.destroy_timer(timer)
            if t not in self._fused_stamps:
                self._offer_camera_only(image, camera_info, stale, restarts, arrived)

        timer = self.create_timer(self.slop_ns / 1e9, due, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _offer_camera_only(self, image, camera_info, stale: tuple, image_restarts: int, arrived: float) -> None:
        """The frame without the radars that are still silent: each other radar's nearest cloud within slop."""
        t = _stamp_ns(image.header)
        near = {}
        for topic in self.radar_topics:
            clouds = [m for m in self._radar_recent[topic] if abs(_stamp_ns(m.header) - t) <= self.slop_ns]
            if clouds:
                near[topic] = min(clouds, key=lambda m: abs(_stamp_ns(m.header) - t))
        self._camera_only_stamps.append(t)
        self._offer(Frame(image, camera_info, tuple(near.values()), arrived,
                          radar_stale=tuple(topic for topic in stale if topic not in near),
                          image_restarts=image_restarts))

    def _watch(self, t: int) -> None:
        """Start (or, after image stamps jumped back past time_reset_threshold, restart) the radar watch."""
        if self._watch_last_ns is None or t < self._watch_last_ns - self.time_reset_ns:
            self._watch_start_ns = self._watch_last_ns = t
            self._radar_newest = dict.fromkeys(self.radar_topics)
        self._watch_last_ns = max(self._watch_last_ns, t)

    def _radar_heard_ns(self, topic: str, t: int) -> int:
        """Stamp the radar topic was last heard at, as seen from image stamp ``t``: its newest cloud's, unless
        that lies more than ``time_reset_threshold`` after ``t`` (a bogus future stamp must not keep the topic
        fresh for ever); never before the watch started."""
        newest = self._radar_newest[topic]
        if newest is None or newest - t > self.time_reset_ns:
            return self._watch_start_ns
        return max(newest, self._watch_start_ns)

    def _input_arrived(self, index: int, msg) -> None:
        """A stamp more than ``time_reset_threshold`` behind its input's newest is a restart of that input (a
        looping bag): what the synchronisers, the radar watch and the camera-only frames hold of it is from
        before and is dropped (:mod:`.sync_queues` says why), and an image restart starts the output over
        (:meth:`_check_stamp`). The message after a single bogus future stamp clears that stamp the same way."""
        t = _stamp_ns(msg.header)
        newest = self._input_newest[index]
        if newest is not None and newest - t > self.time_reset_ns:
            dropped = drop_queued(self.synchronizer, index)
            if index < 2:     # image, camera_info: the camera-only synchroniser's inputs too
                dropped += drop_queued(self.camera_synchronizer, index)
            topic = self.inputs[index].sub.topic_name
            if topic in self._radar_recent:
                self._radar_recent[topic].clear()
            if index == 0:
                self._camera_only_stamps.clear()
                self._fused_stamps.clear()
                for recent in self._radar_recent.values():   # the clouds of before, stamped ahead of the images
                    kept = [m for m in recent if _stamp_ns(m.header) - t <= self.time_reset_ns]
                    recent.clear()
                    recent.extend(kept)
                self._image_restarts += 1
            if dropped and self.log_throttle.should_log("restart", time.monotonic())[0]:
                self.get_logger().info(f"{topic} stamps went back {(newest - t) / 1e9:.3f} s: restart; "
                                       f"{len({id(m) for m in dropped})} unmatched messages of before it dropped")
            newest = t
        self._input_newest[index] = t if newest is None else max(newest, t)

    def _radar_arrived(self, topic: str, cloud) -> None:
        t = _stamp_ns(cloud.header)
        newest = self._radar_newest[topic]
        # a newer stamp, or one after a bogus far-future stamp (which it then replaces)
        if newest is None or t > newest or newest - t > self.time_reset_ns:
            self._radar_newest[topic] = t
        self._radar_recent[topic].append(cloud)

    def _invalid_stamp(self, topic: str, problem: str) -> None:
        self._reject("bad_stamp", f"{topic}: {problem}")

    def _offer(self, frame: Frame) -> None:
        """A synchronised frame for the worker, unless nobody listens (then counted as idle)."""
        self.stats.matched(frame.synced_at)
        if not self._listened():
            self.stats.skipped_idle()
            return
        self.stats.taken()
        with self._slot_cv:
            if self._slot is not None:
                self.stats.dropped()
            self._slot = frame
            self._slot_cv.notify()

    def _listened(self) -> bool:
        """Whether an output the node would publish has a subscriber. A subscriber to a switched-off output
        (``publish_colorized``, ``publish_saliency``, ``publish_points`` false) gets nothing, so it does not
        make the node decode and infer every frame for no one."""
        outputs = ((self.depth_pub, None), (self.info_pub, None), (self.colorized_pub, "publish_colorized"),
                   (self.saliency_pub, "publish_saliency"), (self.points_pub, "publish_points"))
        # per synchronised frame: a switch parameter is read only for an output somebody subscribes to
        return any(pub.get_subscription_count() > 0 and (switch is None or self.get_parameter(switch).value)
                   for pub, switch in outputs)

    def _publish_diagnostics(self) -> None:
        self.diag_pub.publish(self.stats.diagnostic_array(
            time.monotonic(), self.get_clock().now().to_msg(), f"{self.get_name()}: depth estimation",
            self.estimator.device, self.estimator.model_id, backend=self.estimator.backend_name,
            precision=self.estimator.precision))

    # -- worker side ---------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._slot_cv:
                while self._slot is None and not self._stopping:
                    self._slot_cv.wait()
                if self._stopping:
                    return
                frame, self._slot = self._slot, None
            try:
                self._process(frame)
            except BadInput as exc:
                self._reject(exc.reason, exc.detail)
            except Exception as exc:  # a bug or a device error must not end the worker
                if self._stopping:
                    return
                self._reject(INTERNAL_ERROR, f"{exc!r}\n{traceback.format_exc()}")

    def _reject(self, reason: str, detail: str) -> None:
        self.stats.rejected(reason)
        log, suppressed = self.log_throttle.should_log(reason, time.monotonic())
        if log:
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            if reason == INTERNAL_ERROR:
                self.get_logger().error(f"inference failed, frame skipped [{reason}]: {detail}{more}")
            else:
                self.get_logger().warning(f"skipped bad input [{reason}]: {detail}{more}")

    def _uncompensated(self, pair: str, detail: str) -> None:
        """A cloud used without ego-motion compensation: counted each time, said once per radar/camera pair."""
        self.stats.uncompensated()
        if pair not in self._uncompensated_said:
            self._uncompensated_said.add(pair)
            self.get_logger().warning(f"radar not ego-motion compensated ({pair}): {detail}; publishing "
                                      "uncompensated depth (said once; counted in diagnostics). Set "
                                      "fixed_frame '' if there is no odometry")

    def _check_stamp(self, frame: Frame) -> int:
        """The image stamp in ns, if it may be published: outputs are strictly increasing in time.

        A frame that published nothing (a missing transform, a bad cloud) does not block a later copy
        with the same stamp. After a restart of the image stamps (``_input_arrived``: a looping bag) output
        starts over. (Transforms are not cleared here: by now the new loop's first transforms may have arrived;
        the TF listener clears them when its own stamps start over, :mod:`.tf_restarts`.)
        """
        stamp = _stamp_ns(frame.image.header)
        if frame.image_restarts != self._image_restarts_seen:
            self._image_restarts_seen = frame.image_restarts
            seen, self._last_seen_ns, self._last_published_ns = self._last_seen_ns, None, None
            if seen is not None and seen - stamp > self.time_reset_ns:
                self.get_logger().info(f"image stamps went back {(seen - stamp) / 1e9:.3f} s: restart (e.g. a looping "
                                       "bag); output starts over")
        self._last_seen_ns = stamp if self._last_seen_ns is None else max(self._last_seen_ns, stamp)
        last = self._last_published_ns
        if last is not None and stamp <= last:
            raise BadInput("stamp_out_of_order", f"image stamp {stamp / 1e9:.6f} s is not after the last "
                                                 f"published one, {last / 1e9:.6f} s")
        return stamp

    def _process(self, frame: Frame) -> None:
        p = node_params.values(self)
        header = frame.image.header
        stamp = self._check_stamp(frame)
        rgb = (conv.rgb_from_compressed(frame.image, p.max_image_pixels) if self.compressed
               else conv.rgb_from_image(frame.image, p.max_image_pixels))
        K = conv.intrinsics_from_camera_info(frame.camera_info, rgb.shape[:2])
        radars = [r for r in (self._radar_input(cloud, header, p) for cloud in frame.radars)
                  if r is not None]
        if not radars and not frame.radar_stale:
            return  # every cloud was rejected (and counted) already
        want_saliency = p.publish_saliency and self.saliency_pub.get_subscription_count() > 0
        result = self.estimator.estimate(rgb, radars, K, saliency=want_saliency)

        self.depth_pub.publish(conv.depth_image(result.depth, header))
        self._last_published_ns = stamp
        self.info_pub.publish(conv.depth_camera_info(frame.camera_info, header))
        if p.publish_colorized and self.colorized_pub.get_subscription_count() > 0:
            rgb_depth = visualize.colorize_depth(result.depth, max_depth=p.colorize_max_depth)
            self.colorized_pub.publish(conv.bgr8_image(rgb_depth, header))
        if want_saliency:
            self.saliency_pub.publish(conv.bgr8_image(visualize.overlay_saliency(rgb, result.saliency),
                                                      header))
        if p.publish_points and self.points_pub.get_subscription_count() > 0:
            self.points_pub.publish(conv.depth_to_cloud(result.depth, K, header, p.points_stride))
        now = time.monotonic()
        self.stats.published(now, now - frame.synced_at, result.timings.get("forward", float("nan")),
                             radar_stale=frame.radar_stale)

    def _radar_input(self, cloud: PointCloud2, camera_header, p) -> RadarInput | None:
        """One cloud as the core's RadarInput, or None (counted and logged) if it cannot be used."""
        source = cloud.header.frame_id or "<no frame_id>"
        try:
            xyz, features, n_nonfinite = conv.radar_from_cloud(cloud, self.estimator.radar_fields,
                                                               p.max_radar_points)
            if n_nonfinite:
                self._reject("radar_nonfinite_points",
                             f"dropped {n_nonfinite} points with a NaN/inf coordinate or feature from {source}")
            # no (finite) point: the radar saw nothing, which the model takes as an empty raster; no TF needed
            T = (self._camera_from_radar(camera_header, cloud.header, p.tf_timeout) if len(xyz)
                 else np.eye(4))
        except BadInput as exc:
            self._reject(exc.reason, exc.detail)
            return None
        return RadarInput(xyz=xyz, features=features, T_cam_from_radar=T)

    def _camera_from_radar(self, camera_header, radar_header, timeout_s: float):
        """4 x 4 T_camera(camera stamp)_from_radar(radar stamp): TF through ``fixed_frame`` when it exists,
        else TF at the radar stamp (no ego-motion compensation), else the fallback extrinsics."""
        camera, radar = camera_header.frame_id, radar_header.frame_id
        t_camera, t_radar = Time.from_msg(camera_header.stamp), Time.from_msg(radar_header.stamp)
        timeout = Duration(seconds=timeout_s)
        pair = f"{radar} -> {camera}"
        why_uncompensated = None
        if self.fixed_frame:
            if self.tf.can_transform(self.fixed_frame, camera, Time()):
                try:
                    return transform_to_matrix(self.tf.lookup_transform_full(
                        camera, t_camera, radar, t_radar, self.fixed_frame, timeout).transform)
                except tf2_ros.TransformException as exc:
                    why_uncompensated = f"no path via '{self.fixed_frame}' at both stamps ({exc})"
            else:
                why_uncompensated = f"fixed frame '{self.fixed_frame}' is not connected to '{camera}'"
        try:  # radar == camera frame: the identity, as tf2 answers even with no TF at all
            T = transform_to_matrix(self.tf.lookup_transform(camera, radar, t_radar, timeout).transform)
        except tf2_ros.TransformException as exc:
            error = exc
            try:
                T = transform_to_matrix(self.fallback_tf.lookup_transform(camera, radar, Time()).transform)
            except standin_tf2_ros.TransformException:
                raise BadInput("missing_tf", f"no transform {radar} -> {camera} in TF ({error}) and none "
                                             "in fallback_transforms") from None
        if not np.all(np.isfinite(T)):   # tf2 refuses NaN only: an inf translation would reach every point
            raise BadInput("bad_tf", f"transform {pair} is not finite: {T[:3].reshape(-1).tolist()}")
        if why_uncompensated:   # said only for a cloud that is used
            self._uncompensated(pair, why_uncompensated)
        return T

    def destroy_node(self) -> None:
        if hasattr(self, "worker"):   # not when __init__ stopped early (bad parameters, bad checkpoint)
            with self._slot_cv:
                self._stopping = True
                self._slot_cv.notify_all()
            self.worker.join(timeout=WORKER_STOP_S)
            if self.worker.is_alive():   # inside one frame's forward pass: a slow CPU, a huge input
                self.left_running = True   # run_node ends the process without waiting for it
                self.get_logger().warning(f"stopping without the frame in progress: its inference ran on past "
                                          f"{WORKER_STOP_S:g} s of the stop")
        super().destroy_node()


HELP = node_help(
    "depth_node", "Radar-camera depth (node name xdrcdepth_node): synchronised image (or image/compressed), "
    "camera_info and radar/points (PointCloud2) in; depth/image (32FC1 metres, REP 118), depth/camera_info, "
    "depth/colorized, depth/saliency, depth/points and /diagnostics out.", node_params.PARAMETERS,
    "docs/depth_node.md")


def main(args=None) -> int:
    # bad parameters or checkpoint: "cannot start: <reason>", exit code 2
    return run_node(DepthNode, node_params.NODE_NAME, help_text=HELP,
                    startup_errors=(ValueError, OSError, KeyError, BackendUnavailable),
                    args=args)


if __name__ == "__main__":
    sys.exit(main())
