"""Self-describing checkpoints: the estimator rebuilds model, input size and radar layout from the file alone.

Format (a ``torch.save`` dict of plain types and tensors only, ``format_version`` 2)::

    {"format_version": 2, "model_name": str, "model_config": dict, "state_dict": {name: tensor},
     "weights_sha256": str, "input_hw": [h, w], "radar_channels": [str, ...], "max_depth": float,
     "resolved_config": dict (the experiment YAML after resolution), "metrics": dict,
     "training_state": dict | None (optimiser, epoch, ... for ``xdrcdepth train --resume``)}

Files are untrusted: they are read with ``torch.load(weights_only=True)``, which refuses anything but
tensors and plain containers, so no code runs from a checkpoint. ``weights_sha256`` (over every tensor's
name, dtype, shape and bytes) detects a flipped byte; NaN/inf weights, unknown radar channel names and an
input size the network cannot take are rejected at load, not per frame. Weights may be stored as fp16
(``weights_dtype``) to halve the file; they are loaded back as float32.

Writes are atomic (temporary file in the same folder + ``os.replace``), so an interrupted save never
leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import numbers
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from xdrcdepth_core.atomic import atomic_writer
from xdrcdepth_core.cli_args import short_repr
from xdrcdepth_core.models.base import SIZE_DIVISOR
from xdrcdepth_core.data.radar_channels import radar_channels_problem

FORMAT_VERSION = 2
REQUIRED_KEYS = ("model_name", "model_config", "state_dict", "weights_sha256", "input_hw", "radar_channels")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``.

    A write that fails (full disk, file size limit) surfaces from ``torch.save`` as a ``RuntimeError`` of its
    zip writer ("unexpected pos ...") with the ``OSError`` only as its context; it is raised here as that
    ``OSError`` naming ``path``, as every other write error is (our choice: callers report ``OSError`` as
    "cannot write <path>: disk full" and would otherwise print a traceback)."""
    try:
        with atomic_writer(path) as f:
            torch.save(obj, f)
    except RuntimeError as exc:
        cause = exc.__cause__ or exc.__context__
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise OSError(cause.errno, cause.strerror or str(cause), str(path)) from exc


def weights_digest(state_dict: dict) -> str:
    """SHA-256 over the tensors of a state dict (names, dtypes, shapes and bytes, in name order)."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{tensor.dtype}|{tuple(state_dict[name].shape)}|".encode())
        h.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, input_hw: tuple[int, int],
                    radar_channels: tuple[str, ...], resolved_config: dict | None = None,
                    training_state: dict | None = None, metrics: dict | None = None,
                    weights_dtype: torch.dtype | None = None) -> None:
    """Write a self-describing checkpoint of ``model`` (a registered model with ``name``/``config``).

    ``weights_dtype=torch.float16`` stores floating-point weights in half precision (shipping);
    ``training_state`` must hold only tensors and plain types (it is loaded with ``weights_only``).
    """
    state = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if weights_dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(weights_dtype)
        state[name] = tensor.clone()
    atomic_torch_save({
        "format_version": FORMAT_VERSION,
        "model_name": model.name,
        "model_config": dict(model.config),
        "state_dict": state,
        "weights_sha256": weights_digest(state),
        "input_hw": [int(input_hw[0]), int(input_hw[1])],
        "radar_channels": [str(name) for name in radar_channels],   # plain str: numpy names would not load
        "max_depth": float(model.max_depth),
        "resolved_config": resolved_config or {},
        "metrics": metrics or {},
        "training_state": training_state,
    }, path)


def input_hw_problem(hw) -> str | None:
    """What is wrong with ``hw`` as a network input size (two positive ints, multiples of the models'
    :data:`~xdrcdepth_core.models.base.SIZE_DIVISOR`), as a phrase starting with ``input_hw``; None if usable.
    Shared by checkpoint loading and :class:`~xdrcdepth_core.infer.DepthEstimator`, whose ``input_hw``
    argument would otherwise fail inside the first forward pass."""
    if (not isinstance(hw, (list, tuple)) or len(hw) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in hw)
            or any(v % SIZE_DIVISOR for v in hw)):
        return f"input_hw must be two positive multiples of {SIZE_DIVISOR}, got {short_repr(hw)}"
    return None


def _validate(ckpt: dict, path: Path) -> None:
    """Reject corrupted weights and descriptions the estimator could not use (errors name the file). Tensors
    that would cost more memory than the file holds are refused first, before the SHA-256 copies any of them."""
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ValueError(f"{path}: state_dict must map parameter names to tensors, got {type(state).__name__}")
    odd = [f"{short_repr(name)} ({t.layout}, {t.dtype})" for name, t in state.items()
           if t.layout != torch.strided or t.dtype not in WEIGHT_DTYPES]
    if odd:   # a sparse or float8 tensor failed inside the SHA-256 or the finite check with a traceback
        raise ValueError(f"{path}: state_dict holds tensors no model of ours has: {', '.join(odd[:3])}"
                         f"{' ...' if len(odd) > 3 else ''}")
    problem = tensor_memory_problem(ckpt, path.stat().st_size)
    if problem:
        raise ValueError(f"{path}: {problem}")
    if weights_digest(ckpt["state_dict"]) != ckpt["weights_sha256"]:
        raise ValueError(f"{path}: weights do not match their SHA-256 (file corrupted or edited)")
    bad = [name for name, t in ckpt["state_dict"].items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{path}: non-finite weights in {', '.join(map(short_repr, bad[:3]))}"
                         f"{' ...' if len(bad) > 3 else ''}")
    problem = input_hw_problem(ckpt["input_hw"]) or radar_channels_problem(ckpt["radar_channels"])
    if problem:
        raise ValueError(f"{path}: {problem}")
    if not isinstance(ckpt["model_config"], dict):
        raise ValueError(f"{path}: model_config must be a mapping")
    metrics = ckpt.get("metrics", {})
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: metrics must be a mapping, got {type(metrics).__name__}")
    median = metrics.get("median_train_depth")
    if median is not None and not (isinstance(median, numbers.Real) and not isinstance(median, bool)
                                   and 0 < median < float("inf")):
        raise ValueError(f"{path}: metrics.median_train_depth must be a positive depth (m), "
                         f"got {short_repr(median)}")


def _tensors(value) -> Any:
    """``(where, tensor)`` for every tensor in a loaded checkpoint, through its dicts, lists and tuples (``where``
    as ``['state_dict']['conv.weight']``). Iterative: the unpickler builds nesting of any depth."""
    pending = [("", value)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, torch.Tensor):
            yield where, value
        elif isinstance(value, dict):
            pending.extend((f"{where}[{short_repr(k)}]", v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            pending.extend((f"{where}[{i}]", v) for i, v in enumerate(value))


def tensor_memory_problem(ckpt: dict, file_size: int) -> str | None:
    """Why the tensors of a loaded checkpoint would take more memory than the file of ``file_size`` bytes holds,
    or None. ``torch.load`` keeps each tensor a view of the storage it read, so a stride of 0 lets one stored
    float stand for 750 M elements (17 MB file) that the SHA-256's contiguous copy made 3 GB (6 GB peak; a
    black-box run). Refused: a tensor whose elements take more bytes than its storage holds from its offset
    (elements that overlap), and tensors whose sizes add up to more than the file (views sharing a storage:
    :func:`save_checkpoint` and the trainer store every tensor in its own storage, so the file holds each
    one's bytes). Loading then costs memory in proportion to the file's size."""
    total, largest = 0, ("", 0)
    for where, tensor in _tensors(ckpt):
        if tensor.layout != torch.strided:   # sparse: its indices and values are tensors of their own
            continue
        size = tensor.numel() * tensor.element_size()
        stored = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
        if size > stored:
            return (f"tensor {where} of shape {list(tensor.shape)} ({size} bytes) views only {max(stored, 0)} "
                    "stored bytes (elements that overlap, such as a stride of 0)")
        total += size
        if size > largest[1]:
            largest = (where, size)
    if total > file_size:
        return (f"its tensors take {total} bytes, more than the file's {file_size} (tensors that share stored "
                f"bytes; the largest, {largest[0]}, takes {largest[1]})")
    return None


#: dtypes of the weights and buffers our models hold (float weights in any precision a checkpoint is saved in,
#: int64 batch-norm counters)
WEIGHT_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.int32,
                           torch.uint8, torch.bool})


def zip_bomb_problem(path: Path) -> str | None:
    """Why the zip archive at ``path`` would unpack to more than it holds, or cannot be read at all, or None.
    torch.save stores its records uncompressed, so what they declare unpacked is at most the file's size; a
    deflated ``data.pkl`` of 800 MB in an 18 MB file loaded as 3 GB of memory (a black-box run). An archive
    Python's zipfile cannot read is refused too: torch's own zip reader accepted one (an entry with a corrupt
    extra field) and unpacked its deflated 1 GiB ``data.pkl`` unmeasured (a black-box run)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except Exception as exc:   # noqa: BLE001 - a malformed archive raises BadZipFile, UnicodeDecodeError, ...
        return f"its zip archive is damaged or cut short ({type(exc).__name__}: {exc})"
    size = path.stat().st_size
    if unpacked > size:
        return (f"its records declare {unpacked} bytes unpacked from a file of {size} bytes (compressed, which "
                "torch.save does not write)")
    return None


ZIP_MAGIC = b"PK\x03\x04"   # torch.save's format since PyTorch 1.6
PICKLE_PROTO = b"\x80"      # the PROTO opcode that starts a legacy (pre-1.6, _use_new_zipfile_serialization=False) file


def load_failure_reason(exc: Exception) -> str:
    """The cause in ``torch.load``'s error, without its advice to load untrusted files unsafely: the
    weights-only unpickler's own message ("Unsupported global: GLOBAL os.system ...") or the first sentence."""
    text = str(exc).split("WeightsUnpickler error:", 1)[-1]
    paragraph = next((p for p in text.split("\n\n") if p.strip()), "")
    text = " ".join(paragraph.split()).split(". ", 1)[0].rstrip(".")
    return text or f"{type(exc).__name__} (empty or truncated file)"


NOT_FOUND = "no such file"
#: files of ``xdrcdepth export`` (and TensorRT engines) that users pass where a checkpoint goes
EXPORTED_SUFFIXES = (".onnx", ".xml", ".bin", ".engine", ".plan")


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as a checkpoint file (:data:`NOT_FOUND`, a folder -- with the ``.pt``
    files in it, since a run folder is the usual mix-up --, a device or pipe), or ``None``."""
    path = Path(path)
    if path.is_dir():
        candidates = ", ".join(sorted(p.name for p in path.glob("*.pt"))[:3])
        return "is a folder; give a checkpoint file" + (f" in it ({candidates})" if candidates else "")
    if path.exists() and not path.is_file():
        return "is not a regular file"
    return None if path.is_file() else NOT_FOUND


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load (tensors and plain types only) and validate a checkpoint; errors name the file."""
    path = Path(path)
    problem = file_problem(path)
    if problem == NOT_FOUND:
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if problem:
        raise ValueError(f"checkpoint {path} {problem}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:4] != ZIP_MAGIC and head[:1] != PICKLE_PROTO:
        exported = (f"; {path.suffix} is an exported graph: give the .pt checkpoint it was exported from"
                    if path.suffix.lower() in EXPORTED_SUFFIXES else "")
        raise ValueError(f"cannot read checkpoint {path}: "
                         + ("empty file" if not head else "not a PyTorch checkpoint (neither a zip archive, "
                            f"what torch.save writes, nor a legacy pickle){exported}"))
    bomb = zip_bomb_problem(path) if head[:4] == ZIP_MAGIC else None
    if bomb:
        raise ValueError(f"cannot read checkpoint {path}: {bomb}")
    try:
        with warnings.catch_warnings():
            # Any legacy pickle but protocol 2 warns before the weights-only unpickler reads (or refuses) it:
            # noise on stderr ahead of the one line that says what is wrong with the file.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files and forbidden pickles raise many different exception types
        why = ("only tensors and plain data are accepted" if isinstance(exc, pickle.UnpicklingError)
               else "the file is damaged or cut short")   # the zip reader's and a cut pickle's errors
        raise ValueError(f"cannot read checkpoint {path} ({why}): {load_failure_reason(exc)}") from exc
    missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path} is not an xdrcdepth checkpoint (missing {', '.join(missing)})")
    _validate(ckpt, path)
    return ckpt


def build_from_checkpoint(ckpt: dict, path: str | os.PathLike = "checkpoint") -> torch.nn.Module:
    """The registered model a loaded checkpoint describes, with its weights (float32)."""
    from xdrcdepth_core.models import build_model

    def build(device: str | None) -> torch.nn.Module:
        try:
            with torch.device(device) if device else contextlib.nullcontext():
                return build_model(ckpt["model_name"], **ckpt["model_config"])
        except (TypeError, ValueError, KeyError, RuntimeError) as exc:   # RuntimeError: a negative width
            raise ValueError(f"checkpoint {path}: cannot build model {short_repr(ckpt['model_name'])}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc

    # The file is untrusted: its model_config alone could ask for terabytes of weights (a width multiplier of
    # 1000). The shapes are checked on the meta device first, so the model built for real is no larger than
    # the weights the file holds.
    skeleton = build("meta")
    if len(ckpt["radar_channels"]) != skeleton.radar_channels:
        raise ValueError(f"checkpoint {path}: {len(ckpt['radar_channels'])} radar_channels "
                         f"{short_repr(ckpt['radar_channels'])} for a model that takes {skeleton.radar_channels}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    problem = state_dict_mismatch(skeleton.state_dict(), state)
    if problem:
        raise ValueError(f"checkpoint {path} does not fit model {ckpt['model_name']} as its model_config "
                         f"builds it: {problem}")
    model = build(None)
    model.load_state_dict(state)
    return model


def state_dict_mismatch(expected: dict, state: dict) -> str | None:
    """How ``state`` fails to fit a model whose state dict is ``expected``, in one line (counts and the first
    name of each kind: torch's own message lists every tensor, thousands of lines for a wrong width), or
    None when every name and shape fits."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    other = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    parts = [f"{len(missing)} weights missing (first {missing[0]})" if missing else "",
             f"{len(unexpected)} unexpected (first {short_repr(unexpected[0])})" if unexpected else "",
             f"{len(other)} of other shapes (first {other[0]}: {list(state[other[0]].shape)} in the file, "
             f"{list(expected[other[0]].shape)} in the model)" if other else ""]
    return "; ".join(p for p in parts if p) or None


def file_digest(path: str | os.PathLike, length: int = 12) -> str:
    """Short sha256 of a file, used as the model id shown in diagnostics."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]
