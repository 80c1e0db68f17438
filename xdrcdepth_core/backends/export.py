"""Exports: ONNX through ``torch.onnx.export(dynamo=True)``, OpenVINO IR from that ONNX, int8 by static QDQ
quantisation; the artefact cache; and the ``xdrcdepth export`` command.

Why the dynamo exporter: the TorchScript-path export (``dynamo=False``, opset 18) of the student did not
reproduce eager outputs (mean |Δdepth| 1.8 m, env.md); the dynamo export matched to ~1e-5 m. Every artefact
is verified against eager PyTorch on real frames (:mod:`.parity`) before anything uses it.

Artefacts are cached per model, weights (SHA-256), input size, batch and exporter versions under
``cache_root()/exports/<model>_<h>x<w>_b<batch>_<key>/`` (``model.onnx``, ``model_fp16.onnx``,
``model_int8.onnx``, ``openvino_<precision>.xml/.bin``), so a node restart or a second tool reuses them.

``xdrcdepth export --checkpoint C --format onnx|openvino [--precision fp32|bf16|fp16|int8] [--out PATH]
[--frames CACHE]`` exports a checkpoint (no checkpoint: the untrained default student), verifies it on the
real frames (``--frames``: a ``prepare`` cache such as the validation set) and writes the artefact plus
``<artefact>.parity.json``; a failed parity check writes no artefact and exits with status 1. An OpenVINO IR
is a pair of files, so ``--out x.xml`` writes (and replaces) ``x.bin`` as well: both are written complete
under temporary names first, then put in place, so an interrupted export leaves the previous pair whole.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from xdrcdepth_core.atomic import FILE_MODE, atomic_write_bytes, atomic_writer, temp_prefix
from xdrcdepth_core.backends.base import DepthOnly, PRECISIONS
from xdrcdepth_core.backends.capability import import_runtime
from xdrcdepth_core.backends.frames import (CALIBRATION_FRAMES, Frame, cache_root, frames_for,
                                           load_cache_frames)
from xdrcdepth_core.cli_args import os_error_line, output_overlap, path_argument, positive_int, say
from xdrcdepth_core.device import add_device_argument

LOG = logging.getLogger(__name__)

#: bump when the export recipe changes: cached artefacts of older recipes are not reused
EXPORT_FORMAT = 1
OPSET = 18
INPUT_NAMES, OUTPUT_NAME = ("image", "radar"), "depth"


def artefact_dir(model_name: str, weights_sha: str, input_hw, batch: int = 1) -> Path:
    """The cache folder of one model/weights/input size (not created here)."""
    key = json.dumps({"format": EXPORT_FORMAT, "model": model_name, "weights": weights_sha,
                      "hw": list(input_hw), "batch": batch, "torch": torch.__version__, "opset": OPSET},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "exports" / f"{model_name}_{input_hw[0]}x{input_hw[1]}_b{batch}_{digest}"


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter prints progress and warns about torchvision ops (absent here, unused)."""
    names = ("torch.onnx", "torch.onnx._internal.exporter._registration", "torch._export", "torch.export",
             "onnxscript", "onnx_ir")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def _atomic_path(path: Path):
    """A temporary path beside ``path`` (same folder, hidden) for writers that want a file name; it has the
    finished file's permissions already (mkstemp's 0600 stayed with an exported graph: writers reopen the file,
    which keeps its mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return Path(tmp)


def export_onnx(model: torch.nn.Module, input_hw, path: str | os.PathLike, radar_channels: int,
                batch: int = 1, precision: str = "fp32") -> Path:
    """Export ``(image, radar) -> depth`` of ``model`` to ONNX with the dynamo exporter (static shapes).

    ``precision="fp16"`` exports a half-precision copy (float32 inputs and output, casts inside).
    """
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"ONNX graphs are exported as fp32 or fp16 (int8: quantize_int8), not {precision}")
    path = Path(path)
    if precision == "fp16":
        wrapper = DepthOnly(copy.deepcopy(model).half(), dtype=torch.float16)
    else:
        wrapper = DepthOnly(model)
    wrapper = wrapper.eval().cpu()
    h, w = input_hw
    example = (torch.zeros(batch, 3, h, w), torch.zeros(batch, radar_channels, h, w))
    tmp = _atomic_path(path)
    start = time.perf_counter()
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(wrapper, example, dynamo=True, input_names=list(INPUT_NAMES),
                                        output_names=[OUTPUT_NAME], opset_version=OPSET, verbose=False)
            program.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    LOG.info("exported %s (%s, %d x %d, batch %d) to %s in %.0f s", getattr(model, "name", "model"), precision,
             h, w, batch, path, time.perf_counter() - start)
    return path


def quantize_int8(fp32_onnx: str | os.PathLike, path: str | os.PathLike, calibration: list[Frame],
                  input_hw, radar_channels) -> Path:
    """Static int8 quantisation (QDQ, per-channel int8 weights, uint8 activations, MinMax calibration on
    ``calibration`` frames) of an fp32 ONNX graph with ONNX Runtime's quantisation tool."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{INPUT_NAMES[0]: image.numpy(), INPUT_NAMES[1]: radar.numpy()}
                               for image, radar in (f.inputs(input_hw, radar_channels) for f in calibration)])

        def get_next(self):
            return next(self.feeds, None)

    path = Path(path)
    tmp = _atomic_path(path)
    with tempfile.TemporaryDirectory(prefix="xdrcdepth-int8-") as work:
        pre = Path(work) / "pre.onnx"
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=True)
        try:
            quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def ir_writer(xml_path: str | os.PathLike):
    """Write the OpenVINO IR pair ``xml_path`` + its ``.bin`` atomically: yields a temporary ``.xml`` path in a
    hidden folder beside it (:func:`xdrcdepth_core.atomic.temp_prefix` naming) for the block to write both files
    at; when it exits cleanly both are synced, then moved in place, the ``.bin`` first, so an ``.xml`` always
    has whole weights. An error (or Ctrl-C) while the block writes leaves the previous pair as it was."""
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=temp_prefix(xml_path), suffix=".tmp", dir=xml_path.parent) as work:
        tmp_xml = Path(work) / xml_path.name
        yield tmp_xml
        pair = [(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin")), (tmp_xml, xml_path)]
        for tmp, _ in pair:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        for tmp, final in pair:
            os.replace(tmp, final)


def convert_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike, compress_to_fp16: bool = False
                     ) -> Path:
    """OpenVINO IR (``.xml`` + ``.bin``) of an ONNX graph, written through :func:`ir_writer`."""
    ov = import_runtime("openvino")
    with ir_writer(xml_path) as tmp_xml:
        ov.save_model(ov.convert_model(str(onnx_path)), str(tmp_xml), compress_to_fp16=compress_to_fp16)
    return Path(xml_path)


# --- the xdrcdepth export command ---------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="", help="xdrcdepth checkpoint (default: the shipped one, else "
                                                         "the untrained default student, with a warning)")
    parser.add_argument("--format", required=True, choices=("onnx", "openvino"))
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="fp32 (default); fp16: half-precision graph (ONNX) / fp16 weights (OpenVINO IR); "
                             "bf16: OpenVINO runtime precision (CPUs with native bf16 only); int8: static QDQ "
                             "quantisation calibrated on the frames")
    parser.add_argument("--out", type=path_argument,
                        help="output file (.onnx or .xml; default: exports/<model>_<h>x<w>_<precision>.<ext>); an "
                             "OpenVINO IR is a pair: --out x.xml writes (and replaces) x.bin beside it too")
    parser.add_argument("--frames", help="prepare cache folder to verify (and calibrate int8) on; default: the "
                                         "real nuScenes samples in ../shared, else a synthetic scene")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="use the first N frames (default: all, 6 real)")
    parser.add_argument("--calibration", help="int8: prepare cache folder of the checkpoint's training data to "
                                              f"calibrate on ({CALIBRATION_FRAMES} frames spread over it; default: "
                                              "the verification frames)")
    parser.add_argument("--batch", type=positive_int, default=1,
                        help="batch size of the exported graph (static; default: %(default)s)")
    add_device_argument(parser, default="cpu", help="device the artefact is verified on: cpu (default), cuda[:N] "
                                                    "or auto (cuda:0 when available)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from xdrcdepth_core.backends import (BackendUnavailable, ParityFailed, ParityTolerance, check_exported_backend,
                                        create_backend)
    from xdrcdepth_core.device import resolve_device
    from xdrcdepth_core.imageio import DEFAULT_MAX_IMAGE_PIXELS
    from xdrcdepth_core.infer import SHIPPED_CHECKPOINT, DepthEstimator

    ext = ".onnx" if args.format == "onnx" else ".xml"
    if args.out is not None and (args.out.is_dir() or args.out.suffix != ext):
        say(f"xdrcdepth export: --out {args.out}: give a file name ending in {ext} for --format {args.format}"
            + (" (that is a folder)" if args.out.is_dir() else ""))
        return 2
    if args.out is not None and ext == ".xml" and args.out.with_suffix(".bin").is_dir():
        say(f"xdrcdepth export: --out {args.out}: its weights go to {args.out.with_suffix('.bin')}, which is a "
            "folder; choose another name")
        return 2
    if args.calibration and args.precision != "int8":
        say(f"xdrcdepth export: --calibration calibrates int8 quantisation; it does nothing with --precision "
            f"{args.precision}")
        return 2
    backend = "onnxruntime" if args.format == "onnx" else "openvino"
    try:                            # before loading anything: --precision bf16 for onnx on a CPU cannot run
        check_exported_backend(backend, str(resolve_device(args.device)), args.precision)
    except (BackendUnavailable, ValueError) as exc:
        say(f"xdrcdepth export: {exc}")
        return 2
    try:
        estimator = DepthEstimator.from_checkpoint(args.checkpoint or None, device=args.device, backend="torch",
                                                   precision="fp32")
        frames, label = frames_for(args.frames, estimator.radar_channels, limit=args.limit or 10**6)
        calibration = (load_cache_frames(args.calibration, estimator.radar_channels, CALIBRATION_FRAMES,
                                         spread=True) if args.calibration else None)
    except OSError as exc:
        if cache_write_failed(exc):   # the parity frames are built into the cache on first use
            say(cache_error_line(exc))
            return 1
        say(f"xdrcdepth export: {exc}")
        return 2
    except ValueError as exc:
        say(f"xdrcdepth export: {exc}")
        return 2
    model = estimator.model
    h, w = estimator.input_hw
    if args.batch * h * w > DEFAULT_MAX_IMAGE_PIXELS:   # --batch 100000 went on to allocate 39 GB for the example
        say(f"xdrcdepth export: --batch {args.batch} of {h} x {w} inputs is {args.batch * h * w} pixels, more than "
            f"{DEFAULT_MAX_IMAGE_PIXELS} (4096 x 4096, the depth node's max_image_pixels); give a smaller --batch")
        return 2
    out = args.out or Path("exports") / f"{model.name}_{h}x{w}_{args.precision}{ext}"
    written = {"--out": out, "--out's parity report": f"{out}.parity.json",
               "--out's weights": out.with_suffix(".bin") if ext == ".xml" else None}
    if problem := output_overlap(written, {"--checkpoint": args.checkpoint or SHIPPED_CHECKPOINT,
                                           "--frames": args.frames, "--calibration": args.calibration}):
        say(f"xdrcdepth export: error: {problem}")
        return 2
    try:                            # the output's folder before the work: a path through a file fails now
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        say(os_error_line("xdrcdepth export", exc, out))
        return 1
    print(f"xdrcdepth export: {estimator.model_id} -> {args.format} {args.precision}, input {h} x {w}, batch "
          f"{args.batch}; verifying on {len(frames)} frames ({label})", flush=True)
    try:
        runner = create_backend(backend, model, estimator.input_hw, estimator.radar_channels, estimator.device,
                                args.precision, weights_sha=estimator.weights_sha, frames=frames,
                                allow_export=True, batch=args.batch, calibration=calibration,
                                tolerance=ParityTolerance(trained=estimator.trained))
    except ParityFailed as exc:
        report_path = Path(str(out) + ".parity.json")
        try:                        # the numbers of the failure: a write error here is one line too, not a traceback
            atomic_write_bytes(report_path, json.dumps(exc.report.to_dict(), indent=1).encode())
        except OSError as write_error:
            say(os_error_line("xdrcdepth export", write_error, report_path))
            return 1
        say(f"xdrcdepth export: parity check failed, nothing exported: {exc.report.summary()} "
            f"(numbers in {report_path})")
        return 1
    except BackendUnavailable as exc:
        if isinstance(exc.__cause__, OSError):     # the artefact cache cannot be written (full disk, read-only)
            say(cache_error_line(exc.__cause__))
            return 1
        say(f"xdrcdepth export: {exc}")
        return 2
    except OSError as exc:          # the parity frames cannot be cached
        say(cache_error_line(exc))
        return 1
    try:
        write_outputs(args, runner, estimator, out, calibration, label)
    except OSError as exc:          # torch's and OpenVINO's writers name no file: the one asked for is named
        say(cache_error_line(exc) if exc.filename else os_error_line("xdrcdepth export", exc, out))
        return 1
    print(f"xdrcdepth export: {runner.parity.summary() if runner.parity else 'verified'}")
    print(f"xdrcdepth export: wrote {out}" + (f" (+ {out.with_suffix('.bin').name})" if ext == ".xml" else "")
          + f" and {out}.parity.json")
    return 0


def cache_write_failed(exc: OSError) -> bool:
    """Whether ``exc`` is a failed write inside :func:`cache_root` (read-only, full)."""
    return bool(exc.filename) and Path(os.path.abspath(exc.filename)).is_relative_to(os.path.abspath(cache_root()))


def cache_error_line(exc: OSError) -> str:
    """The one line of a failed write, naming the cache and how to move it when the write was inside it."""
    line = os_error_line("xdrcdepth export", exc)
    if cache_write_failed(exc):
        line += f" (the cache folder {cache_root()}; XDRCDEPTH_CACHE moves it)"
    return line


def write_outputs(args: argparse.Namespace, runner, estimator, out: Path, calibration, label: str) -> None:
    """The verified artefact at ``out`` (an OpenVINO IR as a pair) and ``<out>.parity.json`` beside it."""
    from xdrcdepth_core.infer import SHIPPED_CHECKPOINT

    h, w = estimator.input_hw
    source = runner.path
    if args.format == "openvino" and args.precision == "fp16":
        source = convert_openvino(artefact_onnx(runner), out, compress_to_fp16=True)
    elif args.format == "openvino":
        with ir_writer(out) as tmp_xml:
            shutil.copyfile(source.with_suffix(".bin"), tmp_xml.with_suffix(".bin"))
            shutil.copyfile(source, tmp_xml)
    else:
        _atomic_copy(source, out)
    report = runner.parity.to_dict() if runner.parity is not None else {}
    checkpoint = args.checkpoint or (f"shipped {SHIPPED_CHECKPOINT.name}" if SHIPPED_CHECKPOINT.is_file()
                                     else "untrained default student")
    meta = {"checkpoint": checkpoint, "model_id": estimator.model_id,
            "format": args.format, "precision": args.precision, "input_hw": [h, w], "batch": args.batch,
            "radar_channels": list(estimator.radar_channels), "frames": label, "parity": report,
            **({"calibration": f"{len(calibration)} frames of {args.calibration}"} if calibration else {}),
            "inputs": {"image": "B x 3 x H x W float32, ImageNet-normalised (xdrcdepth_core.preprocess)",
                       "radar": "B x C x H x W float32, raster / RADAR_CHANNEL_SCALES"},
            "output": "depth: B x 1 x H x W float32 metres"}
    atomic_write_bytes(str(out) + ".parity.json", json.dumps(meta, indent=1).encode())


def _atomic_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` so that ``target`` is either the old file or the whole new one."""
    with open(source, "rb") as src, atomic_writer(target) as dst:
        shutil.copyfileobj(src, dst)


def artefact_onnx(runner) -> Path:
    """The ONNX graph an OpenVINO artefact was converted from (same folder)."""
    return runner.path.parent / "model.onnx"
