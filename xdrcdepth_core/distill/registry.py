"""Loss registry: ``@register_loss(name)`` on a :class:`DistillLoss` subclass, ``build_loss(name, **cfg)``."""

from __future__ import annotations

from xdrcdepth_core.distill.base import DistillLoss
from xdrcdepth_core.registry import Registry

_REGISTRY: Registry[type[DistillLoss]] = Registry("loss", "losses", unknown=ValueError, options="options")
#: registered name -> loss class
LOSSES = _REGISTRY.classes
#: class decorator: register ``cls`` under ``name`` and set ``cls.name``
register_loss = _REGISTRY.register
#: registered loss names, sorted
list_losses = _REGISTRY.names


def build_loss(name: str, **cfg) -> DistillLoss:
    """Instantiate the loss registered as ``name`` with the options ``cfg`` (plain YAML values)."""
    return _REGISTRY.build(name, **cfg)


#: keys of a ``losses`` entry of an experiment config that are the trainer's, not the loss's options
SCHEDULE_KEYS = ("name", "weight", "every")


def loss_options(entry: dict) -> dict:
    """The loss's own options of one ``losses`` entry of an experiment config (``{name, weight, every, ...}``)."""
    return {k: v for k, v in entry.items() if k not in SCHEDULE_KEYS}


def build_loss_entry(entry: dict) -> DistillLoss:
    """The loss of one ``losses`` entry of an experiment config."""
    return build_loss(entry["name"], **loss_options(entry))
