"""Model registry: ``@register_model(name)`` on a :class:`DepthModel` subclass, ``build_model(name, **config)``."""

from __future__ import annotations

from xdrcdepth_core.models.base import DepthModel
from xdrcdepth_core.registry import Registry

_REGISTRY: Registry[type[DepthModel]] = Registry("model", "models", unknown=KeyError, options="config")
#: registered name -> model class
MODELS = _REGISTRY.classes
#: class decorator: register ``cls`` under ``name`` and set ``cls.name``
register_model = _REGISTRY.register
#: registered model names, sorted
list_models = _REGISTRY.names


def build_model(name: str, **config) -> DepthModel:
    """Instantiate the model registered as ``name`` with ``config`` (a model's ``.config`` rebuilds it)."""
    return _REGISTRY.build(name, **config)
