"""Model registry: ``@register_model(name)`` on a :class:`DepthModel` subclass, ``build_model(name, **config)``."""

from __future__ import annotations

from xdrcdepth_core.models.base import DepthModel

#: registered name -> model class
MODELS: dict[str, type[DepthModel]] = {}


def register_model(name: str):
    """Class decorator: register ``cls`` under ``name`` and set ``cls.name``."""

    def decorator(cls: type[DepthModel]) -> type[DepthModel]:
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered by {MODELS[name].__qualname__}")
        cls.name = name
        MODELS[name] = cls
        return cls

    return decorator


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def build_model(name: str, **config) -> DepthModel:
    """Instantiate the model registered as ``name`` with ``config`` (a model's ``.config`` rebuilds it)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    try:
        return MODELS[name](**config)
    except TypeError as exc:
        raise TypeError(f"bad config for model {name!r}: {exc}") from exc
