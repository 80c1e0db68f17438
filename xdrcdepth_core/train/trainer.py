"""The training loop shared by the teacher and every student (``xdrcdepth train``).

One loop for all experiments: a model from the registry, a weighted sum of losses from the distillation
registry, an optional frozen teacher (or its cached outputs), mixed precision, DDP, and per-epoch
checkpoints from which an interrupted run resumes.

Per step: student forward (autocast) -> teacher outputs (cache, or a frozen forward: under ``no_grad``,
or with autograd on its input when a loss takes Grad-CAM of it) -> ``sum_i w_i * loss_i`` (fp32, outside
autocast) -> backward -> gradient clipping -> AdamW step -> LR schedule step. A non-finite total loss (on
any DDP rank) or a non-finite gradient skips the step (counted and logged) instead of corrupting the weights:
one bad bf16 step otherwise turns every weight into NaN and the rest of the run trains nothing (fp16's grad
scaler does this check itself, lowering its scale). :data:`DIVERGED_STEPS` skipped steps in a row stop the run
(:class:`TrainingDiverged`), as does a step that leaves a weight non-finite (a learning rate so high that one
update overflows: the run went on, and a NaN model's clamped predictions scored a finite MAE and became
``best.pt``); ``last.pt`` keeps the last finished epoch.

Per epoch (rank 0): validation through :func:`xdrcdepth_core.evaluation.evaluate.evaluate_cache` — the
estimator the node runs, on a copy of the weights —, then, when the validation MAE at the largest cap
improved (or there is nothing to rank epochs by: no validation, or no ground-truth pixel in it), ``best.pt``
(weights and metrics only: the deployable file), then ``last.pt`` (weights + optimiser, scheduler,
loss-module and history state: the epoch is done), ``history.json``, TensorBoard scalars and pictures.
All writes are atomic, so SIGKILL at any moment loses at most the epoch in progress. Repeatability: data
order, augmentation and dropout are seeded from ``seed`` and the epoch, so a resumed run continues
exactly as an uninterrupted one would.
"""

from __future__ import annotations

import copy
import fcntl
import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from xdrcdepth_core.atomic import atomic_write_bytes, remove_stale_temporaries
from xdrcdepth_core.backends.capability import machine_name
from xdrcdepth_core.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint
from xdrcdepth_core.data.cache_dataset import CacheDataset, collate
from xdrcdepth_core.data.cache_file import read_cache_file
from xdrcdepth_core.device import resolve_device
from xdrcdepth_core.distill import build_loss, loss_options
from xdrcdepth_core.evaluation.evaluate import cache_files, evaluate_cache, missing_ground_truth
from xdrcdepth_core.infer import DepthEstimator
from xdrcdepth_core.models import build_model
from xdrcdepth_core.train.config import ConfigError, dump_config
from xdrcdepth_core.train.distributed import (all_reduce_mean, average_gradients, barrier, broadcast_from_main,
                                              init_distributed)
from xdrcdepth_core.train.precision import autocast, grad_scaler, resolve_channels_last, resolve_precision
from xdrcdepth_core.train.schedule import build_scheduler
from xdrcdepth_core.train.teacher_cache import TeacherCache, outputs_from_batch

#: samples read to estimate the median training depth (constant baseline)
MEDIAN_SAMPLES = 200
#: this many skipped steps in a row (non-finite loss or gradient) end the run: it has diverged
DIVERGED_STEPS = 100
#: the files the trainer writes into its run folder (atomically; TensorBoard writes its own sub-folder)
RUN_FILES = frozenset({"config.yaml", "last.pt", "best.pt", "history.json", "summary.json"})


#: The first line of the ``config.yaml`` a run writes: a file of that name without it is not replaced.
RESOLVED_CONFIG_HEADER = "# resolved config of this run, written by xdrcdepth train (each run here replaces it)\n"


class OutFolderInUse(FileExistsError):
    """Another training run holds the out folder."""


class TrainingDiverged(RuntimeError):
    """:data:`DIVERGED_STEPS` training steps in a row had a non-finite loss or gradient."""


#: Largest model a config may ask for: the paper-size teacher has 15 M parameters; 500 M (2 GB of float32
#: weights, ~8 GB with AdamW's state and gradients) is beyond any model of this family and still fits.
MAX_MODEL_PARAMETERS = 500 * 10**6


def _short_options(options: dict) -> str:
    text = ", ".join(f"{k}: {v!r}" for k, v in options.items()) or "its defaults"
    return text if len(text) <= 200 else text[:197] + "..."


def _from_config(section: str, build, name: str, options: dict):
    """``build(name, **options)`` (a registry); an unknown name or option is a :class:`ConfigError` naming
    the config section."""
    try:
        return build(name, **options)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{section}: {exc.args[0] if exc.args else exc}") from None


def check_model_config(model: dict) -> None:
    """The config's ``model`` section builds (ConfigError naming the option otherwise) and has at most
    ``MAX_MODEL_PARAMETERS``; built on the meta device, shapes only, so no memory is taken (a width multiplier
    of 1000 took all 24 GB of the machine)."""
    options = dict(model)
    name = options.pop("name")
    with torch.device("meta"):
        parameters = sum(p.numel() for p in _from_config("model", build_model, name, options).parameters())
    if parameters > MAX_MODEL_PARAMETERS:
        raise ConfigError(f"model: {name} with {_short_options(options)} has {parameters / 1e6:.0f} M "
                          f"parameters, more than {MAX_MODEL_PARAMETERS // 10**6} M")


def _config_path(key: str, open_folder):
    """``open_folder()``, with a missing or empty cache folder's error naming the config ``key`` it came from."""
    try:
        return open_folder()
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"{key}: {exc}") from None


def _first_line(exc: BaseException) -> str:
    """The first informative line of an exception (load_state_dict lists every mismatching tensor)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):   # "Error(s) in loading state_dict for X:" + the list
        return f"{lines[0]} {lines[1]}" + (f" (and {len(lines) - 2} more)" if len(lines) > 2 else "")
    return lines[0] if lines else type(exc).__name__


def _worker_message(exc: BaseException) -> str | None:
    """The original message of an exception raised in a DataLoader worker process, None for any other.

    torch re-raises a worker's exception in the training process as ``type(exc)(text)``, ``text`` being
    "Caught <type> in DataLoader worker process N." followed by the worker's whole traceback, whose last entry
    is "[module.]<type>: <message>": the message (e.g. an unreadable cache file, named) is all a user needs.
    """
    name = type(exc).__name__
    text = str(exc)
    if not text.startswith(f"Caught {name} in DataLoader worker process "):
        return None
    entries = list(re.finditer(rf"^(?:\S+\.)?{re.escape(name)}: ", text, re.MULTILINE))
    return text[entries[-1].end():].strip() if entries else None


def _batches(loader):
    """The batches of ``loader``; a ``ValueError`` of one of its worker processes is raised again with the
    worker's own message (:func:`_worker_message`), as the same error reads with ``data.num_workers: 0``."""
    try:
        yield from loader
    except ValueError as exc:
        message = _worker_message(exc)
        if message is None:
            raise
        raise type(exc)(message) from None     # its type too: the command's hint depends on it


#: config keys a resume must not change (``optim``: all but ``epochs``, which extends a run). Ours beyond the
#: model and the losses: the optimiser state restores lr and weight decay over the config's (a changed value was
#: silently not applied, yet written to config.yaml and the checkpoints as the run's), and the seed, batch size,
#: schedule, input size and augmentation would make the run a mix that no config describes.
RESUME_FIXED = (("model",), ("losses",), ("seed",), ("optim",), ("data", "input_hw"), ("data", "augment"))


def _changed_on_resume(saved: dict, cfg: dict) -> list[tuple[str, object]]:
    """``(dotted key, the run's value)`` for each :data:`RESUME_FIXED` key whose value in ``cfg`` differs from
    the run's resolved config ``saved``; keys the run's config does not hold (older runs) are not compared."""
    changed = []
    for path in RESUME_FIXED:
        old, new = saved, cfg
        for key in path:
            old = old.get(key, _ABSENT) if isinstance(old, dict) else _ABSENT
            new = new[key]
        if old is _ABSENT:
            continue
        if path == ("optim",) and isinstance(old, dict):
            changed += [(f"optim.{key}", value) for key, value in old.items()
                        if key != "epochs" and key in new and new[key] != value]
        elif old != new:
            changed.append((".".join(path), old))
    return changed


_ABSENT = object()


class Trainer:
    """Builds everything a resolved config describes; :meth:`fit` trains to the last epoch."""

    def __init__(self, cfg: dict, resume: bool = False, progress: bool = True):
        self.cfg = cfg
        self.progress = progress
        device = resolve_device(cfg["device"])
        self.dist = init_distributed(device.type)
        if device.type == "cuda" and self.dist.enabled:
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        self.precision = resolve_precision(cfg["precision"], device)
        self.channels_last = resolve_channels_last(cfg["channels_last"], self.precision)
        self.out = Path(cfg["out"])
        self.input_hw = tuple(cfg["data"]["input_hw"])
        torch.manual_seed(cfg["seed"])

        check_model_config(cfg["model"])
        model_cfg = dict(cfg["model"])
        self.model = _from_config("model", build_model, model_cfg.pop("name"), model_cfg).to(device)
        self.losses = torch.nn.ModuleList()
        self.weights: list[float] = []
        self.loss_names: list[str] = []
        self.loss_every: list[int] = []
        for entry in cfg["losses"]:
            self.losses.append(_from_config("losses", build_loss, entry["name"], loss_options(entry)))
            self.weights.append(float(entry.get("weight", 1.0)))
            self.loss_names.append(entry["name"])
            self.loss_every.append(int(entry.get("every", 1)))
        self.losses.to(device)
        self.needs_teacher = any(getattr(loss, "requires_teacher", False) for loss in self.losses)
        self.teacher_graph = any(getattr(loss, "requires_teacher_graph", False) for loss in self.losses)
        self.teacher = self._load_teacher() if self.needs_teacher and not cfg["teacher"]["cache"] else None
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

        data = cfg["data"]
        val_first = None
        if data["val"]:
            # a missing validation folder, one without the ground truth eval.gt names or of other radar channels
            # (below) fails now, not after the first epoch
            val_first = _config_path("data.val", lambda: cache_files(data["val"])[0])
            val_sample = read_cache_file(val_first)
            missing = missing_ground_truth(val_first, val_sample, cfg["eval"]["gt"])
            if missing:
                raise ValueError(f"{missing} for eval.gt {cfg['eval']['gt']!r} (validation cache data.val "
                                 f"{data['val']})")
        cache = TeacherCache(cfg["teacher"]["cache"]) if self.needs_teacher and cfg["teacher"]["cache"] else None
        if cache is not None:
            cache.check_input_hw(self.input_hw)
        dataset = _config_path("data.train", lambda: CacheDataset(
            data["train"], input_hw=self.input_hw, augment=data["augment"], max_boxes=data["max_boxes"],
            seed=cfg["seed"], extra=cache.loader_for(data["train"]) if cache else None))
        self.radar_channels = tuple(read_cache_file(dataset.files[0])["radar_channels"])
        # the networks' radar input against the cache's: a count that differs failed in the first step, after
        # the run folder was made; a teacher of other channel names (same count) gave wrong targets silently
        if self.model.radar_channels != len(self.radar_channels):
            raise ValueError(f"{dataset.files[0]}: {len(self.radar_channels)} radar channels "
                             f"{list(self.radar_channels)}, the model takes {self.model.radar_channels} (set "
                             f"model.radar_channels: {len(self.radar_channels)}, or prepare with --radar-channels)")
        if self.teacher is not None and self.teacher_radar_channels != self.radar_channels:
            raise ValueError(f"teacher {cfg['teacher']['checkpoint']} was trained on radar channels "
                             f"{list(self.teacher_radar_channels)}, the training cache has {list(self.radar_channels)} "
                             f"({dataset.files[0]})")
        if val_first is not None and tuple(val_sample["radar_channels"]) != self.radar_channels:
            raise ValueError(f"{val_first}: radar channels {val_sample['radar_channels']} differ from the training "
                             f"cache's {list(self.radar_channels)} ({dataset.files[0]}); prepare both with the same "
                             "--radar-channels")
        self.train_set = Subset(dataset, range(min(data["limit_train"], len(dataset)))) \
            if data["limit_train"] else dataset
        self._dataset = dataset
        self.sampler = DistributedSampler(self.train_set, self.dist.world_size, self.dist.rank, shuffle=True,
                                          seed=cfg["seed"]) if self.dist.enabled else None
        self.batch_size = cfg["optim"]["batch_size"]
        self.steps_per_epoch = math.ceil(len(self.sampler or self.train_set) / self.batch_size)

        self._materialize_lazy_losses()
        # loss adapters train with the student but outside DDP: rank 0's start, gradients averaged every step
        self.loss_params = [p for p in self.losses.parameters() if p.requires_grad]
        broadcast_from_main([p.data for p in self.loss_params], self.dist)
        self.params = [p for p in self.model.parameters() if p.requires_grad] + self.loss_params
        decay = [p for p in self.params if p.ndim > 1]
        no_decay = [p for p in self.params if p.ndim <= 1]
        optim = cfg["optim"]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": optim["weight_decay"]},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=optim["lr"])
        self.total_steps = self.steps_per_epoch * optim["epochs"]
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, optim)
        self.scaler = grad_scaler(device, self.precision)
        self.ddp_model = torch.nn.parallel.DistributedDataParallel(
            self.model, device_ids=[device.index] if device.type == "cuda" else None) \
            if self.dist.enabled else self.model

        self.start_epoch, self.global_step, self.skipped_steps, self.skipped_in_a_row = 0, 0, 0, 0
        self.best_mae, self.best_epoch, self.history = math.inf, -1, []
        self.median_train_depth = None
        last = self.out / "last.pt"
        # a folder named last.pt was found at the end of the first epoch, after its training (a black-box run)
        in_the_way = sorted(name for name in RUN_FILES
                            if (self.out / name).exists() and not (self.out / name).is_file())
        if in_the_way:
            raise FileExistsError(f"{self.out / in_the_way[0]} is not a file (a folder or device where the run writes "
                                  "its own): move it, or choose another out folder")
        # history.json is written after each finished epoch's last.pt: with it but without last.pt, the folder
        # holds an earlier run that cannot be resumed, and a fresh start would replace its best.pt and records
        finished = [name for name in ("history.json", "summary.json") if (self.out / name).is_file()]
        if resume and last.is_file():
            self._restore(load_checkpoint(last), last)
        elif last.is_file():
            raise FileExistsError(f"{last} exists: resume it with --resume, or choose another out folder")
        elif finished:
            raise FileExistsError(f"{self.out} holds an earlier run ({', '.join(finished)}) without its last.pt, so "
                                  "it cannot be resumed and training would replace its best.pt: choose another out "
                                  "folder")
        elif (best := self.out / "best.pt").is_file():   # an interrupted first epoch's (no history yet), or not
            if not self._cut_first_epoch(best):         # a --resume replaced any best.pt (a black-box run)
                raise FileExistsError(f"{best} exists and is not this config's (from a first epoch cut before its "
                                      "last.pt, which --resume trains again): choose another out folder")
            if not resume:
                raise FileExistsError(f"{best} exists: resume the run with --resume, or choose another out folder")
        if not (resume and last.is_file()) and not self._may_write_config():
            raise FileExistsError(f"{self.out / 'config.yaml'} exists and was not written by a training run (a file "
                                  "of yours, e.g. the experiment YAML itself): choose another out folder")
        self.writer = None
        self._out_lock: int | None = None

    def _cut_first_epoch(self, best: Path) -> bool:
        """Whether ``best`` (in an out folder without last.pt or history) is this config's own, from a first epoch
        cut between best.pt and last.pt: written for this out folder, none of :data:`RESUME_FIXED` changed. A file
        that is no checkpoint is not."""
        try:
            saved = load_checkpoint(best).get("resolved_config") or {}
        except (OSError, ValueError):
            return False
        return (isinstance(saved.get("out"), str) and Path(saved["out"]).resolve() == self.out.resolve()
                and not _changed_on_resume(saved, self.cfg))

    def _may_write_config(self) -> bool:
        """Whether ``out/config.yaml`` is absent or one a run wrote (it starts with :data:`RESOLVED_CONFIG_HEADER`;
        e.g. of a first epoch that failed): a fresh run replaced any file of that name, the ``--config`` YAML
        kept in its own out folder included."""
        path = self.out / "config.yaml"
        if not path.exists() and not path.is_symlink():
            return True
        if not path.is_file():
            return False
        with open(path, "rb") as f:
            return f.read(len(RESOLVED_CONFIG_HEADER.encode())) == RESOLVED_CONFIG_HEADER.encode()

    def _lock_out_folder(self) -> None:
        """One run per out folder (rank 0 of it): an exclusive ``flock`` on the folder itself, held until ``fit``
        returns (or the process ends), so no file of ours is added. Two runs into one folder each wrote their checkpoints over
        the other's, both reported success, and the folder held one of them."""
        fd = os.open(self.out, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutFolderInUse(f"{self.out} is in use by another training run: wait for it to end, or choose "
                                  "another out folder") from None
        self._out_lock = fd

    # ----------------------------------------------------------------------------------------------------
    def _load_teacher(self) -> torch.nn.Module:
        path = self.cfg["teacher"]["checkpoint"]
        if not path:
            raise ValueError("a loss needs the teacher: set teacher.checkpoint (or teacher.cache)")
        ckpt = load_checkpoint(path)
        self.teacher_radar_channels = tuple(ckpt["radar_channels"])
        teacher = build_from_checkpoint(ckpt, path).to(self.device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        if self.channels_last:
            teacher.to(memory_format=torch.channels_last)
        return teacher

    def _materialize_lazy_losses(self) -> None:
        """Loss adapters sized from the first batch (lazy modules) get their shapes before the optimiser
        and DDP see them: one forward of the first two samples without gradients."""
        lazy = [loss for loss in self.losses
                if any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in loss.parameters())]
        if not lazy:
            return
        loader = DataLoader(self.train_set, batch_size=min(2, len(self.train_set)), shuffle=False,
                            collate_fn=collate)
        batch = self._to_device(next(iter(loader)))
        with torch.no_grad():
            student_out = self.model(batch["image"], batch["radar"])
            teacher_out = self.teacher(batch["image"], batch["radar"]) if self.teacher is not None \
                else outputs_from_batch(batch)
            for loss in lazy:
                loss(student_out, teacher_out, batch)
        self.losses.to(self.device)

    def _restore(self, ckpt: dict, path: Path) -> None:
        state = ckpt["training_state"] or {}
        if not state:
            raise ValueError(f"{path} has no training state to resume from")
        saved = ckpt.get("resolved_config") or {}
        changed = _changed_on_resume(saved, self.cfg)
        if changed:     # a changed loss without parameters, or a model option, would load and go on silently
            names = [key for key, _ in changed]
            verb = "differs" if len(names) == 1 and names[0] != "losses" else "differ"
            raise ValueError(f"cannot resume from {path}: the config's {' and '.join(names)} {verb} from the "
                             f"run's ({'; '.join(f'{key}: {value!r}' for key, value in changed)}); resume with the "
                             "run's config.yaml, or choose another out folder")
        try:
            self._load_training_state(ckpt, state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise ValueError(f"cannot resume from {path}: {_first_line(exc)} (was the config's model, losses or "
                             "optimiser changed since? resume with the run's config.yaml, or choose another out "
                             "folder)") from None
        epochs = self.cfg["optim"]["epochs"]
        if self.start_epoch > epochs:   # it trained nothing, and rewrote config.yaml and summary.json with fewer
            raise ValueError(f"cannot resume from {path}: the run has finished {self.start_epoch} epochs, more than "
                             f"optim.epochs {epochs}; give optim.epochs >= {self.start_epoch}")

    def _load_training_state(self, ckpt: dict, state: dict) -> None:
        self.model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                    for k, v in ckpt["state_dict"].items()})
        self.losses.load_state_dict(state["loss_modules"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = state["epoch"]
        self.global_step = state["global_step"]
        self.skipped_steps = state["skipped_steps"]
        self.best_mae, self.best_epoch = state["best_mae"], state["best_epoch"]
        self.history = state["history"]
        self.median_train_depth = state["median_train_depth"]

    def _training_state(self, epoch: int) -> dict:
        return {"epoch": epoch + 1, "global_step": self.global_step, "skipped_steps": self.skipped_steps,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "loss_modules": self.losses.state_dict(),
                "best_mae": self.best_mae, "best_epoch": self.best_epoch, "history": self.history,
                "median_train_depth": self.median_train_depth}

    def _median_train_depth(self) -> float:
        """Median LiDAR depth over (up to) the first training samples: the constant baseline's value."""
        values = []
        for path in cache_files(self.cfg["data"]["train"], MEDIAN_SAMPLES):
            gt = read_cache_file(path)["depth_gt"]
            values.append(gt[gt > 0])
        values = np.concatenate(values)
        return float(np.median(values)) if len(values) else float("nan")

    # ----------------------------------------------------------------------------------------------------
    def _to_device(self, batch: dict) -> dict:
        out = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, non_blocking=True)
                if self.channels_last and key in ("image", "radar"):
                    value = value.contiguous(memory_format=torch.channels_last)
            out[key] = value
        out["radar_channels"] = list(self.radar_channels)
        return out

    def _teacher_outputs(self, batch: dict) -> dict | None:
        if not self.needs_teacher:
            return None
        if self.teacher is None:
            return outputs_from_batch(batch)
        with autocast(self.device, self.precision):
            if self.teacher_graph:
                with torch.enable_grad():
                    return self.teacher(batch["image"].detach().requires_grad_(True), batch["radar"])
            with torch.no_grad():
                return self.teacher(batch["image"], batch["radar"])

    def _step(self, batch: dict) -> dict[str, float]:
        self.ddp_model.train()
        with autocast(self.device, self.precision):
            student_out = self.ddp_model(batch["image"], batch["radar"])
        teacher_out = self._teacher_outputs(batch)
        terms, total = {}, 0.0
        for name, weight, every, loss in zip(self.loss_names, self.weights, self.loss_every, self.losses):
            if self.global_step % every:
                continue
            try:
                value = loss(student_out, teacher_out, batch).float()
            except KeyError as exc:     # the config's losses ask for what this model or teacher cache lacks
                raise ConfigError(f"loss {name} needs {exc} which the model/teacher outputs or the batch "
                                  "do not provide (a teacher cache holds only depths and saliency)") from None
            terms[name] = value.detach()
            total = total + weight * value
        self.optimizer.zero_grad(set_to_none=True)
        # every rank decides alike (a rank that skipped backward alone would leave the others waiting in DDP)
        if all_reduce_mean(torch.isfinite(total.detach()).float(), self.dist) < 1:
            return self._skip_step()
        self.scaler.scale(total).backward()
        average_gradients(self.loss_params, self.dist)
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])   # same on all ranks
        if not self.scaler.is_enabled() and not torch.isfinite(norm):      # fp16: the scaler skips and rescales
            self.optimizer.zero_grad(set_to_none=True)
            return self._skip_step()
        clip = self.cfg["optim"]["grad_clip"]
        if clip > 0:
            torch.nn.utils.clip_grads_with_norm_(self.params, clip, norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if not torch.isfinite(torch.nn.utils.get_total_norm(self.params)):     # identical on every DDP rank
            raise TrainingDiverged(f"training diverged: step {self.global_step + 1} (finite loss and gradient) made "
                                   f"weights non-finite (optim.lr {self.cfg['optim']['lr']:g} too high?)")
        self.scheduler.step()
        self.global_step += 1
        self.skipped_in_a_row = 0
        return {"total": float(total.detach()), **{k: float(v) for k, v in terms.items()}}

    def _skip_step(self) -> dict[str, float]:
        self.skipped_steps += 1
        self.skipped_in_a_row += 1
        if self.skipped_in_a_row >= DIVERGED_STEPS:
            raise TrainingDiverged(f"training diverged: {self.skipped_in_a_row} steps in a row had a non-finite "
                                   "loss or gradient")
        return {"skipped": 1.0}

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self._dataset.set_epoch(epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(self.cfg["seed"] * 100003 + epoch)
        torch.manual_seed(self.cfg["seed"] * 100003 + epoch)
        loader = DataLoader(self.train_set, batch_size=self.batch_size, shuffle=self.sampler is None,
                            sampler=self.sampler, generator=generator,
                            num_workers=self.cfg["data"]["num_workers"], drop_last=False, collate_fn=collate)
        sums: dict[str, float] = {}
        count = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{self.cfg['optim']['epochs']}", unit="batch",
                   disable=not (self.progress and self.dist.is_main), leave=False)
        for batch in _batches(bar):
            stats = self._step(self._to_device(batch))
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
            if "total" in stats:
                bar.set_postfix(loss=f"{stats['total']:.3f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
            if self.writer is not None and self.global_step % self.cfg["log"]["log_every"] == 0:
                for key, value in stats.items():
                    self.writer.add_scalar(f"train/{key}", value, self.global_step)
                self.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.global_step)
        means = {k: v / max(count, 1) for k, v in sums.items()}
        return {k: float(all_reduce_mean(torch.tensor(v), self.dist)) for k, v in sorted(means.items())}

    def validate(self) -> tuple[dict, list]:
        """Validation metrics through the node's estimator on a copy of the weights (rank 0 only)."""
        data = self.cfg["data"]
        model = copy.deepcopy(self.model).to(memory_format=torch.contiguous_format).float()
        estimator = DepthEstimator(model, self.input_hw, self.radar_channels, device=str(self.device))
        evaluation = evaluate_cache(estimator, data["val"], caps=self.cfg["eval"]["caps"],
                                    gts=(self.cfg["eval"]["gt"],), constant=self.median_train_depth,
                                    limit=data["limit_val"], keep=self.cfg["log"]["images"],
                                    saliency_frames=self.cfg["log"]["images"], progress=False)
        return evaluation.results(), evaluation.examples

    # ----------------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train from the current epoch to the last; returns the final summary (rank 0 writes files, holding the
        out folder's lock until it returns)."""
        try:
            return self._fit()
        finally:
            if self._out_lock is not None:
                os.close(self._out_lock)      # closing the descriptor releases the flock
                self._out_lock = None

    def _fit(self) -> dict:
        main = self.dist.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._lock_out_folder()
            # a run killed while writing one of its files left a temporary of it (a checkpoint's is as large as
            # the checkpoint): removed, as prepare does; live writers' and other names' are left alone
            remove_stale_temporaries(self.out, lambda target: target in RUN_FILES)
            atomic_write_bytes(self.out / "config.yaml", (RESOLVED_CONFIG_HEADER + dump_config(self.cfg)).encode())
            if self.median_train_depth is None:
                self.median_train_depth = self._median_train_depth()
            if self.cfg["log"]["tensorboard"]:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.out / "tensorboard"), purge_step=self.global_step or None)
        epochs = self.cfg["optim"]["epochs"]
        cap = f"{max(self.cfg['eval']['caps']):g}"
        gt = self.cfg["eval"]["gt"]
        for epoch in range(self.start_epoch, epochs):
            t0 = time.monotonic()
            train_stats = self.train_epoch(epoch)
            train_time = time.monotonic() - t0
            if main:
                record = {"epoch": epoch + 1, "train": train_stats, "train_seconds": round(train_time, 1),
                          "seconds_per_image": round(train_time / max(len(self.train_set) / self.dist.world_size, 1), 4),
                          "machine": machine_name(self.device)}   # a resumed run may span machines
                if self.cfg["data"]["val"]:
                    results, examples = self.validate()
                    record["val"] = results
                    mae = results["model"][gt][cap]["mae"]
                    record["val_mae"] = mae
                    self._log_epoch(record, examples)
                    # None: not one ground-truth pixel in the validation frames (e.g. recordings without
                    # LiDAR), so no ranking of epochs: as without validation, the latest epoch is the best
                    improved = mae is None or mae < self.best_mae
                else:
                    improved = True
                    self._log_epoch(record, [])
                record["seconds"] = round(time.monotonic() - t0, 1)       # training + validation
                if improved:
                    mae = record.get("val_mae")
                    self.best_mae, self.best_epoch = math.nan if mae is None else mae, epoch + 1
                self.history.append(record)
                self._save(epoch, improved)
            barrier(self.dist)
        # every epoch's wall time, over all the processes a resumed run took (history comes back on resume)
        seconds = sum(r.get("seconds", r["train_seconds"]) for r in self.history)
        summary = {"name": self.cfg["name"], "epochs": epochs, "best_epoch": self.best_epoch,
                   "best_val_mae_mm": self.best_mae, "skipped_steps": self.skipped_steps,
                   "seconds": round(seconds, 1), "out": str(self.out),
                   "precision": self.precision, "channels_last": self.channels_last}   # as resolved here
        if main:
            if self.writer is not None:
                self.writer.close()
            atomic_write_bytes(self.out / "summary.json", json.dumps(summary, indent=1).encode())
        return summary

    def _metrics(self) -> dict:
        last = self.history[-1] if self.history else {}
        return {"median_train_depth": self.median_train_depth, "best_epoch": self.best_epoch,
                "val": last.get("val", {}), "val_mae_mm": last.get("val_mae")}

    def _save(self, epoch: int, improved: bool) -> None:
        """``best.pt`` (when improved), then ``last.pt``, then ``history.json``. Our order: ``last.pt`` marks the
        epoch done, so it goes after ``best.pt``; a run killed between the two redoes the epoch on ``--resume``
        (the same weights, so the same ``best.pt``) instead of keeping the previous epoch's ``best.pt`` under a
        ``last.pt`` whose ``best_epoch`` names this one."""
        if improved:
            save_checkpoint(self.out / "best.pt", self.model, self.input_hw, self.radar_channels,
                            resolved_config=self.cfg, metrics=self._metrics())
        save_checkpoint(self.out / "last.pt", self.model, self.input_hw, self.radar_channels,
                        resolved_config=self.cfg, training_state=self._training_state(epoch),
                        metrics=self._metrics())
        atomic_write_bytes(self.out / "history.json", json.dumps(self.history, indent=1).encode())

    def _log_epoch(self, record: dict, examples: list) -> None:
        val = f", val MAE {record['val_mae'] / 1000:.3f} m" if record.get("val_mae") is not None else ""
        tqdm.write(f"[{self.cfg['name']}] epoch {record['epoch']}: loss {record['train'].get('total', math.nan):.4f}"
                   f"{val}, {record['train_seconds']:.0f} s")
        if self.writer is None:
            return
        step = record["epoch"]
        if record.get("val_mae") is not None:
            self.writer.add_scalar("val/mae_mm", record["val_mae"], step)
        from xdrcdepth_core.evaluation.panels import evaluation_panel
        from xdrcdepth_core.evaluation.evaluate import ground_truth

        for i, ex in enumerate(examples):
            sample = ex["sample"]
            panel = evaluation_panel(sample["image"], sample["radar"][0], ground_truth(sample, self.cfg["eval"]["gt"]),
                                     ex["depth"], ex["saliency"])
            self.writer.add_image(f"val/frame{i}", panel, step, dataformats="HWC")
