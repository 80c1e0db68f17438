"""Experiment configuration: one YAML file per experiment, merged over defaults, validated, resolved.

A config is a nested mapping; :data:`DEFAULTS` lists every key (unknown keys are errors, so a typo never
silently trains the wrong thing). ``--set a.b=value`` overrides (values parsed as YAML) apply after the
file. The resolved config (defaults + file + overrides) is saved next to the checkpoints
(``config.yaml``) and inside each checkpoint (``resolved_config``), so a run is reproducible from its
folder alone.

Keys:

- ``name``: run name (default: the YAML file's stem); ``out``: run folder (default ``runs/<name>``);
- ``seed`` (0 to 2**32 - 1): seeds model init, data order and augmentation (per epoch, so a resumed run repeats
  exactly);
- ``device``: ``auto`` | ``cpu`` | ``cuda:N``; ``precision``: ``auto`` | ``fp32`` | ``bf16`` | ``fp16``
  (auto: fp16 AMP on CUDA, bf16 on CPUs with native bf16 (AVX512-BF16/AMX), else fp32; an explicit bf16 on
  a CPU without native bf16 runs emulated, ~8x slower than fp32, and ``xdrcdepth train`` warns);
  ``channels_last``: ``auto`` (with reduced precision) | true | false;
- ``model``: ``{name: <registered model>, <constructor options>}`` (at most 500 M parameters, counted on the
  meta device before anything is allocated);
- ``teacher``: ``{checkpoint: <path>}`` (frozen; needed by distillation losses) and optionally
  ``cache: <folder of xdrcdepth teacher-cache>`` (replaces the teacher's forward where it suffices);
- ``data``: ``train``/``val`` cache folders (``xdrcdepth prepare``), ``input_hw`` (multiples of 32, at most
  4096 x 4096 pixels),
  ``augment`` (``hflip`` probability, ``color`` jitter strength, both in [0, 1]), ``num_workers``, ``max_boxes``,
  ``limit_train``/``limit_val`` (use the first N samples; 0 = all);
- ``losses``: list of ``{name, weight, every, <options>}`` (registry in :mod:`xdrcdepth_core.distill`);
  ``every: k`` (default 1) applies the loss on every k-th optimiser step only (our cost knob for the
  expensive X-KD: its per-image Grad-CAM backward costs ~2.4x a plain student step);
- ``optim``: ``lr``, ``weight_decay`` (not on biases and norms), ``epochs``, ``batch_size`` (per
  process), ``schedule`` (``poly``: LiRCDepth's ``(lr0 - lr_end)(1 - t)^power + lr_end`` per step;
  ``constant``), ``poly_power``, ``end_lr_ratio``, ``warmup_steps``, ``grad_clip`` (0 = off);
- ``eval``: ``caps`` (m), ``gt`` (``auto``: single-sweep LiDAR where the cache has it);
- ``log``: ``tensorboard`` (bool), ``log_every`` (steps), ``images`` (validation frames shown per epoch).
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import yaml

from xdrcdepth_core.cli_args import one_line, short_repr
from xdrcdepth_core.imageio import DEFAULT_MAX_IMAGE_PIXELS

DEFAULTS: dict = {
    "name": None,
    "out": None,
    "seed": 0,
    "device": "auto",
    "precision": "auto",
    "channels_last": "auto",
    "model": {"name": "xdrcdepth"},
    "teacher": {"checkpoint": None, "cache": None},
    "data": {"train": None, "val": None, "input_hw": [192, 384], "augment": {"hflip": 0.5, "color": 0.1},
             "num_workers": 0, "max_boxes": 64, "limit_train": 0, "limit_val": 0},
    "losses": [{"name": "depth_l1", "weight": 1.0}],
    "optim": {"lr": 2e-4, "weight_decay": 1e-4, "epochs": 10, "batch_size": 4, "schedule": "poly",
              "poly_power": 0.9, "end_lr_ratio": 0.1, "warmup_steps": 0, "grad_clip": 0.0},
    "eval": {"caps": [50.0, 70.0, 80.0], "gt": "auto"},
    "log": {"tensorboard": True, "log_every": 10, "images": 2},
}
#: the largest YAML file read as a config (ours are a few kB): a bound on what a stray file can cost
MAX_CONFIG_BYTES = 2**20
#: the most nodes (texts, numbers, lists, mappings) a config may hold with its YAML aliases expanded (ours hold under
#: 200): a few hundred bytes of aliases nested in aliases ("billion laughs") expand past any memory, and all that
#: walks a config (merge, copy, validation, messages, the saved config.yaml) walks the expansion
MAX_CONFIG_NODES = 100_000
#: the most digits of an integer in a config: no config number needs 20, and Python refuses to read one of more
#: than 4300 (``ValueError``), taking quadratic time up to there
MAX_INT_DIGITS = 100
#: sections whose keys are free-form (model constructor options, augmentation options)
OPEN_SECTIONS = {("model",), ("data", "augment")}
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: keys checked by :func:`_validate` itself rather than by the type of their default
SPECIAL_KEYS = {("channels_last",), ("losses",), ("data", "input_hw"), ("eval", "caps")}
#: lower bounds (inclusive) of numeric keys, beyond the type of their default
MINIMUM = {("seed",): 0, ("data", "num_workers"): 0, ("data", "max_boxes"): 1, ("data", "limit_train"): 0,
           ("data", "limit_val"): 0, ("optim", "weight_decay"): 0, ("optim", "poly_power"): 0,
           ("optim", "end_lr_ratio"): 0, ("optim", "warmup_steps"): 0, ("optim", "grad_clip"): 0,
           ("log", "log_every"): 1, ("log", "images"): 0}
#: upper bounds (inclusive). ``seed``: our bound, numpy's seed range; the trainer seeds torch with
#: ``seed * 100003 + epoch``, which must stay below 2**64 (a larger seed failed after the first epoch)
MAXIMUM = {("seed",): 2**32 - 1}


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key."""


def _merge(base: dict, override: dict, path: tuple = ()) -> dict:
    """``base`` updated by ``override`` recursively; keys outside :data:`OPEN_SECTIONS` must exist."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = ".".join(path + (str(key),))
        if path not in OPEN_SECTIONS and key not in base:
            raise ConfigError(f"unknown config key {short_repr(where)}")
        if isinstance(base.get(key), dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{where} must be a mapping, got {short_repr(value)}")
            out[key] = _merge(base[key], value, path + (key,))
        elif isinstance(base.get(key), list) and isinstance(value, dict):   # --set losses.0.weight=2
            raise ConfigError(f"{where} is a list, got the mapping {short_repr(value)}: a list is given whole "
                              f"(--set '{where}=[...]'), its items cannot be set one by one")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict:
    """``a.b.c=value`` -> ``{"a": {"b": {"c": value}}}`` (value parsed as YAML)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {short_repr(text)} is not KEY=VALUE")
    nested: dict = {}
    node = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    try:
        node[parts[-1]] = load_yaml(value, key.strip())
    except ConfigError as exc:
        raise ConfigError(f"override {short_repr(text)}: {exc}") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or one_line(exc)
        raise ConfigError(f"override {short_repr(text)}: the value is not YAML ({problem})") from None
    return nested


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _type_problem(value, default) -> str | None:
    """What is wrong with ``value`` for a key whose default is ``default`` (same kind of value), or None."""
    if default is None:     # names and paths, unset by default
        return None if value is None or (isinstance(value, str) and value) else "must be a name or path"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if isinstance(default, float):
        return None if _is_number(value) else "must be a finite number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "must be text"
    return None if isinstance(value, list) else "must be a list"


def _check_types(cfg: dict, defaults: dict = DEFAULTS, path: tuple = ()) -> None:
    """Every key of :data:`DEFAULTS` (outside the open and special ones) holds a value of its default's kind,
    within :data:`MINIMUM`: a wrong type fails here, naming the key, not as a traceback mid-training."""
    for key, default in defaults.items():
        where = path + (key,)
        if where in OPEN_SECTIONS or where in SPECIAL_KEYS:
            continue
        value = cfg[key]
        if isinstance(default, dict):
            _check_types(value, default, where)
            continue
        problem = _type_problem(value, default)
        if problem is None and where in MINIMUM and value < MINIMUM[where]:
            problem = f"must be >= {MINIMUM[where]}"
        if problem is None and where in MAXIMUM and value > MAXIMUM[where]:
            problem = f"must be <= {MAXIMUM[where]}"
        if problem:
            raise ConfigError(f"{'.'.join(where)} {problem}, got {short_repr(value)}")


def _check_augment(augment: dict) -> None:
    """``data.augment`` values (the names are checked by :class:`~xdrcdepth_core.data.cache_dataset.CacheDataset`):
    a wrong value would otherwise fail in the first batch, after the run folder is written, without the key."""
    checks = {"hflip": (lambda v: _is_number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
              "color": (lambda v: _is_number(v) and 0 <= v <= 1, "a jitter strength in [0, 1]"),
              "negate_lateral_velocity": (lambda v: isinstance(v, bool), "true or false")}
    for key, value in augment.items():
        if key in checks and not checks[key][0](value):
            raise ConfigError(f"data.augment.{key} must be {checks[key][1]}, got {short_repr(value)}")


def _validate(cfg: dict) -> None:
    from xdrcdepth_core.evaluation.evaluate import GT_KEYS

    _check_types(cfg)
    caps = cfg["eval"]["caps"]
    if not (isinstance(caps, list) and caps and all(_is_number(c) and c > 0 for c in caps)):
        raise ConfigError(f"eval.caps must be a non-empty list of positive ranges (m), got {short_repr(caps)}")
    if cfg["eval"]["gt"] not in GT_KEYS:
        raise ConfigError(f"eval.gt must be one of {sorted(GT_KEYS)}, got {short_repr(cfg['eval']['gt'])}")
    _check_augment(cfg["data"]["augment"])
    hw = cfg["data"]["input_hw"]
    if not (isinstance(hw, list) and len(hw) == 2 and all(isinstance(v, int) and v > 0 and v % 32 == 0 for v in hw)):
        raise ConfigError(f"data.input_hw must be two positive multiples of 32, got {short_repr(hw)}")
    if hw[0] * hw[1] > DEFAULT_MAX_IMAGE_PIXELS:   # a batch of 65536 x 65536 took all 24 GB of the machine
        raise ConfigError(f"data.input_hw {hw} is {hw[0] * hw[1]} pixels, more than {DEFAULT_MAX_IMAGE_PIXELS} "
                          "(4096 x 4096, the largest image the node and the tools take)")
    if cfg["precision"] not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {short_repr(cfg['precision'])}")
    if cfg["channels_last"] not in ("auto", True, False):
        raise ConfigError(f"channels_last must be auto, true or false, got {short_repr(cfg['channels_last'])}")
    optim = cfg["optim"]
    for key in ("epochs", "batch_size"):
        if not isinstance(optim[key], int) or optim[key] < 1:
            raise ConfigError(f"optim.{key} must be an integer >= 1, got {short_repr(optim[key])}")
    if not isinstance(optim["lr"], (int, float)) or not optim["lr"] > 0:
        raise ConfigError(f"optim.lr must be > 0, got {short_repr(optim['lr'])}")
    if optim["schedule"] not in ("poly", "constant"):
        raise ConfigError(f"optim.schedule must be poly or constant, got {short_repr(optim['schedule'])}")
    if not isinstance(cfg["model"].get("name"), str):
        raise ConfigError("model.name is required")
    if not isinstance(cfg["losses"], list) or not cfg["losses"]:
        raise ConfigError("losses must be a non-empty list of {name, weight, ...}")
    for entry in cfg["losses"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"each loss needs a name: {short_repr(entry)}")
        if not _is_number(entry.get("weight", 1.0)):   # NaN/inf would skip every step as non-finite
            raise ConfigError(f"loss {entry['name']}: weight must be a finite number, got "
                              f"{short_repr(entry.get('weight'))}")
        if not isinstance(entry.get("every", 1), int) or entry.get("every", 1) < 1:
            raise ConfigError(f"loss {entry['name']}: every must be an integer >= 1")
    if not cfg["data"]["train"]:
        raise ConfigError("data.train (a prepare cache folder) is required")


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping. PyYAML keeps the last silently, so a
    second ``optim:`` section further down a config replaced the first without a word. Keys brought in by a
    merge (``<<: *base``) may still be overridden, as YAML intends."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    if key in first_line:
                        raise yaml.YAMLError(f"the key {short_repr(key)} is given twice "
                                             f"(lines {first_line[key]} and {line})")
                except TypeError:          # an unhashable key: SafeLoader's own error names it
                    continue
                first_line[key] = line
        return super().construct_mapping(node, deep)


# YAML 1.2 floats: PyYAML follows YAML 1.1, where a float needs a dot, so `lr: 1e-3` was the string '1e-3' and
# refused as "not a number"; every float YAML 1.1 accepts is still one (the dot is optional in the exponent form)
UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"""^(?:
     [-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))


def _children(node: yaml.Node) -> list[tuple[str, yaml.Node]]:
    """The nodes inside ``node``, each with its place (a mapping's key for its value, an index for an item)."""
    if isinstance(node, yaml.SequenceNode):
        return [(str(index), item) for index, item in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        return [pair for key, value in node.value
                for pair in ((_key_name(key), key), (_key_name(key), value))]
    return []


def _key_name(key: yaml.Node) -> str:
    """A mapping key as a place in a key path (``optim.lr``), bounded."""
    return short_repr(key.value)[1:-1] if isinstance(key, yaml.ScalarNode) else "<key>"


def _expanded_size(root: yaml.Node) -> float:
    """How many nodes ``root`` holds with its aliases expanded (an alias counts the whole node it names); ``inf``
    when an alias is inside the node it names. Each distinct node is visited once (not recursively: nesting may
    be deep), so the count costs what the file's size allows, not what the expansion would."""
    size: dict[int, float] = {}
    started: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_counted = stack.pop()
        if id(node) in size:
            continue
        children = [child for _, child in _children(node)]
        if children_counted:
            size[id(node)] = 1 + sum(size[id(child)] for child in children)
        elif id(node) in started:     # reached again from inside itself
            return math.inf
        else:
            started.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
    return size[id(root)]


def _long_integer(root: yaml.Node, place: str) -> str | None:
    """The key path (below ``place``) of the first integer of more than :data:`MAX_INT_DIGITS` digits, or None. It
    walks the expansion: call it on a node within :data:`MAX_CONFIG_NODES`."""
    stack = [(place, root)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int":
            digits = len(node.value.lstrip("+-").replace("_", ""))
            if digits > MAX_INT_DIGITS:
                return f"{where or 'the top level'} is an integer of {digits} digits, more than {MAX_INT_DIGITS}"
        stack.extend((f"{where}.{name}" if where else name, child) for name, child in reversed(_children(node)))
    return None


def load_yaml(text: str, place: str = ""):
    """``text`` read by :class:`UniqueKeyLoader`, within the bounds a config keeps: at most :data:`MAX_CONFIG_NODES`
    nodes with its aliases expanded and integers of at most :data:`MAX_INT_DIGITS` digits, both checked on the
    parsed nodes before any value is made. ``place`` is the key path the text is the value of (``--set``).
    :class:`ConfigError` (one line) for anything else it cannot read, ``yaml.YAMLError`` for bad YAML."""
    loader = UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if _expanded_size(root) > MAX_CONFIG_NODES:
            raise ConfigError(f"the YAML holds more than {MAX_CONFIG_NODES} values with its aliases expanded "
                              "(aliases nested in aliases?); not a config")
        problem = _long_integer(root, place)
        if problem:
            raise ConfigError(problem)
        return loader.construct_document(root)
    except RecursionError:
        raise ConfigError("the YAML is nested too deeply; not a config") from None
    except (ValueError, TypeError) as exc:   # a tag its constructor cannot make: !!int abc
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(one_line(exc)) from None
    finally:
        loader.dispose()


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """A YAML file that must hold a mapping, read by :func:`load_yaml` (within its bounds); :class:`ConfigError`
    naming the file otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"the {what} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; not a config file")
        loaded = load_yaml(raw.decode("utf-8"))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:   # binary file: not UTF-8 text
        raise ConfigError(f"cannot read {what} {path}: {one_line(exc)}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the {what} must be a mapping, got {type(loaded).__name__}")
    return loaded


def resolve_config(path: str | Path | None = None, overrides: list[str] | None = None,
                   base: dict | list[dict] | None = None) -> dict:
    """Defaults <- YAML file <- ``base`` (a mapping, or several merged in order) <- overrides; validated;
    ``name`` and ``out`` filled in. Mappings merge key by key at every level; lists are replaced whole."""
    loaded = read_yaml_mapping(path, "config") if path is not None else None
    try:
        cfg = copy.deepcopy(DEFAULTS)
        if loaded is not None:
            cfg = _merge(cfg, loaded)
        for layer in [base] if isinstance(base, dict) else base or []:
            cfg = _merge(cfg, layer)
        for text in overrides or []:
            cfg = _merge(cfg, parse_override(text))
        if cfg["name"] is None:
            cfg["name"] = Path(path).stem if path is not None else "run"
        if cfg["out"] is None and isinstance(cfg["name"], str):
            cfg["out"] = str(Path("runs") / cfg["name"])
        _validate(cfg)
    except ConfigError as exc:   # the file the key is in (or was missing from)
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None
    return cfg


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
