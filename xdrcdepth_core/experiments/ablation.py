"""``xdrcdepth ablate --config config/ablation/synthetic.yaml``: the KD ablation as resumable jobs.

The ablation config names a data config (:mod:`.benchmark_data`), a teacher experiment (optionally changed by
``teacher_overrides``, e.g. ``{optim: {epochs: 25}}`` for a longer-trained teacher), a student base
experiment (optionally changed by ``student_overrides``, under each variant's own settings) and the variants
(rows); ``direct_from`` names another study's results_dir whose ``direct`` rows the report compares against
(a follow-up that changes only the teacher); ``title`` heads the report; ``train_scenes: N`` trains the
teacher and every student on the first N scenes of the train split only (a low-data study; val and test
unchanged), cached apart from the full split; a variant with ``unlabelled: true`` (needs ``train_scenes``) also
trains on the split's other scenes as unlabelled frames (``prepare --unlabelled``: camera and radar only, so
only the teacher's targets reach the student there), cached with the N labelled scenes in one folder, with
its own teacher cache; a variant's ``precision`` (fp32 | bf16 | fp16 | auto) overrides the study's, e.g. for a
pair of rows meant to run on any machine (bf16 is emulated and ~8x slower than fp32 on CPUs without native
bf16). Overrides merge key by key (lists whole). Unknown keys are errors. Each run is its own
job in ``<out>/<variant>/seed<k>/``:

0. the benchmark data is built where missing (``xdrcdepth build-data``, resumable; a new machine rebuilds it);
1. the teacher is trained once (``<out>/teacher``), then its outputs are cached for the training set
   (``xdrcdepth teacher-cache``) so response / D-KD / X-KD / confidence losses do not pay its forward;
2. each student run is ``xdrcdepth train --config <run>/experiment.yaml --resume`` (student base +
   the variant's model options and extra losses + seed), then ``xdrcdepth eval`` on the test split
   (single-sweep LiDAR and the renderer's exact depth) into ``<run>/test.json``.

The teacher's fp16 weights are also kept in ``teacher_weights`` (default ``results_dir/teacher.pt``; the
synthetic study commits them under ``xdrcdepth_core/checkpoints/``, not installed) and every student uses
these fp16-rounded weights (live or through the teacher cache), so runs of different sessions distil from
the very same teacher; on a machine without the run folders it is restored instead of retrained. A run
with ``test.json`` is finished and skipped; an interrupted one resumes from its ``last.pt``. Every finished
run's numbers are also copied to ``results_dir/runs/<variant>__seed<k>.json`` (committed), so
the report (:mod:`.ablation_report`) can be rebuilt on a machine that no longer has the run folders; such a
recorded run counts as finished there too and is not trained again (delete its record to rerun it).
``--only`` / ``--seeds`` restrict to some variants / seeds, ``--dry-run`` lists the jobs and their state,
``--ship`` writes the ``ship`` variant's seed with the best validation MAE into the package (fp16,
``infer.SHIPPED_CHECKPOINT``), among the seeds finished so far (the checkpoint's metrics name them; shipping
again later may pick another).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from xdrcdepth_core.atomic import atomic_write_bytes
from xdrcdepth_core.cli_args import os_error_line, path_argument, say, short_repr
from xdrcdepth_core.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint
from xdrcdepth_core.distill import build_loss_entry
from xdrcdepth_core.experiments.benchmark_data import benchmark_paths, build, load_data_config, prepare_train
from xdrcdepth_core.share import shipped_file
from xdrcdepth_core.train.config import PRECISIONS, read_yaml_mapping
from xdrcdepth_core.train.trainer import check_model_config

PROG = "xdrcdepth ablate"
#: the study ``--config`` runs by default (repository-relative: :func:`~xdrcdepth_core.share.shipped_file`)
DEFAULT_CONFIG = "config/ablation/synthetic.yaml"
#: the keys that name other configs (repository-relative like the default)
REFERENCED_CONFIGS = ("data", "teacher", "student")
REQUIRED_KEYS = {"data", "out", "results_dir", "teacher", "student", "teacher_cache", "variants", "ship"}
#: ``direct_from``: another study's results_dir whose ``direct`` rows this report compares against (a follow-up
#: that only changes the teacher need not retrain students that never see it)
OPTIONAL_KEYS = {"teacher_overrides", "student_overrides", "teacher_weights", "direct_from", "title",
                 "train_scenes"}
#: a variant's name is its run folder ``<out>/<name>`` and its record ``results_dir/runs/<name>__seed<k>.json``
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
#: the teacher's folders in ``out`` and its record in ``results_dir/runs``
RESERVED_NAMES = {"teacher", "teacher_cache", "teacher_cache_plus_unlabelled"}
#: losses whose teacher inputs a teacher cache holds (depths, confidence, Grad-CAM maps)
CACHEABLE_LOSSES = {"dkd", "xkd", "crkd_response", "confidence_kd", "dked_bounded", "lircdepth_interdepth"}


def load_ablation_config(path: str | Path) -> dict:
    """The ablation config at ``path``, checked; its ``data``, ``teacher`` and ``student`` configs are found as
    :func:`~xdrcdepth_core.share.shipped_file` finds a default (relative to the current folder, else the
    installed copy), so the shipped studies run from any folder once the package is installed."""
    cfg = read_yaml_mapping(path, "ablation config")
    missing = REQUIRED_KEYS - set(cfg)
    if missing:
        raise ValueError(f"{path}: missing keys {sorted(missing)}")
    unknown = set(cfg) - REQUIRED_KEYS - OPTIONAL_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(REQUIRED_KEYS | OPTIONAL_KEYS)}")
    for key in ("teacher_overrides", "student_overrides"):
        if not isinstance(cfg.get(key, {}), dict):
            raise ValueError(f"{path}: {key} must be a mapping (e.g. {{optim: {{epochs: 25}}}})")
    problem = _paths_problem(cfg) or _variants_problem(cfg)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return cfg


def _paths_problem(cfg: dict) -> str | None:
    """Referenced configs that are missing (each found, in ``cfg``, as ``shipped_file`` finds it), paths that are
    not text, a malformed ``teacher_cache``."""
    for key in ("data", "teacher", "student", "out", "results_dir", "teacher_weights", "direct_from", "title"):
        if key in cfg and not (isinstance(cfg[key], str) and cfg[key]):
            return f"{key} must be {'text' if key == 'title' else 'a path'}, got {short_repr(cfg[key])}"
    for key in REFERENCED_CONFIGS:
        cfg[key] = str(shipped_file(cfg[key]))
        if not Path(cfg[key]).is_file():
            return f"{key}: no such file {cfg[key]}"
    if "direct_from" in cfg and not (Path(cfg["direct_from"]) / "runs").is_dir():
        return f"direct_from: {cfg['direct_from']} holds no study's runs/ folder"
    tc = cfg["teacher_cache"]
    if not (isinstance(tc, dict) and isinstance(tc.get("layers"), list) and tc["layers"]
            and all(isinstance(layer, str) for layer in tc["layers"]) and isinstance(tc.get("target"), str)):
        return f"teacher_cache must be {{layers: [\"decoder:4\", ...], target: mean_depth}}, got {short_repr(tc)}"
    return None


def _variants_problem(cfg: dict) -> str | None:
    """Variants that are not a mapping of mappings with known keys and integer seeds; ``ship`` not a variant."""
    variants = cfg["variants"]
    if not isinstance(variants, dict) or not variants:
        return f"variants must be a mapping of variant names to their settings, got {short_repr(variants)}"
    for name, variant in variants.items():
        if not (isinstance(name, str) and VARIANT_NAME.fullmatch(name)) or name in RESERVED_NAMES:
            return (f"variant name {short_repr(name)}: use letters, digits and _ . + - (it names a folder and a file), "
                    f"starting with a letter or digit, and not {' or '.join(sorted(RESERVED_NAMES))}")
        if not isinstance(variant, dict):
            return (f"variant {name} must be a mapping (seeds, model, losses, optim, description), "
                    f"got {short_repr(variant)}")
        unknown = set(variant) - {"seeds", "model", "losses", "optim", "description", "unlabelled", "precision"}
        if unknown:
            return f"variant {name}: unknown keys {sorted(unknown)}"
        seeds = variant.get("seeds", [0])
        if not (isinstance(seeds, list) and seeds and all(isinstance(k, int) and not isinstance(k, bool)
                                                          and k >= 0 for k in seeds)):
            return f"variant {name}: seeds must be a list of integers >= 0, got {short_repr(seeds)}"
        if len(set(seeds)) != len(seeds):   # [0, 0] was one run listed, trained and reported twice
            return f"variant {name}: seeds {seeds} name a seed twice"
        for key, kind in (("model", dict), ("optim", dict), ("losses", list)):
            if not isinstance(variant.get(key, kind()), kind):
                what = "mapping" if kind is dict else "list"
                return f"variant {name}: {key} must be a {what}, got {short_repr(variant[key])}"
        if not isinstance(variant.get("unlabelled", False), bool):
            return f"variant {name}: unlabelled must be true or false, got {short_repr(variant['unlabelled'])}"
        if variant.get("precision", "auto") not in PRECISIONS:
            return (f"variant {name}: precision must be one of {', '.join(PRECISIONS)}, "
                    f"got {short_repr(variant['precision'])}")
        if variant.get("unlabelled") and "train_scenes" not in cfg:
            return (f"variant {name}: unlabelled: true adds the train scenes beyond train_scenes as unlabelled "
                    f"frames; set train_scenes")
        if variant.get("unlabelled") and not variant.get("losses"):
            return f"variant {name}: unlabelled frames teach only through a teacher; give it distillation losses"
    if cfg["ship"] not in variants:
        return f"ship names no variant: {short_repr(cfg['ship'])}; variants: {', '.join(map(str, variants))}"
    return None


def _python_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "xdrcdepth_core.cli", *args]


def _run(cmd: list[str], log: Path) -> None:
    """Run a command with its output appended to ``log`` as it is printed (unbuffered: ``tail -f`` shows each
    epoch when it ends, not hours later); raise naming the log on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[2:5])} ... failed (exit {proc.returncode}); see {log}")


class Ablation:
    def __init__(self, cfg: dict, config_path: str | Path = DEFAULT_CONFIG):
        self.cfg = cfg
        self.config_path = str(config_path)
        self.out = Path(cfg["out"])
        self.results_dir = Path(cfg["results_dir"])
        self.data_cfg = load_data_config(cfg["data"])
        self.paths = benchmark_paths(self.data_cfg)
        self.train_scenes = cfg.get("train_scenes")
        if self.train_scenes is not None:
            available = int(self.data_cfg["splits"]["train"]["scenes"])
            if not (isinstance(self.train_scenes, int) and not isinstance(self.train_scenes, bool)
                    and 1 <= self.train_scenes <= available):
                raise ValueError(f"{self.config_path}: train_scenes must be a whole number from 1 to the train "
                                 f"split's {available} scenes ({cfg['data']}), got {short_repr(self.train_scenes)}")
            if self.train_scenes == available and self.uses_unlabelled:
                raise ValueError(f"{self.config_path}: unlabelled frames need train_scenes below the train split's "
                                 f"{available} scenes")
            train = self.paths["train"]
            self.paths["train"] = train.with_name(f"{train.name}_first{self.train_scenes}scenes")
            self.paths["train_plus_unlabelled"] = train.with_name(
                f"{train.name}_first{self.train_scenes}scenes_plus{available - self.train_scenes}unlabelled")
        self.data_override = {"data": {"train": str(self.paths["train"]), "val": str(self.paths["val"])}}
        # every experiment resolves now (ConfigError naming its file), not hours later when its job starts
        self.teacher_config()
        checked_models = set()
        for name, seed, run_dir in self.runs():
            try:   # the student YAML with this variant's settings on top: its losses and model as the trainer builds
                config = self.student_config(name, seed, run_dir)     # them (the model once, shapes only)
                for entry in config["losses"]:
                    build_loss_entry(entry)
                if name not in checked_models:
                    check_model_config(config["model"])
                    checked_models.add(name)
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{self.config_path}: variant {name}: {exc.args[0] if exc.args else exc}") from None

    @property
    def uses_unlabelled(self) -> bool:
        return any(variant.get("unlabelled") for variant in self.cfg["variants"].values())

    def build_data(self) -> None:
        """The benchmark (resumable: renders missing splits, prepares uncached samples only), the cache of
        the first ``train_scenes`` train scenes where the study asks for fewer, and where a variant asks for
        unlabelled frames, one folder with those scenes and the split's other scenes unlabelled."""
        build(self.data_cfg)
        if self.train_scenes is not None:
            scenes = self.train_scene_names()
            labelled, others = scenes[:self.train_scenes], scenes[self.train_scenes:]
            prepare_train(self.data_cfg, self.paths["train"], labelled)
            if self.uses_unlabelled:
                prepare_train(self.data_cfg, self.paths["train_plus_unlabelled"], labelled)
                prepare_train(self.data_cfg, self.paths["train_plus_unlabelled"], others, unlabelled=True)

    def train_scene_names(self) -> list[str]:
        """The names of the rendered train scenes, in order (scene i has condition i mod 4, so the first
        N >= 4 keep every condition)."""
        from xdrcdepth_core.data.nuscenes_dataset import NuScenesLoadError, read_table

        tables = sorted(self.paths["train_scenes"].glob("v1.0-*/scene.json"))
        if not tables:
            raise RuntimeError(f"{self.paths['train_scenes']}: no v1.0-*/scene.json; rerun xdrcdepth build-data")
        try:
            scenes = read_table(tables[0])
        except NuScenesLoadError as exc:      # one line, exit 1, as the other data-building failures
            raise RuntimeError(str(exc)) from None
        return sorted(scene["name"] for scene in scenes)

    # -- teacher ---------------------------------------------------------------------------------------------
    @property
    def teacher_dir(self) -> Path:
        return self.out / "teacher"

    @property
    def teacher_checkpoint(self) -> Path:
        return self.teacher_dir / "best.pt"

    @property
    def teacher_cache_dir(self) -> Path:
        return self.out / "teacher_cache"

    @property
    def unlabelled_teacher_cache_dir(self) -> Path:
        """The teacher cache of the folder with the unlabelled frames (variants with ``unlabelled: true``)."""
        return self.out / "teacher_cache_plus_unlabelled"

    def teacher_done(self) -> bool:
        return (self.teacher_dir / "summary.json").is_file()

    @property
    def published_teacher(self) -> Path:
        """The teacher's fp16 weights kept with the results (committed), so a new machine need not retrain it."""
        return Path(self.cfg.get("teacher_weights") or self.results_dir / "teacher.pt")

    def teacher_config(self) -> dict:
        """The teacher experiment with the study's data, and ``teacher_overrides`` (e.g. more epochs) on top."""
        from xdrcdepth_core.train.config import resolve_config

        return resolve_config(self.cfg["teacher"], base=[self.cfg.get("teacher_overrides", {}), self.data_override,
                                                         {"out": str(self.teacher_dir), "name": "teacher"}])

    def train_teacher(self) -> None:
        from xdrcdepth_core.train.config import dump_config

        if not self.teacher_done() and self.published_teacher.is_file():
            self.teacher_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.published_teacher, self.teacher_checkpoint)
            record = json.loads(self.run_record("teacher", 0).read_text())
            for name in ("test", "history", "summary"):
                atomic_write_bytes(self.teacher_dir / f"{name}.json", json.dumps(record[name], indent=1).encode())
            atomic_write_bytes(self.teacher_dir / "config.yaml",   # key order kept: republished as it was
                               yaml.safe_dump(record["config"], sort_keys=False).encode())
        if not self.teacher_done():
            cfg = self.teacher_config()
            experiment = self.teacher_dir / "experiment.yaml"
            atomic_write_bytes(experiment, dump_config(cfg).encode())
            _run(_python_cli("train", "--config", str(experiment), "--resume", "--no-progress"),
                 self.teacher_dir / "log.txt")
        test_json = self.teacher_dir / "test.json"
        if not test_json.is_file():
            self._evaluate(self.teacher_checkpoint, test_json, self.teacher_dir / "log.txt")
        self._publish("teacher", 0, self.teacher_dir)
        if not self.published_teacher.is_file():
            ckpt = load_checkpoint(self.teacher_checkpoint)
            save_checkpoint(self.published_teacher, build_from_checkpoint(ckpt), ckpt["input_hw"],
                            tuple(ckpt["radar_channels"]), resolved_config=ckpt["resolved_config"],
                            metrics=ckpt["metrics"], weights_dtype=torch.float16)
        self._cache_teacher(self.paths["train"], self.teacher_cache_dir)
        if self.uses_unlabelled:
            self._cache_teacher(self.paths["train_plus_unlabelled"], self.unlabelled_teacher_cache_dir)

    def _cache_teacher(self, data: Path, out: Path) -> None:
        tc = self.cfg["teacher_cache"]
        _run(_python_cli("teacher-cache", "--checkpoint", str(self.published_teacher), "--data", str(data),
                         "--out", str(out), "--layers", *tc["layers"], "--target", tc["target"], "--no-progress"),
             self.teacher_dir / "log.txt")

    # -- students --------------------------------------------------------------------------------------------
    def runs(self, only: set[str] | None = None, seeds: set[int] | None = None) -> list[tuple[str, int, Path]]:
        return [(name, seed, self.out / name / f"seed{seed}") for name, variant in self.cfg["variants"].items()
                if not only or name in only for seed in variant.get("seeds", [0]) if not seeds or seed in seeds]

    def student_config(self, name: str, seed: int, run_dir: Path) -> dict:
        from xdrcdepth_core.train.config import resolve_config

        variant = self.cfg["variants"][name]
        study = [self.cfg.get("student_overrides", {}), self.data_override]
        teacher_cache = self.teacher_cache_dir
        if variant.get("unlabelled"):
            study.append({"data": {"train": str(self.paths["train_plus_unlabelled"])}})
            teacher_cache = self.unlabelled_teacher_cache_dir
        base = resolve_config(self.cfg["student"], base=study)
        losses = base["losses"] + copy.deepcopy(variant.get("losses", []))
        kd = [entry["name"] for entry in variant.get("losses", [])]
        teacher = {"checkpoint": str(self.published_teacher), "cache": None}
        if kd and all(n in CACHEABLE_LOSSES for n in kd):
            teacher["cache"] = str(teacher_cache)
        override = {"name": f"{name}__seed{seed}", "out": str(run_dir), "seed": seed, "losses": losses,
                    "teacher": teacher, "model": {**base["model"], **variant.get("model", {})},
                    "optim": {**base["optim"], **variant.get("optim", {})}}
        if "precision" in variant:
            override["precision"] = variant["precision"]
        return resolve_config(self.cfg["student"], base=[*study, override])

    def train_student(self, name: str, seed: int, run_dir: Path) -> None:
        from xdrcdepth_core.train.config import dump_config

        if (run_dir / "test.json").is_file():
            self._publish(name, seed, run_dir)
            return
        if self.run_record(name, seed).is_file():   # finished on another machine: its committed record stands
            return
        cfg = self.student_config(name, seed, run_dir)
        experiment = run_dir / "experiment.yaml"
        atomic_write_bytes(experiment, dump_config(cfg).encode())
        log = run_dir / "log.txt"
        if not (run_dir / "summary.json").is_file():
            _run(_python_cli("train", "--config", str(experiment), "--resume", "--no-progress"), log)
        self._evaluate(run_dir / "best.pt", run_dir / "test.json", log)
        self._publish(name, seed, run_dir)

    # -- shared ----------------------------------------------------------------------------------------------
    def _evaluate(self, checkpoint: Path, out_json: Path, log: Path) -> None:
        _run(_python_cli("eval", "--checkpoint", str(checkpoint), "--data", str(self.paths["test"]),
                         "--gt", "auto", "exact", "--json", str(out_json), "--no-progress"), log)

    def _publish(self, name: str, seed: int, run_dir: Path) -> None:
        """Copy a finished run's numbers (test metrics, history, config, timing) to the committed results."""
        record = {"variant": name, "seed": seed, "test": json.loads((run_dir / "test.json").read_text()),
                  "history": json.loads((run_dir / "history.json").read_text()),
                  "summary": json.loads((run_dir / "summary.json").read_text()),
                  "config": read_yaml_mapping(run_dir / "config.yaml", "run's resolved config")}
        atomic_write_bytes(self.run_record(name, seed), json.dumps(record, indent=1).encode())

    def run_record(self, name: str, seed: int) -> Path:
        """The committed numbers of a finished run (``results_dir/runs/<variant>__seed<k>.json``)."""
        return self.results_dir / "runs" / f"{name}__seed{seed}.json"

    def ship(self) -> str:
        """Ship the ``ship`` variant's seed with the best *validation* MAE (test numbers never choose) as the
        package's default checkpoint: fp16 weights, the run's metrics and the command that reproduces it."""
        from xdrcdepth_core.infer import SHIPPED_CHECKPOINT

        name = self.cfg["ship"]
        finished = [(seed, run_dir) for variant, seed, run_dir in self.runs({name})
                    if (run_dir / "test.json").is_file() and (run_dir / "best.pt").is_file()]
        planned = len(self.cfg["variants"][name].get("seeds", [0]))
        if not finished:
            return f"not shipped: {name} has no finished run with a checkpoint on this machine"
        seed, run_dir = min(finished, key=lambda item: json.loads((item[1] / "summary.json").read_text())
                            ["best_val_mae_mm"])
        ckpt = load_checkpoint(run_dir / "best.pt")
        test = json.loads((run_dir / "test.json").read_text())
        metrics = {**ckpt["metrics"], "test": test["results"], "variant": name, "seed": seed,
                   "seeds_compared": sorted(s for s, _ in finished), "seeds_planned": planned,
                   "reproduce": f"xdrcdepth build-data --config {self.cfg['data']} && "
                                f"xdrcdepth ablate --config {self.config_path} --only {name}"}
        save_checkpoint(SHIPPED_CHECKPOINT, build_from_checkpoint(ckpt), ckpt["input_hw"],
                        tuple(ckpt["radar_channels"]), resolved_config=ckpt["resolved_config"], metrics=metrics,
                        weights_dtype=torch.float16)
        from xdrcdepth_core.experiments.shipped_report import evaluate_real_samples, write_shipped_report

        card = write_shipped_report(SHIPPED_CHECKPOINT, run_dir / "test.json", self.results_dir.parent,
                                    evaluate_real_samples(SHIPPED_CHECKPOINT))
        return (f"shipped {name} seed {seed} (best on val of {len(finished)}/{planned} seeds) -> "
                f"{SHIPPED_CHECKPOINT}, {card}")

    def saliency(self) -> str:
        """The saliency figure and numbers (:mod:`.saliency_figure`) from the teacher and the seed-0 students
        of ``direct`` / ``xkd`` / ``xkd+dkd`` found on this machine; redone only when that set holds more
        models than the recorded study (a machine without an earlier session's run folders keeps it)."""
        from xdrcdepth_core.experiments.ablation_report import report_file
        from xdrcdepth_core.experiments.saliency_figure import saliency_study

        checkpoints = {"teacher": self.published_teacher} if self.published_teacher.is_file() else {}
        checkpoints.update({f"{name} student": self.out / name / "seed0" / "best.pt"
                            for name in ("direct", "xkd", "xkd+dkd")
                            if name in self.cfg["variants"] and (self.out / name / "seed0" / "test.json").is_file()})
        out_json = self.results_dir / "saliency.json"
        if len(checkpoints) < 2:
            return "no saliency figure (needs the teacher and a student)"
        if out_json.is_file() and not set(checkpoints) > set(json.loads(out_json.read_text())["models"]):
            return f"saliency figure kept ({out_json})"
        study = saliency_study(checkpoints, self.paths["test"],
                               figure=report_file(self.results_dir, "_saliency.png"))
        atomic_write_bytes(out_json, json.dumps(study, indent=1).encode())
        return f"saliency of {len(checkpoints)} models on {study['frames']} test frames -> {out_json}"

    def state(self, name: str, seed: int, run_dir: Path) -> str:
        if (run_dir / "test.json").is_file():
            return "done"
        if self.run_record(name, seed).is_file():
            return "done (recorded in results_dir; no run folder here)"
        if (run_dir / "last.pt").is_file():
            return "interrupted (resumes)"
        return "to do"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=path_argument, default=None,
                        help=f"ablation config (default: {DEFAULT_CONFIG} in the current folder, else the copy the "
                             "package installed)")
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="K",
                        help="run only these seeds (of the chosen variants)")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and their state, run nothing")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report from finished runs")
    parser.add_argument("--ship", action="store_true",
                        help="write the `ship` variant's best-on-validation run as the package's default checkpoint")


def run(args: argparse.Namespace) -> int:
    from xdrcdepth_core.experiments.ablation_report import write_report

    args.config = args.config or shipped_file(DEFAULT_CONFIG)
    try:
        cfg = load_ablation_config(args.config)
        ablation = Ablation(cfg, args.config)
    except ValueError as exc:
        print(f"xdrcdepth ablate: {exc}", file=sys.stderr)
        return 2
    only = set(args.only or [])
    unknown = only - set(cfg["variants"])
    if unknown:
        print(f"xdrcdepth ablate: unknown variants {sorted(unknown)}; known: {list(cfg['variants'])}", file=sys.stderr)
        return 2
    jobs = ablation.runs(only, set(args.seeds or []))
    if args.seeds and not jobs:       # printed only "teacher: done", exit 0, as if the runs were finished
        print(f"xdrcdepth ablate: --seeds {' '.join(map(str, args.seeds))} match no run of "
              f"{sorted(only) if only else 'any variant'}", file=sys.stderr)
        return 2
    if args.dry_run:
        restore = f"restored from {ablation.published_teacher}" if ablation.published_teacher.is_file() else "to do"
        print(f"teacher: {'done' if ablation.teacher_done() else restore}")
        for name, seed, run_dir in jobs:
            print(f"{name} seed {seed}: {ablation.state(name, seed, run_dir)}")
        return 0
    start = time.monotonic()
    if not args.report_only:
        try:
            ablation.build_data()
            ablation.train_teacher()
            for name, seed, run_dir in jobs:
                print(f"ablate: {name} seed {seed} ...", flush=True)
                ablation.train_student(name, seed, run_dir)
        except RuntimeError as exc:
            say(f"{PROG}: {exc}")
            return 1
        except OSError as exc:      # run or results folder read-only or full, a file in the way
            say(os_error_line(PROG, exc))
            return 1
    saliency = ablation.saliency() if not args.report_only else ""
    summary = write_report(cfg, args.config)
    shipped = ablation.ship() if args.ship else "not shipped (--ship)"
    print(f"ablate: {summary}; {saliency + '; ' if saliency else ''}{shipped}; {time.monotonic() - start:.0f} s")
    return 0
