"""The ablation report: ``ablation.json``, ``ablation.md`` and figures from the finished runs' records.

The report's files are named after ``results_dir`` and sit beside it (:func:`report_file`):
``docs/results/ablation`` gives ``docs/results/ablation.md``, ``ablation.json``, ``ablation_mae.png``, ...;
a follow-up study with ``results_dir: docs/results/ablation_teacher_e25`` writes ``ablation_teacher_e25.md``
and so on, and never overwrites the main study's report.

Reads ``<results_dir>/runs/*.json`` (one per finished run, written by :mod:`.ablation`), so it needs no
checkpoint. ``ablation.json``: ``{"variants": {name: {"runs": [metric dict per seed], ...}}}`` where a metric
dict has ``mae_50 .. delta1_80`` (single-sweep LiDAR GT, MAE/RMSE in mm) and ``exact_mae_80`` (renderer
depth). ``ablation.md``: the table (mean ± std over seeds, change vs ``direct``), the baselines, per-run
times and the compute budget (done and still planned), the saliency study (``runs/../saliency.json``,
:mod:`.saliency_figure`), the hand-written findings (``<results_dir>/notes.md``: what was tried, included
verbatim), the command, date and machine. Figures: learning curves (validation MAE per epoch), MAE by
variant (bar chart with the seeds as dots), saliency (written by the study).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from xdrcdepth_core.atomic import atomic_write_bytes
from xdrcdepth_core.backends.capability import machine_name

CAPS = ("50", "70", "80")
COLUMNS = ("mae", "rmse", "abs_rel", "delta1")


def report_file(results_dir: Path, suffix: str) -> Path:
    """One of the report's files: ``<results_dir>.md``, ``<results_dir>.json``, ``<results_dir>_mae.png``, ..."""
    results_dir = Path(results_dir)
    return results_dir.parent / f"{results_dir.name}{suffix}"


def _metric_dict(test: dict) -> dict:
    model = test["results"]["model"]
    out = {f"{m}_{cap}": model["auto"][cap][m] for cap in CAPS for m in COLUMNS if cap in model["auto"]}
    if "exact" in model:
        out.update({f"exact_{m}_80": model["exact"]["80"][m] for m in COLUMNS})
    return out


def _baselines(test: dict) -> dict:
    results = test["results"]
    return {name: {f"{m}_80": results[name]["auto"]["80"][m] for m in COLUMNS}
            for name in ("radar_only", "constant") if name in results}


def run_seconds(record: dict) -> float:
    """Compute time of one run: its summary's seconds (every epoch's wall time), or, for runs trained before
    epochs recorded it, the larger of the summary (then: the last process only, short for a resumed run) and
    the sum of the epochs' training times (all processes, validation not counted)."""
    return max(record["summary"]["seconds"], sum(h["train_seconds"] for h in record["history"]))


def collect(results_dir: Path) -> dict:
    variants: dict = {}
    for path in sorted((results_dir / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        entry = variants.setdefault(record["variant"], {"runs": [], "seeds": [], "seconds": [], "val_curves": [],
                                                        "val_mae_80": [], "model": record["config"]["model"],
                                                        "precision": set(), "machines": []})
        entry["runs"].append(_metric_dict(record["test"]))
        entry["seeds"].append(record["seed"])
        entry["seconds"].append(run_seconds(record))
        entry["precision"].add(record["config"].get("precision", "fp32"))
        entry["val_mae_80"].append(record["summary"].get("best_val_mae_mm"))   # the epoch that was tested
        entry["val_curves"].append([h.get("val_mae") for h in record["history"]])
        entry["machines"].append(sorted({h["machine"] for h in record["history"] if "machine" in h}))
        entry["baselines"] = _baselines(record["test"])
    return variants


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return (float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0) if len(arr) else (np.nan, np.nan)


def _params(model_cfg: dict) -> float:
    from xdrcdepth_core.models import build_model

    cfg = dict(model_cfg)
    model = build_model(cfg.pop("name"), **cfg)
    return sum(p.numel() for p in model.parameters()) / 1e6


def _save(fig, path: Path, written: list[str]) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path.name)


def _figures(variants: dict, results_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    students = [n for n in variants if n != "teacher"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name in variants:
        for i, curve in enumerate(variants[name]["val_curves"]):
            ys = [v / 1000 if v is not None else np.nan for v in curve]
            ax.plot(range(1, len(ys) + 1), ys, label=name if i == 0 else None,
                    color=f"C{list(variants).index(name) % 10}", alpha=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation MAE (m, 0-80 m, single-sweep LiDAR)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, report_file(results_dir, "_learning_curves.png"), written)

    fig, ax = plt.subplots(figsize=(8, 4))
    means = [_mean_std([r["mae_80"] for r in variants[n]["runs"]])[0] / 1000 for n in students]
    ax.bar(range(len(students)), means, color="C0", alpha=0.7)
    for i, name in enumerate(students):
        ax.scatter([i] * len(variants[name]["runs"]), [r["mae_80"] / 1000 for r in variants[name]["runs"]],
                   color="k", s=10, zorder=3)
    ax.set_xticks(range(len(students)), students, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test MAE (m, 0-80 m)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, report_file(results_dir, "_mae.png"), written)
    return written


def write_report(cfg: dict, config_path) -> str:
    results_dir = Path(cfg["results_dir"])
    own = collect(results_dir)
    if not own:
        return "no finished runs yet"
    variants, borrowed = _with_borrowed_direct(cfg, own)
    direct = _mean_std([r["mae_80"] for r in variants["direct"]["runs"]])[0] if "direct" in variants else np.nan
    report = {"command": f"xdrcdepth ablate --config {config_path}", "date": datetime.date.today().isoformat(),
              "machine": machine_name(),
              "data_config": cfg["data"], "variants": {}}
    lines = ["| variant | seeds | params (M) | MAE 50 | MAE 70 | MAE 80 | RMSE 80 | AbsRel 80 | δ1 80 | "
             "MAE 80 vs direct | exact-depth MAE 80 | val MAE 80 | min / run |", "|" + "---|" * 13]
    for name, entry in variants.items():
        params = _params(entry["model"])
        row = {"runs": entry["runs"], "seeds": entry["seeds"], "params_m": round(params, 3),
               "seconds_per_run": entry["seconds"], "val_mae_80": entry["val_mae_80"], "machines": entry["machines"]}
        stats = {key: _mean_std([r.get(key) for r in entry["runs"]]) for key in entry["runs"][0]}
        row["mean"] = {k: v[0] for k, v in stats.items()}
        row["std"] = {k: v[1] for k, v in stats.items()}
        if name not in own:
            row["from"] = cfg["direct_from"]
        report["variants"][name] = row

        def cell(key, scale=1e-3, digits=3):
            mean, std = stats.get(key, _mean_std(entry.get(key, [])))
            return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}" if len(entry["runs"]) > 1 \
                else f"{mean * scale:.{digits}f}"
        change = "—" if name in ("direct", "teacher") or direct != direct \
            else f"{(stats['mae_80'][0] / direct - 1) * 100:+.1f} %"      # no direct row: nothing to compare to
        lines.append(f"| {name} | {len(entry['runs'])} | {params:.2f} | {cell('mae_50')} | {cell('mae_70')} | "
                     f"{cell('mae_80')} | {cell('rmse_80')} | {cell('abs_rel_80', 1, 4)} | {cell('delta1_80', 1, 4)} | "
                     f"{change} | {cell('exact_mae_80')} | "
                     f"{cell('val_mae_80')} | {np.mean(entry['seconds']) / 60:.0f} |")
    baselines = next(iter(variants.values()))["baselines"]
    report["baselines"] = baselines
    figures = _figures(variants, results_dir)
    base_lines = [f"- {name}: MAE 80 {v['mae_80'] / 1000:.3f} m, RMSE {v['rmse_80'] / 1000:.3f} m, "
                  f"AbsRel {v['abs_rel_80']:.4f}, δ1 {v['delta1_80']:.4f}" for name, v in baselines.items()]
    md = [f"# {cfg.get('title', 'KD ablation on the synthetic benchmark')}", "",
          f"Command: `{report['command']}` · date {report['date']} · report written on {report['machine']} · data "
          f"`{cfg['data']}`{_train_subset(cfg)}.", "", *_machine_lines(variants),
          "Test split, single key-frame LiDAR ground truth, metrics per image then averaged (MAE/RMSE in metres "
          "here), mean ± std over seeds; 'exact-depth' scores against the renderer's dense depth; 'val MAE 80': "
          "the validation split at the epoch each run kept (the only numbers choices are made on).", "",
          *lines, "", *borrowed, "Baselines on the same test frames:", *base_lines, "",
          *_budget_lines(cfg, own, report), "", *_saliency_lines(results_dir),
          *_notes(results_dir), *[f"![{f}]({f})" for f in figures], ""]
    atomic_write_bytes(report_file(results_dir, ".json"), json.dumps(report, indent=1).encode())
    atomic_write_bytes(report_file(results_dir, ".md"), "\n".join(md).encode())
    done = sum(len(v["runs"]) for v in own.values())
    return f"{done} runs in {len(own)} variants -> {report_file(results_dir, '.md')}"


def _machine_lines(variants: dict) -> list[str]:
    """Which machines trained the runs (their epochs record it; a run resumed elsewhere names both), so that the
    minutes per run compare only where the machine is the same; runs recorded before epochs named it are
    counted as such."""
    trained: dict[str, list[str]] = {}
    unknown = 0
    for name, entry in variants.items():
        for seed, machines in zip(entry["seeds"], entry["machines"]):
            for machine in machines:
                trained.setdefault(machine, []).append(f"{name} seed {seed}")
            unknown += not machines
    if not trained:
        return []
    parts = [f"{machine} ({', '.join(runs)})" for machine, runs in trained.items()]
    if unknown:
        parts.append(f"not recorded for the other {unknown} run{'s' * (unknown != 1)} (trained before epochs named it)")
    return [f"Trained on: {'; '.join(parts)}.", ""]


def _train_subset(cfg: dict) -> str:
    """What the report's data line adds for a study trained on fewer scenes (``train_scenes``), and for its
    variants that also see the other train scenes unlabelled."""
    n = cfg.get("train_scenes")
    if n is None:
        return ""
    extra = [name for name, variant in cfg.get("variants", {}).items() if variant.get("unlabelled")]
    also = (f"; {', '.join(extra)} also trained on the split's other scenes without their labels (only the teacher's "
            f"targets reach the student there)") if extra else ""
    return f", trained on its first {n} train scenes only (teacher and students){also}"


def _with_borrowed_direct(cfg: dict, own: dict) -> tuple[dict, list[str]]:
    """With ``direct_from``, the ``direct`` rows of that study first, then this study's own (students trained
    directly never see the teacher, so a study that changes only the teacher compares against them), and the
    line that says so."""
    source = cfg.get("direct_from")
    if not source or "direct" in own:
        return own, []
    direct = collect(Path(source)).get("direct")
    if direct is None:
        return own, [f"`{source}` has no finished `direct` run yet: no change vs direct to state.", ""]
    return {"direct": direct, **own}, [
        f"The `direct` row is `{source}`'s ({len(direct['runs'])} seeds, same data and student recipe; students "
        "trained directly never see the teacher), not rerun here; the compute below is this study's own.", ""]


def _budget_lines(cfg: dict, variants: dict, report: dict) -> list[str]:
    """Compute spent on the finished runs and an estimate for the planned ones still to do, each at its
    variant's mean time; a variant with no finished run has no estimate (its epochs, frames and losses may cost
    several times another's: the students' mean once said 0.6 h for a 2.5 h run); recorded in ``report``."""
    spent = sum(s / 60 for v in variants.values() for s in v["seconds"])
    todo = {name: sorted(set(v.get("seeds", [0])) - set(variants.get(name, {}).get("seeds", [])))
            for name, v in cfg["variants"].items()}
    todo = {name: seeds for name, seeds in todo.items() if seeds}
    left = sum(len(seeds) * float(np.mean(variants[name]["seconds"])) / 60
               for name, seeds in todo.items() if name in variants)
    unmeasured = [name for name in todo if name not in variants]
    report["budget"] = {"minutes_spent": spent, "minutes_left_estimate": left, "to_do": todo,
                        "not_estimated": unmeasured}
    precision = ", ".join(sorted(set().union(*(v["precision"] for v in variants.values()))))
    lines = [f"Compute: {spent / 60:.1f} h on the {sum(len(v['runs']) for v in variants.values())} finished runs "
             f"(per run in the last column, 2-core CPU, precision {precision}); the study is budgeted to about 8 h."]
    if todo:
        estimate = f"about {left / 60:.1f} h more at the measured times" if len(unmeasured) < len(todo) else ""
        if unmeasured:
            estimate += ("; " if estimate else "") + (f"no time measured yet for {', '.join(unmeasured)} "
                                                      "(no finished run)")
        lines.append(f"Still to run: {', '.join(f'{n} seeds {s}' for n, s in todo.items())} "
                     f"({estimate}); `xdrcdepth ablate` resumes them.")
    return lines


def _saliency_lines(results_dir: Path) -> list[str]:
    """The saliency study's numbers as a table, when it has run."""
    path = results_dir / "saliency.json"
    if not path.is_file():
        return []
    study = json.loads(path.read_text())
    rows = [f"| {name} | {m['concentration_top10']:.3f} | "
            f"{m['agreement_with_teacher']:.3f} |" if "agreement_with_teacher" in m else
            f"| {name} | {m['concentration_top10']:.3f} | — |" for name, m in study["models"].items()]
    figure = report_file(results_dir, "_saliency.png")
    return [f"Saliency (Grad-CAM at `{study['layer']}` w.r.t. the {study['target']}, {study['frames']} test frames): "
            "concentration = share of the map's mass in its top 10 % of pixels (sharper: higher), agreement = "
            "Pearson correlation with the teacher's map.", "",
            "| model | concentration (top 10 %) | agreement with teacher |", "|---|---|---|", *rows, "",
            *([f"![{figure.name}]({figure.name})", ""] if figure.is_file() else [])]


def _notes(results_dir: Path) -> list[str]:
    """``<results_dir>/notes.md`` (hand-written findings), verbatim."""
    path = results_dir / "notes.md"
    return [path.read_text().rstrip(), ""] if path.is_file() else []
