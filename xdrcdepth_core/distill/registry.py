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
