"""Loss registry: ``@register_loss(name)`` on a :class:`DistillLoss` subclass, ``build_loss(name, **cfg)``."""

from __future__ import annotations

from xdrcdepth_core.distill.base import DistillLoss

#: registered name -> loss class
LOSSES: dict[str, type[DistillLoss]] = {}


def register_loss(name: str):
    """Class decorator: register ``cls`` under ``name`` and set ``cls.name``."""

    def decorator(cls: type[DistillLoss]) -> type[DistillLoss]:
        if name in LOSSES and LOSSES[name] is not cls:
            raise ValueError(f"loss name {name!r} is already registered by {LOSSES[name].__qualname__}")
        cls.name = name
        LOSSES[name] = cls
        return cls

    return decorator


def list_losses() -> list[str]:
    """Registered loss names, sorted."""
    return sorted(LOSSES)


def build_loss(name: str, **cfg) -> DistillLoss:
    """Instantiate the loss registered as ``name`` with the options ``cfg`` (plain YAML values)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; registered losses: {', '.join(list_losses())}")
    try:
        return LOSSES[name](**cfg)
    except TypeError as exc:
        raise TypeError(f"bad options for loss {name!r}: {exc}") from exc
