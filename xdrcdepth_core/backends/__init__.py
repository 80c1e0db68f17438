"""Inference backends, selected by name: ``torch``, ``onnxruntime``, ``openvino``, ``tensorrt`` (CUDA), ``auto``.

One file per backend (``torch_backend.py``, ``onnxruntime_backend.py``, ``openvino_backend.py``,
``tensorrt_backend.py``), all with the call contract of :mod:`.base`. :func:`create_backend` builds one for a
model: exported runtimes get their artefact from the cache (:mod:`.export`; exporting it when allowed) and must
pass the parity check against eager fp32 on real frames (:mod:`.parity`, :mod:`.frames`) before they are
used; the result of that check is cached beside the artefact, per machine. :func:`select_backend` implements
``auto`` (:mod:`.auto`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

from xdrcdepth_core.backends.base import PRECISIONS, Backend, BackendUnavailable, DepthOnly, check_precision
from xdrcdepth_core.backends.parity import ParityReport, ParityTolerance, check_parity
from xdrcdepth_core.cli_args import interrupts_seen

LOG = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino", "tensorrt")
#: frames used by the parity gate at run time (the export command uses all it is given)
RUNTIME_PARITY_FRAMES = 3

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "BackendUnavailable", "DepthOnly", "ParityFailed",
           "ParityReport", "ParityTolerance", "check_parity", "create_backend", "select_backend"]


class ParityFailed(ValueError):
    """A backend/precision whose output differs from eager fp32 beyond the tolerance (``report`` has numbers)."""

    def __init__(self, name: str, report: ParityReport):
        super().__init__(f"{name} fails the parity check against eager fp32: {report.summary()}")
        self.report = report


def default_precision(name: str, device: str) -> str:
    """A backend's best precision on this machine by capability (the parity check still has the last word)."""
    from xdrcdepth_core.backends.capability import openvino_cpu_capabilities
    from xdrcdepth_core.train.precision import cpu_has_native_bf16

    cuda = torch.device(device).type == "cuda"
    if name == "torch":
        return "fp16" if cuda else ("bf16" if cpu_has_native_bf16() else "fp32")
    if name == "openvino":
        return "bf16" if "BF16" in openvino_cpu_capabilities() else "fp32"
    if name == "tensorrt":
        return "fp16"
    return "fp32"


def _machine_tag() -> str:
    from xdrcdepth_core.backends import capability

    facts = capability.summary()
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]


def _parity_gate(name: str, precision: str, candidate: Backend, reference: Backend, input_hw, radar_channels,
                 device: str, frames, record_dir: Path | None, tolerance: ParityTolerance, tag: str = "",
                 batch: int = 1) -> ParityReport:
    """The parity report of ``candidate`` (cached per artefact, machine and precision); raises ParityFailed."""
    from xdrcdepth_core.atomic import atomic_write_bytes
    from xdrcdepth_core.backends.frames import frames_for

    record = None
    if record_dir is not None and frames is None:
        record = record_dir / f"parity_{name}_{precision}{tag}_{_machine_tag()}.json"
        if record.is_file():
            try:
                data = json.loads(record.read_text())
                data.pop("rel_mean_abs", None), data.pop("rel_mae_change", None)
                report = ParityReport(**data)
            except (OSError, ValueError, TypeError):
                report = None
            if report is not None and report.tolerance == asdict(tolerance):
                if not report.passed:
                    raise ParityFailed(candidate.description, report)
                return report
    if frames is None:
        frames, _ = frames_for(None, radar_channels, limit=RUNTIME_PARITY_FRAMES)
    report = check_parity(reference, candidate, frames, precision, input_hw, radar_channels, tolerance, device,
                          batch)
    if record is not None:
        atomic_write_bytes(record, json.dumps(report.to_dict(), indent=1).encode())
    LOG.info("parity %s: %s", candidate.description, report.summary())
    if not report.passed:
        raise ParityFailed(candidate.description, report)
    return report


def create_backend(name: str, model: torch.nn.Module, input_hw, radar_channels: Sequence[str], device: str,
                   precision: str | None = None, *, weights_sha: str | None = None, frames=None,
                   allow_export: bool = True, batch: int = 1, options: dict | None = None,
                   tolerance: ParityTolerance = ParityTolerance(), reference: Backend | None = None,
                   verified: dict | None = None, calibration=None) -> Backend:
    """Build backend ``name`` for ``model`` at ``input_hw`` (batch ``batch``) on ``device``.

    ``precision=None`` takes the backend's best by capability (:func:`default_precision`). Anything but the
    eager fp32 reference is checked against it (``frames``: the real frames to check on; default: the cached
    default frames, and the verdict is cached). ``allow_export=False`` refuses to export a missing artefact
    (:class:`BackendUnavailable`). ``options`` go to the torch backend (channels_last, compile, cuda_graphs).
    ``verified``: a passed parity report recorded earlier for exactly this choice (``auto``'s record), which
    skips the check. ``calibration``: the frames int8 is calibrated on (default: ``frames``, else the default
    frames); ideally frames from the checkpoint's training data, as activation ranges come from them. An int8
    artefact calibrated on anything but the default frames is cached under its own name (:func:`calibration_tag`).
    Raises :class:`BackendUnavailable` or :class:`ParityFailed`.
    """
    from xdrcdepth_core.backends.torch_backend import TorchBackend, check_options

    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from auto, {', '.join(BACKENDS)}")
    check_precision(precision)
    precision = precision or default_precision(name, device)
    options = check_options(options)
    h, w = input_hw
    shapes = ((batch, 3, h, w), (batch, len(radar_channels), h, w))
    if name == "torch":
        backend = TorchBackend(model, device, precision, input_shapes=shapes, **options)
        if backend.reference:
            backend.parity = None
            return backend
        record_dir, tag = None, ""
    else:
        if options:
            raise ValueError(f"options {sorted(options)} apply to the torch backend only")
        calibration = calibration if calibration is not None else frames
        tag = calibration_tag(calibration) if precision == "int8" and calibration is not None else ""
        backend, record_dir = _exported_backend(name, model, input_hw, radar_channels, device, precision,
                                                weights_sha, calibration, allow_export, batch, tag)
    if verified is not None and verified.get("passed"):
        backend.parity = ParityReport(**{k: v for k, v in verified.items()
                                         if k not in ("rel_mean_abs", "rel_mae_change")})
        return backend
    reference = reference or TorchBackend(model, device, "fp32")
    backend.parity = _parity_gate(name, precision, backend, reference, input_hw, radar_channels, device, frames,
                                  record_dir, tolerance, tag, batch)
    return backend


def calibration_tag(frames) -> str:
    """``_cal<digest>`` of a calibration set (its frame tokens, in order): the int8 artefacts and parity records
    of a set other than the default frames carry it, so two calibrations of one checkpoint never share a file."""
    digest = hashlib.sha256("\n".join(str(f.token) for f in frames).encode()).hexdigest()[:10]
    return f"_cal{digest}"


def check_exported_backend(name: str, device: str, precision: str) -> None:
    """Raise :class:`BackendUnavailable` (saying why) unless the exported-graph backend ``name`` (onnxruntime,
    openvino, tensorrt) can run ``precision`` on ``device``: cheap checks, made before any model is loaded or
    exported."""
    if name == "openvino":
        from xdrcdepth_core.backends.openvino_backend import check_openvino

        check_openvino(device, precision)
    elif name == "onnxruntime":
        from xdrcdepth_core.backends.onnxruntime_backend import check_onnxruntime

        check_onnxruntime(device, precision)
    elif name == "tensorrt":
        from xdrcdepth_core.backends.tensorrt_backend import tensorrt_route

        tensorrt_route(device)


def _exported_backend(name, model, input_hw, radar_channels, device, precision, weights_sha, calibration,
                      allow_export, batch, tag=""):
    from xdrcdepth_core.backends import export

    check_exported_backend(name, device, precision)    # before any export: say why it cannot run
    if weights_sha is None:
        from xdrcdepth_core.checkpoint import weights_digest

        weights_sha = weights_digest(model.state_dict())
    folder = export.artefact_dir(model.name, weights_sha, input_hw, batch)

    def ensure(path: Path, make) -> Path:
        if path.is_file():
            return path
        if not allow_export:
            raise BackendUnavailable(f"{name}: no exported graph cached for this checkpoint and input size "
                                     f"(run `xdrcdepth export` or allow the export)")
        failed = path.with_name(path.name + ".failed")
        if failed.is_file():
            raise BackendUnavailable(f"{name}: exporting failed before on this machine: {failed.read_text()}")
        with interrupts_seen() as interrupted:
            try:
                made = make(path)
            except Exception as exc:
                if interrupted:        # a Ctrl-C the exporter reported as its own failure: no verdict on the model
                    raise KeyboardInterrupt from exc
                if isinstance(exc, BackendUnavailable):     # the graph this one is made from failed (and says so)
                    raise
                if isinstance(exc, OSError):   # a full disk, a read-only cache: the machine's, not the model's
                    if exc.filename is None:   # torch's exporter writes a temporary and names none
                        exc.filename = str(path)
                    raise BackendUnavailable(f"{name}: export failed: {exc} (not recorded: the next run tries "
                                             "again)") from exc
                try:
                    failed.parent.mkdir(parents=True, exist_ok=True)
                    failed.write_text(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                except OSError:                # the verdict stands; only its record is lost
                    pass
                raise BackendUnavailable(f"{name}: export failed: {exc}") from exc
        if interrupted:                # swallowed by the exporter (a fallback strategy finished): stop as asked
            raise KeyboardInterrupt
        return made

    def fp32_onnx() -> Path:
        return ensure(folder / "model.onnx", lambda p: export.export_onnx(model, input_hw, p, len(radar_channels),
                                                                          batch, "fp32"))

    def int8_onnx() -> Path:
        from xdrcdepth_core.backends.frames import frames_for

        frames = calibration if calibration is not None else frames_for(None, radar_channels)[0]
        return ensure(folder / f"model_int8{tag}.onnx",
                      lambda p: export.quantize_int8(fp32_onnx(), p, frames, input_hw, radar_channels))

    if name == "onnxruntime":
        from xdrcdepth_core.backends.onnxruntime_backend import OnnxRuntimeBackend

        if precision == "int8":
            path = int8_onnx()
        elif precision == "fp16":
            path = ensure(folder / "model_fp16.onnx", lambda p: export.export_onnx(
                model, input_hw, p, len(radar_channels), batch, "fp16"))
        else:
            path = fp32_onnx()
        return _load_cached(name, path, lambda: OnnxRuntimeBackend(path, device, precision)), folder
    if name == "openvino":
        from xdrcdepth_core.backends.openvino_backend import OpenVinoBackend

        source = int8_onnx if precision == "int8" else fp32_onnx
        xml = ensure(folder / (f"openvino_int8{tag}.xml" if precision == "int8" else "openvino_fp32.xml"),
                     lambda p: export.convert_openvino(source(), p))
        return _load_cached(name, xml, lambda: OpenVinoBackend(xml, device, precision)), folder
    from xdrcdepth_core.backends.tensorrt_backend import TensorRTBackend

    h, w = input_hw
    shapes = ((batch, 3, h, w), (batch, len(radar_channels), h, w))
    return TensorRTBackend(model, device, precision, shapes, onnx_path=fp32_onnx(),
                           engine_cache=folder / "tensorrt"), folder


def _load_cached(name: str, path: Path, load) -> Backend:
    """``load()`` of the runtime for the cached ``path``; a file the runtime cannot read (cut short by a crash or a
    partial copy of the cache) is :class:`BackendUnavailable` naming it, so ``auto`` goes on to the next candidate
    and the commands say it in one line: ONNX Runtime's ``InvalidProtobuf`` and OpenVINO's "Incorrect weights in bin
    file!" came out of ``DepthEstimator.from_checkpoint(None)`` and ``xdrcdepth export`` as tracebacks."""
    try:
        return load()
    except BackendUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - each runtime has its own error types for an unreadable model
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BackendUnavailable(f"{name}: cannot load {path} from the export cache ({cause}); delete it and the "
                                 "next export makes it again") from exc


def artefact_file(name: str, precision: str, model_name: str, weights_sha: str, input_hw, batch: int = 1
                  ) -> Path | None:
    """The cached file backend ``name`` at ``precision`` loads (None for the torch backend)."""
    from xdrcdepth_core.backends.export import artefact_dir

    folder = artefact_dir(model_name, weights_sha, input_hw, batch)
    if name in ("onnxruntime", "tensorrt"):
        return folder / {"int8": "model_int8.onnx", "fp16": "model_fp16.onnx"}.get(precision, "model.onnx") \
            if name == "onnxruntime" else folder / "model.onnx"
    if name == "openvino":
        return folder / f"openvino_{'int8' if precision == 'int8' else 'fp32'}.xml"
    return None


def select_backend(*args, **kwargs):
    """``auto``: see :func:`xdrcdepth_core.backends.auto.select_backend`."""
    from xdrcdepth_core.backends.auto import select_backend as select

    return select(*args, **kwargs)
